//! One client session: handshake, then a group of tasks until it ends.
//!
//! - the control reader decodes [`ToRelay`] messages and applies them to the room;
//! - the datagram reader forwards audio, the stream acceptor forwards video (a task per stream);
//! - the media sender sends queued audio as datagrams and each queued video frame on a stream of
//!   its own, with a bounded number in flight so a slow subscriber's queue fills up and the room
//!   skips it to the next keyframe;
//! - the session task itself writes control messages from the room to the client.
//!
//! A misbehaving client gets a [`FromRelay::Error`] with a code and is closed with that code;
//! internal details go to the log only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rotunda_proto::framing::{self, FrameDecoder};
use rotunda_proto::link::{LinkSample, Pacer};
use rotunda_proto::room::Admission;
use rotunda_proto::{
    Error, ErrorCode, FramePriority, FromRelay, LeaveReason, MediaFrame, PROTOCOL_VERSION,
    ParticipantId, Resume, ToRelay, TrackId, TrackKind,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use crate::limits::{Attempts, Slot};
use crate::rooms::{Peer, Rooms, SharedRoom};
use crate::token::Access;
use rotunda_quic::stream::{self, Budget};

/// Time a client has to open its control stream and join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Control messages queued for one client before it counts as too slow.
const CONTROL_QUEUE: usize = 4096;
/// Video frames being written to one subscriber and not yet acknowledged. Enough for 4 tracks at
/// 30 fps over a 250 ms round trip; a subscriber that cannot take more lets its room queue fill,
/// and the room skips it to the next keyframe.
const VIDEO_IN_FLIGHT: usize = 32;
/// A video frame not delivered by then is abandoned (its stream reset).
const STALE_VIDEO: Duration = Duration::from_secs(1);
/// Bytes of unfinished video frames one connection may hold (more than a burst of keyframes of
/// every layer of a few tracks); a frame that would go over is dropped, its stream stopped.
const CONNECTION_MEDIA_BUDGET: usize = 8 * 1024 * 1024;
/// A publisher's video frame not fully received by then is abandoned.
const VIDEO_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a subscriber's link is sampled for its room.
const LINK_EVERY: Duration = Duration::from_millis(250);
/// Video to a subscriber is paced at this many times its video budget (room for a keyframe's
/// burst to go a little faster than the average, never all at once).
const PACE_OVER_BUDGET: f64 = 1.25;
/// Least pacing rate, in kb/s.
const PACE_FLOOR_KBPS: u32 = 200;
/// Bytes of video that may go at once after a pause.
const PACE_BURST: Duration = Duration::from_millis(20);
/// Time given to a failing client to receive its error message.
const ERROR_GRACE: Duration = Duration::from_secs(1);

/// What every session shares.
pub struct Context {
    /// The relay's rooms.
    pub rooms: Arc<Rooms>,
    /// What a join must carry.
    pub access: Access,
    /// Failed joins by address.
    pub attempts: Attempts,
    /// Bytes of unfinished video frames the whole relay may hold.
    pub media: Budget,
    /// Turns true when the relay shuts down.
    pub stop: watch::Receiver<bool>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Disconnected,
    Failed(ErrorCode),
}

impl From<Error> for End {
    fn from(error: Error) -> Self {
        // The peer gets the code; what exactly was wrong goes to the log.
        info!(%error, "the peer broke the protocol");
        End::Failed(error.code())
    }
}

/// Runs one session to its end.
pub async fn run(incoming: IncomingSession, context: Arc<Context>, _slot: Slot) {
    let from = incoming.remote_address().ip();
    // Handshake, WebTransport CONNECT and the control stream, all within one deadline.
    let opened = tokio::time::timeout(JOIN_TIMEOUT, async {
        let request = incoming
            .await
            .map_err(|e| debug!(error = %e, "handshake failed"))?;
        debug!(path = request.path(), "session request");
        let connection = request
            .accept()
            .await
            .map_err(|e| debug!(error = %e, "accept failed"))?;
        let stream = connection.accept_bi().await;
        Ok::<_, ()>((connection, stream))
    })
    .await;
    let (connection, (mut send, recv)) = match opened {
        Ok(Ok((connection, Ok(stream)))) => (connection, stream),
        Ok(Ok((connection, Err(_)))) => return close(&connection, ErrorCode::Timeout),
        Ok(Err(())) => return,
        Err(_) => return debug!("session not opened in time"),
    };
    let end = serve(&connection, &mut send, recv, &context, from).await;
    match end {
        End::Left => {
            info!("left");
            close(&connection, ErrorCode::Normal);
        }
        End::Disconnected => info!("disconnected"),
        End::Failed(code) => {
            info!(?code, "closing session with an error");
            fail(&connection, &mut send, code).await;
        }
    }
}

async fn serve(
    connection: &Connection,
    send: &mut SendStream,
    mut recv: RecvStream,
    context: &Context,
    from: IpAddr,
) -> End {
    let mut decoder = FrameDecoder::new();
    if !context.attempts.allowed(from, Instant::now()) {
        info!(%from, "join refused unread: too many failed joins from this address");
        return End::Failed(ErrorCode::TooManyAttempts);
    }
    let joined =
        tokio::time::timeout(JOIN_TIMEOUT, handshake(&mut recv, &mut decoder, context)).await;
    let (room_name, who, resume, e2ee) = match joined {
        Err(_) => return End::Failed(ErrorCode::Timeout),
        Ok(Err(end)) => {
            if matches!(end, End::Failed(_)) {
                context.attempts.failed(from, Instant::now());
            }
            return end;
        }
        Ok(Ok(join)) => join,
    };
    let name = who.name.clone();
    let identity = who.identity.clone();
    let (control_tx, mut control_rx) = mpsc::channel(CONTROL_QUEUE);
    let media = Arc::new(Notify::new());
    let session = connection.stable_id() as u64;
    let peer = Peer {
        control: control_tx,
        media: media.clone(),
        connection: connection.clone(),
        session,
    };
    let (room, joined) = match context.rooms.join(&room_name, who, resume, e2ee, peer) {
        Ok(joined) => joined,
        Err(error) => return error.into(),
    };
    let id = joined.id;
    if joined.resumed {
        info!(room = room_name, name, identity, participant = %id, "took its place back");
    } else {
        info!(room = room_name, name, identity, participant = %id, "joined");
    }

    let mut tasks = JoinSet::new();
    tasks.spawn(read_control(recv, decoder, room.clone(), id));
    tasks.spawn(read_audio(connection.clone(), room.clone(), id));
    tasks.spawn(read_video(
        connection.clone(),
        room.clone(),
        id,
        context.media.child(CONNECTION_MEDIA_BUDGET),
    ));
    let pace = Arc::new(VideoPace::new());
    tasks.spawn(watch_link(
        connection.clone(),
        room.clone(),
        id,
        pace.clone(),
    ));
    tasks.spawn(send_media(
        connection.clone(),
        room.clone(),
        id,
        media,
        pace,
    ));
    let mut stop = context.stop.clone();
    let mut out = Vec::new();
    let end = loop {
        tokio::select! {
            message = control_rx.recv() => {
                let Some(message) = message else { break End::Disconnected };
                out.clear();
                if framing::encode_into(&message, &mut out).is_err() {
                    warn!(?message, "dropping an unencodable message");
                    continue;
                }
                if send.write_all(&out).await.is_err() {
                    break End::Disconnected;
                }
            }
            Some(done) = tasks.join_next() => {
                break done.unwrap_or(End::Failed(ErrorCode::Internal));
            }
            () = stopped(&mut stop) => break End::Failed(ErrorCode::ShuttingDown),
        }
    };
    tasks.abort_all();
    let reason = match end {
        End::Left => LeaveReason::Left,
        End::Disconnected => LeaveReason::Disconnected,
        End::Failed(code) => LeaveReason::Removed(code),
    };
    context.rooms.leave(&room, id, session, reason);
    end
}

/// Reads the hello and the join.
async fn handshake(
    recv: &mut RecvStream,
    decoder: &mut FrameDecoder,
    context: &Context,
) -> Result<(String, Admission, Option<Resume>, bool), End> {
    match next_message(recv, decoder).await? {
        ToRelay::Hello { version, agent } => {
            if version != PROTOCOL_VERSION {
                return Err(Error::UnsupportedVersion(version).into());
            }
            debug!(agent, "hello");
        }
        _ => return Err(Error::Violation("expected hello").into()),
    }
    match next_message(recv, decoder).await? {
        ToRelay::Join {
            room,
            name,
            token,
            resume,
            e2ee,
        } => {
            match context
                .access
                .admit(&room, &name, token.as_deref(), SystemTime::now())
            {
                Ok(who) => Ok((room, who, resume, e2ee)),
                Err(refusal) => {
                    info!(room, name, reason = %refusal, "join refused");
                    Err(End::Failed(refusal.code()))
                }
            }
        }
        _ => Err(Error::Violation("expected join").into()),
    }
}

async fn next_message(recv: &mut RecvStream, decoder: &mut FrameDecoder) -> Result<ToRelay, End> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(message) = decoder.poll_message()? {
            return Ok(message);
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            Ok(None) | Err(_) => return Err(End::Disconnected),
        }
    }
}

