//! The interface's font for names and chat in most of the world's scripts: DejaVu Sans (Latin,
//! Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic, many symbols), a Bevy asset in
//! `assets/fonts/` (natively read from the assets folder, in the browser fetched from the relay,
//! which serves the same files beside the bundle), added to egui after its own fonts: a glyph
//! they lack comes from it instead of a box. Chinese, Japanese and Korean come from a second,
//! larger font ([`CJK_FONT`]), fetched only once a name or chat line needs it. A missing file
//! leaves egui's fonts alone.

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};

use super::model::ChatLog;
use crate::participants::{Participant, Roster};
use crate::settings::Settings;

/// Where the font is, under the assets folder.
pub const UI_FONT: &str = "fonts/DejaVuSans.ttf";
/// Chinese, Japanese and Korean: a subset of Noto Sans CJK SC (about 9,000 common characters:
/// GB 2312 level 1, JIS level 1, KS X 1001 Hangul, kana, CJK punctuation; made by
/// `scripts/cjk-font.sh`), loaded only once a name or chat line needs it.
pub const CJK_FONT: &str = "fonts/NotoSansCJK-subset.otf";

pub(super) fn plugin(app: &mut App) {
    app.init_asset::<FontBytes>()
        .register_asset_loader(FontBytesLoader)
        .init_resource::<PendingFonts>()
        .init_resource::<CjkAsked>()
        .add_systems(Startup, load_font)
        .add_systems(Update, (want_cjk, install_fonts).chain());
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

/// Fonts being loaded, until each is handed to egui: (its name for egui, its file, its handle).
#[derive(Resource, Default)]
struct PendingFonts(Vec<(&'static str, &'static str, Handle<FontBytes>)>);

/// Whether the CJK font was asked for (it is large: only once a name or line needs it).
#[derive(Resource, Default)]
struct CjkAsked(bool);

fn load_font(mut pending: ResMut<PendingFonts>, assets: Res<AssetServer>) {
    pending
        .0
        .push(("DejaVuSans", UI_FONT, assets.load(UI_FONT)));
}

/// Whether `text` holds Chinese, Japanese or Korean letters (which DejaVu Sans lacks).
pub fn needs_cjk(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(u32::from(c),
            0x1100..=0x11FF       // Hangul Jamo
            | 0x2E80..=0x2FDF     // CJK and Kangxi radicals
            | 0x3000..=0x30FF     // CJK punctuation, hiragana, katakana
            | 0x3130..=0x318F     // Hangul compatibility Jamo
            | 0x31F0..=0x31FF     // katakana extensions
            | 0x3400..=0x4DBF     // CJK extension A
            | 0x4E00..=0x9FFF     // CJK unified ideographs
            | 0xAC00..=0xD7AF     // Hangul syllables
            | 0xF900..=0xFAFF     // CJK compatibility ideographs
            | 0xFF00..=0xFFEF     // half- and full-width forms
            | 0x20000..=0x3134F) // CJK extensions B to G
    })
}

/// Asks for the CJK font the first time a name or a chat line needs it.
fn want_cjk(
    mut asked: ResMut<CjkAsked>,
    mut pending: ResMut<PendingFonts>,
    assets: Res<AssetServer>,
    (settings, roster, log): (Res<Settings>, Res<Roster>, Res<ChatLog>),
    names: Query<&Participant, Changed<Participant>>,
) {
    if asked.0 {
        return;
    }
    let needed = (settings.is_changed() && needs_cjk(&settings.name))
        || (roster.is_changed() && needs_cjk(&roster.your_name))
        || names.iter().any(|p| needs_cjk(&p.name))
        || (log.is_changed()
            && log
                .lines
                .iter()
                .any(|line| needs_cjk(&line.text) || needs_cjk(&line.name)));
    if needed {
        asked.0 = true;
        info!("a name or line in Chinese, Japanese or Korean: loading {CJK_FONT}");
        pending
            .0
            .push(("NotoSansCJK", CJK_FONT, assets.load(CJK_FONT)));
    }
}

/// Hands each font to egui once it is loaded (or gives up on it if it cannot be).
fn install_fonts(
    mut pending: ResMut<PendingFonts>,
    fonts: Res<Assets<FontBytes>>,
    assets: Res<AssetServer>,
    mut contexts: EguiContexts,
) {
    if pending.0.is_empty() {
        return;
    }
    let Ok(ctx) = contexts.ctx_mut() else {
        return;
    };
    pending.0.retain(|(name, path, handle)| {
        if let Some(bevy::asset::LoadState::Failed(error)) = assets.get_load_state(handle) {
            warn!("the font {path} did not load ({error}); its letters show as boxes");
            return false;
        }
        let Some(font) = fonts.get(handle) else {
            return true;
        };
        let fallback = |family| egui::epaint::text::InsertFontFamily {
            family,
            priority: egui::epaint::text::FontPriority::Lowest,
        };
        ctx.add_font(egui::epaint::text::FontInsert::new(
            name,
            egui::FontData::from_owned(font.0.clone()),
            vec![
                fallback(egui::FontFamily::Proportional),
                fallback(egui::FontFamily::Monospace),
            ],
        ));
        if *path == UI_FONT {
            info!("the interface font is installed ({UI_FONT})");
        } else {
            info!("the font {path} is installed");
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_japanese_and_korean_need_the_cjk_font_others_do_not() {
        for text in ["李雷", "こんにちは", "カタカナ", "안녕하세요", "（全角）"]
        {
            assert!(needs_cjk(text), "{text}");
        }
        for text in ["alice", "Ελένη", "Аня", "ნინო", "שלום", "مرحبا", "Zoë ✓"]
        {
            assert!(!needs_cjk(text), "{text}");
        }
    }

    #[test]
    fn the_fonts_are_in_the_assets() {
        for path in [UI_FONT, CJK_FONT] {
            let file = format!("{}/assets/{path}", env!("CARGO_MANIFEST_DIR"));
            let bytes = std::fs::read(&file).expect("the font is in assets/");
            // TrueType or OpenType (CFF) outlines.
            assert!(
                bytes.starts_with(&[0, 1, 0, 0]) || bytes.starts_with(b"OTTO"),
                "{file}"
            );
        }
    }
}
