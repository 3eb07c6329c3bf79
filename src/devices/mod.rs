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
use rotunda_engine::VideoSpec;
pub use rotunda_engine::media::SourceState;

/// The most a window or a page shares: its screen at up to 1920x1080, 5 pictures a second (text wants
/// sharp pictures more than many of them).
pub const SHARED_MOST: VideoSpec = VideoSpec {
    width: 1920,
    height: 1080,
    fps: 5,
};

/// The size a monitor of `width` x `height` is sent at within `most` (its aspect kept, even
/// sides, never larger than it is), at `most`'s rate.
pub fn fit(width: u32, height: u32, most: VideoSpec) -> VideoSpec {
    let scale = (most.width as f64 / f64::from(width.max(1)))
        .min(most.height as f64 / f64::from(height.max(1)))
        .min(1.0);
    let side = |n: u32| (((f64::from(n) * scale) as usize) & !1).max(64);
    VideoSpec {
        width: side(width),
        height: side(height),
        fps: most.fps,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_is_sent_at_its_size_within_the_most_asked() {
        let most: VideoSpec = "1920x1080@5".parse().expect("spec");
        let size = |spec: VideoSpec| (spec.width, spec.height, spec.fps);
        assert_eq!(size(fit(1280, 720, most)), (1280, 720, 5));
        assert_eq!(size(fit(3840, 2160, most)), (1920, 1080, 5));
        // Taller than 16:9: the height decides; odd sides become even.
        assert_eq!(size(fit(1920, 1200, most)), (1728, 1080, 5));
        assert_eq!(size(fit(1001, 701, most)), (1000, 700, 5));
    }
}
