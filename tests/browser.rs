//! The browser client in a real room: the relay in this process serves the web bundle
//! (`wasm/dist`, built by `scripts/web.sh`); headless Chromium opens it twice, as `web1` with the
//! synthetic camera and tone and as `web2` with Chromium's fake camera and microphone through
//! getUserMedia, and a `rotunda bot` process joins them. After 20 s together, every one must have
//! decoded at least 80 % of every other's video and audio, every marked picture carrying its
//! sender's own marks, and received every other's chat line; the pages' screenshots are kept.
//!
//! `tests/browser/driver.mjs` (playwright-core, installed with `npm ci` when missing) drives the
//! pages and prints readiness markers the test waits on. Needs node 20+ and Debian's `chromium`
//! (`CHROMIUM` names another binary). The screenshots and reports stay in
//! `$CARGO_TARGET_DIR/tmp/browser-test/` to be looked at.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::{PATIENCE, start_relay};
use rotunda_engine::BotReport;
use tokio::sync::oneshot;

/// How long all three stay together before the pages' reports are taken.
const TOGETHER_SECONDS: u64 = 20;
/// The bot joins once the pages have; it must outlast the pages seeing it (seconds), the window,
/// the driver's 5 s frame-time sample and the screenshots. The pages' reports prove it did: the
/// bot must not be among those they saw leave.
const BOT_STAY: Duration = Duration::from_secs(TOGETHER_SECONDS + 25);
/// Backstop for the whole driver run; the driver gives up on its own after 90 s per wait.
const DRIVER_LIMIT: Duration = Duration::from_secs(360);
const ROOM: &str = "browser";
/// What every participant sends.
const VIDEO: &str = "320x240@30";
/// Smallest PNG taken for a rendered room rather than a blank page.
const MIN_SCREENSHOT_BYTES: u64 = 10 * 1024;

