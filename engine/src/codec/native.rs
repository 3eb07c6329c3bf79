//! Native codecs: H.264 through `openh264` (Cisco's encoder and decoder, built from source), Opus
//! through libopus.
//!
//! As in a browser, each video codec runs on a thread of its own: `encode`/`decode` queue work
//! and return at once, and the output waits until the call polls it (the thread wakes the
//! driver). Opus is fast enough (tens of µs a packet) to run inline. [`NativeCodecs::inline`]
//! runs video inline too: what the call's tests use on their simulated clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};

use super::{
    AudioDecoder, AudioEncoder, CodecError, CodecName, Codecs, DecodedVideo, EncodedAudio,
    EncodedVideo, InlineOpus, OpusFrames, VideoDecoder, VideoEncoder, VideoEncoderConfig, Wake,
};
use crate::media::frame::copy_plane;
use crate::media::{AUDIO_FRAME_SAMPLES, SAMPLE_RATE, VideoFrame};
use crate::sync::lock;

const H264: CodecName = CodecName::H264;
const OPUS: CodecName = CodecName::Opus;

fn h264_failed(error: impl std::fmt::Display) -> CodecError {
    CodecError::Failed {
        codec: H264,
        reason: error.to_string(),
    }
}

fn h264_start(error: impl std::fmt::Display) -> CodecError {
    CodecError::Start {
        codec: H264,
        reason: error.to_string(),
    }
}

fn opus_failed(error: opus::Error) -> CodecError {
    CodecError::Failed {
        codec: OPUS,
        reason: error.to_string(),
    }
}

fn opus_start(error: opus::Error) -> CodecError {
    CodecError::Start {
        codec: OPUS,
        reason: error.to_string(),
    }
}

/// The native codecs of one call.
pub struct NativeCodecs {
    /// Where video codecs run: `Some` on threads of their own (waking the driver), `None` inline.
    wake: Option<Wake>,
}

impl NativeCodecs {
    /// Video codecs on threads of their own, waking `wake` when they have output.
    pub fn new(wake: Wake) -> Self {
        Self { wake: Some(wake) }
    }

    /// Every codec on the caller's thread: output is ready as soon as `encode`/`decode` return.
    pub fn inline() -> Self {
        Self { wake: None }
    }
}

impl Codecs for NativeCodecs {
    fn video_encoder(
        &mut self,
        config: VideoEncoderConfig,
    ) -> Result<Box<dyn VideoEncoder>, CodecError> {
        let mut encoder = H264Encoder::new(config)?;
        Ok(match &self.wake {
            None => Box::new(Inline::new(
                move |(frame, ts, key): (VideoFrame, u64, bool)| {
                    encoder.encode(&frame, ts, key).transpose()
                },
            )),
            Some(wake) => Box::new(Threaded::spawn(
                "video-encode",
                wake.clone(),
                move |(frame, ts, key): (VideoFrame, u64, bool)| {
                    encoder.encode(&frame, ts, key).transpose()
                },
            )?),
        })
    }

    fn video_decoder(&mut self) -> Result<Box<dyn VideoDecoder>, CodecError> {
        let mut decoder = H264Decoder::new()?;
        Ok(match &self.wake {
            None => Box::new(Inline::new(move |chunk: EncodedVideo| {
                decoder.decode(&chunk).transpose()
            })),
            Some(wake) => Box::new(Threaded::spawn(
                "video-decode",
                wake.clone(),
                move |chunk: EncodedVideo| decoder.decode(&chunk).transpose(),
            )?),
        })
    }

    fn audio_encoder(&mut self, bitrate: u32) -> Result<Box<dyn AudioEncoder>, CodecError> {
        Ok(Box::new(OpusEncoder::new(bitrate)?))
    }

    fn audio_decoder(&mut self) -> Result<Box<dyn AudioDecoder>, CodecError> {
        let decoder = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(opus_start)?;
        Ok(Box::new(InlineOpus::new(Libopus(decoder))))
    }
}

/// openh264's encoder for real-time video.
struct H264Encoder {
    encoder: Encoder,
}

