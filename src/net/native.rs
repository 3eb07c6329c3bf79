//! The native transport: WebTransport over QUIC through `wtransport` (quinn).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotunda_proto::framing::{self, FrameDecoder};
use rotunda_proto::{
    ErrorCode, FramePriority, FromRelay, MediaFrame, ParticipantId, ParticipantInfo, ToRelay,
    TrackKind,
};
use rotunda_server::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tracing::debug;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::error::ConnectionError;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

use bevy::prelude::*;

use super::bridge::CallParts;
use super::{Error, Event, JoinOptions, trust};
use crate::audio::device;
use crate::call::{self, CallEvent};
use crate::media::camera;
use crate::settings::Settings;
use crate::sync::lock;

/// Events queued for the application before media is dropped (control is never dropped).
const EVENT_QUEUE: usize = 4096;
/// Control messages queued for sending.
const CONTROL_QUEUE: usize = 1024;
/// Video frames written and not yet acknowledged; past that a frame is dropped and the caller
/// should send a keyframe next.
const VIDEO_IN_FLIGHT: usize = 32;
/// A video frame not delivered by then is abandoned.
const STALE_VIDEO: Duration = Duration::from_secs(1);
/// A video frame from the relay not fully received by then is abandoned.
const VIDEO_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A joined session.
pub struct Session {
    connection: Connection,
    control: mpsc::Sender<ToRelay>,
    video_permits: Arc<Semaphore>,
    priorities: Mutex<HashMap<u8, FramePriority>>,
    you: ParticipantId,
    roster: Vec<ParticipantInfo>,
    _endpoint: Endpoint<Client>,
}

impl Session {
    /// The id the relay gave us.
    pub fn id(&self) -> ParticipantId {
        self.you
    }

    /// Who was in the room when we joined.
    pub fn roster(&self) -> &[ParticipantInfo] {
        &self.roster
    }

    /// Round-trip time as QUIC measures it.
    pub fn rtt(&self) -> Duration {
        self.connection.rtt()
    }

    /// Queues a control message. Fails with [`Error::Congested`] when the queue is full (the
    /// message is dropped), with [`Error::Lost`] when the session is gone.
    pub fn send(&self, message: ToRelay) -> Result<(), Error> {
        message.validate()?;
        self.control.try_send(message).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Error::Congested,
            mpsc::error::TrySendError::Closed(_) => Error::Lost,
        })
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
            stream::write_frame(&connection, &frame, priority, STALE_VIDEO).await;
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

/// Connects to the relay, says hello and joins the room.
pub async fn connect(options: JoinOptions) -> Result<(Session, mpsc::Receiver<Event>), Error> {
    let authority = trust::authority(&options.relay)?;
    let hash = match options.cert_hash {
        Some(hash) => Some(hash),
        None if is_loopback(authority) => Some(fetch_hash(authority).await?),
        None => None,
    };
    let builder = match authority.parse::<SocketAddr>() {
        Ok(addr) if addr.is_ipv4() => {
            ClientConfig::builder().with_bind_address(SocketAddr::from(([0, 0, 0, 0], 0)))
        }
        _ => ClientConfig::builder().with_bind_default(),
    };
    let mut config = match hash {
        Some(hash) => builder.with_server_certificate_hashes([Sha256Digest::new(hash)]),
        None => builder.with_native_certs(),
    }
    .build();
    config
        .quic_config_mut()
        .transport_config(Arc::new(transport_config()));
    let unreachable = |reason: String| Error::Unreachable {
        url: options.relay.clone(),
        reason,
    };
    let endpoint = Endpoint::client(config).map_err(|e| unreachable(e.to_string()))?;
    let connection = endpoint
        .connect(&options.relay)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let opening = connection
        .open_bi()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut send, mut recv) = opening.await.map_err(|e| unreachable(e.to_string()))?;

    let hello = super::hello(&options, concat!("rotunda/", env!("CARGO_PKG_VERSION")))?;
    send.write_all(&hello).await.map_err(|_| Error::Lost)?;

    let mut decoder = FrameDecoder::new();
    let (you, roster) = loop {
        match next_message(&mut recv, &mut decoder).await? {
            FromRelay::Welcome {
                you, participants, ..
            } => break (you, participants),
            FromRelay::Error { code } => return Err(Error::Refused(code)),
            _ => {}
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
        you,
        roster,
        _endpoint: endpoint,
    };
    Ok((session, events))
}

