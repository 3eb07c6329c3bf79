//! What the call engine shares with an application (the windowed client): commands in, events
//! out, and the latest decoded picture and voice of every participant.
//!
//! Commands go through a bounded channel. Events (joins, leaves, mutes, chat, statistics, the
//! end) must all arrive and are few (the relay limits every sender's control messages), so their
//! channel is unbounded; the frequent ones, poses, pictures and voices, are mailboxes the engine
//! overwrites and the application reads at its own pace, so a slow renderer never backs up the
//! network, and a fast network never grows memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use rotunda_proto::{FromRelay, ParticipantId, ParticipantInfo, Pose};

use super::report::BotReport;
use crate::media::{DecodedPicture, SourceState, VideoFrame};
use crate::sync::lock;

/// Commands queued from the application to the engine.
pub const COMMAND_QUEUE: usize = 256;
/// Decoded audio held per voice before playout catches up (150 ms at 48 kHz): the speakers' clock
/// and the call's 20 ms tick drift apart, and this bounds how far.
const VOICE_CAPACITY: usize = 7_200;
/// Where playout catches up to (60 ms).
const VOICE_CATCH_UP: usize = 2_880;
/// Audio queued before a voice starts playing, and again after it ran dry (40 ms): the tick's
/// jitter is absorbed here instead of cutting silence into speech.
const VOICE_PRIME: usize = 1_920;

/// What the application asks of the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Say something in the chat.
    Chat(String),
    /// Turn the microphone on or off (off: nothing is sent, others see it muted).
    Microphone(bool),
    /// Turn the camera on or off.
    Camera(bool),
    /// Where the local participant stands and looks.
    Pose(Pose),
    /// Leave the room and end the call.
    Leave,
}

/// What happened in the call.
#[derive(Debug, Clone)]
pub enum CallEvent {
    /// The devices are open (or stood in for): what they turned out to be.
    Devices {
        /// The camera.
        camera: SourceState,
        /// The microphone.
        microphone: SourceState,
    },
    /// Joined: our id and who was already there.
    Joined {
        /// Our id.
        you: ParticipantId,
        /// Everyone else present.
        roster: Vec<ParticipantInfo>,
    },
    /// A message from the relay (joins, leaves, mutes, chat, errors; poses go to [`Poses`]).
    Relay(FromRelay),
    /// Live statistics, once a second.
    Stats(LiveStats),
    /// The call ended; the report says why when it ended early.
    Ended(Box<BotReport>),
    /// The call could not start.
    Failed(String),
}

/// Live statistics of the call, for the overlay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    /// Round-trip time to the relay.
    pub rtt_ms: f64,
    /// Bitrate sent, video and audio, in kb/s.
    pub kbps_out: f64,
    /// Bitrate received, in kb/s.
    pub kbps_in: f64,
    /// Per remote participant.
    pub peers: Vec<LivePeer>,
}

/// Live statistics of one remote participant.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePeer {
    /// Who.
    pub id: ParticipantId,
    /// Video frames decoded in the last second.
    pub fps: f64,
    /// Bitrate received from them, in kb/s.
    pub kbps: f64,
    /// Share of audio packets concealed in the last second (0..1).
    pub audio_loss: f64,
    /// Audio packets waiting in the jitter buffer.
    pub jitter_depth: usize,
    /// Capture to decoded picture, median of the last frames.
    pub video_latency_ms: f64,
}

/// The latest pose of every participant that moved.
#[derive(Debug, Default)]
pub struct Poses {
    latest: Mutex<HashMap<ParticipantId, Pose>>,
}

impl Poses {
    /// Keeps `pose` as the latest of `id`.
    pub fn store(&self, id: ParticipantId, pose: Pose) {
        lock(&self.latest).insert(id, pose);
    }

    /// The poses stored since the last call.
    pub fn take(&self) -> Vec<(ParticipantId, Pose)> {
        lock(&self.latest).drain().collect()
    }

