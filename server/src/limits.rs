//! What one peer, or all of them together, may cost the relay: connections by address and in
//! all, failed joins by address, and the bytes of unfinished video frames held (a
//! [`rotunda_quic::stream::Budget`] per connection, drawing on the relay's).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed joins one address may make in [`ATTEMPTS_WINDOW`] before its joins are refused
/// unread ([`ErrorCode::TooManyAttempts`]) until the window has passed.
const MAX_FAILED_JOINS: u32 = 10;
/// See [`MAX_FAILED_JOINS`].
const ATTEMPTS_WINDOW: Duration = Duration::from_secs(60);
/// Addresses [`Attempts`] remembers; past this the oldest windows are forgotten first.
const ATTEMPTS_REMEMBERED: usize = 10_000;

/// Failed joins counted by address, so that no one may guess at tokens (or try the relay's
/// patience) faster than [`MAX_FAILED_JOINS`] a minute.
#[derive(Debug, Default)]
pub struct Attempts(Mutex<HashMap<IpAddr, (Instant, u32)>>);

impl Attempts {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `from` may try to join now.
    pub fn allowed(&self, from: IpAddr, now: Instant) -> bool {
        let map = self.lock();
        match map.get(&from) {
            Some((since, failed)) => {
                now.saturating_duration_since(*since) >= ATTEMPTS_WINDOW
                    || *failed < MAX_FAILED_JOINS
            }
            None => true,
        }
    }

    /// `from` failed to join.
    pub fn failed(&self, from: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= ATTEMPTS_REMEMBERED && !map.contains_key(&from) {
            map.retain(|_, (since, _)| now.saturating_duration_since(*since) < ATTEMPTS_WINDOW);
            if map.len() >= ATTEMPTS_REMEMBERED
                && let Some(oldest) = map.iter().min_by_key(|(_, (since, _))| *since)
            {
                let oldest = *oldest.0;
                map.remove(&oldest);
            }
        }
        let entry = map.entry(from).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= ATTEMPTS_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Open connections, by address and in all.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    max_total: usize,
    max_per_address: usize,
}

impl Connections {
    /// At most `max_total` connections, `max_per_address` of them from one address.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new((0, HashMap::new())),
            max_total,
            max_per_address,
        })
    }

    fn lock(&self) -> MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for one more connection from `from`, held until the [`Slot`] is dropped; `None`
    /// when there is none.
    pub fn enter(self: &Arc<Self>, from: IpAddr) -> Option<Slot> {
        let mut open = self.lock();
        let (total, by_address) = &mut *open;
        let here = by_address.entry(from).or_insert(0);
        if *total >= self.max_total || *here >= self.max_per_address {
            if *here == 0 {
                by_address.remove(&from);
            }
            return None;
        }
        *here += 1;
        *total += 1;
        Some(Slot {
            connections: self.clone(),
            from,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().0
    }
}

/// One connection's place in [`Connections`].
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    from: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        let (total, by_address) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(here) = by_address.get_mut(&self.from) {
            *here = here.saturating_sub(1);
            if *here == 0 {
                by_address.remove(&self.from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_by_address_and_in_all() {
        let connections = Connections::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = connections.enter(a).expect("room");
        let second = connections.enter(a).expect("room");
        assert!(connections.enter(a).is_none(), "two per address");
        let third = connections.enter(b).expect("another address");
        assert!(connections.enter(b).is_none(), "three in all");
        drop(first);
        assert!(connections.enter(b).is_some(), "a place freed");
        drop((second, third));
        assert_eq!(connections.open(), 0);
    }

    #[test]
    fn failed_joins_wait_out_their_window() {
        let attempts = Attempts::default();
        let from: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILED_JOINS {
            assert!(attempts.allowed(from, t0));
            attempts.failed(from, t0);
        }
        assert!(!attempts.allowed(from, t0));
        assert!(
            attempts.allowed([10, 0, 0, 2].into(), t0),
            "others are not held up"
        );
        assert!(attempts.allowed(from, t0 + ATTEMPTS_WINDOW));
    }
}
