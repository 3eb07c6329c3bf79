//! Sound from a device that does not run at 48 kHz, brought to 48 kHz (or the mix brought to the
//! device's rate), in a stream of chunks of any size: `rubato`'s FFT resampler, which filters
//! what the lower rate cannot carry instead of folding it back as noise.
//!
//! It allocates nothing once its buffers have grown to the chunk sizes it sees, but it does not
//! run in a device callback: the engine resamples on its side of the ring.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// A mono stream converted from one sample rate to another.
pub struct Resampler {
    /// `None` when the rates are equal: samples pass through.
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    chunk: Vec<f32>,
    output: Vec<f32>,
}

/// Input frames per resampler chunk (about 10 ms at common rates).
const CHUNK: usize = 480;

impl Resampler {
    /// A resampler from `from_hz` to `to_hz`; an error names rates it cannot take.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, String> {
        let fft = if from_hz == to_hz {
            None
        } else {
            let fft = Fft::<f32>::new(from_hz as usize, to_hz as usize, CHUNK, 1, FixedSync::Input)
                .map_err(|e| format!("cannot resample {from_hz} Hz to {to_hz} Hz: {e}"))?;
            Some(fft)
        };
        Ok(Self {
            fft,
            pending: Vec::new(),
            chunk: Vec::new(),
            output: Vec::new(),
        })
    }

    /// Whether samples are converted at all.
    pub fn is_active(&self) -> bool {
        self.fft.is_some()
    }

    /// Takes `input` at the source rate and appends what it yields at the target rate to `out`
    /// (a few milliseconds later than it went in: the resampler's delay).
    pub fn push(&mut self, input: &[f32], out: &mut impl Extend<f32>) {
        let Some(fft) = &mut self.fft else {
            out.extend(input.iter().copied());
            return;
        };
        self.pending.extend_from_slice(input);
        loop {
            let needed = fft.input_frames_next();
            if self.pending.len() < needed {
                return;
            }
            self.chunk.clear();
            self.chunk.extend(self.pending.drain(..needed));
            self.output.resize(fft.output_frames_max(), 0.0);
            let frames_out = self.output.len();
            let (Ok(input), Ok(mut output)) = (
                InterleavedSlice::new(&self.chunk[..], 1, needed),
                InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out),
            ) else {
                return;
            };
            match fft.process_into_buffer(&input, &mut output, None) {
                Ok((_, produced)) => out.extend(self.output[..produced].iter().copied()),
                Err(error) => {
                    tracing::warn!(%error, "resampling failed; a chunk is lost");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    /// The strength of `hz` in `samples` at `rate` (one DFT bin).
    fn strength(samples: &[f32], hz: f32, rate: u32) -> f32 {
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (i, s) in samples.iter().enumerate() {
            let phase = std::f32::consts::TAU * hz * i as f32 / rate as f32;
            re += s * phase.cos();
            im += s * phase.sin();
        }
        (re * re + im * im).sqrt() / samples.len() as f32
    }

    #[test]
    fn a_44k1_microphone_comes_out_at_48k_with_its_pitch() {
        let mut resampler = Resampler::new(44_100, 48_000).expect("resampler");
        assert!(resampler.is_active());
        let input = tone(1000.0, 44_100, 44_100);
        let mut out = Vec::new();
        // Odd chunk sizes, as devices deliver them.
        for chunk in input.chunks(441) {
            resampler.push(chunk, &mut out);
        }
        let expected = 48_000.0;
        assert!(
            (out.len() as f32 - expected).abs() < 1_000.0,
            "{} samples",
            out.len()
        );
        let tail = &out[out.len() - 9_600..];
        assert!(strength(tail, 1000.0, 48_000) > 0.2, "the tone is there");
        assert!(
            strength(tail, 1088.4, 48_000) < 0.02,
            "not at the wrong pitch"
        );
    }

    #[test]
    fn what_the_lower_rate_cannot_carry_is_filtered_not_folded() {
        // 20 kHz at 48 kHz cannot exist at 16 kHz: it must vanish, not turn into 4 kHz.
        let mut resampler = Resampler::new(48_000, 16_000).expect("resampler");
        let mut out = Vec::new();
        resampler.push(&tone(20_000.0, 48_000, 48_000), &mut out);
        let tail = &out[out.len() - 4_800..];
        assert!(strength(tail, 4_000.0, 16_000) < 0.01);
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut resampler = Resampler::new(48_000, 48_000).expect("resampler");
        assert!(!resampler.is_active());
        let mut out = Vec::new();
        resampler.push(&[0.25, -0.5], &mut out);
        assert_eq!(out, vec![0.25, -0.5]);
    }

    #[test]
    fn a_rate_of_zero_is_refused() {
        assert!(Resampler::new(0, 48_000).is_err());
    }
}
