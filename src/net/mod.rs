//! The connection to a relay: control messages, audio datagrams and video streams.
//!
//! [`connect`] joins a room and returns a [`Session`] to send with and a receiver of [`Event`]s.
//! The transport differs per platform (quinn through `wtransport` natively, the browser's
//! WebTransport through web-sys); this module's API is the same for both.

pub mod bridge;
#[cfg(native)]
mod native;
pub mod trust;
#[cfg(web)]
pub(crate) mod web;

pub use bridge::{
    Call, CallEnded, CallJoined, ChatReceived, Devices, ParticipantJoined, ParticipantLeft,
    ParticipantMoved, ParticipantMuted, StatsUpdated,
};
#[cfg(native)]
use native as platform;
#[cfg(web)]
use web as platform;

pub use platform::{Session, connect, spawn_call};

pub(super) fn plugin(app: &mut bevy::prelude::App) {
    bridge::plugin(app);
}

/// Starts calls and the in-process relay (left out of tests that use no network).
pub(super) fn io_plugin(app: &mut bevy::prelude::App) {
    bridge::io_plugin(app);
    platform::io_plugin(app);
}

use rotunda_proto::{ErrorCode, FromRelay, MediaFrame, TrackKind};

/// Where and as whom to join.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The relay's URL, e.g. `https://127.0.0.1:4443`.
    pub relay: String,
    /// SHA-256 of the relay's certificate to pin; fetched from a loopback relay when absent.
    pub cert_hash: Option<[u8; 32]>,
    /// Room to join.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Access token, if the relay wants one.
    pub token: Option<String>,
}

/// The opening of a session: hello (as `agent`), then the join.
fn hello(options: &JoinOptions, agent: &str) -> Result<Vec<u8>, Error> {
    use rotunda_proto::{PROTOCOL_VERSION, ToRelay, framing};
    let mut hello = Vec::new();
    framing::encode_into(
        &ToRelay::Hello {
            version: PROTOCOL_VERSION,
            agent: agent.to_owned(),
        },
        &mut hello,
    )?;
    framing::encode_into(
        &ToRelay::Join {
            room: options.room.clone(),
            name: options.name.clone(),
            token: options.token.clone(),
        },
        &mut hello,
    )?;
    Ok(hello)
}

/// Something the relay sent.
#[derive(Debug)]
pub enum Event {
    /// A control message.
    Control(FromRelay),
    /// A media frame of a subscribed track.
    Media(MediaFrame, TrackKind),
    /// The session ended; with the relay's error code when it gave one.
    Closed(Option<ErrorCode>),
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The relay's URL is not usable.
    #[error("bad relay URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    /// The relay's certificate fingerprint could not be fetched.
    #[error("could not fetch the relay's certificate fingerprint from {url}: {reason}")]
    Fingerprint {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The relay could not be reached or refused the connection.
    #[error("relay unreachable at {url}: {reason}")]
    Unreachable {
        /// The relay's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The relay refused the join.
    #[error("the relay refused the join: {0:?}")]
    Refused(ErrorCode),
    /// The browser cannot open a WebTransport session.
    #[error(
        "this browser has no WebTransport; use a recent Chrome, Edge or Firefox (over http on \
         localhost or https)"
    )]
    NoWebTransport,
    /// The connection dropped.
    #[error("connection lost")]
    Lost,
    /// Too many control messages queued: this one was dropped.
    #[error("control messages are backing up; one was dropped")]
    Congested,
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Protocol(#[from] rotunda_proto::Error),
}