async fn read_control(
    mut recv: RecvStream,
    mut decoder: FrameDecoder,
    room: Arc<SharedRoom>,
    id: ParticipantId,
) -> End {
    loop {
        let message = match next_message(&mut recv, &mut decoder).await {
            Ok(message) => message,
            Err(end) => return end,
        };
        if message == ToRelay::Leave {
            return End::Left;
        }
        if let Err(error) = room.with(|room, now| room.handle_message(id, message, now)) {
            return error.into();
        }
    }
}

async fn read_audio(connection: Connection, room: Arc<SharedRoom>, id: ParticipantId) -> End {
    loop {
        let Ok(datagram) = connection.receive_datagram().await else {
            return End::Disconnected;
        };
        let result = MediaFrame::decode(datagram.payload(), TrackKind::Audio)
            .and_then(|frame| room.forward(id, frame, TrackKind::Audio));
        if let Err(error) = result {
            return error.into();
        }
    }
}

async fn read_video(
    connection: Connection,
    room: Arc<SharedRoom>,
    id: ParticipantId,
    budget: Budget,
) -> End {
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = connection.accept_uni() => {
                let Ok(stream) = stream else { return End::Disconnected };
                streams.spawn(read_video_frame(stream, room.clone(), id, budget.clone()));
            }
            Some(done) = streams.join_next() => {
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return error.into(),
                    Err(_) => return End::Failed(ErrorCode::Internal),
                }
            }
        }
    }
}

