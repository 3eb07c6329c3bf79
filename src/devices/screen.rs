//! The screen, through xcap (X11 and Wayland, Windows, macOS), as the engine's [`VideoSource`]
//! for a shared screen. Capturing a monitor takes milliseconds to a tenth of a second, so it
//! runs on a thread of its own at the rate shared, converting each capture to I420 at the size
//! sent; the call takes the newest picture without waiting. The thread captures only while the
//! call takes pictures (someone watches a shared screen): a window that could share its screen
//! costs nothing until it does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rotunda_engine::VideoSpec;
use rotunda_engine::media::{VideoFrame, VideoSource, rgba_to_i420};

use super::fit;

/// The thread stops capturing when the call took no picture for this long.
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// Locks the newest picture; a capture thread that panicked left a whole picture behind.
fn lock(latest: &Mutex<VideoFrame>) -> std::sync::MutexGuard<'_, VideoFrame> {
    latest.lock().unwrap_or_else(|e| e.into_inner())
}

/// A monitor being captured.
pub struct Screen {
    /// The monitor's name.
    pub name: String,
    /// What is sent: the monitor fitted into the most asked for.
    pub spec: VideoSpec,
    latest: Arc<Mutex<VideoFrame>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// When the call last took a picture, in ms since `epoch`.
    asked: Arc<AtomicU64>,
    epoch: Instant,
}

impl Screen {
    /// Starts capturing the primary monitor (else the first), sent at most at `most`.
    pub fn open(most: VideoSpec) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let latest = Arc::new(Mutex::new(VideoFrame::new(2, 2)));
        let asked = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let thread = {
            let (latest, stop, asked) = (latest.clone(), stop.clone(), asked.clone());
            std::thread::Builder::new()
                .name("screen".into())
                .spawn(move || {
                    capture(most, latest, stop, ready_tx, |now: Instant| {
                        let last = Duration::from_millis(asked.load(Ordering::Relaxed));
                        now.saturating_duration_since(epoch) < last + IDLE_AFTER
                    })
                })
                .map_err(|e| e.to_string())?
        };
        let (name, spec) = match ready.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(found)) => found,
            Ok(Err(reason)) => return Err(reason),
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                return Err("the screen did not answer".into());
            }
        };
        Ok(Self {
            name,
            spec,
            latest,
            stop,
            thread: Some(thread),
            asked,
            epoch,
        })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // The thread ends after its current capture; it is not waited for.
        self.stop.store(true, Ordering::Relaxed);
        drop(self.thread.take());
    }
}

impl VideoSource for Screen {
    fn dimensions(&self) -> (usize, usize) {
        (self.spec.width, self.spec.height)
    }

    fn next_frame(&mut self, frame: &mut VideoFrame) {
        // At least 1: the first picture is asked for at once.
        let now = (self.epoch.elapsed().as_millis() as u64).max(1);
        self.asked.store(now, Ordering::Relaxed);
        let latest = lock(&self.latest);
        if (latest.width, latest.height) == (frame.width, frame.height) {
            frame.y.copy_from_slice(&latest.y);
            frame.u.copy_from_slice(&latest.u);
            frame.v.copy_from_slice(&latest.v);
        }
    }
}

/// The capture thread: finds the monitor, says what it found, then captures at the rate sent
/// while `wanted` (pictures are being taken) until told to stop.
fn capture(
    most: VideoSpec,
    latest: Arc<Mutex<VideoFrame>>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<(String, VideoSpec), String>>,
    wanted: impl Fn(Instant) -> bool,
) {
    let found = xcap::Monitor::all()
        .map_err(|e| format!("no screen to capture: {e}"))
        .and_then(|monitors| {
            let primary = monitors
                .iter()
                .position(|m| m.is_primary().unwrap_or(false))
                .unwrap_or(0);
            monitors
                .into_iter()
                .nth(primary)
                .ok_or_else(|| "no screen to capture".to_string())
        })
        .and_then(|monitor| {
            let size = monitor
                .width()
                .and_then(|w| monitor.height().map(|h| (w, h)))
                .map_err(|e| format!("the screen's size is unknown: {e}"))?;
            Ok((monitor, size))
        });
    let (monitor, (width, height)) = match found {
        Ok(found) => found,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    let spec = fit(width, height, most);
    let name = monitor.name().unwrap_or_else(|_| "screen".into());
    *lock(&latest) = VideoFrame::new(spec.width, spec.height);
    let mut picture = VideoFrame::new(spec.width, spec.height);
    let interval = Duration::from_secs_f64(1.0 / f64::from(spec.fps.max(1)));
    let mut failing = false;
    let _ = ready.send(Ok((name.clone(), spec)));
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let capture = if wanted(Instant::now()) {
            Some(monitor.capture_image())
        } else {
            None
        };
        match capture {
            None => {}
            Some(Ok(image)) => {
                failing = false;
                let (w, h) = (image.width() as usize, image.height() as usize);
                rgba_to_i420(image.as_raw(), w, h, &mut picture);
                std::mem::swap(&mut *lock(&latest), &mut picture);
            }
            Some(Err(error)) => {
                if !failing {
                    tracing::warn!(%error, "the screen could not be captured; showing the last picture");
                }
                failing = true;
            }
        }
        // Paced at the rate sent; a capture slower than that only lowers the rate.
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
