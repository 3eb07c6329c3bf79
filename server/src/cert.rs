//! The relay's TLS identity: production PEM files, or a self-signed dev certificate that is
//! valid for less than 14 days (so browsers accept it pinned by `serverCertificateHashes`) and is
//! renewed a day before it expires.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tracing::{info, warn};
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, Identity, ServerConfig};

use crate::Config;

const DEV_VALIDITY_DAYS: u32 = 13;
const DEV_RENEW_AFTER: Duration =
    Duration::from_secs(60 * 60 * 24 * (DEV_VALIDITY_DAYS as u64 - 1));

/// SHA-256 of a DER certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateHash(pub [u8; 32]);

impl fmt::Display for CertificateHash {
    /// Lowercase hex, no separators: what `/certificate.sha256` serves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[derive(Clone)]
pub(crate) struct CertificateStore {
    identity: Arc<RwLock<Identity>>,
    dev: bool,
}

impl CertificateStore {
    pub(crate) async fn new(config: &Config, addr: SocketAddr) -> anyhow::Result<Self> {
        let (identity, dev) = match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => (
                Identity::load_pemfiles(cert, key)
                    .await
                    .with_context(|| format!("loading {} and {}", cert.display(), key.display()))?,
                false,
            ),
            _ => (dev_identity(addr)?, true),
        };
        Ok(Self {
            identity: Arc::new(RwLock::new(identity)),
            dev,
        })
    }

    pub(crate) fn hash(&self) -> CertificateHash {
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        let hash = identity
            .certificate_chain()
            .as_slice()
            .first()
            .map(|c| *c.hash().as_ref())
            .unwrap_or_default();
        CertificateHash(hash)
    }

    pub(crate) fn server_config(&self, udp: std::net::UdpSocket) -> anyhow::Result<ServerConfig> {
        Ok(self.config_builder(ServerConfig::builder().with_bind_socket(udp)))
    }

    fn config_builder(
        &self,
        builder: wtransport::config::ServerConfigBuilder<wtransport::config::states::WantsIdentity>,
    ) -> ServerConfig {
        let identity = self
            .identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone_identity();
        builder
            .with_custom_transport(identity, transport_config())
            .keep_alive_interval(Some(Duration::from_secs(3)))
            .max_idle_timeout(Some(Duration::from_secs(15)))
            .unwrap_or_else(|_| unreachable!("15 s is a valid idle timeout"))
            .build()
    }

    /// Renews a dev certificate a day before it expires, forever.
    pub(crate) async fn renew_forever(self, endpoint: Arc<Endpoint<Server>>, addr: SocketAddr) {
        if !self.dev {
            return;
        }
        loop {
            tokio::time::sleep(DEV_RENEW_AFTER).await;
            match dev_identity(addr) {
                Ok(identity) => {
                    *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
                    let config =
                        self.config_builder(ServerConfig::builder().with_bind_address(addr));
                    match endpoint.reload_config(config, false) {
                        Ok(()) => info!(sha256 = %self.hash(), "renewed the dev certificate"),
                        Err(error) => warn!(%error, "could not load the renewed certificate"),
                    }
                }
                Err(error) => warn!(%error, "could not renew the dev certificate"),
            }
        }
    }
}

fn dev_identity(addr: SocketAddr) -> anyhow::Result<Identity> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    Identity::self_signed_builder()
        .subject_alt_names(&names)
        .from_now_utc()
        .validity_days(DEV_VALIDITY_DAYS)
        .build()
        .context("generating the dev certificate")
}

/// QUIC limits per connection: how much a client can make the relay hold.
fn transport_config() -> wtransport::quinn::TransportConfig {
    use wtransport::quinn::VarInt;
    let mut config = wtransport::quinn::TransportConfig::default();
    // Video frames a publisher may have in flight at once (each up to MAX_VIDEO_PAYLOAD).
    config.max_concurrent_uni_streams(VarInt::from_u32(32));
    // Only the control stream is bidirectional.
    config.max_concurrent_bidi_streams(VarInt::from_u32(4));
    // Bytes a client may send beyond what the relay has read.
    config.receive_window(VarInt::from_u32(16 * 1024 * 1024));
    // BBR rather than the default Cubic: on a link with random loss (Wi-Fi), Cubic keeps shrinking
    // its window, and audio datagrams queue behind video (measured: impaired_link test, BENCHMARKS).
    config.congestion_controller_factory(std::sync::Arc::new(
        wtransport::quinn::congestion::BbrConfig::default(),
    ));
    config
}
