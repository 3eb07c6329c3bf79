//! The bridge between the call (async, on a tokio runtime) and the ECS.
//!
//! Entering [`Screen::Connecting`] opens the devices and starts a call; every frame, at most
//! [`EVENTS_PER_FRAME`] of its events are turned into messages the other plugins read. Commands
//! (chat, mute, pose, leave) go back through a bounded channel and are dropped, never blocking,
//! when the call is behind. Without a relay in the settings, one starts in this process.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use rotunda_proto::{ErrorCode, LeaveReason, ParticipantId, ParticipantInfo, Pose};
use tokio::sync::mpsc;

use crate::AppSystems;
use crate::audio::device;
use crate::call::bridge::COMMAND_QUEUE;
use crate::call::{
    self, AppLink, BotReport, CallConfig, CallEvent, Command, LiveStats, Pictures, Poses, Voices,
};
use crate::media::{SourceState, camera};
use crate::net::JoinOptions;
use crate::screens::{LeftReason, Retry, Screen};
use crate::settings::Settings;
use crate::sync::lock;

/// Call events turned into messages per frame, at most; the rest wait for the next frame.
pub const EVENTS_PER_FRAME: usize = 256;

pub(super) fn plugin(app: &mut App) {
    app.add_message::<CallJoined>()
        .add_message::<ParticipantJoined>()
        .add_message::<ParticipantLeft>()
        .add_message::<ParticipantMoved>()
        .add_message::<ParticipantMuted>()
        .add_message::<ChatReceived>()
        .add_message::<StatsUpdated>()
        .add_message::<CallEnded>();
    app.init_resource::<Devices>();
    app.add_systems(Update, drain_call.in_set(AppSystems::RecordInput));
    app.add_systems(Update, follow_call_end.in_set(AppSystems::Update));
}

/// Starting calls (and the local relay): the part that opens devices and sockets.
pub(super) fn io_plugin(app: &mut App) {
    app.add_systems(Startup, start_local_relay);
    app.add_systems(OnEnter(Screen::Connecting), start_call);
}

/// We joined the room.
#[derive(Message, Debug, Clone)]
pub struct CallJoined {
    /// Our id.
    pub you: ParticipantId,
    /// Our name.
    pub name: String,
}

/// Someone is in the room (already there when we joined, or joining after).
#[derive(Message, Debug, Clone)]
pub struct ParticipantJoined(pub ParticipantInfo);

/// Someone left.
#[derive(Message, Debug, Clone)]
pub struct ParticipantLeft {
    /// Who.
    pub id: ParticipantId,
    /// Why.
    pub reason: LeaveReason,
}

/// Someone moved.
#[derive(Message, Debug, Clone)]
pub struct ParticipantMoved {
    /// Who.
    pub id: ParticipantId,
    /// Where to.
    pub pose: Pose,
}

/// Someone muted or unmuted.
#[derive(Message, Debug, Clone)]
pub struct ParticipantMuted {
    /// Who.
    pub id: ParticipantId,
    /// Microphone muted.
    pub audio: bool,
    /// Camera off.
    pub video: bool,
}

/// A chat line.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ChatReceived {
    /// The room's order.
    pub seq: u64,
    /// Who said it.
    pub from: ParticipantId,
    /// Their name.
    pub name: String,
    /// What they said.
    pub text: String,
}

/// Fresh live statistics.
#[derive(Message, Debug, Clone)]
pub struct StatsUpdated(pub LiveStats);

/// The call ended.
#[derive(Message, Debug, Clone)]
pub struct CallEnded {
    /// What it saw, when it got as far as joining.
    pub report: Option<Box<BotReport>>,
    /// Why it ended, when not by our choice.
    pub error: Option<String>,
    /// Whether trying again may help (the connection was lost, not refused).
    pub retry: bool,
}

