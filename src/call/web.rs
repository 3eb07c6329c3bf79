//! In the browser the call runs in a worker of its own: the page asks for the camera and the
//! microphone (the browser's prompt), readies its audio worklets, then starts the worker with
//! them.

use rotunda_engine::handle::web::{self as engine, PageDevices};
use rotunda_engine::js;

use super::CallParts;
use crate::devices::{DeviceStates, web as devices};

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
        // Not shared from the browser yet (getDisplayMedia is to come).
        config.share_screen = false;
        let _ = parts.devices.send(DeviceStates {
            camera: camera_state,
            microphone: microphone_state,
            speakers: speakers_state,
            screen: crate::devices::SourceState::Off,
            screen_on: false,
        });
        let page = PageDevices {
            camera,
            microphone,
            speakers,
        };
        engine::start(parts.side, config, page, &settings.worker_url);
    });
}
