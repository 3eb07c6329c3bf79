//! The call, written once as a sans-IO state machine in the manner of `rotunda_proto::room::Room`:
//! what happened goes in through `handle_*` (with `now`), what to do comes out through `poll_*`,
//! and [`Call::poll_timeout`] says when to come back. It opens no socket and reads no clock, so
//! its tests run on a simulated clock; each platform's driver ([`run`](crate::run)) only carries
//! bytes between it, the transport, the codecs and the application.
//!
//! A call joins a room, publishes a video source (H.264) and an audio source (Opus), subscribes to
//! everyone, decodes everything, and counts what it saw ([`BotReport`]). Pictures carrying a
//! sender mark (the synthetic pattern) are checked against the participant they came from.
//!
//! Its life: joining → in the room → (lost → rejoining → in the room)* → leaving → over. A lost
//! connection is noticed within [`SILENCE`] (the relay answers a ping every [`PING_EVERY`]) and
//! retried at once, then with a growing, jittered wait ([`backoff`]); the relay's welcome back
//! keeps our place when it still holds the room.

pub mod backoff;
mod camera;
mod config;
mod events;
pub mod limiter;
mod report;
mod secure;
mod stats;
mod view;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use rotunda_proto::{
    FromRelay, Grants, LayerInfo, MediaFrame, MediaHeader, ParticipantId, Pose, Resume, ToRelay,
    TrackId, TrackInfo, TrackKind, TrackSource,
};
use web_time::Instant;

pub use crate::session::{JoinOptions, Joined};
pub use camera::{SCREEN_BITS_FPS, layer_bitrate};
pub use config::{CallConfig, VideoSpec};
pub use events::{CallEvent, Command, LivePeer, LiveStats};
pub use report::{BotReport, ChatLine, E2eeCost, PeerReport, Reconnection};
pub use secure::Security;
pub use view::PanelView;

use self::backoff::Backoff;
use self::camera::Camera;
use self::limiter::ControlLimiter;
use self::secure::Secure;
use self::stats::{Pauses, Stats, percentile};
use self::view::ViewState;
use crate::Error;
use crate::audio::{JitterBuffer, Mixer, Playout, Voices};
use crate::codec::{
    AUDIO_CODEC, AudioDecoder, AudioEncoder, CodecError, Codecs, DTX_PACKET_BYTES, EncodedVideo,
    VIDEO_CODEC, VideoDecoder,
};
use crate::media::pattern::{TestPattern, read_marks};
use crate::media::reorder::Reorder;
use crate::media::tone::Tone;
use crate::media::{AUDIO_FRAME_SAMPLES, AudioSource, VideoFrame, VideoSource};

/// The publisher's index of its camera track.
pub const VIDEO_INDEX: u8 = 0;
/// The publisher's index of its microphone track.
pub const AUDIO_INDEX: u8 = 1;
/// The publisher's index of its shared screen's track.
pub const SCREEN_INDEX: u8 = 2;
/// Opus bitrate.
const AUDIO_BITRATE: u32 = 32_000;
/// Audio is captured, encoded and played out 20 ms at a time.
const AUDIO_TICK: Duration = Duration::from_millis(20);
/// Audio packets buffered before playout starts (2 x 20 ms).
const JITTER_TARGET: usize = 2;
/// Audio packets held at most (1 s).
const JITTER_CAPACITY: usize = 50;
/// Packets beyond the target before playout plays more than one a tick (40 ms): a burst (a
/// sender that stalled, then sent what it owed) is decoded faster than real time until the
/// delay is back near the target, nothing of it lost; the voice's queue then drops what the
/// speakers cannot take in time.
const JITTER_ACCELERATE: usize = 2;
/// Packets played in one tick at most while accelerating (so a burst of half a second drains
/// in about 150 ms).
const JITTER_BURST_TURNS: usize = 4;
/// Packets beyond the target before playout skips ahead (500 ms): only a stall longer than
/// acceleration can absorb loses packets.
const JITTER_CATCH_UP: usize = 25;
/// Chunks queued in a video decoder before the track pauses (the decoder finishing what it has)
/// and takes up again at a keyframe.
const DECODE_BACKLOG: usize = 30;
/// A ping this often, so the relay's answers show the connection alive and measure the RTT.
pub const PING_EVERY: Duration = Duration::from_millis(400);
/// Nothing from the relay for this long: the connection is dead.
pub const SILENCE: Duration = Duration::from_secs(2);
/// How long the first join may take (less than QUIC's own idle timeout, so a relay that never
/// answers is named as such).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(8);
/// How long one try at rejoining may take.
pub const REJOIN_TIMEOUT: Duration = Duration::from_secs(3);
/// Chat lines and departures a report keeps (the newest).
pub const REPORT_LINES: usize = 1_000;
/// How often the live statistics go out.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often the voices' levels go out (for the speaking glow).
const LEVELS_EVERY: Duration = Duration::from_millis(50);
/// Pictures larger than this are not shown: a peer cannot make us allocate textures beyond what
/// any GPU takes.
pub const MAX_PICTURE: (usize, usize) = (3840, 2160);

/// The camera, the microphone and the screen; the synthetic pattern and tone stand in for those
/// not given (a screen only when [`CallConfig::screen`] asks for one).
#[derive(Default)]
pub struct Sources {
    /// The camera, when the application has one.
    pub camera: Option<Box<dyn VideoSource>>,
    /// The microphone, when the application has one.
    pub microphone: Option<Box<dyn AudioSource>>,
    /// The screen to share, when the application captures one.
    pub screen: Option<Box<dyn VideoSource>>,
}

