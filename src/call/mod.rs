//! The call engine: one participant's session with a room, shared by `rotunda bot` and the
//! windowed client.
//!
//! It joins a room, publishes a video source (H.264) and an audio source (Opus), subscribes to
//! everyone, decodes everything, and reports what it saw as a [`BotReport`]. Decoded pictures
//! carrying a sender mark (the synthetic pattern) are checked against the participant they came
//! from.
//!
//! Video is encoded and decoded on threads of their own; audio is encoded, played out through a
//! jitter buffer and decoded on the 20 ms tick of the async task. A windowed client passes an
//! [`AppLink`]: commands come in, events go out through bounded channels, and decoded pictures
//! and voices land in mailboxes ([`Pictures`], [`Voices`]) that the renderer and the speakers
//! read at their own pace.

pub mod bridge;
#[cfg(native)]
mod native;
pub mod report;
#[cfg(web)]
mod web;

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotunda_proto::{
    FromRelay, MediaFrame, MediaHeader, ParticipantId, ToRelay, TrackId, TrackInfo, TrackKind,
    TrackSource,
};
use tokio::sync::mpsc;
use web_time::{Instant, SystemTime, UNIX_EPOCH};

pub use bridge::{CallEvent, Command, LivePeer, LiveStats, Pictures, Poses, Voices};
#[cfg(native)]
pub use native::run;
pub use report::{BotReport, ChatLine, PeerReport};
#[cfg(web)]
pub use web::run;

use crate::audio::JitterBuffer;
use crate::media::reorder::{Released, Reorder};
use crate::media::sequence::Unwrapper;
use crate::media::{AUDIO_CODEC, AudioDecoder, AudioSource, VIDEO_CODEC, VideoSource};
use crate::net::{self, JoinOptions, Session};
use crate::sync::lock;

const VIDEO_INDEX: u8 = 0;
const AUDIO_INDEX: u8 = 1;
// How much audio waits before playout, and at most: the platform's.
#[cfg(native)]
use native::{JITTER_CAPACITY, JITTER_CATCH_UP, JITTER_TARGET};
#[cfg(web)]
use web::{JITTER_CAPACITY, JITTER_CATCH_UP, JITTER_TARGET};
const AUDIO_BITRATE: i32 = 32_000;

/// Resolution and frame rate, written `640x480@30`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSpec {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
}

impl Default for VideoSpec {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            fps: 30,
        }
    }
}

impl VideoSpec {
    /// The encoder's target: 800 kb/s at 640x480@30, scaled by pixel rate.
    pub fn bitrate(&self) -> u32 {
        let scale =
            (self.width * self.height) as f64 / (640.0 * 480.0) * f64::from(self.fps) / 30.0;
        ((800_000.0 * scale) as u32).max(100_000)
    }
}

impl FromStr for VideoSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not WIDTHxHEIGHT@FPS, e.g. 640x480@30");
        let (size, fps) = s.split_once('@').unwrap_or((s, "30"));
        let (w, h) = size.split_once('x').ok_or_else(bad)?;
        let spec = VideoSpec {
            width: w.parse().map_err(|_| bad())?,
            height: h.parse().map_err(|_| bad())?,
            fps: fps.parse().map_err(|_| bad())?,
        };
        let ok = (64..=3840).contains(&spec.width)
            && (64..=2160).contains(&spec.height)
            && spec.width.is_multiple_of(2)
            && spec.height.is_multiple_of(2)
            && (1..=60).contains(&spec.fps);
        if !ok {
            return Err(format!(
                "{s:?}: even sizes from 64x64 to 3840x2160, 1 to 60 fps"
            ));
        }
        Ok(spec)
    }
}

/// What a call does.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Where and as whom.
    pub join: JoinOptions,
    /// How long it stays; until [`Command::Leave`] when `None`.
    pub duration: Option<Duration>,
    /// Video to publish, if any.
    pub video: Option<VideoSpec>,
    /// Publish audio.
    pub audio: bool,
    /// Chat lines to send once, right after joining.
    pub chat: Vec<String>,
    /// Print a status line every second.
    pub status: bool,
}

/// Opens a video source on the encoder thread (a camera may have to live on the thread that
/// opened it); given the participant id, for sources that mark their pictures.
pub type VideoSourceFactory = Box<dyn FnOnce(ParticipantId) -> Box<dyn VideoSource> + Send>;

