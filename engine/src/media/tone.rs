//! A synthetic voice: a tone whose pitch tells the sender apart, pulsing like speech.

use super::{AUDIO_FRAME_SAMPLES, AudioSource, SAMPLE_RATE};

/// A test tone for one sender.
#[derive(Debug, Clone)]
pub struct Tone {
    frequency: f32,
    phase: f32,
    sample: u64,
}

impl Tone {
    /// A tone whose pitch depends on `sender` (220 Hz and up, a semitone apart per sender).
    pub fn new(sender: u16) -> Self {
        Self {
            frequency: 220.0 * 2f32.powf(f32::from(sender % 24) / 12.0),
            phase: 0.0,
            sample: 0,
        }
    }

    /// Takes the pitch of `sender` from now on (a rejoin can bring a new id).
    pub fn set_sender(&mut self, sender: u16) {
        self.frequency = Self::new(sender).frequency;
    }

    /// The tone's pitch in Hz.
    pub fn frequency(&self) -> f32 {
        self.frequency
    }
}

impl AudioSource for Tone {
    fn set_sender(&mut self, sender: u16) {
        Tone::set_sender(self, sender);
    }

    fn next_samples(&mut self, samples: &mut [f32; AUDIO_FRAME_SAMPLES]) {
        let step = std::f32::consts::TAU * self.frequency / SAMPLE_RATE as f32;
        for out in samples.iter_mut() {
            // Syllable-like envelope: 4 pulses a second.
            let t = self.sample as f32 / SAMPLE_RATE as f32;
            let envelope = 0.55 + 0.45 * (std::f32::consts::TAU * 4.0 * t).sin();
            *out = self.phase.sin() * envelope * (8000.0 / 32768.0);
            self.phase = (self.phase + step) % std::f32::consts::TAU;
            self.sample += 1;
        }
    }
}
