//! The Rotunda relay: rooms, presence, chat and selective forwarding of opaque media.
//!
//! Browsers and native clients reach the same WebTransport endpoint (QUIC, through `wtransport`
//! on quinn). Each session carries:
//! - its control messages on one bidirectional stream (see [`rotunda_proto::framing`]);
//! - audio in datagrams;
//! - every video frame on a unidirectional stream of its own, so a late frame never blocks a
//!   fresh one or any audio.
//!
//! The room logic itself is the sans-IO [`rotunda_proto::room::Room`]; this crate only drives it:
//! [`session`] runs one task group per connection (frames on streams through
//! `rotunda_quic::stream`, which native clients use too), [`rooms`] holds the rooms and hands
//! queued control messages and media to the sessions. Beside the UDP endpoint, a small HTTP server on the
//! same TCP port serves `/certificate.sha256` (the pinned fingerprint of the dev certificate),
//! `/healthz`, and every other path from the browser client's bundle in the web root
//! (`--web-root`), so one port gives a browser both the page and the relay it joins.
//!
//! [`Relay::bind`] builds the relay from a [`Config`], so tests bind port 0.

mod cert;
mod config;
mod http;
pub mod limits;
pub mod record;
pub mod rooms;
pub mod session;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rotunda_quic::stream::Budget;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};
use wtransport::Endpoint;
use wtransport::endpoint::endpoint_side::Server;

pub use cert::CertificateHash;
pub use config::Config;

/// A bound relay, ready to [`run`](Relay::run).
pub struct Relay {
    endpoint: Arc<Endpoint<Server>>,
    http: tokio::net::TcpListener,
    addr: SocketAddr,
    certificate: cert::CertificateStore,
    rooms: Arc<rooms::Rooms>,
    access: token::Access,
    media: Budget,
    recorder: Option<Arc<record::Recorder>>,
    config: Config,
}

impl Relay {
    /// Binds UDP (WebTransport) and TCP (HTTP) on the same port, loading or generating the
    /// certificate.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let (udp, http) = bind_pair(config.listen)?;
        let addr = udp.local_addr()?;
        let certificate = cert::CertificateStore::new(&config, addr).await?;
        let endpoint = Endpoint::server(certificate.server_config(udp)?)
            .context("starting the WebTransport endpoint")?;
        let endpoint = Arc::new(endpoint);
        let recorder = match &config.record {
            Some(dir) => Some(record::Recorder::start(dir)?),
            None => None,
        };
        let rooms = Arc::new(rooms::Rooms::new(config.room_config(), recorder.clone()));
        let access = match (&config.issuer_key, &config.token) {
            (Some(path), _) => {
                let verifier = token::Verifier::load(path)?;
                info!(issuer = %verifier.to_paserk(), "joins need a token from this issuer");
                token::Access::Signed(verifier)
            }
            (None, Some(shared)) => {
                warn!("joins need the shared --token; anyone holding it may do anything");
                token::Access::Shared(shared.clone())
            }
            (None, None) => {
                warn!(
                    "open relay: anyone who reaches it may join any room (give it --issuer-key \
                     to ask for signed tokens)"
                );
                token::Access::Open
            }
        };
        let media = Budget::new(config.media_buffer_mb.saturating_mul(1024 * 1024));
        Ok(Self {
            media,
            recorder,
            endpoint,
            http,
            addr,
            certificate,
            rooms,
            access,
            config,
        })
    }

    /// The address the relay listens on (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebTransport URL clients connect to.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// SHA-256 of the certificate now in use.
    pub fn certificate_hash(&self) -> CertificateHash {
        self.certificate.hash()
    }

    /// Serves on the current tokio runtime until [`Running::stop`] (or until the handle is
    /// dropped): what tests and the client's in-process relay use.
    pub fn spawn(self) -> Running {
        let (url, addr, hash) = (self.url(), self.local_addr(), self.certificate_hash().0);
        let media = self.media.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        Running {
            url,
            addr,
            hash,
            media,
            stop: Some(stop),
            task,
        }
    }

    /// Serves until `shutdown` completes, then tells every client and closes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let http = tokio::spawn(http::serve(
            self.http,
            self.certificate.clone(),
            self.config.resolved_web_root(),
            stop_rx.clone(),
        ));
        let renew = tokio::spawn(
            self.certificate
                .clone()
                .renew_forever(self.endpoint.clone(), self.addr),
        );
        let mut sessions = JoinSet::new();
        let context = Arc::new(session::Context {
            rooms: self.rooms.clone(),
            access: self.access.clone(),
            attempts: limits::Attempts::default(),
            media: self.media.clone(),
            stop: stop_rx,
        });
        let connections = limits::Connections::new(
            self.config.max_connections,
            self.config.max_connections_per_address,
        );
        tokio::pin!(shutdown);
        let mut next_id: u64 = 0;
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let remote = incoming.remote_address();
                    let Some(slot) = connections.enter(remote.ip()) else {
                        info!(%remote, open = connections.open(), "connection refused: too many");
                        incoming.refuse();
                        continue;
                    };
                    next_id += 1;
                    let span = info_span!("session", id = next_id, %remote);
                    sessions.spawn(session::run(incoming, context.clone(), slot).instrument(span));
                }
                () = &mut shutdown => break,
            }
            while sessions.try_join_next().is_some() {}
        }
        info!(sessions = sessions.len(), "shutting down");
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(3), async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("sessions did not end in time; closing them");
        }
        self.endpoint.close(
            wtransport::VarInt::from_u32(rotunda_proto::ErrorCode::ShuttingDown.as_u32()),
            b"shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        renew.abort();
        let _ = http.await;
        if let Some(recorder) = &self.recorder {
            // Everything received is on disk before the relay says it stopped.
            let recorder = recorder.clone();
            let _ = tokio::task::spawn_blocking(move || recorder.finish()).await;
        }
        Ok(())
    }
}

/// A relay serving on a tokio runtime; it stops when told to, or when this handle is dropped.
pub struct Running {
    /// Its WebTransport URL.
    pub url: String,
    /// The address it listens on (UDP and TCP).
    pub addr: SocketAddr,
    /// SHA-256 of its certificate.
    pub hash: [u8; 32],
    media: Budget,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Bytes of unfinished incoming video frames the relay holds now, all connections together.
    pub fn media_held(&self) -> usize {
        self.media.used()
    }

    /// Shuts the relay down (telling every client) and waits for it, at most a few seconds.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

/// Binds a UDP socket and a TCP listener on the same port; port 0 picks one free for both.
fn bind_pair(addr: SocketAddr) -> anyhow::Result<(std::net::UdpSocket, tokio::net::TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = std::net::UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))?;
        let port = udp.local_addr()?.port();
        match std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => {
                tcp.set_nonblocking(true)?;
                return Ok((udp, tokio::net::TcpListener::from_std(tcp)?));
            }
            Err(error) => last_error = Some(error),
        }
    }
    let error = last_error
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no port"));
    Err(error.context(format!("binding TCP {addr} beside UDP")))
}
