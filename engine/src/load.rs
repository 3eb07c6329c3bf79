//! `rotunda load-test`: many publishers from one process, for benchmarks and for sizing a relay
//! (in the manner of LiveKit's `lk load-test`).
//!
//! Each publisher is a real [`Call`](crate::Call) with its own QUIC session: it joins, publishes
//! its camera in simulcast layers and its microphone, answers the relay's layer choices and
//! keyframe requests, and subscribes to nothing. What would make one process of a hundred
//! publishers CPU-bound is replaced: pictures are not encoded live but replayed from clips
//! encoded once per publisher and layer (the test pattern with that publisher's own marks, so
//! receivers still check who sent what), and sound from packets encoded once. `speakers` of
//! them speak (a tone); the others' microphones are open but silent.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::VideoSpec;
use crate::call::{BotReport, CallConfig, CallEvent, Command, Sources};
use crate::codec::native::NativeCodecs;
use crate::codec::{
    AudioDecoder, AudioEncoder, CodecError, Codecs, EncodedAudio, EncodedVideo, VideoDecoder,
    VideoEncoder, VideoEncoderConfig, Wake,
};
use crate::driver::{self, Outputs, Parts};
use crate::media::pattern::TestPattern;
use crate::media::tone::Tone;
use crate::media::{AUDIO_FRAME_SAMPLES, AudioSource, VideoFrame, VideoSource};
use crate::session::JoinOptions;
use crate::sync::lock;

/// Pictures in a clip: one second at 30 fps, starting with a keyframe (so a replayed publisher
/// sends a keyframe a second).
const CLIP_FRAMES: usize = 30;
/// Packets in the speakers' clip (one second).
const TONE_PACKETS: usize = 50;
/// Time between two publishers' joins, so a hundred do not knock at once.
const JOIN_SPACING: Duration = Duration::from_millis(25);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// Where, and the name prefix of the publishers (`load-1`, `load-2`, …).
    pub join: JoinOptions,
    /// How many publishers.
    pub publishers: usize,
    /// How many of them speak.
    pub speakers: usize,
    /// How long each stays.
    pub duration: Duration,
    /// Their camera.
    pub video: VideoSpec,
    /// In layers (else one size).
    pub simulcast: bool,
}

/// What a load test did, in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    /// Publishers started.
    pub publishers: usize,
    /// Of which speaking.
    pub speakers: usize,
    /// Publishers that joined and stayed to the end.
    pub completed: usize,
    /// Why the others failed, one line each.
    pub errors: Vec<String>,
    /// Seconds of the longest stay.
    pub seconds: f64,
    /// Video frames sent, all publishers.
    pub video_frames_sent: u64,
    /// Audio packets sent, all publishers.
    pub audio_frames_sent: u64,
    /// Media sent, all publishers, in kb/s.
    pub kbps_sent: f64,
    /// Keyframe requests the publishers received.
    pub keyframe_requests_received: u64,
}

impl LoadSummary {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "load test: {} publishers ({} speaking), {} stayed to the end, {:.0} s\n\
             sent: {} video frames, {} audio packets, {:.0} kb/s in all; {} keyframe requests\n",
            self.publishers,
            self.speakers,
            self.completed,
            self.seconds,
            self.video_frames_sent,
            self.audio_frames_sent,
            self.kbps_sent,
            self.keyframe_requests_received,
        );
        for error in self.errors.iter().take(5) {
            text.push_str(&format!("  failed: {error}\n"));
        }
        text
    }
}

/// Runs the publishers to their end on the current tokio runtime.
pub async fn run(test: LoadTest) -> LoadSummary {
    let clips = Clips::default();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..test.publishers {
        let mut config = CallConfig::new(JoinOptions {
            name: format!("{}-{}", test.join.name, n + 1),
            ..test.join.clone()
        });
        config.duration = Some(test.duration);
        config.video = Some(test.video);
        config.simulcast = test.simulcast;
        config.presented = false;
        config.subscribe = false;
        let speaks = n < test.speakers;
        let clips = clips.clone();
        tasks.spawn(async move {
            tokio::time::sleep(JOIN_SPACING * n as u32).await;
            let wake = Wake::default();
            let sender = Arc::new(AtomicU16::new(0));
            let camera = MarksOnly {
                size: (test.video.width, test.video.height),
                sender: sender.clone(),
            };
            let parts = Parts {
                config,
                codecs: Box::new(ClipCodecs { clips, sender }),
                sources: Sources {
                    screen: None,
                    camera: Some(Box::new(camera) as Box<dyn VideoSource>),
                    microphone: Some(if speaks {
                        Box::new(Tone::new(0)) as Box<dyn AudioSource>
                    } else {
                        Box::new(Silence)
                    }),
                },
                speakers: None,
                wake,
            };
            let (_commands, commands) = tokio::sync::mpsc::channel::<Command>(1);
            driver::run(parts, commands, &mut Quiet).await
        });
    }
    let mut summary = LoadSummary {
        publishers: test.publishers,
        speakers: test.speakers.min(test.publishers),
        ..LoadSummary::default()
    };
    let mut bytes = 0u64;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(report)) => add(&mut summary, &mut bytes, &report),
            Ok(Err(error)) => summary.errors.push(error.to_string()),
            Err(error) => summary.errors.push(format!("task: {error}")),
        }
    }
    if summary.seconds > 0.0 {
        summary.kbps_sent = bytes as f64 * 8.0 / 1000.0 / summary.seconds;
    }
    summary
}