/// The running call.
#[derive(Resource)]
pub struct Call {
    commands: mpsc::Sender<Command>,
    events: Mutex<Receiver<CallEvent>>,
    /// Decoded pictures, by participant.
    pub pictures: Arc<Pictures>,
    /// Decoded voices, by participant.
    pub voices: Arc<Voices>,
    /// Others' latest poses.
    pub poses: Arc<Poses>,
    /// The call said it ended (or could not start); nothing more will come.
    finished: std::sync::atomic::AtomicBool,
}

impl Call {
    /// Sends a command; false (and dropped) when the call is behind or over.
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Leaves the room.
    pub fn leave(&self) {
        if !self.send(Command::Leave) {
            // Behind: the call also ends when its command channel closes (this resource
            // dropped), so nothing more is needed.
            debug!("leave queued behind other commands");
        }
    }
}

/// What the camera, microphone and speakers turned out to be.
#[derive(Resource, Debug, Clone, Default)]
pub struct Devices {
    /// The camera.
    pub camera: SourceState,
    /// The microphone.
    pub microphone: SourceState,
    /// The speakers.
    pub speakers: SourceState,
    /// Microphone on (sending).
    pub microphone_on: bool,
    /// Camera on (sending).
    pub camera_on: bool,
    /// The user turned the microphone off: it stays off when the call is rejoined.
    pub microphone_off_by_user: bool,
    /// The user turned the camera off: it stays off when the call is rejoined.
    pub camera_off_by_user: bool,
}

/// The async runtime the network runs on.
#[derive(Resource)]
pub struct NetRuntime(pub tokio::runtime::Runtime);

/// The relay this process started, when the settings name none.
#[derive(Resource)]
pub struct LocalRelay {
    /// Its URL.
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn runtime(world: &mut World) -> Option<&tokio::runtime::Runtime> {
    if !world.contains_resource::<NetRuntime>() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rotunda-net")
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => world.insert_resource(NetRuntime(runtime)),
            Err(error) => {
                error!(%error, "cannot start the network runtime");
                return None;
            }
        }
    }
    world.get_resource::<NetRuntime>().map(|r| &r.0)
}

/// Starts a relay on the local address when no relay is given; when one already runs there
/// (another `rotunda` on this machine), joins that one instead.
fn start_local_relay(world: &mut World) {
    let Some(settings) = world.get_resource::<Settings>().cloned() else {
        return;
    };
    if settings.relay.is_some() {
        return;
    }
    let Some(runtime) = runtime(world) else {
        return;
    };
    let bound = runtime.block_on(rotunda_server::Relay::bind(rotunda_server::Config::on(
        settings.local_relay,
    )));
    match bound {
        Ok(relay) => {
            let url = relay.url();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            runtime.spawn(relay.run(async {
                let _ = stopped.await;
            }));
            println!(
                "rotunda: relay running at {url}; others join with: rotunda --relay {url} --room {}",
                settings.room
            );
            world.insert_resource(LocalRelay { url, _stop: stop });
        }
        Err(error) => {
            println!(
                "rotunda: a relay already runs on {} ({error:#}); joining it",
                settings.local_relay
            );
        }
    }
}

