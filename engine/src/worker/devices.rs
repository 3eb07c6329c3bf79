//! The page's devices as the worker sees them: the camera's frames from a transferred
//! `ReadableStream`, the microphone and the speakers through `MessagePort`s to the page's audio
//! worklets.
//!
//! The worklets speak plain values: the microphone's posts `{samples: Float32Array, rate}`
//! (mono, at the audio context's rate) and takes each `Float32Array` back once read, to fill it
//! again; the speakers' takes stereo `Float32Array`s (48 kHz, interleaved) and posts a number,
//! the frames of them it has played so far (silence it made up when it ran dry not counted),
//! every few render quanta.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Array, Float32Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, MessagePort, ReadableStream, ReadableStreamDefaultReader};
use web_time::Instant;

use crate::audio::Speakers;
use crate::audio::resample::Resampler;
use crate::call::VideoSpec;
use crate::codec::web::{Buffers, read_picture};
use crate::js::{self, get, wait};
use crate::media::{
    AUDIO_FRAME_SAMPLES, AudioSource, SAMPLE_RATE, VideoFrame, VideoSource, scale_i420,
};

/// The camera: the newest picture the browser delivered, at the size the call sends.
pub struct CameraReader {
    latest: Rc<RefCell<Option<VideoFrame>>>,
    stop: Rc<Cell<bool>>,
    spec: VideoSpec,
}

impl CameraReader {
    /// Reads `stream` (of `VideoFrame`s) until the camera is dropped.
    pub fn new(stream: ReadableStream, spec: VideoSpec) -> Self {
        let latest = Rc::new(RefCell::new(None));
        let stop = Rc::new(Cell::new(false));
        let (feeding, stopped) = (latest.clone(), stop.clone());
        js::spawn(async move {
            let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
            let mut scaled = VideoFrame::new(spec.width, spec.height);
            let buffers = Buffers::default();
            while !stopped.get() {
                let Ok(result) = wait(reader.read()).await else {
                    break;
                };
                if get(&result, "done").as_bool().unwrap_or(true) {
                    break;
                }
                let frame: web_sys::VideoFrame = get(&result, "value").unchecked_into();
                let picture = read_picture(&frame, &buffers).await;
                frame.close();
                match picture {
                    Ok(picture) => {
                        scale_i420(&picture, &mut scaled);
                        *feeding.borrow_mut() = Some(scaled.clone());
                    }
                    Err(error) => tracing::debug!(%error, "camera picture not readable"),
                }
            }
            js::forget(&reader.cancel());
        });
        Self { latest, stop, spec }
    }
}

impl VideoSource for CameraReader {
    fn dimensions(&self) -> (usize, usize) {
        (self.spec.width, self.spec.height)
    }

    fn next_frame(&mut self, frame: &mut VideoFrame) {
        if let Some(latest) = self.latest.borrow().as_ref() {
            frame.clone_from(latest);
        }
    }
}

impl Drop for CameraReader {
    fn drop(&mut self) {
        self.stop.set(true);
    }
}

/// Where the page's display stream waits for the call's screen (given at the start or when the
/// user starts sharing).
pub type ScreenGiven = Rc<RefCell<Option<ReadableStream>>>;

/// A shared screen: the newest picture of the display stream the page gave last, at the size
/// the call sends (black until one is given).
pub struct ScreenReader {
    given: ScreenGiven,
    reader: Option<CameraReader>,
    spec: VideoSpec,
}

impl ScreenReader {
    /// A screen at `spec`, reading what the page puts in `given`.
    pub fn new(given: ScreenGiven, spec: VideoSpec) -> Self {
        Self {
            given,
            reader: None,
            spec,
        }
    }
}

impl VideoSource for ScreenReader {
    fn dimensions(&self) -> (usize, usize) {
        (self.spec.width, self.spec.height)
    }

    fn next_frame(&mut self, frame: &mut VideoFrame) {
        if let Some(stream) = self.given.borrow_mut().take() {
            // A new display (the old reader stops as it is dropped).
            self.reader = Some(CameraReader::new(stream, self.spec));
        }
        if let Some(reader) = &mut self.reader {
            reader.next_frame(frame);
        }
    }
}

/// Microphone samples kept before the oldest are dropped (100 ms).
const MICROPHONE_BACKLOG: usize = 4_800;

