//! The application's handle on a running call ([`Engine`]): commands in, events out, and the
//! newest picture and pose of everyone in mailboxes. Every channel is bounded.
//!
//! It is the same on both platforms; what starts the call behind it differs: natively a tokio
//! task in this process ([`native`]), in the browser a dedicated worker ([`web`]) whose messages
//! fill the same channels and mailboxes.

#[cfg(native)]
pub mod native;
#[cfg(web)]
pub mod web;

use std::sync::{Arc, Mutex};

use rotunda_proto::{FromRelay, ParticipantId, Pose};
use tokio::sync::{Notify, mpsc};

use crate::call::{CallEvent, Command};
use crate::driver::Outputs;
use crate::mailbox::{Pictures, Poses};
use crate::media::VideoFrame;
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
    /// Everyone's newest decoded picture (ours: the self-view).
    pub pictures: Arc<Pictures>,
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

/// The call's output into the handle's channel and mailboxes.
pub struct AppOutputs {
    events: mpsc::Sender<CallEvent>,
    pictures: Arc<Pictures>,
    poses: Arc<Poses>,
    dropped: u64,
}

/// An [`Engine`] and the call's ends of it.
pub fn pair() -> (Engine, EngineSide) {
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let pictures = Arc::new(Pictures::default());
    let poses = Arc::new(Poses::default());
    let presented = Arc::new(Notify::new());
    let engine = Engine {
        commands: commands_tx,
        events: Mutex::new(events),
        pictures: pictures.clone(),
        poses: poses.clone(),
        presented: presented.clone(),
    };
    let side = EngineSide {
        commands,
        outputs: AppOutputs {
            events: events_tx,
            pictures,
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
        match lock(&self.events).try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(Gone),
        }
    }
}

impl Outputs for AppOutputs {
    fn event(&mut self, event: CallEvent) {
        match &event {
            CallEvent::Relay(FromRelay::ParticipantLeft { id, .. }) => {
                self.pictures.remove(*id);
                self.poses.remove(*id);
            }
            CallEvent::Rejoined { you, .. } => {
                self.pictures.clear_except(Some(*you));
                self.poses.clear();
            }
            _ => {}
        }
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

    fn picture(&mut self, id: ParticipantId, frame: VideoFrame) {
        self.pictures.store(id, frame);
    }

    fn pose(&mut self, id: ParticipantId, pose: Pose) {
        self.poses.store(id, pose);
    }
}
