//! Puts received video frames back in decoding order.
//!
//! Each frame travels on a stream of its own, so frames can complete out of order (a large
//! keyframe is easily overtaken by the small frames after it). A frame is released once all
//! frames before it were; a keyframe starts a clean run. When a missing frame has not come for
//! [`HOLD`] (it was abandoned), playback waits for the next keyframe, and [`Reorder::push`] tells
//! the caller to ask for one.

use std::collections::BTreeMap;
use std::time::Duration;

use web_time::Instant;

use super::sequence::Unwrapper;

/// How long frames wait for a missing one before it counts as lost.
pub const HOLD: Duration = Duration::from_millis(400);
/// Most frames held back, whatever their age.
const MAX_HELD: usize = 60;

#[derive(Debug)]
struct Held<T> {
    keyframe: bool,
    arrived: Instant,
    frame: T,
}

/// Per-track reordering state.
#[derive(Debug)]
pub struct Reorder<T> {
    sequences: Unwrapper,
    next: Option<u64>,
    held: BTreeMap<u64, Held<T>>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self {
            sequences: Unwrapper::default(),
            next: None,
            held: BTreeMap::new(),
        }
    }
}

/// What [`Reorder::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<T> {
    /// Frames ready to decode, in order.
    pub frames: Vec<T>,
    /// A frame was lost: ask the sender for a keyframe.
    pub need_keyframe: bool,
}

impl<T> Reorder<T> {
    /// A frame arrived at `now`.
    pub fn push(&mut self, sequence: u32, keyframe: bool, frame: T, now: Instant) -> Released<T> {
        let mut released = Released {
            frames: Vec::new(),
            need_keyframe: false,
        };
        let sequence = self.sequences.extend(sequence);
        if self.next.is_some_and(|next| sequence < next) {
            return released; // late: its successors were already decoded
        }
        self.held.insert(
            sequence,
            Held {
                keyframe,
                arrived: now,
                frame,
            },
        );
        loop {
            let waited_too_long = self.held.len() > MAX_HELD
                || self
                    .held
                    .values()
                    .next()
                    .is_some_and(|oldest| now.saturating_duration_since(oldest.arrived) > HOLD);
            let first_key = self.held.iter().find(|(_, h)| h.keyframe).map(|(s, _)| *s);
            match self.next {
                None => {
                    // Waiting for a keyframe to start from.
                    let Some(start) = first_key else {
                        if waited_too_long {
                            self.held.pop_first();
                            released.need_keyframe = true;
                            continue;
                        }
                        break;
                    };
                    self.held = self.held.split_off(&start);
                    self.next = Some(start);
                }
                Some(next) => {
                    if let Some(held) = self.held.remove(&next) {
                        released.frames.push(held.frame);
                        self.next = Some(next + 1);
                    } else if let Some(key) = first_key
                        && (waited_too_long || self.held.keys().all(|s| *s >= key))
                    {
                        // A keyframe after the gap: no need to wait for what is missing.
                        self.next = Some(key);
                        self.held = self.held.split_off(&key);
                    } else if waited_too_long {
                        self.next = None;
                        released.need_keyframe = true;
                    } else {
                        break;
                    }
                }
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn in_order_frames_pass_straight_through() {
        let t0 = Instant::now();
        let mut reorder = Reorder::default();
        assert_eq!(reorder.push(0, true, 0, t0).frames, vec![0]);
        assert_eq!(reorder.push(1, false, 1, at(t0, 33)).frames, vec![1]);
    }

    #[test]
    fn frames_out_of_order_are_released_in_order() {
        let t0 = Instant::now();
        let mut reorder = Reorder::default();
        assert!(reorder.push(1, false, 1, t0).frames.is_empty());
        assert_eq!(reorder.push(0, true, 0, t0).frames, vec![0, 1]);
        assert!(reorder.push(3, false, 3, t0).frames.is_empty());
        assert_eq!(reorder.push(2, false, 2, t0).frames, vec![2, 3]);
        assert!(
            reorder.push(1, false, 1, t0).frames.is_empty(),
            "late frames are dropped"
        );
    }

    #[test]
    fn a_slow_keyframe_overtaken_by_many_small_frames_still_plays_them_all() {
        let t0 = Instant::now();
        let mut reorder = Reorder::default();
        for s in 1..10 {
            assert!(
                reorder
                    .push(s, false, s, at(t0, 10 * u64::from(s)))
                    .frames
                    .is_empty()
            );
        }
        let released = reorder.push(0, true, 0, at(t0, 150));
        assert_eq!(released.frames, (0..10).collect::<Vec<_>>());
        assert!(!released.need_keyframe);
    }

    #[test]
    fn a_lost_frame_waits_for_a_keyframe_and_asks_for_one() {
        let t0 = Instant::now();
        let mut reorder = Reorder::default();
        reorder.push(0, true, 0, t0);
        let mut asked = false;
        for s in 2..20u32 {
            let released = reorder.push(s, false, s, at(t0, 33 * u64::from(s)));
            assert!(released.frames.is_empty());
            asked |= released.need_keyframe;
        }
        assert!(asked, "frame 1 never came: ask for a keyframe");
        assert_eq!(reorder.push(20, true, 20, at(t0, 700)).frames, vec![20]);
        assert_eq!(reorder.push(21, false, 21, at(t0, 733)).frames, vec![21]);
    }

    #[test]
    fn decoding_starts_at_a_keyframe_and_survives_the_sequence_wrap() {
        let t0 = Instant::now();
        let mut reorder = Reorder::default();
        assert!(reorder.push(u32::MAX - 1, false, 1, t0).frames.is_empty());
        assert_eq!(reorder.push(u32::MAX, true, 2, t0).frames, vec![2]);
        assert!(reorder.push(1, false, 4, t0).frames.is_empty());
        assert_eq!(reorder.push(0, false, 3, t0).frames, vec![3, 4]);
    }
}