impl H264Encoder {
    fn new(config: VideoEncoderConfig) -> Result<Self, CodecError> {
        // A screen is up to 1920x1080 (level 4.1), encoded with openh264's screen-content tools.
        let (level, usage) = if config.screen {
            (Level::Level_4_1, UsageType::ScreenContentRealTime)
        } else {
            (Level::Level_3_1, UsageType::CameraVideoRealTime)
        };
        let settings = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(level)
            .usage_type(usage)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(config.bitrate))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .skip_frames(true)
            // Keyframes come when the call asks for them (periodically and on request).
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            // Neither works with screen content (openh264 turns them off with a warning).
            .adaptive_quantization(!config.screen)
            .background_detection(!config.screen);
        let encoder =
            Encoder::with_api_config(OpenH264API::from_source(), settings).map_err(h264_start)?;
        Ok(Self { encoder })
    }

    /// Encodes one picture; `None` when rate control skipped it.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        timestamp_us: u64,
        keyframe: bool,
    ) -> Result<Option<EncodedVideo>, CodecError> {
        if keyframe {
            self.encoder.force_intra_frame();
        }
        let source = YUVSlices::new(
            (&frame.y, &frame.u, &frame.v),
            (frame.width, frame.height),
            (frame.width, frame.width / 2, frame.width / 2),
        );
        if source.dimensions() != (frame.width, frame.height) {
            return Err(h264_failed("a picture of the wrong size"));
        }
        let bitstream = self.encoder.encode(&source).map_err(h264_failed)?;
        let data = bitstream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedVideo {
            keyframe: matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I),
            data: Bytes::from(data),
            timestamp_us,
        }))
    }
}

/// openh264's decoder; pictures are copied out of it into tightly packed frames.
struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    fn new() -> Result<Self, CodecError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(h264_start)?;
        Ok(Self { decoder })
    }

    /// Decodes one Annex-B picture; `None` when the decoder needs more input first.
    fn decode(&mut self, chunk: &EncodedVideo) -> Result<Option<DecodedVideo>, CodecError> {
        let Some(yuv) = self.decoder.decode(&chunk.data).map_err(h264_failed)? else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        // Even sizes, as I420 wants.
        let (w, h) = (w & !1, h & !1);
        if w < 2 || h < 2 {
            return Err(h264_failed("an empty picture"));
        }
        let mut frame = VideoFrame::new(w, h);
        let (sy, su, sv) = yuv.strides();
        copy_plane(yuv.y(), sy, &mut frame.y, w, h);
        copy_plane(yuv.u(), su, &mut frame.u, w / 2, h / 2);
        copy_plane(yuv.v(), sv, &mut frame.v, w / 2, h / 2);
        Ok(Some(DecodedVideo {
            frame,
            timestamp_us: chunk.timestamp_us,
        }))
    }
}

/// Opus encoder, 48 kHz mono, 20 ms frames.
struct OpusEncoder {
    encoder: opus::Encoder,
    packet: Vec<u8>,
    out: VecDeque<Result<EncodedAudio, CodecError>>,
}

impl OpusEncoder {
    fn new(bitrate: u32) -> Result<Self, CodecError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(opus_start)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate.min(i32::MAX as u32) as i32))
            .map_err(opus_start)?;
        // Silence costs a packet every 400 ms, not every 20 ms (the rest come out as 1–2 byte
        // packets, which are not sent: [`crate::codec::DTX_PACKET_BYTES`]).
        encoder.set_dtx(true).map_err(opus_start)?;
        Ok(Self {
            encoder,
            packet: vec![0; 1500],
            out: VecDeque::new(),
        })
    }
}

impl AudioEncoder for OpusEncoder {
    fn encode(
        &mut self,
        samples: &[f32; AUDIO_FRAME_SAMPLES],
        timestamp_us: u64,
    ) -> Result<(), CodecError> {
        let len = self
            .encoder
            .encode_float(samples, &mut self.packet)
            .map_err(opus_failed)?;
        self.out.push_back(Ok(EncodedAudio {
            data: Bytes::copy_from_slice(&self.packet[..len]),
            timestamp_us,
        }));
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Result<EncodedAudio, CodecError>> {
        self.out.pop_front()
    }
}

/// libopus, with its own packet-loss concealment.
struct Libopus(opus::Decoder);

impl OpusFrames for Libopus {
    fn frame(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        self.0.decode_float(packet, out, false).map_err(opus_failed)
    }
}

/// Most outputs held for the call; older ones are dropped.
const OUTPUTS_KEPT: usize = 64;

/// A codec run on the caller's thread: output is ready when the input call returns.
struct Inline<In, Out> {
    work: Box<dyn FnMut(In) -> Option<Result<Out, CodecError>> + Send>,
    out: VecDeque<Result<Out, CodecError>>,
}

impl<In, Out> Inline<In, Out> {
    fn new(work: impl FnMut(In) -> Option<Result<Out, CodecError>> + Send + 'static) -> Self {
        Self {
            work: Box::new(work),
            out: VecDeque::new(),
        }
    }

