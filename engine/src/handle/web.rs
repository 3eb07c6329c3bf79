//! In the browser a call runs in a dedicated worker of its own (the engine's own wasm module,
//! `rotunda_worker.js`), so drawing the room never holds it up and a hidden tab keeps its call.
//! The page keeps only the handle: commands go to the worker as messages, and its messages fill
//! the handle's channel and mailboxes.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, MessagePort, ReadableStream, Worker, WorkerOptions};

use super::EngineSide;
use crate::call::{CallConfig, CallEvent, Command, Decoded};
use crate::driver::Outputs;
use crate::js::{self, get, object};
use crate::media::VideoFrame;
use crate::worker::protocol::{self, FromWorker, ToWorker};
use crate::{Error, rt};

/// What the page hands the worker: the camera's frames and the ports of its audio worklets.
#[derive(Debug, Default)]
pub struct PageDevices {
    /// The camera's `VideoFrame`s (a `MediaStreamTrackProcessor`'s readable side).
    pub camera: Option<ReadableStream>,
    /// The microphone worklet's port.
    pub microphone: Option<MessagePort>,
    /// The speakers worklet's port.
    pub speakers: Option<MessagePort>,
    /// A display shared from the start (a `getDisplayMedia` track's `VideoFrame`s).
    pub screen: Option<ReadableStream>,
}

thread_local! {
    /// The running call's worker, for a display shared later.
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Gives the running call a display to share (the call publishes it on
/// [`Command::Screen`]); false when no call runs.
pub fn share_screen(display: ReadableStream) -> bool {
    WORKER.with_borrow(|worker| {
        let Some(worker) = worker else {
            return false;
        };
        let transfer = Array::new();
        transfer.push(&display);
        post_with(
            worker,
            &ToWorker::Screen,
            vec![("screen", display.into())],
            transfer,
        );
        true
    })
}

/// How long a worker may take to finish after the page left.
const FINISH_MS: i32 = 5_000;

/// Starts the call behind `side`'s handle in a new worker loaded from `worker_url` (the engine
/// worker's script), with the page's devices.
pub fn start(side: EngineSide, config: CallConfig, devices: PageDevices, worker_url: &str) {
    let EngineSide {
        commands,
        outputs,
        presented,
    } = side;
    let outputs = Rc::new(RefCell::new(outputs));
    let options = WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    let worker = match Worker::new_with_options(worker_url, &options) {
        Ok(worker) => worker,
        Err(error) => {
            outputs
                .borrow_mut()
                .event(CallEvent::Failed(Error::EngineGone(format!(
                    "the call's worker did not start: {}",
                    js::message(&error)
                ))));
            return;
        }
    };
    let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
    let mut done_tx = Some(done_tx);
    let onmessage = {
        let outputs = outputs.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let bytes: Option<Uint8Array> = get(&data, "message").dyn_into().ok();
            let Some(message) =
                bytes.and_then(|bytes| protocol::decode::<FromWorker>(&bytes.to_vec()).ok())
            else {
                return js::log_error("rotunda:error the page got a message it cannot read");
            };
            let mut outputs = outputs.borrow_mut();
            match message {
                FromWorker::Event(event) => outputs.event(event),
                FromWorker::Poses(poses) => {
                    for (id, pose) in poses {
                        outputs.pose(id, pose);
                    }
                }
                FromWorker::Picture {
                    id,
                    source,
                    width,
                    height,
                } => {
                    let planes: Option<Uint8Array> = get(&data, "planes").dyn_into().ok();
                    let frame = planes.and_then(|planes| {
                        VideoFrame::from_planes(width as usize, height as usize, &planes.to_vec())
                    });
                    if let Some(frame) = frame {
                        outputs.picture(Decoded {
                            from: id,
                            source,
                            frame,
                        });
                    }
                }
                FromWorker::Log { error: true, line } => js::log_error(&line),
                FromWorker::Log { error: false, line } => js::log(&line),
                FromWorker::Done => {
                    if let Some(done) = done_tx.take() {
                        let _ = done.send(());
                    }
                }
            }
        })
    };
    let onerror = {
        let outputs = outputs.clone();
        Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            let reason = format!("the call's worker failed: {}", event.message());
            js::log_error(&format!("rotunda:error {reason}"));
            outputs
                .borrow_mut()
                .event(CallEvent::Failed(Error::EngineGone(reason)));
        })
    };
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    let transfer = Array::new();
    let mut beside: Vec<(&str, JsValue)> = Vec::new();
    if let Some(camera) = devices.camera {
        transfer.push(&camera);
        beside.push(("camera", camera.into()));
    }
    if let Some(microphone) = devices.microphone {
        transfer.push(&microphone);
        beside.push(("microphone", microphone.into()));
    }
    if let Some(speakers) = devices.speakers {
        transfer.push(&speakers);
        beside.push(("speakers", speakers.into()));
    }
    if let Some(screen) = devices.screen {
        transfer.push(&screen);
        beside.push(("screen", screen.into()));
    }
    post_with(
        &worker,
        &ToWorker::Start(Box::new(config)),
        beside,
        transfer,
    );
    WORKER.set(Some(worker.clone()));
    let handlers = Handlers {
        _message: onmessage,
        _error: onerror,
    };
    rt::spawn(forward(commands, presented, worker, done, handlers));
}

/// The page's handlers of the worker's messages and errors, kept as long as it runs.
struct Handlers {
    _message: Closure<dyn FnMut(MessageEvent)>,
    _error: Closure<dyn FnMut(ErrorEvent)>,
}

/// Carries commands (and word of every frame drawn) to the worker until the application drops its
/// handle; then leaves, lets the worker finish (and say so), and ends it.
async fn forward(
    mut commands: tokio::sync::mpsc::Receiver<Command>,
    presented: std::sync::Arc<tokio::sync::Notify>,
    worker: Worker,
    done: tokio::sync::oneshot::Receiver<()>,
    handlers: Handlers,
) {
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => post(&worker, &ToWorker::Command(command)),
                None => break,
            },
            () = presented.notified() => post(&worker, &ToWorker::Drawn),
        }
    }
    post(&worker, &ToWorker::Command(Command::Leave));
    let _ = js::timeout(FINISH_MS, done).await;
    worker.set_onmessage(None);
    worker.set_onerror(None);
    worker.terminate();
    WORKER.with_borrow_mut(|current| {
        if current.as_ref() == Some(&worker) {
            *current = None;
        }
    });
    drop(handlers);
}

fn post(worker: &Worker, message: &ToWorker) {
    post_with(worker, message, Vec::new(), Array::new());
}

/// Posts `message` with `beside` (transferring `transfer`).
fn post_with(worker: &Worker, message: &ToWorker, beside: Vec<(&str, JsValue)>, transfer: Array) {
    let Ok(bytes) = protocol::encode(message) else {
        return;
    };
    let bytes = Uint8Array::from(&bytes[..]);
    transfer.push(&bytes.buffer());
    let mut pairs = vec![("message", JsValue::from(bytes))];
    pairs.extend(beside);
    if let Err(error) = worker.post_message_with_transfer(&object(&pairs), &transfer) {
        js::log_error(&format!(
            "rotunda:error posting to the call's worker: {}",
            js::message(&error)
        ));
    }
}
