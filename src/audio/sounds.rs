//! The room's short sounds: a chime when someone comes in, a falling one when someone goes, a
//! blip for a chat line, each heard from where it happened (the newcomer's place, the leaver's
//! last place, the speaker's panel), so a glance is not needed to know who. They are WAV assets
//! in `assets/sounds/` (natively read from the assets folder, in the browser fetched beside the
//! bundle), decoded here and handed to the call, whose mixer plays them through the same
//! spatial placement as the voices.
//!
//! [`logic_plugin`] decides what to play and where ([`PlayCue`]); [`plugin`] loads the files
//! and forwards the cues to the call. No sound plays for those already in the room when we
//! join, for the chat history a joiner receives, for our own lines, or with the sounds off
//! (top bar, `--no-sounds`, `?sounds=off`).

use std::io::Cursor;
use std::time::Duration;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use rotunda_engine::audio::resample::Resampler;
use rotunda_engine::media::SAMPLE_RATE;
use rotunda_proto::ParticipantId;

use crate::AppSystems;
use crate::call::{
    Call, CallJoined, CallRejoined, ChatReceived, Command, ParticipantArrived, ParticipantLeft,
};
use crate::participants::{Participant, Roster, Target};
use crate::settings::Settings;

/// Longest sound kept: the engine's limit (2 s).
const LONGEST: usize = rotunda_engine::audio::mixer::MAX_SOUND_SAMPLES;
/// After joining (or rejoining), what arrives at once is the room as it was: no sounds.
pub const SETTLING: Duration = Duration::from_millis(1500);
/// A cue whose participant cannot be placed within this long is dropped.
pub const PLACE_WITHIN: Duration = Duration::from_secs(2);

/// The room's sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cue {
    /// Someone came in.
    Join,
    /// Someone left.
    Leave,
    /// Someone said something in the chat.
    Chat,
}

impl Cue {
    /// Every cue.
    pub const ALL: [Cue; 3] = [Cue::Join, Cue::Leave, Cue::Chat];

    /// Its name, for the call's mixer.
    pub fn name(self) -> &'static str {
        match self {
            Cue::Join => "join",
            Cue::Leave => "leave",
            Cue::Chat => "chat",
        }
    }

    /// Its file, under the assets folder.
    pub fn path(self) -> &'static str {
        match self {
            Cue::Join => "sounds/join.wav",
            Cue::Leave => "sounds/leave.wav",
            Cue::Chat => "sounds/chat.wav",
        }
    }
}

/// The room's sounds on or off (the top bar's switch).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoundsOn(pub bool);

impl Default for SoundsOn {
    fn default() -> Self {
        Self(true)
    }
}

/// A cue to play now, from a place in the room.
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct PlayCue {
    /// Which sound.
    pub cue: Cue,
    /// From where.
    pub at: Vec3,
}

/// Cues waiting for their participant's place, and when the room counts as settled.
#[derive(Resource, Debug, Default)]
pub struct PendingCues {
    waiting: Vec<(Cue, ParticipantId, Duration)>,
    quiet_until: Duration,
}

/// Deciding which cue plays where, without devices (what tests build on).
pub fn logic_plugin(app: &mut App) {
    app.init_resource::<SoundsOn>()
        .init_resource::<PendingCues>()
        .add_message::<PlayCue>()
        .add_systems(Startup, apply_settings)
        .add_systems(Update, decide_cues.after(AppSystems::Update));
}

/// Loading the sounds and handing them and the cues to the call.
pub(super) fn plugin(app: &mut App) {
    app.init_asset::<Sound>()
        .register_asset_loader(WavLoader)
        .add_systems(Startup, load_sounds)
        .add_systems(Update, (give_sounds, play_cues).chain().after(decide_cues));
}

fn apply_settings(settings: Option<Res<Settings>>, mut on: ResMut<SoundsOn>) {
    if let Some(settings) = settings {
        on.0 = settings.sounds;
    }
}

