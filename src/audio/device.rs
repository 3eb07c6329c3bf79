//! Microphone and speakers through cpal (ALSA/PulseAudio, CoreAudio, WASAPI).
//!
//! A cpal stream may not move between threads, so each one lives on a thread of its own that
//! holds it until the [`DeviceThread`] is dropped. Both directions run at 48 kHz (the rate of
//! Opus and of the mixer); a device that cannot is reported and replaced: the microphone by
//! silence, the speakers by a clock that keeps the mixer (and the speaking glow) running.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SampleRate, StreamConfig};

use super::output::AudioOut;
use crate::media::{AUDIO_FRAME_SAMPLES, AudioSource, SAMPLE_RATE, SourceState};
use crate::settings::DeviceChoice;
use crate::sync::lock;

/// Microphone samples kept before the oldest are dropped (100 ms).
const MICROPHONE_BACKLOG: usize = 4_800;

/// A device stream (or its stand-in clock) running on its own thread; stops when dropped.
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

/// Input and output devices, by name, for the join screen.
pub fn list() -> (Vec<String>, Vec<String>) {
    let host = cpal::default_host();
    let names = |devices: Result<_, _>| -> Vec<String> {
        match devices {
            Ok(devices) => {
                let devices: Box<dyn Iterator<Item = cpal::Device>> = Box::new(devices);
                devices.filter_map(|d| d.name().ok()).collect()
            }
            Err(_) => Vec::new(),
        }
    };
    (
        names(host.input_devices().map_err(|_| ())),
        names(host.output_devices().map_err(|_| ())),
    )
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

/// A 48 kHz configuration of `device`, preferring f32 samples.
fn config_48k(device: &cpal::Device, input: bool) -> Result<(StreamConfig, SampleFormat), String> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device.supported_input_configs().map(Iterator::collect)
    } else {
        device.supported_output_configs().map(Iterator::collect)
    }
    .map_err(|e| e.to_string())?;
    let rate = SampleRate(SAMPLE_RATE);
    let usable = |format: SampleFormat| {
        ranges.iter().find(|r| {
            r.sample_format() == format
                && r.min_sample_rate() <= rate
                && rate <= r.max_sample_rate()
                && (input || r.channels() >= 1)
        })
    };
    let range = usable(SampleFormat::F32)
        .or_else(|| usable(SampleFormat::I16))
        .ok_or("the device has no 48 kHz mode")?;
    let supported = (*range).with_sample_rate(rate);
    Ok((supported.config(), supported.sample_format()))
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

/// The microphone, as a source of 20 ms frames.
pub struct Microphone {
    samples: Arc<Mutex<VecDeque<i16>>>,
}

impl AudioSource for Microphone {
    fn next_samples(&mut self, out: &mut [i16; AUDIO_FRAME_SAMPLES]) {
        let mut samples = lock(&self.samples);
        let n = out.len().min(samples.len());
        for (slot, sample) in out.iter_mut().zip(samples.drain(..n)) {
            *slot = sample;
        }
        out[n..].fill(0);
    }
}

/// Silence, standing in for a microphone that does not work.
pub struct Silence;

impl AudioSource for Silence {
    fn next_samples(&mut self, out: &mut [i16; AUDIO_FRAME_SAMPLES]) {
        out.fill(0);
    }
}

