//! The browser transport: WebTransport (web-sys) to the same relay endpoint and the same wire as
//! native clients, from a page or a dedicated worker: control messages on one bidirectional
//! stream, audio in datagrams, each video frame on a unidirectional stream of its own.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Array, Uint8Array};
use rotunda_proto::framing::{self, FrameDecoder};
use rotunda_proto::{ErrorCode, FramePriority, FromRelay, MediaFrame, Resume, ToRelay, TrackKind};
use tokio::sync::mpsc;
use tracing::debug;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    ReadableStream, ReadableStreamDefaultReader, WebTransport, WebTransportBidirectionalStream,
    WebTransportOptions, WebTransportSendStream, WebTransportSendStreamOptions,
    WritableStreamDefaultWriter,
};
use web_time::Instant;

use super::trust;
use super::{CONTROL_QUEUE, EVENT_QUEUE, Event, VIDEO_IN_FLIGHT, hello, welcome};
use crate::Error;
use crate::js::{self, get, object, spawn, wait};
use crate::session::{JoinOptions, Joined};

/// A video frame not delivered by then is abandoned (ms).
const STALE_VIDEO_MS: i32 = 1000;
/// A video frame from the relay not fully received by then is abandoned (ms).
const VIDEO_READ_TIMEOUT_MS: i32 = 2000;
/// Largest video frame read from the relay.
const MAX_VIDEO_FRAME: usize =
    rotunda_proto::limits::MAX_VIDEO_PAYLOAD + rotunda_proto::MediaHeader::LEN;

/// Audio datagrams handed to the browser at once before it says they went (its default is
/// one: a round trip to the network process for every 20 ms frame, which a busy machine does
/// not keep up with, and audio queued up for seconds; browser test, 2 cores).
const DATAGRAMS_OUT: f64 = 16.0;
/// Audio frames waiting in the datagram writer (its own queue, after the [`DATAGRAMS_OUT`] the
/// browser took) before new ones are dropped rather than queued: at most about 20 frames
/// (0.4 s) are then on their way, where the unbounded queue held seconds.
const AUDIO_BACKLOG: f64 = 5.0;
/// Datagrams from the relay the browser keeps for us while the worker is busy: 320 ms of four
/// voices (Chromium's default keeps one, so a second voice arriving before the worker read the
/// first dropped it: pages heard 71-94 % of the others' audio in the browser test).
const DATAGRAMS_IN: f64 = 64.0;
/// Received datagrams older than this are dropped unread (ms): the jitter buffer would drop
/// them anyway.
const DATAGRAMS_IN_MAX_AGE_MS: f64 = 1000.0;

/// A joined session.
pub struct Session {
    transport: WebTransport,
    control: mpsc::Sender<ToRelay>,
    datagrams: WritableStreamDefaultWriter,
    video_in_flight: Rc<Cell<usize>>,
    priorities: RefCell<HashMap<u8, FramePriority>>,
    closed: Rc<Cell<bool>>,
}

impl Session {
    /// Queues a control message. Fails with [`Error::Congested`] when the queue is full (the
    /// message is dropped), with [`Error::Lost`] when the session is gone.
    pub fn send(&self, message: ToRelay) -> Result<(), Error> {
        super::queue_control(&self.control, message)
    }

    /// Sends an audio frame as a datagram (lost, not retried, if the network drops it).
    pub fn send_audio(&self, frame: &MediaFrame) -> Result<(), Error> {
        if self.closed.get() {
            return Err(Error::Lost);
        }
        // Audio waiting behind audio is late audio: beyond a few frames' backlog (the browser
        // hands datagrams to its network process more slowly than we make them while the
        // machine is busy) the frame goes now rather than seconds later, i.e. not at all.
        let waiting = self
            .datagrams
            .desired_size()
            .ok()
            .flatten()
            .map_or(0.0, |size| -size);
        if waiting > AUDIO_BACKLOG {
            debug!(
                waiting,
                "audio frame dropped: the datagram writer is behind"
            );
            return Ok(());
        }
        let chunk = Uint8Array::from(&frame.wire[..]);
        js::forget(&self.datagrams.write_with_chunk(&chunk));
        Ok(())
    }