/// Turns arrivals, leaves and others' chat lines into cues, each played once its participant
/// has a place: a newcomer where it will stand, a leaver where it stood, a speaker where it
/// stands.
#[derive(bevy::ecs::system::SystemParam)]
pub struct CueInputs<'w, 's> {
    joined: MessageReader<'w, 's, CallJoined>,
    rejoined: MessageReader<'w, 's, CallRejoined>,
    arrived: MessageReader<'w, 's, ParticipantArrived>,
    left: MessageReader<'w, 's, ParticipantLeft>,
    chat: MessageReader<'w, 's, ChatReceived>,
}

/// See [`CueInputs`].
pub fn decide_cues(
    // Real time: a page on a software renderer draws a frame in up to 2 s, and virtual time
    // would count only a quarter of a second of it.
    time: Res<Time<Real>>,
    on: Res<SoundsOn>,
    roster: Res<Roster>,
    mut inputs: CueInputs,
    mut pending: ResMut<PendingCues>,
    participants: Query<(&Participant, &Target, &GlobalTransform)>,
    mut out: MessageWriter<PlayCue>,
) {
    let now = time.elapsed();
    if inputs.joined.read().count() + inputs.rejoined.read().count() > 0 {
        pending.quiet_until = now + SETTLING;
        pending.waiting.clear();
    }
    let fresh = inputs
        .arrived
        .read()
        .map(|arrived| (Cue::Join, arrived.0))
        .chain(inputs.left.read().map(|left| (Cue::Leave, left.id)))
        .chain(
            inputs
                .chat
                .read()
                .filter(|line| Some(line.from) != roster.you)
                .map(|line| (Cue::Chat, line.from)),
        )
        .collect::<Vec<_>>();
    if !on.0 || now < pending.quiet_until {
        pending.waiting.clear();
        return;
    }
    pending
        .waiting
        .extend(fresh.into_iter().map(|(cue, id)| (cue, id, now)));
    pending.waiting.retain(|&(cue, id, since)| {
        let place = participants
            .iter()
            .find(|(participant, ..)| participant.id == id)
            .and_then(|(_, target, transform)| match cue {
                Cue::Join => target.placed.then_some(target.position),
                Cue::Leave | Cue::Chat => Some(transform.translation()),
            });
        match place {
            Some(at) => {
                out.write(PlayCue { cue, at });
                false
            }
            None => now.saturating_sub(since) < PLACE_WITHIN,
        }
    });
}

/// A sound as the mixer wants it: 48 kHz mono samples.
#[derive(Asset, TypePath, Debug)]
pub struct Sound(pub Vec<f32>);

/// Reads `.wav` files (8/16/24/32-bit integer or 32-bit float, any rate, any channels) into
/// 48 kHz mono, at most 2 s.
#[derive(Default, TypePath)]
struct WavLoader;

impl AssetLoader for WavLoader {
    type Asset = Sound;
    type Settings = ();
    type Error = std::io::Error;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        _context: &mut LoadContext<'_>,
    ) -> Result<Sound, std::io::Error> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        decode_wav(&bytes).map(Sound).map_err(std::io::Error::other)
    }

    fn extensions(&self) -> &[&str] {
        &["wav"]
    }
}

/// A WAV file's sound as 48 kHz mono (channels averaged), cut at 2 s.
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    let mut resampler = Resampler::new(spec.sample_rate, SAMPLE_RATE)?;
    let wanted =
        (mono.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(spec.sample_rate.max(1))) as usize;
    let mut out = Vec::with_capacity(wanted);
    resampler.push(&mono, &mut out);
    if resampler.is_active() {
        // Flush what the resampler holds back; the sound keeps its own length below.
        resampler.push(&vec![0.0; spec.sample_rate as usize / 10], &mut out);
    }
    out.truncate(wanted.min(LONGEST));
    Ok(out)
}

