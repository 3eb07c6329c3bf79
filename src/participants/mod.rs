//! One entity per participant in the room, following joins, leaves, poses and mutes.
//!
//! A participant stands where its pose says once it has sent one; until then it takes its slot
//! in the [`layout`](crate::room::layout) ring, which every client computes alike from the ids
//! present. Arrivals grow in and departures shrink out; positions glide toward their targets.

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use rotunda_proto::{ParticipantId, Pose};

use crate::AppSystems;
use crate::call::{
    CallJoined, CallRejoined, ParticipantJoined, ParticipantLeft, ParticipantMoved,
    ParticipantMuted,
};
use crate::room::layout;
use crate::state::Screen;

/// How long arrivals and departures animate.
pub const APPEAR: Duration = Duration::from_millis(600);
/// How fast panels follow their targets: the remaining distance shrinks by e^-RATE per second.
pub const FOLLOW_RATE: f32 = 8.0;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Roster>();
    app.add_systems(
        Update,
        (
            (
                note_local_participant,
                reconcile_after_rejoin,
                add_participants,
                remove_participants,
                apply_poses,
                apply_mutes,
            )
                .chain(),
            (
                place_in_layout,
                follow_targets,
                animate_arrivals,
                animate_departures,
            )
                .chain(),
        )
            .chain()
            .in_set(AppSystems::Update),
    );
    app.add_systems(OnExit(Screen::InRoom), clear_roster);
    // A new call starts from an empty room, whatever the last one left behind.
    app.add_systems(
        OnEnter(Screen::Connecting),
        (clear_roster, despawn_participants),
    );
}

/// A remote participant.
#[derive(Component, Debug, Clone)]
#[require(Transform, Visibility, Muted, Speaking, Target)]
pub struct Participant {
    /// Its id.
    pub id: ParticipantId,
    /// Its display name.
    pub name: String,
}

/// Microphone and camera state.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Muted {
    /// Microphone muted.
    pub audio: bool,
    /// Camera off.
    pub video: bool,
}

/// How loud the participant is right now (0..1), for the speaking glow.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq)]
pub struct Speaking(pub f32);

/// Where the participant is heading.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The pose it sent, if any; otherwise its layout slot.
    pub pose: Option<Pose>,
    /// Where it is heading now.
    pub position: Vec3,
    /// Whether `position` was set yet (a new participant jumps to it).
    pub placed: bool,
    /// How big its panel is (1: full size; smaller in a crowd, [`layout::panel_scale`]).
    pub size: f32,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            pose: None,
            position: Vec3::ZERO,
            placed: false,
            size: 1.0,
        }
    }
}

/// Growing in after joining.
#[derive(Component, Debug, Clone)]
pub struct Arriving(pub Timer);

/// Shrinking out after leaving; despawned at the end.
#[derive(Component, Debug, Clone)]
pub struct Departing(pub Timer);

/// Who is in the room, by id.
#[derive(Resource, Debug, Default)]
pub struct Roster {
    /// Our own id, once joined.
    pub you: Option<ParticipantId>,
    /// Our own name.
    pub your_name: String,
    /// What we may do (what our access token grants).
    pub your_grants: rotunda_proto::Grants,
    /// The entity of every remote participant present.
    pub entities: HashMap<ParticipantId, Entity>,
}

impl Roster {
    /// Everyone present, ourselves included, in id order: the order of the layout ring.
    pub fn ids(&self) -> Vec<ParticipantId> {
        let mut ids: Vec<_> = self.entities.keys().copied().chain(self.you).collect();
        ids.sort();
        ids
    }
}

fn note_local_participant(mut joined: MessageReader<CallJoined>, mut roster: ResMut<Roster>) {
    for joined in joined.read() {
        roster.you = Some(joined.you);
        roster.your_name = joined.name.clone();
        roster.your_grants = joined.grants;
    }
}

/// Back in the room after a lost connection: whoever is not there any more goes (those who are
/// stay where they stand; newcomers arrive as joins).
fn reconcile_after_rejoin(
    mut rejoined: MessageReader<CallRejoined>,
    mut roster: ResMut<Roster>,
    mut commands: Commands,
) {
    for rejoined in rejoined.read() {
        roster.you = Some(rejoined.you);
        let gone: Vec<ParticipantId> = roster
            .entities
            .keys()
            .filter(|id| !rejoined.present.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(entity) = roster.entities.remove(&id) {
                commands
                    .entity(entity)
                    .remove::<Arriving>()
                    .insert(Departing(Timer::new(APPEAR, TimerMode::Once)));
            }
        }
    }
}

fn add_participants(
    mut joined: MessageReader<ParticipantJoined>,
    mut roster: ResMut<Roster>,
    mut commands: Commands,
) {
    for ParticipantJoined(info) in joined.read() {
        if Some(info.id) == roster.you {
            continue;
        }
        let pose = (info.pose != Pose::default()).then_some(info.pose);
        let bundle = (
            Participant {
                id: info.id,
                name: info.name.clone(),
            },
            Muted {
                audio: info.audio_muted,
                video: info.video_muted,
            },
            Target { pose, ..default() },
        );
        match roster.entities.get(&info.id) {
            Some(&entity) => {
                commands.entity(entity).insert(bundle);
            }
            None => {
                let entity = commands
                    .spawn((
                        bundle,
                        Transform::from_scale(Vec3::splat(0.01)),
                        Arriving(Timer::new(APPEAR, TimerMode::Once)),
                        DespawnOnExit(Screen::InRoom),
                        Name::new(format!("participant {}", info.name)),
                    ))
                    .id();
                roster.entities.insert(info.id, entity);
            }
        }
    }
}

