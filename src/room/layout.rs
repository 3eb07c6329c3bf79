//! Where panels stand: a ring around the room's centre, wide enough that neighbours never
//! overlap, every slot facing the centre; and whether a ray from the eye meets a panel.

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
/// The walls' height: the ceiling is here.
pub const WALL_HEIGHT: f32 = 6.0;

/// The widest ring: far enough inside the walls for a viewer to stand behind their panel.
pub const MAX_RING_RADIUS: f32 = 11.5;
/// From one row of panels to the next above it: a panel and its name tag.
pub const ROW_RISE: f32 = 1.8;
/// Rows of full-size panels the walls hold.
pub const MAX_ROWS: usize = 3;
/// The smallest panels get in a crowd: a ring of this scale holds more than the protocol's
/// 256 participants.
pub const MIN_PANEL_SCALE: f32 = 0.55;
/// Panels shrink in steps of this much until the ring holds everyone.
const SCALE_STEP: f32 = 0.05;

/// The ring's radius for `count` participants: the chord between neighbours holds a panel and a
/// gap, up to [`MAX_RING_RADIUS`] (beyond it, the ring grows in rows).
pub fn radius(count: usize) -> f32 {
    if count < 2 {
        return MIN_RADIUS;
    }
    if count == 2 {
        return PAIR_RADIUS;
    }
    let chord = PANEL_WIDTH + GAP;
    let r = chord / (2.0 * (std::f32::consts::PI / count as f32).sin());
    r.clamp(MIN_RADIUS, MAX_RING_RADIUS)
}

/// Panels one row of the widest ring holds side by side.
pub fn per_row() -> usize {
    per_row_at(1.0)
}

/// Panels of `scale` one row of the widest ring holds side by side.
fn per_row_at(scale: f32) -> usize {
    // Neighbours a chord apart: n of them when the chord's angle fits n times around.
    let chord = (PANEL_WIDTH + GAP) * scale;
    (std::f32::consts::PI / (chord / (2.0 * MAX_RING_RADIUS)).asin()) as usize
}

/// Rows of panels of `scale` the walls hold, the first at [`PANEL_CENTER_Y`].
fn rows_at(scale: f32) -> usize {
    let room = WALL_HEIGHT - PANEL_CENTER_Y - PANEL_HEIGHT * scale / 2.0;
    1 + (room / (ROW_RISE * scale)).floor().max(0.0) as usize
}

/// How big panels are in a ring of `count`: full size while [`MAX_ROWS`] rows hold everyone
/// (102), then smaller, so that more rows of more panels fit between floor and ceiling (150 at
/// 0.7, 200 at 0.65), down to [`MIN_PANEL_SCALE`].
pub fn panel_scale(count: usize) -> f32 {
    let mut scale = 1.0;
    while scale > MIN_PANEL_SCALE + 1e-3 && rows_at(scale) * per_row_at(scale) < count {
        scale -= SCALE_STEP;
    }
    scale.max(MIN_PANEL_SCALE)
}

