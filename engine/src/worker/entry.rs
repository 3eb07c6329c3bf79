//! The worker's side: it waits for the page's start message, runs the call with the browser's
//! codecs and the devices the page handed over, and posts what the call produces back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Array, Uint8Array};
use rotunda_proto::{ParticipantId, Pose, TrackSource};
use tokio::sync::mpsc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, MessagePort, ReadableStream};
use web_time::Instant;

use super::devices::{CameraReader, MicrophonePort, ScreenGiven, ScreenReader, SpeakerPort};
use super::protocol::{self, FromWorker, ToWorker};
use crate::call::{CallConfig, CallEvent, Decoded, Sources};
use crate::codec::Wake;
use crate::codec::web::WebCodecs;
use crate::driver::{self, Outputs, Parts};
use crate::handle::COMMAND_QUEUE;
use crate::js::{self, get, object};
use crate::media::VideoFrame;

/// Poses go to the page at most this often, batched.
const POSES_EVERY: Duration = Duration::from_millis(50);

/// Starts the worker's side: called once, when the worker's module has loaded.
pub fn start() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let post = Post(scope.clone());
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let mut commands = Some(commands);
    let flow = Rc::new(RefCell::new(PictureFlow::default()));
    let screen = ScreenGiven::default();
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let bytes: Option<Uint8Array> = get(&data, "message").dyn_into().ok();
        let message = bytes.and_then(|bytes| protocol::decode::<ToWorker>(&bytes.to_vec()).ok());
        let Some(message) = message else {
            post.log(
                true,
                "rotunda:error the worker got a message it cannot read",
            );
            return;
        };
        match message {
            ToWorker::Start(config) => {
                let Some(commands) = commands.take() else {
                    return post.log(true, "rotunda:error the call was started twice");
                };
                let camera = get(&data, "camera").dyn_into::<ReadableStream>().ok();
                let microphone = get(&data, "microphone").dyn_into::<MessagePort>().ok();
                let speakers = get(&data, "speakers").dyn_into::<MessagePort>().ok();
                if let Ok(display) = get(&data, "screen").dyn_into::<ReadableStream>() {
                    *screen.borrow_mut() = Some(display);
                }
                let devices = (camera, microphone, speakers, screen.clone());
                js::spawn(run(*config, devices, commands, post.clone(), flow.clone()));
            }
            ToWorker::Screen => match get(&data, "screen").dyn_into::<ReadableStream>() {
                Ok(display) => *screen.borrow_mut() = Some(display),
                Err(_) => post.log(
                    true,
                    "rotunda:error a screen to share came without its stream",
                ),
            },
            ToWorker::Command(command) => {
                if commands_tx.try_send(command).is_err() {
                    tracing::debug!("a command was dropped: the call is behind");
                }
            }
            ToWorker::Drawn => flow.borrow_mut().drawn(&post),
        }
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    // It serves the worker as long as it lives.
    onmessage.forget();
}

/// Runs the call to its end, then says so and closes the worker.
async fn run(
    config: CallConfig,
    (camera, microphone, speakers, screen): (
        Option<ReadableStream>,
        Option<MessagePort>,
        Option<MessagePort>,
        ScreenGiven,
    ),
    commands: mpsc::Receiver<crate::call::Command>,
    post: Post,
    flow: Rc<RefCell<PictureFlow>>,
) {
    let wake = Wake::default();
    let spec = config.video.unwrap_or_default();
    let sources = Sources {
        camera: camera.map(|stream| Box::new(CameraReader::new(stream, spec)) as _),
        microphone: microphone.map(|port| Box::new(MicrophonePort::new(port)) as _),
        screen: config
            .screen
            .map(|spec| Box::new(ScreenReader::new(screen, spec)) as _),
    };
    let parts = Parts {
        config,
        codecs: Box::new(WebCodecs::new(wake.clone())),
        sources,
        speakers: speakers.map(|port| Box::new(SpeakerPort::new(port)) as _),
        wake,
    };
    let mut outputs = WorkerOutputs {
        post: post.clone(),
        flow,
        poses: HashMap::new(),
        next_poses: Instant::now(),
    };
    if let Err(error) = driver::run(parts, commands, &mut outputs).await {
        post.log(true, &format!("rotunda:error {error}"));
    }
    post.send(&FromWorker::Done, None);
    if let Ok(scope) = js_sys::global().dyn_into::<DedicatedWorkerGlobalScope>() {
        scope.close();
    }
}

/// Posting to the page.
#[derive(Clone)]
struct Post(DedicatedWorkerGlobalScope);

