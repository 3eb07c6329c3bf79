//! The browser client in a real room: the relay in this process serves the web bundle
//! (`wasm/dist`, built by `scripts/web.sh`); Chromium opens it, and a `rotunda bot` process joins.
//!
//! - The room: two headless pages, `web1` with the synthetic camera and tone and `web2` with
//!   Chromium's fake camera and microphone through getUserMedia, and the bot; everyone sends
//!   640x480@30. After 20 s together every one must have decoded at least 95 % of every other's
//!   video and 98 % of its audio (of what was sent while it was there), with audio at most
//!   150 ms late at the median and 300 ms at p95, no picture with another sender's marks, every
//!   chat line (each said once everyone is in the room); the room end-to-end encrypted (as by
//!   default) with one safety code for all; the bundle must have cost at most 8 MB on the wire. Once with the pages drawing
//!   as the client paces them on a software renderer, once with `web1` drawing back to back: the
//!   call runs in a worker and must not care.
//! - A shared screen: `web1` shares Chromium's fake display (getDisplayMedia) from the start;
//!   `web2` and the bot must decode at least 90 % of its frames.
//! - A hidden tab: one page (headful Chromium under Xvfb: headless keeps every tab visible) goes
//!   behind another tab for 20 s with the bot in the room; it must keep hearing and being heard.
//!
//! `tests/browser/driver.mjs` (playwright-core, installed with `npm ci` when missing) drives the
//! pages and prints markers the test waits on. Needs node 20+, Debian's `chromium` (`CHROMIUM`
//! names another binary) and, for the hidden tab, `xvfb-run`. Screenshots and reports stay in
//! `$CARGO_TARGET_DIR/tmp/browser-test/<test>/` to be looked at.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::{PATIENCE, start_relay};
use rotunda_engine::{BotReport, PeerReport};
use tokio::sync::{Mutex, oneshot};

/// How long everyone stays together before the pages' reports are taken.
const TOGETHER_SECONDS: u64 = 20;
/// The bot joins once the pages have and stays until the driver is done with them (the pages'
/// window, the 5 s frame-time sample, the screenshots), then is asked to leave (SIGTERM: it
/// leaves and writes its report); this is only its limit. The pages' reports prove it stayed:
/// the bot must not be among those they saw leave.
const BOT_LIMIT: Duration = Duration::from_secs(600);
/// Backstop for the whole driver run; the driver gives up on its own after 90 s per wait.
const DRIVER_LIMIT: Duration = Duration::from_secs(360);
/// What every participant sends.
const VIDEO: &str = "640x480@30";
/// Smallest PNG taken for a rendered room rather than a blank page.
const MIN_SCREENSHOT_BYTES: u64 = 10 * 1024;
/// The bundle's cost on the wire at most (the module is 36 MB unpacked).
const MAX_WIRE_BYTES: u64 = 8_000_000;
/// What every pair must reach.
const MIN_VIDEO: f64 = 0.95;
const MIN_AUDIO: f64 = 0.98;
const MAX_AUDIO_P50_MS: f64 = 150.0;
const MAX_AUDIO_P95_MS: f64 = 300.0;

/// One browser test at a time: two Chromiums on two cores are all this machine takes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A page: its name, whether its camera and microphone are the synthetic ones (its pictures
/// then carry its id), and more query parameters.
struct PageSpec {
    name: &'static str,
    synthetic: bool,
    query: &'static [(&'static str, &'static str)],
}

/// What a scenario runs.
struct Scenario {
    test: &'static str,
    room: &'static str,
    pages: Vec<PageSpec>,
    /// Pages put behind another tab once everyone is present.
    hide: &'static [&'static str],
}

