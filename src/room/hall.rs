//! The hall: a round room with a wooden floor, stone walls, a centre piece and warm light. Its
//! textures are assets (`assets/textures/`, made by `scripts/textures.py`), tiled across the
//! floor and around the wall; each gets its smaller sizes (mipmaps) once loaded, so the planks
//! far away blur instead of shimmering. A texture that cannot load leaves its surface white.

use std::f32::consts::{FRAC_PI_2, TAU};

use bevy::image::{ImageAddressMode, ImageLoaderSettings, ImageSampler, ImageSamplerDescriptor};
use bevy::math::Affine2;
use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;

use super::layout::{ROOM_RADIUS, WALL_HEIGHT};

/// The floor's planks, under the assets folder.
pub const FLOOR_TEXTURE: &str = "textures/floor.png";
/// The wall's stone, under the assets folder.
pub const WALL_TEXTURE: &str = "textures/wall.png";
/// Metres one floor texture covers (four planks across).
const FLOOR_TILE: f32 = 2.4;
/// Metres one wall texture covers (four courses of stone).
const WALL_TILE: f32 = 2.0;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, build_hall);
    app.add_systems(Update, add_mipmaps.run_if(resource_exists::<HallTextures>));
}

/// The hall's textures, to give them mipmaps once they load.
#[derive(Resource, Debug)]
struct HallTextures(Vec<Handle<Image>>);

/// A texture that repeats, filtered between its sizes.
fn tiling(assets: &AssetServer, path: &'static str) -> Handle<Image> {
    assets
        .load_builder()
        .with_settings(|settings: &mut ImageLoaderSettings| {
            settings.sampler = ImageSampler::Descriptor(ImageSamplerDescriptor {
                address_mode_u: ImageAddressMode::Repeat,
                address_mode_v: ImageAddressMode::Repeat,
                ..ImageSamplerDescriptor::linear()
            });
        })
        .load(path)
}

/// Gives each hall texture, once loaded, its mipmaps.
fn add_mipmaps(
    mut events: MessageReader<AssetEvent<Image>>,
    textures: Res<HallTextures>,
    mut images: ResMut<Assets<Image>>,
) {
    for event in events.read() {
        let AssetEvent::LoadedWithDependencies { id } = event else {
            continue;
        };
        if !textures.0.iter().any(|handle| handle.id() == *id) {
            continue;
        }
        if let Some(mut image) = images.get_mut(*id)
            && image.texture_descriptor.mip_level_count == 1
            && let Err(why) = with_mipmaps(&mut image)
        {
            warn!("a hall texture keeps one size: {why}");
        }
    }
}

/// Appends to an sRGB RGBA8 image every smaller size down to 1x1, each pixel the average of
/// the four below it (averaged as light, not as sRGB numbers).
pub fn with_mipmaps(image: &mut Image) -> Result<(), String> {
    let format = image.texture_descriptor.format;
    if format != TextureFormat::Rgba8UnormSrgb {
        return Err(format!("{format:?} is not 8-bit sRGB RGBA"));
    }
    let size = image.texture_descriptor.size;
    let (mut width, mut height) = (size.width as usize, size.height as usize);
    if size.depth_or_array_layers != 1 || width == 0 || height == 0 {
        return Err(format!("{size:?} is not one flat picture"));
    }
    let Some(data) = image.data.as_mut() else {
        return Err("it holds no pixels".into());
    };
    if data.len() != width * height * 4 {
        return Err(format!("{} bytes for {width}x{height}", data.len()));
    }
    let to_linear: Vec<f32> = (0..=255u8)
        .map(|v| {
            let c = f32::from(v) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    let to_srgb = |c: f32| {
        let c = if c <= 0.003_130_8 {
            c * 12.92
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (c * 255.0).round().clamp(0.0, 255.0) as u8
    };
    let mut levels = 1;
    let mut level: Vec<u8> = data.clone();
    while width > 1 || height > 1 {
        let (w, h) = ((width / 2).max(1), (height / 2).max(1));
        let mut next = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                for c in 0..4 {
                    let mut sum = 0.0;
                    let mut count = 0.0;
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (sx, sy) = ((2 * x + dx).min(width - 1), (2 * y + dy).min(height - 1));
                        let v = level[(sy * width + sx) * 4 + c];
                        sum += if c == 3 {
                            f32::from(v) / 255.0
                        } else {
                            to_linear[usize::from(v)]
                        };
                        count += 1.0;
                    }
                    let mean = sum / count;
                    next[(y * w + x) * 4 + c] = if c == 3 {
                        (mean * 255.0).round() as u8
                    } else {
                        to_srgb(mean)
                    };
                }
            }
        }
        data.extend_from_slice(&next);
        level = next;
        (width, height) = (w, h);
        levels += 1;
    }
    image.texture_descriptor.mip_level_count = levels;
    Ok(())
}

