//! Audio: the jitter buffer in front of the Opus decoder, the spatial mixer that places every
//! voice where its panel stands, and the devices (microphone, speakers).
//!
//! The ECS side is small: after transforms propagate, [`place_voices`] hands the listener's head
//! (the camera) and every participant's position to the mixer, which the speakers' callback runs.

#[cfg(native)]
pub mod device;
pub mod jitter;
pub mod output;
pub mod spatial;
#[cfg(web)]
pub mod web;

#[cfg(native)]
use device as platform;
#[cfg(web)]
use web as platform;

use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use bevy::transform::TransformSystems;

pub use jitter::{JitterBuffer, Playout};
use output::AudioOut;
use spatial::Listener;

use crate::net::{Call, Devices};
use crate::participants::{Participant, Speaking};
use crate::settings::Settings;
use crate::sync::lock;

/// The mixer the speakers play, shared with their callback.
#[derive(Resource, Clone, Default)]
pub struct AudioOutput(pub Arc<Mutex<AudioOut>>);

impl AudioOutput {
    /// Runs `f` on the mixer state.
    pub fn with<R>(&self, f: impl FnOnce(&mut AudioOut) -> R) -> R {
        f(&mut lock(&self.0))
    }
}

/// Spatial audio on or off ("meeting mode": every voice centred, at one level).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeetingMode(pub bool);

/// The head that hears: the local camera.
#[derive(Component, Debug, Default)]
pub struct Ears;

/// The system set placing voices, after transform propagation.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpatialAudioSystems;

/// The spatial mixing, without devices (what tests build on).
pub fn logic_plugin(app: &mut App) {
    app.init_resource::<AudioOutput>();
    app.init_resource::<MeetingMode>();
    app.configure_sets(
        PostUpdate,
        SpatialAudioSystems.after(TransformSystems::Propagate),
    );
    app.add_systems(
        PostUpdate,
        (connect_voices, place_voices, show_speaking).in_set(SpatialAudioSystems),
    );
}

/// Speakers too.
pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, (apply_settings, open_speakers));
}

fn apply_settings(settings: Res<Settings>, mut meeting: ResMut<MeetingMode>) {
    meeting.0 = settings.meeting_mode;
}

/// Keeps the speakers' stream alive.
#[derive(Resource)]
struct Speakers(
    #[expect(dead_code, reason = "held to keep the stream running")] platform::DeviceThread,
);

fn open_speakers(
    mut commands: Commands,
    output: Res<AudioOutput>,
    settings: Res<Settings>,
    mut devices: ResMut<Devices>,
) {
    let (thread, state) = platform::open_speakers(&settings.speakers, output.0.clone());
    if let crate::media::SourceState::Fallback(reason) = &state {
        warn!("speakers: {reason}; playing to nowhere");
    }
    devices.speakers = state;
    commands.insert_resource(Speakers(thread));
}

fn connect_voices(call: Option<Res<Call>>, output: Res<AudioOutput>) {
    if let Some(call) = call
        && call.is_added()
    {
        output.with(|out| out.set_voices(call.voices.clone()));
    }
}

/// The listener as the mixer wants it, from the camera's transform.
pub fn listener(head: &GlobalTransform) -> Listener {
    Listener {
        position: head.translation().to_array(),
        forward: head.forward().as_vec3().to_array(),
        right: head.right().as_vec3().to_array(),
    }
}

/// Hands the head and every voice's position to the mixer.
pub fn place_voices(
    output: Res<AudioOutput>,
    meeting: Res<MeetingMode>,
    ears: Query<&GlobalTransform, With<Ears>>,
    participants: Query<(&Participant, &GlobalTransform)>,
) {
    output.with(|out| {
        if let Some(head) = ears.iter().next() {
            out.mixer.set_listener(listener(head));
        }
        out.mixer.set_meeting_mode(meeting.0);
        for (participant, transform) in &participants {
            out.mixer
                .set_source(participant.id.0, transform.translation().to_array());
        }
    });
}

/// Sets each participant's speaking level from its voice.
fn show_speaking(call: Option<Res<Call>>, mut participants: Query<(&Participant, &mut Speaking)>) {
    let Some(call) = call else {
        return;
    };
    for (participant, mut speaking) in &mut participants {
        // Speech sits around RMS 0.05-0.2: map it to 0..1.
        let level = (call.voices.level(participant.id) * 6.0).clamp(0.0, 1.0);
        if (speaking.0 - level).abs() > 0.01 {
            speaking.0 = level;
        }
    }
}