    /// Sends a video frame on a stream of its own. Returns false when too many frames are still
    /// in flight: the frame was dropped and the next one should be a keyframe.
    pub fn send_video(&self, frame: MediaFrame) -> bool {
        if self.closed.get() || self.video_in_flight.get() >= VIDEO_IN_FLIGHT {
            return false;
        }
        let priority = self
            .priorities
            .borrow_mut()
            .entry(frame.header.track.index)
            .or_default()
            .next(frame.header.keyframe);
        let in_flight = self.video_in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        let transport = self.transport.clone();
        spawn(async move {
            write_frame(&transport, &frame, priority).await;
            in_flight.set(in_flight.get().saturating_sub(1));
        });
        true
    }

    /// Says goodbye and closes the session.
    pub async fn leave(self) {
        let _ = self.control.send(ToRelay::Leave).await;
        // The relay closes the session once it has read the leave.
        let closed = self.transport.closed();
        let _ = js::timeout(2000, wait(closed)).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.closed.set(true);
        let info = object(&[
            ("closeCode", JsValue::from(ErrorCode::Normal.as_u32())),
            ("reason", JsValue::from_str("")),
        ]);
        self.transport
            .close_with_close_info(info.unchecked_ref::<web_sys::WebTransportCloseInfo>());
    }
}

/// Connects to the relay, says hello and joins the room (taking our place back with `resume`).
pub async fn connect(
    options: &JoinOptions,
    resume: Option<Resume>,
) -> Result<(Session, Joined, mpsc::Receiver<Event>), Error> {
    if !js::has_global("WebTransport") {
        return Err(Error::NoWebTransport);
    }
    let authority = trust::authority(&options.relay)?;
    // A fingerprint fetched over plain HTTP is trusted from this machine only (a development
    // relay, as natively); any other relay shows a real certificate, or the page names the
    // fingerprint it pins (`?cert=`).
    let hash = match options.cert_hash {
        Some(hash) => Some(hash),
        None if trust::is_loopback(&authority) => fetch_hash(&authority, resume.is_some()).await?,
        None => None,
    };
    let unreachable = |reason: String| Error::Unreachable {
        url: options.relay.clone(),
        reason,
    };
    let settings = object(&[]);
    if let Some(hash) = hash {
        let pin = object(&[
            ("algorithm", JsValue::from_str("sha-256")),
            ("value", Uint8Array::from(&hash[..]).into()),
        ]);
        let _ = js_sys::Reflect::set(
            &settings,
            &JsValue::from_str("serverCertificateHashes"),
            &Array::of1(&pin),
        );
    }
    let transport = WebTransport::new_with_options(
        &options.relay,
        settings.unchecked_ref::<WebTransportOptions>(),
    )
    .map_err(|e| unreachable(js::message(&e)))?;
    // A failed session rejects `closed` too; nobody may be waiting on it yet.
    js::forget(&transport.closed());
    wait(transport.ready()).await.map_err(unreachable)?;
    let bidi: WebTransportBidirectionalStream = wait(transport.create_bidirectional_stream())
        .await
        .map_err(unreachable)?
        .unchecked_into();
    let writer = bidi
        .writable()
        .get_writer()
        .map_err(|e| unreachable(js::message(&e)))?;
    let reader: ReadableStreamDefaultReader = bidi.readable().get_reader().unchecked_into();

    let hello = hello(
        options,
        resume,
        concat!("rotunda-web/", env!("CARGO_PKG_VERSION")),
    )?;
    write_all(&writer, &hello).await.map_err(|_| Error::Lost)?;

    let mut decoder = FrameDecoder::new();
    let joined = loop {
        if let Some(answer) = welcome(next_message(&reader, &mut decoder).await?) {
            break answer?;
        }
    };

    let duplex = transport.datagrams();
    duplex.set_outgoing_high_water_mark(DATAGRAMS_OUT);
    duplex.set_incoming_high_water_mark(DATAGRAMS_IN);
    duplex.set_incoming_max_age(DATAGRAMS_IN_MAX_AGE_MS);
    let datagrams = duplex
        .writable()
        .get_writer()
        .map_err(|e| unreachable(js::message(&e)))?;
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let closed = Rc::new(Cell::new(false));
    spawn(write_control(writer, control_rx));
    spawn(read_control(
        transport.clone(),
        reader,
        decoder,
        events_tx.clone(),
        closed.clone(),
    ));
    spawn(read_datagrams(
        transport.datagrams().readable(),
        events_tx.clone(),
    ));
    spawn(read_streams(
        transport.incoming_unidirectional_streams(),
        events_tx,
    ));
    let session = Session {
        transport,
        control,
        datagrams,
        video_in_flight: Rc::default(),
        priorities: RefCell::default(),
        closed,
    };
    Ok((session, joined, events))
}