/// How a windowed application takes part in a call. Without one, the call runs on its own (a
/// bot) with the synthetic sources.
pub struct AppLink {
    /// Commands from the application.
    pub commands: mpsc::Receiver<Command>,
    /// Events for the application (never blocking).
    pub events: std::sync::mpsc::Sender<CallEvent>,
    /// Where others' poses go.
    pub poses: Arc<Poses>,
    /// Where decoded pictures go.
    pub pictures: Arc<Pictures>,
    /// Where decoded voices go.
    pub voices: Arc<Voices>,
    /// The video source; the synthetic pattern when `None`.
    pub camera: Option<VideoSourceFactory>,
    /// The audio source; the synthetic tone when `None`.
    pub microphone: Option<Box<dyn AudioSource>>,
    /// Start with the microphone off.
    pub microphone_off: bool,
    /// Start with the camera off.
    pub camera_off: bool,
}

impl AppLink {
    fn emit(&self, event: CallEvent) {
        let _ = self.events.send(event);
    }
}

#[derive(Debug, Default)]
struct PeerStats {
    video_received: u64,
    video_decoded: u64,
    video_skipped: u64,
    wrong_sender: u64,
    audio_received: u64,
    audio_decoded: u64,
    audio_concealed: u64,
    video_latency_ms: Reservoir,
    audio_latency_ms: Reservoir,
    bytes_received: u64,
    /// Sequence numbers seen (extended to 64 bits): first and last, per kind.
    video_span: SequenceSpan,
    audio_span: SequenceSpan,
}

#[derive(Debug, Default)]
struct Stats {
    peers: HashMap<ParticipantId, PeerStats>,
    decode_errors: u64,
}

impl Stats {
    /// The counters of participant `id`, started on first use.
    fn peer(&mut self, id: ParticipantId) -> &mut PeerStats {
        self.peers.entry(id).or_default()
    }
}

type SharedStats = Arc<Mutex<Stats>>;

/// Microseconds since the Unix epoch: the capture clock shared by everyone on one machine.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

fn latency_ms(capture_us: u64) -> f64 {
    now_us().saturating_sub(capture_us) as f64 / 1000.0
}

/// What the bot knows of the others and receives from them.
#[derive(Default)]
struct Others {
    /// Everyone seen, by id (kept after they leave, for the report).
    names: HashMap<ParticipantId, String>,
    /// Who is in the room now.
    present: BTreeSet<ParticipantId>,
    /// Playout of each subscribed audio track.
    audio: HashMap<TrackId, AudioTrack>,
    /// Reordering of each subscribed video track.
    reorders: HashMap<TrackId, Reorder<MediaFrame>>,
}

impl Others {
    /// A video frame from the relay: counted, then put back in order on its track; returns the
    /// frames ready to decode and whether the track needs a keyframe.
    fn receive_video(&mut self, stats: &SharedStats, frame: MediaFrame) -> Released<MediaFrame> {
        note_received(stats, &frame, TrackKind::Video);
        let header = frame.header;
        self.reorders.entry(header.track).or_default().push(
            header.sequence,
            header.keyframe,
            frame,
            Instant::now(),
        )
    }

    /// An audio frame from the relay: counted, then queued for playout on its track (dropped
    /// when we are not subscribed to it).
    fn receive_audio(&mut self, stats: &SharedStats, frame: MediaFrame) {
        note_received(stats, &frame, TrackKind::Audio);
        if let Some(audio) = self.audio.get_mut(&frame.header.track) {
            audio.jitter.push(frame.header.sequence, frame);
        }
    }
}

struct AudioTrack {
    jitter: JitterBuffer<MediaFrame>,
    decoder: AudioDecoder,
}

/// Once joined: tells the application, starts the report and the counters, and subscribes to
/// everything the participants already there publish.
fn on_joined(
    config: &CallConfig,
    session: &Session,
    link: Option<&AppLink>,
) -> anyhow::Result<(BotReport, SharedStats, Others)> {
    let me = session.id();
    let report = BotReport {
        name: config.join.name.clone(),
        room: config.join.room.clone(),
        id: me.0,
        ..BotReport::default()
    };
    if let Some(link) = link {
        link.emit(CallEvent::Joined {
            you: me,
            roster: session.roster().to_vec(),
        });
    }
    let mut others = Others::default();
    for peer in session.roster() {
        others.names.insert(peer.id, peer.name.clone());
        others.present.insert(peer.id);
        for (index, info) in &peer.tracks {
            let track = TrackId {
                participant: peer.id,
                index: *index,
            };
            subscribe(session, track, info, &mut others.audio)?;
        }
    }
    Ok((report, SharedStats::default(), others))
}

