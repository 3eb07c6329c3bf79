//! Each remote participant's decoded sound, waiting for the speakers, and how loud it is.
//!
//! The call's 20 ms tick pushes decoded audio in; the speakers pull it out at their own clock.
//! The two clocks drift apart, and a voice's queue bounds how far: past [`CAPACITY`] the oldest
//! samples go, down to [`CATCH_UP`]. A voice starts playing once [`PRIME`] samples wait (and again
//! after it ran dry), so the tick's jitter is absorbed here instead of cutting silence into speech.

use std::collections::{HashMap, VecDeque};

use rotunda_proto::ParticipantId;

/// Decoded audio held per voice before playout catches up (150 ms at 48 kHz).
const CAPACITY: usize = 7_200;
/// Where playout catches up to (60 ms).
const CATCH_UP: usize = 2_880;
/// Audio queued before a voice starts playing, and again after it ran dry (40 ms).
const PRIME: usize = 1_920;

#[derive(Debug, Default)]
struct Queue {
    samples: VecDeque<f32>,
    level: f32,
    /// Playing (primed); false until [`PRIME`] samples wait.
    playing: bool,
}

/// Every voice's queue and level.
#[derive(Debug, Default)]
pub struct Voices {
    queues: HashMap<ParticipantId, Queue>,
}

impl Voices {
    /// Appends decoded audio of `id` (dropping the oldest beyond [`CAPACITY`]) and updates its
    /// level.
    pub fn push(&mut self, id: ParticipantId, samples: &[f32]) {
        let queue = self.queues.entry(id).or_default();
        let mut energy = 0.0f32;
        for &sample in samples {
            let value = if sample.is_finite() {
                sample.clamp(-1.0, 1.0)
            } else {
                0.0
            };
            energy += value * value;
            queue.samples.push_back(value);
        }
        if queue.samples.len() > CAPACITY {
            let excess = queue.samples.len() - CATCH_UP;
            queue.samples.drain(..excess);
        }
        let rms = (energy / samples.len().max(1) as f32).sqrt();
        // Fast attack, slower release: a glow that follows speech without flicker.
        let smoothing = if rms > queue.level { 0.6 } else { 0.15 };
        queue.level += (rms - queue.level) * smoothing;
    }

    /// Takes up to `out.len()` samples of `id` into `out`, padding with silence; returns how
    /// many were real.
    pub fn pull(&mut self, id: ParticipantId, out: &mut [f32]) -> usize {
        let Some(queue) = self.queues.get_mut(&id) else {
            out.fill(0.0);
            return 0;
        };
        if !queue.playing && queue.samples.len() >= PRIME.max(out.len()) {
            queue.playing = true;
        }
        if !queue.playing {
            out.fill(0.0);
            return 0;
        }
        if queue.samples.len() < out.len() {
            // Ran dry: play what is left, then prime again.
            queue.playing = false;
        }
        let n = out.len().min(queue.samples.len());
        for (slot, sample) in out.iter_mut().zip(queue.samples.drain(..n)) {
            *slot = sample;
        }
        out[n..].fill(0.0);
        if n == 0 {
            // Nothing played: the level decays.
            queue.level *= 0.9;
        }
        n
    }

    /// Everyone with a queue, into `ids` (cleared first; no allocation once it is big enough).
    pub fn ids_into(&self, ids: &mut Vec<ParticipantId>) {
        ids.clear();
        ids.extend(self.queues.keys().copied());
    }

    /// How loud `id` has been lately (RMS, 0..1).
    pub fn level(&self, id: ParticipantId) -> f32 {
        self.queues.get(&id).map_or(0.0, |queue| queue.level)
    }

    /// Every voice's level.
    pub fn levels(&self) -> impl Iterator<Item = (ParticipantId, f32)> + '_ {
        self.queues.iter().map(|(id, queue)| (*id, queue.level))
    }

    /// Marks `id` as silent now (muted or gone quiet).
    pub fn silence(&mut self, id: ParticipantId) {
        if let Some(queue) = self.queues.get_mut(&id) {
            queue.level = 0.0;
        }
    }

    /// Forgets someone who left.
    pub fn remove(&mut self, id: ParticipantId) {
        self.queues.remove(&id);
    }

    /// Forgets everyone (a new session).
    pub fn clear(&mut self) {
        self.queues.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(value: f32) -> Vec<f32> {
        vec![value; 960]
    }

    #[test]
    fn voices_are_bounded_and_pulled_in_order() {
        let mut voices = Voices::default();
        let id = ParticipantId(3);
        let mut out = vec![0.0; 960];
        // Not primed yet: 20 ms waiting is not enough to start.
        voices.push(id, &block(0.1));
        assert_eq!(voices.pull(id, &mut out), 0);
        voices.push(id, &block(0.2));
        assert_eq!(voices.pull(id, &mut out), 960, "primed at 40 ms");
        assert!((out[0] - 0.1).abs() < 1e-6);
        // A burst beyond 150 ms is cut back to the newest 60 ms: 20 ms were left, the seventh
        // block pushed makes 160 ms, cut to blocks 4, 5 and 6; then 7, 8 and 9 follow.
        for i in 0..10 {
            voices.push(id, &block(i as f32 / 100.0));
        }
        assert_eq!(voices.pull(id, &mut out), 960);
        assert!((out[0] - 0.04).abs() < 1e-6, "{}", out[0]);
        assert!(voices.level(id) > 0.0);
        assert_eq!(voices.pull(ParticipantId(9), &mut out), 0);
        assert!(out.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn nonsense_samples_play_as_silence_or_full_scale() {
        let mut voices = Voices::default();
        let id = ParticipantId(1);
        voices.push(id, &[f32::NAN, f32::INFINITY, 7.0, -7.0]);
        voices.push(id, &block(0.0));
        voices.push(id, &block(0.0));
        let mut out = vec![1.0; 4];
        voices.pull(id, &mut out);
        assert_eq!(out, vec![0.0, 0.0, 1.0, -1.0]);
    }
}
