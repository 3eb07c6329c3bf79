//! The bridge between the call (async, on a tokio runtime) and the ECS.
//!
//! Entering [`Screen::Connecting`] opens the devices and starts a call (on the platform's
//! runtime: tokio natively, the browser's event loop on the web); every frame, at most
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
use crate::call::bridge::COMMAND_QUEUE;
use crate::call::{
    self, AppLink, BotReport, CallConfig, CallEvent, Command, LiveStats, Pictures, Poses, Voices,
};
use crate::media::SourceState;
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

/// What a new call is made of: the settings, the channels to the ECS and the mailboxes. The
/// platform's `spawn_call` opens the devices and runs the call with them.
pub struct CallParts {
    /// What the user chose.
    pub settings: Settings,
    /// Commands from the ECS.
    pub commands: mpsc::Receiver<Command>,
    /// Events for the ECS.
    pub events: std::sync::mpsc::Sender<CallEvent>,
    /// Decoded pictures.
    pub pictures: Arc<Pictures>,
    /// Decoded voices.
    pub voices: Arc<Voices>,
    /// Others' poses.
    pub poses: Arc<Poses>,
    /// The user turned the microphone off before.
    pub microphone_off: bool,
    /// The user turned the camera off before.
    pub camera_off: bool,
}

impl CallParts {
    /// The call's configuration, once the devices are known to send or not.
    pub fn config(&self, camera: &SourceState, microphone: &SourceState) -> CallConfig {
        let settings = &self.settings;
        CallConfig {
            join: JoinOptions {
                relay: settings.relay_url(),
                cert_hash: settings.cert_hash,
                room: settings.room.clone(),
                name: settings.name.clone(),
                token: settings.token.clone(),
            },
            duration: settings.duration,
            video: camera.sends().then_some(settings.video),
            audio: microphone.sends(),
            chat: settings.chat.clone(),
            status: false,
        }
    }

    /// Reports the devices to the ECS and hands the parts to the call.
    pub fn into_link(
        self,
        camera: (Option<call::VideoSourceFactory>, SourceState),
        microphone: (Option<Box<dyn crate::media::AudioSource>>, SourceState),
    ) -> (CallConfig, AppLink) {
        for (what, state) in [("camera", &camera.1), ("microphone", &microphone.1)] {
            if let SourceState::Fallback(reason) = state {
                warn!("{what}: {reason}; using a stand-in");
            }
        }
        let _ = self.events.send(CallEvent::Devices {
            camera: camera.1.clone(),
            microphone: microphone.1.clone(),
        });
        let config = self.config(&camera.1, &microphone.1);
        let link = AppLink {
            commands: self.commands,
            events: self.events,
            pictures: self.pictures,
            voices: self.voices,
            poses: self.poses,
            camera: camera.0,
            microphone: microphone.0,
            microphone_off: self.microphone_off,
            camera_off: self.camera_off,
        };
        (config, link)
    }
}

/// Starts a call: the platform opens the devices without freezing the window (a camera can take
/// seconds to answer), then runs the call.
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
    let parts = CallParts {
        settings,
        commands,
        events: events_tx,
        pictures: pictures.clone(),
        voices: voices.clone(),
        poses: poses.clone(),
        microphone_off,
        camera_off,
    };
    super::spawn_call(world, parts);
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
