//! What the viewer sees of everyone's video, told to the relay so it sends each picture at the
//! size it appears ([`ToRelay::View`]).
//!
//! The application reports every frame how tall each panel appears on screen; the relay hears
//! of it only when that changes which layer a panel needs (or its priority, or what is in
//! sight), once the change has held for [`DEBOUNCE`], and at most once per [`MIN_GAP`]. A panel
//! shrinking just below a layer's height keeps that layer until it is [`SHRINK_SLACK`] smaller,
//! so walking about does not make it flap.

use std::collections::HashMap;
use std::time::Duration;

use rotunda_proto::alloc::layer_for_height;
use rotunda_proto::{LayerInfo, ParticipantId, ToRelay, TrackId, ViewWant};
use serde::{Deserialize, Serialize};
use web_time::Instant;

/// A change must hold this long before the relay hears of it.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// Least time between two views sent.
pub const MIN_GAP: Duration = Duration::from_millis(250);
/// A panel keeps its layer until it is this much shorter than what would still need it.
pub const SHRINK_SLACK: f64 = 1.25;

/// How one participant's picture appears on the viewer's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelView {
    /// Whose picture.
    pub id: ParticipantId,
    /// How many pixels tall it appears (0: not in sight).
    pub height: u16,
    /// Higher goes first when the link cannot carry everything: the active speaker, a panel
    /// near the centre of the view, a focused one.
    pub priority: u8,
}

/// The viewer's side of the allocation: the newest view, and what the relay was told.
#[derive(Debug, Default)]
pub struct ViewState {
    panels: Vec<PanelView>,
    /// Per track: the layer and priority last told.
    sent: Option<HashMap<TrackId, (u8, u8)>>,
    changed_at: Option<Instant>,
    next_send: Option<Instant>,
    given: bool,
    /// Tracks asked for a larger layer than before, since when: the time to the first frame of
    /// it is what a viewer waits for a sharper picture.
    upgrades: HashMap<TrackId, (u8, Instant)>,
}

impl ViewState {
    /// The application's newest view.
    pub fn set(&mut self, panels: Vec<PanelView>) {
        self.panels = panels;
        self.given = true;
    }

    /// The application gave a view (until then the relay sends every video at its top layer).
    pub fn is_given(&self) -> bool {
        self.given
    }

    /// A frame of `layer` of `track` arrived: how long it took since a larger layer was asked
    /// for, if this is the first of it.
    pub fn arrived(&mut self, track: TrackId, layer: u8, now: Instant) -> Option<Duration> {
        let (wanted, since) = *self.upgrades.get(&track)?;
        if layer < wanted {
            return None;
        }
        self.upgrades.remove(&track);
        Some(now.saturating_duration_since(since))
    }

    /// The relay forgot what we told it (a new session).
    pub fn reset(&mut self) {
        self.upgrades.clear();
        self.sent = None;
        self.changed_at = None;
        self.next_send = None;
    }

