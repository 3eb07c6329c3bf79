//! The windowed client in a real room: a relay and two bots in this process, the `rotunda`
//! binary under Xvfb with Mesa's software Vulkan, a scripted 20 s stay. The viewer must decode
//! nearly everything the bots send, and its screenshot must show both bots' panels, in their
//! pattern colours, side by side in a lit room. The room is end-to-end encrypted, as by default.
//!
//! Needs `xvfb-run` and `mesa-vulkan-drivers` (the test command installs them).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{PATIENCE, hex, output_dir, spawn_bot, start_relay, window};
use rotunda_engine::BotReport;
use rotunda_engine::media::pattern::TestPattern;

/// How long the viewer stays, and when it takes its screenshot.
const STAY: &str = "20s";
const SCREENSHOT_AFTER: &str = "12s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_sees_and_hears_two_bots_in_a_lit_room() {
    let relay = start_relay(|_| {}).await;
    let dir = output_dir("room-test");
    // 640x480@30 each; longer than the viewer stays, stopped when the viewer is done.
    let bots: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|name| spawn_bot(&relay, "room", name, Duration::from_secs(120), 3))
        .collect();

    let stats = dir.join("viewer.json");
    let shot = dir.join("room.png");
    // Killed if the wait below gives up.
    let mut viewer = window(&relay.url, "room", "viewer");
    viewer
        .args(["--cert-hash", &hex(&relay.hash)])
        .args(["--duration", STAY, "--screenshot-after", SCREENSHOT_AFTER])
        // A line in Chinese, Japanese and Korean: the CJK font is fetched for it.
        .args(["--chat", "你好 こんにちは 안녕하세요"])
        .arg("--stats-json")
        .arg(&stats)
        .arg("--screenshot")
        .arg(&shot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut viewer = viewer
        .spawn()
        .expect("xvfb-run starts (apt-get install xvfb mesa-vulkan-drivers)");
    // Once the viewer has taken its screenshot (well settled in the room), carol comes in,
    // says hello and goes: the viewer plays a sound for each.
    let stderr = viewer.stderr.take().expect("stderr piped");
    let (shot_taken, mut taken) = tokio::sync::oneshot::channel();
    let reading = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let (mut log, mut shot_taken) = (String::new(), Some(shot_taken));
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("taking the screenshot")
                && let Some(tell) = shot_taken.take()
            {
                let _ = tell.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let carol = tokio::time::timeout(PATIENCE * 6, &mut taken)
        .await
        .is_ok_and(|taken| taken.is_ok())
        .then(|| spawn_bot(&relay, "room", "carol", Duration::from_secs(3), 4));
    let output = tokio::time::timeout(PATIENCE * 6, viewer.wait_with_output())
        .await
        .expect("the viewer finishes within two minutes")
        .expect("the viewer runs");
    for bot in &bots {
        bot.abort();
    }
    let log = reading.await.expect("the viewer's log is read");
    assert!(output.status.success(), "viewer failed: {log}");
    assert!(
        carol.is_some(),
        "the viewer never took its screenshot: {log}"
    );
    // Its assets (the interface font, the sounds) were found in assets/.
    let said = format!("{}{log}", String::from_utf8_lossy(&output.stdout));
    assert!(
        said.contains("the interface font is installed"),
        "the interface font was not loaded: {said}"
    );
    assert!(
        said.contains("the room's sounds are loaded"),
        "the sounds were not loaded: {said}"
    );
    assert!(
        said.contains("the font fonts/NotoSansCJK-subset.otf is installed"),
        "the CJK font was not loaded for the viewer's line: {said}"
    );

    let report: BotReport =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats written"))
            .expect("stats parse");
    check_media(&report);
    // Carol's coming and going were heard once each, her line at least (alice's and bob's
    // hellos, said as the viewer joined, are silent unless the room took long to let them be
    // said).
    let played = |name: &str| report.sounds_played.get(name).copied().unwrap_or(0);
    assert!(
        played("join") == 1 && played("leave") == 1 && (1..=3).contains(&played("chat")),
        "{:?}",
        report.sounds_played
    );
    // The room is end-to-end encrypted (as by default) and the viewer held its keys.
    assert!(report.e2ee && report.safety_code.is_some(), "{report:?}");
    assert!(
        report
            .chat_received
            .iter()
            .any(|l| l.text == "hello from alice")
            && report
                .chat_received
                .iter()
                .any(|l| l.text == "hello from bob"),
        "the bots' lines reached the viewer: {:?}",
        report.chat_received
    );
    let ids: Vec<u32> = ["alice", "bob"]
        .iter()
        .map(|n| report.peers[*n].id)
        .collect();
    check_screenshot(&shot, &ids);
    relay.stop().await;
    eprintln!("screenshot: {}", shot.display());
}

/// At least 90 % of the frames the bots sent while the viewer was there (by their sequence
/// numbers, whether they arrived or not) were decoded, all from the right sender; and the bots
/// really sent at their rate.
fn check_media(report: &BotReport) {
    // The first second goes to joining and the first keyframe.
    let present = report.seconds - 1.0;
    for name in ["alice", "bob"] {
        let peer = report
            .peers
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from {report:?}"));
        // The window's panels are small: it receives the smallest layer (15 fps) or larger.
        assert!(
            peer.video_frames_expected as f64 >= 0.8 * 15.0 * present
                && peer.audio_frames_expected as f64 >= 0.9 * 50.0 * present,
            "{name} sent too little to judge: {peer:?}"
        );
        let video = peer.video_frames_decoded as f64 / peer.video_frames_expected as f64;
        let audio = peer.audio_frames_decoded as f64 / peer.audio_frames_expected as f64;
        assert!(
            video >= 0.9,
            "{name}: video {video:.2} of the frames: {peer:?}"
        );
        assert!(
            audio >= 0.9,
            "{name}: audio {audio:.2} of the frames: {peer:?}"
        );
        assert_eq!(peer.video_frames_wrong_sender, 0, "{name}: {peer:?}");
        assert_eq!(peer.video_frames_unmarked, 0, "{name}: {peer:?}");
    }
}

/// Where a hue shows up in the picture: pixel count and mean position.
#[derive(Debug)]
struct Blob {
    pixels: u32,
    x: f64,
    y: f64,
}

/// BT.601 chroma of an sRGB pixel, as the pattern's hue is defined.
fn hue(r: u8, g: u8, b: u8) -> Option<f64> {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let u = (-38.0 * r - 74.0 * g + 112.0 * b) / 256.0;
    let v = (112.0 * r - 94.0 * g - 18.0 * b) / 256.0;
    (u.hypot(v) > 20.0).then(|| v.atan2(u).to_degrees())
}

fn find(image: &image::RgbImage, sender: u32) -> Blob {
    let (u, v) = TestPattern::chroma(sender as u16);
    let want = (f64::from(v) - 128.0)
        .atan2(f64::from(u) - 128.0)
        .to_degrees();
    let mut blob = Blob {
        pixels: 0,
        x: 0.0,
        y: 0.0,
    };
    for (x, y, pixel) in image.enumerate_pixels() {
        let [r, g, b] = pixel.0;
        if let Some(h) = hue(r, g, b) {
            let off = (h - want + 540.0) % 360.0 - 180.0;
            if off.abs() < 10.0 {
                blob.pixels += 1;
                blob.x += f64::from(x);
                blob.y += f64::from(y);
            }
        }
    }
    if blob.pixels > 0 {
        blob.x /= f64::from(blob.pixels);
        blob.y /= f64::from(blob.pixels);
    }
    blob
}

fn check_screenshot(path: &Path, ids: &[u32]) {
    let image = image::open(path).expect("screenshot is a PNG").to_rgb8();
    assert_eq!(image.dimensions(), (1280, 720));
    let blobs: Vec<Blob> = ids.iter().map(|id| find(&image, *id)).collect();
    eprintln!("panels found: {blobs:?}");
    for (id, blob) in ids.iter().zip(&blobs) {
        // A panel of about 105 x 75 px at this distance (the view between the side panels is
        // 850 px wide, and the camera keeps 80° across); the pattern covers most of it.
        assert!(
            blob.pixels > 3_500,
            "participant {id}'s panel is not in the picture: {blob:?}"
        );
        assert!(
            (150.0..450.0).contains(&blob.y),
            "participant {id}'s panel is not at eye height: {blob:?}"
        );
    }
    assert!(
        (blobs[0].x - blobs[1].x).abs() > 300.0,
        "the two panels stand apart: {blobs:?}"
    );
    // A lit room: the middle of the view (walls, floor) is neither black nor blown out.
    let mut luma = 0.0;
    let mut count = 0.0;
    for y in (100..650).step_by(5) {
        for x in (300..900).step_by(5) {
            let [r, g, b] = image.get_pixel(x, y).0;
            luma += 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b);
            count += 1.0;
        }
    }
    let luma = luma / count;
    eprintln!("mean luma of the view: {luma:.0}");
    assert!(
        (60.0..230.0).contains(&luma),
        "the room is not lit: mean luma {luma:.0}"
    );
}
