//! Browser codecs and camera: H.264 and Opus through WebCodecs (the same Annex-B and Opus packets
//! as the native codecs put on the wire), the camera through getUserMedia.
//!
//! WebCodecs answers through callbacks: encoders and decoders queue what they produce and the
//! call engine takes it on its next tick; decoded pictures are copied out of the browser's
//! `VideoFrame` asynchronously and handed to a callback.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use js_sys::{Array, Float32Array, Int16Array, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioData, CodecState, EncodedAudioChunk, EncodedVideoChunk, MediaStream, MediaStreamTrack,
    ReadableStreamDefaultReader, VideoPixelFormat,
};

use super::{
    AUDIO_CODEC, AUDIO_FRAME_SAMPLES, SAMPLE_RATE, SourceState, VIDEO_CODEC, VideoFrame,
    VideoSource, rgb_to_i420,
};
use crate::call::{VideoSourceFactory, VideoSpec};
use crate::settings::DeviceChoice;
use crate::sync::lock;
use crate::web::{self as js, get, object, spawn, wait};

/// A codec failed; counted by callers, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// H.264.
    #[error("H.264: {0}")]
    Video(String),
    /// Opus.
    #[error("Opus: {0}")]
    Audio(String),
}

fn video_error(error: JsValue) -> CodecError {
    CodecError::Video(js::message(&error))
}

fn audio_error(error: JsValue) -> CodecError {
    CodecError::Audio(js::message(&error))
}

/// One encoded picture in Annex-B.
#[derive(Debug, Clone)]
pub struct EncodedVideo {
    /// The NAL units, each behind a start code.
    pub data: Vec<u8>,
    /// It is an IDR picture (decodable on its own, with SPS and PPS in front).
    pub keyframe: bool,
}

/// A decoded picture, as the call hands it to [`crate::call::Pictures`].
pub struct DecodedPicture<'a> {
    frame: &'a VideoFrame,
}

impl<'a> DecodedPicture<'a> {
    /// A picture already copied out of the browser.
    pub fn new(frame: &'a VideoFrame) -> Self {
        Self { frame }
    }

    /// Width and height.
    pub fn dimensions(&self) -> (usize, usize) {
        (self.frame.width, self.frame.height)
    }

    /// The luma plane and its stride.
    pub fn luma(&self) -> (&[u8], usize) {
        (&self.frame.y, self.frame.width)
    }

    /// Copies the picture into `frame`, reusing its buffers.
    pub fn copy_to(&self, frame: &mut VideoFrame) {
        frame.clone_from(self.frame);
    }
}

/// Audio packets or samples a codec keeps for the call to take (5 s): the page's thread may be
/// busy drawing for a second while the codec goes on.
const OUTPUTS_KEPT: usize = 250;

/// What a codec delivered and not yet taken, each with its capture time (µs).
type Outputs<T> = Rc<RefCell<VecDeque<(T, u64)>>>;

/// Capture times of what went into an audio codec and has not come out yet, in order: each 20 ms
/// goes in and comes out as one, while the codec's own timestamps follow its sample count, not
/// the clock.
#[derive(Default)]
struct CaptureTimes(VecDeque<u64>);

impl CaptureTimes {
    fn push(&mut self, capture_us: u64) {
        if self.0.len() >= OUTPUTS_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(capture_us);
    }

    fn pop(&mut self) -> Option<u64> {
        self.0.pop_front()
    }
}

/// Callbacks a WebCodecs object calls; kept as long as it lives.
struct Callbacks {
    _output: Closure<dyn FnMut(JsValue, JsValue)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

/// Makes the `{output, error}` init dictionary of a WebCodecs object, noting errors in `failed`.
fn callbacks(
    output: impl FnMut(JsValue, JsValue) + 'static,
    failed: Rc<RefCell<Option<String>>>,
) -> (js_sys::Object, Callbacks) {
    let output = Closure::<dyn FnMut(JsValue, JsValue)>::new(output);
    let error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
        *failed.borrow_mut() = Some(js::message(&error));
    });
    let init = object(&[
        ("output", output.as_ref().clone()),
        ("error", error.as_ref().clone()),
    ]);
    (
        init,
        Callbacks {
            _output: output,
            _error: error,
        },
    )
}