    /// Forgets someone who left.
    pub fn remove(&self, id: ParticipantId) {
        lock(&self.latest).remove(&id);
    }
}

/// The latest decoded picture of one participant.
#[derive(Debug)]
pub struct Picture {
    /// The picture, I420.
    pub frame: VideoFrame,
    /// Counts up with every new picture.
    pub serial: u64,
}

/// The latest decoded picture of every participant, and whose pictures nobody looks at.
#[derive(Debug, Default)]
pub struct Pictures {
    slots: Mutex<HashMap<ParticipantId, Picture>>,
    hidden: Mutex<HashSet<ParticipantId>>,
}

impl Pictures {
    /// Marks `id`'s panel as out of sight (or too small to matter): its video is not decoded
    /// until it shows again, then from the next keyframe.
    pub fn set_hidden(&self, id: ParticipantId, hidden: bool) {
        let mut set = lock(&self.hidden);
        if hidden {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    /// Whether `id`'s video is out of sight.
    pub fn is_hidden(&self, id: ParticipantId) -> bool {
        lock(&self.hidden).contains(&id)
    }

    /// Stores `picture` as the latest of `id`, reusing the slot's buffers.
    pub fn store(&self, id: ParticipantId, picture: &DecodedPicture<'_>) {
        self.store_with(id, |slot| picture.copy_to(slot));
    }

    /// Stores a frame as the latest of `id` (the self-view, tests).
    pub fn store_frame(&self, id: ParticipantId, frame: &VideoFrame) {
        self.store_with(id, |slot| slot.clone_from(frame));
    }

    /// Writes the latest picture of `id` with `fill`, into the slot's buffers, and counts it.
    fn store_with(&self, id: ParticipantId, fill: impl FnOnce(&mut VideoFrame)) {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(id).or_insert_with(|| Picture {
            frame: VideoFrame::new(2, 2),
            serial: 0,
        });
        fill(&mut slot.frame);
        slot.serial += 1;
    }

    /// Calls `read` with the picture of `id` when it is newer than `seen`; returns its serial.
    pub fn read_newer<R>(
        &self,
        id: ParticipantId,
        seen: u64,
        read: impl FnOnce(&VideoFrame) -> R,
    ) -> Option<(u64, R)> {
        let slots = lock(&self.slots);
        let slot = slots.get(&id).filter(|slot| slot.serial > seen)?;
        Some((slot.serial, read(&slot.frame)))
    }

    /// Forgets the picture of someone who left.
    pub fn remove(&self, id: ParticipantId) {
        lock(&self.slots).remove(&id);
        self.set_hidden(id, false);
    }
}

#[derive(Debug, Default)]
struct VoiceQueue {
    samples: VecDeque<f32>,
    level: f32,
    /// Playing (primed); false until [`VOICE_PRIME`] samples wait.
    playing: bool,
}

/// Decoded audio of every participant, waiting for the speakers, and how loud each one is.
#[derive(Debug, Default)]
pub struct Voices {
    queues: Mutex<HashMap<ParticipantId, VoiceQueue>>,
}

impl Voices {
    /// Appends 20 ms of decoded audio of `id` (dropping the oldest beyond 200 ms) and updates its
    /// level.
    pub fn push(&self, id: ParticipantId, samples: &[i16]) {
        let mut queues = lock(&self.queues);
        let queue = queues.entry(id).or_default();
        let mut energy = 0.0f32;
        for &sample in samples {
            let value = f32::from(sample) / 32768.0;
            energy += value * value;
            queue.samples.push_back(value);
        }
        if queue.samples.len() > VOICE_CAPACITY {
            let excess = queue.samples.len() - VOICE_CATCH_UP;
            queue.samples.drain(..excess);
        }
        let rms = (energy / samples.len().max(1) as f32).sqrt();
        // Fast attack, slower release: a glow that follows speech without flicker.
        let smoothing = if rms > queue.level { 0.6 } else { 0.15 };
        queue.level += (rms - queue.level) * smoothing;
    }

    /// Takes up to `out.len()` samples of `id` into `out`, padding with silence; returns how
    /// many were real.
    pub fn pull(&self, id: ParticipantId, out: &mut [f32]) -> usize {
        let mut queues = lock(&self.queues);
        let Some(queue) = queues.get_mut(&id) else {
            out.fill(0.0);
            return 0;
        };
        if !queue.playing && queue.samples.len() >= VOICE_PRIME.max(out.len()) {
            queue.playing = true;
        }
        if !queue.playing {
            out.fill(0.0);
            return 0;
        }
        if queue.samples.len() < out.len() {
            // Ran dry: play what is left, then prime again.
            queue.playing = false;
        }
        let n = out.len().min(queue.samples.len());
        for (slot, sample) in out.iter_mut().zip(queue.samples.drain(..n)) {
            *slot = sample;
        }
        out[n..].fill(0.0);
        if n == 0 {
            // Nothing played: the level decays.
            queue.level *= 0.9;
        }
        n
    }

    /// Everyone with a queue, into `ids` (cleared first; no allocation once it is big enough).
    pub fn ids_into(&self, ids: &mut Vec<ParticipantId>) {
        ids.clear();
        let queues = lock(&self.queues);
        ids.extend(queues.keys().copied());
    }

    /// How loud `id` has been lately (RMS, 0..1).
    pub fn level(&self, id: ParticipantId) -> f32 {
        let queues = lock(&self.queues);
        queues.get(&id).map_or(0.0, |queue| queue.level)
    }

    /// Marks `id` as silent now (muted or gone quiet).
    pub fn silence(&self, id: ParticipantId) {
        let mut queues = lock(&self.queues);
        if let Some(queue) = queues.get_mut(&id) {
            queue.level = 0.0;
        }
    }

    /// Forgets someone who left.
    pub fn remove(&self, id: ParticipantId) {
        lock(&self.queues).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_are_bounded_and_pulled_in_order() {
        let voices = Voices::default();
        let id = ParticipantId(3);
        let mut out = vec![0.0; 960];
        // Not primed yet: 20 ms waiting is not enough to start.
        voices.push(id, &[100; 960]);
        assert_eq!(voices.pull(id, &mut out), 0);
        voices.push(id, &[200; 960]);
        assert_eq!(voices.pull(id, &mut out), 960, "primed at 40 ms");
        assert!((out[0] - 100.0 / 32768.0).abs() < 1e-6);
        // A burst beyond 150 ms is cut back to the newest 60 ms: 20 ms were left, the seventh
        // block pushed makes 160 ms, cut to blocks 4, 5 and 6; then 7, 8 and 9 follow.
        for i in 0..10 {
            voices.push(id, &[i as i16 * 1000; 960]);
        }
        assert_eq!(voices.pull(id, &mut out), 960);
        assert!(
            (out[0] - 4000.0 / 32768.0).abs() < 1e-6,
            "{}",
            out[0] * 32768.0
        );
        assert!(voices.level(id) > 0.0);
        assert_eq!(voices.pull(ParticipantId(9), &mut out), 0);
        assert!(out.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn pictures_are_read_once_per_serial() {
        let pictures = Pictures::default();
        let id = ParticipantId(1);
        assert!(pictures.read_newer(id, 0, |_| ()).is_none());
        pictures.store_frame(id, &VideoFrame::new(4, 4));
        let (serial, width) = pictures.read_newer(id, 0, |f| f.width).expect("a picture");
        assert_eq!((serial, width), (1, 4));
        assert!(pictures.read_newer(id, serial, |_| ()).is_none());
        pictures.remove(id);
        assert!(pictures.read_newer(id, 0, |_| ()).is_none());
    }
}
