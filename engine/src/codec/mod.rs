//! One codec interface for both platforms, shaped like WebCodecs: input is pushed (`encode`,
//! `decode`, `conceal`) and output is polled (`poll_output`) once the codec delivered it, in the
//! order the input went in. Natively openh264 and libopus implement it ([`native`]: video on a
//! thread per codec, as a browser runs them); in the browser WebCodecs does (`web`).
//!
//! A codec that has output waiting wakes the driver through the [`Wake`] it was made with, so
//! the call takes it in at once rather than at its next tick.
//!
//! Wire formats: H.264 Constrained Baseline in Annex-B (SPS and PPS in front of every keyframe)
//! and Opus at 48 kHz mono in 20 ms packets, the same from every platform.

#[cfg(native)]
pub mod native;
#[cfg(web)]
pub mod web;

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
