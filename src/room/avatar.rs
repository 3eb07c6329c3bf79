//! The local viewer: placed at its slot in the ring on joining, moved with WASD or the arrows,
//! turned by dragging with the mouse; its pose goes to the others at most 30 times a second.
//! Also the self-view, showing what the camera sends.

use std::time::Duration;

use bevy::input::mouse::AccumulatedMouseMotion;
use bevy::prelude::*;
use bevy_egui::input::EguiWantsInput;
use rotunda_proto::{ParticipantId, Pose};

use super::layout::{self, EYE_HEIGHT, ROOM_RADIUS};
use super::panel::{VideoMaterial, VideoSurface};
use crate::AppSystems;
use crate::call::Command;
use crate::call::{Call, CallJoined, CallRejoined};
use crate::devices::Devices;
use crate::participants::Roster;
use crate::state::Screen;

/// Walking speed, m/s.
const SPEED: f32 = 2.5;
/// Turning per pixel dragged, radians.
const TURN: f32 = 0.004;
/// How far behind its ring slot the viewer starts, in ring radii.
const BACK_STEP: f32 = 1.0;
/// The least step back from the ring worth taking; with less room, the viewer steps in.
const MIN_BACK_STEP: f32 = 2.0;
/// How far into a wide ring the viewer stands (m).
const IN_STEP: f32 = 3.0;
/// Shortest time between two poses sent (20 Hz; others interpolate between them).
pub const POSE_INTERVAL: Duration = Duration::from_millis(50);

pub(super) fn plugin(app: &mut App) {
    app.add_systems(
        Update,
        (
            keep_place.after(AppSystems::Update).before(move_avatar),
            move_avatar.after(AppSystems::Update),
            publish_pose.in_set(AppSystems::Present),
            show_self_view.in_set(AppSystems::Present),
        )
            .run_if(in_state(Screen::InRoom).or_else(in_state(Screen::Connecting))),
    );
}

/// The viewer's heading and pitch, and where the ring would have it stand.
#[derive(Component, Debug, Default)]
pub struct Avatar {
    /// Heading, radians.
    pub yaw: f32,
    /// Pitch, radians.
    pub pitch: f32,
    /// The spot the ring gives us (position, heading), followed until the user moves.
    pub place: Option<(Vec3, f32)>,
    /// The ring size `place` was worked out for.
    pub placed_for: usize,
    /// The user walked or looked around: the ring no longer moves us.
    pub moved: bool,
}

impl Avatar {
    fn rotation(&self) -> Quat {
        Quat::from_euler(EulerRot::YXZ, self.yaw, self.pitch, 0.0)
    }

    /// Moves the viewer (`transform`) a `blend` share of the way to `position`, turning the
    /// shorter way toward heading `yaw` (and toward `pitch`, when given).
    pub fn glide(
        &mut self,
        transform: &mut Transform,
        (position, yaw, pitch): (Vec3, f32, Option<f32>),
        blend: f32,
    ) {
        transform.translation = transform.translation.lerp(position, blend);
        let turn = (yaw - self.yaw + std::f32::consts::PI).rem_euclid(std::f32::consts::TAU)
            - std::f32::consts::PI;
        self.yaw += turn * blend;
        if let Some(pitch) = pitch {
            self.pitch += (pitch - self.pitch) * blend;
        }
        transform.rotation = self.rotation();
    }
}

/// How fast the viewer glides to a new place in the ring (1/s).
const GLIDE_RATE: f32 = 3.0;

/// Our spot for a ring of `ids`: behind our slot, far enough that a small ring is all in view
/// (and inside the walls), facing the centre.
pub fn place_in_ring(ids: &[ParticipantId], you: ParticipantId) -> Option<(Vec3, f32)> {
    let slots = layout::ring(ids.len());
    let slot = ids
        .iter()
        .position(|id| *id == you)
        .and_then(|i| slots.get(i))?;
    let ring = slot.translation.xz().length();
    let out = Vec3::new(slot.translation.x, 0.0, slot.translation.z).normalize_or_zero();
    // (With one other, a step back is enough: they stand right across.)
    let step = if ids.len() <= 2 {
        0.5
    } else {
        ring * BACK_STEP
    };
    let behind = (ROOM_RADIUS - 2.0 - ring).max(0.0);
    // A ring near the walls leaves no room to step back: the neighbours' panels would fill the
    // view's sides. Step into the ring instead, past them. (A small ring's short step back is
    // no reason to: two people stepped past the centre and stood with their backs to each
    // other.)
    let distance = if behind < MIN_BACK_STEP {
        ring - IN_STEP
    } else {
        ring + step.min(behind)
    };
    let position = out * distance + Vec3::Y * EYE_HEIGHT;
    // Facing the centre from the slot's side, wherever along that line we stand.
    let yaw = out.x.atan2(out.z);
    Some((position, yaw))
}

