//! Rotunda in the browser: `index.html` loads this module, which reads the page's URL and starts
//! the same Bevy client as the desktop program, drawing into the page's canvas.
//!
//! URL parameters: `room` and `name` (with `room`, the client joins at once; without it, the
//! join form shows), `token` (an access token, when the relay asks for one: a refused one is
//! explained on the page), `e2ee` (`off`: a room this page creates is not end-to-end
//! encrypted, and is marked so for everyone in it; `on`, the default, it is), `relay`
//! (default: the page's own host and port), `cert` (the fingerprint to pin, for a development
//! relay elsewhere than this machine, from its log: a loopback relay's is fetched, any other
//! relay needs a real certificate), `camera` and `mic` (`default`, `synthetic` or `none`),
//! `video` (`WIDTHxHEIGHT@FPS`), `chat` (a line said once after joining; with `chat_with`, once
//! that many people are in the room), `duration` (leave after, e.g. `30s`), `meeting` (spatial
//! audio off), `frames` (`continuous`: draw back to back even without a GPU).

#![cfg(target_arch = "wasm32")]

use rotunda::Settings;
use wasm_bindgen::prelude::*;

/// Starts the client in the page.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    let settings = match settings_from_page() {
        Ok(settings) => settings,
        Err(error) => {
            web_sys::console::error_1(&JsValue::from_str(&format!("rotunda:error {error}")));
            Settings::default()
        }
    };
    rotunda::app(settings).run();
}

/// The settings the page's URL asks for.
fn settings_from_page() -> Result<Settings, String> {
    let window = web_sys::window().ok_or("no window")?;
    let location = window.location();
    let search = location.search().unwrap_or_default();
    let params = web_sys::UrlSearchParams::new_with_str(&search).map_err(|_| "bad URL query")?;
    let param = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
    let host = location.host().unwrap_or_else(|_| "127.0.0.1:4443".into());
    // index.html names the call's worker script (in the bundle's folder).
    let worker_url = js_sys::Reflect::get(&window, &JsValue::from_str("rotundaWorker"))
        .ok()
        .and_then(|url| url.as_string())
        .unwrap_or_else(|| "./worker.js".into());
    let mut settings = Settings {
        relay: Some(param("relay").unwrap_or_else(|| format!("https://{host}"))),
        // A development relay elsewhere than this machine: the fingerprint to pin, from its log.
        cert_hash: match param("cert") {
            Some(hex) => Some(
                rotunda_engine::transport::trust::parse_hash(&hex).ok_or_else(|| {
                    format!("cert={hex}: 64 hex digits (the relay's log shows them)")
                })?,
            ),
            None => None,
        },
        worker_url,
        canvas: Some("#rotunda".into()),
        // A page zoomed out (or a browser told to draw fewer pixels, as the browser test does
        // on its software renderer) has fewer pixels than CSS pixels.
        scale_factor: Some(window.device_pixel_ratio() as f32).filter(|ratio| *ratio < 1.0),
        // Drawn on the CPU (SwiftShader), a frame takes a core for 200–500 ms. The call runs in
        // its worker either way (`frames=continuous` draws back to back and the call keeps
        // time), but on a small machine a frame every 1.5 s leaves the CPU to the codecs.
        software_frame_interval: Some(std::time::Duration::from_millis(1500)),
        ..Settings::default()
    };
    if let Some(room) = param("room") {
        settings.room = room;
        settings.auto_join = true;
    }
    if let Some(name) = param("name") {
        settings.name = name;
    }
    if let Some(token) = param("token") {
        settings.token = Some(token.trim().to_owned());
    }
    if let Some(e2ee) = param("e2ee") {
        settings.e2ee = match e2ee.as_str() {
            "on" => true,
            "off" => false,
            other => return Err(format!("e2ee={other}: on or off")),
        };
    }
    if let Some(camera) = param("camera") {
        settings.camera = camera.parse()?;
    }
    if let Some(mic) = param("mic") {
        settings.microphone = mic.parse()?;
    }
    if let Some(video) = param("video") {
        settings.video = video.parse()?;
    }
    // `simulcast=on`: send the camera in layers. Off by default in the browser for now: on this
    // project's 2-core test machine (software rendering) a page encoding a second layer played
    // its audio late (BENCHMARKS.md, "Big rooms").
    settings.simulcast = param("simulcast").as_deref() == Some("on");
    // `share=screen`: share a display from the start (the browser asks which).
    settings.share_screen = param("share").as_deref() == Some("screen");
    if let Some(chat) = param("chat") {
        settings.chat.push(chat);
    }
    if let Some(with) = param("chat_with") {
        settings.chat_with = with
            .parse()
            .map_err(|_| format!("chat_with={with}: a number of people"))?;
    }
    if let Some(duration) = param("duration") {
        settings.duration = Some(
            humantime::parse_duration(&duration)
                .map_err(|e| format!("duration {duration:?}: {e}"))?,
        );
    }
    settings.meeting_mode = param("meeting").is_some();
    settings.sounds = param("sounds").as_deref() != Some("off");
    // `frames=continuous`: draw back to back even on a software renderer (the call runs in a
    // worker of its own and does not need the page's thread).
    if param("frames").as_deref() == Some("continuous") {
        settings.software_frame_interval = None;
    }
    Ok(settings)
}