impl Post {
    /// Posts `message`, with `planes` transferred beside it.
    fn send(&self, message: &FromWorker, planes: Option<Uint8Array>) {
        let Ok(bytes) = protocol::encode(message) else {
            return;
        };
        let bytes = Uint8Array::from(&bytes[..]);
        let transfer = Array::of1(&bytes.buffer());
        let mut pairs = vec![("message", JsValue::from(bytes))];
        if let Some(planes) = planes {
            transfer.push(&planes.buffer());
            pairs.push(("planes", planes.into()));
        }
        let data = object(&pairs);
        if let Err(error) = self.0.post_message_with_transfer(&data, &transfer) {
            js::log_error(&format!(
                "rotunda:error posting to the page: {}",
                js::message(&error)
            ));
        }
    }

    fn log(&self, error: bool, line: &str) {
        self.send(
            &FromWorker::Log {
                error,
                line: line.to_owned(),
            },
            None,
        );
    }
}

/// Pictures on their way to the page: the newest of each participant waits until the page drew
/// a frame, then goes; so a page that draws seldom (or is busy) gets the newest pictures when it
/// can show them, never a backlog.
#[derive(Default)]
struct PictureFlow {
    waiting: HashMap<(ParticipantId, TrackSource), VideoFrame>,
    /// The page drew a frame and nothing was sent since.
    wanted: bool,
}

impl PictureFlow {
    fn offer(&mut self, id: ParticipantId, source: TrackSource, frame: VideoFrame, post: &Post) {
        self.waiting.insert((id, source), frame);
        if self.wanted {
            self.drawn(post);
        }
    }

    fn drawn(&mut self, post: &Post) {
        self.wanted = self.waiting.is_empty();
        for ((id, source), frame) in self.waiting.drain() {
            send_picture(id, source, &frame, post);
        }
    }

    fn forget(&mut self, id: ParticipantId) {
        self.waiting.retain(|(from, _), _| *from != id);
    }
}

fn send_picture(id: ParticipantId, source: TrackSource, frame: &VideoFrame, post: &Post) {
    let planes = Uint8Array::new_with_length(frame.byte_len() as u32);
    let (y, u) = (frame.y.len() as u32, frame.u.len() as u32);
    planes.subarray(0, y).copy_from(&frame.y);
    planes.subarray(y, y + u).copy_from(&frame.u);
    planes.subarray(y + u, y + 2 * u).copy_from(&frame.v);
    post.send(
        &FromWorker::Picture {
            id,
            source,
            width: frame.width as u32,
            height: frame.height as u32,
        },
        Some(planes),
    );
}

/// The call's output, posted to the page.
struct WorkerOutputs {
    post: Post,
    flow: Rc<RefCell<PictureFlow>>,
    poses: HashMap<ParticipantId, Pose>,
    next_poses: Instant,
}

impl WorkerOutputs {
    fn log_report(&self, report: &crate::call::BotReport) {
        match serde_json::to_string(report) {
            Ok(json) => self.post.log(false, &format!("rotunda:stats {json}")),
            Err(error) => self
                .post
                .log(true, &format!("rotunda:error statistics: {error}")),
        }
    }
}

impl Outputs for WorkerOutputs {
    fn event(&mut self, event: CallEvent) {
        match &event {
            CallEvent::Report(report) => return self.log_report(report),
            CallEvent::Ended { report, .. } => self.log_report(report),
            CallEvent::Joined { you, .. } => {
                self.post
                    .log(false, &format!("rotunda:joined {{\"id\":{}}}", you.0));
            }
            CallEvent::Failed(error) => self.post.log(true, &format!("rotunda:error {error}")),
            CallEvent::Relay(rotunda_proto::FromRelay::ParticipantLeft { id, .. }) => {
                self.flow.borrow_mut().forget(*id);
                self.poses.remove(id);
            }
            _ => {}
        }
        self.post.send(&FromWorker::Event(event), None);
    }

    fn picture(&mut self, picture: Decoded) {
        self.flow
            .borrow_mut()
            .offer(picture.from, picture.source, picture.frame, &self.post);
    }

    fn pose(&mut self, id: ParticipantId, pose: Pose) {
        self.poses.insert(id, pose);
    }

    fn flush(&mut self) {
        let now = Instant::now();
        if self.poses.is_empty() || now < self.next_poses {
            return;
        }
        self.next_poses = now + POSES_EVERY;
        let poses = self.poses.drain().collect();
        self.post.send(&FromWorker::Poses(poses), None);
    }
}
