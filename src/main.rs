//! `rotunda`: the Rotunda client. `rotunda bot …` runs a participant without a window.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rotunda::bot::{self, BotConfig, VideoSpec};
use rotunda::net::{JoinOptions, trust};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "rotunda",
    version,
    about = "Rotunda: meet in a 3D room with live video and spatial audio"
)]
#[command(subcommand_required = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join a room without a window: publish a synthetic test pattern and tone, decode everyone,
    /// print live statistics.
    Bot(BotArgs),
}

#[derive(clap::Args)]
struct BotArgs {
    /// The relay's WebTransport URL.
    #[arg(long, env = "ROTUNDA_RELAY", default_value = "https://127.0.0.1:4443")]
    relay: String,
    /// SHA-256 of the relay's certificate (hex); fetched from a loopback relay when absent.
    #[arg(long, env = "ROTUNDA_CERT_HASH", value_parser = parse_hash)]
    cert_hash: Option<[u8; 32]>,
    /// Room to join.
    #[arg(long, env = "ROTUNDA_ROOM", default_value = "lobby")]
    room: String,
    /// Display name.
    #[arg(long, env = "ROTUNDA_NAME", default_value = "bot")]
    name: String,
    /// Access token, when the relay asks for one.
    #[arg(long, env = "ROTUNDA_TOKEN")]
    token: Option<String>,
    /// How long to stay, e.g. 20s or 2m.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Video to publish, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x480@30")]
    video: VideoSpec,
    /// Publish no video.
    #[arg(long)]
    no_video: bool,
    /// Publish no audio.
    #[arg(long)]
    no_audio: bool,
    /// Say this in the chat once, after joining.
    #[arg(long)]
    chat: Option<String>,
    /// Write the statistics as JSON to this file at exit.
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    trust::parse_hash(text).ok_or_else(|| "expected 64 hex digits (a SHA-256)".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bot(args) => run_bot(args).await,
    }
}

async fn run_bot(args: BotArgs) -> anyhow::Result<()> {
    let config = BotConfig {
        join: JoinOptions {
            relay: args.relay,
            cert_hash: args.cert_hash,
            room: args.room,
            name: args.name,
            token: args.token,
        },
        duration: args.duration,
        video: (!args.no_video).then_some(args.video),
        audio: !args.no_audio,
        chat: args.chat.into_iter().collect(),
        status: true,
    };
    let report = bot::run(config).await?;
    print!("{}", report.summary());
    if let Some(path) = args.stats_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(error) = report.error {
        anyhow::bail!(error);
    }
    Ok(())
}