/// H.264 Constrained Baseline encoder for real-time video (WebCodecs `VideoEncoder`).
pub struct VideoEncoder {
    encoder: web_sys::VideoEncoder,
    out: Outputs<EncodedVideo>,
    failed: Rc<RefCell<Option<String>>>,
    force_keyframe: bool,
    since_keyframe: u32,
    keyframe_every: u32,
    _callbacks: Callbacks,
}

impl VideoEncoder {
    /// An encoder for `width`x`height` pictures targeting `bitrate` bits/s at `fps`, with a
    /// keyframe every `keyframe_every` frames.
    pub fn new(
        width: usize,
        height: usize,
        bitrate: u32,
        fps: u32,
        keyframe_every: u32,
    ) -> Result<Self, CodecError> {
        let out = Rc::new(RefCell::new(VecDeque::new()));
        let failed = Rc::new(RefCell::new(None));
        let queue = out.clone();
        let (init, callbacks) = callbacks(
            move |chunk: JsValue, _metadata| {
                let chunk: EncodedVideoChunk = chunk.unchecked_into();
                let mut data = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to_with_u8_slice(&mut data).is_err() {
                    return;
                }
                let keyframe = chunk.type_() == web_sys::EncodedVideoChunkType::Key;
                let capture_us = chunk.timestamp().max(0.0) as u64;
                let mut queue = queue.borrow_mut();
                // Nobody took the last ones: keep the newest few.
                if queue.len() >= 8 {
                    queue.pop_front();
                }
                queue.push_back((EncodedVideo { data, keyframe }, capture_us));
            },
            failed.clone(),
        );
        let encoder = web_sys::VideoEncoder::new(init.unchecked_ref()).map_err(video_error)?;
        let config = object(&[
            ("codec", VIDEO_CODEC.into()),
            ("width", (width as u32).into()),
            ("height", (height as u32).into()),
            ("bitrate", bitrate.into()),
            ("framerate", fps.into()),
            ("latencyMode", "realtime".into()),
            // Annex-B, as on the wire: SPS and PPS in front of every keyframe.
            ("avc", object(&[("format", "annexb".into())]).into()),
        ]);
        encoder
            .configure(config.unchecked_ref())
            .map_err(video_error)?;
        Ok(Self {
            encoder,
            out,
            failed,
            force_keyframe: true,
            since_keyframe: 0,
            keyframe_every: keyframe_every.max(1),
            _callbacks: callbacks,
        })
    }

    /// Makes the next picture a keyframe (a subscriber asked, or a frame was lost).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Queues one picture for encoding, captured at `capture_us`. Skipped (without error)
    /// while the encoder is still busy with earlier pictures.
    pub fn encode(&mut self, frame: &VideoFrame, capture_us: u64) -> Result<(), CodecError> {
        if let Some(error) = self.failed.borrow_mut().take() {
            return Err(CodecError::Video(error));
        }
        if self.encoder.state() != CodecState::Configured {
            return Err(CodecError::Video("the encoder is closed".into()));
        }
        if self.encoder.encode_queue_size() > 2 {
            return Ok(());
        }
        let picture = to_browser_frame(frame, capture_us)?;
        let keyframe = self.force_keyframe || self.since_keyframe + 1 >= self.keyframe_every;
        let options = object(&[("keyFrame", keyframe.into())]);
        let encoded = self
            .encoder
            .encode_with_options(&picture, options.unchecked_ref());
        picture.close();
        encoded.map_err(video_error)?;
        if keyframe {
            self.force_keyframe = false;
            self.since_keyframe = 0;
        } else {
            self.since_keyframe += 1;
        }
        Ok(())
    }

