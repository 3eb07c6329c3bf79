//! Where panels stand: a ring around the room's centre, wide enough that neighbours never
//! overlap, every slot facing the centre.

use std::f32::consts::TAU;

use bevy::prelude::*;
use rotunda_proto::Pose;

/// Panel width in metres (4:3 video).
pub const PANEL_WIDTH: f32 = 1.6;
/// Panel height in metres.
pub const PANEL_HEIGHT: f32 = 1.2;
/// Height of a panel's centre above the floor.
pub const PANEL_CENTER_Y: f32 = 1.55;
/// Height of the local viewer's eyes.
pub const EYE_HEIGHT: f32 = 1.6;
/// Free space between neighbouring panels along the ring.
pub const GAP: f32 = 0.5;
/// Smallest ring radius.
pub const MIN_RADIUS: f32 = 3.5;
/// The ring's radius for two: they face each other across a smaller table.
pub const PAIR_RADIUS: f32 = 2.2;
/// The room's radius: walls stand here.
pub const ROOM_RADIUS: f32 = 14.0;

/// The ring's radius for `count` participants: the chord between neighbours holds a panel and a
/// gap.
pub fn radius(count: usize) -> f32 {
    if count < 2 {
        return MIN_RADIUS;
    }
    if count == 2 {
        return PAIR_RADIUS;
    }
    let chord = PANEL_WIDTH + GAP;
    let r = chord / (2.0 * (std::f32::consts::PI / count as f32).sin());
    r.max(MIN_RADIUS)
}

/// The slots for `count` participants: evenly around the ring, facing the centre (a panel's
/// front, +Z, points at the centre).
pub fn ring(count: usize) -> Vec<Transform> {
    let r = radius(count);
    let centre = Vec3::new(0.0, PANEL_CENTER_Y, 0.0);
    (0..count)
        .map(|i| {
            let angle = i as f32 / count as f32 * TAU;
            let position = Vec3::new(r * angle.sin(), PANEL_CENTER_Y, r * angle.cos());
            // looking_at points -Z at the target; aim it away so +Z faces the centre.
            Transform::from_translation(position).looking_at(2.0 * position - centre, Vec3::Y)
        })
        .collect()
}

/// Where a participant's panel stands for a pose it sent (its eyes): the same spot, the panel's
/// centre at panel height, kept inside the room.
pub fn panel_position(pose: Pose) -> Vec3 {
    let [x, _, z] = pose.position;
    let flat = Vec2::new(x, z);
    let limit = ROOM_RADIUS - 1.0;
    let flat = if flat.length() > limit {
        flat.normalize_or_zero() * limit
    } else {
        flat
    };
    Vec3::new(flat.x, PANEL_CENTER_Y, flat.y)
}

/// The room camera's vertical field of view in a wide view.
pub const VERTICAL_FOV: f32 = 60.0 * std::f32::consts::PI / 180.0;
/// The least horizontal field of view the camera keeps however narrow its view: with it, a ring
/// of three (the others ±34° off centre, counting their panels' width) stays in sight.
pub const MIN_HORIZONTAL_FOV: f32 = 80.0 * std::f32::consts::PI / 180.0;
/// The most the vertical field of view opens up to, in a tall, narrow view.
pub const MAX_VERTICAL_FOV: f32 = 100.0 * std::f32::consts::PI / 180.0;

/// The vertical field of view for a view `aspect` (width / height) wide: [`VERTICAL_FOV`],
/// opened up in narrow views so that the horizontal one stays at least [`MIN_HORIZONTAL_FOV`]
/// (up to [`MAX_VERTICAL_FOV`]).
pub fn vertical_fov(aspect: f32) -> f32 {
    if !aspect.is_finite() || aspect <= 0.0 {
        return VERTICAL_FOV;
    }
    let needed = 2.0 * ((MIN_HORIZONTAL_FOV / 2.0).tan() / aspect).atan();
    needed.clamp(VERTICAL_FOV, MAX_VERTICAL_FOV)
}

/// The horizontal field of view of a camera with vertical field of view `fov` and `aspect`.
pub fn horizontal_fov(fov: f32, aspect: f32) -> f32 {
    2.0 * ((fov / 2.0).tan() * aspect).atan()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degrees(radians: f32) -> f32 {
        radians.to_degrees()
    }

    #[test]
    fn wide_views_keep_the_usual_field_of_view() {
        assert_eq!(vertical_fov(16.0 / 9.0), VERTICAL_FOV);
        assert_eq!(vertical_fov(1280.0 / 697.0), VERTICAL_FOV);
    }

    #[test]
    fn narrow_views_open_up_to_keep_the_ring_in_sight() {
        for aspect in [1.2, 1.0, 0.8] {
            let fov = vertical_fov(aspect);
            assert!(fov > VERTICAL_FOV, "aspect {aspect}: {}°", degrees(fov));
            let across = degrees(horizontal_fov(fov, aspect));
            assert!((across - 80.0).abs() < 0.01, "aspect {aspect}: {across}°");
        }
    }

    #[test]
    fn very_narrow_views_stop_opening_up() {
        assert_eq!(vertical_fov(0.3), MAX_VERTICAL_FOV);
        assert!(degrees(horizontal_fov(vertical_fov(0.3), 0.3)) < 80.0);
    }

    #[test]
    fn degenerate_views_get_the_usual_field_of_view() {
        for aspect in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(vertical_fov(aspect), VERTICAL_FOV);
        }
    }

    #[test]
    fn in_a_ring_of_three_the_others_fit_the_least_field_of_view() {
        // Everyone stands on one circle (at their poses); from there the others are seen 30°
        // off the centre, whatever the circle's size, their panels' half width a little more.
        let ring = ring(3);
        let eye = ring[0].translation;
        let centre = Vec3::new(0.0, PANEL_CENTER_Y, 0.0);
        let ahead = (centre - eye).normalize();
        for other in &ring[1..] {
            let to = other.translation - eye;
            let off = degrees(ahead.angle_between(to.normalize()));
            let half_panel = degrees((PANEL_WIDTH / 2.0 / to.length()).atan());
            assert!(off + half_panel < degrees(MIN_HORIZONTAL_FOV) / 2.0);
        }
    }
}
