//! The relay's room logic, sans-IO: membership, presence, chat and selective forwarding.
//!
//! The relay drives a [`Room`] from its connection tasks: `handle_*` with what a participant sent
//! (and `now`), then `poll_control` for the control messages to send to whom, `poll_woken` for the
//! participants with new media queued, and `poll_audio` / `poll_video` to take that media out.
//!
//! Video comes in simulcast layers. Each subscriber receives at most one layer of each video:
//! the one [`alloc::allocate`] picks from what it sees ([`ToRelay::View`]), what its link
//! carries ([`Room::set_downlink`], lowered at once when its queues overflow) and what it
//! receives now. A switch to another layer takes effect at that layer's next keyframe (asked
//! for); a video out of sight, or that does not fit, is paused at once. Publishers hear which
//! of their layers anyone takes ([`FromRelay::LayersWanted`]), so they encode only those.
//! [`Room::handle_timeout`] re-runs the allocation as estimates change.
//!
//! Forwarding shares each frame's bytes between subscribers. Every subscriber has a bounded
//! queue per video track: when it overflows (the subscriber reads too slowly) the queued frames of
//! that track are dropped, later frames are skipped until the next keyframe, and the publisher is
//! asked for one. A slow subscriber therefore never holds up the publisher or anyone else.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::alloc::{self, Candidate};
use crate::group::Delivery;
use crate::limits::{CHAT_HISTORY, CONTROL_BURST, CONTROL_RATE};
use crate::link::{LinkEstimate, LinkSample};
use crate::media::MediaFrame;
use crate::message::{
    FromRelay, Grants, LayerInfo, LeaveReason, ParticipantId, ParticipantInfo, Pose, Resume,
    ToRelay, TrackId, TrackInfo, TrackKind, TrackSource,
};
use crate::{Error, PROTOCOL_VERSION, Result};

/// Who [`Room::handle_join`] let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// Their id.
    pub id: ParticipantId,
    /// They took back a place they had (a new connection after a lost one).
    pub resumed: bool,
}

/// Who a relay lets into a room: what the access token (or, on a relay that asks for none, the
/// join itself) says of the joiner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The name the room shows.
    pub name: String,
    /// Who it is ([`ParticipantInfo::identity`]).
    pub identity: String,
    /// What it may do.
    pub grants: Grants,
}

impl Admission {
    /// A joiner on a relay that asks for no tokens: its identity is the name it gave, and it may
    /// do everything.
    pub fn open(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            identity: name.to_owned(),
            grants: Grants::ALL,
        }
    }
}

/// Tunables of a [`Room`].
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Most participants at once.
    pub max_participants: usize,
    /// Video frames queued per subscriber and track before it skips to the next keyframe.
    pub video_queue_frames: usize,
    /// Audio frames queued per subscriber before the oldest is dropped.
    pub audio_queue_frames: usize,
    /// Least time between two keyframe requests to the same track's publisher.
    pub keyframe_request_interval: Duration,
    /// How often [`Room::handle_timeout`] allocates every subscriber's layers afresh.
    pub allocate_every: Duration,
    /// What one subscribed audio track costs a subscriber's link, in kb/s (it comes off the
    /// budget before any video).
    pub audio_kbps: u32,
    /// The share of the transport's estimate of a subscriber's downlink its media may fill.
    pub downlink_share: f64,
    /// What a subscriber's link is assumed to carry before anything was measured, in kb/s
    /// (its estimate grows from there while the link stays calm: [`crate::link`]).
    pub start_kbps: u32,
    /// Voices forwarded to everyone whatever their level: the loudest this many.
    pub loudest_voices: usize,
    /// Voices within this many metres of a listener reach it whatever their level.
    pub near_voice_m: f32,
    /// An audio frame at least this loud (a header level at most this: 4 dB a step below full
    /// scale) is speech and goes to everyone; quieter ones go only as the two rules above say.
    pub speech_level: u8,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: DEFAULT_MAX_PARTICIPANTS,
            video_queue_frames: 15,
            audio_queue_frames: 25,
            keyframe_request_interval: Duration::from_millis(250),
            allocate_every: Duration::from_millis(500),
            audio_kbps: 40,
            downlink_share: 0.85,
            start_kbps: 1000,
            loudest_voices: 3,
            near_voice_m: 4.0,
            speech_level: 10,
        }
    }
}

/// What a subscription costs of a participant's control budget.
const SUBSCRIBE_COST: f64 = 0.125;

/// A room's default size limit (the protocol carries up to [`crate::limits::MAX_PARTICIPANTS`]).
pub const DEFAULT_MAX_PARTICIPANTS: usize = 200;

/// Least time between two [`FromRelay::Link`] to one member.
const LINK_TOLD_EVERY: Duration = Duration::from_secs(1);

/// Voices counted against a subscriber's budget besides the loudest: the near and the
/// speaking (the relay forwards no more than these of the rest).
const VOICES_BESIDE_LOUDEST: usize = 3;

/// Counters of a room's forwarding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Media frames received from publishers.
    pub frames_in: u64,
    /// Frame copies queued for subscribers.
    pub frames_queued: u64,
    /// Frame copies dropped because a subscriber fell behind.
    pub frames_dropped: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Media frames for tracks not (or not yet) published, dropped.
    pub frames_unroutable: u64,
    /// Subscribers switched to another layer of a video (at its keyframe).
    pub layer_switches: u64,
    /// Audio frame copies not forwarded: quiet, not among the loudest, not near the listener.
    pub audio_suppressed: u64,
}

