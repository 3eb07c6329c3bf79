//! The wall: every screen shared in the room, large, hanging above the room's centre where every
//! ring place looks, turned toward the viewer (each sees it from their own place) and sized to
//! their distance from it; two shares side by side; empty when nobody shares.
//!
//! [`logic_plugin`] keeps one [`SharedScreen`] per sharer, in the order they started, with its
//! [`WallSlot`] (tests run it on a bare app); [`plugin`] draws them with the panels' video
//! material, each from the call's screen pictures. A double-click on a screen asks for it over
//! the whole window ([`OpenScreen`]).

use std::time::Duration;

use bevy::input::ButtonState;
use bevy::input::mouse::MouseButtonInput;
use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::input::EguiWantsInput;
use rotunda_proto::ParticipantId;

use super::layout::{EYE_HEIGHT, WALL_HEIGHT, ray_meets_rect};
use super::panel::{VideoMaterial, VideoSurface};
use crate::AppSystems;
use crate::audio::Ears;
use crate::call::{Call, CallRejoined, ParticipantLeft, ScreenShared, ScreenStopped};
use crate::state::Screen;

/// Room between two screens side by side, in units of a screen's height.
pub const SLOT_GAP: f32 = 0.08;
/// A shared screen's width in units of its height until its first picture says otherwise.
pub const SCREEN_ASPECT: f32 = 16.0 / 9.0;
/// Where the wall's bottom and top edges appear to a viewer: this far above the eyes' level
/// (tangent of the angle), over the panels across the ring and within the view.
const BOTTOM_SLOPE: f32 = 0.07;
const TOP_SLOPE: f32 = 0.44;
/// The wall spans at most this much of the view's width (tangent of half the angle).
const HALF_WIDTH_SLOPE: f32 = 0.62;
/// The wall is sized for a viewer at least this far from the centre.
const MIN_DISTANCE: f32 = 2.0;

/// Keeping track of who shares a screen.
pub fn logic_plugin(app: &mut App) {
    app.init_resource::<Wall>();
    app.add_message::<OpenScreen>();
    app.add_systems(Update, follow_shares.in_set(AppSystems::Update));
    app.add_systems(OnEnter(Screen::Connecting), clear_wall);
    app.add_systems(OnExit(Screen::InRoom), clear_wall);
}

/// Drawing the wall.
pub(super) fn plugin(app: &mut App) {
    app.add_observer(dress_screen);
    app.add_systems(
        Update,
        (place_wall, upload_screens).in_set(AppSystems::Present),
    );
    app.add_systems(
        Update,
        double_click_screen
            .in_set(AppSystems::RecordInput)
            .run_if(in_state(Screen::InRoom)),
    );
}

/// Someone asked to see this shared screen over the whole window (by double-clicking it).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenScreen(pub ParticipantId);

/// Two clicks at most this far apart in time make a double-click...
pub const DOUBLE_CLICK: Duration = Duration::from_millis(500);
/// ...and at most this far apart on the screen, in logical pixels.
const DOUBLE_CLICK_SLOP: f32 = 6.0;

