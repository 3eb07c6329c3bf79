//! The bridge between the call engine and the room: the one plugin that owns the engine's handle.
//!
//! Entering [`Screen::Connecting`] opens the devices and starts a call (natively a task on this
//! process's network runtime, in the browser a worker of its own); every frame, at most
//! [`EVENTS_PER_FRAME`] of its events become messages the other plugins read. Commands (chat,
//! mute, pose, the scene, leave) go back through a bounded channel and are dropped, never
//! blocking, when the call is behind. A lost connection does not leave the room: the call rejoins
//! by itself while the room stays on screen ([`Connection`]).

#[cfg(native)]
mod native;
#[cfg(web)]
mod web;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy::prelude::*;
use rotunda_engine::handle::{self, EngineSide};
pub use rotunda_engine::mailbox::{Pictures, Poses};
pub use rotunda_engine::{
    BotReport, CallConfig, Command, Engine, Error, JoinOptions, LiveStats, SCREEN_INDEX,
};
use rotunda_proto::{
    FromRelay, Grants, LeaveReason, ParticipantId, ParticipantInfo, Pose, TrackSource,
};

use crate::AppSystems;
use crate::devices::{DeviceStates, Devices};
use crate::settings::Settings;
use crate::state::Screen;

/// Call events turned into messages per frame, at most; the rest wait for the next frame.
pub const EVENTS_PER_FRAME: usize = 256;

pub(super) fn plugin(app: &mut App) {
    app.add_message::<CallJoined>()
        .add_message::<CallReconnecting>()
        .add_message::<CallRejoined>()
        .add_message::<ParticipantJoined>()
        .add_message::<ParticipantArrived>()
        .add_message::<ParticipantLeft>()
        .add_message::<ParticipantMoved>()
        .add_message::<ParticipantMuted>()
        .add_message::<ChatReceived>()
        .add_message::<ScreenShared>()
        .add_message::<ScreenStopped>()
        .add_message::<StatsUpdated>()
        .add_message::<SecurityChanged>()
        .add_message::<CallEnded>();
    app.init_resource::<Connection>();
    app.init_resource::<VoiceLevels>();
    app.add_systems(Update, drain_call.in_set(AppSystems::RecordInput));
}

/// Starting calls (and, natively, the in-process relay): the part that opens devices and
/// sockets, left out of tests that use no network.
pub(super) fn io_plugin(app: &mut App) {
    app.add_systems(OnEnter(Screen::Connecting), start_call);
    #[cfg(native)]
    native::plugin(app);
}

/// We joined the room.
#[derive(Message, Debug, Clone)]
pub struct CallJoined {
    /// Our id.
    pub you: ParticipantId,
    /// Our name (the relay's: an access token may have chosen it).
    pub name: String,
    /// What we may do.
    pub grants: Grants,
}

/// End-to-end encryption changed: the room's mode, the group's epoch, its safety code.
#[derive(Message, Debug, Clone)]
pub struct SecurityChanged(pub rotunda_engine::Security);

/// The connection was lost; the call is rejoining while the room stays on screen.
#[derive(Message, Debug, Clone)]
pub struct CallReconnecting {
    /// Tries so far.
    pub attempt: u32,
    /// What went wrong.
    pub reason: Error,
}

/// Back in the room after a lost connection.
#[derive(Message, Debug, Clone)]
pub struct CallRejoined {
    /// Our id now (the same when the relay kept our place).
    pub you: ParticipantId,
    /// Everyone present now.
    pub present: Vec<ParticipantId>,
}

/// Someone is in the room (already there when we joined, or joining after).
#[derive(Message, Debug, Clone)]
pub struct ParticipantJoined(pub ParticipantInfo);

/// Someone came into the room while we are in it (besides [`ParticipantJoined`], which also
/// names those already there when we joined).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticipantArrived(pub ParticipantId);

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

/// Someone shares a screen (already when we joined, or from now on).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenShared(pub ParticipantId);

/// Someone stopped sharing their screen.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenStopped(pub ParticipantId);

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
    pub error: Option<Error>,
    /// Whether trying again may help (the connection was lost, not refused).
    pub retry: bool,
}

/// Whether the room is connected now, or rejoining after a lost connection.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct Connection {
    /// Rejoining: the tries so far and why.
    pub reconnecting: Option<(u32, Error)>,
}

/// How loud every voice is (RMS, 0..1), for the speaking glow.
#[derive(Resource, Debug, Clone, Default)]
pub struct VoiceLevels(pub HashMap<ParticipantId, f32>);

