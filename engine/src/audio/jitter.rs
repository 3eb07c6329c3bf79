//! An audio jitter buffer: packets arrive unevenly, out of order or not at all; playout takes one
//! every 20 ms.
//!
//! It starts playing once `target` packets are buffered, then yields, per tick, the next packet in
//! sequence, or [`Playout::Conceal`] when that one is missing but later ones are here (the decoder
//! then conceals the loss). When it runs dry it rebuffers. Packets older than the playout point
//! are dropped as late; a jump far ahead (the sender restarted) resynchronizes.

use std::collections::BTreeMap;

use crate::media::sequence::Unwrapper;

/// What to play for one 20 ms tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<T> {
    /// The next packet.
    Packet(T),
    /// The next packet is lost: conceal it.
    Conceal,
    /// Nothing buffered: play silence (rebuffering).
    Silence,
}

/// Counters of a jitter buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets concealed.
    pub concealed: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Times playout ran dry.
    pub underruns: u64,
    /// Packets skipped to bring the delay back down after a burst.
    pub skipped: u64,
}

/// Reorders packets by sequence number and paces them out.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    target: usize,
    capacity: usize,
    sequences: Unwrapper,
    packets: BTreeMap<u64, T>,
    next: Option<u64>,
    /// The last packet played, kept across rebuffering so stragglers stay late.
    last_played: Option<u64>,
    /// Packets buffered beyond the target before playout skips ahead.
    catch_up: usize,
    stats: JitterStats,
}

/// A gap this large means the sender restarted rather than lost packets.
const RESYNC_GAP: u64 = 50;
/// Packets buffered beyond the target before playout skips ahead (8 x 20 ms): only a real burst
/// after a stall is trimmed, ordinary jitter is played out.
const CATCH_UP: usize = 8;

impl<T> JitterBuffer<T> {
    /// Plays once `target` packets wait; holds at most `capacity`.
    pub fn new(target: usize, capacity: usize) -> Self {
        Self {
            target: target.max(1),
            capacity: capacity.max(target.max(1)),
            sequences: Unwrapper::default(),
            packets: BTreeMap::new(),
            next: None,
            last_played: None,
            catch_up: CATCH_UP,
            stats: JitterStats::default(),
        }
    }

    /// Lets `packets` beyond the target wait before playout skips ahead (8 by default): a
    /// player that is itself bursty (a page's thread blocked by drawing, then playing the
    /// missed ticks at once) must not take its own bursts for network ones.
    pub fn with_catch_up(mut self, packets: usize) -> Self {
        self.catch_up = packets;
        self
    }

