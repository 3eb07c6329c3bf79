//! Control messages, by direction: [`ToRelay`] from a client, [`FromRelay`] from the relay.
//!
//! They travel on the session's one bidirectional stream, framed by [`crate::framing`]. Every
//! message is checked against [`crate::limits`] by `validate`, which the framing decoder calls.

use serde::{Deserialize, Serialize};

use crate::limits::*;
use crate::{Error, ErrorCode, Result};

/// A participant, unique within its room for the life of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ParticipantId(pub u32);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A published track: its owner and the owner's own index for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TrackId {
    /// Who publishes it.
    pub participant: ParticipantId,
    /// The publisher's index for it (below [`MAX_TRACKS_PER_PARTICIPANT`]).
    pub index: u8,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackKind {
    /// Opus in datagrams.
    Audio,
    /// H.264 Annex-B, one frame per unidirectional stream.
    Video,
}

/// Where a track's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackSource {
    /// A camera (or the synthetic pattern standing in for one).
    Camera,
    /// A microphone (or the synthetic tone standing in for one).
    Microphone,
    /// A shared screen.
    Screen,
}

/// What a track carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec string, e.g. `avc1.42E01F` or `opus`.
    pub codec: String,
    /// Where it comes from.
    pub source: TrackSource,
    /// Video width in pixels (0 for audio).
    pub width: u16,
    /// Video height in pixels (0 for audio).
    pub height: u16,
    /// A video track's simulcast layers, smallest first, each an independent stream starting
    /// its own groups with keyframes (its frames carry the layer's index in the media header).
    /// Empty: one layer, `width` x `height`.
    pub layers: Vec<LayerInfo>,
}

/// One simulcast layer of a video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Picture width in pixels.
    pub width: u16,
    /// Picture height in pixels.
    pub height: u16,
    /// Pictures per second.
    pub fps: u8,
    /// The encoder's target, in kb/s (what the relay's allocation counts until it has measured
    /// the layer).
    pub kbps: u32,
}

impl TrackInfo {
    /// The layers a subscriber can choose from, smallest first: the announced ones, or the
    /// track's one picture size when it announced none.
    pub fn layer_list(&self) -> Vec<LayerInfo> {
        if self.layers.is_empty() {
            vec![LayerInfo {
                width: self.width,
                height: self.height,
                fps: 30,
                kbps: 0,
            }]
        } else {
            self.layers.clone()
        }
    }

    fn validate(&self) -> Result<()> {
        check_str("codec", &self.codec, MAX_CODEC, false)?;
        check_len("layers", self.layers.len(), MAX_LAYERS)?;
        if self.kind == TrackKind::Audio && !self.layers.is_empty() {
            return Err(Error::Malformed("audio has no layers"));
        }
        for pair in self.layers.windows(2) {
            if u32::from(pair[0].height) * u32::from(pair[0].width)
                > u32::from(pair[1].height) * u32::from(pair[1].width)
            {
                return Err(Error::Malformed("layers not smallest first"));
            }
        }
        for layer in &self.layers {
            if layer.width > MAX_DIMENSION || layer.height > MAX_DIMENSION {
                return Err(Error::TooLarge {
                    field: "layer resolution",
                    len: usize::from(layer.width.max(layer.height)),
                    max: usize::from(MAX_DIMENSION),
                });
            }
            check_len("layer kb/s", layer.kbps as usize, MAX_LAYER_KBPS)?;
        }
        if self.width > MAX_DIMENSION || self.height > MAX_DIMENSION {
            return Err(Error::TooLarge {
                field: "resolution",
                len: usize::from(self.width.max(self.height)),
                max: usize::from(MAX_DIMENSION),
            });
        }
        Ok(())
    }
}

/// A position and orientation in the room (metres; orientation as a unit quaternion x, y, z, w).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Position.
    pub position: [f32; 3],
    /// Orientation quaternion.
    pub orientation: [f32; 4],
}

impl Default for Pose {
    /// At the origin, facing the default direction (the identity rotation).
    fn default() -> Self {
        Self {
            position: [0.0; 3],
            orientation: [0.0, 0.0, 0.0, 1.0],
        }
    }
}

impl Pose {
    fn validate(&self) -> Result<()> {
        let finite = self
            .position
            .iter()
            .chain(&self.orientation)
            .all(|v| v.is_finite());
        if !finite {
            return Err(Error::Malformed("pose is not finite"));
        }
        Ok(())
    }
}

/// What a participant may do in its room: what its access token grants (everything, on a relay
/// that asks for no tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grants {
    /// It may publish tracks.
    pub publish: bool,
    /// It may receive others' media.
    pub subscribe: bool,
    /// It may say something in the chat.
    pub chat: bool,
}

