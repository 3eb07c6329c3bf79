//! What a subscriber's downlink carries, estimated from its round trip, and the pacing that
//! keeps what the relay sends within it. Both sans-IO: the relay samples its QUIC connection and
//! hands the numbers in.
//!
//! Why not the congestion controller's own estimate: a meeting sends less than its link carries
//! nearly all the time (application-limited), and quinn's BBR takes no bandwidth sample then
//! (its pacing rate stays 0), while the window over the round trip only grows. What does tell is
//! the round trip: when the relay sends more than the link carries, a queue builds at the
//! bottleneck and the round trip grows past its least. So, in the spirit of WebRTC's
//! delay-based estimate (GCC):
//! - Start at a modest rate ([`LinkEstimate::new`]), grow fast while the link stays calm and
//!   nothing has queued yet, never far past what was actually sent (an estimate nothing tested
//!   means little).
//! - When the round trip shows a queue ([`OVERUSE`], in two looks in a row), drop to [`DECREASE`] of what went out, at
//!   most once per [`DECREASE_EVERY`] (the queue drains in between), and remember where it
//!   queued.
//! - Grow back fast up to just under that level, then slowly: going past it again is a probe
//!   that costs a little queueing, so it is rare.
//!
//! The [`Pacer`] spreads what is sent over time at a rate: a keyframe handed to QUIC at once
//! would reach a slow link's bottleneck in one burst, and every voice queued behind it.

use std::time::{Duration, Instant};

/// Queueing (round trip above its least) this long means the link is overused.
pub const OVERUSE: Duration = Duration::from_millis(40);
/// Queueing at most this long means the link is calm and the estimate may grow.
pub const CALM: Duration = Duration::from_millis(15);
/// Queueing this much below the last look's means the queue is draining.
pub const DRAINING: Duration = Duration::from_millis(5);
/// After overuse the estimate drops to this share of what was sent.
pub const DECREASE: f64 = 0.85;
/// Least time between two decreases.
pub const DECREASE_EVERY: Duration = Duration::from_millis(500);
/// Growth a second before the link first queued.
const STARTUP_GROWTH: f64 = 1.5;
/// Growth a second back toward where the link last queued.
const RECOVERY_GROWTH: f64 = 1.08;
/// Growth a second near where it last queued (from [`NEAR_CEILING`] of it on): a probe.
const PROBE_GROWTH: f64 = 1.01;
/// "Near where it last queued": above this share of that level.
const NEAR_CEILING: f64 = 0.9;
/// Past this many times where it last queued, without queueing, that level is forgotten.
const FORGET_CEILING: f64 = 1.1;
/// The estimate never passes this many times what was sent, plus [`UNTESTED_KBPS`] (or the
/// start rate): an estimate nothing tested means little, yet it must leave room for the next
/// picture to be taken on (one more 640x480 video is ~700 kb/s).
const UNTESTED: f64 = 2.0;
/// See [`UNTESTED`].
const UNTESTED_KBPS: f64 = 1000.0;

/// One look at the link, taken every few hundred milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSample {
    /// What was sent since the last sample, in kb/s.
    pub sent_kbps: f64,
    /// The round trip now, less its least.
    pub queueing: Duration,
}

/// A delay-based estimate of what a link carries.
#[derive(Debug, Clone)]
pub struct LinkEstimate {
    kbps: f64,
    start_kbps: f64,
    floor_kbps: f64,
    /// Where the link last queued (until the estimate passes it well without queueing).
    ceiling: Option<f64>,
    /// The link has queued at least once: growth is no longer the start's.
    queued_once: bool,
    /// The last sample showed overuse.
    overused: bool,
    /// The queueing the last sample showed.
    last_queueing: Duration,
    /// The most sent lately (decays), for the [`UNTESTED`] bound.
    sent_kbps: f64,
    last_sample: Option<Instant>,
    last_decrease: Option<Instant>,
}

impl LinkEstimate {
    /// Starts at `start_kbps`, never goes below `floor_kbps`.
    pub fn new(start_kbps: f64, floor_kbps: f64) -> Self {
        Self {
            kbps: start_kbps.max(floor_kbps),
            start_kbps,
            floor_kbps,
            ceiling: None,
            queued_once: false,
            overused: false,
            last_queueing: Duration::ZERO,
            sent_kbps: 0.0,
            last_sample: None,
            last_decrease: None,
        }
    }

    /// What may be sent, in kb/s.
    pub fn kbps(&self) -> f64 {
        self.kbps
    }

