//! Media sources and codecs.
//!
//! Sources implement [`VideoSource`] and [`AudioSource`]: the [`camera`] and the microphone
//! (`crate::audio::device`), or the synthetic [`pattern`] and [`tone`] standing in for them.
//! Codecs (H.264 and Opus) live in the platform module: `openh264` and libopus natively,
//! WebCodecs in the browser (with getUserMedia for the camera and the microphone).

#[cfg(native)]
pub mod camera;
#[cfg(native)]
mod native;
pub mod pattern;
pub mod reorder;
pub mod sequence;
pub mod tone;
#[cfg(web)]
pub mod web;

#[cfg(native)]
use native as platform;
#[cfg(web)]
use web as platform;

pub use platform::{
    AudioDecoder, AudioEncoder, CodecError, DecodedPicture, EncodedVideo, VideoDecoder,
    VideoEncoder, list_devices,
};

/// Devices a menu offers, as (choice, label).
pub type DeviceList = Vec<(String, String)>;

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

/// What a device turned out to be, for the badges the UI shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceState {
    /// A real device, by name.
    Live(String),
    /// The synthetic source, as asked.
    Synthetic,
    /// The device did not work; the synthetic source (video) or silence (audio) stands in.
    Fallback(String),
    /// Nothing is sent.
    #[default]
    Off,
}

impl SourceState {
    /// Something is being sent.
    pub fn sends(&self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// Converts packed RGB (`width * height * 3` bytes) to I420 at `frame`'s size, scaling with the
/// nearest pixel (BT.601, limited range, as H.264 expects).
pub fn rgb_to_i420(rgb: &[u8], width: usize, height: usize, frame: &mut VideoFrame) {
    if width == 0 || height == 0 || rgb.len() < width * height * 3 {
        return;
    }
    let (fw, fh) = (frame.width, frame.height);
    let pixel = |x: usize, y: usize| {
        let sx = x * width / fw;
        let sy = y * height / fh;
        let i = (sy * width + sx) * 3;
        (
            i32::from(rgb[i]),
            i32::from(rgb[i + 1]),
            i32::from(rgb[i + 2]),
        )
    };
    for y in 0..fh {
        for x in 0..fw {
            let (r, g, b) = pixel(x, y);
            frame.y[y * fw + x] =
                (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(0, 255) as u8;
        }
    }
    for y in 0..fh / 2 {
        for x in 0..fw / 2 {
            let (r, g, b) = pixel(x * 2, y * 2);
            let i = y * (fw / 2) + x;
            frame.u[i] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            frame.v[i] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_converts_and_scales_to_i420() {
        // 4x2 RGB: left half white, right half pure red; scaled up to 8x4.
        let mut rgb = Vec::new();
        for _ in 0..2 {
            for x in 0..4 {
                rgb.extend_from_slice(if x < 2 {
                    &[255, 255, 255]
                } else {
                    &[255, 0, 0]
                });
            }
        }
        let mut frame = VideoFrame::new(8, 4);
        rgb_to_i420(&rgb, 4, 2, &mut frame);
        assert_eq!(frame.y[0], 235, "white is luma 235");
        assert_eq!(frame.u[0], 128);
        assert_eq!(frame.v[0], 128);
        assert_eq!(frame.y[7], 82, "red is luma 82");
        assert_eq!(frame.v[3], 240, "red is Cr 240");
        // Too short an input changes nothing.
        let before = frame.clone();
        rgb_to_i420(&rgb[..10], 4, 2, &mut frame);
        assert_eq!(frame, before);
    }
}
