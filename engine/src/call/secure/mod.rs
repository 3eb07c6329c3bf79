//! The call's end-to-end encryption: our member of the room's MLS group (`rotunda-e2ee`), the
//! group messages the relay relays, and sealing and opening every media frame and chat line.
//!
//! Each of us is known in the group by the label `"<participant id>:<identity>"`: both come
//! from the relay's roster (the identity from the access token when the relay asks for one), so
//! a commit adding anyone the roster does not show is refused. A frame's clear header is
//! authenticated with it, with the two fields the relay may fill in (the publisher's id, which
//! it stamps, and the payload length, which sealing changes) set to zero; the publisher's id is
//! then checked against the label of the member whose key opened the frame.
//!
//! The same code runs natively and in the browser's worker (`rotunda-e2ee` is pure Rust).

use rotunda_proto::{ParticipantId, ToRelay};

mod member;

pub(super) use member::Secure;

/// What end-to-end encryption is in this call now.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Security {
    /// The room is end-to-end encrypted.
    pub e2ee: bool,
    /// We hold the group's keys (we are in its current epoch).
    pub ready: bool,
    /// The group's epoch.
    pub epoch: Option<u64>,
    /// The safety code of the epoch: equal for everyone in the room.
    pub safety_code: Option<String>,
    /// Members of the group.
    pub members: usize,
}

/// What handling a group message asks of the call.
#[derive(Debug, Default)]
pub(in crate::call) struct Outcome {
    /// Messages for the relay.
    pub(in crate::call) send: Vec<ToRelay>,
    /// The epoch changed: receivers ask for keyframes, sealed under its keys.
    pub(in crate::call) new_epoch: bool,
    /// A chat line opened: who said it, their name and the text.
    pub(in crate::call) chat: Option<(ParticipantId, String, String)>,
}
