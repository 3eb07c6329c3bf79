//! Media sources and codecs.
//!
//! Sources implement [`VideoSource`] and [`AudioSource`]; the synthetic [`pattern`] and [`tone`]
//! stand in for a camera and a microphone, and the real devices will implement the same traits.
//! Codecs (H.264 and Opus) live in the platform module: `openh264` and libopus natively.

mod native;
pub mod pattern;
pub mod reorder;
pub mod sequence;
pub mod tone;

pub use native::{
    AudioDecoder, AudioEncoder, CodecError, EncodedVideo, VideoDecoder, VideoEncoder,
};

/// H.264 Constrained Baseline, level 3.1, as WebCodecs names it.
pub const VIDEO_CODEC: &str = "avc1.42E01F";
/// Opus, as WebCodecs names it.
pub const AUDIO_CODEC: &str = "opus";
/// Audio sample rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms audio frame (mono).
pub const AUDIO_FRAME_SAMPLES: usize = 960;

/// A picture in I420 (planar Y, then U and V at half resolution), tightly packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Blue-difference chroma, `width/2 * height/2` bytes.
    pub u: Vec<u8>,
    /// Red-difference chroma, `width/2 * height/2` bytes.
    pub v: Vec<u8>,
}

impl VideoFrame {
    /// A black frame.
    pub fn new(width: usize, height: usize) -> Self {
        let chroma = (width / 2) * (height / 2);
        Self {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
    }
}

/// Something that produces pictures: a camera, a screen, a test pattern.
pub trait VideoSource: Send {
    /// Width and height of the pictures.
    fn dimensions(&self) -> (usize, usize);
    /// Fills `frame` with the next picture.
    fn next_frame(&mut self, frame: &mut VideoFrame);
}

/// Something that produces sound: a microphone, a test tone.
pub trait AudioSource: Send {
    /// Fills `samples` (mono, [`SAMPLE_RATE`]) with the next 20 ms.
    fn next_samples(&mut self, samples: &mut [i16; AUDIO_FRAME_SAMPLES]);
}
