//! What the speakers play: every remote voice, pulled from the call's [`Voices`] and placed by
//! the [`SpatialMixer`].

use std::collections::HashMap;
use std::sync::Arc;

use rotunda_proto::ParticipantId;

use super::spatial::{DistanceModel, SpatialMixer};
use crate::call::Voices;

/// The mixer and the voices it plays. Shared with the device callback behind a mutex.
pub struct AudioOut {
    /// Where each voice stands and where the listener is.
    pub mixer: SpatialMixer,
    voices: Arc<Voices>,
    scratch: HashMap<u32, Vec<f32>>,
    stereo: Vec<f32>,
    ids: Vec<ParticipantId>,
}

impl Default for AudioOut {
    fn default() -> Self {
        Self {
            mixer: SpatialMixer::new(DistanceModel::default()),
            voices: Arc::default(),
            scratch: HashMap::new(),
            stereo: Vec::new(),
            ids: Vec::new(),
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
        self.voices.ids_into(&mut self.ids);
        let ids = &self.ids;
        let mixer = &mut self.mixer;
        self.scratch.retain(|id, _| {
            let present = ids.iter().any(|i| i.0 == *id);
            if !present {
                // Gone: its voice slot in the mixer goes too.
                mixer.remove(*id);
            }
            present
        });
        for id in ids {
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
