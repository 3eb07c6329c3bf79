//! The binary header in front of every media payload.
//!
//! Layout (big-endian, [`MediaHeader::LEN`] bytes): participant `u32`, track index `u8`, flags
//! `u8` (bit 0: keyframe), sequence `u32`, capture time `u64` (µs since the Unix epoch on the
//! sender's clock), payload length `u32`. A publisher writes participant 0; the relay stamps the
//! real one once per frame, then shares the same bytes with every subscriber. The payload is
//! opaque to the relay.

use bytes::{Bytes, BytesMut};

use crate::limits::{MAX_AUDIO_PAYLOAD, MAX_TRACKS_PER_PARTICIPANT, MAX_VIDEO_PAYLOAD};
use crate::message::{ParticipantId, TrackId, TrackKind};
use crate::{Error, Result};

const FLAG_KEYFRAME: u8 = 1;

/// What precedes a media payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHeader {
    /// Which track.
    pub track: TrackId,
    /// Per-track sequence number, +1 per frame.
    pub sequence: u32,
    /// When it was captured, in µs since the Unix epoch.
    pub capture_us: u64,
    /// The payload decodes on its own.
    pub keyframe: bool,
    /// How many payload bytes follow.
    pub payload_len: u32,
}

impl MediaHeader {
    /// Encoded size.
    pub const LEN: usize = 22;

    /// Writes the header.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..4].copy_from_slice(&self.track.participant.0.to_be_bytes());
        out[4] = self.track.index;
        out[5] = if self.keyframe { FLAG_KEYFRAME } else { 0 };
        out[6..10].copy_from_slice(&self.sequence.to_be_bytes());
        out[10..18].copy_from_slice(&self.capture_us.to_be_bytes());
        out[18..22].copy_from_slice(&self.payload_len.to_be_bytes());
        out
    }

    /// Reads a header from the first [`Self::LEN`] bytes and checks its payload length against
    /// the limit for `kind`.
    pub fn decode(bytes: &[u8], kind: TrackKind) -> Result<Self> {
        let Some(b) = bytes.get(..Self::LEN) else {
            return Err(Error::Malformed("short media header"));
        };
        let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut capture = [0u8; 8];
        capture.copy_from_slice(&b[10..18]);
        let header = MediaHeader {
            track: TrackId {
                participant: ParticipantId(be32(0)),
                index: b[4],
            },
            keyframe: b[5] & FLAG_KEYFRAME != 0,
            sequence: be32(6),
            capture_us: u64::from_be_bytes(capture),
            payload_len: be32(18),
        };
        if b[5] & !FLAG_KEYFRAME != 0 {
            return Err(Error::Malformed("unknown media flags"));
        }
        if usize::from(header.track.index) >= MAX_TRACKS_PER_PARTICIPANT {
            return Err(Error::Malformed("track index out of range"));
        }
        let max = match kind {
            TrackKind::Audio => MAX_AUDIO_PAYLOAD,
            TrackKind::Video => MAX_VIDEO_PAYLOAD,
        };
        let len = header.payload_len as usize;
        if len > max {
            return Err(Error::TooLarge {
                field: "media payload",
                len,
                max,
            });
        }
        Ok(header)
    }
}

/// A header and its payload, encoded once and shared by reference count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    /// The decoded header.
    pub header: MediaHeader,
    /// Header and payload bytes as they go on the wire.
    pub wire: Bytes,
}

impl MediaFrame {
    /// Builds a frame from a header and its payload.
    pub fn new(mut header: MediaHeader, payload: &[u8]) -> Self {
        header.payload_len = payload.len() as u32;
        let mut wire = BytesMut::with_capacity(MediaHeader::LEN + payload.len());
        wire.extend_from_slice(&header.encode());
        wire.extend_from_slice(payload);
        Self {
            header,
            wire: wire.freeze(),
        }
    }

    /// Parses a complete frame (a datagram, or a whole video stream).
    pub fn decode(wire: Bytes, kind: TrackKind) -> Result<Self> {
        let header = MediaHeader::decode(&wire, kind)?;
        if wire.len() != MediaHeader::LEN + header.payload_len as usize {
            return Err(Error::Malformed("media payload length mismatch"));
        }
        Ok(Self { header, wire })
    }

    /// The opaque payload.
    pub fn payload(&self) -> &[u8] {
        &self.wire[MediaHeader::LEN..]
    }

    /// The opaque payload, sharing the frame's bytes (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.wire.slice(MediaHeader::LEN..)
    }

    /// Re-stamps the publisher as it goes through the relay: one copy per frame, never per
    /// subscriber.
    pub fn stamp(self, participant: ParticipantId) -> Self {
        if self.header.track.participant == participant {
            return self;
        }
        let mut wire = BytesMut::from(&self.wire[..]);
        wire[0..4].copy_from_slice(&participant.0.to_be_bytes());
        let mut header = self.header;
        header.track.participant = participant;
        Self {
            header,
            wire: wire.freeze(),
        }
    }
}

/// Send priorities for the frames of one video track, one stream each: a newer group of
/// pictures (from a keyframe on) goes before an older one, and within a group older frames go
/// first, since each depends on those before it. Higher is sent first.
///
/// The value wraps after about two million keyframes (at one every 3 s, 70 days of one track).
#[derive(Debug, Clone, Copy, Default)]
pub struct FramePriority {
    group: i32,
    position: i32,
}

impl FramePriority {
    /// Frames a group's positions tell apart; later ones share the lowest priority of the group.
    const GROUP_SPAN: i32 = 1024;

    /// The priority of the next frame of the track.
    pub fn next(&mut self, keyframe: bool) -> i32 {
        if keyframe {
            self.group = self.group.wrapping_add(1);
            self.position = 0;
        } else {
            self.position = (self.position + 1).min(Self::GROUP_SPAN - 1);
        }
        self.group
            .wrapping_mul(Self::GROUP_SPAN)
            .wrapping_sub(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::FramePriority;

    #[test]
    fn older_frames_of_a_group_first_newer_groups_before_older() {
        let mut priority = FramePriority::default();
        let key1 = priority.next(true);
        let p1 = priority.next(false);
        let p2 = priority.next(false);
        assert!(key1 > p1 && p1 > p2);
        let key2 = priority.next(true);
        let q1 = priority.next(false);
        assert!(
            key2 > key1 && q1 > key1,
            "a new group beats all of the old one"
        );
        assert!(key2 > q1);
    }
}
