//! Browser codecs: H.264 and Opus through WebCodecs, the same Annex-B and Opus packets as the
//! native codecs put on the wire.
//!
//! WebCodecs answers through callbacks on this thread's event loop: each codec queues what it
//! produced (copying pictures out of the browser's `VideoFrame` first, which is itself
//! asynchronous) and wakes the driver. Opus is decoded in the worker itself
//! ([`super::pure_opus`]), not here.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use js_sys::{Array, Float32Array, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{AudioData, CodecState, EncodedAudioChunk, EncodedVideoChunk, VideoPixelFormat};

use super::{
    AUDIO_CODEC, AudioDecoder, AudioEncoder, CodecError, CodecName, Codecs, DecodedVideo,
    EncodedAudio, EncodedVideo, VIDEO_CODEC, VideoDecoder, VideoEncoder, VideoEncoderConfig, Wake,
};
use crate::js::{self, get, object, spawn, wait};
use crate::media::frame::copy_plane;
use crate::media::{AUDIO_FRAME_SAMPLES, SAMPLE_RATE, VideoFrame, rgb_to_i420};

const H264: CodecName = CodecName::H264;
const OPUS: CodecName = CodecName::Opus;
/// What a screen's encoder is configured with: H.264 Baseline at level 4.0 (1920x1080).
const SCREEN_ENCODER_CODEC: &str = "avc1.42E028";

/// Outputs a codec keeps for the call to take; older ones are dropped.
const OUTPUTS_KEPT: usize = 250;

/// The browser's codecs for one call.
pub struct WebCodecs {
    wake: Wake,
}

impl WebCodecs {
    /// Codecs that wake `wake` when they have output.
    pub fn new(wake: Wake) -> Self {
        Self { wake }
    }
}

impl Codecs for WebCodecs {
    fn video_encoder(
        &mut self,
        config: VideoEncoderConfig,
    ) -> Result<Box<dyn VideoEncoder>, CodecError> {
        Ok(Box::new(WebVideoEncoder::new(config, self.wake.clone())?))
    }

    fn video_decoder(&mut self) -> Result<Box<dyn VideoDecoder>, CodecError> {
        Ok(Box::new(WebVideoDecoder::new(self.wake.clone())?))
    }

    fn audio_encoder(&mut self, bitrate: u32) -> Result<Box<dyn AudioEncoder>, CodecError> {
        Ok(Box::new(WebAudioEncoder::new(bitrate, self.wake.clone())?))
    }

    fn audio_decoder(&mut self) -> Result<Box<dyn AudioDecoder>, CodecError> {
        super::pure_opus::decoder()
    }
}

/// What a codec delivered and the call has not taken yet, and the failure that closed it.
struct Shared<T> {
    out: VecDeque<Result<T, CodecError>>,
    failed: Option<String>,
}

type Queue<T> = Rc<RefCell<Shared<T>>>;

fn queue<T>() -> Queue<T> {
    Rc::new(RefCell::new(Shared {
        out: VecDeque::new(),
        failed: None,
    }))
}

fn deliver<T>(queue: &Queue<T>, wake: &Wake, output: Result<T, CodecError>) {
    let mut shared = queue.borrow_mut();
    if shared.out.len() >= OUTPUTS_KEPT {
        shared.out.pop_front();
    }
    shared.out.push_back(output);
    drop(shared);
    wake.notify_one();
}

/// The failure that closed a codec, once; then its outputs.
fn take<T>(queue: &Queue<T>, codec: CodecName) -> Option<Result<T, CodecError>> {
    let mut shared = queue.borrow_mut();
    if let Some(output) = shared.out.pop_front() {
        return Some(output);
    }
    shared
        .failed
        .take()
        .map(|reason| Err(CodecError::Failed { codec, reason }))
}

/// Callbacks a WebCodecs object calls; kept as long as it lives.
struct Callbacks {
    _output: Closure<dyn FnMut(JsValue, JsValue)>,
    _error: Closure<dyn FnMut(JsValue)>,
}