/// The slots for `count` participants: evenly around the ring, facing the centre (a panel's
/// front, +Z, points at the centre). A ring too wide for the room stands in rows, one above
/// the other (each row shifted half a slot from the one below), as many as the walls hold;
/// beyond [`MAX_ROWS`] full rows (102 places) the panels get smaller ([`panel_scale`], the
/// slot's scale) and more rows fit. The protocol's 256 fit without overlapping.
pub fn ring(count: usize) -> Vec<Transform> {
    let r = radius(count);
    let scale = panel_scale(count);
    let rows = count
        .div_ceil(per_row_at(scale))
        .clamp(1, rows_at(scale).max(1));
    let mut slots = Vec::with_capacity(count);
    for row in 0..rows {
        // Spread evenly: the lower rows take one more when the count does not divide.
        let in_row = count / rows + usize::from(row < count % rows);
        let y = PANEL_CENTER_Y + row as f32 * ROW_RISE * scale;
        let shift = if row % 2 == 1 { 0.5 } else { 0.0 };
        let centre = Vec3::new(0.0, y, 0.0);
        for i in 0..in_row {
            let angle = (i as f32 + shift) / in_row as f32 * TAU;
            let position = Vec3::new(r * angle.sin(), y, r * angle.cos());
            // looking_at points -Z at the target; aim it away so +Z faces the centre.
            slots.push(
                Transform::from_translation(position)
                    .looking_at(2.0 * position - centre, Vec3::Y)
                    .with_scale(Vec3::splat(scale)),
            );
        }
    }
    slots
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

/// How far along `ray` it meets a flat rectangle `size` wide and tall (before the transform's
/// scale), centred at `transform` and facing along its Z axis; `None` when it passes beside.
pub fn ray_meets_rect(ray: Ray3d, transform: &GlobalTransform, size: Vec2) -> Option<f32> {
    let (scale, rotation, centre) = transform.to_scale_rotation_translation();
    let distance = ray.intersect_plane(centre, InfinitePlane3d::new(rotation * Vec3::Z))?;
    let local = rotation.inverse() * (ray.get_point(distance) - centre);
    let half = size * scale.truncate().abs() / 2.0;
    (local.x.abs() <= half.x && local.y.abs() <= half.y).then_some(distance)
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

    #[test]
    fn a_ring_of_any_size_stands_inside_the_walls_without_overlapping() {
        // Up to the protocol's most participants.
        for count in 1..=rotunda_proto::limits::MAX_PARTICIPANTS {
            let slots = ring(count);
            assert_eq!(slots.len(), count);
            let scale = slots[0].scale.x;
            assert_eq!(scale, panel_scale(count));
            for (i, slot) in slots.iter().enumerate() {
                let p = slot.translation;
                // A viewer stands behind their panel, inside the walls.
                assert!(p.xz().length() <= MAX_RING_RADIUS + 1e-3, "{count}: {p}");
                assert!(
                    p.y + PANEL_HEIGHT * scale / 2.0 < WALL_HEIGHT,
                    "{count}: {p}"
                );
                // Facing the centre (+Z toward it).
                let facing = slot.rotation * Vec3::Z;
                let inward = (Vec3::new(0.0, p.y, 0.0) - p).normalize_or_zero();
                if count > 1 {
                    assert!(facing.dot(inward) > 0.999, "{count}: {facing} at {p}");
                }
                for other in &slots[i + 1..] {
                    let q = other.translation;
                    let apart_across = (p - q).xz().length() >= (PANEL_WIDTH + GAP) * scale - 1e-3;
                    let apart_up = (p.y - q.y).abs() >= ROW_RISE * scale - 1e-3;
                    assert!(apart_across || apart_up, "{count}: {p} and {q} overlap");
                }
            }
        }
    }

    #[test]
    fn a_small_ring_is_one_row_and_a_big_one_fills_rows_evenly() {
        let rows = |count: usize| {
            let mut heights: Vec<i32> = ring(count)
                .iter()
                .map(|slot| (slot.translation.y * 100.0).round() as i32)
                .collect();
            heights.sort_unstable();
            heights.dedup();
            heights.len()
        };
        assert_eq!(rows(per_row()), 1);
        assert_eq!(rows(per_row() + 1), 2);
        assert_eq!(rows(64), 2);
        assert_eq!(rows(MAX_ROWS * per_row()), MAX_ROWS);
        // 64 in two rows: 32 each.
        let low = ring(64)
            .iter()
            .filter(|slot| slot.translation.y < PANEL_CENTER_Y + 0.1)
            .count();
        assert_eq!(low, 32);
        // Past three full rows, smaller panels in four.
        assert_eq!(panel_scale(MAX_ROWS * per_row()), 1.0);
        assert!(
            (panel_scale(150) - 0.7).abs() < 1e-3,
            "{}",
            panel_scale(150)
        );
        assert!(
            (panel_scale(200) - 0.65).abs() < 1e-3,
            "{}",
            panel_scale(200)
        );
        assert_eq!(rows(150), 4);
        assert_eq!(rows(200), 4);
    }
}