/// A decoded picture for the application.
#[derive(Debug)]
pub struct Decoded {
    /// Whose.
    pub from: ParticipantId,
    /// Their camera (our own id: the self-view) or their shared screen.
    pub source: TrackSource,
    /// The picture.
    pub frame: VideoFrame,
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Action {
    /// Open a session and join (or rejoin, keeping our place when `resume` is honoured); report
    /// with [`Call::handle_connected`] or [`Call::handle_connect_failed`] within `timeout`.
    Connect {
        /// Where and as whom.
        options: JoinOptions,
        /// Our place from the last session, to keep it.
        resume: Option<Resume>,
        /// How long the try may take before it counts as failed.
        timeout: Duration,
    },
    /// Send a control message.
    Send(ToRelay),
    /// Send an audio frame (a datagram).
    SendAudio(MediaFrame),
    /// Send a video frame (a stream of its own); report a refusal with
    /// [`Call::handle_video_refused`].
    SendVideo(MediaFrame),
    /// Drop the session without a goodbye (it is dead).
    Disconnect,
    /// Say goodbye, close the session, then report with [`Call::handle_left`].
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for the first join.
    Joining,
    /// In the room.
    Joined,
    /// Lost; trying to rejoin. `next` is when the next try starts, `None` while one runs.
    Rejoining { next: Option<Instant> },
    /// Goodbye said, waiting for the session to close.
    Leaving,
    /// Over.
    Over,
}

/// A received audio track: its jitter buffer and decoder.
struct AudioTrack {
    jitter: JitterBuffer<MediaFrame>,
    decoder: Option<Box<dyn AudioDecoder>>,
}

/// A received video track: reordering, decoder, and whether it must restart at a keyframe.
struct VideoTrack {
    reorder: Reorder<MediaFrame>,
    decoder: Option<Box<dyn VideoDecoder>>,
    needs_keyframe: bool,
    /// Its layers, smallest first.
    layers: Vec<LayerInfo>,
    /// The layer received now (the relay sends one at a time, switching at keyframes).
    layer: Option<u8>,
    /// Frames of another layer that came before that layer's first keyframe (small frames
    /// overtake a large keyframe): they follow it once it comes.
    switching: Vec<MediaFrame>,
    /// The newest capture time received: a late frame of a layer left behind is not taken
    /// for a switch back.
    newest_us: u64,
    /// Where its runs of numbers start again after a pause.
    pauses: Pauses,
    /// A shared screen (else a camera).
    screen: bool,
}

/// Frames of a layer being switched to held until its keyframe.
const SWITCH_HELD: usize = 30;

/// The microphone's side.
struct Microphone {
    source: Box<dyn AudioSource>,
    encoder: Option<Box<dyn AudioEncoder>>,
    samples: [f32; AUDIO_FRAME_SAMPLES],
    sequence: u32,
    /// The level of the last samples encoded, for the media header.
    level: u8,
}

/// One participant's call.
pub struct Call {
    config: CallConfig,
    codecs: Box<dyn Codecs>,
    phase: Phase,
    started: Instant,
    wall_at_start_us: u64,
    deadline: Option<Instant>,
    error: Option<Error>,
    // Who we are.
    you: Option<ParticipantId>,
    resume: Option<Resume>,
    backoff: Backoff,
    microphone_on: bool,
    camera_on: bool,
    last_pose: Option<Pose>,
    /// The last pose has not gone out yet (the control budget was spent).
    pose_pending: bool,
    chat_sent: bool,
    /// The newest chat line's number in this relay's room: lines it sends again (on a rejoin)
    /// are not counted twice.
    last_chat: Option<u64>,
    /// Chat lines passed on to the application.
    chat_lines: u64,
    // What we publish.
    camera: Option<Camera>,
    /// The shared screen, when there is one to share; `screen_on` while it is shared;
    /// `screen_announced` while the relay's room holds its track (a kept place keeps it).
    screen: Option<Camera>,
    screen_on: bool,
    screen_announced: bool,
    microphone: Option<Microphone>,
    // Who else is here, and what we receive.
    names: HashMap<ParticipantId, String>,
    present: BTreeSet<ParticipantId>,
    hidden: HashSet<ParticipantId>,
    /// What the application sees of everyone's video, for the relay.
    view: ViewState,
    audio: HashMap<TrackId, AudioTrack>,
    video: HashMap<TrackId, VideoTrack>,
    voices: Voices,
    mixer: Mixer,
    limiter: ControlLimiter,
    // Liveness and timers.
    last_heard: Instant,
    next_ping: Instant,
    rtt_ms: f64,
    /// The relay's estimate of our downlink, in kb/s, as last told.
    link_kbps: Option<u32>,
    /// What the relay's welcome says we may do.
    grants: Grants,
    /// End-to-end encryption: our member of the room's group.
    secure: Secure,
    /// What end-to-end encryption is, as last told the application.
    security: Security,
    next_audio: Instant,
    next_stats: Instant,
    next_levels: Instant,
    // What was seen.
    stats: Stats,
    report: BotReport,
    // Outputs.
    actions: VecDeque<Action>,
    events: VecDeque<CallEvent>,
    pictures: HashMap<(ParticipantId, TrackSource), VideoFrame>,
    poses: HashMap<ParticipantId, Pose>,
}

impl Call {
    /// A call about to join, as `config` says, with `codecs` and the application's `sources`;
    /// `now` on the monotonic clock is `wall_us` on the wall clock (µs since the Unix epoch).
    pub fn new(
        config: CallConfig,
        codecs: Box<dyn Codecs>,
        sources: Sources,
        now: Instant,
        wall_us: u64,
    ) -> Self {
        let camera = config.video.map(|spec| {
            let source = sources.camera.unwrap_or_else(|| {
                Box::new(TestPattern::new(0, spec.width, spec.height)) as Box<dyn VideoSource>
            });
            Camera::new(source, spec, config.simulcast, now)
        });
        let screen = config.screen.map(|spec| {
            let source = sources.screen.unwrap_or_else(|| {
                Box::new(TestPattern::new(0, spec.width, spec.height)) as Box<dyn VideoSource>
            });
            Camera::screen(source, spec, config.simulcast, now)
        });
        let microphone = config.audio.then(|| Microphone {
            source: sources
                .microphone
                .unwrap_or_else(|| Box::new(Tone::new(0)) as Box<dyn AudioSource>),
            encoder: None,
            samples: [0.0; AUDIO_FRAME_SAMPLES],
            sequence: 0,
            level: rotunda_proto::SILENT_LEVEL,
        });
        let report = BotReport {
            name: config.join.name.clone(),
            room: config.join.room.clone(),
            video_sent: config.video.map(|spec| spec.to_string()),
            ..BotReport::default()
        };
        let share_screen = screen.is_some() && config.share_screen;
        let mut call = Self {
            deadline: config.duration.map(|d| now + d),
            microphone_on: !config.microphone_off,
            camera_on: !config.camera_off,
            config,
            codecs,
            phase: Phase::Joining,
            started: now,
            wall_at_start_us: wall_us,
            error: None,
            you: None,
            resume: None,
            backoff: Backoff::new(wall_us),
            last_pose: None,
            pose_pending: false,
            chat_sent: false,
            last_chat: None,
            chat_lines: 0,
            camera,
            screen_on: share_screen,
            screen_announced: false,
            screen,
            microphone,
            names: HashMap::new(),
            present: BTreeSet::new(),
            hidden: HashSet::new(),
            view: ViewState::default(),
            audio: HashMap::new(),
            video: HashMap::new(),
            voices: Voices::default(),
            mixer: Mixer::default(),
            limiter: ControlLimiter::default(),
            last_heard: now,
            next_ping: now,
            rtt_ms: 0.0,
            link_kbps: None,
            grants: Grants::ALL,
            secure: Secure::new(),
            security: Security::default(),
            next_audio: now,
            next_stats: now + STATS_EVERY,
            next_levels: now + LEVELS_EVERY,
            stats: Stats::default(),
            report,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            pictures: HashMap::new(),
            poses: HashMap::new(),
        };
        call.actions.push_back(Action::Connect {
            options: call.config.join.clone(),
            resume: None,
            timeout: JOIN_TIMEOUT,
        });
        call
    }

    /// Our id, once joined.
    pub fn id(&self) -> Option<ParticipantId> {
        self.you
    }

    /// Whether the call is over (its [`CallEvent::Ended`] or [`CallEvent::Failed`] is queued).
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Whether the call is in the room now.
    pub fn is_joined(&self) -> bool {
        self.phase == Phase::Joined
    }

    /// The wall clock (µs since the Unix epoch) at `now`.
    pub fn wall_us(&self, now: Instant) -> u64 {
        self.wall_at_start_us + now.saturating_duration_since(self.started).as_micros() as u64
    }