    fn push(&mut self, input: In) {
        if let Some(output) = (self.work)(input) {
            if self.out.len() >= OUTPUTS_KEPT {
                self.out.pop_front();
            }
            self.out.push_back(output);
        }
    }
}

/// A codec on a thread of its own: inputs queue up, outputs wait for the call, and the driver
/// is woken for each. Dropping it ends the thread after the work in hand.
struct Threaded<In, Out> {
    jobs: Option<mpsc::Sender<In>>,
    queued: Arc<AtomicUsize>,
    out: Arc<Mutex<VecDeque<Result<Out, CodecError>>>>,
}

impl<In: Send + 'static, Out: Send + 'static> Threaded<In, Out> {
    fn spawn(
        name: &str,
        wake: Wake,
        mut work: impl FnMut(In) -> Option<Result<Out, CodecError>> + Send + 'static,
    ) -> Result<Self, CodecError> {
        let (jobs, inbox) = mpsc::channel::<In>();
        let queued = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(Mutex::new(VecDeque::new()));
        let (left, done) = (queued.clone(), out.clone());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(input) = inbox.recv() {
                    let output = work(input);
                    left.fetch_sub(1, Ordering::Relaxed);
                    if let Some(output) = output {
                        let mut done = lock(&done);
                        if done.len() >= OUTPUTS_KEPT {
                            done.pop_front();
                        }
                        done.push_back(output);
                        drop(done);
                        wake.notify_one();
                    }
                }
            })
            .map_err(|error| CodecError::Start {
                codec: H264,
                reason: format!("no thread: {error}"),
            })?;
        Ok(Self {
            jobs: Some(jobs),
            queued,
            out,
        })
    }

    fn push(&mut self, input: In) -> Result<(), CodecError> {
        let jobs = self.jobs.as_ref().ok_or(CodecError::Closed(H264))?;
        self.queued.fetch_add(1, Ordering::Relaxed);
        jobs.send(input).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            CodecError::Closed(H264)
        })
    }

    fn queue_size(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn pop(&mut self) -> Option<Result<Out, CodecError>> {
        lock(&self.out).pop_front()
    }
}

impl<In, Out> Drop for Threaded<In, Out> {
    fn drop(&mut self) {
        // The thread sees its queue closed and ends; it is not waited for (it may be in the middle
        // of a picture, and the call must not stall on it).
        drop(self.jobs.take());
    }
}

impl VideoEncoder for Inline<(VideoFrame, u64, bool), EncodedVideo> {
    fn encode(&mut self, frame: &VideoFrame, ts: u64, key: bool) -> Result<(), CodecError> {
        self.push((frame.clone(), ts, key));
        Ok(())
    }

    fn queue_size(&self) -> usize {
        0
    }

    fn poll_output(&mut self) -> Option<Result<EncodedVideo, CodecError>> {
        self.out.pop_front()
    }
}

impl VideoEncoder for Threaded<(VideoFrame, u64, bool), EncodedVideo> {
    fn encode(&mut self, frame: &VideoFrame, ts: u64, key: bool) -> Result<(), CodecError> {
        self.push((frame.clone(), ts, key))
    }

    fn queue_size(&self) -> usize {
        Threaded::queue_size(self)
    }

    fn poll_output(&mut self) -> Option<Result<EncodedVideo, CodecError>> {
        self.pop()
    }
}

impl VideoDecoder for Inline<EncodedVideo, DecodedVideo> {
    fn decode(&mut self, chunk: EncodedVideo) -> Result<(), CodecError> {
        self.push(chunk);
        Ok(())
    }

    fn queue_size(&self) -> usize {
        0
    }

    fn poll_output(&mut self) -> Option<Result<DecodedVideo, CodecError>> {
        self.out.pop_front()
    }
}

impl VideoDecoder for Threaded<EncodedVideo, DecodedVideo> {
    fn decode(&mut self, chunk: EncodedVideo) -> Result<(), CodecError> {
        self.push(chunk)
    }

    fn queue_size(&self) -> usize {
        Threaded::queue_size(self)
    }

