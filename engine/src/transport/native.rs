//! The native transport: WebTransport over QUIC through `wtransport` (quinn).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotunda_proto::framing::{self, FrameDecoder};
use rotunda_proto::{ErrorCode, FramePriority, FromRelay, MediaFrame, Resume, ToRelay, TrackKind};
use rotunda_quic::stream::{self, Budget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tracing::debug;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::error::ConnectionError;
use wtransport::tls::client::{ServerHashVerification, build_default_tls_config};
use wtransport::tls::rustls;
use wtransport::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use wtransport::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use wtransport::tls::{Sha256Digest, build_native_cert_store};
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

use super::trust::{self, is_loopback};
use super::{CONTROL_QUEUE, EVENT_QUEUE, Event, VIDEO_IN_FLIGHT, closed, hello, welcome};
use crate::Error;
use crate::session::{JoinOptions, Joined};
use crate::sync::lock;

/// A video frame not delivered by then is abandoned.
const STALE_VIDEO: Duration = Duration::from_secs(1);
/// A video frame from the relay not fully received by then is abandoned.
const VIDEO_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of unfinished video frames held at once (a room's worth of keyframes arriving
/// together); a frame that would go over is dropped.
const MEDIA_BUDGET: usize = 64 * 1024 * 1024;
/// QUIC's own idle timeout: longer than the call's silence check, which notices a dead relay
/// first (and lets the relay hold our place meanwhile).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC keep-alive.
const KEEP_ALIVE: Duration = Duration::from_millis(500);

/// A joined session.
pub struct Session {
    connection: Connection,
    control: mpsc::Sender<ToRelay>,
    video_permits: Arc<Semaphore>,
    priorities: Mutex<HashMap<u8, FramePriority>>,
    _endpoint: Endpoint<Client>,
}

impl Session {
    /// Queues a control message. Fails with [`Error::Congested`] when the queue is full (the
    /// message is dropped), with [`Error::Lost`] when the session is gone.
    pub fn send(&self, message: ToRelay) -> Result<(), Error> {
        super::queue_control(&self.control, message)
    }

    /// Sends an audio frame as a datagram (lost, not retried, if the network drops it).
    pub fn send_audio(&self, frame: &MediaFrame) -> Result<(), Error> {
        use wtransport::error::SendDatagramError;
        match self.connection.send_datagram(&frame.wire) {
            Ok(()) => Ok(()),
            Err(SendDatagramError::NotConnected) => Err(Error::Lost),
            Err(error) => {
                debug!(%error, "audio datagram not sent");
                Ok(())
            }
        }
    }

    /// Sends a video frame on a stream of its own. Returns false when too many frames are still
    /// in flight: the frame was dropped and the next one should be a keyframe.
    pub fn send_video(&self, frame: MediaFrame) -> bool {
        let Ok(permit) = self.video_permits.clone().try_acquire_owned() else {
            return false;
        };
        let priority = lock(&self.priorities)
            .entry(frame.header.track.index)
            .or_default()
            .next(frame.header.keyframe);
        let connection = self.connection.clone();
        tokio::spawn(async move {
            let _permit = permit;
            stream::write_frame(&connection, &frame, priority, STALE_VIDEO, None).await;
        });
        true
    }

    /// Says goodbye and closes the connection.
    pub async fn leave(self) {
        let _ = self.control.send(ToRelay::Leave).await;
        // The relay closes the session once it has read the leave.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.connection.closed()).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection
            .close(VarInt::from_u32(ErrorCode::Normal.as_u32()), b"");
    }
}

/// Connects to the relay, says hello and joins the room (taking our place back with `resume`).
pub async fn connect(
    options: &JoinOptions,
    resume: Option<Resume>,
) -> Result<(Session, Joined, mpsc::Receiver<Event>), Error> {
    let authority = trust::authority(&options.relay)?;
    let unreachable = |reason: String| Error::Unreachable {
        url: options.relay.clone(),
        reason,
    };
    let hash = match options.cert_hash {
        Some(hash) => Some(hash),
        None if is_loopback(&authority) => Some(fetch_hash(&authority).await?),
        None => None,
    };
    if hash.is_some() && resume.is_some() {
        // Rejoining a relay that may be down: a refused TCP connection to its HTTP port says so
        // at once, where QUIC would wait for its handshake to time out.
        probe(&authority).await.map_err(unreachable)?;
    }
    let verifier = Arc::new(Recording::new(match hash {
        Some(hash) => Arc::new(ServerHashVerification::new([Sha256Digest::new(hash)])),
        None => rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(build_native_cert_store()),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| unreachable(format!("no certificate authorities: {e}")))?,
    }));
    let tls = build_default_tls_config(
        Arc::new(rustls::RootCertStore::empty()),
        Some(verifier.clone()),
    );
    let builder = match authority.parse::<SocketAddr>() {
        Ok(addr) if addr.is_ipv4() => {
            ClientConfig::builder().with_bind_address(SocketAddr::from(([0, 0, 0, 0], 0)))
        }
        _ => ClientConfig::builder().with_bind_default(),
    };
    let mut config = builder.with_custom_tls(tls).build();
    config
        .quic_config_mut()
        .transport_config(Arc::new(transport_config()));
    let endpoint = Endpoint::client(config).map_err(|e| unreachable(e.to_string()))?;
    let failed = |error: String| match verifier.refusal() {
        Some(reason) => Error::Certificate {
            url: options.relay.clone(),
            reason,
        },
        None => unreachable(error),
    };
    let connection = endpoint
        .connect(&options.relay)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let opening = connection
        .open_bi()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut send, mut recv) = opening.await.map_err(|e| unreachable(e.to_string()))?;

    let hello = hello(
        options,
        resume,
        concat!("rotunda/", env!("CARGO_PKG_VERSION")),
    )?;
    send.write_all(&hello).await.map_err(|_| Error::Lost)?;

    let mut decoder = FrameDecoder::new();
    let joined = loop {
        if let Some(answer) = welcome(next_message(&mut recv, &mut decoder).await?) {
            break answer?;
        }
    };

    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    tokio::spawn(write_control(send, control_rx));
    tokio::spawn(read_control(
        connection.clone(),
        recv,
        decoder,
        events_tx.clone(),
    ));
    tokio::spawn(read_datagrams(connection.clone(), events_tx.clone()));
    tokio::spawn(read_streams(connection.clone(), events_tx));
    let session = Session {
        connection,
        control,
        video_permits: Arc::new(Semaphore::new(VIDEO_IN_FLIGHT)),
        priorities: Mutex::default(),
        _endpoint: endpoint,
    };
    Ok((session, joined, events))
}

