//! How tall each panel appears on screen, for the relay's choice of video sizes
//! ([`PanelView`]): the window measures its real camera and panels; `rotunda bot --view WxH`
//! stands where a window of that size would in the ring ([`ring_view`]) and measures the same
//! way, with the same layout.

use bevy::prelude::*;
use rotunda_engine::PanelView;
use rotunda_proto::ParticipantId;

use super::avatar::place_in_ring;
use super::layout::{self, PANEL_HEIGHT};
use super::panel::{PanelParts, TINY_PIXELS};
use crate::AppSystems;
use crate::audio::Ears;
use crate::call::{Call, CallRejoined, Command};
use crate::participants::{Departing, Participant, Speaking};

/// The window's view goes to the call.
pub(super) fn plugin(app: &mut App) {
    app.init_resource::<MeasuredView>()
        .init_resource::<Pinned>()
        .add_systems(
            Update,
            (measure_view, pin_view, report_view)
                .chain()
                .in_set(AppSystems::Present),
        );
}

/// Priority of a pinned person's picture: above any speaker's or the middle of the view's.
pub const PIN_PRIORITY: u8 = 8;

/// The person pinned: their picture goes first, at its top size.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pinned(pub Option<ParticipantId>);

/// The pinned person's picture first and whole in the view the relay hears.
pub fn pin_view(pinned: Res<Pinned>, mut measured: ResMut<MeasuredView>) {
    let (Some(id), Some(view)) = (pinned.0, measured.0.as_mut()) else {
        return;
    };
    for panel in view.iter_mut().filter(|panel| panel.id == id) {
        panel.priority = panel.priority.saturating_add(PIN_PRIORITY);
        panel.height = u16::MAX;
    }
}

/// How tall every panel appears through the room's camera, as last measured (`None` before
/// there is a camera to measure with).
#[derive(Resource, Debug, Default)]
pub struct MeasuredView(pub Option<Vec<PanelView>>);

/// Measures how tall every panel appears through the room's camera ([`Ears`]): its real
/// projection and viewport, each panel's place and size, whether it was drawn at all.
pub fn measure_view(
    cameras: Query<(&Camera, &GlobalTransform), With<Ears>>,
    panels: Query<(&Participant, &GlobalTransform, &PanelParts, &Speaking), Without<Departing>>,
    screens: Query<&ViewVisibility>,
    mut measured: ResMut<MeasuredView>,
) {
    let Some((camera, eye)) = cameras.iter().next() else {
        return;
    };
    let scale = camera.target_scaling_factor().unwrap_or(1.0);
    let width = camera
        .logical_viewport_size()
        .map_or(1.0, |size| size.x.max(1.0));
    let mut view: Vec<PanelView> = panels
        .iter()
        .map(|(participant, transform, parts, speaking)| {
            let in_view = screens.get(parts.screen).is_ok_and(|v| v.get());
            let centre = transform.translation();
            // (Panels are smaller in a crowd: their scale.)
            let half = Vec3::Y * (PANEL_HEIGHT / 2.0 * transform.scale().y);
            let (tall, x) = match (
                camera.world_to_viewport(eye, centre + half),
                camera.world_to_viewport(eye, centre - half),
            ) {
                (Ok(top), Ok(bottom)) => ((bottom.y - top.y).abs(), top.x / width * 2.0 - 1.0),
                _ => (0.0, 0.0),
            };
            let speaks = speaking.0 > SPEAKING_LEVEL;
            panel_view(participant.id, tall * scale, in_view, x, speaks)
        })
        .collect();
    view.sort_by_key(|panel| panel.id);
    measured.0 = Some(view);
}

/// Hands the measured view to the call, which tells the relay when that changes which size of
/// a picture is needed. It is handed on when a panel changed by a tenth (or came into or out of
/// sight, or its priority changed), and anew after a rejoin.
fn report_view(
    call: Option<Res<Call>>,
    mut rejoined: MessageReader<CallRejoined>,
    measured: Res<MeasuredView>,
    mut told: Local<ViewTold>,
) {
    let (Some(call), Some(view)) = (call, &measured.0) else {
        return;
    };
    let forgotten = rejoined.read().last().is_some();
    // A full command queue refuses it: it goes again next frame.
    if (forgotten || told.differs(view)) && call.send(Command::View(view.clone())) {
        told.panels = view.clone();
    }
}

/// The view last handed to the call.
#[derive(Default)]
struct ViewTold {
    panels: Vec<PanelView>,
}

impl ViewTold {
    fn differs(&self, view: &[PanelView]) -> bool {
        self.panels.len() != view.len()
            || self.panels.iter().zip(view).any(|(a, b)| {
                a.id != b.id
                    || a.priority != b.priority
                    || (a.height == 0) != (b.height == 0)
                    || f32::from(a.height.abs_diff(b.height)) > f32::from(a.height) * 0.1
            })
    }
}

