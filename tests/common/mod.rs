//! What the integration tests share: a relay on a free loopback port, and bots to put in it.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

use std::net::SocketAddr;
use std::time::Duration;

use rotunda::call::{self as bot, BotReport, CallConfig, VideoSpec};
use rotunda::net::JoinOptions;
use rotunda_server::{Config, Relay};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest any single wait in these tests may take before it counts as a failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The real relay, in this process, on a free port.
pub struct TestRelay {
    pub url: String,
    pub addr: SocketAddr,
    pub hash: [u8; 32],
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestRelay {
    /// Starts a relay with the defaults, changed by `configure`.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::on(SocketAddr::from(([127, 0, 0, 1], 0)));
        configure(&mut config);
        let relay = Relay::bind(config).await.expect("relay binds");
        let (url, addr, hash) = (relay.url(), relay.local_addr(), relay.certificate_hash().0);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async {
            let _ = stopped.await;
        }));
        Self {
            url,
            addr,
            hash,
            stop: Some(stop),
            task,
        }
    }

    /// Join options for this relay, its certificate pinned.
    pub fn join(&self, room: &str, name: &str) -> JoinOptions {
        JoinOptions {
            relay: self.url.clone(),
            cert_hash: Some(self.hash),
            room: room.into(),
            name: name.into(),
            token: None,
        }
    }

    /// Shuts the relay down and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(PATIENCE, &mut self.task).await;
    }
}

/// A bot at 320x240@30 with audio, saying hello once.
pub fn bot_config(join: JoinOptions, seconds: u64) -> CallConfig {
    let greeting = format!("hello from {}", join.name);
    CallConfig {
        join,
        duration: Some(Duration::from_secs(seconds)),
        video: Some(VideoSpec {
            width: 320,
            height: 240,
            fps: 30,
        }),
        audio: true,
        chat: vec![greeting],
        status: false,
    }
}

/// Runs bots side by side; their reports in the same order.
pub fn spawn_bots(configs: Vec<CallConfig>) -> Vec<JoinHandle<anyhow::Result<BotReport>>> {
    configs
        .into_iter()
        .map(|c| tokio::spawn(bot::run(c, None)))
        .collect()
}

/// Waits for bots started by [`spawn_bots`].
pub async fn reports(bots: Vec<JoinHandle<anyhow::Result<BotReport>>>) -> Vec<BotReport> {
    let mut reports = Vec::new();
    for bot in bots {
        reports.push(bot.await.expect("bot task").expect("bot runs"));
    }
    reports
}
