//! In the browser the call runs in a worker of its own: the page asks for the camera and the
//! microphone (the browser's prompt), readies its audio worklets, then starts the worker with
//! them.

use rotunda_engine::handle::web::{self as engine, PageDevices};
use rotunda_engine::js;

use super::CallParts;
use crate::devices::{DeviceStates, SHARED_MOST, SourceState, web as devices};

/// Opens the devices, then starts the call's worker.
pub(super) fn start(parts: CallParts) {
    js::spawn(async move {
        let settings = parts.settings.clone();
        let (camera, camera_state) = devices::open_camera(&settings.camera, settings.video).await;
        let (microphone, microphone_state) = devices::open_microphone(&settings.microphone).await;
        let (speakers, speakers_state) = devices::open_speakers(&settings.speakers).await;
        // A microphone that would not open sends nothing (silence stands in natively): the call
        // publishes audio only for one that works or the synthetic tone.
        let mut config = parts.config(
            camera_state.sends(),
            microphone.is_some() || microphone_state == crate::devices::SourceState::Synthetic,
        );
        // A screen is shared at the size the page's display has (as far as the page can tell;
        // the frames are scaled to it), within the most shared.
        let can_share = devices::can_share_screen();
        if can_share && let Some(window) = web_sys::window() {
            let scale = window.device_pixel_ratio().max(1.0);
            let size = window.screen().ok().map(|s| {
                let side = |n: Result<i32, _>| (f64::from(n.unwrap_or(0)) * scale) as u32;
                (side(s.width()), side(s.height()))
            });
            config.screen = size
                .filter(|(w, h)| *w > 0 && *h > 0)
                .map(|(w, h)| crate::devices::fit(w, h, SHARED_MOST));
        }
        let screen = if config.share_screen && config.screen.is_some() {
            match devices::open_screen(SHARED_MOST).await {
                Ok(display) => Some(display),
                Err(reason) => {
                    js::log_error(&format!("rotunda:error the screen is not shared: {reason}"));
                    None
                }
            }
        } else {
            None
        };
        config.share_screen = screen.is_some();
        let _ = parts.devices.send(DeviceStates {
            camera: camera_state,
            microphone: microphone_state,
            speakers: speakers_state,
            screen: if config.screen.is_some() {
                SourceState::Live("a screen or window".into())
            } else {
                SourceState::Off
            },
            screen_on: config.share_screen,
        });
        let page = PageDevices {
            camera,
            microphone,
            speakers,
            screen,
        };
        engine::start(parts.side, config, page, &settings.worker_url);
    });
}