    /// The next encoded picture and its capture time, once the encoder delivered one.
    pub fn take_output(&mut self) -> Option<(EncodedVideo, u64)> {
        self.out.borrow_mut().pop_front()
    }
}

impl Drop for VideoEncoder {
    fn drop(&mut self) {
        let _ = self.encoder.close();
    }
}

/// Copies an I420 picture into a browser `VideoFrame` stamped with `timestamp_us`.
fn to_browser_frame(
    frame: &VideoFrame,
    timestamp_us: u64,
) -> Result<web_sys::VideoFrame, CodecError> {
    let mut planes = Vec::with_capacity(frame.y.len() + frame.u.len() + frame.v.len());
    planes.extend_from_slice(&frame.y);
    planes.extend_from_slice(&frame.u);
    planes.extend_from_slice(&frame.v);
    let init = object(&[
        ("format", "I420".into()),
        ("codedWidth", (frame.width as u32).into()),
        ("codedHeight", (frame.height as u32).into()),
        ("timestamp", (timestamp_us as f64).into()),
    ]);
    web_sys::VideoFrame::new_with_buffer_source_and_video_frame_buffer_init(
        &Uint8Array::from(&planes[..]),
        init.unchecked_ref(),
    )
    .map_err(video_error)
}

/// What a video decoder does with a picture: the picture and its capture time.
pub type PictureSink = Rc<dyn Fn(VideoFrame, u64)>;

/// H.264 decoder (WebCodecs `VideoDecoder`); pictures go to a [`PictureSink`].
pub struct VideoDecoder {
    decoder: web_sys::VideoDecoder,
    failed: Rc<RefCell<Option<String>>>,
    waiting_for_keyframe: bool,
    _callbacks: Callbacks,
}

impl VideoDecoder {
    /// A decoder handing its pictures to `sink`.
    pub fn new(sink: PictureSink) -> Result<Self, CodecError> {
        let failed = Rc::new(RefCell::new(None));
        let (init, callbacks) = callbacks(
            move |frame: JsValue, _| {
                let frame: web_sys::VideoFrame = frame.unchecked_into();
                let sink = sink.clone();
                spawn(async move {
                    let capture_us = frame.timestamp().max(0.0) as u64;
                    let picture = read_picture(&frame).await;
                    frame.close();
                    match picture {
                        Ok(picture) => sink(picture, capture_us),
                        Err(error) => bevy::log::debug!(%error, "decoded picture not readable"),
                    }
                });
            },
            failed.clone(),
        );
        let decoder = web_sys::VideoDecoder::new(init.unchecked_ref()).map_err(video_error)?;
        let config = object(&[
            ("codec", VIDEO_CODEC.into()),
            ("optimizeForLatency", true.into()),
        ]);
        decoder
            .configure(config.unchecked_ref())
            .map_err(video_error)?;
        Ok(Self {
            decoder,
            failed,
            waiting_for_keyframe: true,
            _callbacks: callbacks,
        })
    }

    /// Whether the decoder failed for good (make a new one).
    pub fn is_broken(&self) -> bool {
        self.failed.borrow().is_some() || self.decoder.state() == CodecState::Closed
    }

    /// Queues one Annex-B picture captured at `capture_us`. An error means the picture was not
    /// decoded and the track should resume at a keyframe.
    pub fn decode(
        &mut self,
        data: &[u8],
        keyframe: bool,
        capture_us: u64,
    ) -> Result<(), CodecError> {
        if let Some(error) = self.failed.borrow().clone() {
            return Err(CodecError::Video(error));
        }
        if self.waiting_for_keyframe && !keyframe {
            return Err(CodecError::Video("waiting for a keyframe".into()));
        }
        if self.decoder.decode_queue_size() > 60 {
            // Behind: drop up to the next keyframe.
            self.waiting_for_keyframe = true;
            return Err(CodecError::Video("decoder behind".into()));
        }
        let kind = if keyframe {
            web_sys::EncodedVideoChunkType::Key
        } else {
            web_sys::EncodedVideoChunkType::Delta
        };
        let init = object(&[
            ("type", kind.into()),
            ("timestamp", (capture_us as f64).into()),
            ("data", Uint8Array::from(data).into()),
        ]);
        let chunk = EncodedVideoChunk::new(init.unchecked_ref()).map_err(video_error)?;
        self.decoder.decode(&chunk).map_err(video_error)?;
        self.waiting_for_keyframe = false;
        Ok(())
    }
}

