//! The camera's side of a call: one capture, encoded as independent simulcast layers (one
//! encoder each, as openh264's safe API and WebCodecs both make one picture size per encoder),
//! each starting its own groups with keyframes and numbering its own frames.
//!
//! The relay says which layers anyone takes ([`Camera::set_wanted`]); a layer nobody takes is
//! not encoded (nothing is, until someone subscribes). A layer someone starts taking is encoded at once (from a keyframe); one nobody
//! takes any more goes on for [`UNWANTED_GRACE`] (a viewer stepping back and forth does not
//! restart it each time) and then stops, its encoder freed.
//!
//! A shared screen is the same machinery with another source ([`Camera::screen`]): its encoders
//! use the screen-content tools and give each picture the bits a camera's would get at
//! [`SCREEN_BITS_FPS`], as text wants sharp pictures more than many of them.

use std::time::Duration;

use rotunda_proto::LayerInfo;
use web_time::Instant;

use super::config::VideoSpec;
use crate::codec::{Codecs, EncodedVideo, VideoEncoder, VideoEncoderConfig};
use crate::media::{VideoFrame, VideoSource, scale_i420};

/// A keyframe at least this often, so a receiver that lost one is never stuck long.
const KEYFRAME_EVERY: Duration = Duration::from_secs(3);
/// Pictures queued in a video encoder before capture skips one (the CPU cannot keep up).
const ENCODE_BACKLOG: usize = 2;
/// A layer nobody takes any more is encoded this long before it stops.
pub const UNWANTED_GRACE: Duration = Duration::from_secs(3);
/// The smallest layer's frame rate.
const SMALL_FPS: u32 = 15;
/// The least bitrate a layer is given (openh264 makes mush below it).
const MIN_LAYER_BITRATE: u32 = 60_000;
/// How often the capture is checked for falling behind, the share of skipped pictures that counts
/// as behind, and how many checks in a row it must be behind before the top layer steps down to
/// a smaller size (a moment of contention is not a CPU that cannot keep up).
const ADAPT_EVERY: Duration = Duration::from_secs(3);
const ADAPT_SKIPPED: f64 = 0.3;
const ADAPT_CHECKS: u32 = 2;

/// The layers a camera sending `top` publishes, smallest first: with `simulcast`, down to
/// 160x120 by halves (the smallest at 15 fps), else `top` alone.
pub fn layer_specs(top: VideoSpec, simulcast: bool) -> Vec<VideoSpec> {
    let mut specs = vec![top];
    while simulcast && specs.len() < 3 {
        let Some(smaller) = specs[0].smaller() else {
            break;
        };
        specs.insert(0, smaller);
    }
    if specs.len() > 1 {
        specs[0].fps = specs[0].fps.min(SMALL_FPS);
    }
    specs
}

/// A screen's pictures get the bits a camera's would at this rate (or their own, if higher).
pub const SCREEN_BITS_FPS: u32 = 10;

/// A layer's target bitrate (`screen`: a shared screen's layer).
pub fn layer_bitrate(spec: VideoSpec, screen: bool) -> u32 {
    let spec = if screen {
        VideoSpec {
            fps: spec.fps.max(SCREEN_BITS_FPS),
            ..spec
        }
    } else {
        spec
    };
    spec.bitrate().max(MIN_LAYER_BITRATE)
}

/// One layer: its encoder and what it has sent.
pub struct Layer {
    /// Its picture size and rate.
    pub spec: VideoSpec,
    encoder: Option<Box<dyn VideoEncoder>>,
    encoder_failed: Option<Instant>,
    scaled: VideoFrame,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    /// The next frame's number (a frame not sent still takes its number).
    pub sequence: u32,
    wanted: bool,
    unwanted_since: Option<Instant>,
    /// Frames it encoded.
    pub frames: u64,
}

/// The camera: its source, its layers and their pacing.
pub struct Camera {
    /// Where pictures come from.
    pub source: Box<dyn VideoSource>,
    /// The layers, smallest first.
    pub layers: Vec<Layer>,
    captured: VideoFrame,
    /// When the next picture is due.
    pub next: Instant,
    captures: u32,
    skipped: u32,
    next_adapt: Instant,
    behind: u32,
    /// Pictures captured.
    pub frames: u64,
    /// A shared screen rather than a camera.
    screen: bool,
}

