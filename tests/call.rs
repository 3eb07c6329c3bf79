//! The call engine as the window drives it: commands in, events out, pictures and voices in
//! their mailboxes. Two calls in one room over the real relay; no window.

mod common;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{PATIENCE, TestRelay};
use rotunda::call::{self, AppLink, CallConfig, CallEvent, Command, Pictures, VideoSpec, Voices};
use rotunda::media::pattern::read_marks;
use rotunda_proto::{FromRelay, ParticipantId};
use tokio::sync::mpsc;

/// The application's ends of a call (its events are carried separately, by [`wait_for`]).
struct Linked {
    commands: mpsc::Sender<Command>,
    pictures: Arc<Pictures>,
    voices: Arc<Voices>,
}

/// What the application hands a call (synthetic sources), its own ends of it, and the events.
fn link() -> (AppLink, Linked, Receiver<CallEvent>) {
    let (commands, commands_rx) = mpsc::channel(64);
    let (events_tx, events) = std::sync::mpsc::channel();
    let pictures = Arc::new(Pictures::default());
    let voices = Arc::new(Voices::default());
    let link = AppLink {
        commands: commands_rx,
        events: events_tx,
        pictures: pictures.clone(),
        voices: voices.clone(),
        poses: Arc::default(),
        camera: None,
        microphone: None,
        microphone_off: false,
        camera_off: false,
    };
    let linked = Linked {
        commands,
        pictures,
        voices,
    };
    (link, linked, events)
}

/// A call in `room` publishing 320x240@30 video and audio.
fn start(relay: &TestRelay, name: &str) -> (Linked, Receiver<CallEvent>) {
    let config = CallConfig {
        join: relay.join("room", name),
        duration: None,
        video: Some(VideoSpec {
            width: 320,
            height: 240,
            fps: 30,
        }),
        audio: true,
        chat: Vec::new(),
        status: false,
    };
    let (link, linked, events) = link();
    tokio::spawn(call::run(config, Some(link)));
    (linked, events)
}

/// A viewer, then a talker joining after it: both calls, the viewer's events, the talker's events
/// and the talker's id.
async fn viewer_and_talker(
    relay: &TestRelay,
) -> (
    Linked,
    Receiver<CallEvent>,
    Linked,
    Receiver<CallEvent>,
    ParticipantId,
) {
    let (viewer, events) = start(relay, "viewer");
    let (events, _) = wait_for(events, |e| {
        matches!(e, CallEvent::Joined { .. }).then_some(())
    })
    .await;
    let (talker, talker_events) = start(relay, "talker");
    let (talker_events, talker_id) = wait_for(talker_events, |e| match e {
        CallEvent::Joined { you, .. } => Some(*you),
        _ => None,
    })
    .await;
    (viewer, events, talker, talker_events, talker_id)
}

/// Picks the statistics showing `id`'s video decoded at more than 20 fps.
fn decoding(id: ParticipantId) -> impl FnMut(&CallEvent) -> Option<()> + Send + 'static {
    move |e| match e {
        CallEvent::Stats(stats) => stats
            .peers
            .iter()
            .any(|p| p.id == id && p.fps > 20.0)
            .then_some(()),
        _ => None,
    }
}

/// The serial of `id`'s newest picture in `pictures`, and the sender its marks name.
fn newest_marked(pictures: &Pictures, id: ParticipantId) -> Option<(u64, Option<u16>)> {
    pictures.read_newer(id, 0, |frame| {
        read_marks(&frame.y, frame.width, frame.width, frame.height).map(|m| m.sender)
    })
}

