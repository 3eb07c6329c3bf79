//! The desktop's devices: the camera through nokhwa, the microphone and speakers through cpal
//! (ALSA/PulseAudio, CoreAudio, WASAPI).
//!
//! A cpal stream may not move between threads, so each one lives on a thread of its own that
//! holds it until its [`DeviceThread`] is dropped (with the engine's source or speakers that own
//! it). The callbacks take no lock and allocate nothing: they trade samples with the engine
//! through an `rtrb` ring, and the engine's side resamples (`rubato`) when the device does not run
//! at 48 kHz. A device that cannot open is reported and replaced: the microphone by silence, the
//! speakers by a clock that keeps the mixer (and the speaking glow) running.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig};
use rotunda_engine::VideoSpec;
use rotunda_engine::audio::resample::Resampler;
use rotunda_engine::audio::{Clock, Speakers};
use rotunda_engine::media::{
    AUDIO_FRAME_SAMPLES, AudioSource, SAMPLE_RATE, Silence, SourceState, VideoSource,
};
use rtrb::{Consumer, Producer, RingBuffer};
use web_time::Instant;

use super::{DeviceList, camera};
use crate::settings::DeviceChoice;

/// Microphone samples kept before the oldest are dropped (100 ms at 48 kHz).
const MICROPHONE_BACKLOG: usize = 4_800;
/// What the speakers' ring holds, at most (250 ms).
const SPEAKER_RING: Duration = Duration::from_millis(250);
/// How full the engine keeps the speakers' ring (40 ms): the latency the speakers add.
const SPEAKER_TARGET: Duration = Duration::from_millis(40);

/// A device stream (or its stand-in) running on its own thread; stops when dropped.
pub struct DeviceThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The cameras and microphones the join screen offers, as (choice, label).
pub fn list_devices() -> (DeviceList, DeviceList) {
    let cameras = camera::list()
        .into_iter()
        .map(|(index, name)| (index.to_string(), format!("{index}: {name}")))
        .collect();
    let host = cpal::default_host();
    let microphones = host
        .input_devices()
        .map(|devices| devices.filter_map(|d| d.name().ok()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, name)| (index.to_string(), format!("{index}: {name}")))
        .collect();
    (cameras, microphones)
}

/// Opens the camera: a source for the engine (none: the synthetic pattern, or no video when the
/// state is [`SourceState::Off`]).
pub fn open_camera(
    choice: &DeviceChoice,
    spec: VideoSpec,
) -> (Option<Box<dyn VideoSource>>, SourceState) {
    camera::open(choice, spec)
}

fn find_device(choice: &DeviceChoice, input: bool) -> Result<cpal::Device, String> {
    let host = cpal::default_host();
    let what = if input { "microphone" } else { "speakers" };
    match choice {
        DeviceChoice::Named(name) => {
            let devices: Vec<cpal::Device> = if input {
                host.input_devices().map(Iterator::collect)
            } else {
                host.output_devices().map(Iterator::collect)
            }
            .map_err(|e| format!("no {what}: {e}"))?;
            if let Ok(index) = name.parse::<usize>() {
                return devices
                    .into_iter()
                    .nth(index)
                    .ok_or_else(|| format!("no {what} number {index}"));
            }
            devices
                .into_iter()
                .find(|d| d.name().is_ok_and(|n| n.contains(name.as_str())))
                .ok_or_else(|| format!("no {what} named {name:?}"))
        }
        _ => if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or_else(|| format!("no {what} found")),
    }
}