impl Camera {
    /// A camera capturing from `source`, sending `top` (and smaller layers when `simulcast`).
    pub fn new(
        source: Box<dyn VideoSource>,
        top: VideoSpec,
        simulcast: bool,
        now: Instant,
    ) -> Self {
        let (w, h) = source.dimensions();
        let layers = layer_specs(top, simulcast)
            .into_iter()
            .map(|spec| Layer {
                spec,
                encoder: None,
                encoder_failed: None,
                scaled: VideoFrame::new(spec.width, spec.height),
                keyframe_wanted: true,
                last_keyframe: None,
                sequence: 0,
                // Until the relay says someone takes it (right after the track is published).
                wanted: false,
                unwanted_since: None,
                frames: 0,
            })
            .collect();
        Self {
            source,
            layers,
            captured: VideoFrame::new(w.max(2) & !1, h.max(2) & !1),
            next: now,
            captures: 0,
            skipped: 0,
            next_adapt: now + ADAPT_EVERY,
            behind: 0,
            frames: 0,
            screen: false,
        }
    }

    /// A shared screen captured from `source`, sending `top` (and smaller layers when
    /// `simulcast`).
    pub fn screen(
        source: Box<dyn VideoSource>,
        top: VideoSpec,
        simulcast: bool,
        now: Instant,
    ) -> Self {
        Self {
            screen: true,
            ..Self::new(source, top, simulcast, now)
        }
    }

    /// Whether it is a shared screen.
    pub fn is_screen(&self) -> bool {
        self.screen
    }

    /// The largest layer's size and rate.
    pub fn top(&self) -> VideoSpec {
        self.layers.last().map(|l| l.spec).unwrap_or_default()
    }

    /// The layers as the track announces them.
    pub fn layer_infos(&self) -> Vec<LayerInfo> {
        self.layers
            .iter()
            .map(|layer| LayerInfo {
                width: layer.spec.width as u16,
                height: layer.spec.height as u16,
                fps: layer.spec.fps.min(255) as u8,
                kbps: layer_bitrate(layer.spec, self.screen) / 1000,
            })
            .collect()
    }

    /// Every layer's next picture is a keyframe.
    pub fn want_keyframes(&mut self) {
        for layer in &mut self.layers {
            layer.keyframe_wanted = true;
        }
    }

    /// The relay asks for a keyframe of one layer.
    pub fn want_keyframe(&mut self, layer: u8) {
        if let Some(layer) = self.layers.get_mut(usize::from(layer)) {
            layer.keyframe_wanted = true;
        }
    }

    /// The layers anyone takes now (bit n: layer n).
    pub fn set_wanted(&mut self, bits: u8, now: Instant) {
        for (n, layer) in self.layers.iter_mut().enumerate() {
            if bits & (1 << n) != 0 {
                if !layer.wanted {
                    layer.keyframe_wanted = true;
                }
                layer.wanted = true;
                layer.unwanted_since = None;
            } else if layer.wanted && layer.unwanted_since.is_none() {
                layer.unwanted_since = Some(now);
            }
        }
    }

    /// Nothing is encoded any more (the track was withdrawn): every encoder is freed.
    pub fn stop(&mut self) {
        for layer in &mut self.layers {
            layer.wanted = false;
            layer.unwanted_since = None;
            layer.encoder = None;
        }
    }

