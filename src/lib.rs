//! Rotunda: a real-time meeting place where every participant is a live video panel in a 3D room
//! and every voice comes from where its panel stands.
//!
//! This crate is the room: a Bevy app of plugins only. The call itself (the session with the
//! relay, codecs, jitter buffers, the mixer) is `rotunda_engine`'s, below it; nothing here is
//! imported by the engine. Its parts, one folder (and one plugin) each:
//! - [`call`]: the one plugin that owns the engine's handle: it starts calls and turns their
//!   events into messages the other plugins read;
//! - [`state`]: which screen the client shows (join → connecting → in room → left), below all;
//! - [`screens`]: the screens drawn over those states, and the moves between them;
//! - [`participants`]: one entity per participant, following joins, leaves, poses and mutes;
//! - [`room`]: the 3D room, the video panels, the layout and the local avatar's movement;
//! - [`audio`]: where the listener and every voice are, for the engine's spatial mixer, and
//!   the speaking glow;
//! - [`devices`]: the camera, microphone and speakers, opened for the engine;
//! - [`ui`]: the egui panels: top bar, participants, chat, stats, name tags, badges;
//! - [`automation`]: scripted runs (duration, statistics file, screenshot).

pub mod audio;
pub mod automation;
pub mod call;
pub mod devices;
pub mod participants;
pub mod room;
pub mod screens;
pub mod settings;
pub mod state;
pub mod ui;

use bevy::prelude::*;
use bevy::window::WindowResolution;

pub use settings::Settings;

/// The order of the client's per-frame work.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSystems {
    /// Take in what the network and the devices delivered.
    RecordInput,
    /// Update the world from it.
    Update,
    /// Present it (textures, audio parameters).
    Present,
}

/// The client's logic, without window, renderer or devices: what tests build on.
pub fn logic_plugin(app: &mut App) {
    app.configure_sets(
        Update,
        (
            AppSystems::RecordInput,
            AppSystems::Update,
            AppSystems::Present,
        )
            .chain(),
    );
    app.add_plugins((
        state::plugin,
        screens::plugin,
        call::plugin,
        devices::plugin,
        participants::plugin,
        audio::logic_plugin,
        ui::logic_plugin,
        room::wall::logic_plugin,
    ));
}

/// The whole client: window, renderer, egui, devices and every plugin.
pub fn app(settings: Settings) -> App {
    let mut app = App::new();
    let log = bevy::log::LogPlugin {
        // Our own news (and the in-process relay's) at info; the engine's only when something
        // is wrong. RUST_LOG adds to this.
        level: bevy::log::Level::WARN,
        filter: format!(
            "{}rotunda=info,rotunda_server=info",
            bevy::log::DEFAULT_FILTER
        ),
        ..default()
    };
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("Rotunda — {}", settings.room),
                    resolution: WindowResolution::new(1280, 720),
                    canvas: settings.canvas.clone(),
                    fit_canvas_to_parent: true,
                    ..default()
                }),
                ..default()
            })
            .set(log)
            // Our assets carry no .meta files: none is asked for (a 404 each in the browser).
            .set(bevy::asset::AssetPlugin {
                meta_check: bevy::asset::AssetMetaCheck::Never,
                ..default()
            }),
    )
    .add_plugins(bevy_egui::EguiPlugin::default())
    .insert_resource(settings)
    .add_plugins(logic_plugin)
    .add_plugins((
        call::io_plugin,
        room::plugin,
        audio::plugin,
        ui::plugin,
        automation::plugin,
    ));
    app.add_systems(PreUpdate, keep_scale_factor);
    app
}

/// Holds the window to the settings' scale factor, when they give one (the windowing layer sets
/// its own as the window opens and when it moves).
fn keep_scale_factor(settings: Res<Settings>, mut windows: Query<&mut Window>) {
    let Some(factor) = settings.scale_factor else {
        return;
    };
    for mut window in &mut windows {
        if window.resolution.scale_factor_override() != Some(factor) {
            window.resolution.set_scale_factor_override(Some(factor));
        }
    }
}