/// Announces the camera track.
fn publish_video(session: &Session, spec: VideoSpec) -> Result<(), net::Error> {
    session.send(ToRelay::Publish {
        index: VIDEO_INDEX,
        info: TrackInfo {
            kind: TrackKind::Video,
            codec: VIDEO_CODEC.into(),
            source: TrackSource::Camera,
            width: spec.width as u16,
            height: spec.height as u16,
        },
    })
}

/// Announces the microphone track.
fn publish_audio(session: &Session) -> Result<(), net::Error> {
    session.send(ToRelay::Publish {
        index: AUDIO_INDEX,
        info: TrackInfo {
            kind: TrackKind::Audio,
            codec: AUDIO_CODEC.into(),
            source: TrackSource::Microphone,
            width: 0,
            height: 0,
        },
    })
}

/// Hands a control message to the application: poses to their mailbox, the rest as events; the
/// voice and pose of someone who left are forgotten (their picture is the decoder's to drop).
fn relay_to_app(link: &AppLink, message: &FromRelay) {
    match message {
        FromRelay::Pose { id, pose } => link.poses.store(*id, *pose),
        FromRelay::Pong { .. } | FromRelay::Welcome { .. } => {}
        _ => link.emit(CallEvent::Relay(message.clone())),
    }
    if let FromRelay::ParticipantLeft { id, .. } = message {
        link.voices.remove(*id);
        link.poses.remove(*id);
    }
}

/// The outgoing rate (kb/s) since `last_sent` (bytes, when), and how long that was; `last_sent`
/// moves to now.
fn rate_out(report: &BotReport, last_sent: &mut (u64, Instant)) -> (f64, f64) {
    let sent = report.video_bytes_sent + report.audio_bytes_sent;
    let seconds = last_sent.1.elapsed().as_secs_f64().max(0.001);
    let kbps = (sent - last_sent.0) as f64 * 8.0 / 1000.0 / seconds;
    *last_sent = (sent, Instant::now());
    (kbps, seconds)
}

/// Counts a frame received from the relay.
fn note_received(stats: &SharedStats, frame: &MediaFrame, kind: TrackKind) {
    let mut stats = lock(stats);
    let peer = stats.peer(frame.header.track.participant);
    peer.bytes_received += frame.payload().len() as u64;
    match kind {
        TrackKind::Video => {
            peer.video_received += 1;
            peer.video_span.see(frame.header.sequence);
        }
        TrackKind::Audio => {
            peer.audio_received += 1;
            peer.audio_span.see(frame.header.sequence);
        }
    }
}

/// A control message that could not be queued is dropped and logged; only a lost session ends
/// the call.
fn soft(result: Result<(), net::Error>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(net::Error::Lost) => Err(net::Error::Lost.into()),
        Err(error) => {
            tracing::warn!(%error, "control message dropped");
            Ok(())
        }
    }
}

/// Keeps the optional control messages (poses, keyframe requests) well under the relay's budget
/// per participant (60 a second, bursts of 120), so that recovering many panels at once while
/// walking never gets the session closed; at most one keyframe request per track per 300 ms.
struct ControlLimiter {
    tokens: f64,
    last: Instant,
    keyframes: HashMap<TrackId, Instant>,
}

impl ControlLimiter {
    /// Optional messages per second, and the burst allowed.
    const RATE: f64 = 30.0;
    const BURST: f64 = 40.0;
    const KEYFRAME_GAP: Duration = Duration::from_millis(300);

