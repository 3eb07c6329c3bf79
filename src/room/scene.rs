//! The camera that is the viewer's eyes, and how often the room is drawn.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::camera::visibility::RenderLayers;
use bevy::camera::{CameraOutputMode, CameraUpdateSystems};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::platform::time::Instant;
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::window::RequestRedraw;
use bevy::winit::{UpdateMode, WinitSettings};
use bevy_egui::{EguiGlobalSettings, PrimaryEguiContext};

use super::avatar::{Avatar, SelfView};
use super::layout::{self, EYE_HEIGHT};
use super::panel::VideoMaterial;
use crate::audio::Ears;
use crate::settings::Settings;

pub(super) fn plugin(app: &mut App) {
    app.insert_resource(ClearColor(Color::srgb(0.05, 0.05, 0.08)));
    app.add_systems(Startup, spawn_viewer);
    app.add_systems(Update, spare_software_renderer.run_if(run_once));
    app.add_systems(
        PostUpdate,
        keep_the_ring_in_sight.before(CameraUpdateSystems),
    );
    app.add_systems(Last, hold_the_pace.run_if(resource_exists::<PacedFrames>));
    // A frame's end is known in the render world, where it is drawn.
    let drawn = FrameDrawn::default();
    app.insert_resource(drawn.clone());
    app.add_systems(
        First,
        follow_the_cost.run_if(resource_exists::<PacedFrames>),
    );
    if let Some(render) = app.get_sub_app_mut(RenderApp) {
        render.insert_resource(drawn);
        render.add_systems(Render, note_drawn.in_set(RenderSystems::PostCleanup));
    }
}

/// On a software renderer (llvmpipe, SwiftShader) every pixel costs: drop multisampling,
/// shadows, tonemapping and the lamps' lights (the key light stays), and where the settings ask
/// (in a page, whose thread a frame blocks until drawn) leave the call time between frames. The
/// room stays readable.
fn spare_software_renderer(
    adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
    settings: Res<Settings>,
    cameras: Query<Entity, With<Camera3d>>,
    mut lights: Query<(Entity, &mut PointLight)>,
    mut commands: Commands,
) {
    let Some(adapter) = adapter else {
        return;
    };
    // Natively the adapter says it is a CPU; through WebGL2 only its name tells (ANGLE on
    // SwiftShader).
    let name = adapter.name.to_lowercase();
    let software = format!("{:?}", adapter.device_type) == "Cpu"
        || ["swiftshader", "llvmpipe", "lavapipe", "software"]
            .iter()
            .any(|word| name.contains(word));
    if !software {
        return;
    }
    info!(
        "software renderer ({}): no multisampling, shadows, tonemapping or lamp lights",
        adapter.name
    );
    for camera in &cameras {
        commands
            .entity(camera)
            .insert((Msaa::Off, Tonemapping::None, DebandDither::Disabled));
    }
    for (entity, mut light) in &mut lights {
        if light.shadow_maps_enabled {
            // The key light.
            light.shadow_maps_enabled = false;
        } else {
            commands.entity(entity).despawn();
        }
    }
    if let Some(interval) = settings.software_frame_interval {
        commands.insert_resource(paced(interval));
        commands.insert_resource(PacedFrames {
            least: interval,
            interval,
            costs: VecDeque::new(),
            started: None,
        });
    }
}

/// Update settings that start a frame every `interval` (or at the user's input).
fn paced(interval: Duration) -> WinitSettings {
    let pace = UpdateMode::reactive(interval);
    WinitSettings {
        focused_mode: pace,
        unfocused_mode: pace,
    }
}

