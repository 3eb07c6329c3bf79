//! When to try rejoining after a lost connection: the first try at once, then waits that double
//! from [`FIRST`] up to [`CEILING`], each shortened by a random part (jitter), so that everyone a
//! restarted relay dropped does not come back in the same instant. The ceiling stays low for the
//! first minute (a relay restarting comes back within seconds, and each second of waiting is a
//! second of meeting lost); after that it rises to [`LATE_CEILING`].

use std::time::Duration;

/// The wait after the first failed try.
const FIRST: Duration = Duration::from_millis(100);
/// The longest wait in the first minute.
const CEILING: Duration = Duration::from_millis(800);
/// The longest wait after that.
const LATE_CEILING: Duration = Duration::from_secs(5);
/// Tries before the ceiling rises.
const EARLY_TRIES: u32 = 60;

/// A backoff schedule with jitter from a small seeded generator (no dependency, reproducible in
/// tests).
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A schedule whose jitter starts from `seed` (any value; zero is fine).
    pub fn new(seed: u64) -> Self {
        Self {
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// Tries made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next try (zero for the first), counting it.
    pub fn next_delay(&mut self) -> Duration {
        let attempt = self.attempt;
        self.attempt = self.attempt.saturating_add(1);
        if attempt == 0 {
            return Duration::ZERO;
        }
        let ceiling = if attempt < EARLY_TRIES {
            CEILING
        } else {
            LATE_CEILING
        };
        let full = FIRST
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(ceiling);
        // "Equal jitter": half the wait fixed, the other half random.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let random = (self.rng % 1_000) as f64 / 1_000.0;
        full.mul_f64(0.5 + 0.5 * random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_try_is_at_once_then_waits_grow_to_the_ceiling() {
        let mut backoff = Backoff::new(7);
        assert_eq!(backoff.next_delay(), Duration::ZERO);
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        assert!(waits[0] >= FIRST / 2 && waits[0] <= FIRST);
        assert!(waits[1] >= FIRST && waits[1] <= FIRST * 2);
        for wait in &waits {
            assert!(*wait <= CEILING, "{wait:?}");
        }
        assert!(waits[9] >= CEILING / 2);
        assert_eq!(backoff.attempts(), 11);
    }

    #[test]
    fn after_a_minute_of_tries_the_ceiling_rises() {
        let mut backoff = Backoff::new(1);
        for _ in 0..EARLY_TRIES {
            backoff.next_delay();
        }
        let waits: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(waits.iter().all(|w| *w <= LATE_CEILING));
        assert!(waits.iter().any(|w| *w > CEILING));
    }

    #[test]
    fn jitter_spreads_clients_apart() {
        let mut a = Backoff::new(1);
        let mut b = Backoff::new(2);
        let a: Vec<Duration> = (0..8).map(|_| a.next_delay()).collect();
        let b: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_ne!(a, b);
    }
}