/// On joining, stand at our place in the ring, looking at the centre; while the user has not
/// moved, glide to the new place when people come or go.
fn keep_place(
    time: Res<Time>,
    mut joined: MessageReader<CallJoined>,
    mut rejoined: MessageReader<CallRejoined>,
    roster: Res<Roster>,
    mut avatars: Query<(&mut Transform, &mut Avatar)>,
) {
    let just_joined = joined.read().last().is_some();
    // Back after a lost connection: our place may have changed with our id; glide to it.
    let rejoined = rejoined.read().last().is_some();
    let Some(you) = roster.you else {
        return;
    };
    for (mut transform, mut avatar) in &mut avatars {
        if just_joined {
            avatar.moved = false;
            avatar.placed_for = 0;
        }
        if rejoined {
            avatar.placed_for = 0;
        }
        if avatar.moved {
            continue;
        }
        let present = roster.entities.len() + 1; // the others, and us
        if avatar.placed_for != present {
            let ids = roster.ids();
            avatar.placed_for = present;
            avatar.place = place_in_ring(&ids, you);
            if just_joined && let Some((position, yaw)) = avatar.place {
                // Arriving: straight there.
                transform.translation = position;
                avatar.yaw = yaw;
                avatar.pitch = -0.12;
                debug!(present, %position, "standing at our place in the ring");
            }
        }
        let Some((position, yaw)) = avatar.place else {
            continue;
        };
        let blend = 1.0 - (-GLIDE_RATE * time.delta_secs()).exp();
        avatar.glide(&mut transform, (position, yaw, None), blend);
    }
}

fn move_avatar(
    time: Res<Time>,
    keys: Res<ButtonInput<KeyCode>>,
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    wants: Option<Res<EguiWantsInput>>,
    mut avatars: Query<(&mut Transform, &mut Avatar)>,
) {
    let typing = wants.as_ref().is_some_and(|w| w.wants_keyboard_input());
    let over_ui = wants.as_ref().is_some_and(|w| w.wants_pointer_input());
    for (mut transform, mut avatar) in &mut avatars {
        if buttons.pressed(MouseButton::Left) && !over_ui && motion.delta != Vec2::ZERO {
            avatar.yaw -= motion.delta.x * TURN;
            avatar.pitch = (avatar.pitch - motion.delta.y * TURN).clamp(-1.2, 1.2);
            avatar.moved = true;
        }
        let mut walk = Vec2::ZERO;
        if !typing {
            let pressed = |a: KeyCode, b: KeyCode| keys.pressed(a) || keys.pressed(b);
            if pressed(KeyCode::KeyW, KeyCode::ArrowUp) {
                walk.y += 1.0;
            }
            if pressed(KeyCode::KeyS, KeyCode::ArrowDown) {
                walk.y -= 1.0;
            }
            if pressed(KeyCode::KeyD, KeyCode::ArrowRight) {
                walk.x += 1.0;
            }
            if pressed(KeyCode::KeyA, KeyCode::ArrowLeft) {
                walk.x -= 1.0;
            }
        }
        transform.rotation = avatar.rotation();
        if walk != Vec2::ZERO {
            avatar.moved = true;
            let forward = Vec3::new(-avatar.yaw.sin(), 0.0, -avatar.yaw.cos());
            let right = Vec3::new(-forward.z, 0.0, forward.x);
            let step =
                (forward * walk.y + right * walk.x).normalize_or_zero() * SPEED * time.delta_secs();
            let mut next = transform.translation + step;
            let flat = Vec2::new(next.x, next.z);
            let limit = ROOM_RADIUS - 1.5;
            if flat.length() > limit {
                let flat = flat.normalize_or_zero() * limit;
                next = Vec3::new(flat.x, next.y, flat.y);
            }
            transform.translation = next;
        }
    }
}