    /// Where the link last queued, if it ever did.
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }

    /// Takes a sample; returns whether the estimate changed.
    pub fn on_sample(&mut self, sample: LinkSample, now: Instant) -> bool {
        let elapsed = self
            .last_sample
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.last_sample = Some(now);
        // The most sent lately, forgetting half of it every few seconds.
        self.sent_kbps = (self.sent_kbps * 0.8f64.powf(elapsed)).max(sample.sent_kbps);
        // Overuse twice in a row (a queue, not one late acknowledgement on a busy machine), and
        // not draining: a queue going down after a cut needs no second cut (cutting on its size
        // while it drains took a narrow link's estimate down to its floor).
        let draining = sample.queueing + DRAINING < self.last_queueing;
        self.last_queueing = sample.queueing;
        let overused = sample.queueing > OVERUSE && !draining;
        let confirmed = overused && self.overused;
        self.overused = overused;
        if confirmed {
            return self.decrease(sample.sent_kbps, now);
        }
        if overused {
            return false;
        }
        // What was not tested lately does not stay in the estimate.
        let bound = (self.sent_kbps * UNTESTED + UNTESTED_KBPS).max(self.start_kbps);
        if sample.queueing > CALM || elapsed == 0.0 {
            return self.kbps > bound && self.set(bound);
        }
        let near_ceiling = self.ceiling.is_some_and(|c| self.kbps >= c * NEAR_CEILING);
        let growth = if near_ceiling {
            PROBE_GROWTH
        } else if self.queued_once {
            RECOVERY_GROWTH
        } else {
            STARTUP_GROWTH
        };
        let mut grown = self.kbps * growth.powf(elapsed);
        if let Some(ceiling) = self.ceiling {
            if near_ceiling {
                // Well past where it queued, without queueing: that was then.
                if grown > ceiling * FORGET_CEILING {
                    self.ceiling = None;
                }
            } else {
                // Back fast, but only to just under where it queued.
                grown = grown.min(ceiling * NEAR_CEILING);
            }
        }
        self.set(grown.min(bound))
    }

    /// What was sent (`sent_kbps`) overflowed somewhere: less from now on.
    pub fn on_overflow(&mut self, sent_kbps: f64, now: Instant) -> bool {
        self.decrease(sent_kbps, now)
    }

    fn decrease(&mut self, sent_kbps: f64, now: Instant) -> bool {
        if self
            .last_decrease
            .is_some_and(|at| now.saturating_duration_since(at) < DECREASE_EVERY)
        {
            return false;
        }
        self.last_decrease = Some(now);
        self.queued_once = true;
        // Where it queued: the estimate it had (measured: taking what was sent then kept a
        // narrow link's pictures at 18 fps instead of 28, growth stopping short of them).
        self.ceiling = Some(self.kbps);
        self.set(DECREASE * sent_kbps.min(self.kbps))
    }

    fn set(&mut self, kbps: f64) -> bool {
        let kbps = kbps.max(self.floor_kbps);
        let changed = (kbps - self.kbps).abs() > 0.5;
        self.kbps = kbps;
        changed
    }
}

/// Spreads bytes over time at a rate: each send is given the instant it may go, so that what
/// goes never runs ahead of the rate by more than a short burst.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// When the next byte may go.
    next: Option<Instant>,
    burst: Duration,
}

impl Pacer {
    /// A pacer that lets `burst` worth of bytes go at once after a pause.
    pub fn new(burst: Duration) -> Self {
        Self { next: None, burst }
    }

    /// `bytes` are to be sent at `kbps`: when they may go (`now` or later).
    pub fn reserve(&mut self, bytes: usize, kbps: f64, now: Instant) -> Instant {
        let earliest = now.checked_sub(self.burst).unwrap_or(now);
        let start = self.next.map_or(earliest, |next| next.max(earliest));
        let seconds = bytes as f64 * 8.0 / (kbps.max(1.0) * 1000.0);
        self.next = Some(start + Duration::from_secs_f64(seconds));
        start.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sent_kbps: f64, queueing_ms: u64) -> LinkSample {
        LinkSample {
            sent_kbps,
            queueing: Duration::from_millis(queueing_ms),
        }
    }

    /// A link of `capacity` kb/s sending what the estimate allows (as a full allocation
    /// would), sampled every 250 ms; queueing as a drop-tail queue of 300 ms would show it.
    fn run(
        estimate: &mut LinkEstimate,
        capacity: f64,
        seconds: u32,
        t: &mut Instant,
        queue_ms: &mut f64,
    ) -> Vec<f64> {
        let mut worst = Vec::new();
        for _ in 0..seconds * 4 {
            *t += Duration::from_millis(250);
            let sent = estimate.kbps();
            *queue_ms = (*queue_ms + (sent - capacity) / capacity * 250.0).clamp(0.0, 300.0);
            worst.push(*queue_ms);
            estimate.on_sample(sample(sent, *queue_ms as u64), *t);
        }
        worst
    }