/// The running call.
#[derive(Resource)]
pub struct Call {
    engine: Engine,
    /// What the devices opened for the call turned out to be.
    devices: Mutex<std::sync::mpsc::Receiver<DeviceStates>>,
    /// The call said it ended (or could not start); nothing more will come.
    finished: AtomicBool,
}

impl Call {
    /// Sends a command; false (and dropped) when the call is behind or over.
    pub fn send(&self, command: Command) -> bool {
        self.engine.send(command)
    }

    /// Leaves the room.
    pub fn leave(&self) {
        self.engine.leave();
    }

    /// Everyone's newest decoded picture.
    pub fn pictures(&self) -> &Pictures {
        &self.engine.pictures
    }

    /// The newest picture of every shared screen, by sharer.
    pub fn screens(&self) -> &Pictures {
        &self.engine.screens
    }

    /// Everyone's newest pose.
    pub fn poses(&self) -> &Poses {
        &self.engine.poses
    }

    /// A frame was drawn: the newest pictures may come.
    pub fn presented(&self) {
        self.engine.presented();
    }
}

/// What a new call is made of, for the platform's `start`: the settings, what the user turned
/// off before, the engine's side of the handle, and where the devices' states go.
pub(crate) struct CallParts {
    pub settings: Settings,
    pub microphone_off: bool,
    pub camera_off: bool,
    pub side: EngineSide,
    pub devices: std::sync::mpsc::SyncSender<DeviceStates>,
}

impl CallParts {
    /// The call's configuration, once the devices are known to send or not.
    pub fn config(&self, camera_sends: bool, microphone_sends: bool) -> CallConfig {
        let settings = &self.settings;
        let mut config = CallConfig::new(JoinOptions {
            relay: settings.relay_url(),
            cert_hash: settings.cert_hash,
            room: settings.room.clone(),
            name: settings.name.clone(),
            token: settings.token.clone(),
            e2ee: settings.e2ee,
        });
        config.duration = settings.duration;
        config.video = camera_sends.then_some(settings.video);
        config.simulcast = settings.simulcast;
        config.audio = microphone_sends;
        config.chat = settings.chat.clone();
        config.chat_with = settings.chat_with;
        config.microphone_off = self.microphone_off;
        config.camera_off = self.camera_off;
        config.share_screen = settings.share_screen;
        // The browser logs the whole report once a second (`rotunda:stats`).
        config.live_report = cfg!(web);
        config
    }
}

/// Starts a call: the platform opens the devices without freezing the window (a camera can take
/// seconds to answer, a browser asks the user), then starts the engine with them.
fn start_call(world: &mut World) {
    let Some(settings) = world.get_resource::<Settings>().cloned() else {
        return;
    };
    if let Some(old) = world.remove_resource::<Call>() {
        old.leave();
    }
    *world.resource_mut::<Connection>() = Connection::default();
    world.resource_mut::<VoiceLevels>().0.clear();
    let (engine, side) = handle::pair();
    let (devices_tx, devices) = std::sync::mpsc::sync_channel(1);
    let (microphone_off, camera_off) = {
        let devices = world.resource::<Devices>();
        (devices.microphone_off_by_user, devices.camera_off_by_user)
    };
    let parts = CallParts {
        settings,
        microphone_off,
        camera_off,
        side,
        devices: devices_tx,
    };
    #[cfg(native)]
    native::start(world, parts);
    #[cfg(web)]
    web::start(parts);
    world.insert_resource(Call {
        engine,
        devices: Mutex::new(devices),
        finished: AtomicBool::new(false),
    });
}

/// The messages of everything the call reported.
#[derive(bevy::ecs::system::SystemParam)]
struct CallMessages<'w> {
    joined: MessageWriter<'w, CallJoined>,
    reconnecting: MessageWriter<'w, CallReconnecting>,
    rejoined: MessageWriter<'w, CallRejoined>,
    participants: MessageWriter<'w, ParticipantJoined>,
    arrived: MessageWriter<'w, ParticipantArrived>,
    left: MessageWriter<'w, ParticipantLeft>,
    moved: MessageWriter<'w, ParticipantMoved>,
    muted: MessageWriter<'w, ParticipantMuted>,
    chat: MessageWriter<'w, ChatReceived>,
    shared: MessageWriter<'w, ScreenShared>,
    stopped: MessageWriter<'w, ScreenStopped>,
    stats: MessageWriter<'w, StatsUpdated>,
    security: MessageWriter<'w, SecurityChanged>,
    ended: MessageWriter<'w, CallEnded>,
}

