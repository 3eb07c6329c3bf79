//! The relay's room logic, sans-IO: membership, presence, chat and selective forwarding.
//!
//! The relay drives a [`Room`] from its connection tasks: `handle_*` with what a participant sent
//! (and `now`), then `poll_control` for the control messages to send to whom, `poll_woken` for the
//! participants with new media queued, and `poll_audio` / `poll_video` to take that media out.
//!
//! Forwarding shares each frame's bytes between subscribers. Every subscriber has a bounded
//! queue per video track: when it overflows (the subscriber reads too slowly) the queued frames of
//! that track are dropped, later frames are skipped until the next keyframe, and the publisher is
//! asked for one. A slow subscriber therefore never holds up the publisher or anyone else.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::limits::{CHAT_HISTORY, CONTROL_BURST, CONTROL_RATE, MAX_PARTICIPANTS};
use crate::media::MediaFrame;
use crate::message::{
    FromRelay, LeaveReason, ParticipantId, ParticipantInfo, Pose, Resume, ToRelay, TrackId,
    TrackKind,
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
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: MAX_PARTICIPANTS,
            video_queue_frames: 15,
            audio_queue_frames: 25,
            keyframe_request_interval: Duration::from_millis(250),
        }
    }
}

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
}

#[derive(Debug)]
struct Subscription {
    kind: TrackKind,
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
    /// What the participant presents to take its place back after a lost connection.
    secret: u64,
    /// Token bucket of control messages: one participant cannot flood everyone else's queues.
    budget: f64,
    budget_at: Option<Instant>,
    subscriptions: HashMap<TrackId, Subscription>,
    audio: VecDeque<MediaFrame>,
    video: VecDeque<MediaFrame>,
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
    keyframe_asked: HashMap<TrackId, Instant>,
    stats: ForwardStats,
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
            stats: ForwardStats::default(),
        }
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

    /// The kind of a published track, if it is published.
    pub fn track_kind(&self, track: TrackId) -> Option<TrackKind> {
        let member = self.members.get(&track.participant)?;
        member
            .info
            .tracks
            .iter()
            .find(|(index, _)| *index == track.index)
            .map(|(_, info)| info.kind)
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
        if let Some(resume) = resume
            && self
                .members
                .get(&resume.id)
                .is_some_and(|member| member.secret == resume.secret)
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
        let info = ParticipantInfo {
            id,
            name: name.to_owned(),
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
                participants: roster,
                resume_secret: secret,
                resumed: false,
            },
        ));
        for line in &self.chat_history {
            self.outbox.push_back((id, line.clone()));
        }
        self.members.insert(
            id,
            Member {
                info,
                secret,
                budget: f64::from(CONTROL_BURST),
                budget_at: None,
                subscriptions: HashMap::new(),
                audio: VecDeque::new(),
                video: VecDeque::new(),
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
                    restart.push(*track);
                }
            }
            self.outbox.push_back((
                id,
                FromRelay::Welcome {
                    version: PROTOCOL_VERSION,
                    you: id,
                    participants: roster,
                    resume_secret: member.secret,
                    resumed: true,
                },
            ));
        }
        for line in &self.chat_history {
            self.outbox.push_back((id, line.clone()));
        }
        for track in restart {
            self.request_keyframe(track, now);
        }
    }

    /// Someone leaves (or is removed): their tracks end and everyone else is told.
    pub fn handle_leave(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        self.woken.remove(&id);
        self.outbox.retain(|(to, _)| *to != id);
        for (index, _) in &member.info.tracks {
            self.end_track(TrackId {
                participant: id,
                index: *index,
            });
        }
        self.broadcast(id, FromRelay::ParticipantLeft { id, reason });
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
        if member.budget < 1.0 {
            return Err(Error::Violation("too many control messages"));
        }
        member.budget -= 1.0;
        match message {
            ToRelay::Hello { .. } | ToRelay::Join { .. } => {
                return Err(Error::Violation("already joined"));
            }
            ToRelay::Leave => self.handle_leave(from, LeaveReason::Left),
            ToRelay::Publish { index, info } => {
                let member = self.member_mut(from)?;
                if member.info.tracks.iter().any(|(i, _)| *i == index) {
                    return Err(Error::Violation("track index already published"));
                }
                member.info.tracks.push((index, info.clone()));
                let track = TrackId {
                    participant: from,
                    index,
                };
                self.broadcast(from, FromRelay::TrackPublished { track, info });
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
                }
            }
            ToRelay::Subscribe { track } => {
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
                        member.video.retain(|f| f.header.track != track);
                        sub.queued = 0;
                        self.request_keyframe(track, now);
                    }
                    return Ok(());
                }
                member.subscriptions.insert(
                    track,
                    Subscription {
                        kind,
                        queued: 0,
                        waiting_for_keyframe: kind == TrackKind::Video,
                        overflows: 0,
                        last_overflow: None,
                        next_ask: now + interval,
                    },
                );
                if kind == TrackKind::Video {
                    self.request_keyframe(track, now);
                }
            }
            ToRelay::Unsubscribe { track } => {
                let member = self.member_mut(from)?;
                if member.subscriptions.remove(&track).is_some() {
                    member.audio.retain(|f| f.header.track != track);
                    member.video.retain(|f| f.header.track != track);
                }
            }
            ToRelay::KeyframeRequest { track } => {
                let subscribed = self.member_mut(from)?.subscriptions.contains_key(&track);
                if subscribed {
                    self.request_keyframe(track, now);
                }
            }
            ToRelay::Chat { text } => {
                self.chat_seq += 1;
                let name = self.member_mut(from)?.info.name.clone();
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
                self.member_mut(from)?.info.pose = pose;
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
        let frame = frame.stamp(from);
        let keyframe = frame.header.keyframe;
        let mut wants_keyframe = false;
        let interval = self.config.keyframe_request_interval;
        for (id, member) in &mut self.members {
            let Some(sub) = member.subscriptions.get_mut(&track) else {
                continue;
            };
            match sub.kind {
                TrackKind::Audio => {
                    if member.audio.len() >= self.config.audio_queue_frames {
                        member.audio.pop_front();
                        self.stats.frames_dropped += 1;
                    }
                    member.audio.push_back(frame.clone());
                }
                TrackKind::Video => {
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
            self.request_keyframe(track, now);
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

    fn end_track(&mut self, track: TrackId) {
        self.keyframe_asked.remove(&track);
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
    fn request_keyframe(&mut self, track: TrackId, now: Instant) {
        if let Some(last) = self.keyframe_asked.get(&track)
            && now.saturating_duration_since(*last) < self.config.keyframe_request_interval
        {
            return;
        }
        self.keyframe_asked.insert(track, now);
        self.stats.keyframe_requests += 1;
        self.outbox.push_back((
            track.participant,
            FromRelay::KeyframeRequest { index: track.index },
        ));
    }
}