/// QUIC settings of the client's connection. BBR rather than the default Cubic: on a link with
/// random loss (Wi-Fi), Cubic keeps shrinking its window and queues audio behind video.
fn transport_config() -> wtransport::quinn::TransportConfig {
    let mut config = wtransport::quinn::TransportConfig::default();
    config.keep_alive_interval(Some(Duration::from_secs(3)));
    config.congestion_controller_factory(Arc::new(
        wtransport::quinn::congestion::BbrConfig::default(),
    ));
    config
}

fn is_loopback(authority: &str) -> bool {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    authority.starts_with("localhost:")
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
    let code = match connection.closed().await {
        ConnectionError::ApplicationClosed(close) => u32::try_from(close.code().into_inner())
            .ok()
            .and_then(ErrorCode::from_u32),
        _ => None,
    };
    let _ = events.send(Event::Closed(relay_code.or(code))).await;
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
    while let Ok(stream) = connection.accept_uni().await {
        let events = events.clone();
        tokio::spawn(async move {
            let read = tokio::time::timeout(VIDEO_READ_TIMEOUT, read_frame(stream)).await;
            if let Ok(Some(frame)) = read {
                let _ = events.try_send(Event::Media(frame, TrackKind::Video));
            }
        });
    }
}

async fn read_frame(mut stream: RecvStream) -> Option<MediaFrame> {
    let (header, parsed) = stream::read_header(&mut stream).await.ok()??;
    stream::read_payload(&mut stream, header, parsed)
        .await
        .ok()?
}

/// The async runtime the network runs on.
#[derive(Resource)]
pub struct NetRuntime(pub tokio::runtime::Runtime);

/// The relay this process started, when the settings name none.
#[derive(Resource)]
pub struct LocalRelay {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Natively, a relay starts in this process when the settings name none.
pub(super) fn io_plugin(app: &mut App) {
    app.add_systems(Startup, start_local_relay);
}

fn runtime(world: &mut World) -> Option<&tokio::runtime::Runtime> {
    if !world.contains_resource::<NetRuntime>() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rotunda-net")
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => world.insert_resource(NetRuntime(runtime)),
            Err(error) => {
                error!(%error, "cannot start the network runtime");
                return None;
            }
        }
    }
    world.get_resource::<NetRuntime>().map(|r| &r.0)
}

/// Starts a relay on the local address when no relay is given; when one already runs there
/// (another `rotunda` on this machine), joins that one instead.
fn start_local_relay(world: &mut World) {
    let Some(settings) = world.get_resource::<Settings>().cloned() else {
        return;
    };
    if settings.relay.is_some() {
        return;
    }
    let Some(runtime) = runtime(world) else {
        return;
    };
    let bound = runtime.block_on(rotunda_server::Relay::bind(rotunda_server::Config::on(
        settings.local_relay,
    )));
    match bound {
        Ok(relay) => {
            let url = relay.url();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            runtime.spawn(relay.run(async {
                let _ = stopped.await;
            }));
            println!(
                "rotunda: relay running at {url}; others join with: rotunda --relay {url} --room {}",
                settings.room
            );
            world.insert_resource(LocalRelay { _stop: stop });
        }
        Err(error) => {
            println!(
                "rotunda: a relay already runs on {} ({error:#}); joining it",
                settings.local_relay
            );
        }
    }
}

/// Opens the devices on a thread of their own (a camera can take seconds to answer, and the
/// window must not freeze meanwhile), then runs the call on the network runtime.
pub fn spawn_call(world: &mut World, parts: CallParts) {
    let Some(runtime) = runtime(world).map(|r| r.handle().clone()) else {
        return;
    };
    let failed = parts.events.clone();
    let opened = std::thread::Builder::new()
        .name("open-devices".into())
        .spawn(move || {
            let settings = &parts.settings;
            let (camera, camera_state) = camera::open(&settings.camera, settings.video);
            let (microphone, microphone_thread, microphone_state) =
                device::open_microphone(&settings.microphone);
            let (config, link) =
                parts.into_link((camera, camera_state), (microphone, microphone_state));
            runtime.spawn(async move {
                // The microphone's stream lives as long as the call.
                let _microphone = microphone_thread;
                match call::run(config, Some(link)).await {
                    Ok(report) => debug!(?report.error, "call over"),
                    Err(error) => debug!("call ended: {error:#}"),
                }
            });
        });
    if let Err(error) = opened {
        let _ = failed.send(CallEvent::Failed(format!(
            "cannot open the devices: {error}"
        )));
    }
}