/// A voice this loud (RMS, 0..1) counts as speaking.
pub const SPEAKING_LEVEL: f32 = 0.02;
/// Priority of a panel whose participant speaks.
pub const SPEAKING_PRIORITY: u8 = 2;
/// Priority added for a panel near the middle of the view.
pub const CENTRE_PRIORITY: u8 = 1;
/// How far from the middle (as a share of the half width) a panel counts as near it.
const CENTRE: f32 = 0.35;

/// One panel as the viewer sees it: pixels tall (0 when out of sight), its horizontal place in
/// the view (-1 left edge, 1 right edge), whether its participant speaks.
pub fn panel_view(
    id: ParticipantId,
    tall: f32,
    in_view: bool,
    x: f32,
    speaking: bool,
) -> PanelView {
    let seen = in_view && tall >= TINY_PIXELS;
    let mut priority = 0;
    if seen && x.abs() < CENTRE {
        priority += CENTRE_PRIORITY;
    }
    if speaking {
        priority += SPEAKING_PRIORITY;
    }
    PanelView {
        id,
        height: if seen {
            tall.round().clamp(0.0, f32::from(u16::MAX)) as u16
        } else {
            0
        },
        priority,
    }
}

/// What a window `size` pixels large, standing at our place in a ring of `ids` and looking at
/// its centre, sees of everyone else's panel (each at its ring slot).
pub fn ring_view(ids: &[ParticipantId], you: ParticipantId, size: Vec2) -> Vec<PanelView> {
    let Some((eye, yaw)) = place_in_ring(ids, you) else {
        return Vec::new();
    };
    let aspect = size.x / size.y.max(1.0);
    let fov = layout::vertical_fov(aspect);
    let camera = Transform::from_translation(eye).with_rotation(Quat::from_rotation_y(yaw));
    let clip_from_world =
        Mat4::perspective_rh(fov, aspect, 0.1, 1000.0) * camera.to_matrix().inverse();
    let slots = layout::ring(ids.len());
    let project = |p: Vec3| {
        let clip = clip_from_world * p.extend(1.0);
        (clip.w > 0.0).then(|| clip.xyz() / clip.w)
    };
    ids.iter()
        .zip(&slots)
        .filter(|(id, _)| **id != you)
        .map(|(id, slot)| {
            let centre = slot.translation;
            let half = Vec3::Y * (PANEL_HEIGHT / 2.0 * slot.scale.y);
            match (project(centre + half), project(centre - half)) {
                (Some(top), Some(bottom)) => {
                    let tall = (top.y - bottom.y).abs() / 2.0 * size.y;
                    // In sight when some of it is inside the view's frame.
                    let half_width =
                        (layout::PANEL_WIDTH / 2.0 * slot.scale.x) / (centre - eye).length();
                    let margin = half_width / (fov / 2.0).tan() / aspect;
                    let x = (top.x + bottom.x) / 2.0;
                    let in_view = x.abs() <= 1.0 + margin && bottom.y <= 1.0 && top.y >= -1.0;
                    panel_view(*id, tall, in_view, x, false)
                }
                _ => panel_view(*id, 0.0, false, 0.0, false),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<ParticipantId> {
        (1..=n).map(ParticipantId).collect()
    }

    #[test]
    fn in_a_small_ring_everyone_is_seen_and_large() {
        let view = ring_view(&ids(4), ParticipantId(1), Vec2::new(1280.0, 720.0));
        assert_eq!(view.len(), 3);
        for panel in &view {
            assert!(panel.height > 60, "{panel:?}");
        }
        // The one across the ring is in the middle.
        assert!(view.iter().any(|p| p.priority == CENTRE_PRIORITY));
    }

    #[test]
    fn in_a_big_ring_those_behind_are_not_seen_and_the_rest_are_small() {
        let view = ring_view(&ids(150), ParticipantId(1), Vec2::new(1280.0, 720.0));
        assert_eq!(view.len(), 149);
        let seen: Vec<_> = view.iter().filter(|p| p.height > 0).collect();
        assert!(seen.len() > 10 && seen.len() < 120, "{} seen", seen.len());
        // Across a ring 23 m wide, everyone seen is small: the smallest layer will do.
        assert!(seen.iter().all(|p| p.height < 120), "{seen:?}");
    }

    #[test]
    fn a_bigger_window_sees_the_same_panels_taller() {
        let small = ring_view(&ids(8), ParticipantId(3), Vec2::new(640.0, 360.0));
        let large = ring_view(&ids(8), ParticipantId(3), Vec2::new(1920.0, 1080.0));
        for (s, l) in small.iter().zip(&large) {
            assert_eq!(s.id, l.id);
            assert!(l.height >= s.height * 2, "{s:?} {l:?}");
        }
    }

    #[test]
    fn a_speaker_goes_first_and_a_tiny_panel_gets_nothing() {
        let p = panel_view(ParticipantId(1), 100.0, true, 0.9, true);
        assert_eq!((p.height, p.priority), (100, SPEAKING_PRIORITY));
        let p = panel_view(ParticipantId(1), TINY_PIXELS - 1.0, true, 0.0, false);
        assert_eq!((p.height, p.priority), (0, 0));
        let p = panel_view(ParticipantId(1), 300.0, false, 0.0, false);
        assert_eq!(p.height, 0);
    }
}
