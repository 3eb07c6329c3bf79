//! The relay's rooms: each a sans-IO [`Room`] behind a mutex, plus the channels to its sessions.
//!
//! After every change, [`SharedRoom::with`] hands the room's queued control messages to the
//! sessions' bounded channels and wakes the sessions that have media to send. A session whose
//! control channel is full is not keeping up: it is closed rather than allowed to hold anyone up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rotunda_proto::room::{Admission, ForwardStats, Joined, Room, RoomConfig};
use rotunda_proto::{
    ErrorCode, FromRelay, LeaveReason, MediaFrame, ParticipantId, Result, Resume, TrackId,
    TrackKind,
};
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};
use wtransport::{Connection, VarInt};

use crate::record::Recorder;

/// A session as its room sees it.
pub struct Peer {
    /// Control messages to send to it.
    pub control: mpsc::Sender<FromRelay>,
    /// Woken when media is queued for it.
    pub media: Arc<Notify>,
    /// Its connection, closed if it stops keeping up.
    pub connection: Connection,
    /// Which session this is (a participant that took its place back has a new one).
    pub session: u64,
}

struct RoomState {
    room: Room,
    peers: HashMap<ParticipantId, Peer>,
}

/// One room, shared by its sessions.
pub struct SharedRoom {
    name: String,
    state: Mutex<RoomState>,
    /// The recorder and this room's place in it, when the relay records.
    recording: Option<(Arc<Recorder>, Arc<str>)>,
}

impl SharedRoom {
    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on the room, then delivers what it queued.
    pub fn with<R>(&self, f: impl FnOnce(&mut Room, Instant) -> R) -> R {
        let mut state = self.lock();
        let result = f(&mut state.room, Instant::now());
        state.flush();
        result
    }

    /// A media frame from participant `id`, arrived as `kind`: forwarded by the room (see
    /// [`Room::handle_media`]), and recorded when the relay records and the track is published.
    pub fn forward(&self, id: ParticipantId, frame: MediaFrame, kind: TrackKind) -> Result<()> {
        let track = TrackId {
            participant: id,
            index: frame.header.track.index,
        };
        let recorded = self.recording.as_ref().map(|_| frame.clone());
        let published = self.with(|room, now| {
            let published = room.track_kind(track) == Some(kind);
            room.handle_media(id, frame, kind, now).map(|()| published)
        })?;
        if let (true, Some((recorder, dir)), Some(frame)) = (published, &self.recording, recorded) {
            recorder.frame(dir, track, kind, &frame);
        }
        Ok(())
    }

    /// Forwarding counters so far.
    pub fn stats(&self) -> ForwardStats {
        self.lock().room.stats()
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RoomState {
    fn flush(&mut self) {
        while let Some((to, message)) = self.room.poll_control() {
            let Some(peer) = self.peers.get(&to) else {
                continue;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = peer.control.try_send(message) {
                warn!(participant = %to, "control queue full; closing the session");
                peer.connection
                    .close(VarInt::from_u32(ErrorCode::TooSlow.as_u32()), b"too slow");
            }
        }
        while let Some(to) = self.room.poll_woken() {
            if let Some(peer) = self.peers.get(&to) {
                peer.media.notify_one();
            }
        }
    }
}

/// All rooms of the relay: a room appears on first join and vanishes when empty.
pub struct Rooms {
    config: RoomConfig,
    rooms: Mutex<HashMap<String, Arc<SharedRoom>>>,
    recorder: Option<Arc<Recorder>>,
}

impl Rooms {
    /// No rooms yet; every room records through `recorder` when there is one.
    pub fn new(config: RoomConfig, recorder: Option<Arc<Recorder>>) -> Self {
        Self {
            config,
            rooms: Mutex::new(HashMap::new()),
            recorder,
        }
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No rooms exist.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a participant to a room, creating the room if needed (end-to-end encrypted when
    /// `e2ee`: the first joiner decides); with `resume`, gives it back the place it had (closing
    /// that place's old connection).
    pub fn join(
        &self,
        room: &str,
        who: Admission,
        resume: Option<Resume>,
        e2ee: bool,
        peer: Peer,
    ) -> Result<(Arc<SharedRoom>, Joined)> {
        let mut rooms = self.lock();
        let shared = rooms
            .entry(room.to_owned())
            .or_insert_with(|| {
                info!(room, "room opened");
                Arc::new(SharedRoom {
                    name: room.to_owned(),
                    state: Mutex::new(RoomState {
                        room: Room::new(self.config.clone()),
                        peers: HashMap::new(),
                    }),
                    recording: self
                        .recorder
                        .as_ref()
                        .map(|recorder| (recorder.clone(), recorder.room_dir(room))),
                })
            })
            .clone();
        let mut state = shared.lock();
        if state.room.is_empty() {
            state.room.set_e2ee(e2ee);
            if e2ee {
                info!(
                    room,
                    "the room is end-to-end encrypted: its media and chat are sealed"
                );
            } else {
                warn!(
                    room,
                    "the room is not end-to-end encrypted: the relay can read it"
                );
            }
        }
        let joined = state
            .room
            .handle_admitted(who, resume, new_secret(), Instant::now());
        match joined {
            Ok(joined) => {
                if let Some(old) = state.peers.insert(joined.id, peer) {
                    // The old connection of a place taken back: it is dead or soon will be.
                    old.connection
                        .close(VarInt::from_u32(ErrorCode::Normal.as_u32()), b"replaced");
                }
                state.flush();
                drop(state);
                Ok((shared, joined))
            }
            Err(error) => {
                let empty = state.room.is_empty();
                drop(state);
                if empty {
                    rooms.remove(room);
                }
                Err(error)
            }
        }
    }

    /// Removes a participant whose session `session` ended (unless a newer session took its
    /// place back); the room closes when it was the last.
    pub fn leave(
        &self,
        room: &Arc<SharedRoom>,
        id: ParticipantId,
        session: u64,
        reason: LeaveReason,
    ) {
        let mut rooms = self.lock();
        let mut state = room.lock();
        if state
            .peers
            .get(&id)
            .is_some_and(|peer| peer.session != session)
        {
            return;
        }
        state.room.handle_leave(id, reason, Instant::now());
        state.peers.remove(&id);
        state.flush();
        if state.room.is_empty() {
            drop(state);
            if rooms.get(room.name()).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(room.name());
                info!(room = room.name(), "room closed");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<SharedRoom>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A secret nobody can guess, for a participant to take its place back with.
fn new_secret() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: a place then cannot be taken back (no secret matches 0).
        warn!("no randomness for resume secrets");
        return 0;
    }
    u64::from_le_bytes(bytes).max(1)
}