/// Reads one video frame from its stream and forwards it. A stream the peer abandoned (reset,
/// cut by the connection ending, or too slow to arrive) is no error; a malformed or oversized one
/// is, and so is video on a track published as audio.
async fn read_video_frame(
    mut stream: RecvStream,
    room: Arc<SharedRoom>,
    id: ParticipantId,
    budget: Budget,
) -> Result<(), Error> {
    let read = read_video_wire(&mut stream, &room, id, &budget);
    match tokio::time::timeout(VIDEO_READ_TIMEOUT, read).await {
        Ok(Ok(Some(frame))) => room.forward(id, frame, TrackKind::Video),
        Ok(Ok(None)) => Ok(()),
        Ok(Err(error)) => Err(error),
        Err(_) => {
            stream.stop(VarInt::from_u32(0));
            Ok(())
        }
    }
}

async fn read_video_wire(
    stream: &mut RecvStream,
    room: &SharedRoom,
    id: ParticipantId,
    budget: &Budget,
) -> Result<Option<MediaFrame>, Error> {
    let Some((header, parsed)) = stream::read_header(stream).await? else {
        return Ok(None);
    };
    let track = TrackId {
        participant: id,
        index: parsed.track.index,
    };
    // Check the track before taking in up to a megabyte for it.
    match room.with(|room, _| room.track_kind(track)) {
        Some(TrackKind::Video) => {}
        Some(TrackKind::Audio) => return Err(Error::Violation("video on an audio track")),
        None => return Ok(None), // not published (yet): dropped
    }
    stream::read_payload(stream, header, parsed, budget).await
}

async fn send_media(
    connection: Connection,
    room: Arc<SharedRoom>,
    id: ParticipantId,
    media: Arc<Notify>,
    pace: Arc<VideoPace>,
) -> End {
    let permits = Arc::new(Semaphore::new(VIDEO_IN_FLIGHT));
    let mut writers = JoinSet::new();
    let mut priorities: HashMap<TrackId, FramePriority> = HashMap::new();
    loop {
        while let Some(frame) = room.with(|room, _| room.poll_audio(id)) {
            match connection.send_datagram(&frame.wire) {
                Ok(()) => {}
                Err(wtransport::error::SendDatagramError::NotConnected) => {
                    return End::Disconnected;
                }
                Err(error) => debug!(%error, "audio datagram not sent"),
            }
        }
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            let Some(frame) = room.with(|room, _| room.poll_video(id)) else {
                break;
            };
            let priority = priorities
                .entry(frame.header.track)
                .or_default()
                .next(frame.header.keyframe);
            writers.spawn(write_video(
                connection.clone(),
                frame,
                priority,
                permit,
                pace.clone(),
            ));
        }
        tokio::select! {
            () = media.notified() => {}
            Some(_) = writers.join_next(), if !writers.is_empty() => {}
        }
    }
}