/// Waits (off the async workers) for the first event `pick` accepts.
async fn wait_for<T: Send + 'static>(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_stops_media_and_everyone_sees_it() {
    let relay = TestRelay::start(|_| {}).await;
    let (viewer, events, talker, talker_events, talker_id) = viewer_and_talker(&relay).await;

    // The viewer gets the talker's pictures (with its mark) and voice.
    let (events, _) = wait_for(events, decoding(talker_id)).await;
    let mark = newest_marked(&viewer.pictures, talker_id).and_then(|(_, sender)| sender);
    assert_eq!(
        mark,
        Some(talker_id.0 as u16),
        "the talker's picture, marked"
    );
    assert!(viewer.voices.level(talker_id) > 0.0, "the talker's voice");
    // The talker sees itself in its own mailbox (the self-view).
    assert!(talker.pictures.read_newer(talker_id, 0, |_| ()).is_some());

    // Microphone and camera off: the viewer is told, and the media stops.
    talker
        .commands
        .send(Command::Microphone(false))
        .await
        .expect("command");
    talker
        .commands
        .send(Command::Camera(false))
        .await
        .expect("command");
    talker
        .commands
        .send(Command::Chat("back in a minute".into()))
        .await
        .expect("command");
    let (events, _) = wait_for(events, move |e| match e {
        CallEvent::Relay(FromRelay::Mute { id, audio, video }) if *id == talker_id => {
            (*audio && *video).then_some(())
        }
        _ => None,
    })
    .await;
    let (events, text) = wait_for(events, |e| match e {
        CallEvent::Relay(FromRelay::Chat { text, .. }) => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "back in a minute");
    // Two full quiet seconds: no frames, (almost) no bytes.
    let mut quiet = 0;
    let (events, _) = wait_for(events, move |e| match e {
        CallEvent::Stats(stats) => {
            let peer = stats.peers.iter().find(|p| p.id == talker_id)?;
            if peer.fps == 0.0 && peer.kbps < 1.0 {
                quiet += 1;
            } else {
                quiet = 0;
            }
            (quiet >= 2).then_some(())
        }
        _ => None,
    })
    .await;

    // Leaving ends both calls with a report; the viewer hears of the talker's leaving.
    talker.commands.send(Command::Leave).await.expect("command");
    let (_, report) = wait_for(talker_events, |e| match e {
        CallEvent::Ended(report) => Some(report.clone()),
        _ => None,
    })
    .await;
    assert_eq!(report.error, None);
    assert!(report.audio_frames_sent > 0 && report.video_frames_sent > 0);
    let (events, _) = wait_for(events, move |e| match e {
        CallEvent::Relay(FromRelay::ParticipantLeft { id, .. }) if *id == talker_id => Some(()),
        _ => None,
    })
    .await;
    assert!(
        viewer.pictures.read_newer(talker_id, 0, |_| ()).is_none(),
        "a leaver's picture is dropped"
    );
    viewer.commands.send(Command::Leave).await.expect("command");
    let (_, report) = wait_for(events, |e| match e {
        CallEvent::Ended(report) => Some(report.clone()),
        _ => None,
    })
    .await;
    assert_eq!(report.left, ["talker"]);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_nobody_looks_at_is_not_decoded_and_resumes_at_a_keyframe() {
    let relay = TestRelay::start(|_| {}).await;
    let (viewer, events, talker, _talker_events, talker_id) = viewer_and_talker(&relay).await;
    let (events, _) = wait_for(events, decoding(talker_id)).await;

    // Out of sight: the frames still arrive, but none is decoded.
    viewer.pictures.set_hidden(talker_id, true);
    let mut idle = 0;
    let (events, _) = wait_for(events, move |e| match e {
        CallEvent::Stats(stats) => {
            let peer = stats.peers.iter().find(|p| p.id == talker_id)?;
            if peer.fps == 0.0 && peer.kbps > 50.0 {
                idle += 1;
            } else {
                idle = 0;
            }
            (idle >= 2).then_some(())
        }
        _ => None,
    })
    .await;
    let before = viewer
        .pictures
        .read_newer(talker_id, 0, |_| ())
        .map(|(s, _)| s);

    // Back in sight: decoding resumes (from a keyframe it asks for) with the right pictures.
    viewer.pictures.set_hidden(talker_id, false);
    let (events, _) = wait_for(events, decoding(talker_id)).await;
    let after = newest_marked(&viewer.pictures, talker_id).expect("a picture");
    assert!(Some(after.0) > before, "new pictures after resuming");
    assert_eq!(
        after.1,
        Some(talker_id.0 as u16),
        "and they are the talker's"
    );

    viewer.commands.send(Command::Leave).await.expect("command");
    let (_, report) = wait_for(events, |e| match e {
        CallEvent::Ended(report) => Some(report.clone()),
        _ => None,
    })
    .await;
    let peer = &report.peers["talker"];
    assert!(peer.video_frames_skipped >= 30, "{peer:?}");
    assert_eq!(peer.video_frames_wrong_sender, 0, "{peer:?}");
    assert_eq!(report.decode_errors, 0, "resumed cleanly at a keyframe");
    talker.commands.send(Command::Leave).await.expect("command");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_is_reported_not_hung() {
    let (link, _linked, events) = link();
    // A loopback port with nothing on it: the certificate fetch is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = CallConfig {
        join: rotunda::net::JoinOptions {
            relay: format!("https://127.0.0.1:{port}"),
            cert_hash: None,
            room: "room".into(),
            name: "lonely".into(),
            token: None,
        },
        duration: None,
        video: None,
        audio: false,
        chat: Vec::new(),
        status: false,
    };
    let result = tokio::time::timeout(Duration::from_secs(10), call::run(config, Some(link)))
        .await
        .expect("fails fast");
    assert!(result.is_err());
    let (_, reason) = wait_for(events, |e| match e {
        CallEvent::Failed(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    let (message, retry) = rotunda::net::bridge::explain_failure(&reason);
    assert!(message.starts_with("The relay is unreachable"), "{message}");
    assert!(retry);
}