/// A paced frame may take at most this share of the time: the interval is this many times what
/// a frame costs, so a machine that gets busier (a frame on SwiftShader takes 0.2 s on an idle
/// 2-core machine, 1.5 s on a busy one) draws less often and leaves the call its CPU.
const FRAME_COST_SHARE: u32 = 3;
/// The slowest pace, however dear frames get.
const SLOWEST_FRAME_INTERVAL: Duration = Duration::from_secs(6);
/// Frame costs the pace follows the median of.
const COSTS_KEPT: usize = 5;
/// The pace changes only when it is off by more than this fraction (a change costs a frame).
const PACE_HYSTERESIS: f64 = 0.25;

/// Frames are paced: nothing but the pace (and the user's input) asks for the next one; the
/// pace follows what frames cost.
#[derive(Resource, Debug)]
struct PacedFrames {
    /// The pace the settings ask for: the fastest.
    least: Duration,
    /// The pace now.
    interval: Duration,
    /// What the last few frames cost (start to drawn).
    costs: VecDeque<Duration>,
    /// When the frame now running started.
    started: Option<Instant>,
}

impl PacedFrames {
    /// Takes what a frame cost, from its start to drawn; returns the new interval when the pace
    /// should change.
    fn frame_cost(&mut self, cost: Duration) -> Option<Duration> {
        if self.costs.len() == COSTS_KEPT {
            self.costs.pop_front();
        }
        self.costs.push_back(cost);
        // The median of the last few: one slow frame (pipelines compiled at the start, a panel
        // added) moves nothing, a busy machine moves the pace within three frames.
        if self.costs.len() < COSTS_KEPT / 2 + 1 {
            return None;
        }
        let wanted =
            (self.typical_cost() * FRAME_COST_SHARE).clamp(self.least, SLOWEST_FRAME_INTERVAL);
        let off = (wanted.as_secs_f64() - self.interval.as_secs_f64()).abs();
        let back_to_least = wanted == self.least && self.interval != self.least;
        (back_to_least || off > PACE_HYSTERESIS * self.interval.as_secs_f64()).then(|| {
            self.interval = wanted;
            wanted
        })
    }