    fn latency_ms(&self, capture_us: u64, now: Instant) -> f64 {
        self.wall_us(now).saturating_sub(capture_us) as f64 / 1000.0
    }

    // ----- What happened ------------------------------------------------------------------

    /// The driver opened a session: we are in the room.
    pub fn handle_connected(&mut self, joined: Joined, now: Instant) {
        let rejoin = match self.phase {
            Phase::Joining => false,
            Phase::Rejoining { .. } => true,
            // Cancelled or over meanwhile: that session is not wanted.
            Phase::Joined | Phase::Leaving | Phase::Over => {
                self.actions.push_back(Action::Disconnect);
                return;
            }
        };
        self.phase = Phase::Joined;
        self.last_heard = now;
        self.next_ping = now + PING_EVERY;
        // Whatever the last session received is gone with it.
        self.stats.archive(&self.names);
        self.names.clear();
        self.present.clear();
        self.audio.clear();
        self.video.clear();
        self.voices.clear();
        self.pictures.clear();
        self.poses.clear();
        self.hidden.clear();
        self.view.reset();
        let Joined {
            you,
            name,
            identity,
            grants,
            roster,
            resume,
            resumed,
            e2ee,
        } = joined;
        if grants != Grants::ALL {
            tracing::info!(?grants, "the access token limits what we may do");
        }
        self.grants = grants;
        self.you = Some(you);
        self.resume = Some(resume);
        self.report.id = you.0;
        self.backoff = Backoff::new(self.wall_us(now));
        let wall_ms = self.wall_us(now) / 1000;
        if let Some(reconnection) = self.report.reconnections.last_mut()
            && rejoin
        {
            reconnection.rejoined_at_ms = Some(wall_ms);
            reconnection.resumed = resumed;
        }
        let sender = you.0 as u16;
        for camera in self.camera.iter_mut().chain(self.screen.iter_mut()) {
            camera.source.set_sender(sender);
            camera.want_keyframes();
            camera.next = now;
        }
        if let Some(microphone) = &mut self.microphone {
            microphone.source.set_sender(sender);
        }
        for peer in &roster {
            self.names.insert(peer.id, peer.name.clone());
            self.present.insert(peer.id);
            for (index, info) in &peer.tracks {
                let track = TrackId {
                    participant: peer.id,
                    index: *index,
                };
                self.subscribe(track, info);
            }
        }
        let identities = roster.iter().map(|p| (p.id, p.identity.clone()));
        if let Some(package) = self.secure.welcome(you, &identity, e2ee, identities) {
            self.send(package);
        }
        if !e2ee {
            tracing::warn!("this room is not end-to-end encrypted: the relay can read its media");
        }
        self.tell_security();
        // A place kept by the relay keeps its tracks and state (but not what changed while we
        // were away: the mute state goes again); a new one announces them.
        if resumed {
            self.send_mute();
            // Shared or stopped while away: the kept place hears of it now.
            self.sync_screen();
        } else {
            self.publish();
            // A new place in the relay's room, or a new room (a restarted relay counts anew).
            self.last_chat = None;
        }
        if let Some(pose) = self.last_pose {
            self.send(ToRelay::Pose(pose));
            self.pose_pending = false;
        }
        self.say_planned_chat();
        self.events.push_back(if rejoin {
            CallEvent::Rejoined { you, roster }
        } else {
            CallEvent::Joined {
                you,
                name,
                grants,
                roster,
            }
        });
    }

    /// The driver could not open a session.
    pub fn handle_connect_failed(&mut self, error: Error, now: Instant) {
        match self.phase {
            Phase::Joining => {
                self.phase = Phase::Over;
                self.error = Some(error.clone());
                self.events.push_back(CallEvent::Failed(error));
            }
            Phase::Rejoining { .. } => {
                if error.is_retryable() {
                    self.schedule_rejoin(error, now);
                } else {
                    self.end(Some(error), now);
                }
            }
            Phase::Joined | Phase::Leaving | Phase::Over => {}
        }
    }

    /// The session ended: closed by the relay (with its code) or lost.
    pub fn handle_closed(&mut self, error: Error, now: Instant) {
        match self.phase {
            Phase::Joined => self.lost(error, now),
            Phase::Leaving => self.end(None, now),
            _ => {}
        }
    }

    /// The driver said goodbye and the session is closed.
    pub fn handle_left(&mut self, now: Instant) {
        if self.phase == Phase::Leaving {
            self.end(None, now);
        }
    }

    /// The transport refused a video frame of our track `index` (too many in flight): its
    /// next one is a keyframe.
    pub fn handle_video_refused(&mut self, index: u8) {
        if let Some(camera) = self.publisher(index) {
            camera.want_keyframes();
        }
    }

    /// Our video track `index`: the camera or the screen.
    fn publisher(&mut self, index: u8) -> Option<&mut Camera> {
        match index {
            VIDEO_INDEX => self.camera.as_mut(),
            SCREEN_INDEX => self.screen.as_mut(),
            _ => None,
        }
    }

    /// A control message from the relay.
    pub fn handle_message(&mut self, message: FromRelay, now: Instant) {
        if self.phase != Phase::Joined {
            return;
        }
        self.last_heard = now;
        match &message {
            FromRelay::ParticipantJoined(info) => {
                self.secure.joined(info.id, &info.identity);
                self.names.insert(info.id, info.name.clone());
                self.present.insert(info.id);
                self.say_planned_chat();
                for (index, track) in &info.tracks {
                    let id = TrackId {
                        participant: info.id,
                        index: *index,
                    };
                    self.subscribe(id, track);
                }
            }
            FromRelay::ParticipantLeft { id, .. } => {
                let name = self
                    .names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string());
                keep_newest(&mut self.report.left, name);
                self.secure.left(*id);
                self.present.remove(id);
                self.audio.retain(|track, _| track.participant != *id);
                self.video.retain(|track, _| track.participant != *id);
                self.voices.remove(*id);
                self.mixer.remove(*id);
                self.pictures.retain(|(from, _), _| from != id);
                self.poses.remove(id);
                self.hidden.remove(id);
            }
            FromRelay::TrackPublished { track, info } => self.subscribe(*track, info),
            FromRelay::TrackUnpublished { track } => {
                self.audio.remove(track);
                if self.video.remove(track).is_some_and(|video| video.screen) {
                    self.pictures
                        .remove(&(track.participant, TrackSource::Screen));
                }
            }
            FromRelay::KeyframeRequest { index, layer } => {
                if let Some(camera) = self.publisher(*index) {
                    camera.want_keyframe(*layer);
                    self.report.keyframe_requests_received += 1;
                }
                return;
            }
            FromRelay::LayersWanted { index, layers } => {
                if let Some(camera) = self.publisher(*index) {
                    camera.set_wanted(*layers, now);
                }
                return;
            }
            FromRelay::Chat {
                seq,
                from,
                name,
                text,
            } => {
                // The relay numbers its room's lines (and sends them again on a rejoin).
                if self.last_chat.is_none_or(|last| *seq > last) {
                    self.last_chat = Some(*seq);
                    self.chat_line(*from, name.clone(), text.clone());
                }
                return;
            }
            FromRelay::Pose { id, pose } => {
                self.poses.insert(*id, *pose);
                return;
            }
            FromRelay::Mute { id, audio, .. } => {
                if *audio {
                    self.voices.silence(*id);
                }
            }
            FromRelay::Pong { nonce } => {
                let rtt = self.wall_us(now).saturating_sub(*nonce) as f64 / 1000.0;
                if rtt < 60_000.0 {
                    self.rtt_ms = if self.rtt_ms == 0.0 {
                        rtt
                    } else {
                        self.rtt_ms * 0.875 + rtt * 0.125
                    };
                }
                return;
            }
            FromRelay::Error { code } => {
                // The relay closes the session after this.
                let code = *code;
                self.lost(Error::Closed(Some(code)), now);
                return;
            }
            FromRelay::Link { kbps } => {
                self.link_kbps = Some(*kbps);
                return;
            }
            FromRelay::Welcome { .. } => return,
            FromRelay::GroupCreate
            | FromRelay::GroupPropose { .. }
            | FromRelay::GroupCommit { .. }
            | FromRelay::GroupWelcome { .. }
            | FromRelay::SealedChat { .. } => {
                let outcome = self.secure.handle(&message, now);
                for message in outcome.send {
                    self.send(message);
                }
                if outcome.new_epoch {
                    // What was sealed under the new keys from its keyframe on.
                    let tracks: Vec<TrackId> = self.video.keys().copied().collect();
                    for track in tracks {
                        self.request_keyframe(track, now);
                    }
                    for camera in self.camera.iter_mut().chain(self.screen.iter_mut()) {
                        camera.want_keyframes();
                    }
                }
                self.tell_security();
                self.say_planned_chat();
                if let Some((from, name, text)) = outcome.chat {
                    self.chat_line(from, name, text);
                }
                return;
            }
        }
        self.events.push_back(CallEvent::Relay(message));
    }

