//! Keeps the optional control messages (poses, keyframe requests) well under the relay's budget
//! per participant (60 a second, bursts of 120), so that recovering many panels at once while
//! walking never gets the session closed; at most one keyframe request per track per
//! [`KEYFRAME_GAP`].

use std::collections::HashMap;
use std::time::Duration;

use rotunda_proto::TrackId;
use web_time::Instant;

/// Optional messages per second, and the burst allowed.
const RATE: f64 = 30.0;
const BURST: f64 = 40.0;
/// Least time between two keyframe requests for one track.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(300);

/// A token bucket of optional control messages.
#[derive(Debug)]
pub struct ControlLimiter {
    tokens: f64,
    last: Option<Instant>,
    keyframes: HashMap<TrackId, Instant>,
}

impl Default for ControlLimiter {
    fn default() -> Self {
        Self {
            tokens: BURST,
            last: None,
            keyframes: HashMap::new(),
        }
    }
}

impl ControlLimiter {
    /// Whether an optional message may go now (taking its token).
    pub fn take(&mut self, now: Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        self.tokens =
            (self.tokens + now.saturating_duration_since(last).as_secs_f64() * RATE).min(BURST);
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a keyframe request for `track` may go now.
    pub fn keyframe(&mut self, track: TrackId, now: Instant) -> bool {
        if self
            .keyframes
            .get(&track)
            .is_some_and(|at| now.saturating_duration_since(*at) < KEYFRAME_GAP)
        {
            return false;
        }
        if self.keyframes.len() > 256 {
            self.keyframes
                .retain(|_, at| now.saturating_duration_since(*at) < KEYFRAME_GAP);
        }
        if !self.take(now) {
            return false;
        }
        self.keyframes.insert(track, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use rotunda_proto::ParticipantId;

    use super::*;

    #[test]
    fn bursts_are_capped_and_refilled_at_the_rate() {
        let t0 = Instant::now();
        let mut limiter = ControlLimiter::default();
        let sent = (0..100).filter(|_| limiter.take(t0)).count();
        assert_eq!(sent, 40);
        assert!(!limiter.take(t0));
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..100).filter(|_| limiter.take(later)).count();
        assert_eq!(refilled, 3);
    }

    #[test]
    fn keyframe_requests_are_spaced_per_track() {
        let t0 = Instant::now();
        let mut limiter = ControlLimiter::default();
        let a = TrackId {
            participant: ParticipantId(1),
            index: 0,
        };
        let b = TrackId {
            participant: ParticipantId(2),
            index: 0,
        };
        assert!(limiter.keyframe(a, t0));
        assert!(!limiter.keyframe(a, t0 + Duration::from_millis(100)));
        assert!(limiter.keyframe(b, t0 + Duration::from_millis(100)));
        assert!(limiter.keyframe(a, t0 + Duration::from_millis(301)));
    }
}
