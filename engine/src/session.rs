//! What a session is about, below both the call and the transport: where and as whom to join,
//! and what the relay's welcome said.

use rotunda_proto::{FromRelay, Grants, ParticipantId, ParticipantInfo, Resume};
use serde::{Deserialize, Serialize};

/// Where and as whom to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Ask for end-to-end encryption in a room this join creates (a room's first joiner
    /// decides; the welcome says what the room is).
    #[serde(default)]
    pub e2ee: bool,
}

/// A session the driver opened: what the relay's welcome said.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Our id.
    pub you: ParticipantId,
    /// Our name in the room (the access token may have chosen it).
    pub name: String,
    /// Our identity (the access token's, or our name on an open relay).
    pub identity: String,
    /// What we may do (what the access token grants; everything on an open relay).
    pub grants: Grants,
    /// The room is end-to-end encrypted.
    pub e2ee: bool,
    /// Everyone else present.
    pub roster: Vec<ParticipantInfo>,
    /// What to present to keep our place next time.
    pub resume: Resume,
    /// The relay kept our place from the last session.
    pub resumed: bool,
}

impl Joined {
    /// The relay's welcome, read; any other message is handed back.
    pub fn from_welcome(message: FromRelay) -> Result<Self, FromRelay> {
        match message {
            FromRelay::Welcome {
                you,
                name,
                identity,
                grants,
                participants,
                resume_secret,
                resumed,
                e2ee,
                ..
            } => Ok(Self {
                you,
                name,
                identity,
                grants,
                e2ee,
                roster: participants,
                resume: Resume {
                    id: you,
                    secret: resume_secret,
                },
                resumed,
            }),
            other => Err(other),
        }
    }
}
