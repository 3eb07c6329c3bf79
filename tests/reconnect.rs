//! A lost relay costs seconds, not a meeting: the relay runs as a process of its own, a window
//! (the `rotunda` binary under Xvfb) and a `rotunda bot` meet in it; the relay is killed (no
//! goodbye to anyone) and started again on the same port two seconds later. Both must notice,
//! rejoin by themselves, and exchange media again within 3 s of the relay answering; the window's
//! scripted run must end cleanly, not with an error.
//!
//! Needs `xvfb-run` and `mesa-vulkan-drivers` (the test command installs them), and the relay's
//! binary beside the client's (`cargo test --workspace` builds both).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{PATIENCE, output_dir};
use rotunda_engine::BotReport;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long the window and the bot stay (they are killed relays and rejoins apart).
const STAY: Duration = Duration::from_secs(26);
/// How long the relay stays down.
const DOWN: Duration = Duration::from_secs(2);
/// How soon after the relay answers again both must be exchanging media.
const BACK_WITHIN_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_and_a_bot_rejoin_a_restarted_relay_within_seconds() {
    let dir = output_dir("reconnect-test");
    let relay_bin = sibling("rotunda-relay");
    let (mut relay, url) = start_relay(&relay_bin, "127.0.0.1:0").await;
    let addr = url.trim_start_matches("https://").to_owned();

    let window_stats = dir.join("window.json");
    // No certificate hash: a loopback relay's is fetched on every try (a restarted relay has a
    // new dev certificate).
    let mut window = common::window(&url, "blip", "window");
    window
        .args(["--video", "320x240@30"])
        .args(["--duration", &format!("{}s", STAY.as_secs())])
        .arg("--stats-json")
        .arg(&window_stats);
    let window = window.spawn().expect("xvfb-run starts");

    let bot_stats = dir.join("bot.json");
    let mut bot = Command::new(env!("CARGO_BIN_EXE_rotunda"));
    bot.args(["bot", "--relay", &url, "--room", "blip", "--name", "bot"])
        .args(["--video", "320x240@30"])
        .args(["--duration", &format!("{}s", STAY.as_secs())])
        .arg("--stats-json")
        .arg(&bot_stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut bot = bot.spawn().expect("the bot starts");
    let mut status = lines(bot.stdout.take().expect("piped"));

    // Both in the room, media flowing: the bot sees the window's video.
    wait_line(&mut status, |line| {
        line.contains("window: video") && !line.contains("video 0 fps")
    })
    .await;

    // The relay dies without a word to anyone, and comes back on the same port.
    let killed_at = now_ms();
    relay.kill().await.expect("kills the relay");
    tokio::time::sleep(DOWN).await;
    let (restarted, again) = start_relay(&relay_bin, &addr).await;
    let answered_at = now_ms();
    assert_eq!(again, url, "the same address");
    relay = restarted;

    // The bot says it is back, and sees the window's video again.
    wait_line(&mut status, |line| line.contains("back in the room")).await;
    wait_line(&mut status, |line| {
        line.contains("window: video") && !line.contains("video 0 fps")
    })
    .await;

    let window_ok = finish(window, STAY + PATIENCE).await;
    let bot_ok = finish(bot, STAY + PATIENCE).await;
    drop(relay);
    assert!(window_ok, "the window's scripted run ended with an error");
    assert!(bot_ok, "the bot ended with an error");

    let mut figures = Vec::new();
    for (name, path, other) in [
        ("window", &window_stats, "bot"),
        ("bot", &bot_stats, "window"),
    ] {
        let report: BotReport = serde_json::from_str(
            &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}'s stats: {e}")),
        )
        .unwrap_or_else(|e| panic!("{name}'s stats: {e}"));
        assert_eq!(report.error, None, "{name} ended well");
        let back = report
            .reconnections
            .iter()
            .find(|r| r.lost_at_ms >= killed_at)
            .unwrap_or_else(|| panic!("{name} never noticed the relay go: {report:#?}"));
        let noticed = back.lost_at_ms - killed_at;
        let rejoined = back
            .rejoined_at_ms
            .unwrap_or_else(|| panic!("{name} never got back in: {back:?}"));
        let media = back
            .first_media_at_ms
            .unwrap_or_else(|| panic!("{name} got no media after rejoining: {back:?}"));
        let line = format!(
            "{name}: noticed the loss {noticed} ms after the kill; rejoined {} ms and got media \
             {} ms after the relay answered ({} tries)",
            rejoined.saturating_sub(answered_at),
            media.saturating_sub(answered_at),
            back.attempts
        );
        println!("{line}");
        figures.push(line);
        assert!(
            noticed <= 3_000,
            "{name} noticed the dead relay only after {noticed} ms"
        );
        assert!(
            media <= answered_at + BACK_WITHIN_MS,
            "{name} was back and exchanging media only {} ms after the relay answered",
            media.saturating_sub(answered_at)
        );
        // Everyone was seen again after the restart, under the same name.
        let peer = &report.peers[other];
        assert!(
            peer.video_frames_decoded > 0 && peer.audio_frames_decoded > 0,
            "{name} <- {other}: {peer:?}"
        );
    }
    std::fs::write(dir.join("figures.txt"), figures.join("\n")).expect("writes the figures");
}

/// Waits at most `within` for the child to exit; whether it succeeded. One that does not exit in
/// time is killed and counts as failed.
async fn finish(mut child: Child, within: Duration) -> bool {
    match tokio::time::timeout(within, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            let _ = child.kill().await;
            false
        }
    }
}

/// Starts the relay's binary on `listen`; returns it and its URL once it says it serves.
async fn start_relay(binary: &Path, listen: &str) -> (Child, String) {
    let mut child = Command::new(binary)
        .args(["--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
    let mut out = lines(child.stdout.take().expect("piped"));
    let line = wait_line(&mut out, |line| {
        line.starts_with("rotunda-relay serving on ")
    })
    .await;
    let url = line
        .trim_start_matches("rotunda-relay serving on ")
        .to_owned();
    (child, url)
}

/// The lines of a child's output, as they come.
fn lines(from: tokio::process::ChildStdout) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line `pick` accepts, within [`PATIENCE`].
async fn wait_line(
    lines: &mut mpsc::UnboundedReceiver<String>,
    pick: impl Fn(&str) -> bool,
) -> String {
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.recv().await {
            if pick(&line) {
                return line;
            }
        }
        panic!("the output ended before the awaited line");
    })
    .await
    .expect("the awaited line came in time")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A binary built beside this package's (`cargo test --workspace` builds the relay's too).
fn sibling(name: &str) -> PathBuf {
    let client = Path::new(env!("CARGO_BIN_EXE_rotunda"));
    let path = client.with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with cargo build -p rotunda-server",
        path.display()
    );
    path
}