/// The shared screen a ray from the eye meets first, if any: each is a unit square scaled,
/// turned and placed by its transform.
pub fn screen_under<'a>(
    ray: Ray3d,
    screens: impl IntoIterator<Item = (&'a SharedScreen, &'a GlobalTransform)>,
) -> Option<ParticipantId> {
    screens
        .into_iter()
        .filter_map(|(screen, transform)| {
            ray_meets_rect(ray, transform, Vec2::ONE).map(|distance| (distance, screen.id))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

/// Two quick clicks on a shared screen open it over the whole window. Clicks are counted from
/// the button's events, not its state: on a slow renderer both can fall in one frame.
fn double_click_screen(
    (mut presses, wants, time): (
        MessageReader<MouseButtonInput>,
        Option<Res<EguiWantsInput>>,
        Res<Time<Real>>,
    ),
    windows: Query<&Window, With<PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform), With<Ears>>,
    screens: Query<(&SharedScreen, &GlobalTransform)>,
    mut last: Local<Option<(Duration, Vec2)>>,
    mut open: MessageWriter<OpenScreen>,
) {
    let clicks = presses
        .read()
        .filter(|event| event.button == MouseButton::Left && event.state == ButtonState::Pressed)
        .count();
    if clicks == 0 || wants.is_some_and(|w| w.wants_pointer_input()) {
        return;
    }
    let Some(cursor) = windows.iter().next().and_then(Window::cursor_position) else {
        return;
    };
    let now = time.elapsed();
    let double = clicks >= 2
        || last.take().is_some_and(|(at, from)| {
            now.saturating_sub(at) <= DOUBLE_CLICK && from.distance(cursor) <= DOUBLE_CLICK_SLOP
        });
    if !double {
        *last = Some((now, cursor));
        return;
    }
    let Some((camera, eye)) = cameras.iter().next() else {
        return;
    };
    if let Ok(ray) = camera.viewport_to_world(eye, cursor)
        && let Some(id) = screen_under(ray, screens.iter())
    {
        open.write(OpenScreen(id));
    }
}

/// The screens shared now, in the order they started.
#[derive(Resource, Debug, Default)]
pub struct Wall {
    /// Sharer and entity, oldest first.
    pub shares: Vec<(ParticipantId, Entity)>,
}

/// A shared screen on the wall.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
#[require(Transform, Visibility, WallSlot)]
pub struct SharedScreen {
    /// Whose screen.
    pub id: ParticipantId,
}

/// Where a shared screen stands on the wall, in units of the wall's height: its centre's offset
/// to the viewer's right, and its width.
#[derive(Component, Debug, Default, Clone, Copy, PartialEq)]
pub struct WallSlot {
    /// Offset of its centre to the right.
    pub x: f32,
    /// Its width.
    pub width: f32,
}

/// The slots of `count` shared screens: one in the middle, more side by side, centred.
pub fn wall_layout(count: usize) -> Vec<WallSlot> {
    let width = SCREEN_ASPECT;
    let span = count as f32 * width + count.saturating_sub(1) as f32 * SLOT_GAP;
    (0..count)
        .map(|n| WallSlot {
            x: -span / 2.0 + width / 2.0 + n as f32 * (width + SLOT_GAP),
            width,
        })
        .collect()
}

/// The wall's height and its bottom edge's height above the floor, for a viewer `distance`
/// from the centre and a wall `span` heights wide: as tall as the view allows above the ring,
/// narrower when many stand side by side, never through the ceiling.
pub fn wall_size(distance: f32, span: f32) -> (f32, f32) {
    let distance = distance.max(MIN_DISTANCE);
    let bottom = EYE_HEIGHT + distance * BOTTOM_SLOPE;
    let height = (distance * (TOP_SLOPE - BOTTOM_SLOPE))
        .min(WALL_HEIGHT - 0.3 - bottom)
        .min(2.0 * distance * HALF_WIDTH_SLOPE / span.max(1.0));
    (height, bottom)
}

/// Follows who starts and stops sharing, who leaves, and who is still here after a rejoin.
fn follow_shares(
    mut commands: Commands,
    mut wall: ResMut<Wall>,
    mut shared: MessageReader<ScreenShared>,
    mut stopped: MessageReader<ScreenStopped>,
    mut left: MessageReader<ParticipantLeft>,
    mut rejoined: MessageReader<CallRejoined>,
) {
    let before = wall.shares.clone();
    for rejoin in rejoined.read() {
        // The roster that follows says again who shares.
        wall.shares.retain(|(id, _)| rejoin.present.contains(id));
    }
    let mut gone: Vec<ParticipantId> = stopped.read().map(|s| s.0).collect();
    gone.extend(left.read().map(|l| l.id));
    wall.shares.retain(|(id, _)| !gone.contains(id));
    for ScreenShared(id) in shared.read() {
        if !wall.shares.iter().any(|(known, _)| known == id) {
            let entity = commands.spawn(SharedScreen { id: *id }).id();
            wall.shares.push((*id, entity));
        }
    }
    if wall.shares == before {
        return;
    }
    for (_, entity) in &before {
        if !wall.shares.iter().any(|(_, kept)| kept == entity) {
            commands.entity(*entity).despawn();
        }
    }
    for ((_, entity), slot) in wall.shares.iter().zip(wall_layout(wall.shares.len())) {
        commands.entity(*entity).insert(slot);
    }
}

fn clear_wall(mut commands: Commands, mut wall: ResMut<Wall>) {
    for (_, entity) in wall.shares.drain(..) {
        commands.entity(entity).despawn();
    }
}

/// The drawing parts of a shared screen.
#[derive(Component, Debug)]
pub struct ScreenParts {
    material: Handle<VideoMaterial>,
    image: Handle<Image>,
    shown: u64,
}

fn dress_screen(
    add: On<Add, SharedScreen>,
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut images: ResMut<Assets<Image>>,
    mut videos: ResMut<Assets<VideoMaterial>>,
) {
    // Dark until the first picture.
    let placeholder = Vec4::new(0.02, 0.02, 0.03, 1.0);
    let (image, material) = VideoMaterial::blank(placeholder, false, &mut images, &mut videos);
    commands.entity(add.entity).insert((
        Mesh3d(meshes.add(Rectangle::new(1.0, 1.0))),
        MeshMaterial3d(material.clone()),
        ScreenParts {
            material,
            image,
            shown: 0,
        },
    ));
}

/// Hangs the wall above the centre, turned toward the viewer and sized to their distance; each
/// screen at its slot, as tall as its picture is for its width.
fn place_wall(
    viewers: Query<&Transform, (With<Ears>, Without<SharedScreen>)>,
    mut screens: Query<(&WallSlot, &ScreenParts, &mut Transform), With<SharedScreen>>,
    videos: Res<Assets<VideoMaterial>>,
) {
    let Some(viewer) = viewers.iter().next() else {
        return;
    };
    let mut to_viewer = viewer.translation;
    to_viewer.y = 0.0;
    let distance = to_viewer.length();
    let yaw = if distance > 1e-3 {
        to_viewer.x.atan2(to_viewer.z)
    } else {
        0.0
    };
    let rotation = Quat::from_rotation_y(yaw);
    let right = rotation * Vec3::X;
    let span = screens
        .iter()
        .map(|(slot, _, _)| slot.x.abs() + slot.width / 2.0)
        .fold(0.0, f32::max)
        * 2.0;
    let (height, bottom) = wall_size(distance, span);
    for (slot, parts, mut transform) in &mut screens {
        let aspect = videos
            .get(&parts.material)
            .map(|m| m.panel.state)
            .filter(|state| state.y > 0.0 && state.z > 0.0)
            .map_or(1.0 / SCREEN_ASPECT, |state| state.z / state.y);
        // Its width is its slot's; a picture taller than 16:9 keeps within the wall's height.
        let width = (slot.width * height).min(height / aspect);
        let tall = width * aspect;
        transform.translation = right * slot.x * height + Vec3::Y * (bottom + height - tall / 2.0);
        transform.rotation = rotation;
        transform.scale = Vec3::new(width, tall, 1.0);
    }
}

/// Copies each shared screen's newest picture into its texture.
fn upload_screens(
    call: Option<Res<Call>>,
    mut screens: Query<(&SharedScreen, &mut ScreenParts)>,
    mut images: ResMut<Assets<Image>>,
    mut videos: ResMut<Assets<VideoMaterial>>,
) {
    let Some(call) = call else {
        return;
    };
    for (screen, mut parts) in &mut screens {
        let parts = &mut *parts;
        let mut surface = VideoSurface {
            image: &mut parts.image,
            material: &parts.material,
            shown: &mut parts.shown,
        };
        surface.show_newest(call.screens(), screen.id, &mut images, &mut videos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ray_finds_the_screen_it_meets() {
        // Two screens 2 m wide and 1 m tall, side by side 5 m ahead, facing the eye.
        let screen = |id: u32, x: f32| {
            (
                SharedScreen {
                    id: ParticipantId(id),
                },
                GlobalTransform::from(
                    Transform::from_xyz(x, 2.0, -5.0).with_scale(Vec3::new(2.0, 1.0, 1.0)),
                ),
            )
        };
        let screens = [screen(1, -1.1), screen(2, 1.1)];
        let eye = Vec3::new(0.0, 2.0, 0.0);
        let toward = |x: f32, y: f32| {
            Ray3d::new(eye, Dir3::new(Vec3::new(x, y, -5.0)).expect("a direction"))
        };
        let under = |ray| screen_under(ray, screens.iter().map(|(s, t)| (s, t)));
        assert_eq!(under(toward(-1.5, 0.2)), Some(ParticipantId(1)));
        assert_eq!(under(toward(1.5, -0.4)), Some(ParticipantId(2)));
        // Between them, above them, or looking away: none.
        assert_eq!(under(toward(0.0, 0.0)), None);
        assert_eq!(under(toward(-1.1, 0.7)), None);
        let behind = Ray3d::new(eye, Dir3::Z);
        assert_eq!(under(behind), None);
    }

    #[test]
    fn the_wall_stays_in_view_and_under_the_ceiling() {
        for distance in [0.0, 2.2, 3.5, 6.0, 11.5] {
            for count in 1..=3 {
                let slots = wall_layout(count);
                let span = slots.last().map_or(0.0, |s| s.x + s.width / 2.0) * 2.0;
                let (height, bottom) = wall_size(distance, span);
                assert!(height > 0.4, "{distance} m, {count}: {height}");
                assert!(bottom > EYE_HEIGHT && bottom + height < WALL_HEIGHT);
                let d = distance.max(MIN_DISTANCE);
                assert!(span * height / 2.0 <= d * HALF_WIDTH_SLOPE + 1e-3);
            }
        }
    }
}