impl Grants {
    /// Everything: publish, subscribe and chat.
    pub const ALL: Grants = Grants {
        publish: true,
        subscribe: true,
        chat: true,
    };
}

impl Default for Grants {
    fn default() -> Self {
        Self::ALL
    }
}

/// A participant as the roster shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Its id.
    pub id: ParticipantId,
    /// Its display name.
    pub name: String,
    /// Who it is: the subject of its access token, signed by the room's issuer; on a relay that
    /// asks for no tokens, the name it gave (vouched for by nobody).
    pub identity: String,
    /// What it publishes.
    pub tracks: Vec<(u8, TrackInfo)>,
    /// Its microphone is muted.
    pub audio_muted: bool,
    /// Its camera is off.
    pub video_muted: bool,
    /// Where it stands.
    pub pose: Pose,
}

impl ParticipantInfo {
    fn validate(&self) -> Result<()> {
        check_str("name", &self.name, MAX_DISPLAY_NAME, false)?;
        check_str("identity", &self.identity, MAX_IDENTITY, false)?;
        check_len("tracks", self.tracks.len(), MAX_TRACKS_PER_PARTICIPANT)?;
        for (index, track) in &self.tracks {
            check_track_index(*index)?;
            track.validate()?;
        }
        self.pose.validate()
    }
}

/// What a client presents to keep its place (its id, tracks and subscriptions) after its
/// connection was lost, while the relay still holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resume {
    /// The id it had.
    pub id: ParticipantId,
    /// The secret the relay's welcome gave it.
    pub secret: u64,
}

/// How a viewer sees one remote video track: what the relay's allocation serves it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewWant {
    /// Which track.
    pub track: TrackId,
    /// How many pixels tall the picture appears on the viewer's screen.
    pub height: u16,
    /// Higher goes first when the viewer's link cannot carry everything (the active speaker,
    /// what is near the centre of the view, a pinned panel).
    pub priority: u8,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaveReason {
    /// It said goodbye.
    Left,
    /// Its connection dropped.
    Disconnected,
    /// The relay removed it for breaking the protocol.
    Removed(ErrorCode),
}

/// A message from a client to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToRelay {
    /// First message of a session.
    Hello {
        /// [`crate::PROTOCOL_VERSION`] of the client.
        version: u16,
        /// Free text naming the client software.
        agent: String,
    },
    /// Enter a room (second message of a session).
    Join {
        /// Room name; the room appears on first join.
        room: String,
        /// Display name.
        name: String,
        /// Access token, when the relay asks for one.
        token: Option<String>,
        /// The place to take back after a lost connection, if any.
        resume: Option<Resume>,
        /// End-to-end encryption for a room this join creates (a room's first joiner decides
        /// for everyone: [`FromRelay::Welcome::e2ee`]).
        e2ee: bool,
    },
    /// Start publishing a track under the client's own index.
    Publish {
        /// The client's index for it.
        index: u8,
        /// What it carries.
        info: TrackInfo,
    },
    /// Stop publishing a track.
    Unpublish {
        /// The client's index for it.
        index: u8,
    },
    /// Receive a track's media (again from its next keyframe, when already subscribed).
    Subscribe {
        /// Which track.
        track: TrackId,
    },
    /// Stop receiving a track's media.
    Unsubscribe {
        /// Which track.
        track: TrackId,
    },
    /// Ask the publisher of a subscribed video track for a keyframe (of the layer we receive).
    KeyframeRequest {
        /// Which track.
        track: TrackId,
    },
    /// What we see of the room's videos, replacing what we said before. A subscribed video track
    /// missing from `wants` is not seen (behind us, or out of the window): the relay sends none
    /// of it. Until the first of these, every subscribed video comes at its top layer.
    View {
        /// The videos in sight.
        wants: Vec<ViewWant>,
        /// The most we want to receive, in kb/s (0: no limit of our own).
        max_kbps: u32,
    },
    /// Say something to the room.
    Chat {
        /// The text.
        text: String,
    },
    /// Where the client now stands.
    Pose(Pose),
    /// Microphone and camera state.
    Mute {
        /// Microphone muted.
        audio: bool,
        /// Camera off.
        video: bool,
    },
    /// Round-trip probe; answered by [`FromRelay::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Goodbye.
    Leave,
    /// Our MLS key package, so a member adds us to the room's group (end-to-end encrypted
    /// rooms; see [`crate::group`]).
    KeyPackage {
        /// The key package (an MLS message).
        package: Vec<u8>,
    },
    /// Our answer to [`FromRelay::GroupPropose`].
    GroupCommit {
        /// The round answered.
        round: u64,
        /// The commit (an MLS message).
        commit: Vec<u8>,
        /// The welcome for those it adds (an MLS message), when it adds anyone.
        welcome: Option<Vec<u8>>,
    },
    /// A chat line sealed for the group (an MLS application message), in an end-to-end
    /// encrypted room.
    SealedChat {
        /// The sealed line.
        sealed: Vec<u8>,
    },
}