/// What a scenario left.
struct Outcome {
    reports: BTreeMap<String, BotReport>,
    out: PathBuf,
    driver: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_a_bot_see_hear_and_read_each_other() {
    let _one = ONE_AT_A_TIME.lock().await;
    let outcome = run(Scenario {
        test: "room",
        room: "browser",
        pages: two_pages(&[], &[]),
        hide: &[],
    })
    .await;
    check_room(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_keeps_time_while_pages_draw_back_to_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let outcome = run(Scenario {
        test: "continuous",
        room: "continuous",
        pages: two_pages(&[("frames", "continuous")], &[]),
        hide: &[],
    })
    .await;
    check_room(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_tab_keeps_sending_and_receiving_audio() {
    let _one = ONE_AT_A_TIME.lock().await;
    let outcome = run(Scenario {
        test: "hidden",
        room: "hidden",
        pages: vec![PageSpec {
            name: "web1",
            synthetic: true,
            query: &[],
        }],
        hide: &["web1"],
    })
    .await;
    let hidden = read_json(&outcome.out.join("web1.hidden.json"));
    assert_eq!(hidden["visibility"], "hidden", "{hidden}");
    let seconds = hidden["seconds"].as_f64().unwrap_or_default();
    assert!(seconds >= TOGETHER_SECONDS as f64, "hidden {seconds} s");
    // What the hidden page decoded of the bot while hidden.
    let peer = |side: &str| -> PeerReport {
        serde_json::from_value(hidden[side]["peers"]["bot"].clone()).unwrap_or_default()
    };
    let (from, to) = (peer("from"), peer("to"));
    let decoded = to.audio_frames_decoded - from.audio_frames_decoded;
    let expected = to.audio_frames_expected - from.audio_frames_expected;
    println!("web1 (hidden {seconds:.1} s) <- bot: audio {decoded}/{expected}");
    assert!(
        expected as f64 >= 45.0 * seconds,
        "the bot's audio kept coming: {expected} in {seconds:.1} s"
    );
    assert!(
        decoded as f64 >= MIN_AUDIO * expected as f64,
        "the hidden page kept hearing: {decoded} of {expected}"
    );
    // What the bot heard of the hidden page (it was hidden most of the bot's stay).
    let bot = &outcome.reports["bot"].peers["web1"];
    println!(
        "bot <- web1 (hidden): audio {}/{}",
        bot.audio_frames_decoded, bot.audio_frames_expected
    );
    assert!(bot.audio_frames_expected as f64 >= 45.0 * seconds);
    assert!(
        bot.audio_frames_decoded as f64 >= MIN_AUDIO * bot.audio_frames_expected as f64,
        "the hidden page kept being heard: {bot:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_shares_a_screen_that_the_other_page_and_the_bot_show() {
    let _one = ONE_AT_A_TIME.lock().await;
    let outcome = run(Scenario {
        test: "screen",
        room: "screen",
        pages: two_pages(&[("share", "screen")], &[]),
        hide: &[],
    })
    .await;
    // web1 shared Chromium's fake display (getDisplayMedia) from the start, 5 pictures a second.
    let sent = &outcome.reports["web1"];
    println!(
        "web1 shared {:?}: {} frames",
        sent.screen_sent, sent.screen_frames_sent
    );
    assert!(
        sent.screen_sent.is_some(),
        "web1 shared no screen: {sent:?}"
    );
    let mut failures = Vec::new();
    for viewer in ["web2", "bot"] {
        let peer = &outcome.reports[viewer].peers["web1"];
        println!(
            "{viewer} <- web1's screen: {} of {} frames, {:?}",
            peer.screen_frames_decoded, peer.screen_frames_expected, peer.screen_size
        );
        if (peer.screen_frames_expected as f64) < 0.8 * 5.0 * TOGETHER_SECONDS as f64
            || (peer.screen_frames_decoded as f64) < 0.9 * peer.screen_frames_expected as f64
            || peer.screen_size.is_none()
        {
            failures.push(format!("{viewer} <- web1's screen: {peer:?}"));
        }
    }
    let shot = outcome.out.join("web2.png");
    match std::fs::metadata(&shot) {
        Ok(meta) if meta.len() > MIN_SCREENSHOT_BYTES => println!("screenshot: {}", shot.display()),
        _ => failures.push(format!("{}: no screenshot of the room", shot.display())),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `web1` on the synthetic camera and tone, `web2` on Chromium's fake devices, each with more
/// query parameters.
fn two_pages(
    web1: &'static [(&'static str, &'static str)],
    web2: &'static [(&'static str, &'static str)],
) -> Vec<PageSpec> {
    vec![
        PageSpec {
            name: "web1",
            synthetic: true,
            query: web1,
        },
        PageSpec {
            name: "web2",
            synthetic: false,
            query: web2,
        },
    ]
}

/// The relay, the pages and the bot, as `scenario` says; their reports.
async fn run(scenario: Scenario) -> Outcome {
    // Cargo runs tests in the package's directory: this checkout, even when the test binary was
    // built (and `CARGO_MANIFEST_DIR` fixed) from another sharing the target directory.
    let repo = std::env::current_dir().expect("the working directory");
    let driver_dir = repo.join("tests/browser");
    let chromium = require_tools(&repo, &driver_dir);
    let out = common::output_dir(&format!("browser-test/{}", scenario.test));
    let bundle = repo.join("wasm/dist");

    let relay = start_relay(|config| config.web_root = Some(bundle)).await;
    let page = |spec: &PageSpec| {
        let media = if spec.synthetic {
            "synthetic"
        } else {
            "default"
        };
        let mut query = vec![
            ("room", scenario.room.to_owned()),
            ("name", spec.name.to_owned()),
            ("camera", media.to_owned()),
            ("mic", media.to_owned()),
            ("chat", greeting(spec.name)),
            // Said once everyone (the pages and the bot) is in the room's group.
            ("chat_with", (scenario.pages.len() + 1).to_string()),
            ("video", VIDEO.to_owned()),
        ];
        query.extend(spec.query.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let query = query
            .iter()
            .map(|(key, value)| format!("{key}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        format!("{}=http://{}/?{query}", spec.name, relay.addr)
    };

    let (ready_tx, ready) = oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let headful = !scenario.hide.is_empty();
    // Run as root (CI, containers), Chromium raises its GPU threads to nice -8 (seen in `ps`);
    // drawing on the CPU, they would then take the CPU from every other thread here — the pages'
    // call workers, the bot, the relay. A user's Chromium cannot raise itself: without
    // CAP_SYS_NICE, neither can this one.
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--bounding-set", "-sys_nice", "--"]);
        command
    } else {
        Command::new("env")
    };
    if headful {
        // A hidden tab needs a browser with windows: on a virtual screen.
        command.args(["xvfb-run", "-a", "-s", "-screen 0 1280x720x24"]);
    }
    command
        .arg("node")
        .arg(driver_dir.join("driver.mjs"))
        .arg("--out")
        .arg(&out)
        .args(["--seconds", &TOGETHER_SECONDS.to_string()])
        .args(["--expect", "bot"])
        .args(["--chromium", &chromium]);
    if headful {
        command.arg("--headful");
    }
    for name in scenario.hide {
        command.args(["--hide", name]);
    }
    for spec in &scenario.pages {
        command.args(["--page", &page(spec)]);
    }
    let driver = Process::spawn("driver", command, move |line| {
        if line.starts_with("ready ")
            && let Some(tx) = ready_tx.take()
        {
            let _ = tx.send(());
        }
    });

    // The bot comes in once the pages are in the room, so it is there for their whole window.
    if !matches!(tokio::time::timeout(DRIVER_LIMIT, ready).await, Ok(Ok(()))) {
        let output = driver.finish(PATIENCE).await;
        panic!("the pages did not join the room:\n{}", output.stderr);
    }
    let bot_stats = out.join("bot.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rotunda"));
    command
        .args(["bot", "--relay", &relay.url])
        .args(["--room", scenario.room, "--name", "bot"])
        .args(["--duration", &format!("{}s", BOT_LIMIT.as_secs())])
        .args(["--video", VIDEO, "--chat", &greeting("bot")])
        .args(["--chat-with", &(scenario.pages.len() + 1).to_string()])
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
    bot.ask_to_leave();
    let botted = bot.finish(PATIENCE).await;
    assert!(
        botted.status.is_some_and(|s| s.success()),
        "the bot failed ({:?}):\n{}",
        botted.status,
        botted.stderr
    );
    relay.stop().await;

    let names = std::iter::once("bot").chain(scenario.pages.iter().map(|p| p.name));
    let reports: BTreeMap<String, BotReport> = names
        .map(|name| {
            (
                name.to_owned(),
                read_report(&out.join(format!("{name}.json"))),
            )
        })
        .collect();
    println!("{}", summary(&reports));
    for line in driven.stdout.lines().filter(|l| {
        l.starts_with("frame-time") || l.starts_with("load ") || l.starts_with("hidden ")
    }) {
        println!("  {line}");
    }
    Outcome {
        reports,
        out,
        driver: driven.stdout,
    }
}

/// The room's checks: every pair's media, latency, marks and chat; the bundle's cost; the pages'
/// screenshots.
fn check_room(outcome: &Outcome) {
    let mut failures = check_reports(&outcome.reports);
    // The bot came in after the pages had settled in the room: each page played the room's
    // sounds (fetched beside the bundle) for its coming and its hello.
    for (name, report) in outcome.reports.iter().filter(|(name, _)| *name != "bot") {
        let played = |sound: &str| report.sounds_played.get(sound).copied().unwrap_or(0);
        if played("join") < 1 || played("chat") < 1 {
            failures.push(format!(
                "{name} played no sound for the bot: {:?}",
                report.sounds_played
            ));
        }
    }
    for line in outcome.driver.lines().filter(|l| l.starts_with("load ")) {
        // load NAME wire N bytes unpacked N bytes first-frame N ms
        let words: Vec<&str> = line.split_whitespace().collect();
        let wire: u64 = words
            .get(3)
            .and_then(|w| w.parse().ok())
            .unwrap_or(u64::MAX);
        if wire > MAX_WIRE_BYTES {
            failures.push(format!(
                "{line}: more than {MAX_WIRE_BYTES} bytes on the wire"
            ));
        }
    }
    for name in outcome.reports.keys().filter(|name| *name != "bot") {
        let shot = outcome.out.join(format!("{name}.png"));
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

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
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
        // Bounded: a registry that does not answer fails the test instead of holding it.
        let npm = Command::new("timeout")
            .args(["300", "npm", "ci", "--no-audit", "--no-fund"])
            .current_dir(driver_dir)
            .output()
            .expect("npm runs");
        assert!(
            npm.status.success(),
            "npm ci in {} failed ({}; 124 is a timeout after 300 s):\n{}",
            driver_dir.display(),
            npm.status,
            String::from_utf8_lossy(&npm.stderr)
        );
    }
    chromium
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

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("nothing at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn read_report(path: &Path) -> BotReport {
    serde_json::from_value(read_json(path)).unwrap_or_else(|e| {
        panic!(
            "{} is not in the shape of `rotunda bot --stats-json`: {e}",
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
fn summary(reports: &BTreeMap<String, BotReport>) -> String {
    let mut out = format!(
        "{:<14} {:>23} {:>23} {:>17} {:>12}\n",
        "receiver<-from",
        "video decoded/expected",
        "audio decoded/expected",
        "p50 video/audio",
        "p95 audio"
    );
    for (receiver, report) in reports {
        for (sender, peer) in &report.peers {
            let (video, audio) = (
                fraction(peer.video_frames_decoded, peer.video_frames_expected),
                fraction(peer.audio_frames_decoded, peer.audio_frames_expected),
            );
            out.push_str(&format!(
                "{:<14} {video:>13} {:>7.1} % {audio:>13} {:>7.1} % {:>7.0} /{:>5.0} ms {:>8.0} ms\n",
                format!("{receiver}<-{sender}"),
                100.0 * ratio(peer.video_frames_decoded, peer.video_frames_expected),
                100.0 * ratio(peer.audio_frames_decoded, peer.audio_frames_expected),
                peer.video_latency_ms_p50,
                peer.audio_latency_ms_p50,
                peer.audio_latency_ms_p95,
            ));
        }
        out.push_str(&format!(
            "{receiver}: sent {} video, {} decode errors, safety code {}, {} frames not opened\n",
            report.video_sent.as_deref().unwrap_or("no"),
            report.decode_errors,
            report.safety_code.as_deref().unwrap_or("none"),
            report.frames_not_opened
        ));
    }
    out
}

/// Everything wrong with the reports, one line each.
fn check_reports(reports: &BTreeMap<String, BotReport>) -> Vec<String> {
    let mut failures = Vec::new();
    // End-to-end encrypted (as by default), everyone with the same safety code. The pages
    // leave together, their last codes alike; the bot, staying on, moved to later epochs: it
    // shows the pages' last code among its own.
    let pages: std::collections::BTreeSet<_> = reports
        .iter()
        .filter(|(name, _)| *name != "bot")
        .map(|(_, r)| r.safety_code.clone())
        .collect();
    let shared = pages.iter().next().cloned().flatten();
    let bot_saw = |code: &String| {
        reports
            .get("bot")
            .is_none_or(|bot| bot.safety_codes.contains(code))
    };
    if reports.values().any(|r| !r.e2ee)
        || pages.len() != 1
        || !shared.as_ref().is_some_and(bot_saw)
    {
        failures.push(format!(
            "not one safety code for all: {:?}",
            reports
                .iter()
                .map(|(name, r)| (name, r.e2ee, &r.safety_code, &r.safety_codes))
                .collect::<Vec<_>>()
        ));
    }
    for (receiver, report) in reports {
        if report.name != *receiver {
            failures.push(format!("{receiver}'s report is {}'s", report.name));
        }
        if let Some(error) = &report.error {
            failures.push(format!("{receiver} ended early: {error}"));
        }
        if report.video_sent.as_deref() != Some(VIDEO) {
            failures.push(format!(
                "{receiver} sent {:?} instead of {VIDEO}",
                report.video_sent
            ));
        }
        if report.decode_errors > 0 {
            failures.push(format!(
                "{receiver}: {} decode errors",
                report.decode_errors
            ));
        }
        if receiver != "bot" && report.left.iter().any(|name| name == "bot") {
            failures.push(format!("the bot left before {receiver}'s window ended"));
        }
        for sender in reports.keys().filter(|name| *name != receiver) {
            let Some(peer) = report.peers.get(sender) else {
                failures.push(format!("{receiver} never saw {sender}"));
                continue;
            };
            let pair = format!("{receiver}<-{sender}");
            for (kind, decoded, expected, least) in [
                (
                    "video",
                    peer.video_frames_decoded,
                    peer.video_frames_expected,
                    MIN_VIDEO,
                ),
                (
                    "audio",
                    peer.audio_frames_decoded,
                    peer.audio_frames_expected,
                    MIN_AUDIO,
                ),
            ] {
                let share = ratio(decoded, expected);
                if expected == 0 || share < least {
                    failures.push(format!(
                        "{pair}: decoded {decoded} of {expected} {kind} frames ({:.1} %; {receiver}: the relay's estimate {:?} kb/s, {} frames not opened, added again {} times, {} reconnections)",
                        100.0 * share,
                        report.link_kbps,
                        report.frames_not_opened,
                        report.group_rejoins,
                        report.reconnections.len()
                    ));
                }
            }
            if peer.audio_latency_ms_p50 > MAX_AUDIO_P50_MS
                || peer.audio_latency_ms_p95 > MAX_AUDIO_P95_MS
            {
                failures.push(format!(
                    "{pair}: audio {:.0} ms late at the median, {:.0} ms at p95",
                    peer.audio_latency_ms_p50, peer.audio_latency_ms_p95
                ));
            }
            // Every picture is either its sender's (marked) or unmarked (a real camera): never
            // someone else's.
            if peer.video_frames_wrong_sender > 0 {
                failures.push(format!(
                    "{pair}: {} pictures with someone else's marks",
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

    /// Asks it to leave (SIGTERM), as a user's Ctrl-C would.
    fn ask_to_leave(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(
            sent.as_ref().is_ok_and(|s| s.success()),
            "{} could not be asked to leave: {sent:?}",
            self.name
        );
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
                // Its output closed: it has exited, or is about to.
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
