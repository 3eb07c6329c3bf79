//! Sharing a screen natively, as a user would: a virtual display (Xvfb) showing a known picture
//! (the test pattern, marked with a number no participant has, in ImageMagick's `display`),
//! `rotunda bot --share-screen` capturing it, a bot in this process and the windowed client
//! receiving it. The bot must decode at least 90 % of the screen frames sent, at the screen's
//! size, and read the picture's marks back; the window's screenshot must show the picture large
//! on the wall above the room's centre.
//!
//! Needs `Xvfb`, ImageMagick's `display` and Mesa's software Vulkan (the test command installs
//! them).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{PATIENCE, hex, join, output_dir, start_relay, window};
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
    // The window: it takes its screenshot while the screen is shared.
    let shot = dir.join("wall.png");
    let watched = dir.join("window.json");
    let window = window(&relay.url, "screen", "watcher")
        .args(["--cert-hash", &hex(&relay.hash)])
        .args(["--duration", "16s", "--screenshot-after", "8s"])
        .arg("--stats-json")
        .arg(&watched)
        .arg("--screenshot")
        .arg(&shot)
        .stderr(Stdio::piped())
        .spawn()
        .expect("xvfb-run starts (apt-get install xvfb mesa-vulkan-drivers)");

    let stats = dir.join("sharer.json");
    let sharer = Command::new(env!("CARGO_BIN_EXE_rotunda"))
        .arg("bot")
        .args(["--relay", &relay.url, "--cert-hash", &hex(&relay.hash)])
        .args(["--room", "screen", "--name", "sharer", "--duration", "14s"])
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
    let shown = tokio::time::timeout(PATIENCE * 3, window.wait_with_output())
        .await
        .expect("the window finishes")
        .expect("the window runs");
    assert!(
        shown.status.success(),
        "the window failed: {}",
        String::from_utf8_lossy(&shown.stderr)
    );
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

    // The window decoded the screen too, and shows it on the wall.
    let watched: BotReport =
        serde_json::from_str(&std::fs::read_to_string(&watched).expect("window's stats written"))
            .expect("window's stats parse");
    let peer = watched
        .peers
        .get("sharer")
        .expect("the window saw the sharer");
    assert_eq!(peer.screen_marks, Some(MARK), "{peer:?}");
    check_wall(&shot);
    eprintln!("screenshot: {}", shot.display());
}

/// The shared picture (the pattern's hue for [`MARK`]) covers a large part of the view, in the
/// middle, above the eyes' level.
fn check_wall(path: &Path) {
    let image = image::open(path).expect("screenshot is a PNG").to_rgb8();
    let (u, v) = TestPattern::chroma(MARK);
    let want = (f64::from(v) - 128.0).atan2(f64::from(u) - 128.0);
    let (mut pixels, mut x_sum, mut y_sum) = (0u32, 0.0, 0.0);
    for (x, y, pixel) in image.enumerate_pixels() {
        let [r, g, b] = pixel.0.map(f64::from);
        let (pu, pv) = (
            (-38.0 * r - 74.0 * g + 112.0 * b) / 256.0,
            (112.0 * r - 94.0 * g - 18.0 * b) / 256.0,
        );
        let off = (pv.atan2(pu) - want + 3.0 * std::f64::consts::PI) % (2.0 * std::f64::consts::PI)
            - std::f64::consts::PI;
        if pu.hypot(pv) > 20.0 && off.abs() < 0.2 {
            pixels += 1;
            x_sum += f64::from(x);
            y_sum += f64::from(y);
        }
    }
    let (width, height) = image.dimensions();
    let (x, y) = (
        x_sum / f64::from(pixels.max(1)),
        y_sum / f64::from(pixels.max(1)),
    );
    eprintln!("the shared picture: {pixels} px around ({x:.0}, {y:.0})");
    assert!(
        pixels > width * height / 20,
        "the shared screen is not large on the wall: {pixels} px"
    );
    assert!(
        (f64::from(width) * 0.3..f64::from(width) * 0.7).contains(&x)
            && y < f64::from(height) * 0.5,
        "the shared screen is not in the middle, above: ({x:.0}, {y:.0})"
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