fn build_hall(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    assets: Res<AssetServer>,
) {
    let floor = tiling(&assets, FLOOR_TEXTURE);
    let stone = tiling(&assets, WALL_TEXTURE);
    commands.insert_resource(HallTextures(vec![floor.clone(), stone.clone()]));
    // Floor: wooden planks, with a darker inlaid ring where the panels stand.
    commands.spawn((
        Mesh3d(meshes.add(Circle::new(ROOM_RADIUS))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color_texture: Some(floor),
            // The circle's texture space spans its diameter: a tile every FLOOR_TILE metres.
            uv_transform: Affine2::from_scale(Vec2::splat(2.0 * ROOM_RADIUS / FLOOR_TILE)),
            perceptual_roughness: 0.7,
            ..default()
        })),
        // Just above the wall cylinder's bottom cap, which would otherwise fight with it.
        Transform::from_xyz(0.0, 0.01, 0.0).with_rotation(Quat::from_rotation_x(-FRAC_PI_2)),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Annulus::new(2.2, 2.5))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.78, 0.62, 0.36),
            metallic: 0.6,
            perceptual_roughness: 0.35,
            ..default()
        })),
        Transform::from_xyz(0.0, 0.02, 0.0).with_rotation(Quat::from_rotation_x(-FRAC_PI_2)),
    ));
    // Walls: a cylinder of dressed stone seen from inside; its top cap is the ceiling. Its
    // texture space runs once around and once up: a block course every WALL_TILE metres.
    let wall = materials.add(StandardMaterial {
        base_color_texture: Some(stone),
        uv_transform: Affine2::from_scale(Vec2::new(
            (TAU * ROOM_RADIUS / WALL_TILE).round(),
            WALL_HEIGHT / WALL_TILE,
        )),
        perceptual_roughness: 0.9,
        cull_mode: None,
        double_sided: true,
        ..default()
    });
    commands.spawn((
        Mesh3d(
            meshes.add(
                Cylinder::new(ROOM_RADIUS, WALL_HEIGHT)
                    .mesh()
                    .resolution(96),
            ),
        ),
        MeshMaterial3d(wall),
        Transform::from_xyz(0.0, WALL_HEIGHT / 2.0, 0.0),
    ));
    // Pilasters around the wall.
    let column = meshes.add(Cylinder::new(0.25, WALL_HEIGHT));
    let stone = materials.add(StandardMaterial {
        base_color: Color::srgb(0.95, 0.93, 0.88),
        perceptual_roughness: 0.5,
        ..default()
    });
    for i in 0..16 {
        let angle = i as f32 / 16.0 * TAU;
        let r = ROOM_RADIUS - 0.3;
        commands.spawn((
            Mesh3d(column.clone()),
            MeshMaterial3d(stone.clone()),
            Transform::from_xyz(r * angle.sin(), WALL_HEIGHT / 2.0, r * angle.cos()),
        ));
    }
    // The centre piece: a low round table with a glowing top.
    commands.spawn((
        Mesh3d(meshes.add(Cylinder::new(0.7, 0.5))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.20, 0.22, 0.28),
            metallic: 0.3,
            perceptual_roughness: 0.4,
            ..default()
        })),
        Transform::from_xyz(0.0, 0.25, 0.0),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Cylinder::new(0.55, 0.02))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.4, 0.7, 1.0),
            emissive: LinearRgba::rgb(0.6, 1.4, 3.0),
            ..default()
        })),
        Transform::from_xyz(0.0, 0.51, 0.0),
    ));
    // Light: a warm key light from above, and lamps around the hall.
    commands.spawn((
        PointLight {
            intensity: 4_000_000.0,
            range: 40.0,
            color: Color::srgb(1.0, 0.92, 0.8),
            shadow_maps_enabled: true,
            shadow_depth_bias: 0.08,
            ..default()
        },
        Transform::from_xyz(0.0, 7.0, 0.0),
    ));
    let lamp = meshes.add(Sphere::new(0.15));
    let lamp_glow = materials.add(StandardMaterial {
        base_color: Color::srgb(1.0, 0.85, 0.6),
        emissive: LinearRgba::rgb(8.0, 5.5, 3.0),
        ..default()
    });
    for i in 0..8 {
        let angle = (i as f32 + 0.5) / 8.0 * TAU;
        let r = ROOM_RADIUS - 1.0;
        let position = Vec3::new(r * angle.sin(), 3.2, r * angle.cos());
        commands.spawn((
            Mesh3d(lamp.clone()),
            MeshMaterial3d(lamp_glow.clone()),
            Transform::from_translation(position),
        ));
        // Every other lamp lights the hall; the rest only glow.
        if i % 2 == 0 {
            commands.spawn((
                PointLight {
                    intensity: 500_000.0,
                    range: 20.0,
                    color: Color::srgb(1.0, 0.8, 0.6),
                    ..default()
                },
                Transform::from_translation(position),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use bevy::asset::RenderAssetUsages;
    use bevy::render::render_resource::{Extent3d, TextureDimension};

    use super::*;

    #[test]
    fn a_texture_gets_every_smaller_size_averaged_as_light() {
        // 4x2: left half black, right half white.
        let mut pixels = Vec::new();
        for _ in 0..2 {
            for x in 0..4 {
                let v = if x < 2 { 0 } else { 255 };
                pixels.extend_from_slice(&[v, v, v, 255]);
            }
        }
        let mut image = Image::new(
            Extent3d {
                width: 4,
                height: 2,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            pixels,
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::default(),
        );
        with_mipmaps(&mut image).expect("mipmaps");
        // 4x2, 2x1, 1x1.
        assert_eq!(image.texture_descriptor.mip_level_count, 3);
        let data = image.data.as_ref().expect("pixels");
        assert_eq!(data.len(), (8 + 2 + 1) * 4);
        assert_eq!(&data[32..40], &[0, 0, 0, 255, 255, 255, 255, 255]);
        // Half black, half white is half the light: sRGB 188, not 128.
        assert_eq!(&data[40..44], &[188, 188, 188, 255]);
        // Not again, and not for what it cannot average.
        let mut odd = Image::default();
        odd.texture_descriptor.format = TextureFormat::R8Unorm;
        assert!(with_mipmaps(&mut odd).is_err());
    }

    #[test]
    fn the_hall_s_textures_are_in_the_assets() {
        for path in [FLOOR_TEXTURE, WALL_TEXTURE] {
            let file = format!("{}/assets/{path}", env!("CARGO_MANIFEST_DIR"));
            let bytes = std::fs::read(&file).expect("the texture is in assets/");
            assert!(bytes.starts_with(b"\x89PNG"), "{file}");
        }
    }
}
