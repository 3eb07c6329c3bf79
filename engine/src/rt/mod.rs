//! The little the engine needs from its platform's runtime, under the same names on both:
//! [`spawn`] a task, [`sleep_until`] a moment, the wall clock ([`wall_clock_us`]), and
//! [`MaybeSend`], which is `Send` natively (tokio moves tasks between threads) and nothing in the
//! browser (a worker is one thread, and its JavaScript objects may not leave it).

#[cfg(native)]
mod native;
#[cfg(web)]
mod web;

#[cfg(native)]
pub use native::{MaybeSend, sleep_until, spawn};
#[cfg(web)]
pub use web::{MaybeSend, sleep_until, spawn};

use web_time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch: the capture clock every participant on one machine shares
/// (latency is measured against it).
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}