/// Starts a call: the devices open on a thread of their own (a camera can take seconds to
/// answer, and the window must not freeze meanwhile), then the call runs on the network runtime.
fn start_call(world: &mut World) {
    let Some(settings) = world.get_resource::<Settings>().cloned() else {
        return;
    };
    if let Some(old) = world.remove_resource::<Call>() {
        old.leave();
    }
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = std::sync::mpsc::channel();
    let pictures = Arc::new(Pictures::default());
    let voices = Arc::new(Voices::default());
    let poses = Arc::new(Poses::default());
    let (microphone_off, camera_off) = {
        let devices = world.resource::<Devices>();
        (devices.microphone_off_by_user, devices.camera_off_by_user)
    };
    let Some(runtime) = runtime(world).map(|r| r.handle().clone()) else {
        return;
    };
    let link_parts = (pictures.clone(), voices.clone(), poses.clone());
    let failed = events_tx.clone();
    let opened = std::thread::Builder::new()
        .name("open-devices".into())
        .spawn(move || {
            let (camera, camera_state) = camera::open(&settings.camera, settings.video);
            let (microphone, microphone_thread, microphone_state) =
                device::open_microphone(&settings.microphone);
            for (what, state) in [("camera", &camera_state), ("microphone", &microphone_state)] {
                if let SourceState::Fallback(reason) = state {
                    warn!("{what}: {reason}; using a stand-in");
                }
            }
            let _ = events_tx.send(CallEvent::Devices {
                camera: camera_state.clone(),
                microphone: microphone_state.clone(),
            });
            let config = CallConfig {
                join: JoinOptions {
                    relay: settings.relay_url(),
                    cert_hash: settings.cert_hash,
                    room: settings.room.clone(),
                    name: settings.name.clone(),
                    token: settings.token.clone(),
                },
                duration: settings.duration,
                video: camera_state.sends().then_some(settings.video),
                audio: microphone_state.sends(),
                chat: Vec::new(),
                status: false,
            };
            let (pictures, voices, poses) = link_parts;
            let link = AppLink {
                commands,
                events: events_tx,
                pictures,
                voices,
                poses,
                camera,
                microphone,
                microphone_off,
                camera_off,
            };
            runtime.spawn(async move {
                // The microphone's stream lives as long as the call.
                let _microphone = microphone_thread;
                match call::run(config, Some(link)).await {
                    Ok(report) => debug!(?report.error, "call over"),
                    Err(error) => debug!("call ended: {error:#}"),
                }
            });
        });
    if let Err(error) = opened {
        let _ = failed.send(CallEvent::Failed(format!(
            "cannot open the devices: {error}"
        )));
    }
    world.insert_resource(Call {
        commands: commands_tx,
        events: Mutex::new(events),
        pictures,
        voices,
        poses,
        finished: std::sync::atomic::AtomicBool::new(false),
    });
}

/// Turns up to [`EVENTS_PER_FRAME`] call events into messages.
#[expect(clippy::too_many_arguments, reason = "one writer per message kind")]
fn drain_call(
    call: Option<Res<Call>>,
    settings: Res<Settings>,
    mut joined: MessageWriter<CallJoined>,
    mut participants: MessageWriter<ParticipantJoined>,
    mut left: MessageWriter<ParticipantLeft>,
    mut moved: MessageWriter<ParticipantMoved>,
    mut muted: MessageWriter<ParticipantMuted>,
    mut chat: MessageWriter<ChatReceived>,
    mut stats: MessageWriter<StatsUpdated>,
    mut ended: MessageWriter<CallEnded>,
    mut devices: ResMut<Devices>,
) {
    let Some(call) = call else {
        return;
    };
    for (id, pose) in call.poses.take() {
        moved.write(ParticipantMoved { id, pose });
    }
    if call.finished.load(Ordering::Relaxed) {
        return;
    }
    let events = lock(&call.events);
    for _ in 0..EVENTS_PER_FRAME {
        let event = match events.try_recv() {
            Ok(event) => event,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => {
                if call.finished.swap(true, Ordering::Relaxed) {
                    return;
                }
                // The call's task is gone without a word: treat it as a lost connection.
                ended.write(CallEnded {
                    report: None,
                    error: Some("the connection to the relay was lost".into()),
                    retry: true,
                });
                drop(events);
                return;
            }
        };
        debug!(?event, "call event");
        match event {
            CallEvent::Devices { camera, microphone } => {
                devices.camera_on = camera.sends() && !devices.camera_off_by_user;
                devices.microphone_on = microphone.sends() && !devices.microphone_off_by_user;
                devices.camera = camera;
                devices.microphone = microphone;
            }
            CallEvent::Joined { you, roster } => {
                joined.write(CallJoined {
                    you,
                    name: settings.name.clone(),
                });
                for info in roster {
                    participants.write(ParticipantJoined(info));
                }
            }
            CallEvent::Relay(message) => {
                use rotunda_proto::FromRelay;
                match message {
                    FromRelay::ParticipantJoined(info) => {
                        participants.write(ParticipantJoined(info));
                    }
                    FromRelay::ParticipantLeft { id, reason } => {
                        left.write(ParticipantLeft { id, reason });
                    }
                    FromRelay::Mute { id, audio, video } => {
                        muted.write(ParticipantMuted { id, audio, video });
                    }
                    FromRelay::Chat {
                        seq,
                        from,
                        name,
                        text,
                    } => {
                        chat.write(ChatReceived {
                            seq,
                            from,
                            name,
                            text,
                        });
                    }
                    _ => {}
                }
            }
            CallEvent::Stats(live) => {
                stats.write(StatsUpdated(live));
            }
            CallEvent::Ended(report) => {
                call.finished.store(true, Ordering::Relaxed);
                let (error, retry) = explain_end(report.error.as_deref());
                ended.write(CallEnded {
                    report: Some(report),
                    error,
                    retry,
                });
            }
            CallEvent::Failed(reason) => {
                call.finished.store(true, Ordering::Relaxed);
                let (error, retry) = explain_failure(&reason);
                ended.write(CallEnded {
                    report: None,
                    error: Some(error),
                    retry,
                });
                return;
            }
        }
    }
}

