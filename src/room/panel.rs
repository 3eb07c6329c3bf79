//! Video panels: every participant stands as a panel showing its decoded video, in a frame that
//! glows while it speaks, turned toward the viewer.
//!
//! Each panel owns one R8 texture holding the I420 picture as decoded (Y, then U and V), written
//! in place every new frame (bevy reuses the GPU texture when the size is unchanged) and turned
//! into RGB by the panel's shader. Panels the camera does not see are not uploaded.

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::pbr::{Material, MaterialPlugin};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, Extent3d, ShaderType, TextureDimension, TextureFormat,
};
use bevy::shader::ShaderRef;
use rotunda_proto::ParticipantId;

use super::layout::{PANEL_HEIGHT, PANEL_WIDTH};
use crate::AppSystems;
use crate::audio::Ears;
use rotunda_engine::media::VideoFrame;
use rotunda_engine::media::pattern::TestPattern;

use crate::call::{Call, CallRejoined, Command, Pictures};
use crate::participants::{Departing, Muted, Participant, Speaking};

pub(super) fn plugin(app: &mut App) {
    app.add_plugins(MaterialPlugin::<VideoMaterial>::default());
    app.add_observer(dress_panel);
    app.add_systems(
        Update,
        (
            pause_hidden_video,
            upload_video,
            show_speaking_glow,
            face_viewer,
        )
            .in_set(AppSystems::Present),
    );
}

/// The panels' shader, under the assets folder.
pub const PANEL_SHADER: &str = "shaders/yuv.wgsl";

/// A panel's material: the picture's planes and how to draw them.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct VideoMaterial {
    /// The I420 picture as one R8 texture, `width` x `height * 3 / 2`.
    #[texture(0)]
    pub planes: Handle<Image>,
    /// Placeholder colour and state.
    #[uniform(1)]
    pub panel: PanelUniform,
}

/// What the panel shader needs besides the texture.
#[derive(Clone, Copy, Debug, Default, ShaderType)]
pub struct PanelUniform {
    /// Shown before the first picture and while the camera is off.
    pub placeholder: Vec4,
    /// x: 1 when showing video; y, z: the picture's width and height; w: 1 to show it
    /// mirrored (the self-view, as a mirror shows us).
    pub state: Vec4,
}

impl VideoMaterial {
    /// A surface showing `placeholder` (linear RGBA) until its first picture, with its 2x2
    /// texture; `mirrored` shows its pictures as a mirror would.
    pub fn blank(
        placeholder: Vec4,
        mirrored: bool,
        images: &mut Assets<Image>,
        videos: &mut Assets<VideoMaterial>,
    ) -> (Handle<Image>, Handle<VideoMaterial>) {
        let image = images.add(planes_image(2, 2));
        let material = videos.add(VideoMaterial {
            planes: image.clone(),
            panel: PanelUniform {
                placeholder,
                state: Vec4::new(0.0, 0.0, 0.0, if mirrored { 1.0 } else { 0.0 }),
            },
        });
        (image, material)
    }
}

impl Material for VideoMaterial {
    fn fragment_shader() -> ShaderRef {
        // An asset: with `--features hot-reload`, an edit shows in the running room.
        PANEL_SHADER.into()
    }
}

/// The parts of a participant's panel.
#[derive(Component, Debug)]
pub struct PanelParts {
    /// The video surface.
    pub screen: Entity,
    /// Its material.
    pub material: Handle<VideoMaterial>,
    /// The frame, glowing with speech.
    pub frame: Handle<StandardMaterial>,
    /// The picture's texture.
    pub image: Handle<Image>,
    /// The serial of the picture shown.
    pub shown: u64,
    /// Since when the panel has been out of sight or tiny.
    pub unseen_since: Option<Duration>,
    /// For how many frames in a row it has been.
    pub unseen_frames: u32,
    /// The call was told nobody sees this participant's video (it is not decoded).
    pub hidden: bool,
}

/// A panel out of sight (or smaller than this many pixels tall) this long, and for this many
/// frames, stops being decoded. Both: a page that draws slowly (a software renderer, shaders
/// compiling) may see a second pass between two frames, and an arriving panel is not in view
/// until it was drawn once.
pub const UNSEEN_GRACE: Duration = Duration::from_secs(1);
/// See [`UNSEEN_GRACE`].
pub const UNSEEN_FRAMES: u32 = 10;
/// Panels shorter than this on screen are not worth decoding.
pub const TINY_PIXELS: f32 = 24.0;

/// An R8 image holding an I420 picture of `width` x `height`.
pub fn planes_image(width: usize, height: usize) -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width: width as u32,
            height: (height * 3 / 2) as u32,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[16],
        TextureFormat::R8Unorm,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    );
    // Chroma starts grey, not green.
    if let Some(data) = image.data.as_mut() {
        data[width * height..].fill(128);
    }
    image
}