/// How loud a voice has been lately.
#[derive(Debug, Clone, Copy)]
struct Loudness {
    /// Smoothed loudness, in header steps above silence (0: silent).
    level: f32,
    at: Instant,
}

/// What one layer of a video has been costing, measured on what its publisher sent.
#[derive(Debug, Clone, Copy)]
struct LayerRate {
    bytes: u64,
    since: Instant,
    /// Smoothed, in kb/s (0 until the first window closed).
    kbps: f64,
    /// When a frame last came.
    at: Instant,
}

/// A layer's rate is measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// A layer not sent for this long costs what it announced again.
const RATE_STALE: Duration = Duration::from_secs(3);
/// Packet and transport overhead over the media's bytes.
const OVERHEAD: f64 = 1.1;

/// How quickly a voice's loudness follows its frames (per 20 ms frame).
const LOUDNESS_SMOOTHING: f32 = 0.2;
/// A voice not heard for this long counts as silent.
const LOUDNESS_STALE: Duration = Duration::from_millis(500);
/// How often the loudest voices are picked again.
const LOUDEST_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Subscription {
    kind: TrackKind,
    /// The layer forwarded now (video); `None`: nothing yet, or paused.
    current: Option<u8>,
    /// The layer the allocation picked; forwarding moves to it at its next keyframe.
    target: Option<u8>,
    /// Video frames of this track now queued.
    queued: usize,
    /// Skipping until a keyframe arrives.
    waiting_for_keyframe: bool,
    /// Overflows since the subscriber last kept up for [`OVERFLOW_CALM`]. Each one doubles the
    /// wait before its skipping may ask for a keyframe again, so a subscriber that cannot keep up
    /// does not make the publisher send keyframes to everyone over and over.
    overflows: u32,
    last_overflow: Option<Instant>,
    /// Earliest time this subscriber's skipping may ask for a keyframe.
    next_ask: Instant,
}

/// A subscriber that has not overflowed for this long starts its backoff afresh.
const OVERFLOW_CALM: Duration = Duration::from_secs(10);
/// Most doublings of the keyframe-request wait of a subscriber that keeps overflowing.
const MAX_BACKOFF_DOUBLINGS: u32 = 5;

impl Subscription {
    /// Whether skipping frames now may ask for a keyframe; if so, the next ask waits longer
    /// the more this subscriber has overflowed.
    fn may_ask(&mut self, now: Instant, interval: Duration) -> bool {
        if now < self.next_ask {
            return false;
        }
        self.next_ask = now + interval * 2u32.pow(self.overflows.min(MAX_BACKOFF_DOUBLINGS));
        true
    }
}

#[derive(Debug)]
struct Member {
    info: ParticipantInfo,
    /// What it may do.
    grants: Grants,
    /// What the participant presents to take its place back after a lost connection.
    secret: u64,
    /// Token bucket of control messages: one participant cannot flood everyone else's queues.
    budget: f64,
    budget_at: Option<Instant>,
    subscriptions: HashMap<TrackId, Subscription>,
    audio: VecDeque<MediaFrame>,
    video: VecDeque<MediaFrame>,
    /// What it sees: per video in sight, its height on screen and priority. `None` until it
    /// first says: then every video comes at its top layer.
    view: Option<HashMap<TrackId, (u16, u8)>>,
    /// Its own limit, in kb/s.
    max_kbps: Option<u32>,
    /// It said where it stands (a bot never does: it is near nobody).
    posed: bool,
    /// Its link's estimate from the transport, in kb/s (when it has one).
    downlink_kbps: Option<u32>,
    /// Its link's estimate from the round trip.
    link: LinkEstimate,
    /// The estimate last told to it ([`FromRelay::Link`]), and when.
    link_told: Option<(u32, Instant)>,
    /// What its allocation sends it, in kb/s (video).
    allocated_kbps: f64,
    /// Its allocation must be run again.
    dirty: bool,
}