impl Drop for VideoDecoder {
    fn drop(&mut self) {
        if self.decoder.state() != CodecState::Closed {
            let _ = self.decoder.close();
        }
    }
}

/// Copies a browser `VideoFrame` (its visible part) into a tightly packed I420 picture.
pub async fn read_picture(frame: &web_sys::VideoFrame) -> Result<VideoFrame, String> {
    let format = frame.format().ok_or("a picture of no known format")?;
    let rect = frame
        .visible_rect()
        .ok_or("a picture with no visible area")?;
    let (width, height) = (rect.width() as usize, rect.height() as usize);
    if width < 2 || height < 2 || width > 8192 || height > 8192 {
        return Err(format!("a {width}x{height} picture"));
    }
    let size = frame.allocation_size().map_err(|e| js::message(&e))?;
    let buffer = Uint8Array::new_with_length(size);
    let layouts = wait(frame.copy_to_with_u8_array(&buffer)).await?;
    let bytes = buffer.to_vec();
    let layouts: Vec<(usize, usize)> = Array::from(&layouts)
        .iter()
        .map(|layout| {
            (
                get(&layout, "offset").as_f64().unwrap_or(0.0) as usize,
                get(&layout, "stride").as_f64().unwrap_or(0.0) as usize,
            )
        })
        .collect();
    let plane = |index: usize| -> Result<(&[u8], usize), String> {
        let (offset, stride) = *layouts.get(index).ok_or("a plane is missing")?;
        Ok((
            bytes.get(offset..).ok_or("a plane is out of bounds")?,
            stride,
        ))
    };
    // Even sizes, as I420 wants.
    let (w, h) = (width & !1, height & !1);
    let mut out = VideoFrame::new(w, h);
    match format {
        VideoPixelFormat::I420 | VideoPixelFormat::I420a => {
            copy_plane(plane(0)?, &mut out.y, w, h);
            copy_plane(plane(1)?, &mut out.u, w / 2, h / 2);
            copy_plane(plane(2)?, &mut out.v, w / 2, h / 2);
        }
        VideoPixelFormat::Nv12 => {
            copy_plane(plane(0)?, &mut out.y, w, h);
            let (uv, stride) = plane(1)?;
            for row in 0..h / 2 {
                for x in 0..w / 2 {
                    let i = row * stride + x * 2;
                    out.u[row * (w / 2) + x] = uv.get(i).copied().unwrap_or(128);
                    out.v[row * (w / 2) + x] = uv.get(i + 1).copied().unwrap_or(128);
                }
            }
        }
        VideoPixelFormat::Rgba
        | VideoPixelFormat::Rgbx
        | VideoPixelFormat::Bgra
        | VideoPixelFormat::Bgrx => {
            let (pixels, stride) = plane(0)?;
            let bgr = matches!(format, VideoPixelFormat::Bgra | VideoPixelFormat::Bgrx);
            let mut rgb = Vec::with_capacity(width * height * 3);
            for row in 0..height {
                for x in 0..width {
                    let i = row * stride + x * 4;
                    let p = pixels.get(i..i + 3).ok_or("a pixel is out of bounds")?;
                    if bgr {
                        rgb.extend_from_slice(&[p[2], p[1], p[0]]);
                    } else {
                        rgb.extend_from_slice(p);
                    }
                }
            }
            rgb_to_i420(&rgb, width, height, &mut out);
        }
        other => return Err(format!("pictures in {other:?} are not supported")),
    }
    Ok(out)
}