impl CallMessages<'_> {
    /// Someone present, and the screen they share, if they do.
    fn joined_participant(&mut self, info: ParticipantInfo) {
        if info
            .tracks
            .iter()
            .any(|(_, track)| track.source == TrackSource::Screen)
        {
            self.shared.write(ScreenShared(info.id));
        }
        self.participants.write(ParticipantJoined(info));
    }
}

/// Turns up to [`EVENTS_PER_FRAME`] call events into messages.
fn drain_call(
    call: Option<Res<Call>>,
    mut out: CallMessages,
    mut devices: ResMut<Devices>,
    mut connection: ResMut<Connection>,
    mut levels: ResMut<VoiceLevels>,
) {
    let Some(call) = call else {
        return;
    };
    if let Ok(states) = call
        .devices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .try_recv()
    {
        devices.opened(states);
    }
    for (id, pose) in call.poses().take() {
        out.moved.write(ParticipantMoved { id, pose });
    }
    if call.finished.load(Ordering::Relaxed) {
        return;
    }
    for _ in 0..EVENTS_PER_FRAME {
        let event = match call.engine.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(handle::Gone) => {
                // The call is gone without a word: treat it as a lost connection.
                call.finished.store(true, Ordering::Relaxed);
                out.ended.write(CallEnded {
                    report: None,
                    error: Some(Error::EngineGone("it stopped without a word".into())),
                    retry: true,
                });
                return;
            }
        };
        use rotunda_engine::CallEvent;
        match event {
            CallEvent::Joined {
                you,
                name,
                grants,
                roster,
            } => {
                out.joined.write(CallJoined { you, name, grants });
                for info in roster {
                    out.joined_participant(info);
                }
            }
            CallEvent::Reconnecting { attempt, reason } => {
                if connection.reconnecting.is_none() {
                    warn!("connection lost ({reason}); rejoining");
                }
                connection.reconnecting = Some((attempt, reason.clone()));
                out.reconnecting.write(CallReconnecting { attempt, reason });
            }
            CallEvent::Rejoined { you, roster } => {
                info!(%you, "back in the room");
                connection.reconnecting = None;
                levels.0.clear();
                out.rejoined.write(CallRejoined {
                    you,
                    present: roster.iter().map(|info| info.id).collect(),
                });
                for info in roster {
                    out.joined_participant(info);
                }
            }
            CallEvent::Relay(message) => match message {
                FromRelay::ParticipantJoined(info) => {
                    out.arrived.write(ParticipantArrived(info.id));
                    out.joined_participant(info);
                }
                FromRelay::TrackPublished { track, info } if info.source == TrackSource::Screen => {
                    out.shared.write(ScreenShared(track.participant));
                }
                FromRelay::TrackUnpublished { track } if track.index == SCREEN_INDEX => {
                    out.stopped.write(ScreenStopped(track.participant));
                }
                FromRelay::ParticipantLeft { id, reason } => {
                    levels.0.remove(&id);
                    out.left.write(ParticipantLeft { id, reason });
                }
                FromRelay::Mute { id, audio, video } => {
                    out.muted.write(ParticipantMuted { id, audio, video });
                }
                FromRelay::Chat {
                    seq,
                    from,
                    name,
                    text,
                } => {
                    out.chat.write(ChatReceived {
                        seq,
                        from,
                        name,
                        text,
                    });
                }
                _ => {}
            },
            CallEvent::Stats(live) => {
                out.stats.write(StatsUpdated(live));
            }
            CallEvent::Security(security) => {
                info!(
                    e2ee = security.e2ee,
                    epoch = ?security.epoch,
                    safety_code = ?security.safety_code,
                    "end-to-end encryption"
                );
                out.security.write(SecurityChanged(security));
            }
            CallEvent::Levels(voices) => levels.0 = voices.into_iter().collect(),
            CallEvent::Report(_) => {}
            CallEvent::Ended { report, error } => {
                call.finished.store(true, Ordering::Relaxed);
                let retry = error.as_ref().is_some_and(Error::is_retryable);
                out.ended.write(CallEnded {
                    report: Some(report),
                    error,
                    retry,
                });
                return;
            }
            CallEvent::Failed(error) => {
                call.finished.store(true, Ordering::Relaxed);
                out.ended.write(CallEnded {
                    report: None,
                    retry: error.is_retryable(),
                    error: Some(error),
                });
                return;
            }
        }
    }
}