fn remove_participants(
    mut left: MessageReader<ParticipantLeft>,
    mut roster: ResMut<Roster>,
    mut commands: Commands,
) {
    for left in left.read() {
        if let Some(entity) = roster.entities.remove(&left.id) {
            commands
                .entity(entity)
                .remove::<Arriving>()
                .insert(Departing(Timer::new(APPEAR, TimerMode::Once)));
        }
    }
}

fn apply_poses(
    mut moved: MessageReader<ParticipantMoved>,
    roster: Res<Roster>,
    mut targets: Query<&mut Target>,
) {
    for moved in moved.read() {
        if let Some(&entity) = roster.entities.get(&moved.id)
            && let Ok(mut target) = targets.get_mut(entity)
        {
            target.pose = Some(moved.pose);
        }
    }
}

fn apply_mutes(
    mut muted: MessageReader<ParticipantMuted>,
    roster: Res<Roster>,
    mut states: Query<&mut Muted>,
) {
    for message in muted.read() {
        if let Some(&entity) = roster.entities.get(&message.id)
            && let Ok(mut muted) = states.get_mut(entity)
        {
            *muted = Muted {
                audio: message.audio,
                video: message.video,
            };
        }
    }
}

/// Sets every participant's target: its pose, or its slot in the ring. Only for a participant
/// that moved, or when someone came or went: otherwise every target still holds.
fn place_in_layout(
    roster: Res<Roster>,
    mut participants: Query<(&Participant, &mut Target), Without<Departing>>,
) {
    // Worked out once, and only when a participant without a pose needs its slot.
    let mut ring: Option<(Vec<ParticipantId>, Vec<Transform>)> = None;
    let size = layout::panel_scale(roster.entities.len() + usize::from(roster.you.is_some()));
    for (participant, mut target) in &mut participants {
        if !roster.is_changed() && !target.is_changed() {
            continue;
        }
        if target.size != size {
            target.size = size;
        }
        let position = match target.pose {
            Some(pose) => layout::panel_position(pose),
            None => {
                let (ids, slots) = ring.get_or_insert_with(|| {
                    let ids = roster.ids();
                    let slots = layout::ring(ids.len());
                    (ids, slots)
                });
                ids.iter()
                    .position(|id| *id == participant.id)
                    .and_then(|i| slots.get(i))
                    .map_or(Vec3::ZERO, |slot| slot.translation)
            }
        };
        if target.position != position {
            target.position = position;
        }
    }
}

/// Moves participants toward their targets, smoothly (exponential approach, frame-rate
/// independent); a participant seen for the first time starts at its target. Panels grow or
/// shrink to their size the same way (unless arriving or leaving: those animations scale them).
fn follow_targets(
    time: Res<Time>,
    mut participants: Query<(&mut Transform, &mut Target, Has<Arriving>, Has<Departing>)>,
) {
    let blend = 1.0 - (-FOLLOW_RATE * time.delta_secs()).exp();
    for (mut transform, mut target, arriving, departing) in &mut participants {
        if !target.placed {
            transform.translation = target.position;
            target.placed = true;
        } else {
            transform.translation = transform.translation.lerp(target.position, blend);
        }
        if !arriving && !departing && transform.scale.x != target.size {
            let size = transform.scale.x + (target.size - transform.scale.x) * blend;
            let size = if (size - target.size).abs() < 1e-3 {
                target.size
            } else {
                size
            };
            transform.scale = Vec3::splat(size);
        }
    }
}

fn animate_arrivals(
    time: Res<Time>,
    mut arriving: Query<(Entity, &mut Transform, &mut Arriving, &Target)>,
    mut commands: Commands,
) {
    for (entity, mut transform, mut arriving, target) in &mut arriving {
        arriving.0.tick(time.delta());
        transform.scale = Vec3::splat((ease(arriving.0.fraction()) * target.size).max(0.01));
        if arriving.0.is_finished() {
            transform.scale = Vec3::splat(target.size);
            commands.entity(entity).remove::<Arriving>();
        }
    }
}

fn animate_departures(
    time: Res<Time>,
    mut departing: Query<(Entity, &mut Transform, &mut Departing, &Target)>,
    mut commands: Commands,
) {
    for (entity, mut transform, mut departing, target) in &mut departing {
        departing.0.tick(time.delta());
        let left = 1.0 - ease(departing.0.fraction());
        transform.scale = Vec3::splat((left * target.size).max(0.01));
        if departing.0.is_finished() {
            commands.entity(entity).despawn();
        }
    }
}

/// Smoothstep.
fn ease(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn despawn_participants(participants: Query<Entity, With<Participant>>, mut commands: Commands) {
    for entity in &participants {
        commands.entity(entity).despawn();
    }
}

fn clear_roster(mut roster: ResMut<Roster>) {
    roster.entities.clear();
    roster.you = None;
}