    /// The message to send now, if the view changed enough and long enough; `tracks` are the
    /// video tracks we receive, with their layers.
    pub fn poll(
        &mut self,
        tracks: &HashMap<TrackId, Vec<LayerInfo>>,
        max_kbps: u32,
        now: Instant,
    ) -> Option<ToRelay> {
        if !self.given {
            return None; // the relay sends everything at its top layer
        }
        let by_id: HashMap<ParticipantId, &PanelView> =
            self.panels.iter().map(|p| (p.id, p)).collect();
        let mut wants = Vec::new();
        let mut signature = HashMap::new();
        for (track, layers) in tracks {
            let Some(panel) = by_id.get(&track.participant) else {
                continue;
            };
            let Some(mut layer) = layer_for_height(layers, panel.height) else {
                continue;
            };
            // Hysteresis: a panel a little shorter than its layer needs keeps it.
            if let Some((told, _)) = self.sent.as_ref().and_then(|sent| sent.get(track))
                && *told == layer + 1
            {
                let kept = (f64::from(panel.height) * SHRINK_SLACK).min(f64::from(u16::MAX));
                if layer_for_height(layers, kept as u16) == Some(*told) {
                    layer = *told;
                }
            }
            signature.insert(*track, (layer, panel.priority));
            // The height the relay sees is the layer's, so its choice matches ours.
            let height = layers
                .get(usize::from(layer))
                .map_or(panel.height, |l| l.height);
            wants.push(ViewWant {
                track: *track,
                height,
                priority: panel.priority,
            });
        }
        if self.sent.as_ref() == Some(&signature) {
            self.changed_at = None;
            return None;
        }
        let since = *self.changed_at.get_or_insert(now);
        // The first view goes at once; later changes once they held.
        if self.sent.is_some() && now.saturating_duration_since(since) < DEBOUNCE {
            return None;
        }
        if self.next_send.is_some_and(|at| now < at) {
            return None;
        }
        wants.sort_by_key(|w| w.track);
        for (track, (layer, _)) in &signature {
            let before = self
                .sent
                .as_ref()
                .and_then(|sent| sent.get(track))
                .map(|(l, _)| *l);
            if before.is_some_and(|before| *layer > before) {
                self.upgrades.insert(*track, (*layer, now));
            } else if before.is_some_and(|before| *layer < before) {
                self.upgrades.remove(track);
            }
        }
        self.upgrades
            .retain(|track, _| signature.contains_key(track));
        self.sent = Some(signature);
        self.changed_at = None;
        self.next_send = Some(now + MIN_GAP);
        Some(ToRelay::View { wants, max_kbps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<LayerInfo> {
        [(160, 120), (320, 240), (640, 480)]
            .into_iter()
            .map(|(width, height)| LayerInfo {
                width,
                height,
                fps: 30,
                kbps: 100,
            })
            .collect()
    }

    fn tracks(n: u32) -> HashMap<TrackId, Vec<LayerInfo>> {
        (1..=n)
            .map(|p| {
                (
                    TrackId {
                        participant: ParticipantId(p),
                        index: 0,
                    },
                    layers(),
                )
            })
            .collect()
    }

    fn panel(id: u32, height: u16) -> PanelView {
        PanelView {
            id: ParticipantId(id),
            height,
            priority: 0,
        }
    }

    fn heights(message: Option<ToRelay>) -> Vec<u16> {
        match message {
            Some(ToRelay::View { wants, .. }) => wants.iter().map(|w| w.height).collect(),
            other => panic!("no view: {other:?}"),
        }
    }

    #[test]
    fn nothing_is_said_until_the_application_gives_a_view() {
        let mut view = ViewState::default();
        assert_eq!(view.poll(&tracks(2), 0, Instant::now()), None);
    }

    #[test]
    fn the_first_view_goes_at_once_then_only_layer_changes_that_hold() {
        let t0 = Instant::now();
        let tracks = tracks(2);
        let mut view = ViewState::default();
        view.set(vec![panel(1, 100), panel(2, 400)]);
        assert_eq!(heights(view.poll(&tracks, 0, t0)), [120, 480]);
        // Walking about within the same layers: nothing to say.
        view.set(vec![panel(1, 110), panel(2, 380)]);
        assert_eq!(view.poll(&tracks, 0, t0 + MIN_GAP), None);
        // A panel grows into the next layer: said once it held for the debounce.
        let t1 = t0 + Duration::from_secs(1);
        view.set(vec![panel(1, 200), panel(2, 380)]);
        assert_eq!(view.poll(&tracks, 0, t1), None);
        assert_eq!(view.poll(&tracks, 0, t1 + DEBOUNCE / 2), None);
        assert_eq!(heights(view.poll(&tracks, 0, t1 + DEBOUNCE)), [240, 480]);
        // A flicker back and forth within the debounce says nothing.
        let t2 = t1 + Duration::from_secs(1);
        view.set(vec![panel(1, 200), panel(2, 0)]);
        assert_eq!(view.poll(&tracks, 0, t2), None);
        view.set(vec![panel(1, 200), panel(2, 380)]);
        assert_eq!(view.poll(&tracks, 0, t2 + DEBOUNCE), None);
        // Out of sight: left out of the view.
        view.set(vec![panel(1, 200), panel(2, 0)]);
        assert_eq!(view.poll(&tracks, 0, t2 + DEBOUNCE * 2), None);
        assert_eq!(heights(view.poll(&tracks, 0, t2 + DEBOUNCE * 3)), [240]);
    }

    #[test]
    fn the_wait_for_a_larger_layer_is_timed_from_asking_to_its_first_frame() {
        let t0 = Instant::now();
        let tracks = tracks(1);
        let track = *tracks.keys().next().expect("a track");
        let mut view = ViewState::default();
        view.set(vec![panel(1, 100)]);
        assert!(view.poll(&tracks, 0, t0).is_some());
        assert_eq!(view.arrived(track, 0, t0), None, "nothing was asked for");
        let t1 = t0 + Duration::from_secs(1);
        view.set(vec![panel(1, 450)]);
        assert_eq!(view.poll(&tracks, 0, t1), None);
        assert!(view.poll(&tracks, 0, t1 + DEBOUNCE).is_some());
        let asked = t1 + DEBOUNCE;
        assert_eq!(
            view.arrived(track, 0, asked + Duration::from_millis(50)),
            None
        );
        assert_eq!(
            view.arrived(track, 2, asked + Duration::from_millis(180)),
            Some(Duration::from_millis(180))
        );
        assert_eq!(
            view.arrived(track, 2, asked + Duration::from_millis(200)),
            None
        );
    }

    #[test]
    fn a_panel_shrinking_a_little_keeps_its_layer() {
        let t0 = Instant::now();
        let tracks = tracks(1);
        let mut view = ViewState::default();
        view.set(vec![panel(1, 300)]);
        assert_eq!(heights(view.poll(&tracks, 0, t0)), [480]);
        // 250 px alone would take the 240 layer; within the slack it keeps the 480 one.
        view.set(vec![panel(1, 250)]);
        assert_eq!(view.poll(&tracks, 0, t0 + Duration::from_secs(1)), None);
        view.set(vec![panel(1, 160)]);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(view.poll(&tracks, 0, t1), None);
        assert_eq!(heights(view.poll(&tracks, 0, t1 + DEBOUNCE)), [240]);
    }
}
