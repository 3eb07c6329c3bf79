//! Looking closely at someone: clicking a panel glides the viewer up to it, facing it; **Esc**
//! glides back to where they stood, walking takes over from where they are. **P** pins the
//! focused person (or unpins): their picture goes first when the link cannot carry everything,
//! at its top size ([`Pinned`]).

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::input::EguiWantsInput;
use rotunda_proto::ParticipantId;

use super::avatar::Avatar;
use super::layout::{EYE_HEIGHT, PANEL_HEIGHT, PANEL_WIDTH, ray_meets_rect};
use super::view::Pinned;
use crate::AppSystems;
use crate::audio::Ears;
use crate::call::ParticipantLeft;
use crate::participants::{Departing, Participant};
use crate::state::Screen;

/// How far in front of a focused panel the viewer stands (m): it then fills most of the view.
pub const FOCUS_DISTANCE: f32 = 1.7;
/// How fast the viewer glides to and from a focused panel (1/s).
const GLIDE_RATE: f32 = 4.0;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Focus>();
    app.add_systems(
        Update,
        (pick_panel, focus_keys, forget_the_departed, follow_focus)
            .chain()
            .after(AppSystems::Update)
            .before(AppSystems::Present)
            .run_if(in_state(Screen::InRoom)),
    );
    app.add_systems(OnExit(Screen::InRoom), leave_focus);
}

/// Whom the viewer looks at closely, and where they stood before.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct Focus {
    /// The focused participant.
    pub target: Option<ParticipantId>,
    /// Gliding back to where the viewer stood before: position, heading, pitch.
    pub returning: Option<(Vec3, f32, f32)>,
    /// Where the viewer stood before focusing (position, heading, pitch, and whether they had
    /// walked away from their ring place).
    pub before: Option<(Vec3, f32, f32, bool)>,
}

/// Where the viewer stands to look at a panel at `panel` from `viewer`'s side: in front of
/// it at eye height, facing it (the heading as [`Avatar::yaw`]).
pub fn focus_pose(panel: Vec3, viewer: Vec3) -> (Vec3, f32) {
    let mut out = (viewer - panel).with_y(0.0);
    if out.length_squared() < 1e-6 {
        out = -panel.with_y(0.0);
    }
    let out = out.normalize_or(Vec3::Z);
    let position = (panel + out * FOCUS_DISTANCE).with_y(EYE_HEIGHT);
    (position, out.x.atan2(out.z))
}

impl Focus {
    /// Looks closely at `id`, remembering where the viewer stands now.
    pub fn look_at(&mut self, id: ParticipantId, avatar: &Avatar, position: Vec3) {
        if self.target.is_none() {
            let before = self.returning.take().map_or(
                (position, avatar.yaw, avatar.pitch, avatar.moved),
                |(p, yaw, pitch)| (p, yaw, pitch, self.before.is_some_and(|b| b.3)),
            );
            self.before = Some(before);
        }
        self.target = Some(id);
    }

    /// Glides back to where the viewer stood before.
    pub fn back(&mut self) {
        if self.target.take().is_some()
            && let Some((position, yaw, pitch, _)) = self.before
        {
            self.returning = Some((position, yaw, pitch));
        }
    }

    /// The viewer walks: focus ends where they are.
    pub fn release(&mut self) {
        self.target = None;
        self.returning = None;
        self.before = None;
    }
}

/// The mouse: its button, where it points, and whether the interface has it.
#[derive(bevy::ecs::system::SystemParam)]
struct Pointer<'w, 's> {
    buttons: Res<'w, ButtonInput<MouseButton>>,
    wants: Option<Res<'w, EguiWantsInput>>,
    windows: Query<'w, 's, &'static Window, With<PrimaryWindow>>,
}