fn copy_plane((src, stride): (&[u8], usize), dst: &mut [u8], width: usize, height: usize) {
    for (row, out) in dst.chunks_exact_mut(width).take(height).enumerate() {
        if let Some(line) = src.get(row * stride..row * stride + width) {
            out.copy_from_slice(line);
        }
    }
}

/// Scales an I420 picture to `dst`'s size, nearest pixel.
pub fn scale_i420(src: &VideoFrame, dst: &mut VideoFrame) {
    if src.width == dst.width && src.height == dst.height {
        dst.clone_from(src);
        return;
    }
    let plane = |from: &[u8], fw: usize, fh: usize, to: &mut [u8], tw: usize, th: usize| {
        for y in 0..th {
            let sy = y * fh / th.max(1);
            for x in 0..tw {
                let sx = x * fw / tw.max(1);
                to[y * tw + x] = from.get(sy * fw + sx).copied().unwrap_or(128);
            }
        }
    };
    let (fw, fh, tw, th) = (src.width, src.height, dst.width, dst.height);
    plane(&src.y, fw, fh, &mut dst.y, tw, th);
    plane(&src.u, fw / 2, fh / 2, &mut dst.u, tw / 2, th / 2);
    plane(&src.v, fw / 2, fh / 2, &mut dst.v, tw / 2, th / 2);
}

/// Opus encoder, 48 kHz mono, 20 ms frames (WebCodecs `AudioEncoder`).
pub struct AudioEncoder {
    encoder: web_sys::AudioEncoder,
    out: Outputs<Vec<u8>>,
    captured: CaptureTimes,
    failed: Rc<RefCell<Option<String>>>,
    _callbacks: Callbacks,
}

impl AudioEncoder {
    /// An encoder at `bitrate` bits/s.
    pub fn new(bitrate: i32) -> Result<Self, CodecError> {
        let out = Rc::new(RefCell::new(VecDeque::new()));
        let failed = Rc::new(RefCell::new(None));
        let queue = out.clone();
        let (init, callbacks) = callbacks(
            move |chunk: JsValue, _| {
                let chunk: EncodedAudioChunk = chunk.unchecked_into();
                let mut data = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to_with_u8_slice(&mut data).is_ok() {
                    let mut queue = queue.borrow_mut();
                    if queue.len() >= OUTPUTS_KEPT {
                        queue.pop_front();
                    }
                    queue.push_back((data, chunk.timestamp().max(0.0) as u64));
                }
            },
            failed.clone(),
        );
        let encoder = web_sys::AudioEncoder::new(init.unchecked_ref()).map_err(audio_error)?;
        let config = object(&[
            ("codec", AUDIO_CODEC.into()),
            ("sampleRate", SAMPLE_RATE.into()),
            ("numberOfChannels", 1.into()),
            ("bitrate", bitrate.into()),
            ("opus", object(&[("frameDuration", 20_000.into())]).into()),
        ]);
        encoder
            .configure(config.unchecked_ref())
            .map_err(audio_error)?;
        Ok(Self {
            encoder,
            out,
            captured: CaptureTimes::default(),
            failed,
            _callbacks: callbacks,
        })
    }

    /// Queues 20 ms of samples captured at `capture_us`.
    pub fn encode(
        &mut self,
        samples: &[i16; AUDIO_FRAME_SAMPLES],
        capture_us: u64,
    ) -> Result<(), CodecError> {
        if let Some(error) = self.failed.borrow_mut().take() {
            return Err(CodecError::Audio(error));
        }
        if self.encoder.state() != CodecState::Configured {
            return Err(CodecError::Audio("the encoder is closed".into()));
        }
        let init = object(&[
            ("format", "s16".into()),
            ("sampleRate", SAMPLE_RATE.into()),
            ("numberOfFrames", (AUDIO_FRAME_SAMPLES as u32).into()),
            ("numberOfChannels", 1.into()),
            ("timestamp", (capture_us as f64).into()),
            ("data", Int16Array::from(&samples[..]).into()),
        ]);
        let data = AudioData::new(init.unchecked_ref()).map_err(audio_error)?;
        let encoded = self.encoder.encode(&data);
        data.close();
        encoded.map_err(audio_error)?;
        self.captured.push(capture_us);
        Ok(())
    }

