//! One codec interface for both platforms, shaped like WebCodecs: input is pushed (`encode`,
//! `decode`, `conceal`) and output is polled (`poll_output`) once the codec delivered it, in the
//! order the input went in. Natively openh264 and libopus implement it ([`native`]: video on a
//! thread per codec, as a browser runs them); in the browser WebCodecs does (`web`), but for
//! the Opus decoder, which runs in the worker itself (`pure_opus`).
//!
//! A codec that has output waiting wakes the driver through the [`Wake`] it was made with, so
//! the call takes it in at once rather than at its next tick.
//!
//! Wire formats: H.264 Constrained Baseline in Annex-B (SPS and PPS in front of every keyframe)
//! and Opus at 48 kHz mono in 20 ms packets, the same from every platform.

#[cfg(native)]
pub mod native;
#[cfg(any(web, test))]
pub mod pure_opus;
#[cfg(web)]
pub mod web;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::media::{AUDIO_FRAME_SAMPLES, VideoFrame};
use crate::rt::MaybeSend;

/// H.264 Constrained Baseline, level 3.1, as WebCodecs names it.
pub const VIDEO_CODEC: &str = "avc1.42E01F";
/// Opus, as WebCodecs names it.
pub const AUDIO_CODEC: &str = "opus";
/// An Opus packet this short is discontinuous transmission (DTX: silence, nothing to send).
pub const DTX_PACKET_BYTES: usize = 2;

/// Called by a codec when it has output waiting (from its own thread or callback).
pub type Wake = Arc<tokio::sync::Notify>;

/// Which codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodecName {
    /// H.264 video.
    H264,
    /// Opus audio.
    Opus,
}

impl std::fmt::Display for CodecName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodecName::H264 => "H.264",
            CodecName::Opus => "Opus",
        })
    }
}

/// A codec failed. The call counts it and starts the codec afresh; never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CodecError {
    /// The codec could not be made or configured.
    #[error("{codec} could not start: {reason}")]
    Start {
        /// Which codec.
        codec: CodecName,
        /// Why.
        reason: String,
    },
    /// The input was refused or could not be decoded (a corrupt or unsupported stream).
    #[error("{codec}: {reason}")]
    Failed {
        /// Which codec.
        codec: CodecName,
        /// Why.
        reason: String,
    },
    /// The codec closed after an earlier failure; make a new one.
    #[error("{0} is closed")]
    Closed(CodecName),
}

/// What a video encoder is asked to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoEncoderConfig {
    /// Picture width.
    pub width: usize,
    /// Picture height.
    pub height: usize,
    /// Target bits per second.
    pub bitrate: u32,
    /// Pictures per second.
    pub fps: u32,
    /// A shared screen (text and sharp edges, mostly still) rather than a camera.
    pub screen: bool,
}

/// One encoded picture in Annex-B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedVideo {
    /// The NAL units, each behind a start code.
    pub data: Bytes,
    /// It is an IDR picture (decodable on its own, with SPS and PPS in front).
    pub keyframe: bool,
    /// When the picture was captured (µs since the Unix epoch).
    pub timestamp_us: u64,
}

/// One decoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedVideo {
    /// The picture.
    pub frame: VideoFrame,
    /// The capture time its chunk carried.
    pub timestamp_us: u64,
}

/// One encoded 20 ms Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAudio {
    /// The packet.
    pub data: Bytes,
    /// When its first sample was captured.
    pub timestamp_us: u64,
}

/// 20 ms of decoded (or concealed) sound, mono, 48 kHz.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// The samples, -1..1.
    pub samples: Vec<f32>,
    /// The capture time its packet carried (for a concealed one: when it was due).
    pub timestamp_us: u64,
    /// Made up for a lost packet.
    pub concealed: bool,
}

/// An H.264 encoder.
pub trait VideoEncoder: MaybeSend {
    /// Queues one picture, encoded as a keyframe when `keyframe`.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        timestamp_us: u64,
        keyframe: bool,
    ) -> Result<(), CodecError>;
    /// Pictures queued and not yet encoded (the caller skips pictures while it is busy).
    fn queue_size(&self) -> usize;
    /// The next encoded picture, or the failure that stopped the encoder.
    fn poll_output(&mut self) -> Option<Result<EncodedVideo, CodecError>>;
}

/// An H.264 decoder. The first chunk must be a keyframe.
pub trait VideoDecoder: MaybeSend {
    /// Queues one picture.
    fn decode(&mut self, chunk: EncodedVideo) -> Result<(), CodecError>;
    /// Chunks queued and not yet decoded.
    fn queue_size(&self) -> usize;
    /// The next picture, or a chunk that could not be decoded.
    fn poll_output(&mut self) -> Option<Result<DecodedVideo, CodecError>>;
}