/// The sounds being loaded, and which of them the current call has.
#[derive(Resource, Debug, Default)]
struct Sounds {
    handles: Vec<(Cue, Handle<Sound>)>,
    given: Vec<Cue>,
    failed: Vec<Cue>,
    announced: bool,
}

fn load_sounds(mut commands: Commands, assets: Res<AssetServer>) {
    commands.insert_resource(Sounds {
        handles: Cue::ALL
            .iter()
            .map(|cue| (*cue, assets.load(cue.path())))
            .collect(),
        ..default()
    });
}

/// Hands every loaded sound to the call (again to every new call).
fn give_sounds(
    call: Option<Res<Call>>,
    mut sounds: ResMut<Sounds>,
    loaded: Res<Assets<Sound>>,
    assets: Res<AssetServer>,
) {
    let Some(call) = call else {
        return;
    };
    if call.is_added() {
        sounds.given.clear();
    }
    let Sounds {
        handles,
        given,
        failed,
        announced,
    } = &mut *sounds;
    for (cue, handle) in handles.iter() {
        if given.contains(cue) || failed.contains(cue) {
            continue;
        }
        if let Some(bevy::asset::LoadState::Failed(error)) = assets.get_load_state(handle) {
            warn!(
                "the sound {} did not load ({error}); it stays silent",
                cue.path()
            );
            failed.push(*cue);
            continue;
        }
        if let Some(sound) = loaded.get(handle) {
            call.send(Command::Sound {
                name: cue.name().into(),
                samples: sound.0.clone(),
            });
            given.push(*cue);
        }
    }
    if !*announced && given.len() == handles.len() {
        info!("the room's sounds are loaded (join, leave, chat)");
        *announced = true;
    }
}

fn play_cues(call: Option<Res<Call>>, mut cues: MessageReader<PlayCue>) {
    let Some(call) = call else {
        cues.clear();
        return;
    };
    for cue in cues.read() {
        call.send(Command::Play {
            sound: cue.cue.name().into(),
            at: cue.at.to_array(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("writer");
        for s in samples {
            writer.write_sample(*s).expect("sample");
        }
        writer.finalize().expect("finalized");
        bytes.into_inner()
    }

    #[test]
    fn a_wav_becomes_48k_mono_with_its_length_and_level() {
        // Stereo at 48 kHz: the channels are averaged.
        let stereo: Vec<i16> = (0..960).flat_map(|_| [16384, 0]).collect();
        let mono = decode_wav(&wav(48_000, 2, &stereo)).expect("decoded");
        assert_eq!(mono.len(), 960);
        assert!(mono.iter().all(|s| (s - 0.25).abs() < 1e-4));
        // 0.1 s at 24 kHz is 0.1 s at 48 kHz, a tone keeping its level.
        let tone: Vec<i16> = (0..2400)
            .map(|i| ((i as f32 * 0.1).sin() * 16384.0) as i16)
            .collect();
        let up = decode_wav(&wav(24_000, 1, &tone)).expect("decoded");
        assert_eq!(up.len(), 4800);
        let peak = up[1000..4000].iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.05, "peak {peak}");
        // Too long is cut at 2 s; not a WAV is a clear error.
        let long = decode_wav(&wav(48_000, 1, &vec![0; 3 * 48_000])).expect("decoded");
        assert_eq!(long.len(), LONGEST);
        assert!(decode_wav(b"not a wav at all").is_err());
    }

    #[test]
    fn the_room_s_sounds_decode() {
        for cue in Cue::ALL {
            let path = format!("{}/assets/{}", env!("CARGO_MANIFEST_DIR"), cue.path());
            let bytes = std::fs::read(&path).expect("the sound is in assets/");
            let samples = decode_wav(&bytes).expect("decoded");
            assert!(samples.len() > 2000 && samples.len() < LONGEST, "{path}");
            let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            assert!(peak > 0.1 && peak < 0.9, "{path}: peak {peak}");
        }
    }
}
