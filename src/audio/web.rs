//! The browser's speakers and microphone.
//!
//! The speakers are an `AudioWorklet` playing what the same spatial mixer as natively
//! ([`AudioOut`]) renders on the page's thread: every 10 ms the mix is rendered ahead of the
//! audio clock and posted to the worklet, which plays it out sample by sample. Browsers start
//! audio only after a user gesture; the context resumes on the first click or key.
//!
//! The microphone is read frame by frame through a `MediaStreamTrackProcessor` and pulled by the
//! call 20 ms at a time, like the native microphone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use js_sys::{Array, Float32Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{AudioContext, AudioContextState, AudioData, AudioWorkletNode, Blob, Url};

use super::output::AudioOut;
use crate::media::web::{next_track_frame, read_samples, track_reader, user_media};
use crate::media::{AUDIO_FRAME_SAMPLES, AudioSource, SAMPLE_RATE, SourceState};
use crate::settings::DeviceChoice;
use crate::sync::lock;
use crate::web::{self as js, object, spawn, wait};

/// The worklet: a queue of stereo chunks played out in order, silence when it runs dry.
const WORKLET: &str = r#"
class RotundaSpeakers extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.offset = 0;
    this.port.onmessage = (event) => {
      this.queue.push(event.data);
      // Far behind (the page stalled): keep the newest half second.
      let queued = 0;
      for (const chunk of this.queue) queued += chunk.length / 2;
      while (queued > sampleRate / 2 && this.queue.length > 1) {
        queued -= this.queue.shift().length / 2;
        this.offset = 0;
      }
    };
  }
  process(inputs, outputs) {
    const left = outputs[0][0];
    const right = outputs[0][1] || left;
    for (let i = 0; i < left.length; i++) {
      while (this.queue.length && this.offset >= this.queue[0].length) {
        this.queue.shift();
        this.offset = 0;
      }
      if (!this.queue.length) {
        left[i] = 0;
        right[i] = 0;
        continue;
      }
      const chunk = this.queue[0];
      left[i] = chunk[this.offset];
      right[i] = chunk[this.offset + 1];
      this.offset += 2;
    }
    return true;
  }
}
registerProcessor('rotunda-speakers', RotundaSpeakers);
"#;

/// Frames rendered per message (10 ms).
const CHUNK: usize = 480;
/// How far ahead of the audio clock the mix is rendered (frames): enough to ride out a slow
/// frame of the page.
const LEAD: f64 = 7_200.0;
/// Microphone samples kept before the oldest are dropped (100 ms).
const MICROPHONE_BACKLOG: usize = 4_800;

/// The speakers' handle: dropping it stops the task feeding the audio context, which then closes.
pub struct DeviceThread {
    stop: Arc<AtomicBool>,
}