/// Makes the `{output, error}` init dictionary of a WebCodecs object; errors are noted in
/// `queue` (and wake the driver).
fn callbacks<T: 'static>(
    output: impl FnMut(JsValue, JsValue) + 'static,
    queue: Queue<T>,
    wake: Wake,
) -> (js_sys::Object, Callbacks) {
    let output = Closure::<dyn FnMut(JsValue, JsValue)>::new(output);
    let error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
        queue.borrow_mut().failed = Some(js::message(&error));
        wake.notify_one();
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

fn start_error(codec: CodecName) -> impl Fn(JsValue) -> CodecError {
    move |error| CodecError::Start {
        codec,
        reason: js::message(&error),
    }
}

fn failed(codec: CodecName) -> impl Fn(JsValue) -> CodecError {
    move |error| CodecError::Failed {
        codec,
        reason: js::message(&error),
    }
}

/// H.264 Constrained Baseline encoder for real-time video (WebCodecs `VideoEncoder`).
struct WebVideoEncoder {
    encoder: web_sys::VideoEncoder,
    queue: Queue<EncodedVideo>,
    /// Where each picture is put together for the browser: one buffer for the encoder's life, so
    /// thirty pictures a second leave no garbage behind.
    staging: Buffers,
    _callbacks: Callbacks,
}

impl WebVideoEncoder {
    fn new(config: VideoEncoderConfig, wake: Wake) -> Result<Self, CodecError> {
        let queue = queue();
        let delivered = queue.clone();
        let waker = wake.clone();
        let (init, callbacks) = callbacks(
            move |chunk: JsValue, _metadata| {
                let chunk: EncodedVideoChunk = chunk.unchecked_into();
                let mut data = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to_with_u8_slice(&mut data).is_err() {
                    return;
                }
                let encoded = EncodedVideo {
                    data: Bytes::from(data),
                    keyframe: chunk.type_() == web_sys::EncodedVideoChunkType::Key,
                    timestamp_us: chunk.timestamp().max(0.0) as u64,
                };
                deliver(&delivered, &waker, Ok(encoded));
            },
            queue.clone(),
            wake,
        );
        let encoder =
            web_sys::VideoEncoder::new(init.unchecked_ref()).map_err(start_error(H264))?;
        // A screen is up to 1920x1080: level 4.0 (the track's codec string stays the same, as
        // decoders take any level of the profile).
        let codec = if config.screen {
            SCREEN_ENCODER_CODEC
        } else {
            VIDEO_CODEC
        };
        let settings = object(&[
            ("codec", codec.into()),
            ("width", (config.width as u32).into()),
            ("height", (config.height as u32).into()),
            ("bitrate", config.bitrate.into()),
            ("framerate", config.fps.into()),
            ("latencyMode", "realtime".into()),
            // Annex-B, as on the wire: SPS and PPS in front of every keyframe.
            ("avc", object(&[("format", "annexb".into())]).into()),
        ]);
        encoder
            .configure(settings.unchecked_ref())
            .map_err(start_error(H264))?;
        Ok(Self {
            encoder,
            queue,
            staging: Buffers::default(),
            _callbacks: callbacks,
        })
    }
}

impl VideoEncoder for WebVideoEncoder {
    fn encode(
        &mut self,
        frame: &VideoFrame,
        timestamp_us: u64,
        keyframe: bool,
    ) -> Result<(), CodecError> {
        if self.encoder.state() != CodecState::Configured {
            return Err(CodecError::Closed(H264));
        }
        let staging = self.staging.take(frame.byte_len());
        let picture = to_browser_frame(frame, timestamp_us, &staging);
        self.staging.put(staging);
        let picture = picture?;
        let options = object(&[("keyFrame", keyframe.into())]);
        let encoded = self
            .encoder
            .encode_with_options(&picture, options.unchecked_ref());
        picture.close();
        encoded.map_err(failed(H264))
    }

    fn queue_size(&self) -> usize {
        self.encoder.encode_queue_size() as usize
    }

    fn poll_output(&mut self) -> Option<Result<EncodedVideo, CodecError>> {
        take(&self.queue, H264)
    }
}

impl Drop for WebVideoEncoder {
    fn drop(&mut self) {
        if self.encoder.state() != CodecState::Closed {
            let _ = self.encoder.close();
        }
    }
}

/// Copies an I420 picture into a browser `VideoFrame` stamped with `timestamp_us`, through
/// `staging` (at least the picture's size).
fn to_browser_frame(
    frame: &VideoFrame,
    timestamp_us: u64,
    staging: &Uint8Array,
) -> Result<web_sys::VideoFrame, CodecError> {
    let (y, u) = (frame.y.len() as u32, frame.u.len() as u32);
    staging.subarray(0, y).copy_from(&frame.y);
    staging.subarray(y, y + u).copy_from(&frame.u);
    staging.subarray(y + u, y + 2 * u).copy_from(&frame.v);
    let init = object(&[
        ("format", "I420".into()),
        ("codedWidth", (frame.width as u32).into()),
        ("codedHeight", (frame.height as u32).into()),
        ("timestamp", (timestamp_us as f64).into()),
    ]);
    // The browser copies the bytes into the frame: the buffer is free again at once.
    web_sys::VideoFrame::new_with_buffer_source_and_video_frame_buffer_init(
        &staging.subarray(0, y + 2 * u),
        init.unchecked_ref(),
    )
    .map_err(failed(H264))
}

/// Large JavaScript buffers kept for reuse: a picture a frame each way would otherwise leave
/// megabytes of garbage a second, and the collector's pauses would stall the call.
#[derive(Clone, Default)]
pub struct Buffers(Rc<RefCell<Vec<Uint8Array>>>);

impl Buffers {
    /// A buffer of at least `len` bytes (a kept one when one is large enough).
    pub fn take(&self, len: usize) -> Uint8Array {
        let mut kept = self.0.borrow_mut();
        match kept
            .iter()
            .position(|buffer| buffer.length() as usize >= len)
        {
            Some(at) => kept.swap_remove(at),
            None => Uint8Array::new_with_length(len as u32),
        }
    }

    /// Gives a buffer back (a few are kept).
    pub fn put(&self, buffer: Uint8Array) {
        let mut kept = self.0.borrow_mut();
        if kept.len() < 4 {
            kept.push(buffer);
        }
    }
}

/// H.264 decoder (WebCodecs `VideoDecoder`).
struct WebVideoDecoder {
    decoder: web_sys::VideoDecoder,
    queue: Queue<DecodedVideo>,
    _callbacks: Callbacks,
}

impl WebVideoDecoder {
    fn new(wake: Wake) -> Result<Self, CodecError> {
        let queue = queue();
        let delivered = queue.clone();
        let waker = wake.clone();
        let buffers = Buffers::default();
        let (init, callbacks) = callbacks(
            move |frame: JsValue, _| {
                let frame: web_sys::VideoFrame = frame.unchecked_into();
                let delivered = delivered.clone();
                let waker = waker.clone();
                let buffers = buffers.clone();
                spawn(async move {
                    let timestamp_us = frame.timestamp().max(0.0) as u64;
                    let picture = read_picture(&frame, &buffers).await;
                    frame.close();
                    let output = picture
                        .map(|frame| DecodedVideo {
                            frame,
                            timestamp_us,
                        })
                        .map_err(|reason| CodecError::Failed {
                            codec: H264,
                            reason,
                        });
                    deliver(&delivered, &waker, output);
                });
            },
            queue.clone(),
            wake,
        );
        let decoder =
            web_sys::VideoDecoder::new(init.unchecked_ref()).map_err(start_error(H264))?;
        let settings = object(&[
            ("codec", VIDEO_CODEC.into()),
            ("optimizeForLatency", true.into()),
        ]);
        decoder
            .configure(settings.unchecked_ref())
            .map_err(start_error(H264))?;
        Ok(Self {
            decoder,
            queue,
            _callbacks: callbacks,
        })
    }
}

impl VideoDecoder for WebVideoDecoder {
    fn decode(&mut self, chunk: EncodedVideo) -> Result<(), CodecError> {
        if self.decoder.state() != CodecState::Configured {
            return Err(CodecError::Closed(H264));
        }
        let kind = if chunk.keyframe {
            web_sys::EncodedVideoChunkType::Key
        } else {
            web_sys::EncodedVideoChunkType::Delta
        };
        let init = object(&[
            ("type", kind.into()),
            ("timestamp", (chunk.timestamp_us as f64).into()),
            ("data", Uint8Array::from(&chunk.data[..]).into()),
        ]);
        let chunk = EncodedVideoChunk::new(init.unchecked_ref()).map_err(failed(H264))?;
        self.decoder.decode(&chunk).map_err(failed(H264))
    }

    fn queue_size(&self) -> usize {
        self.decoder.decode_queue_size() as usize
    }

    fn poll_output(&mut self) -> Option<Result<DecodedVideo, CodecError>> {
        take(&self.queue, H264)
    }
}

impl Drop for WebVideoDecoder {
    fn drop(&mut self) {
        if self.decoder.state() != CodecState::Closed {
            let _ = self.decoder.close();
        }
    }
}

/// Copies a browser `VideoFrame` (its visible part) into a tightly packed I420 picture, through
/// one of `buffers`.
pub async fn read_picture(
    frame: &web_sys::VideoFrame,
    buffers: &Buffers,
) -> Result<VideoFrame, String> {
    let format = frame.format().ok_or("a picture of no known format")?;
    let rect = frame
        .visible_rect()
        .ok_or("a picture with no visible area")?;
    let (width, height) = (rect.width() as usize, rect.height() as usize);
    if width < 2 || height < 2 || width > 8192 || height > 8192 {
        return Err(format!("a {width}x{height} picture"));
    }
    let size = frame.allocation_size().map_err(|e| js::message(&e))? as usize;
    let buffer = buffers.take(size).subarray(0, size as u32);
    let copied = wait(frame.copy_to_with_u8_array(&buffer)).await;
    let bytes = buffer.to_vec();
    buffers.put(Uint8Array::new(&buffer.buffer()));
    let layouts = copied?;
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
            let (y, stride) = plane(0)?;
            copy_plane(y, stride, &mut out.y, w, h);
            let (u, stride) = plane(1)?;
            copy_plane(u, stride, &mut out.u, w / 2, h / 2);
            let (v, stride) = plane(2)?;
            copy_plane(v, stride, &mut out.v, w / 2, h / 2);
        }
        VideoPixelFormat::Nv12 => {
            let (y, stride) = plane(0)?;
            copy_plane(y, stride, &mut out.y, w, h);
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

/// Opus encoder, 48 kHz mono, 20 ms frames (WebCodecs `AudioEncoder`).
struct WebAudioEncoder {
    encoder: web_sys::AudioEncoder,
    queue: Queue<EncodedAudio>,
    /// Capture times of what went in and has not come out yet, in order: each 20 ms goes in and
    /// comes out as one, while the codec's own timestamps follow its sample count, not the clock.
    captured: Rc<RefCell<VecDeque<u64>>>,
    _callbacks: Callbacks,
}

impl WebAudioEncoder {
    fn new(bitrate: u32, wake: Wake) -> Result<Self, CodecError> {
        let queue = queue();
        let captured: Rc<RefCell<VecDeque<u64>>> = Rc::default();
        let (delivered, waker, times) = (queue.clone(), wake.clone(), captured.clone());
        let (init, callbacks) = callbacks(
            move |chunk: JsValue, _| {
                let chunk: EncodedAudioChunk = chunk.unchecked_into();
                let mut data = vec![0u8; chunk.byte_length() as usize];
                if chunk.copy_to_with_u8_slice(&mut data).is_ok() {
                    let stamped = chunk.timestamp().max(0.0) as u64;
                    let timestamp_us = times.borrow_mut().pop_front().unwrap_or(stamped);
                    let packet = EncodedAudio {
                        data: Bytes::from(data),
                        timestamp_us,
                    };
                    deliver(&delivered, &waker, Ok(packet));
                }
            },
            queue.clone(),
            wake,
        );
        let encoder =
            web_sys::AudioEncoder::new(init.unchecked_ref()).map_err(start_error(OPUS))?;
        let settings = object(&[
            ("codec", AUDIO_CODEC.into()),
            ("sampleRate", SAMPLE_RATE.into()),
            ("numberOfChannels", 1.into()),
            ("bitrate", bitrate.into()),
            ("opus", object(&[("frameDuration", 20_000.into())]).into()),
        ]);
        encoder
            .configure(settings.unchecked_ref())
            .map_err(start_error(OPUS))?;
        Ok(Self {
            encoder,
            queue,
            captured,
            _callbacks: callbacks,
        })
    }
}

impl AudioEncoder for WebAudioEncoder {
    fn encode(
        &mut self,
        samples: &[f32; AUDIO_FRAME_SAMPLES],
        timestamp_us: u64,
    ) -> Result<(), CodecError> {
        if self.encoder.state() != CodecState::Configured {
            return Err(CodecError::Closed(OPUS));
        }
        let init = object(&[
            ("format", "f32".into()),
            ("sampleRate", SAMPLE_RATE.into()),
            ("numberOfFrames", (AUDIO_FRAME_SAMPLES as u32).into()),
            ("numberOfChannels", 1.into()),
            ("timestamp", (timestamp_us as f64).into()),
            ("data", Float32Array::from(&samples[..]).into()),
        ]);
        let data = AudioData::new(init.unchecked_ref()).map_err(failed(OPUS))?;
        let encoded = self.encoder.encode(&data);
        data.close();
        encoded.map_err(failed(OPUS))?;
        let mut captured = self.captured.borrow_mut();
        if captured.len() >= OUTPUTS_KEPT {
            captured.pop_front();
        }
        captured.push_back(timestamp_us);
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Result<EncodedAudio, CodecError>> {
        take(&self.queue, OPUS)
    }
}

impl Drop for WebAudioEncoder {
    fn drop(&mut self) {
        if self.encoder.state() != CodecState::Closed {
            let _ = self.encoder.close();
        }
    }
}
