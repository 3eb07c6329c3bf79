//! The interface's font for names and chat in most of the world's scripts: DejaVu Sans (Latin,
//! Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic, many symbols), a Bevy asset in
//! `assets/fonts/` (natively read from the assets folder, in the browser fetched from the relay,
//! which serves the same files beside the bundle), added to egui after its own fonts: a glyph
//! they lack comes from it instead of a box. A missing file leaves egui's fonts alone.

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};

/// Where the font is, under the assets folder.
pub const UI_FONT: &str = "fonts/DejaVuSans.ttf";

pub(super) fn plugin(app: &mut App) {
    app.init_asset::<FontBytes>()
        .register_asset_loader(FontBytesLoader)
        .add_systems(Startup, load_font)
        .add_systems(Update, install_font);
}

/// A font file, as read.
#[derive(Asset, TypePath, Debug)]
pub struct FontBytes(pub Vec<u8>);

/// Reads `.ttf` and `.otf` files whole.
#[derive(Default, TypePath)]
struct FontBytesLoader;

impl AssetLoader for FontBytesLoader {
    type Asset = FontBytes;
    type Settings = ();
    type Error = std::io::Error;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        _context: &mut LoadContext<'_>,
    ) -> Result<FontBytes, std::io::Error> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        Ok(FontBytes(bytes))
    }

    fn extensions(&self) -> &[&str] {
        &["ttf", "otf"]
    }
}

/// The font being loaded, until it is handed to egui.
#[derive(Resource)]
struct PendingFont(Handle<FontBytes>);

fn load_font(mut commands: Commands, assets: Res<AssetServer>) {
    commands.insert_resource(PendingFont(assets.load(UI_FONT)));
}

/// Hands the font to egui once it is loaded (or gives up quietly if it cannot be).
fn install_font(
    mut commands: Commands,
    pending: Option<Res<PendingFont>>,
    fonts: Res<Assets<FontBytes>>,
    assets: Res<AssetServer>,
    mut contexts: EguiContexts,
) {
    let Some(pending) = pending else {
        return;
    };
    if let Some(bevy::asset::LoadState::Failed(error)) = assets.get_load_state(&pending.0) {
        warn!("the interface font did not load ({error}); egui's own fonts only");
        commands.remove_resource::<PendingFont>();
        return;
    }
    let (Some(font), Ok(ctx)) = (fonts.get(&pending.0), contexts.ctx_mut()) else {
        return;
    };
    let fallback = |family| egui::epaint::text::InsertFontFamily {
        family,
        priority: egui::epaint::text::FontPriority::Lowest,
    };
    ctx.add_font(egui::epaint::text::FontInsert::new(
        "DejaVuSans",
        egui::FontData::from_owned(font.0.clone()),
        vec![
            fallback(egui::FontFamily::Proportional),
            fallback(egui::FontFamily::Monospace),
        ],
    ));
    info!("the interface font is installed ({UI_FONT})");
    commands.remove_resource::<PendingFont>();
}