/// The microphone: what the page's worklet captured, at 48 kHz.
pub struct MicrophonePort {
    port: MessagePort,
    samples: Rc<RefCell<VecDeque<f32>>>,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
}

impl MicrophonePort {
    /// Takes the worklet's chunks from `port`.
    pub fn new(port: MessagePort) -> Self {
        let samples = Rc::new(RefCell::new(VecDeque::with_capacity(MICROPHONE_BACKLOG)));
        let filling = samples.clone();
        let back = port.clone();
        let mut resampler: Option<(u32, Resampler)> = None;
        let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let Ok(chunk) = get(&data, "samples").dyn_into::<Float32Array>() else {
                return;
            };
            let rate = get(&data, "rate")
                .as_f64()
                .unwrap_or(f64::from(SAMPLE_RATE)) as u32;
            if resampler.as_ref().is_none_or(|(at, _)| *at != rate) {
                match Resampler::new(rate, SAMPLE_RATE) {
                    Ok(fresh) => resampler = Some((rate, fresh)),
                    Err(error) => {
                        tracing::warn!(%error, "microphone at an unusable rate");
                        return;
                    }
                }
            }
            let Some((_, resampler)) = &mut resampler else {
                return;
            };
            let mut queue = filling.borrow_mut();
            resampler.push(&chunk.to_vec(), &mut *queue);
            let excess = queue.len().saturating_sub(MICROPHONE_BACKLOG);
            queue.drain(..excess);
            // Read: the worklet fills it again.
            let transfer = Array::of1(&chunk.buffer());
            if back
                .post_message_with_transferable(&chunk, &transfer)
                .is_err()
            {
                tracing::debug!("the microphone's worklet is gone");
            }
        });
        port.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        port.start();
        Self {
            port,
            samples,
            _onmessage: onmessage,
        }
    }
}

impl AudioSource for MicrophonePort {
    fn next_samples(&mut self, out: &mut [f32; AUDIO_FRAME_SAMPLES]) {
        let mut samples = self.samples.borrow_mut();
        let n = out.len().min(samples.len());
        for (slot, sample) in out.iter_mut().zip(samples.drain(..n)) {
            *slot = sample;
        }
        out[n..].fill(0.0);
    }
}

impl Drop for MicrophonePort {
    fn drop(&mut self) {
        self.port.set_onmessage(None);
        self.port.close();
    }
}

/// How far ahead of the speakers the mix is rendered (frames, 60 ms).
const LEAD: u64 = 2_880;
/// How long the worklet's last report of what it played is extrapolated: beyond that it is
/// taken to have stopped (a suspended audio context), and nothing more is rendered for it.
const EXTRAPOLATE: Duration = Duration::from_millis(100);

/// The speakers: the page's worklet, fed through `port`.
pub struct SpeakerPort {
    port: MessagePort,
    sent: u64,
    played: Rc<Cell<Option<(u64, Instant)>>>,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
}

impl SpeakerPort {
    /// Feeds the worklet at the other end of `port`.
    pub fn new(port: MessagePort) -> Self {
        let played = Rc::new(Cell::new(None));
        let reported = played.clone();
        let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(frames) = event.data().as_f64() {
                reported.set(Some((frames as u64, Instant::now())));
            }
        });
        port.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        port.start();
        Self {
            port,
            sent: 0,
            played,
            _onmessage: onmessage,
        }
    }
}

impl Speakers for SpeakerPort {
    fn wanted(&mut self, now: Instant) -> usize {
        let played = match self.played.get() {
            // Nothing heard from the worklet yet: fill its lead once.
            None => 0,
            Some((frames, at)) => {
                let since = now.saturating_duration_since(at).min(EXTRAPOLATE);
                frames + (since.as_secs_f64() * f64::from(SAMPLE_RATE)) as u64
            }
        };
        (played + LEAD).saturating_sub(self.sent) as usize
    }

    fn play(&mut self, stereo: &[f32]) {
        let chunk = Float32Array::from(stereo);
        let transfer = Array::of1(&chunk.buffer());
        if self
            .port
            .post_message_with_transferable(&chunk, &transfer)
            .is_ok()
        {
            self.sent += (stereo.len() / 2) as u64;
        }
    }
}

impl Drop for SpeakerPort {
    fn drop(&mut self) {
        self.port.set_onmessage(None);
        self.port.close();
    }
}