    fn new() -> Self {
        Self {
            tokens: Self::BURST,
            last: Instant::now(),
            keyframes: HashMap::new(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * Self::RATE).min(Self::BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn send_optional(&mut self, session: &Session, message: ToRelay) -> anyhow::Result<()> {
        if self.take() {
            soft(session.send(message))?;
        }
        Ok(())
    }

    fn request_keyframe(&mut self, session: &Session, track: TrackId) -> anyhow::Result<()> {
        let now = Instant::now();
        if self
            .keyframes
            .get(&track)
            .is_some_and(|at| now.duration_since(*at) < Self::KEYFRAME_GAP)
        {
            return Ok(());
        }
        if self.keyframes.len() > 256 {
            self.keyframes
                .retain(|_, at| now.duration_since(*at) < Self::KEYFRAME_GAP);
        }
        self.keyframes.insert(track, now);
        self.send_optional(session, ToRelay::KeyframeRequest { track })
    }
}

/// The span of sequence numbers seen on a track: how many frames were sent while we were there,
/// whether they arrived or not.
#[derive(Debug, Default)]
struct SequenceSpan {
    unwrapper: Unwrapper,
    first: Option<u64>,
    last: u64,
}

impl SequenceSpan {
    fn see(&mut self, sequence: u32) {
        let extended = self.unwrapper.extend(sequence);
        let first = *self.first.get_or_insert(extended);
        if extended < first {
            self.first = Some(extended);
        }
        self.last = self.last.max(extended);
    }

    fn count(&self) -> u64 {
        self.first.map_or(0, |first| self.last - first + 1)
    }
}

/// Latency samples, at most [`Reservoir::CAPACITY`] of them, a uniform sample of the whole call
/// (so a day-long meeting does not grow memory).
#[derive(Debug, Default)]
struct Reservoir {
    samples: Vec<f64>,
    seen: u64,
    rng: u64,
}

impl Reservoir {
    const CAPACITY: usize = 20_000;

    fn push(&mut self, value: f64) {
        self.seen += 1;
        if self.samples.len() < Self::CAPACITY {
            self.samples.push(value);
            return;
        }
        // xorshift64: no dependency, good enough to pick a slot.
        self.rng = if self.rng == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            self.rng
        };
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = self.rng % self.seen;
        if let Some(sample) = self.samples.get_mut(slot as usize) {
            *sample = value;
        }
    }

    fn recent(&self, n: usize) -> &[f64] {
        &self.samples[self.samples.len().saturating_sub(n)..]
    }
}

fn media_header(index: u8, sequence: u32, capture_us: u64, keyframe: bool) -> MediaHeader {
    MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index,
        },
        sequence,
        capture_us,
        keyframe,
        payload_len: 0,
    }
}

/// Subscribes to a track we can decode, readying its audio playout.
fn subscribe(
    session: &Session,
    track: TrackId,
    info: &TrackInfo,
    audio_tracks: &mut HashMap<TrackId, AudioTrack>,
) -> anyhow::Result<()> {
    match info.kind {
        TrackKind::Video if info.codec == VIDEO_CODEC => {}
        TrackKind::Audio if info.codec == AUDIO_CODEC => {
            audio_tracks.insert(
                track,
                AudioTrack {
                    jitter: JitterBuffer::new(JITTER_TARGET, JITTER_CAPACITY)
                        .with_catch_up(JITTER_CATCH_UP),
                    decoder: AudioDecoder::new()?,
                },
            );
        }
        _ => return Ok(()),
    }
    session.send(ToRelay::Subscribe { track })?;
    Ok(())
}

/// Applies one control message; returns an error text when the session must end.
fn handle_control(
    message: FromRelay,
    session: &Session,
    others: &mut Others,
    report: &mut BotReport,
    keyframe_wanted: &AtomicBool,
) -> anyhow::Result<Option<String>> {
    match message {
        FromRelay::ParticipantJoined(info) => {
            others.names.insert(info.id, info.name.clone());
            others.present.insert(info.id);
            for (index, track) in &info.tracks {
                subscribe(
                    session,
                    TrackId {
                        participant: info.id,
                        index: *index,
                    },
                    track,
                    &mut others.audio,
                )?;
            }
        }
        FromRelay::ParticipantLeft { id, .. } => {
            let name = others
                .names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| id.to_string());
            report.left.push(name);
            others.present.remove(&id);
            others.audio.retain(|track, _| track.participant != id);
            others.reorders.retain(|track, _| track.participant != id);
        }
        FromRelay::TrackPublished { track, info } => {
            subscribe(session, track, &info, &mut others.audio)?;
        }
        FromRelay::TrackUnpublished { track } => {
            others.audio.remove(&track);
            others.reorders.remove(&track);
        }
        FromRelay::KeyframeRequest { index } => {
            if index == VIDEO_INDEX {
                report.keyframe_requests_received += 1;
                keyframe_wanted.store(true, Ordering::Relaxed);
            }
        }
        FromRelay::Chat { name, text, .. } => {
            report.chat_received.push(ChatLine { from: name, text });
        }
        FromRelay::Error { code } => return Ok(Some(format!("relay error {code:?}"))),
        FromRelay::Welcome { .. }
        | FromRelay::Pose { .. }
        | FromRelay::Mute { .. }
        | FromRelay::Pong { .. } => {}
    }
    Ok(None)
}

/// Pictures larger than this are not shown (nor decoded further): a peer cannot make us
/// allocate textures beyond what any GPU takes.
const MAX_PICTURE: (usize, usize) = (3840, 2160);

#[derive(Default)]
struct StatusSnapshot {
    peers: HashMap<ParticipantId, PeerSnapshot>,
}

#[derive(Default, Clone, Copy)]
struct PeerSnapshot {
    video_decoded: u64,
    audio_decoded: u64,
    audio_concealed: u64,
    bytes_received: u64,
    video_latency_ms: f64,
}

