use serde::{Deserialize, Serialize};

/// Everything that can go wrong decoding or applying a protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A field or a whole message is larger than its limit.
    #[error("{field} is too large: {len} > {max}")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// Its limit.
        max: usize,
    },
    /// A field is empty where it must not be.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// A message arrived that is not allowed in the current state.
    #[error("protocol violation: {0}")]
    Violation(&'static str),
    /// The room has no room for another participant.
    #[error("room is full")]
    RoomFull,
    /// The join token was missing or wrong.
    #[error("not authorized")]
    Unauthorized,
    /// The participant's grants do not allow this (publish, subscribe or chat).
    #[error("not allowed to {0}")]
    NotAllowed(&'static str),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a peer is told when something fails: a code, never internal error text.
///
/// The same number closes the QUIC/WebTransport session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum ErrorCode {
    /// Closed normally (a leave).
    Normal = 0,
    /// A message could not be decoded.
    BadMessage = 1,
    /// A message or a media frame exceeded a limit.
    TooLarge = 2,
    /// The client's protocol version is not spoken here.
    UnsupportedVersion = 3,
    /// The room is full.
    RoomFull = 4,
    /// The access token was missing, malformed, or not signed by the relay's issuer.
    Unauthorized = 5,
    /// A message arrived out of order (e.g. media before join).
    ProtocolViolation = 6,
    /// The relay is shutting down.
    ShuttingDown = 7,
    /// The relay failed internally.
    Internal = 8,
    /// The client did not complete its join in time.
    Timeout = 9,
    /// The client did not read its control messages fast enough.
    TooSlow = 10,
    /// The access token has expired.
    TokenExpired = 11,
    /// The access token is not valid yet (its start lies ahead, beyond the allowed clock skew).
    TokenNotYetValid = 12,
    /// The access token is for another room.
    WrongRoom = 13,
    /// The participant's grants do not allow what it asked (publish, subscribe or chat).
    NotAllowed = 14,
    /// Too many failed joins from this address lately: wait and try again.
    TooManyAttempts = 15,
}

impl ErrorCode {
    /// The numeric code used on the wire and to close sessions.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code for a number, if it is one of ours.
    pub fn from_u32(code: u32) -> Option<Self> {
        use ErrorCode::*;
        [
            Normal,
            BadMessage,
            TooLarge,
            UnsupportedVersion,
            RoomFull,
            Unauthorized,
            ProtocolViolation,
            ShuttingDown,
            Internal,
            Timeout,
            TooSlow,
            TokenExpired,
            TokenNotYetValid,
            WrongRoom,
            NotAllowed,
            TooManyAttempts,
        ]
        .into_iter()
        .find(|c| c.as_u32() == code)
    }
}

impl Error {
    /// The code a peer is told for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Malformed(_) | Error::Empty(_) => ErrorCode::BadMessage,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Error::Violation(_) => ErrorCode::ProtocolViolation,
            Error::RoomFull => ErrorCode::RoomFull,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::NotAllowed(_) => ErrorCode::NotAllowed,
        }
    }
}
