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