    #[test]
    fn a_calm_link_grows_fast_but_never_far_past_what_was_sent() {
        let t0 = Instant::now();
        let mut estimate = LinkEstimate::new(1000.0, 64.0);
        estimate.on_sample(sample(1000.0, 0), t0);
        for n in 1..=8 {
            estimate.on_sample(sample(1000.0, 2), t0 + Duration::from_millis(250 * n));
        }
        // 1.5x a second for two seconds.
        assert!(
            (estimate.kbps() - 2250.0).abs() < 1.0,
            "{}",
            estimate.kbps()
        );
        // Then no further than twice what was sent and a picture more.
        for n in 9..=40 {
            estimate.on_sample(sample(1000.0, 2), t0 + Duration::from_millis(250 * n));
        }
        assert!(
            (estimate.kbps() - 3000.0).abs() < 1.0,
            "{}",
            estimate.kbps()
        );
        // Sending less from then on, the untested part goes.
        for n in 41..=120 {
            estimate.on_sample(sample(100.0, 2), t0 + Duration::from_millis(250 * n));
        }
        assert!(
            (estimate.kbps() - 1200.0).abs() < 1.0,
            "{}",
            estimate.kbps()
        );
        // Sending little: no growth past the start rate and a picture.
        let mut idle = LinkEstimate::new(1500.0, 64.0);
        for n in 0..40 {
            idle.on_sample(sample(100.0, 0), t0 + Duration::from_millis(250 * n));
        }
        assert_eq!(idle.kbps(), 1500.0);
    }

    #[test]
    fn a_queue_drops_the_estimate_below_what_went_out_once_per_drain() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut estimate = LinkEstimate::new(1000.0, 64.0);
        // One late look is not a queue; two in a row are.
        assert!(!estimate.on_sample(sample(900.0, 80), t0));
        assert!(!estimate.on_sample(sample(900.0, 20), ms(250)));
        assert!(!estimate.on_sample(sample(900.0, 80), ms(500)));
        assert!(estimate.on_sample(sample(900.0, 80), ms(750)));
        assert_eq!(estimate.kbps(), 900.0 * DECREASE);
        assert_eq!(estimate.ceiling(), Some(1000.0));
        // Still queueing as much 250 ms later: too soon for a second cut; 500 ms later, a cut.
        assert!(!estimate.on_sample(sample(760.0, 80), ms(1000)));
        assert!(estimate.on_sample(sample(760.0, 80), ms(1250)));
        assert_eq!(estimate.kbps(), 760.0 * DECREASE);
        // A queue going down is draining: no further cut for its size.
        for (n, queueing) in [70, 60, 50, 45].into_iter().enumerate() {
            let at = ms(1500 + 250 * n as u64);
            assert!(
                !estimate.on_sample(sample(600.0, queueing), at),
                "{queueing}"
            );
        }
        // Never below the floor.
        let mut low = LinkEstimate::new(100.0, 64.0);
        low.on_sample(sample(10.0, 100), t0);
        low.on_sample(sample(10.0, 100), ms(250));
        assert_eq!(low.kbps(), 64.0);
    }

    #[test]
    fn on_a_narrow_link_it_settles_under_the_link_and_probes_rarely() {
        let mut t = Instant::now();
        let mut queue = 0.0;
        let mut estimate = LinkEstimate::new(1000.0, 64.0);
        // A 600 kb/s link: the start overshoots once, then it settles.
        let first = run(&mut estimate, 600.0, 5, &mut t, &mut queue);
        assert!(estimate.kbps() < 600.0, "{}", estimate.kbps());
        // (Its queue drains within 4 s: while it drains, there is no second cut.)
        assert!(first[16..].iter().all(|q| *q < 40.0), "{first:?}");
        // Over the next minute, the link queues (over 40 ms) in few samples of the 240.
        let later = run(&mut estimate, 600.0, 60, &mut t, &mut queue);
        let queued = later.iter().filter(|q| **q > 40.0).count();
        assert!(queued <= 8, "{queued} of {}: {later:?}", later.len());
        // And it uses the link: on average at least 70 % of it.
        assert!(estimate.kbps() > 420.0, "{}", estimate.kbps());
    }

    #[test]
    fn a_link_that_widens_is_found_again() {
        let mut t = Instant::now();
        let mut queue = 0.0;
        let mut estimate = LinkEstimate::new(1000.0, 64.0);
        run(&mut estimate, 600.0, 10, &mut t, &mut queue);
        run(&mut estimate, 5000.0, 60, &mut t, &mut queue);
        assert!(estimate.kbps() > 2500.0, "{}", estimate.kbps());
    }

    #[test]
    fn the_pacer_spreads_bytes_at_the_rate_after_a_short_burst() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut pacer = Pacer::new(Duration::from_millis(20));
        // 1000 kb/s: 1250 bytes take 10 ms. The first 20 ms worth go at once.
        let at: Vec<Duration> = (0..6)
            .map(|_| pacer.reserve(1250, 1000.0, t0) - t0)
            .collect();
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 10, 20, 30]);
        // After a pause, the schedule starts afresh (with its burst).
        let later = t0 + Duration::from_secs(1);
        assert_eq!(pacer.reserve(1250, 1000.0, later), later);
    }
}
