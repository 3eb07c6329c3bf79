//! Why a call could not start or ended: one typed error from the transport to the screen.
//!
//! The application words it for people with [`Error::explain`] and decides whether trying again
//! may help with [`Error::is_retryable`]; nothing matches on words.

use rotunda_proto::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::codec::CodecError;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// The relay's URL is not usable.
    #[error("bad relay URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    /// The relay's certificate fingerprint could not be fetched (a dev relay on loopback).
    #[error("could not fetch the relay's certificate fingerprint from {url}: {reason}")]
    Fingerprint {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The relay's certificate is not the one expected (or not trusted).
    #[error("the relay's certificate at {url} is not the one expected: {reason}")]
    Certificate {
        /// The relay's URL.
        url: String,
        /// What the TLS layer said.
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
    /// The relay did not answer the join in time.
    #[error("the relay did not answer the join within {seconds} s")]
    JoinTimeout {
        /// How long it was given.
        seconds: u64,
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
    /// Nothing came from the relay for too long: the connection is dead.
    #[error("the relay stopped answering for {seconds} s")]
    Silent {
        /// How long it was silent.
        seconds: u64,
    },
    /// The relay closed the session, with its code when it gave one.
    #[error("the relay closed the session ({0:?})")]
    Closed(Option<ErrorCode>),
    /// The connection dropped.
    #[error("connection lost")]
    Lost,
    /// Too many control messages queued: this one was dropped.
    #[error("control messages are backing up; one was dropped")]
    Congested,
    /// A message could not be encoded or decoded.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A codec failed for good.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The engine (its task or worker) is gone.
    #[error("the call engine stopped: {0}")]
    EngineGone(String),
}

impl From<rotunda_proto::Error> for Error {
    fn from(error: rotunda_proto::Error) -> Self {
        Self::Protocol(error.to_string())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying again may help: the network or the relay failed, rather than the relay
    /// saying no or the configuration being wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Fingerprint { .. }
            | Error::Unreachable { .. }
            | Error::JoinTimeout { .. }
            | Error::Silent { .. }
            | Error::Lost
            | Error::EngineGone(_) => true,
            Error::Closed(code) => !matches!(
                code,
                Some(
                    ErrorCode::BadMessage
                        | ErrorCode::TooLarge
                        | ErrorCode::UnsupportedVersion
                        | ErrorCode::ProtocolViolation
                        | ErrorCode::RoomFull
                        | ErrorCode::Unauthorized
                        | ErrorCode::TokenExpired
                        | ErrorCode::TokenNotYetValid
                        | ErrorCode::WrongRoom
                        | ErrorCode::NotAllowed
                        | ErrorCode::TooManyAttempts
                )
            ),
            Error::Refused(code) => matches!(
                code,
                ErrorCode::ShuttingDown | ErrorCode::Internal | ErrorCode::Timeout
            ),
            Error::BadUrl(_)
            | Error::Certificate { .. }
            | Error::NoWebTransport
            | Error::Congested
            | Error::Protocol(_)
            | Error::Codec(_) => false,
        }
    }

    /// What to tell the user.
    pub fn explain(&self) -> String {
        match self {
            Error::Refused(ErrorCode::RoomFull) => "The room is full.".into(),
            Error::Refused(ErrorCode::Unauthorized) => {
                "The relay refused the access token: it is missing, or not signed by the relay's \
                 issuer."
                    .into()
            }
            Error::Refused(ErrorCode::TokenExpired) => {
                "The access token has expired: ask for a new one.".into()
            }
            Error::Refused(ErrorCode::TokenNotYetValid) => {
                "The access token is not valid yet (or this computer's clock is wrong).".into()
            }
            Error::Refused(ErrorCode::WrongRoom) => "The access token is for another room.".into(),
            Error::Refused(ErrorCode::TooManyAttempts) => {
                "Too many failed joins from this address: wait a minute and try again.".into()
            }
            Error::Refused(ErrorCode::NotAllowed) | Error::Closed(Some(ErrorCode::NotAllowed)) => {
                "The access token does not allow that in this room.".into()
            }
            Error::Refused(ErrorCode::UnsupportedVersion)
            | Error::Closed(Some(ErrorCode::UnsupportedVersion)) => {
                "The relay speaks another version of Rotunda's protocol: update this client (or \
                 the relay)."
                    .into()
            }
            Error::Closed(Some(ErrorCode::ShuttingDown)) => "The relay shut down.".into(),
            Error::Certificate { reason, .. } => {
                format!("The relay's certificate does not match the one expected ({reason}).")
            }
            Error::Unreachable { .. } | Error::Fingerprint { .. } => {
                format!("The relay is unreachable: {self}.")
            }
            Error::JoinTimeout { .. } | Error::Silent { .. } | Error::Lost | Error::Closed(_) => {
                format!("The connection to the relay was lost ({self}).")
            }
            other => format!("Could not take part: {other}."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_final_and_losses_are_retried() {
        assert!(!Error::Refused(ErrorCode::RoomFull).is_retryable());
        assert!(!Error::Refused(ErrorCode::Unauthorized).is_retryable());
        assert!(!Error::Refused(ErrorCode::TokenExpired).is_retryable());
        assert!(!Error::Closed(Some(ErrorCode::NotAllowed)).is_retryable());
        assert!(Error::Refused(ErrorCode::ShuttingDown).is_retryable());
        assert!(Error::Closed(Some(ErrorCode::ShuttingDown)).is_retryable());
        assert!(Error::Closed(None).is_retryable());
        assert!(!Error::Closed(Some(ErrorCode::ProtocolViolation)).is_retryable());
        assert!(Error::Silent { seconds: 2 }.is_retryable());
        assert!(
            !Error::Certificate {
                url: "https://x:1".into(),
                reason: "unknown issuer".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn users_are_told_in_words() {
        assert_eq!(
            Error::Refused(ErrorCode::RoomFull).explain(),
            "The room is full."
        );
        assert!(
            Error::Unreachable {
                url: "https://127.0.0.1:9".into(),
                reason: "refused".into()
            }
            .explain()
            .starts_with("The relay is unreachable")
        );
        assert!(
            Error::Refused(ErrorCode::UnsupportedVersion)
                .explain()
                .contains("version")
        );
        assert!(
            Error::Refused(ErrorCode::TokenExpired)
                .explain()
                .contains("expired")
        );
        assert!(
            Error::Refused(ErrorCode::WrongRoom)
                .explain()
                .contains("another room")
        );
    }
}