/// Copies an I420 picture into an image's bytes as laid out for the shader: Y, then U, then V.
/// Returns false when the sizes differ (the image must be replaced).
pub fn pack_planes(frame: &VideoFrame, data: &mut [u8]) -> bool {
    let (y, u) = (frame.y.len(), frame.u.len());
    if data.len() != y + 2 * u || frame.v.len() != u {
        return false;
    }
    data[..y].copy_from_slice(&frame.y);
    data[y..y + u].copy_from_slice(&frame.u);
    data[y + u..].copy_from_slice(&frame.v);
    true
}

/// A participant's colour, as the test pattern draws it.
pub fn participant_color(id: u32) -> Color {
    let (u, v) = TestPattern::chroma(id as u16);
    let (d, e) = (f32::from(u) - 128.0, f32::from(v) - 128.0);
    let c = 1.164 * (120.0 - 16.0);
    let r = (c + 1.596 * e) / 255.0;
    let g = (c - 0.392 * d - 0.813 * e) / 255.0;
    let b = (c + 2.017 * d) / 255.0;
    Color::srgb(r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0))
}

/// Gives a new participant its panel: screen, frame and back.
fn dress_panel(
    add: On<Add, Participant>,
    participants: Query<&Participant>,
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut images: ResMut<Assets<Image>>,
    mut videos: ResMut<Assets<VideoMaterial>>,
    mut standard: ResMut<Assets<StandardMaterial>>,
) {
    let entity = add.entity;
    let Ok(participant) = participants.get(entity) else {
        return;
    };
    let colour = participant_color(participant.id.0);
    let placeholder = LinearRgba::from(colour).to_vec4();
    let (image, material) = VideoMaterial::blank(placeholder, false, &mut images, &mut videos);
    let frame = standard.add(StandardMaterial {
        base_color: Color::srgb(0.08, 0.08, 0.1),
        emissive: LinearRgba::BLACK,
        perceptual_roughness: 0.4,
        ..default()
    });
    let back = standard.add(StandardMaterial {
        base_color: Color::srgb(0.12, 0.12, 0.14),
        perceptual_roughness: 0.6,
        ..default()
    });
    let screen_mesh = meshes.add(Rectangle::new(PANEL_WIDTH, PANEL_HEIGHT));
    let frame_mesh = meshes.add(Rectangle::new(PANEL_WIDTH + 0.12, PANEL_HEIGHT + 0.12));
    let screen = commands
        .spawn((
            Mesh3d(screen_mesh),
            MeshMaterial3d(material.clone()),
            Transform::from_xyz(0.0, 0.0, 0.01),
        ))
        .id();
    let frame_entity = commands
        .spawn((Mesh3d(frame_mesh.clone()), MeshMaterial3d(frame.clone())))
        .id();
    let back_entity = commands
        .spawn((
            Mesh3d(frame_mesh),
            MeshMaterial3d(back),
            Transform::from_rotation(Quat::from_rotation_y(std::f32::consts::PI)),
        ))
        .id();
    commands
        .entity(entity)
        .add_children(&[screen, frame_entity, back_entity])
        .insert(PanelParts {
            screen,
            material,
            frame,
            image,
            shown: 0,
            unseen_since: None,
            unseen_frames: 0,
            hidden: false,
        });
}

/// Stops decoding the video of panels out of sight or tiny for [`UNSEEN_GRACE`] and
/// [`UNSEEN_FRAMES`]; resumes (from a keyframe) as soon as they show. A rejoined call starts
/// with every video shown, so the panels out of sight say so again.
fn pause_hidden_video(
    time: Res<Time<Real>>,
    call: Option<Res<Call>>,
    mut rejoined: MessageReader<CallRejoined>,
    cameras: Query<(&Camera, &GlobalTransform), With<Ears>>,
    mut panels: Query<(&Participant, &GlobalTransform, &mut PanelParts), Without<Departing>>,
    screens: Query<&ViewVisibility>,
) {
    let (Some(call), Some((camera, eye))) = (call, cameras.iter().next()) else {
        return;
    };
    let now = time.elapsed();
    let forgotten = rejoined.read().last().is_some();
    for (participant, transform, mut parts) in &mut panels {
        if forgotten {
            parts.hidden = false;
        }
        let in_view = screens.get(parts.screen).is_ok_and(|v| v.get());
        let centre = transform.translation();
        // Full size even while growing in: an arriving panel is about to be seen.
        let half = Vec3::Y * (PANEL_HEIGHT / 2.0);
        let tall = match (
            camera.world_to_viewport(eye, centre + half),
            camera.world_to_viewport(eye, centre - half),
        ) {
            (Ok(top), Ok(bottom)) => (bottom.y - top.y).abs(),
            _ => 0.0,
        };
        let seen = in_view && tall >= TINY_PIXELS;
        if seen {
            parts.unseen_since = None;
            parts.unseen_frames = 0;
        } else {
            parts.unseen_since.get_or_insert(now);
            parts.unseen_frames = parts.unseen_frames.saturating_add(1);
        }
        let hidden = parts.unseen_frames >= UNSEEN_FRAMES
            && parts
                .unseen_since
                .is_some_and(|since| now.saturating_sub(since) >= UNSEEN_GRACE);
        if hidden != parts.hidden
            && call.send(Command::Visible {
                id: participant.id,
                visible: !hidden,
            })
        {
            let what = if hidden {
                "paused: out of sight"
            } else {
                "back in sight"
            };
            tracing::info!(id = %participant.id, "a panel's video is {what}");
            parts.hidden = hidden;
        }
    }
}

