//! What the client's integration tests share: a relay on a free loopback port, and bots (the
//! engine without a window) to put in it.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rotunda_engine::handle::native::run_bot;
use rotunda_engine::{BotReport, CallConfig, Error, JoinOptions};
pub use rotunda_server::Running as TestRelay;
use rotunda_server::{Config, Relay};
use tokio::task::JoinHandle;

/// Longest any single wait in these tests may take before it counts as a failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Starts the real relay in this process on a free port, with the defaults changed by
/// `configure`.
pub async fn start_relay(configure: impl FnOnce(&mut Config)) -> TestRelay {
    let mut config = Config::on(SocketAddr::from(([127, 0, 0, 1], 0)));
    configure(&mut config);
    Relay::bind(config).await.expect("relay binds").spawn()
}

/// Join options for `relay`'s `room`, its certificate pinned, end-to-end encrypted (as by
/// default).
pub fn join(relay: &TestRelay, room: &str, name: &str) -> JoinOptions {
    JoinOptions {
        relay: relay.url.clone(),
        cert_hash: Some(relay.hash),
        room: room.into(),
        name: name.into(),
        token: None,
        e2ee: true,
    }
}

/// A bot (the synthetic pattern and tone) in `relay`'s `room`, saying hello once `people` are
/// in it (so that each of them can read it).
pub fn spawn_bot(
    relay: &TestRelay,
    room: &str,
    name: &str,
    stay: Duration,
    people: usize,
) -> JoinHandle<Result<BotReport, Error>> {
    let mut config = CallConfig::new(join(relay, room, name));
    config.duration = Some(stay);
    config.chat = vec![format!("hello from {name}")];
    config.chat_with = people;
    tokio::spawn(run_bot(config, false))
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// An empty directory for a test's reports and screenshots, kept after it (in cargo's target
/// directory) to be looked at; nothing from an earlier run can pass for this one's.
pub fn output_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// The client's window on a virtual screen, as `name` in `room` at `relay` with the synthetic
/// camera and microphone and no speakers; killed when dropped. Its output goes nowhere unless
/// the caller says otherwise.
pub fn window(relay: &str, room: &str, name: &str) -> tokio::process::Command {
    let mut window = tokio::process::Command::new("xvfb-run");
    window
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(env!("CARGO_BIN_EXE_rotunda"))
        .args(["--relay", relay, "--room", room, "--name", name])
        .args(["--camera", "synthetic", "--mic", "synthetic"])
        .args(["--speakers", "none"])
        .env("WGPU_BACKEND", "vulkan")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    window
}
