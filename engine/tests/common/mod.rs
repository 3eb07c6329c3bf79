//! What the engine's integration tests share: a relay on a free loopback port, bots to put in it,
//! and a call whose output a test can wait on.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

pub mod link;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rotunda_engine::audio::Clock;
use rotunda_engine::call::{Decoded, Sources};
use rotunda_engine::codec::Wake;
use rotunda_engine::codec::native::NativeCodecs;
use rotunda_engine::handle::native::run_bot;
use rotunda_engine::mailbox::Pictures;
use rotunda_engine::{
    BotReport, CallConfig, CallEvent, Command, Error, JoinOptions, Outputs, Parts, VideoSpec,
};
use rotunda_proto::{ParticipantId, Pose, TrackSource};
pub use rotunda_server::Running;
use rotunda_server::{Config, Relay};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest any single wait in these tests may take before it counts as a failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The real relay, running in this process.
pub type TestRelay = Running;

/// Starts the real relay in this process on a free port, with the defaults changed by
/// `configure`.
pub async fn start_relay(configure: impl FnOnce(&mut Config)) -> TestRelay {
    let mut config = Config::on(SocketAddr::from(([127, 0, 0, 1], 0)));
    configure(&mut config);
    Relay::bind(config).await.expect("relay binds").spawn()
}

/// Join options for `relay`, its certificate pinned, end-to-end encrypted (as by default).
pub trait Joining {
    /// Where and as whom to join `room` on it.
    fn join(&self, room: &str, name: &str) -> JoinOptions;
}

impl Joining for Running {
    fn join(&self, room: &str, name: &str) -> JoinOptions {
        JoinOptions {
            relay: self.url.clone(),
            cert_hash: Some(self.hash),
            room: room.into(),
            name: name.into(),
            token: None,
            e2ee: true,
        }
    }
}

/// A bot at 320x240@30 with audio, saying hello once, staying `seconds`.
pub fn bot_config(join: JoinOptions, seconds: u64) -> CallConfig {
    let greeting = format!("hello from {}", join.name);
    let mut config = CallConfig::new(join);
    config.duration = Some(Duration::from_secs(seconds));
    config.video = Some(VideoSpec {
        width: 320,
        height: 240,
        fps: 30,
    });
    config.chat = vec![greeting];
    config
}

/// Runs bots side by side; their reports in the same order. Each says its chat lines once all
/// of them are in the room (in an encrypted room a line is for those in the group when it is
/// said), unless its configuration says otherwise.
pub fn spawn_bots(configs: Vec<CallConfig>) -> Vec<JoinHandle<Result<BotReport, Error>>> {
    let all = configs.len();
    configs
        .into_iter()
        .map(|mut config| {
            if config.chat_with == 0 {
                config.chat_with = all;
            }
            tokio::spawn(run_bot(config, false))
        })
        .collect()
}

/// Waits for bots started by [`spawn_bots`].
pub async fn reports(bots: Vec<JoinHandle<Result<BotReport, Error>>>) -> Vec<BotReport> {
    let mut reports = Vec::new();
    for bot in bots {
        reports.push(bot.await.expect("bot task").expect("bot runs"));
    }
    reports
}

/// A call as an application holds it: its commands, its pictures, and its events (carried by the
/// test apart, see [`wait_for`]).
pub struct Linked {
    pub commands: mpsc::Sender<Command>,
    pub pictures: Arc<Pictures>,
}

/// Where a test call's output goes: events to a channel, pictures to a mailbox.
struct Collect {
    events: std::sync::mpsc::Sender<CallEvent>,
    pictures: Arc<Pictures>,
}

impl Outputs for Collect {
    fn event(&mut self, event: CallEvent) {
        let _ = self.events.send(event);
    }

    fn picture(&mut self, picture: Decoded) {
        if picture.source == TrackSource::Camera {
            self.pictures.store(picture.from, picture.frame);
        }
    }

    fn pose(&mut self, _id: ParticipantId, _pose: Pose) {}
}