    /// What a frame typically costs now (the median of the last few).
    fn typical_cost(&self) -> Duration {
        let mut sorted: Vec<Duration> = self.costs.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

/// When the render world last finished drawing a frame (shared by both worlds).
#[derive(Resource, Clone, Default)]
struct FrameDrawn(Arc<Mutex<Option<Instant>>>);

fn note_drawn(drawn: Res<FrameDrawn>) {
    if let Ok(mut at) = drawn.0.lock() {
        *at = Some(Instant::now());
    }
}

/// At a frame's start: what the last one cost, and the pace that follows.
fn follow_the_cost(
    mut pace: ResMut<PacedFrames>,
    drawn: Res<FrameDrawn>,
    mut winit: ResMut<WinitSettings>,
) {
    let now = Instant::now();
    let drawn = drawn.0.lock().ok().and_then(|at| *at);
    if let (Some(started), Some(drawn)) = (pace.started, drawn)
        && drawn > started
        && let Some(interval) = pace.frame_cost(drawn - started)
    {
        info!(
            "frames cost {:.0} ms: one every {:.1} s",
            pace.typical_cost().as_secs_f64() * 1000.0,
            interval.as_secs_f64()
        );
        *winit = paced(interval);
    }
    pace.started = Some(now);
}

/// Drops this frame's requests for another frame at once (egui asks for one while a text field
/// has focus, for its blinking cursor), so that the pace holds.
fn hold_the_pace(mut requests: ResMut<Messages<RequestRedraw>>) {
    requests.clear();
}

/// Opens the room camera's field of view up when its view is narrow (a small window, side
/// panels open), so the people in the ring stay in sight instead of falling off its sides.
fn keep_the_ring_in_sight(mut cameras: Query<(&Camera, &mut Projection), With<Ears>>) {
    for (camera, mut projection) in &mut cameras {
        let Some(size) = camera.logical_viewport_size() else {
            continue;
        };
        let Projection::Perspective(perspective) = projection.bypass_change_detection() else {
            continue;
        };
        let fov = layout::vertical_fov(size.x / size.y);
        if (perspective.fov - fov).abs() > 1e-4 {
            perspective.fov = fov;
            projection.set_changed();
        }
    }
}

fn spawn_viewer(
    mut commands: Commands,
    mut egui_settings: ResMut<EguiGlobalSettings>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut images: ResMut<Assets<Image>>,
    mut videos: ResMut<Assets<VideoMaterial>>,
) {
    // Mirrored, as a mirror shows us.
    let placeholder = LinearRgba::rgb(0.1, 0.1, 0.12).to_vec4();
    let (image, material) = VideoMaterial::blank(placeholder, true, &mut images, &mut videos);
    // The interface has a camera of its own, over the whole window, so the room's camera can
    // render only where the side panels leave room.
    egui_settings.auto_create_primary_context = false;
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
    let start = Vec3::new(0.0, EYE_HEIGHT, layout_start());
    commands
        .spawn((
            Camera3d::default(),
            Projection::Perspective(PerspectiveProjection {
                fov: layout::VERTICAL_FOV,
                ..default()
            }),
            Transform::from_translation(start).looking_at(Vec3::new(0.0, 1.4, 0.0), Vec3::Y),
            Ears,
            Avatar::default(),
            AmbientLight {
                color: Color::srgb(1.0, 0.95, 0.9),
                brightness: 350.0,
                ..default()
            },
        ))
        .with_children(|camera| {
            // Bottom right of the view, 1 m ahead: small, always in sight.
            camera.spawn((
                Mesh3d(meshes.add(Rectangle::new(0.24, 0.18))),
                MeshMaterial3d(material.clone()),
                Transform::from_xyz(0.52, -0.36, -1.0),
                SelfView {
                    material,
                    image,
                    shown: 0,
                },
            ));
        });
}

fn layout_start() -> f32 {
    super::layout::MIN_RADIUS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(least_ms: u64) -> PacedFrames {
        PacedFrames {
            least: Duration::from_millis(least_ms),
            interval: Duration::from_millis(least_ms),
            costs: VecDeque::new(),
            started: None,
        }
    }

    fn feed(pace: &mut PacedFrames, cost_ms: u64, frames: usize) -> Vec<Option<Duration>> {
        (0..frames)
            .map(|_| pace.frame_cost(Duration::from_millis(cost_ms)))
            .collect()
    }

    #[test]
    fn cheap_frames_keep_the_fastest_pace() {
        let mut frames = pace(1500);
        assert!(feed(&mut frames, 300, 20).iter().all(Option::is_none));
        assert_eq!(frames.interval, Duration::from_millis(1500));
    }

    #[test]
    fn dear_frames_slow_the_pace_and_cheap_ones_bring_it_back() {
        let mut frames = pace(1500);
        // A busy machine: frames of 1.2 s are drawn at most a third of the time, once three
        // of them said so.
        let changes = feed(&mut frames, 1200, 6);
        assert_eq!(changes[..2], [None, None]);
        assert_eq!(changes[2], Some(Duration::from_millis(3600)));
        assert_eq!(frames.interval, Duration::from_millis(3600));
        // Dearer still: never slower than the slowest pace.
        feed(&mut frames, 4000, 6);
        assert_eq!(frames.interval, SLOWEST_FRAME_INTERVAL);
        // Idle again: back to the settings' pace within three frames.
        feed(&mut frames, 200, 3);
        assert_eq!(frames.interval, Duration::from_millis(1500));
    }

    #[test]
    fn one_slow_frame_moves_nothing() {
        let mut frames = pace(1500);
        // Pipelines compiled in the first frame.
        assert_eq!(frames.frame_cost(Duration::from_secs(4)), None);
        assert!(feed(&mut frames, 300, 5).iter().all(Option::is_none));
        assert_eq!(frames.frame_cost(Duration::from_secs(3)), None);
        assert_eq!(frames.interval, Duration::from_millis(1500));
    }
}