/// An Opus encoder, 48 kHz mono, 20 ms packets.
pub trait AudioEncoder: MaybeSend {
    /// Queues 20 ms of samples.
    fn encode(
        &mut self,
        samples: &[f32; AUDIO_FRAME_SAMPLES],
        timestamp_us: u64,
    ) -> Result<(), CodecError>;
    /// The next packet, or the failure that stopped the encoder.
    fn poll_output(&mut self) -> Option<Result<EncodedAudio, CodecError>>;
}

/// An Opus decoder, 48 kHz mono, with packet-loss concealment.
pub trait AudioDecoder: MaybeSend {
    /// Queues one packet.
    fn decode(&mut self, packet: Bytes, timestamp_us: u64) -> Result<(), CodecError>;
    /// Queues a lost packet: its 20 ms are made up from what came before.
    fn conceal(&mut self, timestamp_us: u64) -> Result<(), CodecError>;
    /// The next 20 ms, or a packet that could not be decoded.
    fn poll_output(&mut self) -> Option<Result<DecodedAudio, CodecError>>;
}

/// An Opus decoder that answers on the caller's thread: libopus natively, opus-rs in the
/// browser's call worker ([`pure_opus`]).
pub(crate) trait OpusFrames: MaybeSend {
    /// Decodes `packet` into `out` (20 ms), or makes up a lost one from what came before when
    /// `packet` is empty; the samples written.
    fn frame(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError>;
}

/// Decoded frames held for the call to take; older ones are dropped.
const AUDIO_OUTPUTS_KEPT: usize = 64;

/// The [`AudioDecoder`] over an [`OpusFrames`]: output is ready when `decode` returns, and a
/// lost packet is concealed by the decoder itself.
pub(crate) struct InlineOpus<D> {
    decoder: D,
    out: VecDeque<Result<DecodedAudio, CodecError>>,
}

impl<D: OpusFrames> InlineOpus<D> {
    pub(crate) fn new(decoder: D) -> Self {
        Self {
            decoder,
            out: VecDeque::new(),
        }
    }

    fn run(&mut self, packet: &[u8], timestamp_us: u64) {
        // A buffer of its own each time: a short packet must never leave older samples behind.
        let mut samples = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        let decoded = self.decoder.frame(packet, &mut samples).map(|n| {
            samples.truncate(n.min(AUDIO_FRAME_SAMPLES));
            DecodedAudio {
                samples,
                timestamp_us,
                concealed: packet.is_empty(),
            }
        });
        if self.out.len() >= AUDIO_OUTPUTS_KEPT {
            self.out.pop_front();
        }
        self.out.push_back(decoded);
    }
}

impl<D: OpusFrames> AudioDecoder for InlineOpus<D> {
    fn decode(&mut self, packet: Bytes, timestamp_us: u64) -> Result<(), CodecError> {
        let refused = |reason: String| {
            Err(CodecError::Failed {
                codec: CodecName::Opus,
                reason,
            })
        };
        // A packet this short is one a decoder takes for a lost one: no peer sends it
        // (silence is not sent at all).
        if packet.len() <= DTX_PACKET_BYTES {
            return refused(format!("a {}-byte packet", packet.len()));
        }
        // Every client sends 20 ms a packet; anything else is a peer's junk, refused before
        // the decoder looks further.
        match opus_packet_ms_x2(&packet) {
            Some(40) => {}
            Some(half_ms) => return refused(format!("a packet of {} ms", half_ms / 2)),
            None => return refused("a malformed packet".into()),
        }
        self.run(&packet, timestamp_us);
        Ok(())
    }

    fn conceal(&mut self, timestamp_us: u64) -> Result<(), CodecError> {
        self.run(&[], timestamp_us);
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Result<DecodedAudio, CodecError>> {
        self.out.pop_front()
    }
}

/// How long an Opus packet plays, in half milliseconds, from its table of contents (RFC 6716,
/// 3.1-3.2); `None` when it names no frame count.
fn opus_packet_ms_x2(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = u32::from(toc >> 3);
    // Frame sizes, in half milliseconds: SILK 10/20/40/60, hybrid 10/20, CELT 2.5/5/10/20.
    let frame = match config {
        0..=11 => [20, 40, 80, 120][config as usize % 4],
        12..=15 => [20, 40][config as usize % 2],
        _ => [5, 10, 20, 40][config as usize % 4],
    };
    let frames = match toc & 0b11 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0b11_1111),
    };
    (frames > 0).then_some(frame * frames)
}

/// Makes the codecs of one call.
pub trait Codecs: MaybeSend {
    /// A video encoder.
    fn video_encoder(
        &mut self,
        config: VideoEncoderConfig,
    ) -> Result<Box<dyn VideoEncoder>, CodecError>;
    /// A video decoder.
    fn video_decoder(&mut self) -> Result<Box<dyn VideoDecoder>, CodecError>;
    /// An audio encoder at `bitrate` bits per second.
    fn audio_encoder(&mut self, bitrate: u32) -> Result<Box<dyn AudioEncoder>, CodecError>;
    /// An audio decoder.
    fn audio_decoder(&mut self) -> Result<Box<dyn AudioDecoder>, CodecError>;
}
