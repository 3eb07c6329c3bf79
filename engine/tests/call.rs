//! The call engine as the window drives it: commands in, events out, pictures in their mailbox.
//! Two calls in one room over the real relay; no window.

mod common;

use std::time::Duration;

use common::{Joining, Linked, TestRelay, start_call, start_relay, wait_for};
use rotunda_engine::mailbox::Pictures;
use rotunda_engine::media::pattern::read_marks;
use rotunda_engine::{CallConfig, CallEvent, Command, Error, JoinOptions, VideoSpec};
use rotunda_proto::{FromRelay, ParticipantId};
use std::sync::mpsc::Receiver;

/// A call in `room` publishing 320x240@30 video and audio.
fn start(relay: &TestRelay, name: &str) -> (Linked, Receiver<CallEvent>) {
    let mut config = CallConfig::new(relay.join("room", name));
    config.video = Some(VideoSpec {
        width: 320,
        height: 240,
        fps: 30,
    });
    start_call(config)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_stops_media_and_everyone_sees_it() {
    let relay = start_relay(|_| {}).await;
    let (viewer, events, talker, talker_events, talker_id) = viewer_and_talker(&relay).await;

    // The viewer gets the talker's pictures (with its mark) and voice.
    let (events, _) = wait_for(events, decoding(talker_id)).await;
    let mark = newest_marked(&viewer.pictures, talker_id).and_then(|(_, sender)| sender);
    assert_eq!(
        mark,
        Some(talker_id.0 as u16),
        "the talker's picture, marked"
    );
    let (events, _) = wait_for(events, move |e| match e {
        CallEvent::Levels(levels) => levels
            .iter()
            .any(|(id, level)| *id == talker_id && *level > 0.0)
            .then_some(()),
        _ => None,
    })
    .await;
    // The talker sees itself in its own mailbox (the self-view).
    assert!(talker.pictures.read_newer(talker_id, 0, |_| ()).is_some());

    // Microphone and camera off: the viewer is told, and the media stops.
    for command in [
        Command::Microphone(false),
        Command::Camera(false),
        Command::Chat("back in a minute".into()),
    ] {
        talker.commands.send(command).await.expect("command");
    }
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
    let (_, (report, error)) = wait_for(talker_events, |e| match e {
        CallEvent::Ended { report, error } => Some((report.clone(), error.clone())),
        _ => None,
    })
    .await;
    assert_eq!(error, None);
    assert!(report.audio_frames_sent > 0 && report.video_frames_sent > 0);
    let (events, _) = wait_for(events, move |e| match e {
        CallEvent::Relay(FromRelay::ParticipantLeft { id, .. }) if *id == talker_id => Some(()),
        _ => None,
    })
    .await;
    viewer.commands.send(Command::Leave).await.expect("command");
    let (_, report) = wait_for(events, |e| match e {
        CallEvent::Ended { report, .. } => Some(report.clone()),
        _ => None,
    })
    .await;
    assert_eq!(report.left, ["talker"]);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_nobody_looks_at_is_not_decoded_and_resumes_at_a_keyframe() {
    let relay = start_relay(|_| {}).await;
    let (viewer, events, talker, _talker_events, talker_id) = viewer_and_talker(&relay).await;
    let (events, _) = wait_for(events, decoding(talker_id)).await;

    // Out of sight: the frames still arrive, but none is decoded.
    viewer
        .commands
        .send(Command::Visible {
            id: talker_id,
            visible: false,
        })
        .await
        .expect("command");
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
    viewer
        .commands
        .send(Command::Visible {
            id: talker_id,
            visible: true,
        })
        .await
        .expect("command");
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
        CallEvent::Ended { report, .. } => Some(report.clone()),
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
    // A loopback port with nothing on it: the certificate fetch is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut config = CallConfig::new(JoinOptions {
        relay: format!("https://127.0.0.1:{port}"),
        cert_hash: None,
        room: "room".into(),
        name: "lonely".into(),
        token: None,
        e2ee: false,
    });
    config.video = None;
    config.audio = false;
    let started = std::time::Instant::now();
    let (_linked, events) = start_call(config);
    let (_, error) = wait_for(events, |e| match e {
        CallEvent::Failed(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    assert!(matches!(error, Error::Fingerprint { .. }), "{error:?}");
    assert!(
        error.explain().starts_with("The relay is unreachable"),
        "{}",
        error.explain()
    );
    assert!(error.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_gets_no_answer_times_out_with_a_clear_message() {
    // Something that takes UDP datagrams and never answers: the QUIC handshake never completes.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("binds");
    let port = silent.local_addr().expect("addr").port();
    let mut config = CallConfig::new(JoinOptions {
        relay: format!("https://127.0.0.1:{port}"),
        cert_hash: Some([3; 32]),
        room: "room".into(),
        name: "patient".into(),
        token: None,
        e2ee: false,
    });
    config.video = None;
    let (_linked, events) = start_call(config);
    let (_, error) = wait_for(events, |e| match e {
        CallEvent::Failed(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(error, Error::JoinTimeout { seconds: 8 }),
        "{error:?}"
    );
    assert!(
        error.explain().contains("did not answer"),
        "{}",
        error.explain()
    );
    drop(silent);
}
