//! Pictures, sounds and where they come from.
//!
//! - [`frame`]: the I420 picture every codec and panel works with, and conversions to it;
//! - [`VideoSource`] and [`AudioSource`]: a camera or microphone (the application's device glue
//!   implements them), or the synthetic [`pattern`] and [`tone`] standing in for them;
//! - [`reorder`] and [`sequence`]: received video put back in decoding order, sequence numbers
//!   that survive wrapping around.

pub mod frame;
pub mod pattern;
pub mod reorder;
pub mod sequence;
pub mod tone;

pub use frame::{VideoFrame, i420_to_rgba, rgb_to_i420, rgba_to_i420, scale_i420};

use crate::rt::MaybeSend;

/// Audio sample rate everywhere in the engine (Opus, the mixer, the devices after resampling).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms audio frame (mono).
pub const AUDIO_FRAME_SAMPLES: usize = 960;

/// Something that produces pictures: a camera, a screen, a test pattern.
pub trait VideoSource: MaybeSend {
    /// Width and height of the pictures.
    fn dimensions(&self) -> (usize, usize);
    /// Fills `frame` with the next picture.
    fn next_frame(&mut self, frame: &mut VideoFrame);
    /// Marks what it produces as `sender`'s, for sources that mark their pictures (the test
    /// pattern); called on every (re)join.
    fn set_sender(&mut self, _sender: u16) {}
}

/// Something that produces sound: a microphone, a test tone.
pub trait AudioSource: MaybeSend {
    /// Fills `samples` (mono, [`SAMPLE_RATE`], -1..1) with the next 20 ms.
    fn next_samples(&mut self, samples: &mut [f32; AUDIO_FRAME_SAMPLES]);
    /// For sources whose sound depends on the sender (the test tone); called on every (re)join.
    fn set_sender(&mut self, _sender: u16) {}
}

/// What a device turned out to be, for the badges the application shows.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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

/// Silence, standing in for a microphone that does not work.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silence;

impl AudioSource for Silence {
    fn next_samples(&mut self, samples: &mut [f32; AUDIO_FRAME_SAMPLES]) {
        samples.fill(0.0);
    }
}
