//! Sharing a screen natively, as a user would: a virtual display (Xvfb) showing a known picture
//! (the test pattern, marked with a number no participant has, in ImageMagick's `display`),
//! `rotunda bot --share-screen` capturing it, and a bot in this process receiving it. The
//! viewer must decode at least 90 % of the screen frames sent, at the screen's size, and read
//! the picture's marks back.
//!
//! Needs `Xvfb` and ImageMagick's `display` (the test command installs them).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{PATIENCE, hex, join, output_dir, start_relay};
use rotunda_engine::handle::native::run_bot;
use rotunda_engine::media::pattern::TestPattern;
use rotunda_engine::media::{VideoFrame, VideoSource};
use rotunda_engine::{BotReport, CallConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What the shared picture's marks say (no participant has this id).
const MARK: u16 = 0x5C5C;
/// The virtual display's size.
const SCREEN: (usize, usize) = (1280, 720);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_reaches_a_viewer_whole_and_readable() {
    let relay = start_relay(|_| {}).await;
    let dir = output_dir("screen-test");
    let (_xvfb, display) = start_display().await;
    let picture = dir.join("shared.png");
    write_pattern(&picture, MARK);
    // Shown as a window covering the display (a root window's background reads back black).
    let _shown = Command::new("display")
        .args(["-backdrop", "-geometry", "+0+0"])
        .arg(&picture)
        .env("DISPLAY", &display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ImageMagick's display starts (apt-get install imagemagick)");

    // The viewer: no camera, no microphone; it stays longer than the sharer.
    let mut config = CallConfig::new(join(&relay, "screen", "viewer"));
    config.video = None;
    config.audio = false;
    config.duration = Some(Duration::from_secs(16));
    let viewer = tokio::spawn(run_bot(config, false));

    let stats = dir.join("sharer.json");
    let sharer = Command::new(env!("CARGO_BIN_EXE_rotunda"))
        .arg("bot")
        .args(["--relay", &relay.url, "--cert-hash", &hex(&relay.hash)])
        .args(["--room", "screen", "--name", "sharer", "--duration", "10s"])
        .args(["--no-video", "--no-audio", "--share-screen"])
        .arg("--stats-json")
        .arg(&stats)
        .env("DISPLAY", &display)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the rotunda binary starts");
    let output = tokio::time::timeout(PATIENCE, sharer.wait_with_output())
        .await
        .expect("the sharer finishes")
        .expect("the sharer runs");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the sharer failed: {log}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{log}");
    let sent: BotReport =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("sharer's stats written"))
            .expect("sharer's stats parse");
    let seen = tokio::time::timeout(PATIENCE, viewer)
        .await
        .expect("the viewer finishes")
        .expect("the viewer runs")
        .expect("the viewer's call succeeds");
    relay.stop().await;
    eprint!("{}", seen.summary());

    // The screen went at its own size, 5 pictures a second, and only as a screen.
    assert_eq!(sent.screen_sent.as_deref(), Some("1280x720@5"), "{sent:?}");
    assert_eq!(sent.video_frames_sent, 0, "{sent:?}");
    assert!(sent.screen_frames_sent >= 30, "too few to judge: {sent:?}");
    let peer = seen.peers.get("sharer").expect("the viewer saw the sharer");
    assert_eq!(peer.video_frames_received, 0, "{peer:?}");
    let decoded = peer.screen_frames_decoded as f64;
    assert!(
        decoded >= 0.9 * peer.screen_frames_expected as f64
            && decoded >= 0.9 * sent.screen_frames_sent as f64,
        "decoded {decoded} of {} numbered, {} sent: {peer:?}",
        peer.screen_frames_expected,
        sent.screen_frames_sent
    );
    assert_eq!(peer.screen_size.as_deref(), Some("1280x720"), "{peer:?}");
    assert_eq!(
        peer.screen_marks,
        Some(MARK),
        "the picture's marks: {peer:?}"
    );
}

/// Xvfb on a display number it picks itself; killed when dropped.
async fn start_display() -> (Child, String) {
    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
        .arg(format!("{}x{}x24", SCREEN.0, SCREEN.1))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("Xvfb starts (apt-get install xvfb)");
    let stdout = xvfb.stdout.take().expect("Xvfb's output");
    let mut line = String::new();
    tokio::time::timeout(PATIENCE, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("Xvfb says its display")
        .expect("Xvfb's output reads");
    let number: u32 = line.trim().parse().expect("a display number");
    (xvfb, format!(":{number}"))
}

/// The test pattern marked `mark`, at the display's size, as a PNG.
fn write_pattern(path: &Path, mark: u16) {
    let (w, h) = SCREEN;
    let mut pattern = TestPattern::new(mark, w, h);
    let mut frame = VideoFrame::new(w, h);
    pattern.next_frame(&mut frame);
    let image = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let c = (y / 2) * (w / 2) + x / 2;
        let luma = 1.164 * (f64::from(frame.y[y * w + x]) - 16.0);
        let (u, v) = (f64::from(frame.u[c]) - 128.0, f64::from(frame.v[c]) - 128.0);
        let channel = |n: f64| n.round().clamp(0.0, 255.0) as u8;
        image::Rgb([
            channel(luma + 1.596 * v),
            channel(luma - 0.392 * u - 0.813 * v),
            channel(luma + 2.017 * u),
        ])
    });
    image.save(path).expect("the picture is written");
}