    /// The next packet and its capture time, once the encoder delivered one.
    pub fn take_output(&mut self) -> Option<(Vec<u8>, u64)> {
        let (packet, stamped) = self.out.borrow_mut().pop_front()?;
        Some((packet, self.captured.pop().unwrap_or(stamped)))
    }
}

impl Drop for AudioEncoder {
    fn drop(&mut self) {
        if self.encoder.state() != CodecState::Closed {
            let _ = self.encoder.close();
        }
    }
}

/// Opus decoder (WebCodecs `AudioDecoder`): 48 kHz mono samples, with their capture time.
pub struct AudioDecoder {
    decoder: web_sys::AudioDecoder,
    out: Outputs<Vec<f32>>,
    captured: CaptureTimes,
    failed: Rc<RefCell<Option<String>>>,
    _callbacks: Callbacks,
}

impl AudioDecoder {
    /// A decoder, 48 kHz mono.
    pub fn new() -> Result<Self, CodecError> {
        let out = Rc::new(RefCell::new(VecDeque::new()));
        let failed = Rc::new(RefCell::new(None));
        let queue = out.clone();
        let (init, callbacks) = callbacks(
            move |data: JsValue, _| {
                let data: AudioData = data.unchecked_into();
                if let Some(samples) = read_samples(&data) {
                    let mut queue = queue.borrow_mut();
                    if queue.len() >= OUTPUTS_KEPT {
                        queue.pop_front();
                    }
                    queue.push_back((samples, data.timestamp().max(0.0) as u64));
                }
                data.close();
            },
            failed.clone(),
        );
        let decoder = web_sys::AudioDecoder::new(init.unchecked_ref()).map_err(audio_error)?;
        let config = object(&[
            ("codec", AUDIO_CODEC.into()),
            ("sampleRate", SAMPLE_RATE.into()),
            ("numberOfChannels", 1.into()),
        ]);
        decoder
            .configure(config.unchecked_ref())
            .map_err(audio_error)?;
        Ok(Self {
            decoder,
            out,
            captured: CaptureTimes::default(),
            failed,
            _callbacks: callbacks,
        })
    }

    /// Whether the decoder failed for good (make a new one).
    pub fn is_broken(&self) -> bool {
        self.failed.borrow().is_some() || self.decoder.state() == CodecState::Closed
    }

    /// Queues one packet captured at `capture_us`.
    pub fn decode(&mut self, packet: &[u8], capture_us: u64) -> Result<(), CodecError> {
        if let Some(error) = self.failed.borrow().clone() {
            return Err(CodecError::Audio(error));
        }
        let init = object(&[
            ("type", web_sys::EncodedAudioChunkType::Key.into()),
            ("timestamp", (capture_us as f64).into()),
            ("data", Uint8Array::from(packet).into()),
        ]);
        let chunk = EncodedAudioChunk::new(init.unchecked_ref()).map_err(audio_error)?;
        self.decoder.decode(&chunk).map_err(audio_error)?;
        self.captured.push(capture_us);
        Ok(())
    }

    /// The next decoded samples and their capture time.
    pub fn take_output(&mut self) -> Option<(Vec<f32>, u64)> {
        let (samples, stamped) = self.out.borrow_mut().pop_front()?;
        Some((samples, self.captured.pop().unwrap_or(stamped)))
    }
}

impl Drop for AudioDecoder {
    fn drop(&mut self) {
        if self.decoder.state() != CodecState::Closed {
            let _ = self.decoder.close();
        }
    }
}

