//! Natively the call runs on this process's network runtime (tokio), and a relay starts in the
//! process when the settings name none.

use bevy::prelude::*;
use rotunda_engine::handle;

use super::CallParts;
use crate::devices::SHARED_MOST as SCREEN_MOST;
use crate::devices::screen::Screen;
use crate::devices::{DeviceStates, SourceState, native as devices};
use crate::settings::Settings;

/// The async runtime the network runs on.
#[derive(Resource)]
pub struct NetRuntime(pub tokio::runtime::Runtime);

/// The relay this process started, when the settings name none.
#[derive(Resource)]
pub struct LocalRelay(
    #[expect(dead_code, reason = "held to keep the relay serving")] rotunda_server::Running,
);

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, start_local_relay);
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
            let running = {
                let _entered = runtime.enter();
                relay.spawn()
            };
            println!(
                "rotunda: relay running at {}; others join with: rotunda --relay {} --room {}",
                running.url, running.url, settings.room
            );
            world.insert_resource(LocalRelay(running));
        }
        Err(error) => {
            println!(
                "rotunda: a relay already runs on {} ({error:#}); joining it",
                settings.local_relay
            );
        }
    }
}

/// Opens the devices on a thread of their own (a camera can take seconds to answer, and the
/// window must not freeze meanwhile), then starts the call on the network runtime.
pub(super) fn start(world: &mut World, parts: CallParts) {
    let Some(runtime) = runtime(world).map(|r| r.handle().clone()) else {
        return;
    };
    let opened = std::thread::Builder::new()
        .name("open-devices".into())
        .spawn(move || {
            let settings = &parts.settings;
            let (camera, camera_state) = devices::open_camera(&settings.camera, settings.video);
            let (microphone, microphone_state) = devices::open_microphone(&settings.microphone);
            let (speakers, speakers_state) = devices::open_speakers(&settings.speakers);
            // The screen is captured only while it is shared.
            let (screen, screen_state) = match Screen::open(SCREEN_MOST) {
                Ok(screen) => {
                    let state = SourceState::Live(screen.name.clone());
                    (Some(screen), state)
                }
                Err(reason) => {
                    info!("no screen to share: {reason}");
                    (None, SourceState::Off)
                }
            };
            let mut config = parts.config(camera_state.sends(), microphone_state.sends());
            config.screen = screen.as_ref().map(|screen| screen.spec);
            config.share_screen &= screen.is_some();
            let _ = parts.devices.send(DeviceStates {
                camera: camera_state,
                microphone: microphone_state,
                speakers: speakers_state,
                screen: screen_state,
                screen_on: config.share_screen,
            });
            let sources = rotunda_engine::call::Sources {
                camera,
                microphone,
                screen: screen.map(|screen| Box::new(screen) as _),
            };
            handle::native::start(parts.side, config, sources, Some(speakers), &runtime);
        });
    if let Err(error) = opened {
        error!(%error, "cannot open the devices");
    }
}