fn add(summary: &mut LoadSummary, bytes: &mut u64, report: &BotReport) {
    match &report.error {
        Some(error) => summary.errors.push(format!("{}: {error}", report.name)),
        None => summary.completed += 1,
    }
    summary.seconds = summary.seconds.max(report.seconds);
    summary.video_frames_sent += report.video_frames_sent;
    summary.audio_frames_sent += report.audio_frames_sent;
    summary.keyframe_requests_received += report.keyframe_requests_received;
    *bytes += report.video_bytes_sent + report.audio_bytes_sent;
}

/// A publisher's outputs: nothing to show.
struct Quiet;

impl Outputs for Quiet {
    fn event(&mut self, _event: CallEvent) {}
    fn picture(&mut self, _picture: crate::call::Decoded) {}
    fn pose(&mut self, _id: rotunda_proto::ParticipantId, _pose: rotunda_proto::Pose) {}
}

/// A camera whose pictures are never looked at (the clips stand in for them): it only passes on
/// the publisher's id for the clips' marks.
struct MarksOnly {
    size: (usize, usize),
    sender: Arc<AtomicU16>,
}

impl VideoSource for MarksOnly {
    fn dimensions(&self) -> (usize, usize) {
        self.size
    }

    fn next_frame(&mut self, _frame: &mut VideoFrame) {}

    fn set_sender(&mut self, sender: u16) {
        self.sender.store(sender, Ordering::Relaxed);
    }
}

/// An open microphone in a quiet room.
struct Silence;

impl AudioSource for Silence {
    fn next_samples(&mut self, samples: &mut [f32; AUDIO_FRAME_SAMPLES]) {
        samples.fill(0.0);
    }
}

/// A publisher's clip for one layer, by publisher id and layer.
type VideoClips = HashMap<(u16, VideoEncoderConfig), Arc<Vec<EncodedVideo>>>;

/// Clips encoded once, shared by every publisher of the process.
#[derive(Clone, Default)]
struct Clips {
    video: Arc<Mutex<VideoClips>>,
    audio: Arc<Mutex<Option<Arc<AudioClip>>>>,
}

struct AudioClip {
    tone: Vec<Bytes>,
    silence: Bytes,
}

impl Clips {
    /// `sender`'s clip at `config`, encoded on first use.
    fn video(
        &self,
        sender: u16,
        config: VideoEncoderConfig,
    ) -> Result<Arc<Vec<EncodedVideo>>, CodecError> {
        if let Some(clip) = lock(&self.video).get(&(sender, config)) {
            return Ok(clip.clone());
        }
        let mut encoder = NativeCodecs::inline().video_encoder(config)?;
        let mut pattern = TestPattern::new(sender, config.width, config.height);
        let mut frame = VideoFrame::new(config.width, config.height);
        let mut clip = Vec::with_capacity(CLIP_FRAMES);
        for n in 0..CLIP_FRAMES {
            pattern.next_frame(&mut frame);
            encoder.encode(&frame, 0, n == 0)?;
            if let Some(chunk) = encoder.poll_output() {
                clip.push(chunk?);
            }
        }
        if clip.first().is_none_or(|chunk| !chunk.keyframe) {
            return Err(CodecError::Start {
                codec: crate::codec::CodecName::H264,
                reason: "the clip does not start with a keyframe".into(),
            });
        }
        let clip = Arc::new(clip);
        lock(&self.video).insert((sender, config), clip.clone());
        Ok(clip)
    }

    fn audio(&self) -> Result<Arc<AudioClip>, CodecError> {
        let mut slot = lock(&self.audio);
        if let Some(clip) = slot.as_ref() {
            return Ok(clip.clone());
        }
        let mut encoder = NativeCodecs::inline().audio_encoder(32_000)?;
        let mut tone = Tone::new(0);
        let mut samples = [0.0f32; AUDIO_FRAME_SAMPLES];
        let mut packets = Vec::with_capacity(TONE_PACKETS);
        for _ in 0..TONE_PACKETS {
            tone.next_samples(&mut samples);
            encoder.encode(&samples, 0)?;
            if let Some(packet) = encoder.poll_output() {
                packets.push(packet?.data);
            }
        }
        encoder.encode(&[0.0; AUDIO_FRAME_SAMPLES], 0)?;
        let silence = encoder
            .poll_output()
            .transpose()?
            .map(|p| p.data)
            .unwrap_or_default();
        let clip = Arc::new(AudioClip {
            tone: packets,
            silence,
        });
        *slot = Some(clip.clone());
        Ok(clip)
    }
}

/// Codecs that replay clips instead of encoding (and decode nothing: publishers subscribe to
/// nothing).
struct ClipCodecs {
    clips: Clips,
    sender: Arc<AtomicU16>,
}