/// Opens the microphone the user chose. No source with [`SourceState::Synthetic`] means the
/// engine's tone; with [`SourceState::Off`], no audio is published.
pub fn open_microphone(
    choice: &DeviceChoice,
) -> (
    Option<Box<dyn AudioSource>>,
    Option<DeviceThread>,
    SourceState,
) {
    match choice {
        DeviceChoice::None => return (None, None, SourceState::Off),
        DeviceChoice::Synthetic => return (None, None, SourceState::Synthetic),
        _ => {}
    }
    let samples = Arc::new(Mutex::new(VecDeque::with_capacity(MICROPHONE_BACKLOG)));
    let choice = choice.clone();
    let sink = samples.clone();
    let opened = spawn_stream("microphone", move || {
        let device = find_device(&choice, true)?;
        let name = device.name().unwrap_or_else(|_| "microphone".into());
        let (config, format) = config_48k(&device, true)?;
        let channels = usize::from(config.channels.max(1));
        let push = move |mono: &mut dyn Iterator<Item = i16>| {
            let mut samples = lock(&sink);
            samples.extend(mono);
            let excess = samples.len().saturating_sub(MICROPHONE_BACKLOG);
            samples.drain(..excess);
        };
        let error = |error: cpal::StreamError| tracing::warn!(%error, "microphone");
        let stream = match format {
            SampleFormat::F32 => device.build_input_stream(
                &config,
                move |data: &[f32], _: &_| {
                    push(&mut data.chunks(channels).map(|frame| {
                        let sum: f32 = frame.iter().sum();
                        (sum / channels as f32 * 32767.0).clamp(-32768.0, 32767.0) as i16
                    }))
                },
                error,
                None,
            ),
            _ => device.build_input_stream(
                &config,
                move |data: &[i16], _: &_| {
                    push(&mut data.chunks(channels).map(|frame| {
                        let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                        (sum / channels as i32) as i16
                    }))
                },
                error,
                None,
            ),
        }
        .map_err(|e| e.to_string())?;
        Ok((stream, name))
    });
    match opened {
        Ok((thread, name)) => (
            Some(Box::new(Microphone { samples })),
            Some(thread),
            SourceState::Live(name),
        ),
        Err(reason) => (Some(Box::new(Silence)), None, SourceState::Fallback(reason)),
    }
}

/// Plays the mixer's output on the speakers the user chose; without working speakers, a clock
/// thread pulls the mixer at the same pace so the call behaves the same.
pub fn open_speakers(
    choice: &DeviceChoice,
    out: Arc<Mutex<AudioOut>>,
) -> (DeviceThread, SourceState) {
    let reason = if *choice == DeviceChoice::None {
        None
    } else {
        let choice = choice.clone();
        let mixer = out.clone();
        let opened = spawn_stream("speakers", move || {
            let device = find_device(&choice, false)?;
            let name = device.name().unwrap_or_else(|_| "speakers".into());
            let (config, format) = config_48k(&device, false)?;
            let channels = usize::from(config.channels.max(1));
            let error = |error: cpal::StreamError| tracing::warn!(%error, "speakers");
            let stream = match format {
                SampleFormat::F32 => device.build_output_stream(
                    &config,
                    move |data: &mut [f32], _: &_| {
                        lock(&mixer).render(data, channels);
                    },
                    error,
                    None,
                ),
                _ => {
                    let mut scratch = Vec::new();
                    device.build_output_stream(
                        &config,
                        move |data: &mut [i16], _: &_| {
                            scratch.resize(data.len(), 0.0f32);
                            lock(&mixer).render(&mut scratch, channels);
                            for (slot, sample) in data.iter_mut().zip(&scratch) {
                                *slot = (sample * 32767.0) as i16;
                            }
                        },
                        error,
                        None,
                    )
                }
            }
            .map_err(|e| e.to_string())?;
            Ok((stream, name))
        });
        match opened {
            Ok((thread, name)) => return (thread, SourceState::Live(name)),
            Err(reason) => Some(reason),
        }
    };
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("audio-clock".into())
        .spawn(move || {
            let mut buffer = vec![0.0f32; AUDIO_FRAME_SAMPLES * 2];
            let mut next = Instant::now();
            loop {
                next += Duration::from_millis(20);
                let wait = next.saturating_duration_since(Instant::now());
                match stopped.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                lock(&out).render(&mut buffer, 2);
            }
        })
        .ok();
    let state = match reason {
        Some(reason) => SourceState::Fallback(reason),
        None => SourceState::Off,
    };
    (
        DeviceThread {
            stop: Some(stop),
            thread,
        },
        state,
    )
}