/// The loopback relay's dev certificate fingerprint from `/certificate.sha256` on its HTTP
/// port; `None` when there is none to fetch (a relay with a real certificate, or a page on
/// https that may not fetch plain http), and the browser's own trust applies. When `rejoining`, a relay that
/// does not answer at all is taken for down: the try fails at once.
async fn fetch_hash(authority: &str, rejoining: bool) -> Result<Option<[u8; 32]>, Error> {
    let url = format!("http://{authority}/certificate.sha256");
    let fetch = js_sys::global()
        .unchecked_into::<web_sys::WorkerGlobalScope>()
        .fetch_with_str(&url);
    let response: web_sys::Response = match js::timeout(5000, wait(fetch)).await {
        Some(Ok(response)) => response.unchecked_into(),
        Some(Err(error)) if rejoining => {
            return Err(Error::Unreachable {
                url: url.clone(),
                reason: error,
            });
        }
        Some(Err(error)) => {
            tracing::info!("no certificate fingerprint at {url} ({error}); the browser's trust");
            return Ok(None);
        }
        None => {
            tracing::info!("no certificate fingerprint at {url} (timed out); the browser's trust");
            return Ok(None);
        }
    };
    if !response.ok() {
        return Ok(None);
    }
    let Ok(text) = response.text() else {
        return Ok(None);
    };
    let text = wait(text).await.ok().and_then(|t| t.as_string());
    Ok(text.as_deref().and_then(trust::parse_hash))
}

/// Writes `bytes` and waits until the stream took them.
async fn write_all(writer: &WritableStreamDefaultWriter, bytes: &[u8]) -> Result<(), String> {
    wait(writer.write_with_chunk(&Uint8Array::from(bytes)))
        .await
        .map(|_| ())
}

/// The next chunk of a stream, `None` at its end (or when it failed).
async fn read_chunk(reader: &ReadableStreamDefaultReader) -> Option<JsValue> {
    let result = wait(reader.read()).await.ok()?;
    if get(&result, "done").as_bool().unwrap_or(true) {
        return None;
    }
    Some(get(&result, "value"))
}

async fn next_message(
    reader: &ReadableStreamDefaultReader,
    decoder: &mut FrameDecoder,
) -> Result<FromRelay, Error> {
    loop {
        if let Some(message) = decoder.poll_message()? {
            return Ok(message);
        }
        let chunk = read_chunk(reader).await.ok_or(Error::Lost)?;
        let bytes: Uint8Array = chunk.dyn_into().map_err(|_| Error::Lost)?;
        decoder.push(&bytes.to_vec());
    }
}

async fn write_control(writer: WritableStreamDefaultWriter, mut messages: mpsc::Receiver<ToRelay>) {
    let mut out = Vec::new();
    while let Some(message) = messages.recv().await {
        out.clear();
        if framing::encode_into(&message, &mut out).is_err() {
            continue;
        }
        if write_all(&writer, &out).await.is_err() {
            return;
        }
        if message == ToRelay::Leave {
            let _ = wait(writer.close()).await;
            return;
        }
    }
}

