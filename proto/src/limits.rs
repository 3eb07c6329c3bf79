//! Size limits of every field. Decoders reject anything over them with [`Error::TooLarge`].
//!
//! [`Error::TooLarge`]: crate::Error::TooLarge

use crate::{Error, Result};

/// Longest room name, in bytes.
pub const MAX_ROOM_NAME: usize = 64;
/// Longest display name, in bytes.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest participant identity (from an access token), in bytes.
pub const MAX_IDENTITY: usize = 64;
/// Longest join token, in bytes.
pub const MAX_TOKEN: usize = 1024;
/// Longest client agent string in the hello, in bytes.
pub const MAX_AGENT: usize = 128;
/// Longest chat message, in bytes.
pub const MAX_CHAT: usize = 2000;
/// Chat lines a room keeps to replay to joiners.
pub const CHAT_HISTORY: usize = 100;
/// Longest codec string (e.g. `avc1.42E01F`), in bytes.
pub const MAX_CODEC: usize = 32;
/// Most tracks one participant may publish.
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 8;
/// Most participants in one room the protocol carries (a relay's own limit may be lower).
pub const MAX_PARTICIPANTS: usize = 256;
/// Most simulcast layers of one video track (the media header has two bits for the layer).
pub const MAX_LAYERS: usize = 4;
/// Highest target bitrate a layer may announce, in kb/s.
pub const MAX_LAYER_KBPS: usize = 100_000;
/// Most videos one view may name (every other participant's tracks).
pub const MAX_VIEW: usize = MAX_PARTICIPANTS * MAX_TRACKS_PER_PARTICIPANT;
/// Largest encoded control message, in bytes (a full roster fits).
pub const MAX_CONTROL_MESSAGE: usize = 64 * 1024;
/// Largest video frame payload, in bytes (a 1080p keyframe is a few hundred kB).
pub const MAX_VIDEO_PAYLOAD: usize = 1024 * 1024;
/// Control messages one participant may send per second, sustained (poses at 30 Hz, chat, …).
pub const CONTROL_RATE: u32 = 60;
/// Control messages one participant may send in a burst.
pub const CONTROL_BURST: u32 = 120;
/// Largest audio payload, in bytes: an Opus packet plus the header fits in the 1211-byte datagram
/// Chromium allows.
pub const MAX_AUDIO_PAYLOAD: usize = 1024;
/// Largest MLS key package, in bytes (one is about 300 with Rotunda's labels).
pub const MAX_KEY_PACKAGE: usize = 1024;
/// Largest MLS commit, welcome or sealed chat line, in bytes (a welcome to a group of 200 is
/// about 36 kB).
pub const MAX_MLS_MESSAGE: usize = 60 * 1024;
/// Most key packages one commit request carries (they fit a control message together).
pub const MAX_ADDS_PER_ROUND: usize = 48;
/// Largest video dimension, in pixels.
pub const MAX_DIMENSION: u16 = 8192;

/// Checks a string field against its limit; `allow_empty` says whether "" is acceptable.
pub fn check_str(field: &'static str, value: &str, max: usize, allow_empty: bool) -> Result<()> {
    if !allow_empty && value.trim().is_empty() {
        return Err(Error::Empty(field));
    }
    check_len(field, value.len(), max)
}

/// Checks a length against its limit.
pub fn check_len(field: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::TooLarge { field, len, max });
    }
    Ok(())
}
