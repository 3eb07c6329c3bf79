//! What the speakers play: every remote voice, pulled from the call's [`Voices`] and placed by
//! the [`SpatialMixer`].

use std::collections::HashMap;
use std::sync::Arc;

use super::spatial::{DistanceModel, SpatialMixer};
use crate::call::Voices;

/// The mixer and the voices it plays. Shared with the device callback behind a mutex.
pub struct AudioOut {
    /// Where each voice stands and where the listener is.
    pub mixer: SpatialMixer,
    voices: Arc<Voices>,
    scratch: HashMap<u32, Vec<f32>>,
    stereo: Vec<f32>,
}

impl Default for AudioOut {
    fn default() -> Self {
        Self {
            mixer: SpatialMixer::new(DistanceModel::default()),
            voices: Arc::default(),
            scratch: HashMap::new(),
            stereo: Vec::new(),
        }
    }
}

impl AudioOut {
    /// Plays the voices of this call from now on.
    pub fn set_voices(&mut self, voices: Arc<Voices>) {
        self.voices = voices;
    }

    /// Fills `out` (interleaved, `channels` per frame, 48 kHz) with the next samples of the mix.
    pub fn render(&mut self, out: &mut [f32], channels: usize) {
        let channels = channels.max(1);
        let frames = out.len() / channels;
        let ids = self.voices.ids();
        self.scratch.retain(|id, _| ids.iter().any(|i| i.0 == *id));
        for id in &ids {
            let buffer = self.scratch.entry(id.0).or_default();
            buffer.resize(frames, 0.0);
            self.voices.pull(*id, buffer);
        }
        self.stereo.resize(frames * 2, 0.0);
        self.mixer.mix(
            self.scratch.iter().map(|(id, b)| (*id, b.as_slice())),
            &mut self.stereo,
        );
        for (frame, stereo) in out.chunks_mut(channels).zip(self.stereo.chunks(2)) {
            match frame {
                [mono] => *mono = (stereo[0] + stereo[1]) * 0.5,
                [left, right, rest @ ..] => {
                    *left = stereo[0];
                    *right = stereo[1];
                    rest.fill(0.0);
                }
                [] => {}
            }
        }
    }
}