/// Every [`LINK_EVERY`], hands the room a look at this subscriber's link: what went out since
/// the last look and how far its round trip is above its least (a queue building up at the
/// bottleneck: [`rotunda_proto::link`] makes an estimate of it), plus the congestion
/// controller's own estimate once it has one. Then paces video at the budget that follows.
async fn watch_link(
    connection: Connection,
    room: Arc<SharedRoom>,
    id: ParticipantId,
    pace: Arc<VideoPace>,
) -> End {
    let mut tick = tokio::time::interval(LINK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let quic = connection.quic_connection().clone();
    let mut sent = quic.stats().udp_tx.bytes;
    let mut at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let stats = quic.stats();
        let now = tokio::time::Instant::now();
        let seconds = now.saturating_duration_since(at).as_secs_f64().max(0.001);
        let sent_kbps = stats.udp_tx.bytes.saturating_sub(sent) as f64 * 8.0 / 1000.0 / seconds;
        (sent, at) = (stats.udp_tx.bytes, now);
        let sample = LinkSample {
            sent_kbps,
            queueing: stats.path.rtt.saturating_sub(stats.path.min_rtt),
        };
        if sample.queueing > rotunda_proto::link::OVERUSE {
            debug!(%id, queueing_ms = sample.queueing.as_millis(), sent_kbps, "a subscriber's link is queueing");
        }
        let transport = measured_kbps(&quic);
        let budget = room.with(|room, now| {
            if let Some(kbps) = transport {
                room.set_downlink(id, kbps);
            }
            room.handle_link(id, sample, now);
            room.video_budget(id)
        });
        if let Some(budget) = budget {
            pace.set_budget(budget);
        }
    }
}

/// What the congestion controller measured the path to carry, in kb/s: BBR's pacing rate,
/// once it took a bandwidth sample (it takes none while the sender is application-limited,
/// as a meeting nearly always is: then there is nothing).
fn measured_kbps(connection: &wtransport::quinn::Connection) -> Option<u32> {
    let bps = connection.congestion_state().metrics().pacing_rate?;
    (bps > 0).then(|| (bps / 1000).min(u64::from(u32::MAX)) as u32)
}

/// One subscriber's video pacing: the rate follows its budget.
struct VideoPace {
    pacer: std::sync::Mutex<Pacer>,
    kbps: AtomicU32,
}

impl VideoPace {
    fn new() -> Self {
        Self {
            pacer: std::sync::Mutex::new(Pacer::new(PACE_BURST)),
            kbps: AtomicU32::new(u32::MAX),
        }
    }

    fn set_budget(&self, budget_kbps: u32) {
        let kbps = (f64::from(budget_kbps) * PACE_OVER_BUDGET) as u32;
        self.kbps
            .store(kbps.max(PACE_FLOOR_KBPS), Ordering::Relaxed);
    }

    /// When `bytes` more may go.
    fn reserve(&self, bytes: usize) -> std::time::Instant {
        let kbps = f64::from(self.kbps.load(Ordering::Relaxed));
        self.pacer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(bytes, kbps, std::time::Instant::now())
    }
}

async fn write_video(
    connection: Connection,
    frame: MediaFrame,
    priority: i32,
    _permit: OwnedSemaphorePermit,
    pace: Arc<VideoPace>,
) {
    let pace = move |bytes| pace.reserve(bytes);
    stream::write_frame(&connection, &frame, priority, STALE_VIDEO, Some(&pace)).await;
}

/// Tells the client why it is being closed, gives it a moment to read that, then closes.
async fn fail(connection: &Connection, send: &mut SendStream, code: ErrorCode) {
    let _ = tokio::time::timeout(ERROR_GRACE, async {
        if let Ok(bytes) = framing::encode(&FromRelay::Error { code }) {
            send.write_all(&bytes).await?;
        }
        send.finish().await
    })
    .await;
    close(connection, code);
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn close(connection: &Connection, code: ErrorCode) {
    connection.close(VarInt::from_u32(code.as_u32()), b"");
}