/// A click (not a drag) on a panel focuses it.
fn pick_panel(
    pointer: Pointer,
    cameras: Query<(&Camera, &GlobalTransform), With<Ears>>,
    panels: Query<(&Participant, &GlobalTransform), Without<Departing>>,
    avatars: Query<(&Avatar, &Transform)>,
    mut focus: ResMut<Focus>,
    mut pressed_at: Local<Option<Vec2>>,
) {
    let Pointer {
        buttons,
        wants,
        windows,
    } = pointer;
    let cursor = windows.iter().next().and_then(Window::cursor_position);
    if buttons.just_pressed(MouseButton::Left) {
        *pressed_at = cursor;
    }
    if !buttons.just_released(MouseButton::Left) {
        return;
    }
    let (Some(from), Some(cursor)) = (pressed_at.take(), cursor) else {
        return;
    };
    // A drag turns the view; over the side panels or the bar it is theirs.
    if from.distance(cursor) > 4.0 || wants.is_some_and(|w| w.wants_pointer_input()) {
        return;
    }
    let Some((camera, eye)) = cameras.iter().next() else {
        return;
    };
    let Ok(ray) = camera.viewport_to_world(eye, cursor) else {
        return;
    };
    let hit = panels
        .iter()
        .filter_map(|(participant, transform)| {
            let panel = Vec2::new(PANEL_WIDTH, PANEL_HEIGHT);
            ray_meets_rect(ray, transform, panel).map(|distance| (distance, participant.id))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    if let (Some((_, id)), Some((avatar, transform))) = (hit, avatars.iter().next()) {
        focus.look_at(id, avatar, transform.translation);
    }
}

/// Esc returns; walking takes over; P pins or unpins the focused person.
pub fn focus_keys(
    keys: Res<ButtonInput<KeyCode>>,
    wants: Option<Res<EguiWantsInput>>,
    mut focus: ResMut<Focus>,
    mut pinned: ResMut<Pinned>,
) {
    if wants.is_some_and(|w| w.wants_keyboard_input()) {
        return;
    }
    if keys.just_pressed(KeyCode::Escape) {
        focus.back();
    }
    let walking = [
        KeyCode::KeyW,
        KeyCode::KeyA,
        KeyCode::KeyS,
        KeyCode::KeyD,
        KeyCode::ArrowUp,
        KeyCode::ArrowDown,
        KeyCode::ArrowLeft,
        KeyCode::ArrowRight,
    ];
    if (focus.target.is_some() || focus.returning.is_some()) && keys.any_pressed(walking) {
        focus.release();
    }
    if keys.just_pressed(KeyCode::KeyP)
        && let Some(target) = focus.target
    {
        pinned.0 = if pinned.0 == Some(target) {
            None
        } else {
            Some(target)
        };
    }
}

/// Whoever leaves is neither focused nor pinned any more.
fn forget_the_departed(
    mut left: MessageReader<ParticipantLeft>,
    mut focus: ResMut<Focus>,
    mut pinned: ResMut<Pinned>,
) {
    for left in left.read() {
        if focus.target == Some(left.id) {
            focus.back();
        }
        if pinned.0 == Some(left.id) {
            pinned.0 = None;
        }
    }
}

/// Glides the viewer to the focused panel, or back to where they stood.
pub fn follow_focus(
    time: Res<Time>,
    mut focus: ResMut<Focus>,
    panels: Query<(&Participant, &GlobalTransform)>,
    mut avatars: Query<(&mut Avatar, &mut Transform), Without<Participant>>,
) {
    let Some((mut avatar, mut transform)) = avatars.iter_mut().next() else {
        return;
    };
    let goal = if let Some(target) = focus.target {
        let Some((_, panel)) = panels.iter().find(|(p, _)| p.id == target) else {
            focus.back();
            return;
        };
        let (position, yaw) = focus_pose(panel.translation(), transform.translation);
        Some((position, yaw, 0.0))
    } else {
        focus.returning
    };
    let Some((position, yaw, pitch)) = goal else {
        return;
    };
    // The ring does not move a viewer who looks at someone.
    avatar.moved = true;
    let blend = 1.0 - (-GLIDE_RATE * time.delta_secs()).exp();
    avatar.glide(&mut transform, (position, yaw, Some(pitch)), blend);
    if focus.target.is_none() && transform.translation.distance(position) < 0.02 {
        // Back: the ring moves the viewer again, unless they had walked away before.
        avatar.moved = focus.before.is_some_and(|b| b.3);
        focus.returning = None;
        focus.before = None;
    }
}

fn leave_focus(mut focus: ResMut<Focus>, mut pinned: ResMut<Pinned>) {
    *focus = Focus::default();
    pinned.0 = None;
}