    /// A media frame of a subscribed track.
    pub fn handle_media(&mut self, frame: MediaFrame, kind: TrackKind, now: Instant) {
        if self.phase != Phase::Joined {
            return;
        }
        // Sealed end to end: what does not open (no key for its epoch yet, or altered on the
        // way) counts for nothing.
        let Some(frame) = self.secure.open(frame, now) else {
            return;
        };
        self.last_heard = now;
        let wall_ms = self.wall_us(now) / 1000;
        if let Some(reconnection) = self.report.reconnections.last_mut()
            && reconnection.rejoined_at_ms.is_some()
            && reconnection.first_media_at_ms.is_none()
        {
            reconnection.first_media_at_ms = Some(wall_ms);
        }
        let header = frame.header;
        let track = header.track;
        let screen = self.video.get(&track).is_some_and(|video| video.screen);
        let peer = self.stats.peer(track.participant);
        peer.bytes_received += frame.payload().len() as u64;
        match kind {
            TrackKind::Video => {
                let layer = usize::from(header.layer).min(peer.video_layers.len() - 1);
                if screen {
                    peer.screen_received += 1;
                } else {
                    peer.video_received += 1;
                    peer.video_layers[layer] += 1;
                    peer.video_bytes += frame.payload().len() as u64;
                }
                if let Some(waited) = self.view.arrived(track, header.layer, now) {
                    self.stats
                        .layer_switch_ms
                        .push(waited.as_secs_f64() * 1000.0);
                }
                let Some(video) = self.video.get_mut(&track) else {
                    self.stats.peer(track.participant).video_span[layer].see(header.sequence);
                    return;
                };
                let peer = self.stats.peer(track.participant);
                let mut frames = vec![frame];
                if video.layer.is_some_and(|l| l != header.layer) {
                    if !header.keyframe || header.capture_us < video.newest_us {
                        // The new layer before its keyframe (or a late one of the old).
                        if header.capture_us >= video.newest_us {
                            video.switching.retain(|f| f.header.layer == header.layer);
                            if video.switching.len() < SWITCH_HELD {
                                video.switching.extend(frames);
                            }
                        }
                        return;
                    }
                    // The relay switched us at this keyframe: a fresh start, at the new size.
                    video.reorder = Reorder::default();
                    video.decoder = None;
                    video.needs_keyframe = false;
                    frames.extend(
                        std::mem::take(&mut video.switching)
                            .into_iter()
                            .filter(|f| f.header.layer == header.layer),
                    );
                    // A new run of that layer's numbers starts here (what the relay sent of the
                    // old one after this, or of this one before its keyframe, counts for
                    // nothing: it was never meant to be shown).
                    peer.span(screen, layer).restart();
                    video.pauses.restarted();
                }
                video.layer = Some(header.layer);
                video.newest_us = video.newest_us.max(header.capture_us);
                let span = peer.span(screen, layer);
                for frame in &frames {
                    let header = &frame.header;
                    video
                        .pauses
                        .see(span, header.sequence, header.keyframe, now);
                }
                let mut released_frames = Vec::new();
                let mut need_keyframe = false;
                for frame in frames {
                    let (sequence, keyframe) = (frame.header.sequence, frame.header.keyframe);
                    let released = video.reorder.push(sequence, keyframe, frame, now);
                    need_keyframe |= released.need_keyframe;
                    released_frames.extend(released.frames);
                }
                if need_keyframe {
                    self.request_keyframe(track, now);
                }
                for frame in released_frames {
                    self.decode_video(track, frame, now);
                }
            }
            TrackKind::Audio => {
                peer.audio_received += 1;
                peer.audio_span.see(header.sequence);
                if let Some(audio) = self.audio.get_mut(&track) {
                    audio.jitter.push(header.sequence, frame);
                }
            }
        }
    }

