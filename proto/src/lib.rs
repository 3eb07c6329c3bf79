//! The Rotunda wire protocol, free of any I/O.
//!
//! - [`message`]: control messages, [`ToRelay`] from a client and [`FromRelay`] from the relay,
//!   serialized with postcard and sent length-prefixed on one bidirectional stream ([`framing`]).
//! - [`media`]: the fixed binary header in front of every media payload. The payload is opaque to
//!   the relay (it may be end-to-end encrypted); audio travels in datagrams, each video frame on a
//!   unidirectional stream of its own.
//! - [`limits`]: the size limit of every field; decoders reject anything larger.
//! - [`group`]: the relay as the MLS delivery service of an end-to-end encrypted room.
//! - [`room`]: the relay's sans-IO room logic: membership, presence, chat, and selective
//!   forwarding through bounded per-subscriber queues that skip to the next keyframe when a
//!   subscriber falls behind. Callers pass `now` in and pull results out with `poll_*`.
//!
//! Every decoder returns a typed [`Error`]; none panics on any input.

pub mod alloc;
pub mod framing;
pub mod group;
pub mod limits;
pub mod link;
pub mod media;
pub mod message;
pub mod room;

mod error;

pub use error::{Error, ErrorCode, Result};
pub use media::{FramePriority, MediaFrame, MediaHeader, SILENT_LEVEL, audio_level};
pub use message::{
    FromRelay, Grants, LayerInfo, LeaveReason, ParticipantId, ParticipantInfo, Pose, Resume,
    ToRelay, TrackId, TrackInfo, TrackKind, TrackSource, ViewWant,
};

/// The protocol version a client announces in its hello; the relay refuses any other with
/// [`ErrorCode::UnsupportedVersion`], before reading anything else.
///
/// 2: a join may ask to keep a place after a lost connection ([`Resume`]); the welcome carries
/// the secret for it and says whether the place was kept.
///
/// 3: simulcast. A video track announces its layers ([`LayerInfo`]), each frame's header names
/// its layer (and an audio frame's its level); a viewer says what it sees ([`ToRelay::View`]),
/// the relay serves each one the layers its view and its link call for and tells publishers
/// which layers anyone takes ([`FromRelay::LayersWanted`]); keyframe requests name a layer.
///
/// 4: the relay tells each client its estimate of the client's downlink ([`FromRelay::Link`]).
///
/// 5: access tokens. Participants have an identity ([`ParticipantInfo::identity`]); the welcome
/// says what the joiner may do ([`Grants`]), its name and identity; a refused token or a
/// missing grant has a code of its own ([`ErrorCode::TokenExpired`], …).
///
/// 6: end-to-end encryption. A join says whether a room it creates is encrypted; the welcome
/// says whether the room is; MLS key packages, commit requests, commits, welcomes and sealed
/// chat travel as control messages ([`group`]).
///
/// 7: a member of the group sending a key package asks to be added again (it lost its group
/// state, or a commit did not apply): the next commit removes its old leaf and adds the new
/// one, and members accept removing someone present only so. A client comes back on a resumed
/// connection that way too.
///
/// 8: shared screens. A participant may publish a second video track, its screen
/// ([`TrackSource::Screen`], with layers of its own); the relay serves it before any camera and
/// whole unless a viewer's view puts it out of sight. A client of 7 would take it for a second
/// camera and show it on the sharer's panel.
pub const PROTOCOL_VERSION: u16 = 8;
