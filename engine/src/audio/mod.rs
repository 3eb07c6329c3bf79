//! Sound: from packets to the speakers.
//!
//! - [`jitter`]: each voice's packets, reordered and paced out every 20 ms, with losses named;
//! - [`voices`]: each participant's decoded sound, waiting for the speakers;
//! - [`spatial`]: every voice placed where its panel stands (interaural time and level
//!   differences, distance), and [`mixer`], which mixes the voices through it into stereo;
//! - [`resample`]: devices that do not run at 48 kHz, through `rubato`;
//! - [`Speakers`]: what the mix is played on, and [`Clock`], which plays it nowhere at the pace
//!   of real time.

pub mod jitter;
pub mod mixer;
pub mod resample;
pub mod spatial;
pub mod voices;

pub use jitter::{JitterBuffer, Playout};
pub use mixer::{Mixer, Scene};
pub use voices::Voices;

use web_time::Instant;

use crate::media::SAMPLE_RATE;
use crate::rt::MaybeSend;

/// What the mix is played on: the speakers' ring (natively) or the page's audio worklet (in the
/// browser). The driver asks how much it wants and renders that much.
pub trait Speakers: MaybeSend {
    /// Stereo frames (48 kHz) to render now to keep the device's buffer at its target.
    fn wanted(&mut self, now: Instant) -> usize;
    /// Plays interleaved stereo samples (48 kHz), `2 * frames` of them.
    fn play(&mut self, stereo: &[f32]);
}

/// Speakers that play nowhere at the pace of real time, so the mixer (and the speaking glow it
/// measures) runs as if they did.
#[derive(Debug)]
pub struct Clock {
    played: u64,
    started: Option<Instant>,
}

impl Clock {
    /// A clock starting at the first [`Speakers::wanted`].
    pub fn new() -> Self {
        Self {
            played: 0,
            started: None,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Speakers for Clock {
    fn wanted(&mut self, now: Instant) -> usize {
        let started = *self.started.get_or_insert(now);
        let due =
            (now.saturating_duration_since(started).as_secs_f64() * f64::from(SAMPLE_RATE)) as u64;
        // After a long stall, start afresh rather than render seconds at once.
        if due > self.played + u64::from(SAMPLE_RATE) {
            self.played = due;
        }
        (due - self.played.min(due)) as usize
    }

    fn play(&mut self, stereo: &[f32]) {
        self.played += (stereo.len() / 2) as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_clock_wants_real_time_and_skips_a_stall() {
        let t0 = Instant::now();
        let mut clock = Clock::new();
        assert_eq!(clock.wanted(t0), 0);
        let wanted = clock.wanted(t0 + Duration::from_millis(10));
        assert_eq!(wanted, 480);
        clock.play(&vec![0.0; wanted * 2]);
        assert_eq!(clock.wanted(t0 + Duration::from_millis(10)), 0);
        assert_eq!(clock.wanted(t0 + Duration::from_millis(30)), 960);
        // Five seconds later: not five seconds at once.
        assert_eq!(clock.wanted(t0 + Duration::from_secs(5)), 0);
    }
}
