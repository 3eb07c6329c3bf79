//! The binary header in front of every media payload.
//!
//! Layout (big-endian, [`MediaHeader::LEN`] bytes): participant `u32`, track index `u8`, flags
//! `u8` (bit 0: keyframe; bits 1–2: the video layer; bits 3–7: an audio frame's level, in the
//! spirit of RFC 6464), sequence `u32`, capture time `u64` (µs since the Unix epoch on the
//! sender's clock), payload length `u32`. A publisher writes participant 0; the relay stamps the
//! real one once per frame, then shares the same bytes with every subscriber. The payload is
//! opaque to the relay.

use bytes::{Bytes, BytesMut};

use crate::limits::{MAX_AUDIO_PAYLOAD, MAX_TRACKS_PER_PARTICIPANT, MAX_VIDEO_PAYLOAD};
use crate::message::{ParticipantId, TrackId, TrackKind};
use crate::{Error, Result};

const FLAG_KEYFRAME: u8 = 1;
const LAYER_SHIFT: u8 = 1;
const LAYER_MASK: u8 = 0b11;
const LEVEL_SHIFT: u8 = 3;

/// The quietest audio level a header carries: silence (−124 dBov or quieter).
pub const SILENT_LEVEL: u8 = 31;

/// An audio frame's level for its header, from the RMS of its samples (−1..1): 0 is full scale
/// (0 dBov), each step 4 dB quieter, [`SILENT_LEVEL`] for silence.
pub fn audio_level(samples: &[f32]) -> u8 {
    if samples.is_empty() {
        return SILENT_LEVEL;
    }
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    if power <= 0.0 || !power.is_finite() {
        return SILENT_LEVEL;
    }
    let dbov = -10.0 * power.log10();
    (dbov / 4.0).round().clamp(0.0, f32::from(SILENT_LEVEL)) as u8
}

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
    /// A video frame's simulcast layer (0: the smallest); 0 for audio.
    pub layer: u8,
    /// An audio frame's level, 4 dB a step below full scale ([`audio_level`]); 0 for video.
    pub level: u8,
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
        out[5] = u8::from(self.keyframe)
            | (self.layer & LAYER_MASK) << LAYER_SHIFT
            | self.level.min(SILENT_LEVEL) << LEVEL_SHIFT;
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
            layer: (b[5] >> LAYER_SHIFT) & LAYER_MASK,
            level: b[5] >> LEVEL_SHIFT,
            sequence: be32(6),
            capture_us: u64::from_be_bytes(capture),
            payload_len: be32(18),
        };
        match kind {
            TrackKind::Audio if header.layer != 0 => {
                return Err(Error::Malformed("audio has no layers"));
            }
            TrackKind::Video if header.level != 0 => {
                return Err(Error::Malformed("video has no audio level"));
            }
            _ => {}
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
    use super::{FramePriority, SILENT_LEVEL, audio_level};

    #[test]
    fn audio_levels_step_4_db_from_full_scale_to_silence() {
        assert_eq!(audio_level(&[0.0; 960]), SILENT_LEVEL);
        assert_eq!(audio_level(&[]), SILENT_LEVEL);
        assert_eq!(audio_level(&[1.0; 960]), 0);
        // A sine at 0.1 peak: RMS 0.0707, −23 dBov.
        let sine: Vec<f32> = (0..960).map(|i| (i as f32 * 0.1).sin() * 0.1).collect();
        assert_eq!(audio_level(&sine), 6);
        assert_eq!(audio_level(&[1e-9; 960]), SILENT_LEVEL);
    }

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
