//! What the speakers play: every remote voice, pulled from its queue and placed by the
//! [`SpatialMixer`] where the application says its panel stands.

use std::collections::HashMap;

use rotunda_proto::ParticipantId;
use serde::{Deserialize, Serialize};

use super::Voices;
use super::spatial::{DistanceModel, Listener, SpatialMixer};

/// Where the listener's head is and where every voice stands, as the application sees the room.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// The head that hears (the camera).
    pub listener: Listener,
    /// Every participant's position, metres.
    pub sources: Vec<(ParticipantId, [f32; 3])>,
    /// Every voice centred at one level ("meeting mode"), instead of placed.
    pub meeting_mode: bool,
}

/// The voices, the spatial mixer and the buffers to mix them with.
pub struct Mixer {
    spatial: SpatialMixer,
    scratch: HashMap<u32, Vec<f32>>,
    stereo: Vec<f32>,
    ids: Vec<ParticipantId>,
}

impl Default for Mixer {
    fn default() -> Self {
        Self {
            spatial: SpatialMixer::new(DistanceModel::default()),
            scratch: HashMap::new(),
            stereo: Vec::new(),
            ids: Vec::new(),
        }
    }
}

impl Mixer {
    /// Places the listener and the voices as `scene` says; positions that are not finite are
    /// ignored.
    pub fn set_scene(&mut self, scene: &Scene) {
        let finite = |v: &[f32; 3]| v.iter().all(|x| x.is_finite());
        let listener = &scene.listener;
        if finite(&listener.position) && finite(&listener.forward) && finite(&listener.right) {
            self.spatial.set_listener(*listener);
        }
        if self.spatial.meeting_mode() != scene.meeting_mode {
            self.spatial.set_meeting_mode(scene.meeting_mode);
        }
        for (id, position) in &scene.sources {
            if finite(position) {
                self.spatial.set_source(id.0, *position);
            }
        }
    }

    /// Forgets someone who left.
    pub fn remove(&mut self, id: ParticipantId) {
        self.spatial.remove(id.0);
        self.scratch.remove(&id.0);
    }

    /// Fills `out` (interleaved stereo, 48 kHz) with the next samples of the mix of `voices`.
    pub fn render(&mut self, voices: &mut Voices, out: &mut [f32]) {
        let frames = out.len() / 2;
        voices.ids_into(&mut self.ids);
        let ids = &self.ids;
        let spatial = &mut self.spatial;
        self.scratch.retain(|id, _| {
            let present = ids.iter().any(|i| i.0 == *id);
            if !present {
                // Gone: its voice slot in the mixer goes too.
                spatial.remove(*id);
            }
            present
        });
        for id in ids {
            let buffer = self.scratch.entry(id.0).or_default();
            buffer.resize(frames, 0.0);
            voices.pull(*id, buffer);
        }
        self.stereo.resize(frames * 2, 0.0);
        self.spatial.mix(
            self.scratch.iter().map(|(id, b)| (*id, b.as_slice())),
            &mut self.stereo,
        );
        out[..frames * 2].copy_from_slice(&self.stereo);
    }

    /// The placement a voice is gliding to (for tests and the statistics overlay).
    pub fn spatial(&self) -> &SpatialMixer {
        &self.spatial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voice_at_the_right_is_louder_in_the_right_ear() {
        let mut mixer = Mixer::default();
        let mut voices = Voices::default();
        let id = ParticipantId(2);
        mixer.set_scene(&Scene {
            listener: Listener::default(),
            sources: vec![(id, [2.0, 0.0, 0.0])],
            meeting_mode: false,
        });
        let tone: Vec<f32> = (0..960).map(|i| (i as f32 * 0.06).sin() * 0.5).collect();
        for _ in 0..4 {
            voices.push(id, &tone);
        }
        let mut out = vec![0.0; 1920];
        for _ in 0..3 {
            mixer.render(&mut voices, &mut out);
        }
        let (mut left, mut right) = (0.0f32, 0.0f32);
        for frame in out.chunks(2) {
            left += frame[0] * frame[0];
            right += frame[1] * frame[1];
        }
        // Head shadow and the interaural delay at ~460 Hz: clearly louder, not silent left.
        assert!(right > left * 1.2, "left {left} right {right}");
    }

    #[test]
    fn a_scene_with_nonsense_positions_changes_nothing() {
        let mut mixer = Mixer::default();
        let before = mixer.spatial().listener();
        mixer.set_scene(&Scene {
            listener: Listener {
                position: [f32::NAN, 0.0, 0.0],
                ..Listener::default()
            },
            sources: vec![(ParticipantId(1), [f32::INFINITY, 0.0, 0.0])],
            meeting_mode: false,
        });
        assert_eq!(mixer.spatial().listener(), before);
        assert!(mixer.spatial().params(1).is_none());
    }
}
