//! Puts received video frames back in decoding order.
//!
//! Each frame travels on a stream of its own, so frames can complete out of order. A frame is
//! released once all frames before it were; a keyframe starts a clean run. When a gap stays open
//! for more than a few frames (the missing one was abandoned), playback waits for the next
//! keyframe, and [`Reorder::push`] tells the caller to ask for one.

use std::collections::BTreeMap;

/// Frames held back waiting for a missing one before it counts as lost.
const MAX_HELD: usize = 4;

/// Per-track reordering state.
#[derive(Debug)]
pub struct Reorder<T> {
    next: Option<u32>,
    held: BTreeMap<u32, (bool, T)>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self {
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
    /// A frame arrived.
    pub fn push(&mut self, sequence: u32, keyframe: bool, frame: T) -> Released<T> {
        let mut released = Released {
            frames: Vec::new(),
            need_keyframe: false,
        };
        if self.next.is_some_and(|next| sequence < next) {
            return released; // late: its successors were already decoded
        }
        self.held.insert(sequence, (keyframe, frame));
        loop {
            match self.next {
                None => {
                    // Waiting for a keyframe to start from.
                    let Some(start) = self.held.iter().find(|(_, (key, _))| *key).map(|(s, _)| *s)
                    else {
                        if self.held.len() > MAX_HELD {
                            self.held.pop_first();
                            released.need_keyframe = true;
                        }
                        break;
                    };
                    self.held = self.held.split_off(&start);
                    self.next = Some(start);
                }
                Some(next) => {
                    if let Some((_, frame)) = self.held.remove(&next) {
                        released.frames.push(frame);
                        self.next = Some(next.wrapping_add(1));
                    } else if let Some(key) =
                        self.held.iter().find(|(_, (key, _))| *key).map(|(s, _)| *s)
                    {
                        // A keyframe after the gap: no need to wait for what is missing.
                        if self.held.len() > MAX_HELD || self.held.keys().all(|s| *s >= key) {
                            self.next = Some(key);
                            self.held = self.held.split_off(&key);
                        } else {
                            break;
                        }
                    } else if self.held.len() > MAX_HELD {
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

    #[test]
    fn in_order_frames_pass_straight_through() {
        let mut reorder = Reorder::default();
        assert_eq!(reorder.push(0, true, 0).frames, vec![0]);
        assert_eq!(reorder.push(1, false, 1).frames, vec![1]);
    }

    #[test]
    fn frames_out_of_order_are_released_in_order() {
        let mut reorder = Reorder::default();
        assert!(reorder.push(1, false, 1).frames.is_empty());
        assert_eq!(reorder.push(0, true, 0).frames, vec![0, 1]);
        assert!(reorder.push(3, false, 3).frames.is_empty());
        assert_eq!(reorder.push(2, false, 2).frames, vec![2, 3]);
        assert!(
            reorder.push(1, false, 1).frames.is_empty(),
            "late frames are dropped"
        );
    }

    #[test]
    fn a_lost_frame_waits_for_a_keyframe_and_asks_for_one() {
        let mut reorder = Reorder::default();
        reorder.push(0, true, 0);
        let mut asked = false;
        for s in 2..8 {
            let released = reorder.push(s, false, s);
            assert!(released.frames.is_empty());
            asked |= released.need_keyframe;
        }
        assert!(asked);
        assert_eq!(reorder.push(8, true, 8).frames, vec![8]);
        assert_eq!(reorder.push(9, false, 9).frames, vec![9]);
    }

    #[test]
    fn decoding_starts_at_a_keyframe() {
        let mut reorder = Reorder::default();
        assert!(reorder.push(5, false, 5).frames.is_empty());
        assert_eq!(reorder.push(6, true, 6).frames, vec![6]);
    }
}