impl DeviceThread {
    fn new() -> (Self, Arc<AtomicBool>) {
        let stop = Arc::new(AtomicBool::new(false));
        (Self { stop: stop.clone() }, stop)
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the speakers: the spatial mix through an `AudioWorklet`.
pub fn open_speakers(
    choice: &DeviceChoice,
    out: Arc<Mutex<AudioOut>>,
) -> (DeviceThread, SourceState) {
    let (handle, stop) = DeviceThread::new();
    if *choice == DeviceChoice::None {
        return (handle, SourceState::Off);
    }
    let options = object(&[
        ("sampleRate", SAMPLE_RATE.into()),
        ("latencyHint", "interactive".into()),
    ]);
    let context = match AudioContext::new_with_context_options(options.unchecked_ref()) {
        Ok(context) => context,
        Err(error) => {
            return (
                handle,
                SourceState::Fallback(format!("no Web Audio: {}", js::message(&error))),
            );
        }
    };
    resume_on_gesture(&context);
    spawn(async move {
        if let Err(error) = feed(&context, out, &stop).await {
            js::log_error(&format!("rotunda:error speakers: {error}"));
        }
        if let Ok(closed) = context.close() {
            js::forget(&closed);
        }
    });
    (handle, SourceState::Live("browser audio".into()))
}

/// Browsers keep audio suspended until the user does something on the page.
fn resume_on_gesture(context: &AudioContext) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let context = context.clone();
    let resume = Closure::<dyn FnMut()>::new(move || {
        if context.state() != AudioContextState::Running
            && let Ok(promise) = context.resume()
        {
            js::forget(&promise);
        }
    });
    for event in ["pointerdown", "keydown", "touchstart"] {
        let _ = window.add_event_listener_with_callback(event, resume.as_ref().unchecked_ref());
    }
    // It serves the page as long as it lives.
    resume.forget();
}

async fn feed(
    context: &AudioContext,
    out: Arc<Mutex<AudioOut>>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let parts = Array::of1(&JsValue::from_str(WORKLET));
    let options = object(&[("type", "text/javascript".into())]);
    let blob = Blob::new_with_str_sequence_and_options(&parts, options.unchecked_ref())
        .map_err(|e| js::message(&e))?;
    let url = Url::create_object_url_with_blob(&blob).map_err(|e| js::message(&e))?;
    let worklet = context.audio_worklet().map_err(|e| js::message(&e))?;
    wait(worklet.add_module(&url).map_err(|e| js::message(&e))?).await?;
    let _ = Url::revoke_object_url(&url);
    let node_options = object(&[
        ("numberOfInputs", 0.into()),
        ("numberOfOutputs", 1.into()),
        ("outputChannelCount", Array::of1(&2.into()).into()),
    ]);
    let node = AudioWorkletNode::new_with_options(
        context,
        "rotunda-speakers",
        node_options.unchecked_ref(),
    )
    .map_err(|e| js::message(&e))?;
    node.connect_with_audio_node(&context.destination())
        .map_err(|e| js::message(&e))?;
    let port = node.port().map_err(|e| js::message(&e))?;
    let rate = f64::from(SAMPLE_RATE);
    let mut rendered = 0.0f64;
    let mut stereo = vec![0.0f32; CHUNK * 2];
    while !stop.load(Ordering::Relaxed) {
        js::sleep_ms(10).await;
        if context.state() != AudioContextState::Running {
            continue;
        }
        let played = context.current_time() * rate;
        // Behind (the page stalled, or just started): start again from now.
        rendered = rendered.max(played);
        while rendered < played + LEAD {
            lock(&out).render(&mut stereo, 2);
            let chunk = Float32Array::from(&stereo[..]);
            let transfer = Array::of1(&chunk.buffer());
            port.post_message_with_transferable(&chunk, &transfer)
                .map_err(|e| js::message(&e))?;
            rendered += CHUNK as f64;
        }
    }
    Ok(())
}

/// The microphone's samples, filled by the track reader and pulled by the call.
#[derive(Default)]
struct Captured {
    samples: Mutex<VecDeque<i16>>,
}

/// The microphone as an [`AudioSource`]: 20 ms of what the browser delivered (silence while it
/// delivered less).
struct Microphone(Arc<Captured>);

impl AudioSource for Microphone {
    fn next_samples(&mut self, out: &mut [i16; AUDIO_FRAME_SAMPLES]) {
        let mut samples = lock(&self.0.samples);
        if samples.len() < AUDIO_FRAME_SAMPLES {
            out.fill(0);
            return;
        }
        for (slot, sample) in out.iter_mut().zip(samples.drain(..AUDIO_FRAME_SAMPLES)) {
            *slot = sample;
        }
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        // The reader sees the microphone gone (only it holds the other reference) and stops.
        lock(&self.0.samples).clear();
    }
}

/// Silence, standing in for a microphone that would not open.
struct Silence;

impl AudioSource for Silence {
    fn next_samples(&mut self, out: &mut [i16; AUDIO_FRAME_SAMPLES]) {
        out.fill(0);
    }
}

/// Opens the microphone (the browser asks the user); silence stands in when it cannot.
pub async fn open_microphone(choice: &DeviceChoice) -> (Option<Box<dyn AudioSource>>, SourceState) {
    match choice {
        DeviceChoice::None => return (None, SourceState::Off),
        DeviceChoice::Synthetic => return (None, SourceState::Synthetic),
        DeviceChoice::Default | DeviceChoice::Named(_) => {}
    }
    let constraints = object(&[
        ("channelCount", 1.into()),
        ("echoCancellation", true.into()),
        ("noiseSuppression", true.into()),
        ("autoGainControl", true.into()),
    ]);
    let opened = async {
        let track = user_media(false.into(), constraints.into()).await?;
        let reader = track_reader(&track)?;
        Ok::<_, String>((track, reader))
    };
    let (track, reader) = match opened.await {
        Ok(opened) => opened,
        Err(reason) => return (Some(Box::new(Silence)), SourceState::Fallback(reason)),
    };
    let name = track.label();
    let captured = Arc::new(Captured::default());
    let filling = captured.clone();
    spawn(async move {
        let mut resampler = Resampler::default();
        // Stops when the call dropped its microphone.
        while Arc::strong_count(&filling) > 1 {
            let Some(data) = next_track_frame(&reader).await else {
                break;
            };
            let data: AudioData = data.unchecked_into();
            let samples = read_samples(&data);
            let rate = f64::from(data.sample_rate());
            data.close();
            let Some(samples) = samples else {
                continue;
            };
            let mut queue = lock(&filling.samples);
            resampler.push(&samples, rate, &mut queue);
            let excess = queue.len().saturating_sub(MICROPHONE_BACKLOG);
            queue.drain(..excess);
        }
        js::forget(&reader.cancel());
        track.stop();
    });
    (
        Some(Box::new(Microphone(captured))),
        SourceState::Live(name),
    )
}

/// Linear resampling to 48 kHz (a microphone at 44.1 kHz, say), keeping its phase between
/// chunks.
#[derive(Default)]
struct Resampler {
    /// Position of the next output sample, in input samples from the start of the chunk.
    position: f64,
    last: f32,
}

impl Resampler {
    fn push(&mut self, input: &[f32], rate: f64, out: &mut VecDeque<i16>) {
        let to_i16 = |s: f32| (s.clamp(-1.0, 1.0) * 32767.0) as i16;
        if (rate - f64::from(SAMPLE_RATE)).abs() < 1.0 || rate <= 0.0 {
            out.extend(input.iter().map(|&s| to_i16(s)));
            return;
        }
        let step = rate / f64::from(SAMPLE_RATE);
        // Sample -1 is the previous chunk's last.
        let at = |i: isize| -> f32 {
            if i < 0 {
                self.last
            } else {
                input.get(i as usize).copied().unwrap_or(0.0)
            }
        };
        while self.position < input.len() as f64 - 1.0 {
            let base = self.position.floor();
            let t = (self.position - base) as f32;
            let i = base as isize;
            out.push_back(to_i16(at(i) * (1.0 - t) + at(i + 1) * t));
            self.position += step;
        }
        self.position -= input.len() as f64;
        self.last = input.last().copied().unwrap_or(0.0);
    }
}