/// Words for a call that ended after joining, and whether to try again.
fn explain_end(error: Option<&str>) -> (Option<String>, bool) {
    let Some(error) = error else {
        return (None, false);
    };
    if error.contains(&format!("{:?}", ErrorCode::ShuttingDown)) {
        return (Some("The relay shut down.".into()), true);
    }
    if error.contains("closed the session") {
        return (
            Some(format!("The connection to the relay was lost ({error}).")),
            true,
        );
    }
    (Some(format!("The relay ended the call: {error}.")), false)
}

/// Words for a call that could not start, and whether to try again.
pub fn explain_failure(reason: &str) -> (String, bool) {
    let refused = |code: ErrorCode| reason.contains(&format!("refused the join: {code:?}"));
    if refused(ErrorCode::RoomFull) {
        return ("The room is full.".into(), false);
    }
    if refused(ErrorCode::Unauthorized) {
        return ("The relay refused the access token.".into(), false);
    }
    // A TLS refusal of the relay's certificate (a fingerprint fetch that failed names the
    // certificate too, but is an unreachable relay).
    if reason.contains("invalid peer certificate") || reason.contains("UnknownIssuer") {
        return (
            format!("The relay's certificate does not match the one expected ({reason})."),
            false,
        );
    }
    if reason.contains("unreachable") || reason.contains("fingerprint") {
        return (format!("The relay is unreachable: {reason}."), true);
    }
    (format!("Could not join: {reason}."), true)
}

/// Leaves the room screen when the call ends, with the reason and an automatic retry for a
/// lost connection.
fn follow_call_end(
    mut ended: MessageReader<CallEnded>,
    mut joined: MessageReader<CallJoined>,
    screen: Res<State<Screen>>,
    mut next: ResMut<NextState<Screen>>,
    mut reason: ResMut<LeftReason>,
    settings: Res<Settings>,
) {
    if joined.read().last().is_some() && *screen.get() == Screen::Connecting {
        reason.retry = None;
        next.set(Screen::InRoom);
    }
    let Some(end) = ended.read().last() else {
        return;
    };
    // Only a call being joined or in progress leads to the left screen.
    if !matches!(screen.get(), Screen::Connecting | Screen::InRoom) {
        return;
    }
    let attempt = reason.retry.as_ref().map_or(0, |r| r.attempt + 1);
    // A scripted run does not retry: it reports and exits.
    let retry = end.retry && settings.duration.is_none() && settings.screenshot.is_none();
    *reason = LeftReason {
        message: end.error.clone(),
        retry: retry.then(|| Retry::after(attempt)),
    };
    next.set(Screen::Left);
}
