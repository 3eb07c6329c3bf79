//! What the client's integration tests share: a relay on a free loopback port, and bots (the
//! engine without a window) to put in it.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

use std::net::SocketAddr;
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

/// Join options for `relay`'s `room`, its certificate pinned.
pub fn join(relay: &TestRelay, room: &str, name: &str) -> JoinOptions {
    JoinOptions {
        relay: relay.url.clone(),
        cert_hash: Some(relay.hash),
        room: room.into(),
        name: name.into(),
        token: None,
    }
}

/// A bot (the synthetic pattern and tone) in `relay`'s `room`, saying hello once.
pub fn spawn_bot(
    relay: &TestRelay,
    room: &str,
    name: &str,
    stay: Duration,
) -> JoinHandle<Result<BotReport, Error>> {
    let mut config = CallConfig::new(join(relay, room, name));
    config.duration = Some(stay);
    config.chat = vec![format!("hello from {name}")];
    tokio::spawn(run_bot(config, false))
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
