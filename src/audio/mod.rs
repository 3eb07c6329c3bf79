//! Spatial audio, the room's side: after transforms propagate, [`place_voices`] tells the engine
//! where the listener's head (the camera) is and where every participant stands, for its mixer
//! to place each voice there; and every participant's speaking glow follows its voice's level.
//! The devices themselves are [`crate::devices`]'s; the mixing is the engine's.

pub mod sounds;

use bevy::prelude::*;
use bevy::transform::TransformSystems;
use rotunda_engine::audio::Scene;
use rotunda_engine::audio::spatial::Listener;

use crate::call::{Call, Command, VoiceLevels};
use crate::participants::{Participant, Speaking};
use crate::settings::Settings;

/// Spatial audio on or off ("meeting mode": every voice centred, at one level).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeetingMode(pub bool);

/// The head that hears: the local camera.
#[derive(Component, Debug, Default)]
pub struct Ears;

/// The system set placing voices, after transform propagation.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpatialAudioSystems;

/// Where the listener and every voice are now, as the engine's mixer wants them.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct AudioScene(pub Scene);

/// Placing voices and showing who speaks, without devices (what tests build on).
pub fn logic_plugin(app: &mut App) {
    app.add_plugins(sounds::logic_plugin);
    app.init_resource::<MeetingMode>();
    app.init_resource::<AudioScene>();
    app.configure_sets(
        PostUpdate,
        SpatialAudioSystems.after(TransformSystems::Propagate),
    );
    app.add_systems(
        PostUpdate,
        ((place_voices, send_scene).chain(), show_speaking).in_set(SpatialAudioSystems),
    );
}

/// The settings' meeting mode at start.
pub(super) fn plugin(app: &mut App) {
    app.add_plugins(sounds::plugin);
    app.add_systems(Startup, apply_settings);
}

fn apply_settings(settings: Res<Settings>, mut meeting: ResMut<MeetingMode>) {
    meeting.0 = settings.meeting_mode;
}

/// The listener as the mixer wants it, from the camera's transform.
pub fn listener(head: &GlobalTransform) -> Listener {
    Listener {
        position: head.translation().to_array(),
        forward: head.forward().as_vec3().to_array(),
        right: head.right().as_vec3().to_array(),
    }
}

/// Works out where the head (the camera) and every voice are, and the meeting mode.
pub fn place_voices(
    meeting: Res<MeetingMode>,
    ears: Query<&GlobalTransform, With<Ears>>,
    participants: Query<(&Participant, &GlobalTransform)>,
    mut scene: ResMut<AudioScene>,
) {
    let mut sources: Vec<_> = participants
        .iter()
        .map(|(participant, transform)| (participant.id, transform.translation().to_array()))
        .collect();
    sources.sort_by_key(|(id, _)| *id);
    let now = Scene {
        listener: ears.iter().next().map(listener).unwrap_or_default(),
        sources,
        meeting_mode: meeting.0,
    };
    if scene.0 != now {
        scene.0 = now;
    }
}

/// Tells the call where the head and every voice are, when that changed (and once to every new
/// call).
fn send_scene(call: Option<Res<Call>>, scene: Res<AudioScene>, mut sent: Local<Option<Scene>>) {
    let Some(call) = call else {
        return;
    };
    if call.is_added() {
        *sent = None;
    }
    if sent.as_ref() == Some(&scene.0) {
        return;
    }
    // Dropped when the call is behind: the next frame sends it again.
    if call.send(Command::Scene(scene.0.clone())) {
        *sent = Some(scene.0.clone());
    }
}

/// Sets each participant's speaking level from its voice.
fn show_speaking(levels: Res<VoiceLevels>, mut participants: Query<(&Participant, &mut Speaking)>) {
    for (participant, mut speaking) in &mut participants {
        // Speech sits around RMS 0.05-0.2: map it to 0..1.
        let level = levels.0.get(&participant.id).copied().unwrap_or(0.0);
        let level = (level * 6.0).clamp(0.0, 1.0);
        if (speaking.0 - level).abs() > 0.01 {
            speaking.0 = level;
        }
    }
}