/// Copies each visible participant's newest picture into its panel's texture.
fn upload_video(
    call: Option<Res<Call>>,
    mut panels: Query<(&Participant, &Muted, &mut PanelParts)>,
    screens: Query<&ViewVisibility>,
    mut images: ResMut<Assets<Image>>,
    mut videos: ResMut<Assets<VideoMaterial>>,
) {
    let Some(call) = call else {
        return;
    };
    for (participant, muted, mut parts) in &mut panels {
        let showing = !muted.video && parts.shown > 0;
        if let Some(material) = videos.get(&parts.material)
            && (material.panel.state.x > 0.5) != showing
            && let Some(mut material) = videos.get_mut(&parts.material)
        {
            material.panel.state.x = if showing { 1.0 } else { 0.0 };
        }
        if muted.video {
            continue;
        }
        // Off screen: skip the copy and the upload (shown stays old, so it catches up later).
        let visible = screens.get(parts.screen).is_ok_and(|v| v.get());
        if parts.shown > 0 && !visible {
            continue;
        }
        let parts = &mut *parts;
        let mut surface = VideoSurface {
            image: &mut parts.image,
            material: &parts.material,
            shown: &mut parts.shown,
        };
        surface.show_newest(call.pictures(), participant.id, &mut images, &mut videos);
    }
    call.presented();
}

/// A video surface: its texture, its material, and the serial of the picture it shows.
pub struct VideoSurface<'a> {
    /// The texture (replaced when the picture's size changes).
    pub image: &'a mut Handle<Image>,
    /// The material drawing it.
    pub material: &'a Handle<VideoMaterial>,
    /// The serial of the picture shown.
    pub shown: &'a mut u64,
}

impl VideoSurface<'_> {
    /// Shows `id`'s newest picture if it is newer than the one shown: written into the texture in
    /// place, or, for the first picture or a new size, into a new texture of the right size.
    pub fn show_newest(
        &mut self,
        pictures: &Pictures,
        id: ParticipantId,
        images: &mut Assets<Image>,
        videos: &mut Assets<VideoMaterial>,
    ) {
        let image = self.image.clone();
        let updated = pictures.read_newer(id, *self.shown, |frame| {
            let packed = images
                .get_mut(&image)
                .and_then(|mut image| image.data.as_mut().map(|d| pack_planes(frame, d)));
            // Only a picture of a new size is copied out (rarely).
            (packed != Some(true)).then(|| frame.clone())
        });
        let Some((serial, resized)) = updated else {
            return;
        };
        *self.shown = serial;
        let Some(frame) = resized else {
            return;
        };
        let mut fresh = planes_image(frame.width, frame.height);
        if let Some(data) = fresh.data.as_mut() {
            pack_planes(&frame, data);
        }
        *self.image = images.add(fresh);
        if let Some(mut material) = videos.get_mut(self.material) {
            material.planes = self.image.clone();
            // (w: mirrored, as set when the material was made.)
            let mirrored = material.panel.state.w;
            material.panel.state =
                Vec4::new(1.0, frame.width as f32, frame.height as f32, mirrored);
        }
    }
}

/// The frame glows with the participant's voice.
fn show_speaking_glow(
    panels: Query<(&Speaking, &Muted, &PanelParts, &Participant), Changed<Speaking>>,
    mut standard: ResMut<Assets<StandardMaterial>>,
) {
    for (speaking, muted, parts, participant) in &panels {
        if let Some(mut frame) = standard.get_mut(&parts.frame) {
            let level = if muted.audio { 0.0 } else { speaking.0 };
            let glow = LinearRgba::from(participant_color(participant.id.0)) * (level * 6.0);
            frame.emissive = glow + LinearRgba::rgb(0.2, 0.9, 0.4) * (level * 4.0);
        }
    }
}

/// Turns every panel toward the viewer (about the vertical axis only).
fn face_viewer(
    ears: Query<&Transform, (With<Ears>, Without<Participant>)>,
    mut panels: Query<&mut Transform, With<Participant>>,
) {
    let Some(viewer) = ears.iter().next() else {
        return;
    };
    for mut transform in &mut panels {
        let mut to_viewer = viewer.translation - transform.translation;
        to_viewer.y = 0.0;
        if to_viewer.length_squared() > 1e-4 {
            // +Z (the screen's front) toward the viewer.
            let yaw = to_viewer.x.atan2(to_viewer.z);
            transform.rotation = Quat::from_rotation_y(yaw);
        }
    }
}
