//! The session with a relay: control messages on one bidirectional stream, audio in datagrams,
//! each video frame on a unidirectional stream of its own.
//!
//! [`connect`] says hello, joins (or takes a place back, [`Resume`]) and returns a [`Session`]
//! to send with, the relay's welcome ([`Joined`]) and a receiver of [`Event`]s. The transport
//! differs per platform (quinn through `wtransport` natively, the browser's WebTransport through
//! web-sys); this module's API is the same for both.

#[cfg(native)]
mod native;
pub mod trust;
#[cfg(web)]
mod web;

#[cfg(native)]
pub use native::{Session, connect};
#[cfg(web)]
pub use web::{Session, connect};

use rotunda_proto::{
    ErrorCode, FromRelay, MediaFrame, PROTOCOL_VERSION, Resume, ToRelay, TrackKind, framing,
};
use tokio::sync::mpsc;

use crate::Error;
use crate::session::{JoinOptions, Joined};

/// Events queued for the call before media is dropped (control is never dropped).
const EVENT_QUEUE: usize = 4096;
/// Control messages queued for sending.
const CONTROL_QUEUE: usize = 1024;
/// Video frames written and not yet delivered; past that a frame is refused and the caller
/// should send a keyframe next.
const VIDEO_IN_FLIGHT: usize = 32;

/// Something the relay sent.
#[derive(Debug)]
pub enum Event {
    /// A control message.
    Control(FromRelay),
    /// A media frame of a subscribed track.
    Media(MediaFrame, TrackKind),
    /// The session ended: why.
    Closed(Error),
}

/// Checks a control message and queues it for the writer: [`Error::Congested`] when the queue is
/// full (the message is dropped), [`Error::Lost`] when the session is gone.
fn queue_control(control: &mpsc::Sender<ToRelay>, message: ToRelay) -> Result<(), Error> {
    message.validate()?;
    control.try_send(message).map_err(|error| match error {
        mpsc::error::TrySendError::Full(_) => Error::Congested,
        mpsc::error::TrySendError::Closed(_) => Error::Lost,
    })
}

/// The opening of a session: hello (as `agent`), then the join.
fn hello(options: &JoinOptions, resume: Option<Resume>, agent: &str) -> Result<Vec<u8>, Error> {
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
            resume,
            e2ee: options.e2ee,
        },
        &mut hello,
    )?;
    Ok(hello)
}

/// What the relay answers a join with: in (our welcome) or refused.
fn welcome(message: FromRelay) -> Option<Result<Joined, Error>> {
    match Joined::from_welcome(message) {
        Ok(joined) => Some(Ok(joined)),
        Err(FromRelay::Error { code }) => Some(Err(Error::Refused(code))),
        Err(_) => None,
    }
}

/// How a session ended, from the relay's last word (an error message or a close code).
fn closed(relay_code: Option<ErrorCode>, close_code: Option<u32>) -> Error {
    match relay_code.or(close_code.and_then(ErrorCode::from_u32)) {
        Some(ErrorCode::Normal) | None => Error::Lost,
        Some(code) => Error::Closed(Some(code)),
    }
}
