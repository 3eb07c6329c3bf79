//! What the speakers play: every remote voice, pulled from its queue and placed by the
//! [`SpatialMixer`] where the application says its panel stands, and the application's short
//! sounds (someone joining, leaving, a chat line), each played once from where it happened.

use std::collections::HashMap;
use std::sync::Arc;

use rotunda_proto::ParticipantId;
use serde::{Deserialize, Serialize};

use super::Voices;
use super::spatial::{DistanceModel, Listener, SpatialMixer};
use crate::media::SAMPLE_RATE;

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

/// Longest sound the application may load: 2 s.
pub const MAX_SOUND_SAMPLES: usize = 2 * SAMPLE_RATE as usize;
/// Most sounds the application may load.
pub const MAX_SOUNDS: usize = 16;

/// A sound the mixer would not take or play.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoundError {
    /// Longer than [`MAX_SOUND_SAMPLES`].
    #[error("the sound {name:?} lasts {samples} samples, more than {MAX_SOUND_SAMPLES} (2 s)")]
    TooLong {
        /// Its name.
        name: String,
        /// Its length.
        samples: usize,
    },
    /// [`MAX_SOUNDS`] are loaded already.
    #[error("{MAX_SOUNDS} sounds are loaded already; {0:?} is one too many")]
    TooMany(String),
    /// No sound was loaded by that name.
    #[error("no sound {0:?} was loaded")]
    Unknown(String),
}

/// The voices, the spatial mixer and the buffers to mix them with.
pub struct Mixer {
    spatial: SpatialMixer,
    scratch: HashMap<u32, Vec<f32>>,
    stereo: Vec<f32>,
    ids: Vec<ParticipantId>,
    sounds: HashMap<String, Arc<[f32]>>,
}

impl Default for Mixer {
    fn default() -> Self {
        Self {
            spatial: SpatialMixer::new(DistanceModel::default()),
            scratch: HashMap::new(),
            stereo: Vec::new(),
            ids: Vec::new(),
            sounds: HashMap::new(),
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

    /// Keeps `samples` (mono, 48 kHz) as the sound `name`, replacing one of that name;
    /// samples that are not finite become silence.
    pub fn load_sound(&mut self, name: String, mut samples: Vec<f32>) -> Result<(), SoundError> {
        if samples.len() > MAX_SOUND_SAMPLES {
            return Err(SoundError::TooLong {
                name,
                samples: samples.len(),
            });
        }
        if self.sounds.len() >= MAX_SOUNDS && !self.sounds.contains_key(&name) {
            return Err(SoundError::TooMany(name));
        }
        for sample in &mut samples {
            if !sample.is_finite() {
                *sample = 0.0;
            }
        }
        self.sounds.insert(name, samples.into());
        Ok(())
    }

    /// Plays the sound `name` once from world position `at` (placed like a voice standing
    /// there). `Ok(false)`: not now, because as many sounds as may play at once play already
    /// or `at` is no position.
    pub fn play(&mut self, name: &str, at: [f32; 3]) -> Result<bool, SoundError> {
        let samples = self
            .sounds
            .get(name)
            .ok_or_else(|| SoundError::Unknown(name.to_owned()))?;
        Ok(self.spatial.play(samples.clone(), at))
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
        let (left, right) = energy(&out);
        // Head shadow and the interaural delay at ~460 Hz: clearly louder, not silent left.
        assert!(right > left * 1.2, "left {left} right {right}");
    }

    fn energy(out: &[f32]) -> (f32, f32) {
        out.chunks(2)
            .fold((0.0, 0.0), |(l, r), f| (l + f[0] * f[0], r + f[1] * f[1]))
    }

    #[test]
    fn a_sound_plays_once_from_where_it_happened() {
        let mut mixer = Mixer::default();
        let mut voices = Voices::default();
        let chime: Vec<f32> = (0..1500).map(|i| (i as f32 * 0.06).sin() * 0.5).collect();
        mixer.load_sound("join".into(), chime).expect("loaded");
        // On the listener's left (-x): the left ear hears it first and louder.
        assert_eq!(mixer.play("join", [-2.0, 0.0, 0.0]), Ok(true));
        let mut out = vec![0.0; 1920];
        mixer.render(&mut voices, &mut out);
        let (left, right) = energy(&out);
        assert!(left > right * 1.2, "left {left} right {right}");
        // It ends: 1500 samples are two blocks of 960, and then silence.
        mixer.render(&mut voices, &mut out);
        assert!(energy(&out).0 > 0.0);
        mixer.render(&mut voices, &mut out);
        assert_eq!(energy(&out), (0.0, 0.0));
        assert_eq!(mixer.spatial().one_shots(), 0);
    }

    #[test]
    fn sounds_are_bounded_and_unknown_ones_are_refused() {
        let mut mixer = Mixer::default();
        let too_long = vec![0.0; MAX_SOUND_SAMPLES + 1];
        assert!(matches!(
            mixer.load_sound("long".into(), too_long),
            Err(SoundError::TooLong { .. })
        ));
        assert_eq!(
            mixer.play("nothing", [0.0; 3]),
            Err(SoundError::Unknown("nothing".into()))
        );
        for i in 0..MAX_SOUNDS {
            mixer
                .load_sound(format!("s{i}"), vec![0.1; 10])
                .expect("room");
        }
        assert_eq!(
            mixer.load_sound("one more".into(), vec![0.1; 10]),
            Err(SoundError::TooMany("one more".into()))
        );
        // Replacing one by name is fine; a burst plays only its first few at once.
        mixer
            .load_sound("s0".into(), vec![f32::NAN; 960])
            .expect("replaced");
        let played = (0..10)
            .filter(|_| mixer.play("s0", [1.0, 0.0, 0.0]) == Ok(true))
            .count();
        assert_eq!(played, crate::audio::spatial::MAX_ONE_SHOTS);
        assert_eq!(mixer.play("s0", [f32::NAN, 0.0, 0.0]), Ok(false));
        // Its NaN samples were made silence.
        let mut out = vec![0.0; 1920];
        mixer.render(&mut Voices::default(), &mut out);
        assert!(out.iter().all(|s| *s == 0.0));
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