/// Who takes part, and whether their pictures carry their id (so misattribution is visible;
/// Chromium's fake camera draws its own picture).
const PARTICIPANTS: [(&str, bool); 3] = [("bot", true), ("web1", true), ("web2", false)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_a_bot_see_hear_and_read_each_other() {
    // Cargo runs tests in the package's directory: this checkout, even when the test binary was
    // built (and `CARGO_MANIFEST_DIR` fixed) from another sharing the target directory.
    let repo = std::env::current_dir().expect("the working directory");
    let driver_dir = repo.join("tests/browser");
    let chromium = require_tools(&repo, &driver_dir);
    let out = output_dir();
    let bundle = repo.join("wasm/dist");

    let relay = start_relay(|config| config.web_root = Some(bundle)).await;
    let page = |name: &str, media: &str| {
        let query = [
            ("room", ROOM.to_owned()),
            ("name", name.to_owned()),
            ("camera", media.to_owned()),
            ("mic", media.to_owned()),
            ("chat", greeting(name)),
            // As the bot sends: three participants drawing on two cores' CPUs (SwiftShader)
            // leave little for encoding 640x480.
            ("video", VIDEO.to_owned()),
        ]
        .iter()
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&");
        format!("{name}=http://{}/?{query}", relay.addr)
    };

    let (ready_tx, ready) = oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let mut command = Command::new("node");
    command
        .arg(driver_dir.join("driver.mjs"))
        .arg("--out")
        .arg(&out)
        .args(["--seconds", &TOGETHER_SECONDS.to_string()])
        .args(["--expect", "bot"])
        .args(["--chromium", &chromium])
        .args(["--page", &page("web1", "synthetic")])
        .args(["--page", &page("web2", "default")]);
    let driver = Process::spawn("driver", command, move |line| {
        if line.starts_with("ready ")
            && let Some(tx) = ready_tx.take()
        {
            let _ = tx.send(());
        }
    });

    // The bot comes in once both pages are in the room, so it is there for their whole window.
    if !matches!(tokio::time::timeout(DRIVER_LIMIT, ready).await, Ok(Ok(()))) {
        let output = driver.finish(PATIENCE).await;
        panic!("the pages did not join the room:\n{}", output.stderr);
    }
    let bot_stats = out.join("bot.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rotunda"));
    command
        .args(["bot", "--relay", &relay.url])
        .args(["--room", ROOM, "--name", "bot"])
        .args(["--duration", &format!("{}s", BOT_STAY.as_secs())])
        .args(["--video", VIDEO, "--chat", &greeting("bot")])
        .arg("--stats-json")
        .arg(&bot_stats);
    let bot = Process::spawn("bot", command, |_| {});

    let driven = driver.finish(DRIVER_LIMIT).await;
    assert!(
        driven.status.is_some_and(|s| s.success()),
        "the driver failed ({:?}):\n{}",
        driven.status,
        driven.stderr
    );
    let botted = bot.finish(BOT_STAY + PATIENCE).await;
    assert!(
        botted.status.is_some_and(|s| s.success()),
        "the bot failed ({:?}):\n{}",
        botted.status,
        botted.stderr
    );
    relay.stop().await;

    let reports: BTreeMap<&str, BotReport> = PARTICIPANTS
        .iter()
        .map(|(name, _)| (*name, read_report(&out.join(format!("{name}.json")))))
        .collect();
    println!("{}", summary(&reports));
    println!("frame time (requestAnimationFrame intervals):");
    let frame_times = driven
        .stdout
        .lines()
        .filter(|l| l.starts_with("frame-time"));
    for line in frame_times {
        println!("  {line}");
    }

    let mut failures = check_reports(&reports);
    for (name, _) in PARTICIPANTS.iter().filter(|(name, _)| *name != "bot") {
        let shot = out.join(format!("{name}.png"));
        match std::fs::metadata(&shot) {
            Ok(meta) if meta.len() > MIN_SCREENSHOT_BYTES => {
                println!("screenshot: {} ({} KB)", shot.display(), meta.len() / 1024);
            }
            Ok(meta) => failures.push(format!(
                "{}: {} bytes, a blank page?",
                shot.display(),
                meta.len()
            )),
            Err(error) => failures.push(format!("{}: {error}", shot.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn greeting(name: &str) -> String {
    format!("hello from {name}")
}

/// Fails early, saying what to install, when the bundle, node or Chromium is missing; installs the
/// driver's npm packages when they are. Returns the Chromium binary.
fn require_tools(repo: &Path, driver_dir: &Path) -> String {
    let index = repo.join("wasm/dist/index.html");
    assert!(
        index.is_file(),
        "{} is missing: build the browser client with scripts/web.sh",
        index.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node (20 or later) is needed to drive the browser: {node:?}"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: apt-get install chromium (or set CHROMIUM)"
    );
    if !driver_dir.join("node_modules/playwright-core").is_dir() {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(driver_dir)
            .output()
            .expect("npm runs");
        assert!(
            npm.status.success(),
            "npm ci in {} failed:\n{}",
            driver_dir.display(),
            String::from_utf8_lossy(&npm.stderr)
        );
    }
    chromium
}

/// Kept after the test (in cargo's target directory) so the screenshots can be looked at; emptied
/// first, so nothing from an earlier run passes for this one's.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_report(path: &Path) -> BotReport {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not in the shape of `rotunda bot --stats-json`: {e}\n{text}",
            path.display()
        )
    })
}

fn ratio(decoded: u64, expected: u64) -> f64 {
    decoded as f64 / expected.max(1) as f64
}

fn fraction(decoded: u64, expected: u64) -> String {
    format!("{decoded}/{expected}")
}

/// One row per (receiver, sender).
fn summary(reports: &BTreeMap<&str, BotReport>) -> String {
    let mut out = format!(
        "{:<14} {:>23} {:>23} {:>17}\n",
        "receiver<-from", "video decoded/expected", "audio decoded/expected", "p50 video/audio"
    );
    for (receiver, report) in reports {
        for (sender, peer) in &report.peers {
            let (video, audio) = (
                fraction(peer.video_frames_decoded, peer.video_frames_expected),
                fraction(peer.audio_frames_decoded, peer.audio_frames_expected),
            );
            out.push_str(&format!(
                "{:<14} {video:>13} {:>7.1} % {audio:>13} {:>7.1} % {:>7.0} /{:>5.0} ms\n",
                format!("{receiver}<-{sender}"),
                100.0 * ratio(peer.video_frames_decoded, peer.video_frames_expected),
                100.0 * ratio(peer.audio_frames_decoded, peer.audio_frames_expected),
                peer.video_latency_ms_p50,
                peer.audio_latency_ms_p50,
            ));
        }
    }
    out
}

/// Everything wrong with the reports, one line each.
fn check_reports(reports: &BTreeMap<&str, BotReport>) -> Vec<String> {
    let mut failures = Vec::new();
    for (receiver, report) in reports {
        if report.name != *receiver || report.room != ROOM {
            failures.push(format!(
                "{receiver}'s report is for {} in {}",
                report.name, report.room
            ));
        }
        if let Some(error) = &report.error {
            failures.push(format!("{receiver} ended early: {error}"));
        }
        if *receiver != "bot" && report.left.iter().any(|name| name == "bot") {
            failures.push(format!(
                "the bot left before {receiver}'s window ended: raise BOT_STAY"
            ));
        }
        for (sender, marked) in PARTICIPANTS.iter().filter(|(name, _)| name != receiver) {
            let Some(peer) = report.peers.get(*sender) else {
                failures.push(format!("{receiver} never saw {sender}"));
                continue;
            };
            let pair = format!("{receiver}<-{sender}");
            for (kind, decoded, expected) in [
                (
                    "video",
                    peer.video_frames_decoded,
                    peer.video_frames_expected,
                ),
                (
                    "audio",
                    peer.audio_frames_decoded,
                    peer.audio_frames_expected,
                ),
            ] {
                let share = ratio(decoded, expected);
                if expected == 0 || share < 0.8 {
                    failures.push(format!(
                        "{pair}: decoded {decoded} of {expected} {kind} frames ({:.1} %): {peer:?}",
                        100.0 * share
                    ));
                }
            }
            if *marked && peer.video_frames_wrong_sender > 0 {
                failures.push(format!(
                    "{pair}: {} pictures without {sender}'s marks",
                    peer.video_frames_wrong_sender
                ));
            }
            let line = greeting(sender);
            if !report
                .chat_received
                .iter()
                .any(|l| l.from == *sender && l.text == line)
            {
                failures.push(format!(
                    "{receiver} missed {line:?}: {:?}",
                    report.chat_received
                ));
            }
        }
    }
    failures
}

/// What a finished child said.
struct Output {
    /// `None` when it had to be killed.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// A child process whose output is printed (prefixed by its name) and kept as it comes; killed if
/// the test ends before it does.
struct Process {
    name: &'static str,
    child: Child,
    stdout: oneshot::Receiver<String>,
    stderr: oneshot::Receiver<String>,
}

impl Process {
    /// Starts `command`; `on_line` sees each line of its stdout.
    fn spawn(
        name: &'static str,
        mut command: Command,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = read_lines(name, false, child.stdout.take().expect("piped"), on_line);
        let stderr = read_lines(name, true, child.stderr.take().expect("piped"), |_| {});
        Self {
            name,
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for it to close its output and exit, killing it after `within`.
    async fn finish(mut self, within: Duration) -> Output {
        let mut stdout = std::mem::replace(&mut self.stdout, oneshot::channel().1);
        let mut stderr = std::mem::replace(&mut self.stderr, oneshot::channel().1);
        let closed = tokio::time::timeout(within, async {
            let out = (&mut stdout).await.unwrap_or_default();
            let err = (&mut stderr).await.unwrap_or_default();
            (out, err)
        })
        .await;
        let (stdout, stderr, status) = match closed {
            Ok((out, err)) => {
                let status = self.child.wait().expect("waits");
                (out, err, Some(status))
            }
            Err(_) => {
                eprintln!("[{}] still running after {within:?}: killed", self.name);
                let _ = self.child.kill();
                let _ = self.child.wait();
                (
                    stdout.await.unwrap_or_default(),
                    stderr.await.unwrap_or_default(),
                    None,
                )
            }
        };
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Prints (to stderr when `error`) and collects `from` line by line on a thread; the whole text
/// once it closes.
fn read_lines(
    name: &'static str,
    error: bool,
    from: impl Read + Send + 'static,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> oneshot::Receiver<String> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if error {
                eprintln!("[{name}] {line}");
            } else {
                println!("[{name}] {line}");
            }
            on_line(&line);
            all.push_str(&line);
            all.push('\n');
        }
        let _ = tx.send(all);
    });
    rx
}
