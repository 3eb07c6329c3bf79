//! The camera, through nokhwa (V4L2 on Linux, AVFoundation, Media Foundation), as the engine's
//! [`VideoSource`]; the synthetic test pattern stands in when there is none.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use rotunda_engine::VideoSpec;
use rotunda_engine::media::{SourceState, VideoFrame, VideoSource, rgb_to_i420};

use crate::settings::DeviceChoice;

/// Locks the newest picture; a capture thread that panicked left a whole picture behind.
fn lock(latest: &Mutex<VideoFrame>) -> std::sync::MutexGuard<'_, VideoFrame> {
    latest.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cameras the system offers, as (index, name).
pub fn list() -> Vec<(u32, String)> {
    nokhwa::query(ApiBackend::Auto)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|info| match info.index() {
            CameraIndex::Index(index) => Some((*index, info.human_name())),
            CameraIndex::String(_) => None,
        })
        .collect()
}

/// Opens the camera the user chose. No source means the synthetic pattern (when the state says
/// so) or no video at all ([`SourceState::Off`]).
pub fn open(choice: &DeviceChoice, spec: VideoSpec) -> (Option<Box<dyn VideoSource>>, SourceState) {
    let index = match choice {
        DeviceChoice::None => return (None, SourceState::Off),
        DeviceChoice::Synthetic => return (None, SourceState::Synthetic),
        DeviceChoice::Default => match list().first() {
            Some((index, _)) => *index,
            None => return (None, SourceState::Fallback("no camera found".into())),
        },
        DeviceChoice::Named(name) => match name.parse::<u32>() {
            Ok(index) => index,
            Err(_) => match list().into_iter().find(|(_, n)| n.contains(name.as_str())) {
                Some((index, _)) => index,
                None => {
                    return (
                        None,
                        SourceState::Fallback(format!("no camera named {name:?}")),
                    );
                }
            },
        },
    };
    match Camera::open(index, spec) {
        Ok(camera) => {
            let name = camera.name.clone();
            (Some(Box::new(camera)), SourceState::Live(name))
        }
        Err(reason) => (None, SourceState::Fallback(reason)),
    }
}

/// An open camera. nokhwa's camera stays on a capture thread of its own (it may not move between
/// threads); the newest picture, already converted to I420 at the size sent, waits here.
pub struct Camera {
    name: String,
    width: usize,
    height: usize,
    latest: Arc<Mutex<VideoFrame>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Camera {
    /// Opens camera `index` at the format closest to `spec`.
    pub fn open(index: u32, spec: VideoSpec) -> Result<Self, String> {
        let latest = Arc::new(Mutex::new(VideoFrame::new(spec.width, spec.height)));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let thread = {
            let (latest, stop) = (latest.clone(), stop.clone());
            std::thread::Builder::new()
                .name("camera".into())
                .spawn(move || capture(index, spec, latest, stop, ready_tx))
                .map_err(|e| e.to_string())?
        };
        let name = match ready.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(name)) => name,
            Ok(Err(reason)) => return Err(reason),
            Err(_) => {
                // Let a camera that answers late go again instead of capturing for nobody.
                stop.store(true, Ordering::Relaxed);
                return Err(format!("camera {index} did not answer"));
            }
        };
        Ok(Self {
            name,
            width: spec.width,
            height: spec.height,
            latest,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        // The capture thread ends after its current picture; a camera stuck in a read must not
        // hold up the end of a call, so it is not waited for.
        self.stop.store(true, Ordering::Relaxed);
        drop(self.thread.take());
    }
}

/// The capture thread: opens the camera, then converts every picture into `latest`.
fn capture(
    index: u32,
    spec: VideoSpec,
    latest: Arc<Mutex<VideoFrame>>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<String, String>>,
) {
    let wanted = CameraFormat::new(
        Resolution::new(spec.width as u32, spec.height as u32),
        FrameFormat::MJPEG,
        spec.fps,
    );
    let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
    let opened = nokhwa::Camera::new(CameraIndex::Index(index), format)
        .map_err(|e| format!("camera {index} did not open: {e}"))
        .and_then(|mut camera| {
            camera
                .open_stream()
                .map_err(|e| format!("camera {index} did not start: {e}"))?;
            Ok(camera)
        });
    let mut camera = match opened {
        Ok(camera) => {
            let _ = ready.send(Ok(camera.info().human_name()));
            camera
        }
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let mut converted = VideoFrame::new(spec.width, spec.height);
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match camera
            .frame()
            .and_then(|buffer| buffer.decode_image::<RgbFormat>())
        {
            Ok(rgb) => {
                let (w, h) = (rgb.width() as usize, rgb.height() as usize);
                rgb_to_i420(rgb.as_raw(), w, h, &mut converted);
                lock(&latest).clone_from(&converted);
                failures = 0;
            }
            Err(error) => {
                if failures.is_multiple_of(30) {
                    tracing::warn!(%error, "camera picture lost");
                }
                failures += 1;
                if failures > 300 {
                    tracing::error!("the camera stopped delivering pictures");
                    return;
                }
            }
        }
    }
}

impl VideoSource for Camera {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn next_frame(&mut self, frame: &mut VideoFrame) {
        frame.clone_from(&lock(&self.latest));
    }
}
