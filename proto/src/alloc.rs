//! Which layer of each video a subscriber receives: a pure function of what it sees, what its
//! link carries and what it receives now, so the room can run it whenever any of those change
//! (and tests can run it on numbers alone).
//!
//! The rules, in the spirit of LiveKit's stream allocator and Jitsi's last-N:
//! - Audio is not allocated: it always goes, and its cost comes off the budget first.
//! - A video out of sight gets nothing.
//! - Every video in sight gets its smallest layer before any gets a larger one, in priority
//!   order; what does not fit then is paused.
//! - Then, round after round, each video in priority order steps up one layer while the budget
//!   allows, until it reaches the smallest layer at least as tall as its panel on screen.
//! - Hysteresis: keeping what a subscriber already receives needs the layer's cost; taking on
//!   more needs [`UPGRADE_HEADROOM`] times the extra cost, so an estimate wobbling around a
//!   layer's cost does not make it flap.

use crate::message::{LayerInfo, TrackId};

/// Taking on a layer not received now needs this much more budget than it costs.
pub const UPGRADE_HEADROOM: f64 = 1.25;
/// A layer this much shorter than the panel still counts as tall enough (a 460-pixel panel
/// takes the 480 layer, a 250-pixel one the 240 layer).
pub const HEIGHT_SLACK: f64 = 1.1;

/// One video a subscriber could receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Which track.
    pub track: TrackId,
    /// Higher goes first.
    pub priority: u8,
    /// How tall it appears on screen, in pixels (0: not in sight).
    pub height: u16,
    /// Its layers, smallest first.
    pub layers: Vec<LayerInfo>,
    /// The layer the subscriber receives now (or is switching to).
    pub current: Option<u8>,
}

/// The smallest layer at least as tall as a panel `height` pixels tall (the top one if none is).
pub fn layer_for_height(layers: &[LayerInfo], height: u16) -> Option<u8> {
    if layers.is_empty() || height == 0 {
        return None;
    }
    let wanted = f64::from(height) / HEIGHT_SLACK;
    let index = layers
        .iter()
        .position(|layer| f64::from(layer.height) >= wanted)
        .unwrap_or(layers.len() - 1);
    Some(index as u8)
}

/// The layer each candidate gets (in the candidates' order), within `budget_kbps` (`None`: no
/// limit).
pub fn allocate(budget_kbps: Option<u32>, candidates: &[Candidate]) -> Vec<Option<u8>> {
    let mut chosen: Vec<Option<u8>> = vec![None; candidates.len()];
    let goal: Vec<Option<u8>> = candidates
        .iter()
        .map(|c| layer_for_height(&c.layers, c.height))
        .collect();
    let Some(budget) = budget_kbps else {
        return goal;
    };
    let mut left = f64::from(budget);
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|i| goal[*i].is_some())
        .collect();
    // Priority, then the larger panel, then the track (so equal ones are served the same way
    // every time).
    order.sort_by(|a, b| {
        let (a, b) = (&candidates[*a], &candidates[*b]);
        b.priority
            .cmp(&a.priority)
            .then(b.height.cmp(&a.height))
            .then(a.track.cmp(&b.track))
    });
    let cost = |c: &Candidate, layer: u8| {
        f64::from(
            c.layers
                .get(usize::from(layer))
                .map_or(0, |l| l.kbps.max(1)),
        )
    };
    let factor = |c: &Candidate, layer: u8| {
        if c.current.is_some_and(|current| current >= layer) {
            1.0
        } else {
            UPGRADE_HEADROOM
        }
    };
    // Everyone in sight gets the smallest layer first.
    for &i in &order {
        let c = &candidates[i];
        let need = cost(c, 0);
        if left >= need * factor(c, 0) {
            left -= need;
            chosen[i] = Some(0);
        }
    }
    // Then one step at a time, round after round.
    loop {
        let mut stepped = false;
        for &i in &order {
            let (c, Some(now), Some(goal)) = (&candidates[i], chosen[i], goal[i]) else {
                continue;
            };
            if now >= goal {
                continue;
            }
            let next = now + 1;
            let extra = cost(c, next) - cost(c, now);
            if left >= extra.max(0.0) * factor(c, next) {
                left -= extra.max(0.0);
                chosen[i] = Some(next);
                stepped = true;
            }
        }
        if !stepped {
            break;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ParticipantId;

    fn layers() -> Vec<LayerInfo> {
        [(160, 120, 15, 80), (320, 240, 30, 250), (640, 480, 30, 700)]
            .into_iter()
            .map(|(width, height, fps, kbps)| LayerInfo {
                width,
                height,
                fps,
                kbps,
            })
            .collect()
    }

    fn video(n: u32, height: u16, priority: u8) -> Candidate {
        Candidate {
            track: TrackId {
                participant: ParticipantId(n),
                index: 0,
            },
            priority,
            height,
            layers: layers(),
            current: None,
        }
    }

    #[test]
    fn the_layer_follows_the_panel_height() {
        let l = layers();
        assert_eq!(layer_for_height(&l, 0), None);
        assert_eq!(layer_for_height(&l, 60), Some(0));
        assert_eq!(layer_for_height(&l, 130), Some(0));
        assert_eq!(layer_for_height(&l, 140), Some(1));
        assert_eq!(layer_for_height(&l, 250), Some(1));
        assert_eq!(layer_for_height(&l, 400), Some(2));
        assert_eq!(layer_for_height(&l, 1400), Some(2));
    }

    #[test]
    fn without_a_limit_everyone_gets_what_their_panel_needs() {
        let c = [video(1, 500, 0), video(2, 100, 0), video(3, 0, 0)];
        assert_eq!(allocate(None, &c), vec![Some(2), Some(0), None]);
    }

    #[test]
    fn everyone_in_sight_gets_something_before_anyone_gets_the_top() {
        // 4 x 80 = 320 for the smallest layers; then 170 each for the middle one.
        let c: Vec<_> = (1..=4).map(|n| video(n, 480, 0)).collect();
        let got = allocate(Some(600), &c);
        assert!(got.iter().all(|l| l.is_some()), "{got:?}");
        assert_eq!(got.iter().filter(|l| **l == Some(1)).count(), 1, "{got:?}");
    }

    #[test]
    fn priority_goes_first_and_what_does_not_fit_is_paused() {
        let c = [video(1, 480, 0), video(2, 480, 9), video(3, 480, 0)];
        // Room for two smallest layers only: the priority one and the next in order.
        assert_eq!(allocate(Some(200), &c), vec![Some(0), Some(0), None]);
        // The priority one steps up first.
        assert_eq!(allocate(Some(600), &c), vec![Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn keeping_a_layer_needs_its_cost_taking_one_needs_headroom() {
        let mut c = vec![video(1, 480, 0)];
        // 700 kb/s is exactly the top layer's cost: kept when already received, not taken.
        assert_eq!(allocate(Some(700), &c), vec![Some(1)]);
        c[0].current = Some(2);
        assert_eq!(allocate(Some(700), &c), vec![Some(2)]);
        c[0].current = None;
        assert_eq!(allocate(Some(880), &c), vec![Some(2)]);
    }
}