/// A message from the relay to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromRelay {
    /// Answer to a successful join.
    Welcome {
        /// [`crate::PROTOCOL_VERSION`] of the relay.
        version: u16,
        /// The client's own id.
        you: ParticipantId,
        /// Its name in the room (an access token may name it).
        name: String,
        /// Its identity ([`ParticipantInfo::identity`]).
        identity: String,
        /// What it may do.
        grants: Grants,
        /// Everyone else already in the room.
        participants: Vec<ParticipantInfo>,
        /// The secret to present ([`Resume`]) to keep this place after a lost connection.
        resume_secret: u64,
        /// The place asked for was kept: same id, tracks and subscriptions, and nobody was told
        /// we had gone.
        resumed: bool,
        /// The room is end-to-end encrypted: media and chat are sealed with keys the room's
        /// MLS group agrees (send a [`ToRelay::KeyPackage`] to be added); when false, everyone
        /// in it is told plainly that the relay can read what it forwards.
        e2ee: bool,
    },
    /// Someone entered the room.
    ParticipantJoined(ParticipantInfo),
    /// Someone left the room.
    ParticipantLeft {
        /// Who.
        id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone published a track.
    TrackPublished {
        /// The track.
        track: TrackId,
        /// What it carries.
        info: TrackInfo,
    },
    /// Someone stopped publishing a track.
    TrackUnpublished {
        /// The track.
        track: TrackId,
    },
    /// A subscriber needs a keyframe of one of your tracks.
    KeyframeRequest {
        /// Your index of the track.
        index: u8,
        /// Which of its layers.
        layer: u8,
    },
    /// Which layers of one of your video tracks someone receives now (bit n: layer n); encode
    /// those, and no others.
    LayersWanted {
        /// Your index of the track.
        index: u8,
        /// The layers, one bit each.
        layers: u8,
    },
    /// A chat line, in the room's order. A joiner first receives the room's recent history.
    Chat {
        /// Position in the room's chat history.
        seq: u64,
        /// Who said it.
        from: ParticipantId,
        /// Their display name when they said it (they may have left since).
        name: String,
        /// The text.
        text: String,
    },
    /// Someone moved.
    Pose {
        /// Who.
        id: ParticipantId,
        /// Where to.
        pose: Pose,
    },
    /// Someone muted or unmuted.
    Mute {
        /// Who.
        id: ParticipantId,
        /// Microphone muted.
        audio: bool,
        /// Camera off.
        video: bool,
    },
    /// Answer to [`ToRelay::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Something failed; the relay closes the session after fatal codes.
    Error {
        /// What failed.
        code: ErrorCode,
    },
    /// What the relay estimates your downlink carries, in kb/s (its media to you stays within
    /// it); sent when it changes by a tenth, at most once a second.
    Link {
        /// The estimate.
        kbps: u32,
    },
    /// You are the first of the room's group: start it.
    GroupCreate,
    /// Commit these changes to the group, from this epoch, and answer with
    /// [`ToRelay::GroupCommit`] naming the round.
    GroupPropose {
        /// The request's number.
        round: u64,
        /// The epoch the commit starts from.
        epoch: u64,
        /// Who to add, with their key packages.
        add: Vec<(ParticipantId, Vec<u8>)>,
        /// Who to remove (they left the room).
        remove: Vec<ParticipantId>,
    },
    /// The commit that moves the group on from `epoch`: apply it (once it checks out against the
    /// roster).
    GroupCommit {
        /// The epoch it starts from.
        epoch: u64,
        /// The commit (an MLS message).
        commit: Vec<u8>,
    },
    /// You were added to the room's group: join with this welcome.
    GroupWelcome {
        /// The welcome (an MLS message).
        welcome: Vec<u8>,
    },
    /// A chat line sealed for the group.
    SealedChat {
        /// Who sent it.
        from: ParticipantId,
        /// Their display name when they sent it.
        name: String,
        /// The sealed line.
        sealed: Vec<u8>,
    },
}

/// An MLS message: not empty, and within its limit.
fn check_bytes(field: &'static str, bytes: &[u8], max: usize) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::Empty(field));
    }
    check_len(field, bytes.len(), max)
}

