//! The application's handle on a running call ([`Engine`]): commands in, events out, and the
//! newest picture and pose of everyone in mailboxes. Every channel is bounded. What only matters
//! at its newest (voice levels, live statistics, the live report) waits in a slot of its own,
//! replaced rather than queued: an application that stops taking events for minutes (a hidden
//! tab draws no frames) finds the events that count — joins, leaves, chat, the end — still there.
//!
//! It is the same on both platforms; what starts the call behind it differs: natively a tokio
//! task in this process ([`native`]), in the browser a dedicated worker ([`web`]) whose messages
//! fill the same channels and mailboxes.

#[cfg(native)]
pub mod native;
#[cfg(web)]
pub mod web;

use std::sync::{Arc, Mutex};

use rotunda_proto::{FromRelay, ParticipantId, Pose, TrackSource};
use tokio::sync::{Notify, mpsc};

use crate::call::{BotReport, CallEvent, Command, Decoded, LiveStats, SCREEN_INDEX};
use crate::driver::Outputs;
use crate::mailbox::{Pictures, Poses};
use crate::sync::lock;

/// Commands queued from the application to the call.
pub const COMMAND_QUEUE: usize = 256;
/// Events queued from the call to the application (it takes a few hundred a frame).
pub const EVENT_QUEUE: usize = 4096;

/// A running call, as the application holds it.
#[derive(Debug)]
pub struct Engine {
    commands: mpsc::Sender<Command>,
    events: Mutex<mpsc::Receiver<CallEvent>>,
    latest: Arc<Mutex<Latest>>,
    /// Everyone's newest decoded picture (ours: the self-view).
    pub pictures: Arc<Pictures>,
    /// The newest decoded picture of every screen shared, by sharer.
    pub screens: Arc<Pictures>,
    /// Everyone's newest pose.
    pub poses: Arc<Poses>,
    presented: Arc<Notify>,
}

/// The call's ends of an [`Engine`]: its commands, and where its output goes.
pub struct EngineSide {
    /// Commands from the application.
    pub commands: mpsc::Receiver<Command>,
    /// Output for the application.
    pub outputs: AppOutputs,
    /// Notified with every frame the application drew.
    pub presented: Arc<Notify>,
}

/// The newest of the events that replace each other.
#[derive(Debug, Default)]
struct Latest {
    levels: Option<Vec<(ParticipantId, f32)>>,
    stats: Option<LiveStats>,
    report: Option<Box<BotReport>>,
}

impl Latest {
    fn take(&mut self) -> Option<CallEvent> {
        if let Some(levels) = self.levels.take() {
            return Some(CallEvent::Levels(levels));
        }
        if let Some(stats) = self.stats.take() {
            return Some(CallEvent::Stats(stats));
        }
        self.report.take().map(CallEvent::Report)
    }
}

/// The call's output into the handle's channel and mailboxes.
pub struct AppOutputs {
    events: mpsc::Sender<CallEvent>,
    latest: Arc<Mutex<Latest>>,
    pictures: Arc<Pictures>,
    screens: Arc<Pictures>,
    poses: Arc<Poses>,
    dropped: u64,
}

/// An [`Engine`] and the call's ends of it.
pub fn pair() -> (Engine, EngineSide) {
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let pictures = Arc::new(Pictures::default());
    let screens = Arc::new(Pictures::default());
    let poses = Arc::new(Poses::default());
    let presented = Arc::new(Notify::new());
    let latest = Arc::new(Mutex::new(Latest::default()));
    let engine = Engine {
        commands: commands_tx,
        events: Mutex::new(events),
        latest: latest.clone(),
        pictures: pictures.clone(),
        screens: screens.clone(),
        poses: poses.clone(),
        presented: presented.clone(),
    };
    let side = EngineSide {
        commands,
        outputs: AppOutputs {
            events: events_tx,
            latest,
            pictures,
            screens,
            poses,
            dropped: 0,
        },
        presented,
    };
    (engine, side)
}

