//! The machine's camera, microphone and speakers, opened for a call and handed to the engine as
//! its sources and speakers; and what they turned out to be, for the badges ([`Devices`]).
//!
//! Natively ([`native`]) the camera is read through nokhwa on a thread of its own and the
//! microphone and speakers run through cpal, each callback trading samples with the engine
//! through a lock-free ring (no lock, no allocation in the callback), resampled with `rubato` on
//! the engine's side when the device does not run at 48 kHz. In the browser (`web`) the page
//! asks for the camera and the microphone, and runs two audio worklets whose ports go to the
//! engine's worker with the camera's frames.

#[cfg(native)]
mod camera;
#[cfg(native)]
pub mod native;
#[cfg(native)]
pub mod screen;
#[cfg(web)]
pub mod web;

#[cfg(native)]
pub use native::list_devices;
#[cfg(web)]
pub use web::list_devices;

use bevy::prelude::*;
pub use rotunda_engine::media::SourceState;

/// Devices a menu offers, as (choice, label).
pub type DeviceList = Vec<(String, String)>;

/// What the camera, microphone and speakers turned out to be, and what the user switched off.
#[derive(Resource, Debug, Clone, Default)]
pub struct Devices {
    /// The camera.
    pub camera: SourceState,
    /// The microphone.
    pub microphone: SourceState,
    /// The speakers.
    pub speakers: SourceState,
    /// Microphone on (sending).
    pub microphone_on: bool,
    /// Camera on (sending).
    pub camera_on: bool,
    /// The screen to share: off when there is none to capture.
    pub screen: SourceState,
    /// The screen is shared.
    pub screen_on: bool,
    /// The user turned the microphone off: it stays off when the call is rejoined.
    pub microphone_off_by_user: bool,
    /// The user turned the camera off: it stays off when the call is rejoined.
    pub camera_off_by_user: bool,
}

/// What the devices opened for a call turned out to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStates {
    /// The camera.
    pub camera: SourceState,
    /// The microphone.
    pub microphone: SourceState,
    /// The speakers.
    pub speakers: SourceState,
    /// The screen to share.
    pub screen: SourceState,
    /// The screen is shared from the start.
    pub screen_on: bool,
}

impl Devices {
    /// Takes in what the devices of a new call turned out to be; what the user switched off
    /// stays off.
    pub fn opened(&mut self, states: DeviceStates) {
        for (what, state) in [
            ("camera", &states.camera),
            ("microphone", &states.microphone),
            ("speakers", &states.speakers),
        ] {
            if let SourceState::Fallback(reason) = state {
                warn!("{what}: {reason}; using a stand-in");
            }
        }
        self.camera_on = states.camera.sends() && !self.camera_off_by_user;
        self.microphone_on = states.microphone.sends() && !self.microphone_off_by_user;
        self.camera = states.camera;
        self.microphone = states.microphone;
        self.speakers = states.speakers;
        self.screen_on = states.screen.sends() && states.screen_on;
        self.screen = states.screen;
    }
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Devices>();
}
