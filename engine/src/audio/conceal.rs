//! Packet-loss concealment for decoders that have none of their own (WebCodecs' Opus decoder):
//! 20 ms made up for a lost packet by repeating the last pitch period of what was heard, fading
//! out over a run of losses, and blended back into the sound when packets come again. The idea
//! is ITU-T G.711 Appendix I's waveform substitution; libopus does better natively, and this
//! keeps the browser from clicking into silence at every lost packet.

/// Samples of sound kept to find the pitch in (30 ms).
const HISTORY: usize = 1_440;
/// Pitch periods looked for: 2.5 ms (400 Hz) to 15 ms (66 Hz), at 48 kHz.
const MIN_PITCH: usize = 120;
const MAX_PITCH: usize = 720;
/// Samples of full-level substitution before the fade starts (10 ms).
const HOLD: usize = 480;
/// Samples over which the substitution fades to silence (50 ms).
const FADE: usize = 2_400;
/// Samples blended when sound and substitution meet (2 ms).
const BLEND: usize = 96;

/// What was heard, and where the substitution stands.
#[derive(Debug, Clone)]
pub struct Concealer {
    history: Vec<f32>,
    /// The period being repeated, while losses last.
    template: Vec<f32>,
    /// Position in the template of the next substituted sample.
    phase: usize,
    /// Samples substituted in this run of losses.
    made_up: usize,
}

impl Default for Concealer {
    fn default() -> Self {
        Self {
            history: Vec::with_capacity(HISTORY),
            template: Vec::new(),
            phase: 0,
            made_up: 0,
        }
    }
}

impl Concealer {
    /// Takes in decoded sound, blending its start with the substitution when it follows a loss.
    pub fn heard(&mut self, samples: &mut [f32]) {
        if self.made_up > 0 && !self.template.is_empty() {
            let n = BLEND.min(samples.len());
            for (i, sample) in samples.iter_mut().take(n).enumerate() {
                let t = (i + 1) as f32 / (n + 1) as f32;
                let guess = self.next_substitute();
                *sample = *sample * t + guess * (1.0 - t);
            }
        }
        self.made_up = 0;
        self.template.clear();
        self.history.extend_from_slice(samples);
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
    }

    /// Makes up `n` samples for a lost packet.
    pub fn conceal(&mut self, n: usize) -> Vec<f32> {
        if self.template.is_empty() {
            if self.history.len() < 2 * MIN_PITCH {
                self.made_up += n;
                return vec![0.0; n];
            }
            let period = pitch(&self.history);
            self.template = self.history[self.history.len() - period..].to_vec();
            self.phase = 0;
        }
        let out: Vec<f32> = (0..n).map(|_| self.next_substitute()).collect();
        out
    }

    fn next_substitute(&mut self) -> f32 {
        let Some(&sample) = self.template.get(self.phase) else {
            return 0.0;
        };
        self.phase = (self.phase + 1) % self.template.len();
        let gain = if self.made_up < HOLD {
            1.0
        } else {
            1.0 - ((self.made_up - HOLD) as f32 / FADE as f32).min(1.0)
        };
        self.made_up += 1;
        sample * gain
    }
}

/// The pitch period of `sound` (its strongest repetition between [`MIN_PITCH`] and
/// [`MAX_PITCH`] samples): a coarse search at a quarter of the rate, refined at the full rate.
fn pitch(sound: &[f32]) -> usize {
    let max = MAX_PITCH.min(sound.len() / 2);
    let score = |lag: usize, step: usize| -> f32 {
        let end = sound.len();
        let window = (end - lag).min(960);
        let (mut cross, mut energy) = (0.0f32, 1e-9f32);
        let mut i = end - window;
        while i < end {
            cross += sound[i] * sound[i - lag];
            energy += sound[i - lag] * sound[i - lag];
            i += step;
        }
        cross / energy.sqrt()
    };
    // A voice repeats at its period and at every multiple of it: the shortest lag that scores
    // nearly as well as the best is the period (not an octave below it).
    let coarse: Vec<(usize, f32)> = (MIN_PITCH..=max)
        .step_by(4)
        .map(|lag| (lag, score(lag, 4)))
        .collect();
    let top = coarse.iter().map(|(_, s)| *s).fold(f32::MIN, f32::max);
    let mut at = coarse
        .iter()
        .position(|(_, s)| *s >= top * 0.9)
        .unwrap_or_default();
    // Up that peak to its top.
    while coarse.get(at + 1).is_some_and(|next| next.1 > coarse[at].1) {
        at += 1;
    }
    let coarse = coarse.get(at).map_or(MIN_PITCH, |(lag, _)| *lag);
    let mut best = (coarse, f32::MIN);
    for lag in coarse.saturating_sub(4).max(MIN_PITCH)..=(coarse + 4).min(max) {
        let s = score(lag, 1);
        if s > best.1 {
            best = (lag, s);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, from: usize, n: usize) -> Vec<f32> {
        (from..from + n)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / 48_000.0).sin() * 0.5)
            .collect()
    }

    #[test]
    fn finds_the_pitch_of_a_voice_like_tone() {
        assert!((pitch(&sine(200.0, 0, 1440)) as i32 - 240).abs() <= 1);
        assert!((pitch(&sine(120.0, 0, 1440)) as i32 - 400).abs() <= 1);
    }

    #[test]
    fn a_lost_packet_continues_the_waveform_then_fades_out() {
        let mut concealer = Concealer::default();
        for k in 0..3 {
            let mut heard = sine(200.0, k * 960, 960);
            concealer.heard(&mut heard);
        }
        let made_up = concealer.conceal(960);
        let truth = sine(200.0, 3 * 960, 960);
        let error: f32 = made_up
            .iter()
            .zip(&truth)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            / 960.0;
        let power: f32 = truth.iter().map(|s| s * s).sum::<f32>() / 960.0;
        assert!(error < power * 0.1, "error {error} against power {power}");
        // A long run of losses ends in silence.
        for _ in 0..3 {
            concealer.conceal(960);
        }
        assert!(concealer.conceal(960).iter().all(|s| *s == 0.0));
    }

    #[test]
    fn sound_after_a_loss_is_blended_in_without_a_step() {
        let mut concealer = Concealer::default();
        for k in 0..3 {
            let mut heard = sine(200.0, k * 960, 960);
            concealer.heard(&mut heard);
        }
        let made_up = concealer.conceal(960);
        let mut next = vec![0.0; 960]; // the talker went silent
        concealer.heard(&mut next);
        let step = (next[0] - made_up[959]).abs();
        assert!(step < 0.1, "step {step}");
        assert_eq!(next[BLEND + 1], 0.0);
    }

    #[test]
    fn nothing_heard_yet_conceals_as_silence() {
        let mut concealer = Concealer::default();
        assert_eq!(concealer.conceal(960), vec![0.0; 960]);
    }
}