/// The call behind an [`Engine`] is gone (it ended and said so, or it stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl Engine {
    /// Sends a command; false (and dropped) when the call is behind or over.
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Leaves the room. A call too far behind to take the command also ends when this handle is
    /// dropped (its command channel closes).
    pub fn leave(&self) {
        if !self.send(Command::Leave) {
            tracing::debug!("leave queued behind other commands");
        }
    }

    /// The application drew a frame. Pictures go to the mailbox at once natively; from the
    /// browser's worker the newest come only after a frame was drawn, so a page that draws
    /// seldom is not sent pictures it never shows.
    pub fn presented(&self) {
        self.presented.notify_one();
    }

    /// The next event, `Ok(None)` when there is none now, [`Gone`] once the call is gone and
    /// every event was taken.
    pub fn next_event(&self) -> Result<Option<CallEvent>, Gone> {
        let gone = match lock(&self.events).try_recv() {
            Ok(event) => return Ok(Some(event)),
            Err(mpsc::error::TryRecvError::Empty) => false,
            Err(mpsc::error::TryRecvError::Disconnected) => true,
        };
        match lock(&self.latest).take() {
            Some(event) => Ok(Some(event)),
            None if gone => Err(Gone),
            None => Ok(None),
        }
    }
}

impl Outputs for AppOutputs {
    fn event(&mut self, event: CallEvent) {
        match &event {
            CallEvent::Relay(FromRelay::ParticipantLeft { id, .. }) => {
                self.pictures.remove(*id);
                self.screens.remove(*id);
                self.poses.remove(*id);
            }
            CallEvent::Relay(FromRelay::TrackUnpublished { track })
                if track.index == SCREEN_INDEX =>
            {
                self.screens.remove(track.participant);
            }
            CallEvent::Rejoined { you, .. } => {
                self.pictures.clear_except(Some(*you));
                self.screens.clear_except(None);
                self.poses.clear();
            }
            _ => {}
        }
        let event = {
            let mut latest = lock(&self.latest);
            match event {
                CallEvent::Levels(levels) => {
                    latest.levels = Some(levels);
                    None
                }
                CallEvent::Stats(stats) => {
                    latest.stats = Some(stats);
                    None
                }
                CallEvent::Report(report) => {
                    latest.report = Some(report);
                    None
                }
                other => Some(other),
            }
        };
        let Some(event) = event else {
            return;
        };
        if self.events.try_send(event).is_err() {
            // The application stopped taking events; only a bounded backlog waits for it.
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "the application is not taking events"
                );
            }
        }
    }

    fn picture(&mut self, picture: Decoded) {
        let mailbox = match picture.source {
            TrackSource::Screen => &self.screens,
            TrackSource::Camera | TrackSource::Microphone => &self.pictures,
        };
        mailbox.store(picture.from, picture.frame);
    }

    fn pose(&mut self, id: ParticipantId, pose: Pose) {
        self.poses.store(id, pose);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(seq: u64) -> CallEvent {
        CallEvent::Relay(FromRelay::Chat {
            seq,
            from: ParticipantId(1),
            name: "ada".into(),
            text: format!("line {seq}"),
        })
    }

    #[test]
    fn an_application_that_stops_reading_keeps_every_event_that_counts() {
        let (engine, mut side) = pair();
        // Minutes of levels and statistics nobody took, with a few chat lines among them.
        for round in 0..EVENT_QUEUE as u64 * 2 {
            side.outputs
                .event(CallEvent::Levels(vec![(ParticipantId(1), 0.5)]));
            side.outputs.event(CallEvent::Stats(LiveStats {
                seconds: round as f64,
                ..LiveStats::default()
            }));
            if round % 1000 == 0 {
                side.outputs.event(chat(round));
            }
        }
        let mut chats = Vec::new();
        let mut stats = Vec::new();
        while let Ok(Some(event)) = engine.next_event() {
            match event {
                CallEvent::Relay(FromRelay::Chat { seq, .. }) => chats.push(seq),
                CallEvent::Stats(live) => stats.push(live.seconds),
                _ => {}
            }
        }
        assert_eq!(
            chats,
            (0..EVENT_QUEUE as u64 * 2)
                .step_by(1000)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            stats,
            [(EVENT_QUEUE * 2 - 1) as f64],
            "only the newest statistics"
        );
        drop(side);
        assert_eq!(engine.next_event(), Err(Gone));
    }
}