impl Codecs for ClipCodecs {
    fn video_encoder(
        &mut self,
        config: VideoEncoderConfig,
    ) -> Result<Box<dyn VideoEncoder>, CodecError> {
        Ok(Box::new(ClipVideo {
            clips: self.clips.clone(),
            sender: self.sender.clone(),
            config,
            clip: None,
            at: 0,
            out: VecDeque::new(),
        }))
    }

    fn video_decoder(&mut self) -> Result<Box<dyn VideoDecoder>, CodecError> {
        Err(CodecError::Start {
            codec: crate::codec::CodecName::H264,
            reason: "a load-test publisher decodes nothing".into(),
        })
    }

    fn audio_encoder(&mut self, _bitrate: u32) -> Result<Box<dyn AudioEncoder>, CodecError> {
        Ok(Box::new(ClipAudio {
            clip: self.clips.audio()?,
            at: 0,
            silent: 0,
            out: VecDeque::new(),
        }))
    }

    fn audio_decoder(&mut self) -> Result<Box<dyn AudioDecoder>, CodecError> {
        Err(CodecError::Start {
            codec: crate::codec::CodecName::Opus,
            reason: "a load-test publisher decodes nothing".into(),
        })
    }
}

/// One layer's replayed clip, with the publisher's own marks.
struct ClipVideo {
    clips: Clips,
    sender: Arc<AtomicU16>,
    config: VideoEncoderConfig,
    clip: Option<Arc<Vec<EncodedVideo>>>,
    at: usize,
    out: VecDeque<Result<EncodedVideo, CodecError>>,
}

impl VideoEncoder for ClipVideo {
    fn encode(
        &mut self,
        _frame: &VideoFrame,
        timestamp_us: u64,
        keyframe: bool,
    ) -> Result<(), CodecError> {
        if self.clip.is_none() {
            let sender = self.sender.load(Ordering::Relaxed);
            self.clip = Some(self.clips.video(sender, self.config)?);
        }
        let Some(clip) = &self.clip else {
            return Ok(());
        };
        if keyframe || self.at >= clip.len() {
            self.at = 0;
        }
        if let Some(chunk) = clip.get(self.at) {
            self.out.push_back(Ok(EncodedVideo {
                timestamp_us,
                ..chunk.clone()
            }));
        }
        self.at += 1;
        Ok(())
    }

    fn queue_size(&self) -> usize {
        0
    }

    fn poll_output(&mut self) -> Option<Result<EncodedVideo, CodecError>> {
        self.out.pop_front()
    }
}

/// Replayed sound: the tone's packets in turn, or the silence packet for silence.
/// A silent microphone sends one packet in this many frames (Opus DTX: every 400 ms).
const DTX_EVERY: usize = 20;

struct ClipAudio {
    clip: Arc<AudioClip>,
    at: usize,
    /// Silent frames in a row (modulo [`DTX_EVERY`]).
    silent: usize,
    out: VecDeque<Result<EncodedAudio, CodecError>>,
}

impl AudioEncoder for ClipAudio {
    fn encode(
        &mut self,
        samples: &[f32; AUDIO_FRAME_SAMPLES],
        timestamp_us: u64,
    ) -> Result<(), CodecError> {
        let silent = samples.iter().all(|s| *s == 0.0);
        let data = if silent || self.clip.tone.is_empty() {
            // As Opus DTX does: a packet of silence every 400 ms, nothing in between.
            self.silent = (self.silent + 1) % DTX_EVERY;
            if self.silent != 1 {
                return Ok(());
            }
            self.clip.silence.clone()
        } else {
            self.silent = 0;
            self.at = (self.at + 1) % self.clip.tone.len();
            self.clip.tone[self.at].clone()
        };
        if !data.is_empty() {
            self.out.push_back(Ok(EncodedAudio { data, timestamp_us }));
        }
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Result<EncodedAudio, CodecError>> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pattern::read_marks;

    #[test]
    fn a_clip_carries_its_publishers_marks_and_starts_with_a_keyframe() {
        let clips = Clips::default();
        let config = VideoEncoderConfig {
            width: 320,
            height: 240,
            bitrate: 200_000,
            fps: 30,
            screen: false,
        };
        let clip = clips.video(42, config).expect("clip");
        assert_eq!(clip.len(), CLIP_FRAMES);
        assert!(clip[0].keyframe && !clip[1].keyframe);
        let mut decoder = NativeCodecs::inline().video_decoder().expect("decoder");
        decoder.decode(clip[0].clone()).expect("decode");
        let picture = decoder.poll_output().expect("output").expect("decoded");
        let marks = read_marks(&picture.frame.y, 320, 320, 240).expect("marks");
        assert_eq!(marks.sender, 42);
        // Asked again: the same clip, not a second encoding.
        assert!(Arc::ptr_eq(&clip, &clips.video(42, config).expect("clip")));
        let audio = clips.audio().expect("audio");
        assert_eq!(audio.tone.len(), TONE_PACKETS);
        assert!(!audio.silence.is_empty());
    }
}