/// The first channel of `data` as 32-bit floats.
pub fn read_samples(data: &AudioData) -> Option<Vec<f32>> {
    let frames = data.number_of_frames();
    if frames == 0 || frames > 48_000 {
        return None;
    }
    let options = object(&[("planeIndex", 0.into()), ("format", "f32-planar".into())]);
    let samples = Float32Array::new_with_length(frames);
    data.copy_to_with_buffer_source(&samples, options.unchecked_ref())
        .ok()?;
    Some(samples.to_vec())
}

/// The join screen lists no devices in the browser: the browser's own prompt picks them.
pub fn list_devices() -> (super::DeviceList, super::DeviceList) {
    (Vec::new(), Vec::new())
}

/// Asks the browser for a media track (`video` or `audio` constraints), `Err` with the browser's
/// reason when refused or absent.
pub async fn user_media(video: JsValue, audio: JsValue) -> Result<MediaStreamTrack, String> {
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
    tracks
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| "the browser gave no track".to_owned())
}

/// Reads a track's frames (`VideoFrame` or `AudioData`) as they come, through a
/// `MediaStreamTrackProcessor`.
pub fn track_reader(track: &MediaStreamTrack) -> Result<ReadableStreamDefaultReader, String> {
    if !js::has_global("MediaStreamTrackProcessor") {
        return Err("this browser cannot read camera or microphone frames".into());
    }
    let init = object(&[("track", track.into())]);
    let processor = web_sys::MediaStreamTrackProcessor::new(init.unchecked_ref())
        .map_err(|e| js::message(&e))?;
    Ok(processor.readable().get_reader().unchecked_into())
}

/// The next frame from a track reader; `None` when the track ended.
pub async fn next_track_frame(reader: &ReadableStreamDefaultReader) -> Option<JsValue> {
    let result = wait(reader.read()).await.ok()?;
    if get(&result, "done").as_bool().unwrap_or(true) {
        return None;
    }
    Some(get(&result, "value"))
}

/// The newest camera picture, scaled to the call's size.
#[derive(Default)]
struct LatestPicture {
    frame: Mutex<Option<VideoFrame>>,
    stop: AtomicBool,
}

/// The camera as a [`VideoSource`]: the newest picture the browser delivered.
struct Camera {
    latest: Arc<LatestPicture>,
    spec: VideoSpec,
}

impl VideoSource for Camera {
    fn dimensions(&self) -> (usize, usize) {
        (self.spec.width, self.spec.height)
    }

    fn next_frame(&mut self, frame: &mut VideoFrame) {
        if let Some(latest) = lock(&self.latest.frame).as_ref() {
            frame.clone_from(latest);
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.latest.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the camera (the browser asks the user), falling back to the test pattern.
pub async fn open_camera(
    choice: &DeviceChoice,
    spec: VideoSpec,
) -> (Option<VideoSourceFactory>, SourceState) {
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
        let track = user_media(constraints.into(), false.into()).await?;
        let reader = track_reader(&track)?;
        Ok::<_, String>((track, reader))
    };
    let (track, reader) = match opened.await {
        Ok(opened) => opened,
        Err(reason) => return (None, SourceState::Fallback(reason)),
    };
    let name = track.label();
    let latest = Arc::new(LatestPicture::default());
    let feeding = latest.clone();
    spawn(async move {
        let mut scaled = VideoFrame::new(spec.width, spec.height);
        while !feeding.stop.load(Ordering::Relaxed) {
            let Some(frame) = next_track_frame(&reader).await else {
                break;
            };
            let frame: web_sys::VideoFrame = frame.unchecked_into();
            let picture = read_picture(&frame).await;
            frame.close();
            match picture {
                Ok(picture) => {
                    scale_i420(&picture, &mut scaled);
                    *lock(&feeding.frame) = Some(scaled.clone());
                }
                Err(error) => bevy::log::debug!(%error, "camera picture not readable"),
            }
        }
        js::forget(&reader.cancel());
        track.stop();
    });
    let factory: VideoSourceFactory =
        Box::new(move |_| Box::new(Camera { latest, spec }) as Box<dyn VideoSource>);
    (Some(factory), SourceState::Live(name))
}