    /// The layers being encoded (bit n: layer n).
    pub fn encoding(&self) -> u8 {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.wanted)
            .fold(0, |bits, (n, _)| bits | 1 << n)
    }

    /// Captures a picture and queues it to every layer being encoded; `capture_us` is its time.
    /// Returns the top layer's picture (the self-view) when `self_view`.
    pub fn capture(
        &mut self,
        codecs: &mut dyn Codecs,
        capture_us: u64,
        self_view: bool,
        now: Instant,
    ) -> Option<VideoFrame> {
        let (w, h) = self.source.dimensions();
        if (self.captured.width, self.captured.height) != (w & !1, h & !1) && w >= 2 && h >= 2 {
            self.captured = VideoFrame::new(w & !1, h & !1);
        }
        self.source.next_frame(&mut self.captured);
        self.frames += 1;
        let camera_fps = self.top().fps.max(1);
        let top = self.layers.len().saturating_sub(1);
        let mut view = None;
        for (n, layer) in self.layers.iter_mut().enumerate() {
            if let Some(since) = layer.unwanted_since
                && now.saturating_duration_since(since) >= UNWANTED_GRACE
            {
                layer.wanted = false;
                layer.unwanted_since = None;
                layer.encoder = None;
            }
            let for_view = self_view && n == top;
            if !layer.wanted && !for_view {
                continue;
            }
            let every = u64::from((camera_fps / layer.spec.fps.max(1)).max(1));
            if !self.frames.is_multiple_of(every) && !for_view {
                continue;
            }
            let spec = layer.spec;
            let picture =
                if (self.captured.width, self.captured.height) == (spec.width, spec.height) {
                    &self.captured
                } else {
                    if (layer.scaled.width, layer.scaled.height) != (spec.width, spec.height) {
                        layer.scaled = VideoFrame::new(spec.width, spec.height);
                    }
                    scale_i420(&self.captured, &mut layer.scaled);
                    &layer.scaled
                };
            if for_view {
                view = Some(picture.clone());
            }
            if !layer.wanted || !self.frames.is_multiple_of(every) {
                continue;
            }
            if layer.encoder.is_none() {
                if layer
                    .encoder_failed
                    .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(5))
                {
                    continue;
                }
                let config = VideoEncoderConfig {
                    width: spec.width,
                    height: spec.height,
                    bitrate: layer_bitrate(spec, self.screen),
                    fps: spec.fps,
                    screen: self.screen,
                };
                match codecs.video_encoder(config) {
                    Ok(encoder) => {
                        layer.encoder = Some(encoder);
                        layer.keyframe_wanted = true;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "no video encoder");
                        layer.encoder_failed = Some(now);
                        continue;
                    }
                }
            }
            let Some(encoder) = &mut layer.encoder else {
                continue;
            };
            let counts = n == top;
            if counts {
                self.captures += 1;
            }
            if encoder.queue_size() >= ENCODE_BACKLOG {
                if counts {
                    self.skipped += 1;
                }
                continue;
            }
            let keyframe = layer.keyframe_wanted
                || layer
                    .last_keyframe
                    .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_EVERY);
            match encoder.encode(picture, capture_us, keyframe) {
                Ok(()) => {
                    if keyframe {
                        layer.keyframe_wanted = false;
                        layer.last_keyframe = Some(now);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "video not encoded; a fresh encoder follows");
                    layer.encoder = None;
                }
            }
        }
        self.adapt(now);
        view
    }

    /// The top layer steps down a size when its encoder keeps falling behind.
    fn adapt(&mut self, now: Instant) {
        if now < self.next_adapt {
            return;
        }
        self.next_adapt = now + ADAPT_EVERY;
        let skipped = f64::from(self.skipped) / f64::from(self.captures.max(1));
        self.behind = if skipped > ADAPT_SKIPPED {
            self.behind + 1
        } else {
            0
        };
        self.captures = 0;
        self.skipped = 0;
        let below = self
            .layers
            .len()
            .checked_sub(2)
            .and_then(|n| self.layers.get(n))
            .map(|l| l.spec.width * l.spec.height);
        let Some(top) = self.layers.last_mut() else {
            return;
        };
        let spec = top.spec;
        if self.behind >= ADAPT_CHECKS
            && let Some(smaller) = spec.smaller()
            && below.is_none_or(|below| smaller.width * smaller.height > below)
        {
            self.behind = 0;
            tracing::warn!(
                "the video encoder cannot keep up with {spec} ({:.0} % of pictures skipped); \
                 sending {smaller}",
                skipped * 100.0
            );
            top.spec = smaller;
            top.encoder = None;
        }
    }

    /// The next encoded picture of any layer, with its layer; a failed encoder is dropped (a
    /// fresh one follows).
    pub fn poll_output(&mut self) -> Option<(u8, EncodedVideo)> {
        for (n, layer) in self.layers.iter_mut().enumerate() {
            let Some(encoder) = &mut layer.encoder else {
                continue;
            };
            match encoder.poll_output() {
                Some(Ok(chunk)) => return Some((n as u8, chunk)),
                Some(Err(error)) => {
                    tracing::warn!(%error, "video encoder failed; a fresh one follows");
                    layer.encoder = None;
                }
                None => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vga_camera_publishes_three_layers_smallest_first() {
        let specs = layer_specs(VideoSpec::default(), true);
        let sizes: Vec<_> = specs.iter().map(|s| (s.width, s.height, s.fps)).collect();
        assert_eq!(sizes, [(160, 120, 15), (320, 240, 30), (640, 480, 30)]);
        assert_eq!(layer_specs(VideoSpec::default(), false).len(), 1);
        let small: VideoSpec = "160x120@30".parse().expect("spec");
        assert_eq!(layer_specs(small, true), vec![small]);
        let bitrates: Vec<_> = specs.iter().map(|s| layer_bitrate(*s, false)).collect();
        assert!(bitrates.windows(2).all(|w| w[0] < w[1]), "{bitrates:?}");
    }
}