    /// Something the application asked.
    pub fn handle_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Chat(text) => {
                if self.phase == Phase::Joined {
                    self.say(text);
                }
            }
            Command::Pose(pose) => {
                self.last_pose = Some(pose);
                self.pose_pending = true;
                self.send_pose(now);
            }
            Command::Microphone(on) => {
                self.microphone_on = on;
                self.send_mute();
            }
            Command::Camera(on) => {
                self.camera_on = on;
                if let Some(camera) = &mut self.camera
                    && on
                {
                    camera.want_keyframes();
                }
                self.send_mute();
            }
            Command::Screen(on) => self.share_screen(on),
            Command::Scene(scene) => self.mixer.set_scene(&scene),
            Command::Visible { id, visible } => {
                if visible {
                    self.hidden.remove(&id);
                } else {
                    self.hidden.insert(id);
                }
            }
            Command::View(panels) => self.view.set(panels),
            Command::Sound { name, samples } => {
                if let Err(error) = self.mixer.load_sound(name, samples) {
                    tracing::warn!("{error}");
                }
            }
            Command::Play { sound, at } => match self.mixer.play(&sound, at) {
                Ok(true) => *self.stats.sounds_played.entry(sound).or_default() += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!("{error}"),
            },
            Command::Leave => self.leave(now),
        }
    }

    /// Time passed: capture, play out, ping, report, try again; and take in what the codecs
    /// delivered. Call at [`Call::poll_timeout`], and whenever a codec wakes the driver.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Over {
            return;
        }
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            self.deadline = None;
            self.leave(now);
            if self.phase == Phase::Over {
                return;
            }
        }
        match self.phase {
            Phase::Joined => {
                if now.saturating_duration_since(self.last_heard) >= SILENCE {
                    self.lost(
                        Error::Silent {
                            seconds: SILENCE.as_secs(),
                        },
                        now,
                    );
                } else if now >= self.next_ping {
                    self.next_ping = now + PING_EVERY;
                    let nonce = self.wall_us(now);
                    self.send(ToRelay::Ping { nonce });
                }
                // A pose the budget held back goes as soon as it allows.
                self.send_pose(now);
                if self.view.is_given() {
                    // Panels are cameras; a screen on the wall is the relay's first choice.
                    let tracks: HashMap<TrackId, Vec<LayerInfo>> = self
                        .video
                        .iter()
                        .filter(|(_, video)| !video.screen)
                        .map(|(track, video)| (*track, video.layers.clone()))
                        .collect();
                    let max_kbps = self.config.max_kbps.unwrap_or(0);
                    if let Some(message) = self.view.poll(&tracks, max_kbps, now) {
                        self.send(message);
                    }
                }
            }
            Phase::Rejoining { next: Some(at) } if now >= at => {
                self.phase = Phase::Rejoining { next: None };
                if let Some(reconnection) = self.report.reconnections.last_mut() {
                    reconnection.attempts += 1;
                }
                self.actions.push_back(Action::Connect {
                    options: self.config.join.clone(),
                    resume: self.resume,
                    timeout: REJOIN_TIMEOUT,
                });
            }
            _ => {}
        }
        // Audio: 20 ms at a time, catching up after a stall of up to 200 ms (longer ones are
        // skipped: what was due then is gone anyway).
        if now.saturating_duration_since(self.next_audio) > Duration::from_millis(200) {
            self.next_audio = now;
        }
        while self.next_audio <= now {
            let due = self.next_audio;
            self.next_audio += AUDIO_TICK;
            self.audio_tick(due);
        }
        self.capture_video(now);
        self.take_codec_output(now);
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            let live = self.live_stats(now);
            self.events.push_back(CallEvent::Stats(live));
            if self.config.live_report {
                let report = self.report(now);
                self.events.push_back(CallEvent::Report(Box::new(report)));
            }
        }
        if self.config.presented && now >= self.next_levels {
            self.next_levels = now + LEVELS_EVERY;
            let levels: Vec<(ParticipantId, f32)> = self.voices.levels().collect();
            if !levels.is_empty() {
                self.events.push_back(CallEvent::Levels(levels));
            }
        }
    }

    /// Mixes the next `out.len() / 2` stereo frames (48 kHz) of every voice, for the speakers.
    pub fn render(&mut self, out: &mut [f32]) {
        self.mixer.render(&mut self.voices, out);
    }

    // ----- What to do ---------------------------------------------------------------------

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// A participant's newest decoded picture of a camera (our own id: the self-view) or a
    /// shared screen, if there is a new one.
    pub fn poll_picture(&mut self) -> Option<Decoded> {
        let key = *self.pictures.keys().next()?;
        self.pictures.remove(&key).map(|frame| Decoded {
            from: key.0,
            source: key.1,
            frame,
        })
    }

    /// A participant's newest pose, if it moved.
    pub fn poll_pose(&mut self) -> Option<(ParticipantId, Pose)> {
        let id = *self.poses.keys().next()?;
        self.poses.remove(&id).map(|pose| (id, pose))
    }

    /// When to call [`Call::handle_timeout`] next (at the latest).
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.next_audio.min(self.next_stats);
        if self.config.presented {
            next = next.min(self.next_levels);
        }
        if let Some(deadline) = self.deadline {
            next = next.min(deadline);
        }
        match self.phase {
            Phase::Joined => {
                next = next.min(self.next_ping).min(self.last_heard + SILENCE);
                if let Some(camera) = &self.camera
                    && self.camera_on
                {
                    next = next.min(camera.next);
                }
                if let Some(screen) = &self.screen
                    && self.screen_on
                {
                    next = next.min(screen.next);
                }
            }
            Phase::Rejoining { next: Some(at) } => next = next.min(at),
            _ => {}
        }
        next
    }

    /// What the call saw so far.
    pub fn report(&self, now: Instant) -> BotReport {
        let mut report = self.report.clone();
        report.seconds = now.saturating_duration_since(self.started).as_secs_f64();
        report.rtt_ms = self.rtt_ms;
        report.link_kbps = self.link_kbps;
        report.error = self.error.as_ref().map(ToString::to_string);
        report.video_sent = self.camera.as_ref().map(|camera| camera.top().to_string());
        report.screen_sent = self.screen.as_ref().map(|screen| screen.top().to_string());
        report.e2ee = self.security.e2ee;
        report.safety_code = self.security.safety_code.clone();
        report.frames_not_opened = self.secure.refused;
        report.group_rejoins = self.secure.rejoins;
        report.e2ee_cost = self.secure.cost.clone();
        self.stats.finish(&mut report, &self.names);
        report
    }

    // ----- Inside -------------------------------------------------------------------------

    fn send(&mut self, message: ToRelay) {
        if self.phase == Phase::Joined {
            self.actions.push_back(Action::Send(message));
        }
    }

    /// The last pose, when one is waiting and the control budget allows (else at a later tick).
    fn send_pose(&mut self, now: Instant) {
        if let Some(pose) = self.last_pose
            && self.pose_pending
            && self.phase == Phase::Joined
            && self.limiter.take(now)
        {
            self.send(ToRelay::Pose(pose));
            self.pose_pending = false;
        }
    }

    /// Says the configured chat lines once, when enough people are here to read them
    /// ([`CallConfig::chat_with`]).
    fn say_planned_chat(&mut self) {
        if self.chat_sent || self.you.is_none() {
            return;
        }
        let here = if self.secure.e2ee() {
            self.security.members
        } else {
            self.present.len() + 1
        };
        if self.config.chat_with > 1 && here < self.config.chat_with {
            return;
        }
        self.chat_sent = true;
        for text in self.config.chat.clone() {
            self.say(text);
        }
    }

    /// Says something in the chat, when we may.
    fn say(&mut self, text: String) {
        if !self.grants.chat {
            tracing::warn!("not said: the access token does not let us chat");
            return;
        }
        if !self.secure.e2ee() {
            self.send(ToRelay::Chat { text });
            return;
        }
        // Sealed for the group (kept until we hold its keys); the relay does not send it back
        // to us, so it shows here as said.
        if let Some(sealed) = self.secure.seal_chat(&text) {
            self.send(sealed);
        }
        if let Some(you) = self.you {
            let name = self.report.name.clone();
            self.chat_line(you, name, text);
        }
    }

    /// A new chat line (the relay's, opened, or ours said in an encrypted room), for the
    /// application: numbered here, in the order it came, over every session of the call (a
    /// relay that restarted numbers its lines anew).
    fn chat_line(&mut self, from: ParticipantId, name: String, text: String) {
        self.chat_lines += 1;
        let seq = self.chat_lines;
        keep_newest(
            &mut self.report.chat_received,
            ChatLine {
                from: name.clone(),
                text: text.clone(),
            },
        );
        self.events.push_back(CallEvent::Relay(FromRelay::Chat {
            seq,
            from,
            name,
            text,
        }));
    }

    /// Tells the application what end-to-end encryption is now, when that changed.
    fn tell_security(&mut self) {
        let security = self.secure.security();
        if security != self.security {
            if let Some(code) = &security.safety_code
                && self.report.safety_codes.last() != Some(code)
            {
                keep_newest(&mut self.report.safety_codes, code.clone());
            }
            self.security = security.clone();
            self.events.push_back(CallEvent::Security(security));
        }
    }

    fn send_mute(&mut self) {
        if !self.grants.publish {
            return;
        }
        self.send(ToRelay::Mute {
            audio: !self.microphone_on,
            video: !self.camera_on,
        });
    }

    /// Announces our tracks (and our mute state when something is off).
    fn publish(&mut self) {
        if !self.grants.publish {
            return;
        }
        if let Some(camera) = &self.camera {
            let info = video_track(camera, TrackSource::Camera);
            self.send(ToRelay::Publish {
                index: VIDEO_INDEX,
                info,
            });
        }
        // A new place holds no track of ours yet.
        self.screen_announced = false;
        self.sync_screen();
        if self.microphone.is_some() {
            self.send(ToRelay::Publish {
                index: AUDIO_INDEX,
                info: TrackInfo {
                    kind: TrackKind::Audio,
                    codec: AUDIO_CODEC.into(),
                    source: TrackSource::Microphone,
                    width: 0,
                    height: 0,
                    layers: Vec::new(),
                },
            });
        }
        if !self.microphone_on || !self.camera_on {
            self.send_mute();
        }
    }

    /// Starts or stops sharing the screen (when there is one to share); the relay hears of it
    /// now, or when we are back in the room.
    fn share_screen(&mut self, on: bool) {
        if self.screen.is_some() {
            self.screen_on = on;
            self.sync_screen();
        }
    }

    /// Announces the shared screen's track, or withdraws it, when the relay's room holds
    /// otherwise than we share.
    fn sync_screen(&mut self) {
        if self.phase != Phase::Joined || !self.grants.publish {
            return;
        }
        let Some(screen) = &mut self.screen else {
            return;
        };
        match (self.screen_on, self.screen_announced) {
            (true, false) => {
                screen.want_keyframes();
                let info = video_track(screen, TrackSource::Screen);
                self.screen_announced = true;
                self.send(ToRelay::Publish {
                    index: SCREEN_INDEX,
                    info,
                });
            }
            (false, true) => {
                // Its encoders are freed; the relay says again who takes it when it is back.
                screen.stop();
                self.screen_announced = false;
                self.send(ToRelay::Unpublish {
                    index: SCREEN_INDEX,
                });
            }
            _ => {}
        }
    }

    /// Subscribes to a track we can decode.
    fn subscribe(&mut self, track: TrackId, info: &TrackInfo) {
        if !self.config.subscribe || !self.grants.subscribe {
            return;
        }
        match info.kind {
            TrackKind::Video if info.codec == VIDEO_CODEC => {
                self.video.insert(
                    track,
                    VideoTrack {
                        reorder: Reorder::default(),
                        decoder: None,
                        needs_keyframe: false,
                        layers: info.layer_list(),
                        layer: None,
                        switching: Vec::new(),
                        newest_us: 0,
                        pauses: Pauses::default(),
                        screen: info.source == TrackSource::Screen,
                    },
                );
            }
            TrackKind::Audio if info.codec == AUDIO_CODEC => {
                self.audio.insert(
                    track,
                    AudioTrack {
                        jitter: JitterBuffer::new(JITTER_TARGET, JITTER_CAPACITY)
                            .with_catch_up(JITTER_CATCH_UP),
                        decoder: None,
                    },
                );
            }
            _ => return,
        }
        self.send(ToRelay::Subscribe { track });
    }

    fn request_keyframe(&mut self, track: TrackId, now: Instant) {
        if self.phase == Phase::Joined && self.limiter.keyframe(track, now) {
            self.send(ToRelay::KeyframeRequest { track });
        }
    }

    /// The connection died: rejoin (when asked to and it may help), or end.
    fn lost(&mut self, error: Error, now: Instant) {
        self.actions.push_back(Action::Disconnect);
        if !self.config.reconnect || !error.is_retryable() {
            self.end(Some(error), now);
            return;
        }
        tracing::info!(%error, "connection lost; rejoining");
        self.report.reconnections.push(Reconnection {
            lost_at_ms: self.wall_us(now) / 1000,
            reason: error.to_string(),
            ..Reconnection::default()
        });
        self.backoff = Backoff::new(self.wall_us(now));
        self.schedule_rejoin(error, now);
    }

    fn schedule_rejoin(&mut self, reason: Error, now: Instant) {
        let delay = self.backoff.next_delay();
        self.phase = Phase::Rejoining {
            next: Some(now + delay),
        };
        self.events.push_back(CallEvent::Reconnecting {
            attempt: self.backoff.attempts(),
            reason,
        });
    }

    fn leave(&mut self, now: Instant) {
        match self.phase {
            Phase::Joined => {
                self.phase = Phase::Leaving;
                self.actions.push_back(Action::Leave);
            }
            Phase::Joining | Phase::Rejoining { .. } => {
                self.actions.push_back(Action::Disconnect);
                self.end(None, now);
            }
            Phase::Leaving | Phase::Over => {}
        }
    }

    fn end(&mut self, error: Option<Error>, now: Instant) {
        if self.phase == Phase::Over {
            return;
        }
        self.phase = Phase::Over;
        self.error = error.clone();
        let report = self.report(now);
        self.events.push_back(CallEvent::Ended {
            report: Box::new(report),
            error,
        });
    }

    /// One 20 ms tick of audio due at `due`: capture and encode, play out every voice.
    fn audio_tick(&mut self, due: Instant) {
        let joined = self.phase == Phase::Joined;
        let capture_us = self.wall_us(due);
        if let Some(microphone) = &mut self.microphone {
            // The source is read even when nothing is sent, so it never backs up.
            microphone.source.next_samples(&mut microphone.samples);
            microphone.level = rotunda_proto::audio_level(&microphone.samples);
            if joined && self.microphone_on && self.grants.publish {
                if microphone.encoder.is_none() {
                    match self.codecs.audio_encoder(AUDIO_BITRATE) {
                        Ok(encoder) => microphone.encoder = Some(encoder),
                        Err(error) => tracing::warn!(%error, "no audio encoder"),
                    }
                }
                if let Some(encoder) = &mut microphone.encoder
                    && let Err(error) = encoder.encode(&microphone.samples, capture_us)
                {
                    tracing::warn!(%error, "audio not encoded; a fresh encoder follows");
                    microphone.encoder = None;
                }
            }
        }
        let due_us = self.wall_us(due);
        for (track, audio) in &mut self.audio {
            for turn in 0..JITTER_BURST_TURNS {
                // A burst waits: play more than one packet this tick.
                if turn > 0 && audio.jitter.depth() <= JITTER_TARGET + JITTER_ACCELERATE {
                    break;
                }
                let playout = audio.jitter.pop();
                if matches!(playout, Playout::Silence) {
                    break;
                }
                if audio.decoder.is_none() {
                    match self.codecs.audio_decoder() {
                        Ok(decoder) => audio.decoder = Some(decoder),
                        Err(error) => {
                            tracing::warn!(%error, "no audio decoder");
                            break;
                        }
                    }
                }
                let Some(decoder) = &mut audio.decoder else {
                    break;
                };
                let queued = match playout {
                    Playout::Packet(frame) => {
                        let payload = frame.wire.slice(MediaHeader::LEN..);
                        decoder.decode(payload, frame.header.capture_us)
                    }
                    Playout::Conceal => decoder.conceal(due_us),
                    Playout::Silence => Ok(()),
                };
                if let Err(error) = queued {
                    tracing::debug!(%error, %track.participant, "audio not decoded");
                    self.stats.decode_errors += 1;
                    audio.decoder = None;
                    break;
                }
            }
        }
    }

    /// Captures and encodes a picture of the camera and of the screen when one is due.
    fn capture_video(&mut self, now: Instant) {
        let publishing = self.phase == Phase::Joined && self.grants.publish;
        let presented = self.config.presented;
        let you = self.you;
        let capture_us = self.wall_us(now);
        let (camera_on, screen_on) = (self.camera_on, self.screen_on);
        for camera in self.camera.iter_mut().chain(self.screen.iter_mut()) {
            if now < camera.next {
                continue;
            }
            let interval = Duration::from_secs_f64(1.0 / f64::from(camera.top().fps.max(1)));
            // Behind by more than two pictures: skip rather than burst.
            if now.saturating_duration_since(camera.next) > interval * 2 {
                camera.next = now;
            }
            camera.next += interval;
            let screen = camera.is_screen();
            if !publishing || !(if screen { screen_on } else { camera_on }) {
                continue;
            }
            // A screen nobody takes is not even captured (a capture costs milliseconds).
            if screen && camera.encoding() == 0 {
                continue;
            }
            // The self-view, at up to 15 pictures a second.
            let every = u64::from((camera.top().fps / 15).max(1));
            let self_view =
                !screen && presented && you.is_some() && (camera.frames + 1).is_multiple_of(every);
            let view = camera.capture(self.codecs.as_mut(), capture_us, self_view, now);
            if let (Some(you), Some(view)) = (you, view) {
                self.pictures.insert((you, TrackSource::Camera), view);
            }
        }
    }

    /// Moves a released video frame into its track's decoder (or skips it).
    fn decode_video(&mut self, track: TrackId, frame: MediaFrame, now: Instant) {
        let Some(video) = self.video.get_mut(&track) else {
            return;
        };
        // A screen is on the wall, whether its sharer's panel is in sight or not.
        let hidden = !video.screen && self.hidden.contains(&track.participant);
        let keyframe = frame.header.keyframe;
        // Out of sight: not decoded. Back in sight (or restarting): skipped up to a keyframe.
        if hidden || (video.needs_keyframe && !keyframe) {
            video.needs_keyframe = true;
            self.stats.peer(track.participant).video_skipped += 1;
            if !hidden {
                self.request_keyframe(track, now);
            }
            return;
        }
        if video
            .decoder
            .as_ref()
            .is_some_and(|decoder| decoder.queue_size() > DECODE_BACKLOG)
        {
            // The decoder fell behind: it finishes what it has, and takes up again at a keyframe.
            if !video.needs_keyframe {
                tracing::warn!(
                    from = %track.participant,
                    queued = DECODE_BACKLOG,
                    "a video decoder fell behind; waiting for a keyframe"
                );
            }
            video.needs_keyframe = true;
            self.stats.peer(track.participant).video_skipped += 1;
            self.request_keyframe(track, now);
            return;
        }
        video.needs_keyframe = false;
        if video.decoder.is_none() {
            if !keyframe {
                video.needs_keyframe = true;
                self.stats.peer(track.participant).video_skipped += 1;
                self.request_keyframe(track, now);
                return;
            }
            match self.codecs.video_decoder() {
                Ok(decoder) => video.decoder = Some(decoder),
                Err(error) => {
                    tracing::warn!(%error, "no video decoder");
                    return;
                }
            }
        }
        let Some(decoder) = &mut video.decoder else {
            return;
        };
        let chunk = EncodedVideo {
            data: frame.wire.slice(MediaHeader::LEN..),
            keyframe,
            timestamp_us: frame.header.capture_us,
        };
        if let Err(error) = decoder.decode(chunk) {
            self.video_failed(track, error, now);
        }
    }

    fn video_failed(&mut self, track: TrackId, error: CodecError, now: Instant) {
        tracing::debug!(%error, %track.participant, "video not decoded");
        self.stats.decode_errors += 1;
        if let Some(video) = self.video.get_mut(&track) {
            video.decoder = None;
            video.needs_keyframe = true;
        }
        self.request_keyframe(track, now);
    }

    /// Takes in everything the codecs delivered.
    fn take_codec_output(&mut self, now: Instant) {
        // Our own camera, screen and microphone: onto the wire.
        let joined = self.phase == Phase::Joined;
        for camera in self.camera.iter_mut().chain(self.screen.iter_mut()) {
            let (index, screen) = if camera.is_screen() {
                (SCREEN_INDEX, true)
            } else {
                (VIDEO_INDEX, false)
            };
            while let Some((layer, chunk)) = camera.poll_output() {
                let Some(state) = camera.layers.get_mut(usize::from(layer)) else {
                    continue;
                };
                let header = MediaHeader {
                    track: TrackId {
                        participant: ParticipantId(0),
                        index,
                    },
                    sequence: state.sequence,
                    capture_us: chunk.timestamp_us,
                    keyframe: chunk.keyframe,
                    layer,
                    level: 0,
                    payload_len: 0,
                };
                // A frame not sent still takes its number, so receivers see the gap.
                state.sequence = state.sequence.wrapping_add(1);
                state.frames += 1;
                if joined && screen {
                    self.report.screen_frames_sent += 1;
                    self.report.screen_bytes_sent += chunk.data.len() as u64;
                    if let Some(frame) = self.secure.seal(header, &chunk.data) {
                        self.actions.push_back(Action::SendVideo(frame));
                    }
                } else if joined {
                    self.report.video_frames_sent += 1;
                    let by_layer = &mut self.report.video_frames_sent_by_layer;
                    if by_layer.len() <= usize::from(layer) {
                        by_layer.resize(usize::from(layer) + 1, 0);
                    }
                    by_layer[usize::from(layer)] += 1;
                    self.report.video_bytes_sent += chunk.data.len() as u64;
                    if let Some(frame) = self.secure.seal(header, &chunk.data) {
                        self.actions.push_back(Action::SendVideo(frame));
                    }
                }
            }
        }
        if let Some(microphone) = &mut self.microphone
            && let Some(encoder) = &mut microphone.encoder
        {
            while let Some(output) = encoder.poll_output() {
                match output {
                    Ok(packet) if packet.data.len() <= DTX_PACKET_BYTES => {
                        // Silence (Opus DTX): not sent, and no number taken, so receivers
                        // count no loss; their jitter buffer runs dry and starts afresh.
                        self.report.audio_frames_silent += 1;
                    }
                    Ok(packet) => {
                        let header = MediaHeader {
                            track: TrackId {
                                participant: ParticipantId(0),
                                index: AUDIO_INDEX,
                            },
                            sequence: microphone.sequence,
                            capture_us: packet.timestamp_us,
                            keyframe: true,
                            layer: 0,
                            level: microphone.level,
                            payload_len: 0,
                        };
                        microphone.sequence = microphone.sequence.wrapping_add(1);
                        if self.phase == Phase::Joined {
                            self.report.audio_frames_sent += 1;
                            self.report.audio_bytes_sent += packet.data.len() as u64;
                            if let Some(frame) = self.secure.seal(header, &packet.data) {
                                self.actions.push_back(Action::SendAudio(frame));
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "audio encoder failed; a fresh one follows");
                        microphone.encoder = None;
                        break;
                    }
                }
            }
        }
        // Everyone else's pictures.
        let tracks: Vec<TrackId> = self.video.keys().copied().collect();
        for track in tracks {
            while let Some(output) = self
                .video
                .get_mut(&track)
                .and_then(|video| video.decoder.as_mut())
                .and_then(|decoder| decoder.poll_output())
            {
                match output {
                    Ok(picture) => {
                        self.decoded_picture(track, picture.frame, picture.timestamp_us, now)
                    }
                    Err(error) => {
                        self.video_failed(track, error, now);
                        break;
                    }
                }
            }
        }
        // Everyone else's voices.
        let presented = self.config.presented;
        let wall_us = self.wall_us(now);
        for (track, audio) in &mut self.audio {
            let Some(decoder) = &mut audio.decoder else {
                continue;
            };
            while let Some(output) = decoder.poll_output() {
                match output {
                    Ok(sound) => {
                        let peer = self.stats.peer(track.participant);
                        if sound.concealed {
                            peer.audio_concealed += 1;
                        } else {
                            peer.audio_decoded += 1;
                            peer.audio_latency_ms
                                .push(wall_us.saturating_sub(sound.timestamp_us) as f64 / 1000.0);
                        }
                        if presented {
                            self.voices.push(track.participant, &sound.samples);
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, %track.participant, "audio not decoded");
                        self.stats.decode_errors += 1;
                        audio.decoder = None;
                        break;
                    }
                }
            }
        }
    }

    /// A decoded picture: counted, its marks checked, handed to the application.
    fn decoded_picture(
        &mut self,
        track: TrackId,
        frame: VideoFrame,
        capture_us: u64,
        now: Instant,
    ) {
        let (w, h) = (frame.width, frame.height);
        if w > MAX_PICTURE.0 || h > MAX_PICTURE.1 {
            tracing::debug!(w, h, %track.participant, "picture too large, not shown");
            self.stats.decode_errors += 1;
            return;
        }
        let latency = self.latency_ms(capture_us, now);
        let marks = read_marks(&frame.y, w, w, h);
        let peer = self.stats.peer(track.participant);
        if self.video.get(&track).is_some_and(|video| video.screen) {
            // Whatever the screen shows; a test shows marks and checks they come through.
            peer.screen_decoded += 1;
            peer.screen_latency_ms.push(latency);
            peer.screen_size = Some((w, h));
            if let Some(marks) = marks {
                peer.screen_marks = Some(marks.sender);
            }
            if self.config.presented {
                self.pictures
                    .insert((track.participant, TrackSource::Screen), frame);
            }
            return;
        }
        peer.video_decoded += 1;
        peer.video_latency_ms.push(latency);
        match marks {
            Some(marks) if marks.sender == track.participant.0 as u16 => {}
            Some(_) => peer.wrong_sender += 1,
            None => peer.unmarked += 1,
        }
        if self.config.presented && !self.hidden.contains(&track.participant) {
            self.pictures
                .insert((track.participant, TrackSource::Camera), frame);
        }
    }

    fn live_stats(&mut self, now: Instant) -> LiveStats {
        let seconds = STATS_EVERY.as_secs_f64();
        let sent = self.report.video_bytes_sent + self.report.audio_bytes_sent;
        let mut live = LiveStats {
            seconds: now.saturating_duration_since(self.started).as_secs_f64(),
            rtt_ms: self.rtt_ms,
            link_kbps: self.link_kbps,
            kbps_out: self.stats.sent_since_last(sent) as f64 * 8.0 / 1000.0 / seconds,
            video_sent: self.camera.as_ref().map(|camera| camera.top().to_string()),
            layers_sent: self.camera.as_ref().map_or(0, |camera| camera.encoding()),
            ..LiveStats::default()
        };
        let present: Vec<ParticipantId> = self.present.iter().copied().collect();
        for id in present {
            let (now_counts, before) = self.stats.since_last(id);
            let kbps = now_counts
                .bytes_received
                .saturating_sub(before.bytes_received) as f64
                * 8.0
                / 1000.0
                / seconds;
            let decoded = now_counts
                .audio_decoded
                .saturating_sub(before.audio_decoded);
            let concealed = now_counts
                .audio_concealed
                .saturating_sub(before.audio_concealed);
            let recent = self.stats.peers.get(&id).map(|p| {
                (
                    percentile(&p.video_latency_ms.recent(), 0.5),
                    percentile(&p.audio_latency_ms.recent(), 0.5),
                    percentile(&p.audio_latency_ms.recent(), 1.0),
                )
            });
            let (latency, audio_latency, audio_latency_max) = recent.unwrap_or_default();
            live.kbps_in += kbps;
            live.peers.push(LivePeer {
                id,
                name: self.names.get(&id).cloned().unwrap_or_default(),
                fps: now_counts
                    .video_decoded
                    .saturating_sub(before.video_decoded) as f64
                    / seconds,
                audio_per_second: decoded as f64 / seconds,
                kbps,
                audio_loss: if decoded + concealed == 0 {
                    0.0
                } else {
                    concealed as f64 / (decoded + concealed) as f64
                },
                jitter_depth: self
                    .audio
                    .iter()
                    .filter(|(track, _)| track.participant == id)
                    .map(|(_, audio)| audio.jitter.depth())
                    .sum(),
                layer: self
                    .video
                    .iter()
                    .find(|(track, _)| track.participant == id)
                    .and_then(|(_, video)| video.layer),
                video_latency_ms: latency,
                audio_latency_ms: audio_latency,
                audio_latency_max_ms: audio_latency_max,
            });
        }
        live
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("phase", &self.phase)
            .field("you", &self.you)
            .field("present", &self.present)
            .finish_non_exhaustive()
    }
}

/// How a video track of ours (the camera or the screen) is announced.
fn video_track(camera: &Camera, source: TrackSource) -> TrackInfo {
    let spec = camera.top();
    TrackInfo {
        kind: TrackKind::Video,
        codec: VIDEO_CODEC.into(),
        source,
        width: spec.width as u16,
        height: spec.height as u16,
        layers: camera.layer_infos(),
    }
}

/// Appends `item`, keeping the newest [`REPORT_LINES`].
fn keep_newest<T>(list: &mut Vec<T>, item: T) {
    list.push(item);
    let excess = list.len().saturating_sub(REPORT_LINES);
    list.drain(..excess);
}
