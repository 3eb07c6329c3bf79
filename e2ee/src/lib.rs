//! End-to-end encryption for Rotunda, written once for the native client and the browser
//! worker: keys agreed with MLS (RFC 9420, `openmls` with its pure-Rust crypto provider), every
//! media frame sealed with SFrame (RFC 9605, the `sframe` crate's pure-Rust backend) under keys
//! exported from the MLS epoch, chat as MLS application messages.
//!
//! Sans-IO, like the protocol core: a [`Member`] takes bytes and the time and hands bytes back;
//! what carries them (the relay, acting as MLS's untrusted delivery service) is the caller's.
//! The relay never holds a group secret. It learns who is in the room (it authenticated them),
//! asks the members to add a newcomer's key package or remove someone who left, and forwards
//! the first commit of each epoch to everyone; a member applies a commit only when every member
//! it adds is in the room's roster and every member it removes has left it ([`Roster`]), so a
//! relay cannot slip in a listener of its own.
//!
//! Each member is known in the group by a *label* the caller chooses, carried in its MLS
//! credential and checked against the roster: Rotunda uses `"<participant id>:<identity>"`,
//! unique in a room and bound to what the relay authenticated.
//!
//! Every join and leave moves the group to a new epoch: media keys are exported afresh, so a
//! member who left cannot open what follows and a newcomer cannot open what came before.
//! Receivers keep the previous epochs' keys for [`PREVIOUS_EPOCH_KEPT`] for the frames still on
//! their way. All members of an epoch share a [`Member::safety_code`], from its epoch
//! authenticator: people who read out the same digits know no one sits between them.

mod group;
mod media;
mod safety;

pub use group::{Applied, Commit, Member, Roster};
pub use media::{EpochSecret, FrameKeys, Opened, PREVIOUS_EPOCH_KEPT, SFRAME_OVERHEAD_MAX};
pub use safety::safety_code;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not in a group yet (no welcome, no group created).
    #[error("not in an end-to-end encrypted group yet")]
    NoGroup,
    /// A message (key package, commit, welcome, chat) that MLS could not parse or verify.
    #[error("MLS: {0}")]
    Mls(String),
    /// A commit or welcome that does not match the room's roster: applying it would let in
    /// someone the relay did not authenticate, or keep someone who left.
    #[error("refused: {0}")]
    Refused(String),
    /// A frame sealed under an epoch we do not hold keys for (not yet, or no longer).
    #[error("no key for this frame's epoch")]
    UnknownEpoch,
    /// A frame that does not open: altered on the way (payload or header) or sealed by no
    /// member of the epoch.
    #[error("frame does not authenticate")]
    Forged,
    /// SFrame could not seal (counter exhausted, or a key could not be derived).
    #[error("SFrame: {0}")]
    Sframe(String),
    /// A commit asked for that would change nothing.
    #[error("nothing to commit")]
    NothingToCommit,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn mls(error: impl std::fmt::Debug) -> Error {
    Error::Mls(format!("{error:?}"))
}
