//! `rotunda-relay`: runs the Rotunda relay until Ctrl-C or SIGTERM, then tells clients and closes.

use clap::Parser;
use rotunda_server::{Config, Relay};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
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