    fn poll_output(&mut self) -> Option<Result<DecodedVideo, CodecError>> {
        self.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DTX_PACKET_BYTES;
    use crate::media::VideoSource;
    use crate::media::pattern::{TestPattern, read_marks};

    fn config() -> VideoEncoderConfig {
        VideoEncoderConfig {
            width: 320,
            height: 240,
            bitrate: 300_000,
            fps: 30,
            screen: false,
        }
    }

    #[test]
    fn video_round_trips_with_its_marks_and_times() {
        let mut codecs = NativeCodecs::inline();
        let mut encoder = codecs.video_encoder(config()).expect("encoder");
        let mut decoder = codecs.video_decoder().expect("decoder");
        let mut pattern = TestPattern::new(42, 320, 240);
        let mut frame = VideoFrame::new(320, 240);
        for n in 0..10u64 {
            pattern.next_frame(&mut frame);
            encoder.encode(&frame, 1000 + n, n == 0).expect("encode");
            let chunk = encoder.poll_output().expect("output").expect("encoded");
            assert_eq!(chunk.keyframe, n == 0, "picture {n}");
            decoder.decode(chunk).expect("decode");
            let picture = decoder.poll_output().expect("output").expect("decoded");
            assert_eq!(picture.timestamp_us, 1000 + n);
            let marks = read_marks(&picture.frame.y, 320, 320, 240).expect("marks");
            assert_eq!((marks.sender, u64::from(marks.frame)), (42, n));
        }
    }

    #[test]
    fn silence_is_discontinuous_and_speech_is_not() {
        let mut encoder = NativeCodecs::inline()
            .audio_encoder(32_000)
            .expect("encoder");
        let mut sizes = |tone: bool| -> Vec<usize> {
            use crate::media::AudioSource;
            let mut source = crate::media::tone::Tone::new(0);
            let mut samples = [0.0f32; AUDIO_FRAME_SAMPLES];
            (0..100)
                .map(|n| {
                    if tone {
                        source.next_samples(&mut samples);
                    }
                    encoder.encode(&samples, n).expect("encode");
                    encoder
                        .poll_output()
                        .expect("a packet")
                        .expect("encoded")
                        .data
                        .len()
                })
                .collect()
        };
        let speech = sizes(true);
        assert!(
            speech.iter().all(|len| *len > DTX_PACKET_BYTES),
            "{speech:?}"
        );
        // Two seconds of silence: after a moment, a packet to send every 400 ms at most.
        let silence = sizes(false);
        let sent = silence[20..]
            .iter()
            .filter(|len| **len > DTX_PACKET_BYTES)
            .count();
        assert!(sent <= 5, "{silence:?}");
    }

    #[test]
    fn threaded_video_wakes_the_caller() {
        let wake = Wake::default();
        let mut codecs = NativeCodecs::new(wake.clone());
        let mut encoder = codecs.video_encoder(config()).expect("encoder");
        let mut pattern = TestPattern::new(1, 320, 240);
        let mut frame = VideoFrame::new(320, 240);
        pattern.next_frame(&mut frame);
        encoder.encode(&frame, 5, true).expect("encode");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let woken = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), wake.notified()).await
        });
        assert!(woken.is_ok(), "the encoder thread woke the caller");
        assert!(
            encoder
                .poll_output()
                .expect("output")
                .expect("encoded")
                .keyframe
        );
        assert_eq!(encoder.queue_size(), 0);
    }

    #[test]
    fn a_corrupt_picture_is_an_error_not_a_crash() {
        let mut decoder = NativeCodecs::inline().video_decoder().expect("decoder");
        let garbage = EncodedVideo {
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13]),
            keyframe: true,
            timestamp_us: 0,
        };
        decoder.decode(garbage).expect("queued");
        // openh264 may hold on to it or refuse it; it must not produce a picture.
        if let Some(output) = decoder.poll_output() {
            assert!(output.is_err());
        }
    }

    #[test]
    fn audio_round_trips_and_conceals() {
        let mut codecs = NativeCodecs::inline();
        let mut encoder = codecs.audio_encoder(32_000).expect("encoder");
        let mut decoder = codecs.audio_decoder().expect("decoder");
        let tone: Vec<f32> = (0..AUDIO_FRAME_SAMPLES)
            .map(|i| (i as f32 * 0.05).sin() * 0.3)
            .collect();
        let mut samples = [0.0f32; AUDIO_FRAME_SAMPLES];
        samples.copy_from_slice(&tone);
        for n in 0..5 {
            encoder.encode(&samples, n).expect("encode");
            let packet = encoder.poll_output().expect("output").expect("encoded");
            decoder
                .decode(packet.data, packet.timestamp_us)
                .expect("decode");
            let out = decoder.poll_output().expect("output").expect("decoded");
            assert_eq!(
                (out.samples.len(), out.concealed),
                (AUDIO_FRAME_SAMPLES, false)
            );
        }
        decoder.conceal(99).expect("conceal");
        let made_up = decoder.poll_output().expect("output").expect("concealed");
        assert!(made_up.concealed);
        assert!(
            made_up.samples.iter().any(|s| s.abs() > 0.01),
            "not silence"
        );
        assert!(
            decoder.decode(Bytes::from_static(&[0xff; 3]), 0).is_err(),
            "garbage (63 frames of 20 ms) is refused"
        );
        assert!(decoder.poll_output().is_none());
    }
}
