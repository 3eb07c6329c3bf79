//! `rotunda-relay`: runs the Rotunda relay until Ctrl-C or SIGTERM, then tells clients and closes.
//! Two tools beside it mint access tokens: `keygen` writes the issuer's key pair, `token` signs
//! a token with its secret half.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use rotunda_proto::Grants;
use rotunda_server::token::{IssuerKey, TokenRequest};
use rotunda_server::{Config, Relay};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "rotunda-relay",
    version,
    about = "Rotunda relay: rooms and media forwarding over WebTransport",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    tool: Option<Tool>,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Writes a new token issuer's Ed25519 key pair: PREFIX.key (secret: it mints tokens; keep
    /// it off the relay) and PREFIX.pub (what a relay's --issuer-key reads).
    Keygen {
        /// Where to write, without the suffixes.
        #[arg(long, default_value = "issuer", value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Mints an access token for one room and one identity; prints it as the last line.
    Token {
        /// The issuer's secret key (PREFIX.key from keygen).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The room it opens.
        #[arg(long)]
        room: String,
        /// Who holds it (unique within your organisation, e.g. an e-mail address).
        #[arg(long)]
        identity: String,
        /// The name the room shows (default: the one its holder gives).
        #[arg(long)]
        name: Option<String>,
        /// How long it stays valid, e.g. 1h, 30m, 7days.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// May publish a camera and a microphone.
        #[arg(long)]
        publish: bool,
        /// May receive others' media.
        #[arg(long)]
        subscribe: bool,
        /// May chat.
        #[arg(long)]
        chat: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.tool {
        Some(tool) => run_tool(tool),
        None => serve(cli.config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let relay = Relay::bind(config).await?;
    let addr = relay.local_addr();
    // The first line on stdout is the URL, for scripts and tests to read.
    println!("rotunda-relay serving on {}", relay.url());
    println!(
        "certificate sha256 {} (http://{addr}/certificate.sha256)",
        relay.certificate_hash()
    );
    relay.run(shutdown_signal()).await
}

fn run_tool(tool: Tool) -> anyhow::Result<()> {
    match tool {
        Tool::Keygen { out } => {
            let (issuer, _) = IssuerKey::generate()?;
            let (key, public) = issuer.write(&out)?;
            eprintln!(
                "wrote {} (secret: mints tokens) and {} (public: rotunda-relay --issuer-key {})",
                key.display(),
                public.display(),
                public.display()
            );
            Ok(())
        }
        Tool::Token {
            key,
            room,
            identity,
            name,
            ttl,
            publish,
            subscribe,
            chat,
        } => {
            // None named: a full participant.
            let grants = if publish || subscribe || chat {
                Grants {
                    publish,
                    subscribe,
                    chat,
                }
            } else {
                Grants::ALL
            };
            let issuer = IssuerKey::load(&key)?;
            let token = issuer.sign(
                &TokenRequest {
                    room: room.clone(),
                    identity: identity.clone(),
                    name,
                    ttl,
                    grants,
                },
                SystemTime::now(),
            )?;
            eprintln!(
                "token for {identity} in room {room:?}, valid {}, may {}",
                humantime::format_duration(ttl),
                describe(grants)
            );
            println!("{token}");
            Ok(())
        }
    }
}

fn describe(grants: Grants) -> String {
    let may: Vec<&str> = [
        (grants.publish, "publish"),
        (grants.subscribe, "subscribe"),
        (grants.chat, "chat"),
    ]
    .into_iter()
    .filter_map(|(granted, what)| granted.then_some(what))
    .collect();
    may.join(", ")
}

/// Ctrl-C, or SIGTERM (what service managers and `kill` send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