impl StatusSnapshot {
    fn take(stats: &SharedStats) -> Self {
        let stats = lock(stats);
        let peers = stats
            .peers
            .iter()
            .map(|(id, p)| {
                let recent = p.video_latency_ms.recent(30);
                (
                    *id,
                    PeerSnapshot {
                        video_decoded: p.video_decoded,
                        audio_decoded: p.audio_decoded,
                        audio_concealed: p.audio_concealed,
                        bytes_received: p.bytes_received,
                        video_latency_ms: percentile(recent, 0.5),
                    },
                )
            })
            .collect();
        Self { peers }
    }
}

fn status_line(
    name: &str,
    elapsed: Duration,
    others: &Others,
    now: &StatusSnapshot,
    before: &StatusSnapshot,
    session: &Session,
) -> String {
    let mut line = format!(
        "[{name}] {:>3}s rtt {:.1} ms |",
        elapsed.as_secs(),
        session.rtt().as_secs_f64() * 1000.0
    );
    if others.present.is_empty() {
        line.push_str(" alone");
    }
    for &id in &others.present {
        let now = now.peers.get(&id).copied().unwrap_or_default();
        let before = before.peers.get(&id).copied().unwrap_or_default();
        let (video, audio, latency) = (now.video_decoded, now.audio_decoded, now.video_latency_ms);
        let (video_before, audio_before) = (before.video_decoded, before.audio_decoded);
        let who = others.names.get(&id).map(String::as_str).unwrap_or("?");
        line.push_str(&format!(
            " {who}: video {} fps {latency:.0} ms, audio {}/s |",
            video - video_before,
            audio - audio_before
        ));
    }
    line
}

/// The overlay's numbers for the last `seconds`.
fn live_stats(
    session: &Session,
    others: &Others,
    now: &StatusSnapshot,
    before: &StatusSnapshot,
    seconds: f64,
    kbps_out: f64,
) -> LiveStats {
    let mut stats = LiveStats {
        rtt_ms: session.rtt().as_secs_f64() * 1000.0,
        kbps_out,
        ..LiveStats::default()
    };
    for &id in &others.present {
        let now = now.peers.get(&id).copied().unwrap_or_default();
        let before = before.peers.get(&id).copied().unwrap_or_default();
        let kbps = (now.bytes_received - before.bytes_received) as f64 * 8.0 / 1000.0 / seconds;
        let played = (now.audio_decoded + now.audio_concealed)
            - (before.audio_decoded + before.audio_concealed);
        let concealed = now.audio_concealed - before.audio_concealed;
        stats.kbps_in += kbps;
        stats.peers.push(LivePeer {
            id,
            fps: (now.video_decoded - before.video_decoded) as f64 / seconds,
            kbps,
            audio_loss: if played == 0 {
                0.0
            } else {
                concealed as f64 / played as f64
            },
            jitter_depth: others
                .audio
                .iter()
                .filter(|(track, _)| track.participant == id)
                .map(|(_, audio)| audio.jitter.depth())
                .sum(),
            video_latency_ms: now.video_latency_ms,
        });
    }
    stats
}

fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn finish_report(
    report: &mut BotReport,
    stats: &SharedStats,
    names: &HashMap<ParticipantId, String>,
) {
    let stats = lock(stats);
    report.decode_errors = stats.decode_errors;
    for (id, peer) in &stats.peers {
        let mut name = names.get(id).cloned().unwrap_or_else(|| id.to_string());
        if report.peers.contains_key(&name) {
            name = format!("{name}#{}", id.0);
        }
        report.peers.insert(
            name,
            PeerReport {
                id: id.0,
                video_frames_received: peer.video_received,
                video_frames_decoded: peer.video_decoded,
                video_frames_skipped: peer.video_skipped,
                video_frames_wrong_sender: peer.wrong_sender,
                audio_frames_received: peer.audio_received,
                audio_frames_decoded: peer.audio_decoded,
                audio_frames_concealed: peer.audio_concealed,
                video_latency_ms_p50: percentile(&peer.video_latency_ms.samples, 0.5),
                video_latency_ms_p95: percentile(&peer.video_latency_ms.samples, 0.95),
                audio_latency_ms_p50: percentile(&peer.audio_latency_ms.samples, 0.5),
                audio_latency_ms_p95: percentile(&peer.audio_latency_ms.samples, 0.95),
                video_frames_expected: peer.video_span.count(),
                audio_frames_expected: peer.audio_span.count(),
            },
        );
    }
}