/// Sends our pose when it changed, at most every [`POSE_INTERVAL`].
fn publish_pose(
    time: Res<Time>,
    call: Option<Res<Call>>,
    avatars: Query<&Transform, With<Avatar>>,
    mut last: Local<Option<(Pose, Duration)>>,
) {
    let (Some(call), Some(transform)) = (call, avatars.iter().next()) else {
        return;
    };
    if call.is_added() {
        // A new call: it has not heard our pose yet.
        *last = None;
    }
    let pose = Pose {
        position: transform.translation.to_array(),
        orientation: transform.rotation.to_array(),
    };
    let now = time.elapsed();
    let due = match *last {
        None => true,
        Some((sent, at)) => sent != pose && now.saturating_sub(at) >= POSE_INTERVAL,
    };
    if due && call.send(Command::Pose(pose)) {
        *last = Some((pose, now));
    }
}

/// Shows what our camera sends in the corner.
fn show_self_view(
    call: Option<Res<Call>>,
    roster: Res<Roster>,
    devices: Res<Devices>,
    mut views: Query<(&mut SelfView, &mut Visibility)>,
    mut images: ResMut<Assets<Image>>,
    mut videos: ResMut<Assets<VideoMaterial>>,
) {
    let (Some(call), Some(you)) = (call, roster.you) else {
        return;
    };
    for (mut view, mut visibility) in &mut views {
        // One who may not publish sends no picture: no self-view either.
        let on = devices.camera_on && roster.your_grants.publish;
        let wanted = if on {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        visibility.set_if_neq(wanted);
        if !on {
            continue;
        }
        let view = &mut *view;
        let mut surface = VideoSurface {
            image: &mut view.image,
            material: &view.material,
            shown: &mut view.shown,
        };
        surface.show_newest(call.pictures(), you, &mut images, &mut videos);
    }
}

/// The self-view in the corner of the viewer's sight.
#[derive(Component, Debug)]
pub struct SelfView {
    /// Its material.
    pub material: Handle<VideoMaterial>,
    /// Its texture.
    pub image: Handle<Image>,
    /// The serial of the picture shown.
    pub shown: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a small ring everyone else is ahead, across the centre: two people once stood back
    /// to back, each past the centre, and never saw each other.
    #[test]
    fn in_a_small_ring_everyone_else_is_ahead() {
        for count in 2..=12 {
            let ids: Vec<ParticipantId> = (1..=count as u32).map(ParticipantId).collect();
            let slots = layout::ring(count);
            for (mine, you) in ids.iter().enumerate() {
                let (eye, yaw) = place_in_ring(&ids, *you).expect("a place");
                let ahead = Vec3::new(-yaw.sin(), 0.0, -yaw.cos());
                // Behind our own slot, looking at the centre.
                let to_centre = (-eye).with_y(0.0);
                assert!(to_centre.length() > slots[mine].translation.xz().length());
                assert!(to_centre.normalize().dot(ahead) > 0.999, "{count}: {yaw}");
                for (i, slot) in slots.iter().enumerate() {
                    let to = (slot.translation - eye).with_y(0.0);
                    assert!(i == mine || to.dot(ahead) > 0.0, "{count}: {i} behind");
                }
            }
        }
    }

    #[test]
    fn the_viewer_stands_inside_the_walls_with_no_panel_close_ahead() {
        for count in 3..=rotunda_proto::limits::MAX_PARTICIPANTS {
            let ids: Vec<ParticipantId> = (1..=count as u32).map(ParticipantId).collect();
            let slots = layout::ring(count);
            for (mine, you) in ids.iter().enumerate() {
                let (eye, yaw) = place_in_ring(&ids, *you).expect("a place");
                assert!(eye.xz().length() < ROOM_RADIUS - 1.0, "{count}: {eye}");
                let ahead = Vec3::new(-yaw.sin(), 0.0, -yaw.cos());
                for (i, slot) in slots.iter().enumerate() {
                    let to = (slot.translation - eye).with_y(0.0);
                    if i != mine && to.dot(ahead) > 0.0 {
                        // Two panels' widths at the least: no neighbour fills the view's side.
                        assert!(to.length() > 2.0 * layout::PANEL_WIDTH, "{count}: {to}");
                    }
                }
            }
        }
    }
}