/// Starts a call as the window would (synthetic sources, speakers on a clock), on this runtime.
pub fn start_call(config: CallConfig) -> (Linked, Receiver<CallEvent>) {
    let (commands_tx, commands) = mpsc::channel(64);
    let (events_tx, events) = std::sync::mpsc::channel();
    let pictures = Arc::new(Pictures::default());
    let wake = Wake::default();
    let parts = Parts {
        config,
        codecs: Box::new(NativeCodecs::new(wake.clone())),
        sources: Sources::default(),
        speakers: Some(Box::new(Clock::new())),
        wake,
    };
    let mut collect = Collect {
        events: events_tx,
        pictures: pictures.clone(),
    };
    tokio::spawn(async move {
        let _ = rotunda_engine::run(parts, commands, &mut collect).await;
    });
    (
        Linked {
            commands: commands_tx,
            pictures,
        },
        events,
    )
}

/// Waits (off the async workers) for the first event `pick` accepts.
pub async fn wait_for<T: Send + 'static>(
    events: Receiver<CallEvent>,
    mut pick: impl FnMut(&CallEvent) -> Option<T> + Send + 'static,
) -> (Receiver<CallEvent>, T) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return (events, found);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("the awaited event never came"),
                Err(RecvTimeoutError::Disconnected) => panic!("the call ended first"),
            }
        }
    })
    .await
    .expect("waiting")
}

/// Asserts every bot decoded at least `share` of the video and audio every other bot sent while
/// it was there, with the right marks, no decode errors, and everyone's greeting.
pub fn assert_decoded_everyone(reports: &[BotReport], share: f64) {
    for report in reports {
        assert!(
            report.error.is_none(),
            "{}: {:?}",
            report.name,
            report.error
        );
        for sender in reports.iter().filter(|r| r.name != report.name) {
            let peer = report
                .peers
                .get(&sender.name)
                .unwrap_or_else(|| panic!("{} saw nothing of {}", report.name, sender.name));
            println!(
                "{} <- {}: video {}/{} expected ({} sent), audio {}/{} expected ({} sent)",
                report.name,
                sender.name,
                peer.video_frames_decoded,
                peer.video_frames_expected,
                sender.video_frames_sent,
                peer.audio_frames_decoded,
                peer.audio_frames_expected,
                sender.audio_frames_sent
            );
            // "Expected": what the sender numbered while this bot was there. It must be most of
            // what the sender sent (they were in the room together nearly all along) of its
            // busiest layer (a viewer takes one at a time).
            assert!(
                peer.video_frames_expected * 10 >= busiest_layer(sender) * 7,
                "{} was there for too little of {}'s video",
                report.name,
                sender.name
            );
            let video = peer.video_frames_decoded as f64 / peer.video_frames_expected as f64;
            let audio = peer.audio_frames_decoded as f64 / peer.audio_frames_expected as f64;
            assert!(
                video >= share,
                "{} decoded {video:.2} of {}'s video",
                report.name,
                sender.name
            );
            assert!(
                audio >= share,
                "{} decoded {audio:.2} of {}'s audio",
                report.name,
                sender.name
            );
            assert_eq!(
                peer.video_frames_wrong_sender, 0,
                "{} misread {}",
                report.name, sender.name
            );
            assert_eq!(peer.video_frames_unmarked, 0);
            assert_eq!(peer.id, sender.id);
        }
        assert_eq!(report.decode_errors, 0, "{}", report.name);
        let mut lines: Vec<_> = report
            .chat_received
            .iter()
            .map(|c| (c.from.clone(), c.text.clone()))
            .collect();
        lines.sort();
        let mut expected: Vec<_> = reports
            .iter()
            .map(|r| (r.name.clone(), format!("hello from {}", r.name)))
            .collect();
        expected.sort();
        assert_eq!(lines, expected, "{} chat", report.name);
    }
}

/// The most video frames a bot sent of any one layer.
pub fn busiest_layer(report: &BotReport) -> u64 {
    report
        .video_frames_sent_by_layer
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
}
