//! The browser's devices, as the page holds them for the engine's worker.
//!
//! - The camera: getUserMedia, its frames read through a `MediaStreamTrackProcessor` whose
//!   readable side goes to the worker (transferred), so no picture passes the page's thread.
//! - The speakers and the microphone: one `AudioContext` at 48 kHz for the page's life, with two
//!   audio worklets. Each call gets a `MessageChannel` per worklet whose other port goes to the
//!   worker: the speakers' worklet plays the stereo chunks the worker's mixer sends and says how
//!   much it played; the microphone's worklet sends what it captured (the browser has already
//!   brought it to the context's rate, with a filtering resampler). The audio thread talks to the
//!   worker directly: a page busy drawing, or hidden behind another tab, holds up neither.
//!   Browsers start audio only after a user gesture; the context resumes on the first click or
//!   key.

use std::cell::RefCell;

use js_sys::Array;
use rotunda_engine::VideoSpec;
use rotunda_engine::js::{self, object, wait};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioContext, AudioContextState, AudioWorkletNode, Blob, MediaStream, MediaStreamTrack,
    MessageChannel, MessagePort, ReadableStream, Url,
};

use super::{DeviceList, SourceState};
use crate::settings::DeviceChoice;

/// The worklets: the speakers play a queue of stereo chunks (silence when it runs dry) and say
/// how much of it they played; the microphone sends 10 ms chunks of what it hears.
const WORKLETS: &str = r#"
class RotundaSpeakers extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.offset = 0;
    this.played = 0;
    this.quanta = 0;
    this.feed = null;
    this.port.onmessage = (event) => {
      const port = event.data && event.data.port;
      if (!port) return;
      if (this.feed) this.feed.close();
      this.feed = port;
      this.queue = [];
      this.offset = 0;
      this.played = 0;
      port.onmessage = (message) => this.take(message.data);
    };
  }
  take(chunk) {
    if (!(chunk instanceof Float32Array)) return;
    this.queue.push(chunk);
    // Far behind (the feed ran ahead): keep the newest half second.
    let queued = -this.offset / 2;
    for (const c of this.queue) queued += c.length / 2;
    while (queued > sampleRate / 2 && this.queue.length > 1) {
      queued -= (this.queue.shift().length - this.offset) / 2;
      this.offset = 0;
    }
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
      this.played += 1;
    }
    // A bare number: the audio thread makes no object for it.
    if (this.feed && ++this.quanta % 8 === 0) this.feed.postMessage(this.played);
    return true;
  }
}
class RotundaMicrophone extends AudioWorkletProcessor {
  constructor() {
    super();
    this.out = null;
    this.size = Math.round(sampleRate / 100);
    this.buffer = new Float32Array(this.size);
    this.filled = 0;
    // Chunks the worker read and sent back, to be filled again: no allocation per chunk.
    this.spare = [];
    this.port.onmessage = (event) => {
      const port = event.data && event.data.port;
      if (!port) return;
      if (this.out) this.out.close();
      this.out = port;
      this.filled = 0;
      port.onmessage = (message) => {
        const back = message.data;
        if (back instanceof Float32Array && back.length === this.size && this.spare.length < 8) {
          this.spare.push(back);
        }
      };
    };
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input || !this.out) return true;
    for (let i = 0; i < input.length; i++) {
      this.buffer[this.filled++] = input[i];
      if (this.filled === this.size) {
        this.out.postMessage({ samples: this.buffer, rate: sampleRate }, [this.buffer.buffer]);
        this.buffer = this.spare.pop() || new Float32Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor('rotunda-speakers', RotundaSpeakers);
registerProcessor('rotunda-microphone', RotundaMicrophone);
"#;

thread_local! {
    /// The page's audio: its context and speakers' worklet, made on the first call.
    static AUDIO: RefCell<Option<PageAudio>> = const { RefCell::new(None) };
}

/// The page's audio context and its speakers' worklet.
#[derive(Clone)]
struct PageAudio {
    context: AudioContext,
    speakers: AudioWorkletNode,
}

/// The join screen lists no devices in the browser: the browser's own prompt picks them.
pub fn list_devices() -> (DeviceList, DeviceList) {
    (Vec::new(), Vec::new())
}

/// The page's audio, made (and its worklets loaded) on first use.
async fn page_audio() -> Result<PageAudio, String> {
    if let Some(audio) = AUDIO.with(|audio| audio.borrow().clone()) {
        return Ok(audio);
    }
    let options = object(&[
        ("sampleRate", 48_000.into()),
        ("latencyHint", "interactive".into()),
    ]);
    let context = AudioContext::new_with_context_options(options.unchecked_ref())
        .map_err(|e| format!("no Web Audio: {}", js::message(&e)))?;
    resume_on_gesture(&context);
    let parts = Array::of1(&JsValue::from_str(WORKLETS));
    let blob_options = object(&[("type", "text/javascript".into())]);
    let blob = Blob::new_with_str_sequence_and_options(&parts, blob_options.unchecked_ref())
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
    let speakers = AudioWorkletNode::new_with_options(
        &context,
        "rotunda-speakers",
        node_options.unchecked_ref(),
    )
    .map_err(|e| js::message(&e))?;
    speakers
        .connect_with_audio_node(&context.destination())
        .map_err(|e| js::message(&e))?;
    let audio = PageAudio { context, speakers };
    AUDIO.with(|slot| *slot.borrow_mut() = Some(audio.clone()));
    Ok(audio)
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

/// Hands a new port of `node`'s worklet to it; returns the other end, for the worker.
fn worklet_port(node: &AudioWorkletNode) -> Result<MessagePort, String> {
    let channel = MessageChannel::new().map_err(|e| js::message(&e))?;
    let (mine, theirs) = (channel.port1(), channel.port2());
    let port = node.port().map_err(|e| js::message(&e))?;
    port.post_message_with_transferable(
        &object(&[("port", mine.clone().into())]),
        &Array::of1(&mine),
    )
    .map_err(|e| js::message(&e))?;
    Ok(theirs)
}

/// The speakers for a call: a port to the speakers' worklet.
pub async fn open_speakers(choice: &DeviceChoice) -> (Option<MessagePort>, SourceState) {
    if *choice == DeviceChoice::None {
        return (None, SourceState::Off);
    }
    match page_audio()
        .await
        .and_then(|audio| worklet_port(&audio.speakers))
    {
        Ok(port) => (Some(port), SourceState::Live("browser audio".into())),
        Err(reason) => (None, SourceState::Fallback(reason)),
    }
}

/// Asks the browser for a media track (`video` or `audio` constraints), `Err` with the browser's
/// reason when refused or absent.
async fn user_media(
    video: JsValue,
    audio: JsValue,
) -> Result<(MediaStream, MediaStreamTrack), String> {
    let devices = web_sys::window()
        .ok_or("no window")?
        .navigator()
        .media_devices()
        .map_err(|_| "this page may not use media devices (it needs https or localhost)")?;
    let constraints = object(&[("video", video.clone()), ("audio", audio)]);
    let stream: MediaStream = wait(
        devices
            .get_user_media_with_constraints(constraints.unchecked_ref())
            .map_err(|e| js::message(&e))?,
    )
    .await?
    .unchecked_into();
    let tracks = if video.is_falsy() {
        stream.get_audio_tracks()
    } else {
        stream.get_video_tracks()
    };
    let track = tracks
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| "the browser gave no track".to_owned())?;
    Ok((stream, track))
}

thread_local! {
    /// The display being shared, to stop when sharing stops.
    static DISPLAY: RefCell<Option<MediaStreamTrack>> = const { RefCell::new(None) };
    /// The display went away (the user stopped it in the browser's bar) or was refused.
    static DISPLAY_GONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Asks the user for a display and gives it to the running call; when they refuse, or stop it
/// later from the browser's bar, [`display_gone`] says so once.
pub fn offer_screen() {
    wasm_bindgen_futures::spawn_local(async {
        match open_screen(super::SHARED_MOST).await {
            Ok(display) => {
                if !rotunda_engine::handle::web::share_screen(display) {
                    DISPLAY_GONE.set(true);
                }
            }
            Err(reason) => {
                js::log_error(&format!("rotunda:error the screen is not shared: {reason}"));
                DISPLAY_GONE.set(true);
            }
        }
    });
}

/// Stops the display shared (the browser's sharing bar goes away).
pub fn stop_screen() {
    if let Some(track) = DISPLAY.take() {
        track.stop();
    }
}

/// Whether the display went away since the last call.
pub fn display_gone() -> bool {
    DISPLAY_GONE.replace(false)
}

/// Whether this page can share a display (getDisplayMedia, and frames it can read).
pub fn can_share_screen() -> bool {
    let devices = web_sys::window().and_then(|w| w.navigator().media_devices().ok());
    devices.is_some_and(|d| !js::get(&d, "getDisplayMedia").is_undefined())
        && js::has_global("MediaStreamTrackProcessor")
}

/// The display the user picks to share (the browser asks), up to `most`: its frames' stream,
/// for the engine's worker. The stream ends when the user stops sharing in the browser's bar.
pub async fn open_screen(most: VideoSpec) -> Result<ReadableStream, String> {
    let devices = web_sys::window()
        .ok_or("no window")?
        .navigator()
        .media_devices()
        .map_err(|_| "this page may not use media devices (it needs https or localhost)")?;
    let video = object(&[
        ("frameRate", object(&[("ideal", most.fps.into())]).into()),
        (
            "width",
            object(&[("max", (most.width as u32).into())]).into(),
        ),
        (
            "height",
            object(&[("max", (most.height as u32).into())]).into(),
        ),
    ]);
    let constraints = object(&[("video", video.into()), ("audio", false.into())]);
    let ask: js_sys::Function = js::get(&devices, "getDisplayMedia")
        .dyn_into()
        .map_err(|_| "this browser cannot share a screen".to_owned())?;
    let promise: js_sys::Promise = ask
        .call1(&devices, &constraints)
        .map_err(|e| js::message(&e))?
        .dyn_into()
        .map_err(|_| "getDisplayMedia gave no promise".to_owned())?;
    let stream: MediaStream = wait(promise).await?.unchecked_into();
    let track = stream
        .get_video_tracks()
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| "the browser gave no display track".to_owned())?;
    let ended = Closure::<dyn FnMut()>::new(|| DISPLAY_GONE.set(true));
    track.set_onended(Some(ended.as_ref().unchecked_ref()));
    // It lives as long as the track.
    ended.forget();
    let init = object(&[("track", track.clone().into())]);
    let processor = web_sys::MediaStreamTrackProcessor::new(init.unchecked_ref())
        .map_err(|e| js::message(&e))?;
    if let Some(old) = DISPLAY.replace(Some(track)) {
        old.stop();
    }
    Ok(processor.readable())
}

/// The microphone for a call: the browser asks the user; a port to a microphone worklet fed by
/// it. No port with [`SourceState::Synthetic`] means the engine's tone.
pub async fn open_microphone(choice: &DeviceChoice) -> (Option<MessagePort>, SourceState) {
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
        let (stream, track) = user_media(false.into(), constraints.into()).await?;
        let audio = page_audio().await?;
        let source = audio
            .context
            .create_media_stream_source(&stream)
            .map_err(|e| js::message(&e))?;
        let node_options = object(&[
            ("numberOfInputs", 1.into()),
            ("numberOfOutputs", 1.into()),
            ("channelCount", 1.into()),
            ("channelCountMode", "explicit".into()),
        ]);
        let node = AudioWorkletNode::new_with_options(
            &audio.context,
            "rotunda-microphone",
            node_options.unchecked_ref(),
        )
        .map_err(|e| js::message(&e))?;
        source
            .connect_with_audio_node(&node)
            .map_err(|e| js::message(&e))?;
        // Pulled by the context only when connected onward; it writes nothing there.
        node.connect_with_audio_node(&audio.context.destination())
            .map_err(|e| js::message(&e))?;
        let port = worklet_port(&node)?;
        Ok::<_, String>((track.label(), port))
    };
    match opened.await {
        Ok((name, port)) => (Some(port), SourceState::Live(name)),
        // Silence stands in: a microphone that would not open sends nothing, but the call goes on.
        Err(reason) => (None, SourceState::Fallback(reason)),
    }
}

/// The camera for a call: the browser asks the user; its frames as a stream for the worker.
pub async fn open_camera(
    choice: &DeviceChoice,
    spec: VideoSpec,
) -> (Option<ReadableStream>, SourceState) {
    match choice {
        DeviceChoice::None => return (None, SourceState::Off),
        DeviceChoice::Synthetic => return (None, SourceState::Synthetic),
        DeviceChoice::Default | DeviceChoice::Named(_) => {}
    }
    let constraints = object(&[
        (
            "width",
            object(&[("ideal", (spec.width as u32).into())]).into(),
        ),
        (
            "height",
            object(&[("ideal", (spec.height as u32).into())]).into(),
        ),
        ("frameRate", object(&[("ideal", spec.fps.into())]).into()),
    ]);
    let opened = async {
        let (_, track) = user_media(constraints.into(), false.into()).await?;
        if !js::has_global("MediaStreamTrackProcessor") {
            return Err("this browser cannot read camera frames".to_owned());
        }
        let init = object(&[("track", track.clone().into())]);
        let processor = web_sys::MediaStreamTrackProcessor::new(init.unchecked_ref())
            .map_err(|e| js::message(&e))?;
        Ok((track.label(), processor.readable()))
    };
    match opened.await {
        Ok((name, frames)) => (Some(frames), SourceState::Live(name)),
        Err(reason) => (None, SourceState::Fallback(reason)),
    }
}