/// QUIC settings of the client's connection. BBR rather than the default Cubic: on a link with
/// random loss (Wi-Fi), Cubic keeps shrinking its window and queues audio behind video.
fn transport_config() -> wtransport::quinn::TransportConfig {
    let mut config = wtransport::quinn::TransportConfig::default();
    config.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = wtransport::quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        config.max_idle_timeout(Some(idle));
    }
    config.congestion_controller_factory(Arc::new(
        wtransport::quinn::congestion::BbrConfig::default(),
    ));
    config
}

/// Whether anything listens on the relay's TCP port: `Err` only when the connection is refused
/// outright (nothing there); a slow or filtered answer is left to QUIC.
async fn probe(authority: &str) -> Result<(), String> {
    match tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    {
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(format!("nothing listens at {authority}"))
        }
        _ => Ok(()),
    }
}

/// Fetches `/certificate.sha256` from a loopback relay over plain HTTP on the same port.
async fn fetch_hash(authority: &str) -> Result<[u8; 32], Error> {
    let url = format!("http://{authority}/certificate.sha256");
    let failed = |reason: String| Error::Fingerprint {
        url: url.clone(),
        reason,
    };
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let request = format!(
            "GET /certificate.sha256 HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let body =
        trust::http_body(&response).ok_or_else(|| failed("not an HTTP 200 answer".into()))?;
    let text = std::str::from_utf8(body).map_err(|_| failed("not text".into()))?;
    trust::parse_hash(text).ok_or_else(|| failed("not a SHA-256 in hex".into()))
}

/// A certificate verifier that remembers why it refused a certificate, so a failed connection
/// can say it was the certificate (and not the network) by what the verifier saw.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    refused: Mutex<Option<String>>,
}

impl Recording {
    fn new(inner: Arc<dyn ServerCertVerifier>) -> Self {
        Self {
            inner,
            refused: Mutex::new(None),
        }
    }

    fn refusal(&self) -> Option<String> {
        lock(&self.refused).clone()
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(error) = &verified {
            *lock(&self.refused) = Some(error.to_string());
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

async fn next_message(
    recv: &mut RecvStream,
    decoder: &mut FrameDecoder,
) -> Result<FromRelay, Error> {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(message) = decoder.poll_message()? {
            return Ok(message);
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            Ok(None) | Err(_) => return Err(Error::Lost),
        }
    }
}

async fn write_control(mut send: SendStream, mut messages: mpsc::Receiver<ToRelay>) {
    let mut out = Vec::new();
    while let Some(message) = messages.recv().await {
        out.clear();
        if framing::encode_into(&message, &mut out).is_err() {
            continue;
        }
        if send.write_all(&out).await.is_err() {
            return;
        }
        if message == ToRelay::Leave {
            let _ = send.finish().await;
            return;
        }
    }
}

async fn read_control(
    connection: Connection,
    mut recv: RecvStream,
    mut decoder: FrameDecoder,
    events: mpsc::Sender<Event>,
) {
    let mut relay_code = None;
    while let Ok(message) = next_message(&mut recv, &mut decoder).await {
        if let FromRelay::Error { code } = message {
            relay_code = Some(code);
        }
        if events.send(Event::Control(message)).await.is_err() {
            return;
        }
    }
    let close_code = match connection.closed().await {
        ConnectionError::ApplicationClosed(close) => u32::try_from(close.code().into_inner()).ok(),
        _ => None,
    };
    let _ = events
        .send(Event::Closed(closed(relay_code, close_code)))
        .await;
}

async fn read_datagrams(connection: Connection, events: mpsc::Sender<Event>) {
    while let Ok(datagram) = connection.receive_datagram().await {
        match MediaFrame::decode(datagram.payload(), TrackKind::Audio) {
            Ok(frame) => {
                let _ = events.try_send(Event::Media(frame, TrackKind::Audio));
            }
            Err(error) => debug!(%error, "bad audio datagram from the relay"),
        }
    }
}

async fn read_streams(connection: Connection, events: mpsc::Sender<Event>) {
    let budget = Budget::new(MEDIA_BUDGET);
    while let Ok(stream) = connection.accept_uni().await {
        let events = events.clone();
        let budget = budget.clone();
        tokio::spawn(async move {
            let read = tokio::time::timeout(VIDEO_READ_TIMEOUT, read_frame(stream, &budget)).await;
            if let Ok(Some(frame)) = read {
                let _ = events.try_send(Event::Media(frame, TrackKind::Video));
            }
        });
    }
}

async fn read_frame(mut stream: RecvStream, budget: &Budget) -> Option<MediaFrame> {
    let (header, parsed) = stream::read_header(&mut stream).await.ok()??;
    stream::read_payload(&mut stream, header, parsed, budget)
        .await
        .ok()?
}