    /// Packets waiting.
    pub fn depth(&self) -> usize {
        self.packets.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// A packet arrived.
    pub fn push(&mut self, sequence: u32, packet: T) {
        let sequence = self.sequences.extend(sequence);
        if let Some(last) = self.last_played
            && sequence <= last
        {
            if last - sequence < RESYNC_GAP {
                self.stats.late += 1;
                return;
            }
            // Far behind what was played: the sender started over.
            self.packets.clear();
            self.next = None;
            self.last_played = None;
        }
        self.packets.insert(sequence, packet);
        while self.packets.len() > self.capacity {
            self.packets.pop_first();
            self.stats.overflow += 1;
        }
    }

    /// What to play now (call every 20 ms).
    pub fn pop(&mut self) -> Playout<T> {
        let Some(next) = self.next else {
            if self.packets.len() < self.target {
                return Playout::Silence;
            }
            let Some((sequence, packet)) = self.packets.pop_first() else {
                return Playout::Silence;
            };
            self.next = Some(sequence + 1);
            self.last_played = Some(sequence);
            return Playout::Packet(packet);
        };
        if self.packets.len() > self.target + self.catch_up
            && let Some((skipped, _)) = self.packets.pop_first()
        {
            // A burst after a stall left too much buffered: skip one packet a tick until the
            // delay is back near the target.
            self.stats.skipped += 1;
            self.next = Some(skipped.max(next) + 1);
            self.last_played = Some(skipped.max(next));
            return self.pop();
        }
        if let Some(packet) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.last_played = Some(next);
            return Playout::Packet(packet);
        }
        match self.packets.first_key_value().map(|(s, _)| *s) {
            None => {
                self.next = None;
                self.stats.underruns += 1;
                Playout::Silence
            }
            Some(first) if first >= next + RESYNC_GAP => {
                // Far ahead: start over from what is here.
                self.next = None;
                self.pop()
            }
            Some(_) => {
                self.next = Some(next + 1);
                self.last_played = Some(next);
                self.stats.concealed += 1;
                Playout::Conceal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_target_depth_then_plays_in_order() {
        let mut buffer = JitterBuffer::new(2, 10);
        buffer.push(11, 'b');
        assert_eq!(buffer.pop(), Playout::Silence);
        buffer.push(10, 'a');
        assert_eq!(buffer.pop(), Playout::Packet('a'));
        assert_eq!(buffer.pop(), Playout::Packet('b'));
    }

    #[test]
    fn reorders_and_conceals_a_lost_packet() {
        let mut buffer = JitterBuffer::new(1, 10);
        buffer.push(1, 1);
        assert_eq!(buffer.pop(), Playout::Packet(1));
        buffer.push(4, 4);
        buffer.push(3, 3);
        assert_eq!(buffer.pop(), Playout::Conceal); // 2 never came
        assert_eq!(buffer.pop(), Playout::Packet(3));
        buffer.push(2, 2); // too late now
        assert_eq!(buffer.pop(), Playout::Packet(4));
        assert_eq!(buffer.stats().late, 1);
        assert_eq!(buffer.stats().concealed, 1);
    }

    #[test]
    fn rebuffers_after_running_dry() {
        let mut buffer = JitterBuffer::new(2, 10);
        buffer.push(1, 1);
        buffer.push(2, 2);
        assert_eq!(buffer.pop(), Playout::Packet(1));
        assert_eq!(buffer.pop(), Playout::Packet(2));
        assert_eq!(buffer.pop(), Playout::Silence);
        assert_eq!(buffer.stats().underruns, 1);
        buffer.push(3, 3);
        assert_eq!(buffer.pop(), Playout::Silence);
        buffer.push(4, 4);
        assert_eq!(buffer.pop(), Playout::Packet(3));
    }

    #[test]
    fn overflow_drops_the_oldest_and_a_restart_resyncs() {
        let mut buffer = JitterBuffer::new(1, 3);
        for s in 0..5 {
            buffer.push(s, s);
        }
        assert_eq!(buffer.depth(), 3);
        assert_eq!(buffer.stats().overflow, 2);
        assert_eq!(buffer.pop(), Playout::Packet(2));
        buffer.push(1000, 1000);
        assert_eq!(buffer.pop(), Playout::Packet(3));
        assert_eq!(buffer.pop(), Playout::Packet(4));
        assert_eq!(buffer.pop(), Playout::Packet(1000));
    }

    #[test]
    fn a_burst_is_played_down_to_the_target_delay() {
        let mut buffer = JitterBuffer::new(2, 50);
        buffer.push(0, 0);
        buffer.push(1, 1);
        assert_eq!(buffer.pop(), Playout::Packet(0));
        // A stall, then 20 packets at once.
        for s in 2..22 {
            buffer.push(s, s);
        }
        let mut played = Vec::new();
        for _ in 0..12 {
            if let Playout::Packet(p) = buffer.pop() {
                played.push(p);
            }
        }
        assert!(buffer.depth() <= 2 + CATCH_UP, "depth {}", buffer.depth());
        assert!(buffer.stats().skipped > 0);
        assert!(
            played.windows(2).all(|w| w[0] < w[1]),
            "still in order: {played:?}"
        );
    }

    #[test]
    fn stragglers_stay_late_across_a_rebuffer_and_the_wrap_is_seamless() {
        let mut buffer = JitterBuffer::new(1, 10);
        buffer.push(u32::MAX, 1);
        assert_eq!(buffer.pop(), Playout::Packet(1));
        assert_eq!(buffer.pop(), Playout::Silence); // dry: rebuffering
        buffer.push(u32::MAX - 1, 0); // older than what was played
        buffer.push(0, 2);
        assert_eq!(buffer.pop(), Playout::Packet(2));
        assert_eq!(buffer.stats().late, 1);
    }
}