fn check_track_index(index: u8) -> Result<()> {
    check_len(
        "track index",
        usize::from(index),
        MAX_TRACKS_PER_PARTICIPANT - 1,
    )
}

impl ToRelay {
    /// Checks every field against [`crate::limits`].
    pub fn validate(&self) -> Result<()> {
        match self {
            ToRelay::Hello { agent, .. } => check_str("agent", agent, MAX_AGENT, true),
            ToRelay::Join {
                room, name, token, ..
            } => {
                check_str("room", room, MAX_ROOM_NAME, false)?;
                check_str("name", name, MAX_DISPLAY_NAME, false)?;
                match token {
                    Some(token) => check_str("token", token, MAX_TOKEN, true),
                    None => Ok(()),
                }
            }
            ToRelay::Publish { index, info } => {
                check_track_index(*index)?;
                info.validate()
            }
            ToRelay::Unpublish { index } => check_track_index(*index),
            ToRelay::Subscribe { track }
            | ToRelay::Unsubscribe { track }
            | ToRelay::KeyframeRequest { track } => check_track_index(track.index),
            ToRelay::View { wants, .. } => {
                check_len("view", wants.len(), MAX_VIEW)?;
                wants
                    .iter()
                    .try_for_each(|want| check_track_index(want.track.index))
            }
            ToRelay::Chat { text } => check_str("chat", text, MAX_CHAT, false),
            ToRelay::Pose(pose) => pose.validate(),
            ToRelay::Mute { .. } | ToRelay::Ping { .. } | ToRelay::Leave => Ok(()),
            ToRelay::KeyPackage { package } => check_bytes("key package", package, MAX_KEY_PACKAGE),
            ToRelay::GroupCommit {
                commit, welcome, ..
            } => {
                check_bytes("commit", commit, MAX_MLS_MESSAGE)?;
                match welcome {
                    Some(welcome) => check_bytes("welcome", welcome, MAX_MLS_MESSAGE),
                    None => Ok(()),
                }
            }
            ToRelay::SealedChat { sealed } => check_bytes("sealed chat", sealed, MAX_MLS_MESSAGE),
        }
    }
}

impl FromRelay {
    /// Checks every field against [`crate::limits`].
    pub fn validate(&self) -> Result<()> {
        match self {
            FromRelay::Welcome {
                participants,
                name,
                identity,
                ..
            } => {
                check_str("name", name, MAX_DISPLAY_NAME, false)?;
                check_str("identity", identity, MAX_IDENTITY, false)?;
                check_len("participants", participants.len(), MAX_PARTICIPANTS)?;
                participants.iter().try_for_each(ParticipantInfo::validate)
            }
            FromRelay::ParticipantJoined(info) => info.validate(),
            FromRelay::TrackPublished { track, info } => {
                check_track_index(track.index)?;
                info.validate()
            }
            FromRelay::TrackUnpublished { track } => check_track_index(track.index),
            FromRelay::KeyframeRequest { index, layer } => {
                check_track_index(*index)?;
                check_len("layer", usize::from(*layer), MAX_LAYERS - 1)
            }
            FromRelay::LayersWanted { index, .. } => check_track_index(*index),
            FromRelay::Chat { name, text, .. } => {
                check_str("name", name, MAX_DISPLAY_NAME, false)?;
                check_str("chat", text, MAX_CHAT, false)
            }
            FromRelay::Pose { pose, .. } => pose.validate(),
            FromRelay::GroupPropose { add, remove, .. } => {
                check_len("adds", add.len(), MAX_ADDS_PER_ROUND)?;
                check_len("removals", remove.len(), MAX_PARTICIPANTS)?;
                add.iter().try_for_each(|(_, package)| {
                    check_bytes("key package", package, MAX_KEY_PACKAGE)
                })
            }
            FromRelay::GroupCommit { commit, .. } => check_bytes("commit", commit, MAX_MLS_MESSAGE),
            FromRelay::GroupWelcome { welcome } => check_bytes("welcome", welcome, MAX_MLS_MESSAGE),
            FromRelay::SealedChat { name, sealed, .. } => {
                check_str("name", name, MAX_DISPLAY_NAME, false)?;
                check_bytes("sealed chat", sealed, MAX_MLS_MESSAGE)
            }
            FromRelay::ParticipantLeft { .. }
            | FromRelay::GroupCreate
            | FromRelay::Mute { .. }
            | FromRelay::Link { .. }
            | FromRelay::Pong { .. }
            | FromRelay::Error { .. } => Ok(()),
        }
    }
}