async fn read_control(
    transport: WebTransport,
    reader: ReadableStreamDefaultReader,
    mut decoder: FrameDecoder,
    events: mpsc::Sender<Event>,
    closed: Rc<Cell<bool>>,
) {
    let mut relay_code = None;
    while let Ok(message) = next_message(&reader, &mut decoder).await {
        if let FromRelay::Error { code } = message {
            relay_code = Some(code);
        }
        if events.send(Event::Control(message)).await.is_err() {
            return;
        }
    }
    let close_code = match wait(transport.closed()).await {
        Ok(info) => get(&info, "closeCode").as_f64().map(|code| code as u32),
        Err(_) => None,
    };
    closed.set(true);
    let _ = events
        .send(Event::Closed(super::closed(relay_code, close_code)))
        .await;
}

async fn read_datagrams(readable: ReadableStream, events: mpsc::Sender<Event>) {
    let reader: ReadableStreamDefaultReader = readable.get_reader().unchecked_into();
    while let Some(chunk) = read_chunk(&reader).await {
        let Ok(bytes) = chunk.dyn_into::<Uint8Array>() else {
            continue;
        };
        match MediaFrame::decode(bytes.to_vec().into(), TrackKind::Audio) {
            Ok(frame) => {
                let _ = events.try_send(Event::Media(frame, TrackKind::Audio));
            }
            Err(error) => debug!(%error, "bad audio datagram from the relay"),
        }
    }
}

async fn read_streams(incoming: ReadableStream, events: mpsc::Sender<Event>) {
    let reader: ReadableStreamDefaultReader = incoming.get_reader().unchecked_into();
    while let Some(stream) = read_chunk(&reader).await {
        let events = events.clone();
        let stream: ReadableStream = stream.unchecked_into();
        spawn(async move {
            match js::timeout(VIDEO_READ_TIMEOUT_MS, read_frame(&stream)).await {
                Some(Some(frame)) => {
                    let _ = events.try_send(Event::Media(frame, TrackKind::Video));
                }
                Some(None) => {}
                None => js::forget(&stream.cancel()),
            }
        });
    }
}

/// Reads one video frame: the whole stream, at most [`MAX_VIDEO_FRAME`] bytes.
async fn read_frame(stream: &ReadableStream) -> Option<MediaFrame> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut wire = Vec::new();
    while let Some(chunk) = read_chunk(&reader).await {
        let bytes: Uint8Array = chunk.dyn_into().ok()?;
        if wire.len() + bytes.length() as usize > MAX_VIDEO_FRAME {
            js::forget(&reader.cancel());
            debug!("video frame from the relay too long");
            return None;
        }
        let start = wire.len();
        wire.resize(start + bytes.length() as usize, 0);
        bytes.copy_to(&mut wire[start..]);
    }
    match MediaFrame::decode(wire.into(), TrackKind::Video) {
        Ok(frame) => Some(frame),
        Err(error) => {
            debug!(%error, "bad video frame from the relay");
            None
        }
    }
}

/// Writes one frame on a new stream (higher `priority` goes first). A frame not delivered
/// within [`STALE_VIDEO_MS`] is abandoned: its stream is reset, never left open or finished
/// short (the relay takes a short frame for a broken peer).
async fn write_frame(transport: &WebTransport, frame: &MediaFrame, priority: i32) {
    let deadline = Instant::now() + Duration::from_millis(STALE_VIDEO_MS as u64);
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as i32
    };
    let options = WebTransportSendStreamOptions::new();
    options.set_send_order(Some(priority));
    // Opening is not abandoned half way: a stream that opens late is reset below.
    let stream: WebTransportSendStream =
        match wait(transport.create_unidirectional_stream_with_options(&options)).await {
            Ok(stream) => stream.unchecked_into(),
            Err(error) => return debug!(%error, "no stream for a video frame"),
        };
    let writer = match stream.get_writer() {
        Ok(writer) => writer,
        Err(error) => return debug!(error = %js::message(&error), "video stream unusable"),
    };
    let delivered = async {
        write_all(&writer, &frame.wire).await?;
        wait(writer.close()).await.map(|_| ())
    };
    let outcome = if left() > 0 {
        js::timeout(left(), delivered).await
    } else {
        None
    };
    match outcome {
        Some(Ok(())) => {}
        Some(Err(error)) => {
            debug!(%error, "video frame not sent");
            js::forget(&writer.abort());
        }
        None => {
            debug!("video frame abandoned: not delivered in time");
            js::forget(&writer.abort());
        }
    }
}