/// The device's configuration closest to 48 kHz, preferring f32 samples: 48 kHz itself when it
/// has it, otherwise its default rate (resampled on the engine's side).
fn config_for(device: &cpal::Device, input: bool) -> Result<(StreamConfig, SampleFormat), String> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device.supported_input_configs().map(Iterator::collect)
    } else {
        device.supported_output_configs().map(Iterator::collect)
    }
    .map_err(|e| e.to_string())?;
    let rate = cpal::SampleRate(SAMPLE_RATE);
    let usable = |format: SampleFormat| {
        ranges.iter().find(|r| {
            r.sample_format() == format
                && r.min_sample_rate() <= rate
                && rate <= r.max_sample_rate()
        })
    };
    if let Some(range) = usable(SampleFormat::F32).or_else(|| usable(SampleFormat::I16)) {
        let supported = (*range).with_sample_rate(rate);
        return Ok((supported.config(), supported.sample_format()));
    }
    let default = if input {
        device.default_input_config()
    } else {
        device.default_output_config()
    }
    .map_err(|e| format!("no usable mode: {e}"))?;
    match default.sample_format() {
        SampleFormat::F32 | SampleFormat::I16 => Ok((default.config(), default.sample_format())),
        other => Err(format!("samples in {other} are not supported")),
    }
}

