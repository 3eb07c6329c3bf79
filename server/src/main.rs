//! `rotunda-relay`: runs the Rotunda relay until Ctrl-C.

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
    relay
        .run(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
}