/// One room's state.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    members: BTreeMap<ParticipantId, Member>,
    next_id: u32,
    chat_seq: u64,
    chat_history: VecDeque<FromRelay>,
    outbox: VecDeque<(ParticipantId, FromRelay)>,
    woken: BTreeSet<ParticipantId>,
    keyframe_asked: HashMap<(TrackId, u8), Instant>,
    /// The layers of each video track someone receives, as last told to its publisher.
    wanted: HashMap<TrackId, u8>,
    next_allocate: Option<Instant>,
    /// Every audio track's recent loudness, and the loudest few.
    loudness: HashMap<TrackId, Loudness>,
    loudest: BTreeSet<TrackId>,
    next_loudest: Option<Instant>,
    /// What each layer of each video has been costing.
    rates: HashMap<(TrackId, u8), LayerRate>,
    stats: ForwardStats,
    /// Media and chat are end-to-end encrypted (the first joiner chose).
    e2ee: bool,
    /// The room's MLS group, as its delivery service sees it (end-to-end encrypted rooms).
    delivery: Delivery,
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            members: BTreeMap::new(),
            next_id: 1,
            chat_seq: 0,
            chat_history: VecDeque::new(),
            outbox: VecDeque::new(),
            woken: BTreeSet::new(),
            keyframe_asked: HashMap::new(),
            wanted: HashMap::new(),
            next_allocate: None,
            loudness: HashMap::new(),
            loudest: BTreeSet::new(),
            next_loudest: None,
            rates: HashMap::new(),
            stats: ForwardStats::default(),
            e2ee: false,
            delivery: Delivery::default(),
        }
    }

    /// Makes the room end-to-end encrypted or not: what its first joiner asks (`ToRelay::Join`'s
    /// `e2ee`). Only while no one is in it; everyone who joins later learns it in the welcome.
    pub fn set_e2ee(&mut self, on: bool) {
        if self.members.is_empty() {
            self.e2ee = on;
            self.delivery = Delivery::default();
        }
    }

    /// Whether the room is end-to-end encrypted.
    pub fn e2ee(&self) -> bool {
        self.e2ee
    }

    /// The room's MLS group as the relay sees it.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// No one is in the room.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many are in the room.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Forwarding counters so far.
    pub fn stats(&self) -> ForwardStats {
        self.stats
    }

    /// The roster entry of a participant.
    pub fn participant(&self, id: ParticipantId) -> Option<&ParticipantInfo> {
        self.members.get(&id).map(|m| &m.info)
    }

    /// The layers of a published video track, smallest first, each costing what it was measured
    /// to cost lately (with the transport's overhead), or what it announced when it was not sent
    /// lately. What a publisher announced is only a guess: one whose encoder could not keep up
    /// sends a smaller picture under the same announcement, and a still camera sends a fraction
    /// of it (charged what it announced, such a picture kept a viewer's link estimate from
    /// growing and another picture paused for good).
    pub fn track_layers(&self, track: TrackId, now: Instant) -> Vec<LayerInfo> {
        let mut layers = self
            .track_info(track)
            .map(TrackInfo::layer_list)
            .unwrap_or_default();
        for (n, layer) in layers.iter_mut().enumerate() {
            if let Some(rate) = self.rates.get(&(track, n as u8))
                && rate.kbps > 0.0
                && now.saturating_duration_since(rate.at) <= RATE_STALE
            {
                layer.kbps = (rate.kbps * OVERHEAD).clamp(1.0, f64::from(u32::MAX)) as u32;
            }
        }
        layers
    }

    /// Where a published track's media comes from.
    fn track_source(&self, track: TrackId) -> Option<TrackSource> {
        self.track_info(track).map(|info| info.source)
    }

    /// What a published track carries, if it is published.
    fn track_info(&self, track: TrackId) -> Option<&TrackInfo> {
        let member = self.members.get(&track.participant)?;
        member
            .info
            .tracks
            .iter()
            .find(|(index, _)| *index == track.index)
            .map(|(_, info)| info)
    }

    /// Counts a video frame into its layer's rate.
    fn measure(&mut self, track: TrackId, layer: u8, bytes: usize, now: Instant) {
        let fresh = LayerRate {
            bytes: 0,
            since: now,
            kbps: 0.0,
            at: now,
        };
        let rate = self.rates.entry((track, layer)).or_insert(fresh);
        if now.saturating_duration_since(rate.at) > RATE_STALE {
            // Not sent for a while (nobody took it): start afresh.
            *rate = fresh;
        }
        rate.bytes += bytes as u64;
        rate.at = now;
        let window = now.saturating_duration_since(rate.since);
        if window >= RATE_WINDOW {
            let kbps = rate.bytes as f64 * 8.0 / 1000.0 / window.as_secs_f64();
            rate.kbps = if rate.kbps == 0.0 {
                kbps
            } else {
                rate.kbps * 0.5 + kbps * 0.5
            };
            rate.bytes = 0;
            rate.since = now;
        }
    }

    /// The layer `subscriber` receives of `track` now, and the one it is switching to.
    pub fn layer_of(&self, subscriber: ParticipantId, track: TrackId) -> (Option<u8>, Option<u8>) {
        self.members
            .get(&subscriber)
            .and_then(|m| m.subscriptions.get(&track))
            .map_or((None, None), |sub| (sub.current, sub.target))
    }

    /// The budget the allocation gives `subscriber`'s video now, in kb/s (`None`: no limit).
    pub fn video_budget(&self, subscriber: ParticipantId) -> Option<u32> {
        self.members.get(&subscriber).and_then(|m| self.budget(m))
    }

    /// The transport's estimate of what a subscriber's link carries, in kb/s (BBR's, once it
    /// measured the path): the budget never passes its share of it.
    pub fn set_downlink(&mut self, id: ParticipantId, kbps: u32) {
        if let Some(member) = self.members.get_mut(&id) {
            let changed = member
                .downlink_kbps
                .is_none_or(|old| (f64::from(kbps) - f64::from(old)).abs() > f64::from(old) * 0.1);
            member.downlink_kbps = Some(kbps);
            member.dirty |= changed;
        }
    }

    /// A look at a subscriber's link (every few hundred milliseconds): what it was sent and how
    /// much its round trip grew. Its estimate follows ([`LinkEstimate`]), and its allocation.
    pub fn handle_link(&mut self, id: ParticipantId, sample: LinkSample, now: Instant) {
        if let Some(member) = self.members.get_mut(&id) {
            member.dirty |= member.link.on_sample(sample, now);
        }
        self.tell_link(id, now);
        self.handle_timeout(now);
    }

    /// Tells a member its link's estimate when it changed by a tenth since last told (at most
    /// once per [`LINK_TOLD_EVERY`]).
    fn tell_link(&mut self, id: ParticipantId, now: Instant) {
        let Some(member) = self.members.get(&id) else {
            return;
        };
        let kbps = self.limit(member).min(f64::from(u32::MAX)) as u32;
        let due = member.link_told.is_none_or(|(told, at)| {
            now.saturating_duration_since(at) >= LINK_TOLD_EVERY
                && f64::from(kbps.abs_diff(told)) > f64::from(told) * 0.1
        });
        if due && let Some(member) = self.members.get_mut(&id) {
            member.link_told = Some((kbps, now));
            self.outbox.push_back((id, FromRelay::Link { kbps }));
        }
    }

    /// What a subscriber's link is estimated to carry, in kb/s (all its media).
    pub fn link_kbps(&self, id: ParticipantId) -> Option<u32> {
        self.members.get(&id).map(|m| self.limit(m) as u32)
    }

    /// Time passed: allocations whose inputs changed run again (every one of them each
    /// `allocate_every`). Call at least that often.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.delivery.handle_timeout(now, &mut self.outbox);
        let all = self.next_allocate.is_none_or(|at| now >= at);
        if all {
            self.next_allocate = Some(now + self.config.allocate_every);
            for member in self.members.values_mut() {
                member.dirty = true;
            }
        }
        self.allocate(now);
    }

    /// The kind of a published track, if it is published.
    pub fn track_kind(&self, track: TrackId) -> Option<TrackKind> {
        self.track_info(track).map(|info| info.kind)
    }

    /// Someone joins: they get a welcome with the roster, the others hear of them.
    ///
    /// With a `resume` that names a participant still here and its secret, the joiner takes that
    /// place back (a new connection after a lost one): same id, tracks and subscriptions (each
    /// restarting at a keyframe), nothing queued for the old connection, and nobody else is told.
    /// Otherwise it joins afresh, and `secret` (random, from the caller) is what it must present
    /// to take its place back later.
    pub fn handle_join(
        &mut self,
        name: &str,
        resume: Option<Resume>,
        secret: u64,
        now: Instant,
    ) -> Result<Joined> {
        self.handle_admitted(Admission::open(name), resume, secret, now)
    }

    /// Someone the relay let in as `who` joins (see [`Room::handle_join`]). A place is taken
    /// back only by the identity that had it.
    pub fn handle_admitted(
        &mut self,
        who: Admission,
        resume: Option<Resume>,
        secret: u64,
        now: Instant,
    ) -> Result<Joined> {
        if let Some(resume) = resume
            && self.members.get(&resume.id).is_some_and(|member| {
                member.secret == resume.secret && member.info.identity == who.identity
            })
        {
            self.take_back(resume.id, now);
            return Ok(Joined {
                id: resume.id,
                resumed: true,
            });
        }
        if self.members.len() >= self.config.max_participants {
            return Err(Error::RoomFull);
        }
        // Ids are never reused while their owner is here (relevant only after 2^32 joins).
        while self.members.contains_key(&ParticipantId(self.next_id)) {
            self.next_id = self.next_id.wrapping_add(1).max(1);
        }
        let id = ParticipantId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let Admission {
            name,
            identity,
            grants,
        } = who;
        let info = ParticipantInfo {
            id,
            name: name.clone(),
            identity: identity.clone(),
            tracks: Vec::new(),
            audio_muted: false,
            video_muted: false,
            pose: Pose::default(),
        };
        let roster = self.members.values().map(|m| m.info.clone()).collect();
        self.broadcast(id, FromRelay::ParticipantJoined(info.clone()));
        self.outbox.push_back((
            id,
            FromRelay::Welcome {
                version: PROTOCOL_VERSION,
                you: id,
                name,
                identity,
                grants,
                participants: roster,
                resume_secret: secret,
                resumed: false,
                e2ee: self.e2ee,
            },
        ));
        if self.e2ee {
            self.delivery.joined(id);
        }
        for line in &self.chat_history {
            self.outbox.push_back((id, line.clone()));
        }
        self.members.insert(
            id,
            Member {
                info,
                grants,
                secret,
                budget: f64::from(CONTROL_BURST),
                budget_at: None,
                subscriptions: HashMap::new(),
                audio: VecDeque::new(),
                video: VecDeque::new(),
                view: None,
                max_kbps: None,
                posed: false,
                downlink_kbps: None,
                // (Never below a few voices and the smallest pictures.)
                link: LinkEstimate::new(
                    f64::from(self.config.start_kbps),
                    f64::from(self.config.audio_kbps) * 4.0,
                ),
                link_told: None,
                allocated_kbps: 0.0,
                dirty: false,
            },
        );
        Ok(Joined { id, resumed: false })
    }

    /// A new connection takes participant `id`'s place back: what was queued for the old one
    /// goes, every subscription restarts at a keyframe, and the welcome goes to the new one.
    fn take_back(&mut self, id: ParticipantId, now: Instant) {
        self.outbox.retain(|(to, _)| *to != id);
        self.woken.remove(&id);
        let roster = self
            .members
            .values()
            .filter(|m| m.info.id != id)
            .map(|m| m.info.clone())
            .collect();
        let mut restart = Vec::new();
        if let Some(member) = self.members.get_mut(&id) {
            member.audio.clear();
            member.video.clear();
            for (track, sub) in &mut member.subscriptions {
                sub.queued = 0;
                if sub.kind == TrackKind::Video {
                    sub.waiting_for_keyframe = true;
                    sub.current = None;
                    if let Some(layer) = sub.target {
                        restart.push((*track, layer));
                    }
                }
            }
            self.outbox.push_back((
                id,
                FromRelay::Welcome {
                    version: PROTOCOL_VERSION,
                    you: id,
                    name: member.info.name.clone(),
                    identity: member.info.identity.clone(),
                    grants: member.grants,
                    participants: roster,
                    resume_secret: member.secret,
                    resumed: true,
                    e2ee: self.e2ee,
                },
            ));
        }
        for line in &self.chat_history {
            self.outbox.push_back((id, line.clone()));
        }
        // What its tracks' subscribers take, again: the new connection's client may have
        // missed it.
        let wanted: Vec<(u8, u8)> = self
            .wanted
            .iter()
            .filter(|(track, _)| track.participant == id)
            .map(|(track, layers)| (track.index, *layers))
            .collect();
        for (index, layers) in wanted {
            self.outbox
                .push_back((id, FromRelay::LayersWanted { index, layers }));
        }
        for (track, layer) in restart {
            self.request_keyframe(track, layer, now);
        }
    }

    /// Someone leaves (or is removed): their tracks end and everyone else is told.
    pub fn handle_leave(&mut self, id: ParticipantId, reason: LeaveReason, now: Instant) {
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        if self.e2ee {
            self.delivery.left(id, now, &mut self.outbox);
        }
        self.woken.remove(&id);
        self.outbox.retain(|(to, _)| *to != id);
        for (index, _) in &member.info.tracks {
            self.end_track(TrackId {
                participant: id,
                index: *index,
            });
        }
        self.broadcast(id, FromRelay::ParticipantLeft { id, reason });
        self.update_wanted();
    }

    /// A control message from a joined participant.
    pub fn handle_message(
        &mut self,
        from: ParticipantId,
        message: ToRelay,
        now: Instant,
    ) -> Result<()> {
        let member = self.member_mut(from)?;
        let elapsed = member
            .budget_at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        member.budget =
            (member.budget + elapsed * f64::from(CONTROL_RATE)).min(f64::from(CONTROL_BURST));
        member.budget_at = Some(now);
        // Subscribing to a room's tracks on joining it is a burst of its own, bounded by the
        // tracks there are: each costs an eighth (a room of 200 is 400 of them).
        let cost = match message {
            ToRelay::Subscribe { .. } | ToRelay::Unsubscribe { .. } => SUBSCRIBE_COST,
            _ => 1.0,
        };
        if member.budget < cost {
            return Err(Error::Violation("too many control messages"));
        }
        member.budget -= cost;
        match message {
            ToRelay::Hello { .. } | ToRelay::Join { .. } => {
                return Err(Error::Violation("already joined"));
            }
            ToRelay::Leave => self.handle_leave(from, LeaveReason::Left, now),
            ToRelay::KeyPackage { package } => {
                if !self.e2ee {
                    return Err(Error::Violation(
                        "a key package in a room not end-to-end encrypted",
                    ));
                }
                self.delivery
                    .key_package(from, package, now, &mut self.outbox);
            }
            ToRelay::GroupCommit {
                round,
                commit,
                welcome,
            } => {
                if !self.e2ee {
                    return Err(Error::Violation(
                        "a commit in a room not end-to-end encrypted",
                    ));
                }
                // A stale commit (its round lapsed, or another answered) is dropped quietly:
                // its member will apply the one forwarded.
                self.delivery
                    .commit(from, round, commit, welcome, now, &mut self.outbox);
            }
            ToRelay::SealedChat { sealed } => {
                let member = self.member_mut(from)?;
                if !member.grants.chat {
                    return Err(Error::NotAllowed("chat"));
                }
                let name = member.info.name.clone();
                if !self.e2ee {
                    return Err(Error::Violation(
                        "sealed chat in a room not end-to-end encrypted",
                    ));
                }
                // The sender cannot open its own line (MLS): it shows it as it sent it. Not
                // kept for joiners, who hold no key to an earlier epoch.
                self.broadcast(from, FromRelay::SealedChat { from, name, sealed });
            }
            ToRelay::Publish { index, info } => {
                let member = self.member_mut(from)?;
                if !member.grants.publish {
                    return Err(Error::NotAllowed("publish"));
                }
                if member.info.tracks.iter().any(|(i, _)| *i == index) {
                    return Err(Error::Violation("track index already published"));
                }
                member.info.tracks.push((index, info.clone()));
                let track = TrackId {
                    participant: from,
                    index,
                };
                self.broadcast(from, FromRelay::TrackPublished { track, info });
                // Nobody takes any of it yet: the publisher hears so (it encodes nothing until
                // someone subscribes).
                if self.track_kind(track) == Some(TrackKind::Video) {
                    self.wanted.insert(track, 0);
                    self.outbox
                        .push_back((from, FromRelay::LayersWanted { index, layers: 0 }));
                }
            }
            ToRelay::Unpublish { index } => {
                let member = self.member_mut(from)?;
                let before = member.info.tracks.len();
                member.info.tracks.retain(|(i, _)| *i != index);
                if member.info.tracks.len() != before {
                    let track = TrackId {
                        participant: from,
                        index,
                    };
                    self.end_track(track);
                    self.broadcast(from, FromRelay::TrackUnpublished { track });
                    self.update_wanted();
                }
            }
            ToRelay::Subscribe { track } => {
                if !self.member_mut(from)?.grants.subscribe {
                    return Err(Error::NotAllowed("subscribe"));
                }
                let kind = self.track_kind(track).filter(|_| track.participant != from);
                let Some(kind) = kind else {
                    self.outbox
                        .push_back((from, FromRelay::TrackUnpublished { track }));
                    return Ok(());
                };
                let interval = self.config.keyframe_request_interval;
                let member = self.member_mut(from)?;
                if let Some(sub) = member.subscriptions.get_mut(&track) {
                    // Again: the subscriber starts afresh (a decoder of its own restarted).
                    if kind == TrackKind::Video {
                        sub.waiting_for_keyframe = true;
                        sub.current = None;
                        member.video.retain(|f| f.header.track != track);
                        sub.queued = 0;
                        if let Some(layer) = sub.target {
                            self.request_keyframe(track, layer, now);
                        }
                    }
                    return Ok(());
                }
                member.subscriptions.insert(
                    track,
                    Subscription {
                        kind,
                        current: None,
                        target: None,
                        queued: 0,
                        waiting_for_keyframe: kind == TrackKind::Video,
                        overflows: 0,
                        last_overflow: None,
                        next_ask: now + interval,
                    },
                );
                member.dirty = true;
                self.allocate(now);
            }
            ToRelay::Unsubscribe { track } => {
                let member = self.member_mut(from)?;
                if member.subscriptions.remove(&track).is_some() {
                    member.audio.retain(|f| f.header.track != track);
                    member.video.retain(|f| f.header.track != track);
                    member.dirty = true;
                    self.allocate(now);
                }
            }
            ToRelay::KeyframeRequest { track } => {
                let layer = self
                    .member_mut(from)?
                    .subscriptions
                    .get(&track)
                    .and_then(|sub| sub.target);
                if let Some(layer) = layer {
                    self.request_keyframe(track, layer, now);
                }
            }
            ToRelay::View { wants, max_kbps } => {
                let member = self.member_mut(from)?;
                member.view = Some(
                    wants
                        .iter()
                        .map(|want| (want.track, (want.height, want.priority)))
                        .collect(),
                );
                member.max_kbps = (max_kbps > 0).then_some(max_kbps);
                member.dirty = true;
                self.allocate(now);
            }
            ToRelay::Chat { text } => {
                if self.e2ee {
                    return Err(Error::Violation(
                        "plain chat in an end-to-end encrypted room",
                    ));
                }
                let member = self.member_mut(from)?;
                if !member.grants.chat {
                    return Err(Error::NotAllowed("chat"));
                }
                let name = member.info.name.clone();
                self.chat_seq += 1;
                let line = FromRelay::Chat {
                    seq: self.chat_seq,
                    from,
                    name,
                    text,
                };
                for id in self.members.keys() {
                    self.outbox.push_back((*id, line.clone()));
                }
                if self.chat_history.len() == CHAT_HISTORY {
                    self.chat_history.pop_front();
                }
                self.chat_history.push_back(line);
            }
            ToRelay::Pose(pose) => {
                let member = self.member_mut(from)?;
                member.info.pose = pose;
                member.posed = true;
                self.broadcast(from, FromRelay::Pose { id: from, pose });
            }
            ToRelay::Mute { audio, video } => {
                let member = self.member_mut(from)?;
                member.info.audio_muted = audio;
                member.info.video_muted = video;
                self.broadcast(
                    from,
                    FromRelay::Mute {
                        id: from,
                        audio,
                        video,
                    },
                );
            }
            ToRelay::Ping { nonce } => self.outbox.push_back((from, FromRelay::Pong { nonce })),
        }
        Ok(())
    }

    /// A media frame from a publisher, arrived as `kind` (datagram: audio, stream: video).
    ///
    /// The frame is stamped with its publisher and queued for every subscriber of its track.
    /// Media of the wrong kind for its track is an error; media for a track not published (yet)
    /// is dropped.
    pub fn handle_media(
        &mut self,
        from: ParticipantId,
        frame: MediaFrame,
        kind: TrackKind,
        now: Instant,
    ) -> Result<()> {
        let track = TrackId {
            participant: from,
            index: frame.header.track.index,
        };
        if !self.members.contains_key(&from) {
            return Err(Error::Violation("not in the room"));
        }
        match self.track_kind(track) {
            Some(published) if published == kind => {}
            Some(_) => return Err(Error::Violation("media of the wrong kind")),
            None => {
                // Media and control travel on different streams, so a track's first frames can
                // overtake its publish message: drop them, it is no offence.
                self.stats.frames_unroutable += 1;
                return Ok(());
            }
        }
        self.stats.frames_in += 1;
        if kind == TrackKind::Video {
            self.measure(track, frame.header.layer, frame.wire.len(), now);
        }
        let frame = frame.stamp(from);
        let keyframe = frame.header.keyframe;
        let mut wants_keyframe = false;
        let mut congested = Vec::new();
        let mut switched = false;
        let interval = self.config.keyframe_request_interval;
        // A voice reaches everyone when it speaks or is among the loudest; otherwise only the
        // listeners near it.
        let voice_for_all = kind == TrackKind::Audio && self.hear(track, frame.header.level, now);
        let speaker_at = self
            .members
            .get(&from)
            .filter(|m| m.posed)
            .map(|m| m.info.pose.position);
        let near = self.config.near_voice_m;
        for (id, member) in &mut self.members {
            let Some(sub) = member.subscriptions.get_mut(&track) else {
                continue;
            };
            match sub.kind {
                TrackKind::Audio => {
                    let near_enough = || {
                        let ([x, y, z], Some([a, b, c])) = (member.info.pose.position, speaker_at)
                        else {
                            return false;
                        };
                        member.posed
                            && ((x - a).powi(2) + (y - b).powi(2) + (z - c).powi(2)).sqrt() <= near
                    };
                    if !voice_for_all && !near_enough() {
                        self.stats.audio_suppressed += 1;
                        continue;
                    }
                    if member.audio.len() >= self.config.audio_queue_frames {
                        member.audio.pop_front();
                        self.stats.frames_dropped += 1;
                    }
                    member.audio.push_back(frame.clone());
                }
                TrackKind::Video => {
                    let layer = frame.header.layer;
                    if sub.current != Some(layer) {
                        if sub.target != Some(layer) {
                            continue; // a layer this subscriber does not take
                        }
                        if !keyframe {
                            self.stats.frames_dropped += 1;
                            wants_keyframe |= sub.may_ask(now, interval);
                            continue;
                        }
                        // The layer it switches to starts here: what is queued of the old one
                        // goes (the new one does not build on it).
                        if sub.current.is_some() {
                            switched = true;
                            self.stats.layer_switches += 1;
                            let before = member.video.len();
                            member.video.retain(|f| f.header.track != track);
                            self.stats.frames_dropped += (before - member.video.len()) as u64;
                            sub.queued = 0;
                        }
                        sub.current = Some(layer);
                        sub.waiting_for_keyframe = false;
                    }
                    if sub.waiting_for_keyframe && !keyframe {
                        self.stats.frames_dropped += 1;
                        wants_keyframe |= sub.may_ask(now, interval);
                        continue;
                    }
                    sub.waiting_for_keyframe = false;
                    if sub.queued >= self.config.video_queue_frames {
                        // Too far behind: drop what is queued and start again at a keyframe.
                        let before = member.video.len();
                        member.video.retain(|f| f.header.track != track);
                        self.stats.frames_dropped += (before - member.video.len()) as u64;
                        sub.queued = 0;
                        if sub
                            .last_overflow
                            .is_some_and(|last| now.saturating_duration_since(last) > OVERFLOW_CALM)
                        {
                            sub.overflows = 0;
                        }
                        sub.last_overflow = Some(now);
                        congested.push(*id);
                        if !keyframe {
                            self.stats.frames_dropped += 1;
                            sub.waiting_for_keyframe = true;
                            wants_keyframe |= sub.may_ask(now, interval);
                        }
                        sub.overflows = sub.overflows.saturating_add(1);
                        if !keyframe {
                            continue;
                        }
                    }
                    sub.queued += 1;
                    member.video.push_back(frame.clone());
                }
            }
            self.stats.frames_queued += 1;
            self.woken.insert(*id);
        }
        // Someone is waiting for a keyframe and may ask: ask (once the track's limit allows).
        if wants_keyframe {
            self.request_keyframe(track, frame.header.layer, now);
        }
        // The layer left behind may no longer be wanted by anyone.
        if switched {
            self.update_wanted();
        }
        // A subscriber whose queue overflowed gets less from now on.
        if !congested.is_empty() {
            for id in congested {
                if let Some(member) = self.members.get_mut(&id) {
                    let sent = member.allocated_kbps + audio_cost(&self.config, member);
                    member.dirty |= member.link.on_overflow(sent, now);
                }
            }
            self.allocate(now);
        }
        Ok(())
    }

    /// The next control message to send, and to whom.
    pub fn poll_control(&mut self) -> Option<(ParticipantId, FromRelay)> {
        self.outbox.pop_front()
    }

    /// A participant that has new media queued since it was last returned.
    pub fn poll_woken(&mut self) -> Option<ParticipantId> {
        self.woken.pop_first()
    }

    /// The next audio frame to send to `to`.
    pub fn poll_audio(&mut self, to: ParticipantId) -> Option<MediaFrame> {
        self.members.get_mut(&to)?.audio.pop_front()
    }

    /// The next video frame to send to `to`.
    pub fn poll_video(&mut self, to: ParticipantId) -> Option<MediaFrame> {
        let member = self.members.get_mut(&to)?;
        let frame = member.video.pop_front()?;
        if let Some(sub) = member.subscriptions.get_mut(&frame.header.track) {
            sub.queued = sub.queued.saturating_sub(1);
        }
        Some(frame)
    }

    fn member_mut(&mut self, id: ParticipantId) -> Result<&mut Member> {
        self.members
            .get_mut(&id)
            .ok_or(Error::Violation("not in the room"))
    }

    fn broadcast(&mut self, except: ParticipantId, message: FromRelay) {
        for id in self.members.keys().filter(|id| **id != except) {
            self.outbox.push_back((*id, message.clone()));
        }
    }

    /// Takes in an audio frame's level; whether the frame goes to every listener (speech, or
    /// one of the loudest voices).
    fn hear(&mut self, track: TrackId, level: u8, now: Instant) -> bool {
        let heard = f32::from(crate::media::SILENT_LEVEL.saturating_sub(level));
        let loudness = self.loudness.entry(track).or_insert(Loudness {
            level: heard,
            at: now,
        });
        loudness.level += (heard - loudness.level) * LOUDNESS_SMOOTHING;
        loudness.at = now;
        if self.next_loudest.is_none_or(|at| now >= at) {
            self.next_loudest = Some(now + LOUDEST_EVERY);
            let mut voices: Vec<(TrackId, f32)> = self
                .loudness
                .iter()
                .filter(|(_, l)| now.saturating_duration_since(l.at) < LOUDNESS_STALE)
                .filter(|(_, l)| l.level >= 1.0)
                .map(|(t, l)| (*t, l.level))
                .collect();
            voices.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            self.loudest = voices
                .into_iter()
                .take(self.config.loudest_voices)
                .map(|(t, _)| t)
                .collect();
        }
        level <= self.config.speech_level || self.loudest.contains(&track)
    }

    fn end_track(&mut self, track: TrackId) {
        self.rates.retain(|(t, _), _| *t != track);
        self.loudness.remove(&track);
        self.loudest.remove(&track);
        self.keyframe_asked.retain(|(t, _), _| *t != track);
        self.wanted.remove(&track);
        for member in self.members.values_mut() {
            if member.subscriptions.remove(&track).is_some() {
                member.audio.retain(|f| f.header.track != track);
                member.video.retain(|f| f.header.track != track);
            }
        }
    }

    /// Asks the publisher for a keyframe, at most once per `keyframe_request_interval` per track.
    /// A request held back by that limit is not lost: frames a waiting subscriber skips ask again
    /// (at that subscriber's own, backed-off pace), so one goes out once the interval has passed.
    fn request_keyframe(&mut self, track: TrackId, layer: u8, now: Instant) {
        if let Some(last) = self.keyframe_asked.get(&(track, layer))
            && now.saturating_duration_since(*last) < self.config.keyframe_request_interval
        {
            return;
        }
        self.keyframe_asked.insert((track, layer), now);
        self.stats.keyframe_requests += 1;
        self.outbox.push_back((
            track.participant,
            FromRelay::KeyframeRequest {
                index: track.index,
                layer,
            },
        ));
    }

    /// What a member's link may carry, in kb/s: its estimate, the transport's share and its
    /// own limit, whichever is least.
    fn limit(&self, member: &Member) -> f64 {
        let transport = member
            .downlink_kbps
            .map(|d| f64::from(d) * self.config.downlink_share);
        [
            Some(member.link.kbps()),
            transport,
            member.max_kbps.map(f64::from),
        ]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min)
    }

    /// What a member's video may cost, in kb/s: its link's [`Self::limit`] less its audio.
    fn budget(&self, member: &Member) -> Option<u32> {
        Some((self.limit(member) - audio_cost(&self.config, member)).max(0.0) as u32)
    }

    /// Runs the allocation of every member marked dirty; asks for the keyframes its switches
    /// need, and tells publishers when the layers anyone takes change.
    fn allocate(&mut self, now: Instant) {
        let dirty: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|(_, m)| m.dirty)
            .map(|(id, _)| *id)
            .collect();
        if dirty.is_empty() {
            return;
        }
        let mut asks = Vec::new();
        for id in dirty {
            let Some(member) = self.members.get(&id) else {
                continue;
            };
            let budget = self.budget(member);
            let candidates: Vec<Candidate> = member
                .subscriptions
                .iter()
                .filter(|(_, sub)| sub.kind == TrackKind::Video)
                .map(|(track, sub)| {
                    let layers = self.track_layers(*track, now);
                    // A shared screen stands on everyone's wall, whole, unless a view says it
                    // is out of sight; it goes first.
                    let screen = self.track_source(*track) == Some(TrackSource::Screen);
                    let unseen = if screen { (u16::MAX, 0) } else { (0, 0) };
                    let (height, priority) = match &member.view {
                        // Not said yet: the top layer, as before layers existed.
                        None => (u16::MAX, 0),
                        Some(view) => view.get(track).copied().unwrap_or(unseen),
                    };
                    let priority = if screen { u8::MAX } else { priority };
                    Candidate {
                        track: *track,
                        priority,
                        height,
                        layers,
                        current: sub.current.or(sub.target),
                    }
                })
                .collect();
            let chosen = alloc::allocate(budget, &candidates);
            let allocated: f64 = candidates
                .iter()
                .zip(&chosen)
                .filter_map(|(c, layer)| {
                    layer.and_then(|l| c.layers.get(usize::from(l)).map(|l| f64::from(l.kbps)))
                })
                .sum();
            let Some(member) = self.members.get_mut(&id) else {
                continue;
            };
            member.dirty = false;
            member.allocated_kbps = allocated;
            for (candidate, layer) in candidates.iter().zip(chosen) {
                let Some(sub) = member.subscriptions.get_mut(&candidate.track) else {
                    continue;
                };
                if sub.target == layer {
                    continue;
                }
                sub.target = layer;
                match layer {
                    None => {
                        // Paused at once: nothing more of it, nothing queued.
                        sub.current = None;
                        sub.queued = 0;
                        member.video.retain(|f| f.header.track != candidate.track);
                    }
                    Some(layer) if sub.current != Some(layer) => {
                        asks.push((candidate.track, layer));
                    }
                    Some(_) => {}
                }
            }
        }
        self.update_wanted();
        for (track, layer) in asks {
            self.request_keyframe(track, layer, now);
        }
    }

    /// Tells each publisher whose set of taken layers changed which of them anyone takes now.
    fn update_wanted(&mut self) {
        let mut now_wanted: HashMap<TrackId, u8> =
            self.wanted.keys().map(|track| (*track, 0)).collect();
        for member in self.members.values() {
            for (track, sub) in &member.subscriptions {
                if sub.kind != TrackKind::Video {
                    continue;
                }
                let bits = [sub.current, sub.target]
                    .into_iter()
                    .flatten()
                    .fold(0u8, |bits, layer| bits | 1 << (layer & 7));
                *now_wanted.entry(*track).or_default() |= bits;
            }
        }
        for (track, layers) in now_wanted {
            if self.wanted.get(&track) == Some(&layers)
                || !self.members.contains_key(&track.participant)
            {
                continue;
            }
            self.wanted.insert(track, layers);
            self.outbox.push_back((
                track.participant,
                FromRelay::LayersWanted {
                    index: track.index,
                    layers,
                },
            ));
        }
    }
}

/// What a member's voices cost its link, in kb/s: each subscribed voice, up to as many as the
/// relay forwards at once (the loudest, the speaking and the near).
fn audio_cost(config: &RoomConfig, member: &Member) -> f64 {
    let voices = member
        .subscriptions
        .values()
        .filter(|sub| sub.kind == TrackKind::Audio)
        .count()
        .min(config.loudest_voices + VOICES_BESIDE_LOUDEST);
    voices as f64 * f64::from(config.audio_kbps)
}