/// Builds a stream on a new thread, which keeps it until the returned handle is dropped.
fn spawn_stream(
    name: &str,
    build: impl FnOnce() -> Result<(cpal::Stream, String), String> + Send + 'static,
) -> Result<(DeviceThread, String), String> {
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let stream = build().and_then(|(stream, name)| {
                stream.play().map_err(|e| e.to_string())?;
                Ok((stream, name))
            });
            match stream {
                Ok((stream, name)) => {
                    let _ = ready_tx.send(Ok(name));
                    // Hold the stream until told to stop (the sender is dropped).
                    let _ = stopped.recv();
                    drop(stream);
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let name = ready
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the device did not start".to_owned())??;
    Ok((
        DeviceThread {
            stop: Some(stop),
            thread: Some(thread),
        },
        name,
    ))
}

/// The microphone as the engine's source: what the device's callback put in the ring, at the
/// device's rate, brought to 48 kHz here.
struct Microphone {
    ring: Consumer<f32>,
    resampler: Resampler,
    ready: std::collections::VecDeque<f32>,
    chunk: Vec<f32>,
    _thread: DeviceThread,
}

impl AudioSource for Microphone {
    fn next_samples(&mut self, out: &mut [f32; AUDIO_FRAME_SAMPLES]) {
        self.chunk.clear();
        while let Ok(sample) = self.ring.pop() {
            self.chunk.push(sample);
        }
        self.resampler.push(&self.chunk, &mut self.ready);
        let excess = self.ready.len().saturating_sub(MICROPHONE_BACKLOG);
        self.ready.drain(..excess);
        let n = out.len().min(self.ready.len());
        for (slot, sample) in out.iter_mut().zip(self.ready.drain(..n)) {
            *slot = sample;
        }
        out[n..].fill(0.0);
    }
}

/// Opens the microphone the user chose. No source with [`SourceState::Synthetic`] means the
/// engine's tone; with [`SourceState::Off`], no audio is published.
pub fn open_microphone(choice: &DeviceChoice) -> (Option<Box<dyn AudioSource>>, SourceState) {
    match choice {
        DeviceChoice::None => return (None, SourceState::Off),
        DeviceChoice::Synthetic => return (None, SourceState::Synthetic),
        _ => {}
    }
    let choice = choice.clone();
    let (rate_tx, rate_rx) = mpsc::channel();
    let (producer, consumer) = RingBuffer::<f32>::new(SAMPLE_RATE as usize);
    let opened = spawn_stream("microphone", move || {
        let device = find_device(&choice, true)?;
        let name = device.name().unwrap_or_else(|_| "microphone".into());
        let (config, format) = config_for(&device, true)?;
        let _ = rate_tx.send(config.sample_rate.0);
        let channels = usize::from(config.channels.max(1));
        let error = |error: cpal::StreamError| tracing::warn!(%error, "microphone");
        let mut ring = producer;
        let stream = match format {
            SampleFormat::F32 => device.build_input_stream(
                &config,
                move |data: &[f32], _: &_| capture(&mut ring, data, channels, |s| s),
                error,
                None,
            ),
            _ => device.build_input_stream(
                &config,
                move |data: &[i16], _: &_| {
                    capture(&mut ring, data, channels, |s| f32::from(s) / 32768.0)
                },
                error,
                None,
            ),
        }
        .map_err(|e| e.to_string())?;
        Ok((stream, name))
    });
    let rate = rate_rx.try_recv().unwrap_or(SAMPLE_RATE);
    let opened = opened.and_then(|(thread, name)| {
        let resampler = Resampler::new(rate, SAMPLE_RATE)?;
        if resampler.is_active() {
            tracing::info!(
                rate,
                "the microphone runs at {rate} Hz: resampled to 48 kHz"
            );
        }
        Ok((thread, name, resampler))
    });
    match opened {
        Ok((thread, name, resampler)) => (
            Some(Box::new(Microphone {
                ring: consumer,
                resampler,
                ready: std::collections::VecDeque::with_capacity(MICROPHONE_BACKLOG),
                chunk: Vec::with_capacity(SAMPLE_RATE as usize / 10),
                _thread: thread,
            })),
            SourceState::Live(name),
        ),
        Err(reason) => (Some(Box::new(Silence)), SourceState::Fallback(reason)),
    }
}

/// The microphone's callback: each frame of `data` mixed down to mono into the ring; what does
/// not fit (the engine stopped reading) is dropped. No lock, no allocation.
fn capture<T: Copy>(
    ring: &mut Producer<f32>,
    data: &[T],
    channels: usize,
    to_f32: impl Fn(T) -> f32,
) {
    for frame in data.chunks(channels) {
        let sum: f32 = frame.iter().map(|&s| to_f32(s)).sum();
        let _ = ring.push(sum / channels as f32);
    }
}

/// The speakers as the engine sees them: a ring the device's callback plays from, kept
/// [`SPEAKER_TARGET`] full, the mix resampled to the device's rate on the way in.
struct SpeakerRing {
    ring: Producer<f32>,
    rate: u32,
    left: Resampler,
    right: Resampler,
    split: (Vec<f32>, Vec<f32>),
    resampled: (Vec<f32>, Vec<f32>),
    _thread: DeviceThread,
}

impl Speakers for SpeakerRing {
    fn wanted(&mut self, _now: Instant) -> usize {
        let capacity = self.ring.buffer().capacity();
        let queued = (capacity - self.ring.slots()) / 2;
        let target = (SPEAKER_TARGET.as_secs_f64() * f64::from(self.rate)) as usize;
        // Device frames wanted, in 48 kHz frames.
        let wanted = target.saturating_sub(queued);
        (wanted as f64 * f64::from(SAMPLE_RATE) / f64::from(self.rate)).ceil() as usize
    }

    fn play(&mut self, stereo: &[f32]) {
        let (left, right) = &mut self.split;
        left.clear();
        right.clear();
        for frame in stereo.chunks_exact(2) {
            left.push(frame[0]);
            right.push(frame[1]);
        }
        let (out_left, out_right) = &mut self.resampled;
        out_left.clear();
        out_right.clear();
        self.left.push(left, out_left);
        self.right.push(right, out_right);
        for (l, r) in out_left.iter().zip(out_right.iter()) {
            if self.ring.slots() < 2 {
                break;
            }
            let _ = self.ring.push(*l);
            let _ = self.ring.push(*r);
        }
    }
}

/// Opens the speakers the user chose, for the engine to play its mix on; without working
/// speakers, a clock stands in at the same pace so the call behaves the same.
pub fn open_speakers(choice: &DeviceChoice) -> (Box<dyn Speakers>, SourceState) {
    if *choice == DeviceChoice::None {
        return (Box::new(Clock::new()), SourceState::Off);
    }
    let choice = choice.clone();
    let (rate_tx, rate_rx) = mpsc::channel();
    let opened = spawn_stream("speakers", move || {
        let device = find_device(&choice, false)?;
        let name = device.name().unwrap_or_else(|_| "speakers".into());
        let (config, format) = config_for(&device, false)?;
        let rate = config.sample_rate.0;
        let capacity = (SPEAKER_RING.as_secs_f64() * f64::from(rate)) as usize * 2;
        let (producer, mut ring) = RingBuffer::<f32>::new(capacity.max(2));
        let _ = rate_tx.send((rate, producer));
        let channels = usize::from(config.channels.max(1));
        let error = |error: cpal::StreamError| tracing::warn!(%error, "speakers");
        let stream = match format {
            SampleFormat::F32 => device.build_output_stream(
                &config,
                move |data: &mut [f32], _: &_| playback(&mut ring, data, channels, |s| s),
                error,
                None,
            ),
            _ => device.build_output_stream(
                &config,
                move |data: &mut [i16], _: &_| {
                    playback(&mut ring, data, channels, |s| {
                        (s.clamp(-1.0, 1.0) * 32767.0) as i16
                    })
                },
                error,
                None,
            ),
        }
        .map_err(|e| e.to_string())?;
        Ok((stream, name))
    });
    let opened = opened.and_then(|(thread, name)| {
        let (rate, ring) = rate_rx
            .try_recv()
            .map_err(|_| "the speakers gave no rate".to_owned())?;
        let left = Resampler::new(SAMPLE_RATE, rate)?;
        let right = Resampler::new(SAMPLE_RATE, rate)?;
        if left.is_active() {
            tracing::info!(rate, "the speakers run at {rate} Hz: the mix is resampled");
        }
        Ok((
            SpeakerRing {
                ring,
                rate,
                left,
                right,
                split: (Vec::new(), Vec::new()),
                resampled: (Vec::new(), Vec::new()),
                _thread: thread,
            },
            name,
        ))
    });
    match opened {
        Ok((speakers, name)) => (Box::new(speakers), SourceState::Live(name)),
        Err(reason) => (Box::new(Clock::new()), SourceState::Fallback(reason)),
    }
}

/// The speakers' callback: each output frame from the ring's next stereo pair (silence when it
/// ran dry), the first two channels left and right, any others silent. No lock, no allocation.
fn playback<T: Copy + Default>(
    ring: &mut Consumer<f32>,
    data: &mut [T],
    channels: usize,
    from_f32: impl Fn(f32) -> T,
) {
    for frame in data.chunks_mut(channels) {
        let (left, right) = if ring.slots() >= 2 {
            (ring.pop().unwrap_or(0.0), ring.pop().unwrap_or(0.0))
        } else {
            (0.0, 0.0)
        };
        match frame {
            [mono] => *mono = from_f32((left + right) * 0.5),
            [l, r, rest @ ..] => {
                *l = from_f32(left);
                *r = from_f32(right);
                rest.fill(T::default());
            }
            [] => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_microphone_callback_mixes_down_and_drops_what_does_not_fit() {
        let (mut producer, mut consumer) = RingBuffer::<f32>::new(3);
        capture(
            &mut producer,
            &[0.2f32, 0.4, -1.0, 1.0, 0.5, 0.5, 1.0, 1.0],
            2,
            |s| s,
        );
        let got: Vec<f32> = std::iter::from_fn(|| consumer.pop().ok()).collect();
        assert_eq!(got.len(), 3, "the fourth frame did not fit");
        assert!((got[0] - 0.3).abs() < 1e-6);
        assert_eq!(got[1], 0.0);
    }

    #[test]
    fn the_speakers_callback_plays_the_ring_then_silence() {
        let (mut producer, mut consumer) = RingBuffer::<f32>::new(8);
        for sample in [0.1, 0.2, 0.3, 0.4] {
            let _ = producer.push(sample);
        }
        let mut out = [9i16; 9];
        playback(&mut consumer, &mut out, 3, |s| (s * 1000.0) as i16);
        assert_eq!(out, [100, 200, 0, 300, 400, 0, 0, 0, 0]);
        let mut mono = [1.0f32; 2];
        let _ = producer.push(0.5);
        let _ = producer.push(0.1);
        playback(&mut consumer, &mut mono, 1, |s| s);
        assert!((mono[0] - 0.3).abs() < 1e-6);
        assert_eq!(mono[1], 0.0);
    }
}
