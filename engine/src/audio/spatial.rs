//! Spatial audio mixer: places remote participants' mono voices (48 kHz `f32`)
//! around the listener's head and mixes them into interleaved stereo.
//!
//! Model: spherical head (Brown & Duda 1998, radius 8.75 cm, c = 343 m/s).
//! Interaural time difference from Woodworth's formula, head shadow per ear
//! from the Brown–Duda one-pole/one-zero filter (bilinear transform,
//! prewarped at the corner), distance gain from a Web Audio style "inverse"
//! model. All parameters glide per sample (time constant [`GLIDE_TIME`]) and
//! the delay lines are read with cubic (Catmull-Rom) fractional interpolation,
//! so moving sources, head turns and mode switches do not click.

use std::collections::HashMap;
use std::f32::consts::{FRAC_PI_2, PI};
use std::sync::Arc;

/// Sample rate of all input and output audio, in Hz.
pub const SAMPLE_RATE: f32 = 48_000.0;
/// Head radius of the spherical-head model, in metres.
pub const HEAD_RADIUS: f32 = 0.0875;
/// Speed of sound, in metres per second.
pub const SPEED_OF_SOUND: f32 = 343.0;
/// Largest interaural time difference (source at ±90°), in seconds (≈ 0.656 ms).
pub const MAX_ITD: f32 = HEAD_RADIUS / SPEED_OF_SOUND * (FRAC_PI_2 + 1.0);
/// Time constant with which rendering parameters glide to their targets, in seconds.
pub const GLIDE_TIME: f32 = 0.025;
/// Gain of every voice in meeting mode.
pub const MEETING_GAIN: f32 = 0.8;

/// Brown–Duda minimum shadow coefficient.
const ALPHA_MIN: f32 = 0.1;
/// Brown–Duda angle (from the ear axis) of maximum shadow: 150°.
const THETA_MIN: f32 = 5.0 * PI / 6.0;
/// Delay line length (samples); power of two, far above `MAX_ITD` (~31.5 samples).
const HISTORY_LEN: usize = 64;
/// Common latency of both ears (samples) so the cubic interpolator never reads ahead.
const BASE_DELAY: f32 = 1.0;
/// Largest readable delay in samples (leaves room for the interpolator's taps).
const MAX_DELAY: f32 = (HISTORY_LEN - 4) as f32;
/// Below this magnitude the soft clipper is exactly linear.
const SOFT_CLIP_KNEE: f32 = 0.8;
/// Most one-shot sounds playing at once: a burst (a crowd arriving) plays its first few, not
/// a din.
pub const MAX_ONE_SHOTS: usize = 4;

/// Listener head pose: position and orientation as unit forward and right vectors
/// (y is up, right-handed, like Bevy: forward of an unrotated camera is -Z, right is +X).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Listener {
    /// Head centre in world coordinates, metres.
    pub position: [f32; 3],
    /// Unit vector the listener faces.
    pub forward: [f32; 3],
    /// Unit vector pointing out of the listener's right ear.
    pub right: [f32; 3],
}

impl Default for Listener {
    /// At the origin, looking down -Z, right ear towards +X.
    fn default() -> Self {
        Self {
            position: [0.0; 3],
            forward: [0.0, 0.0, -1.0],
            right: [1.0, 0.0, 0.0],
        }
    }
}

/// Distance model like Web Audio's "inverse":
/// `gain = ref / (ref + rolloff * (max(d, ref) - ref))`, `d` clamped to `max_distance`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistanceModel {
    /// Distance (metres) up to which the gain is 1.
    pub reference: f32,
    /// How fast the gain falls beyond `reference`.
    pub rolloff: f32,
    /// Distance (metres) beyond which the gain stops falling.
    pub max_distance: f32,
}

impl Default for DistanceModel {
    /// Reference 1 m, rolloff 1, max distance 50 m.
    fn default() -> Self {
        Self {
            reference: 1.0,
            rolloff: 1.0,
            max_distance: 50.0,
        }
    }
}

impl DistanceModel {
    /// Gain for a source `distance` metres away (1 at or inside `reference`).
    pub fn gain(&self, distance: f32) -> f32 {
        let r = self.reference.max(f32::EPSILON);
        let d = finite_or(distance, self.max_distance);
        let d = d.min(self.max_distance).max(r);
        r / (r + self.rolloff.max(0.0) * (d - r))
    }
}

/// Target rendering parameters for one voice (what the filters glide to).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceParams {
    /// Distance gain.
    pub gain: f32,
    /// Radians, 0 = ahead, +π/2 = right, -π/2 = left, range -π..π (informational; not rendered).
    pub azimuth: f32,
    /// Delay of the left ear, seconds.
    pub delay_left: f32,
    /// Delay of the right ear, seconds.
    pub delay_right: f32,
    /// Head-shadow filter high-frequency gain α of the left ear (1 = flat).
    pub alpha_left: f32,
    /// Head-shadow filter high-frequency gain α of the right ear (1 = flat).
    pub alpha_right: f32,
}

impl VoiceParams {
    /// Parameters for a source at world position `source` heard by `listener`.
    /// A source at the listener's position (or straight above) is treated as ahead.
    pub fn at(listener: &Listener, source: [f32; 3], model: &DistanceModel) -> Self {
        let d = sub(source, listener.position);
        let dist = dot(d, d).sqrt();
        let fwd = normalized_or(listener.forward, [0.0, 0.0, -1.0]);
        let right = normalized_or(listener.right, [1.0, 0.0, 0.0]);
        // Direction cosines with the right-ear axis (x) and the facing direction (z).
        let (x, z) = if dist > 1e-6 {
            (dot(d, right) / dist, dot(d, fwd) / dist)
        } else {
            (0.0, 1.0)
        };
        let (x, z) = (finite_or(x, 0.0).clamp(-1.0, 1.0), finite_or(z, 1.0));
        // `+ 0.0` turns -0.0 into +0.0, so straight above/below gives atan2(0, 0) = 0 (ahead).
        let azimuth = (x + 0.0).atan2(z + 0.0);
        // Lateral angle in [0, π/2]: front/back folded, elevation reduces it.
        let lateral = x.abs().asin();
        let itd = HEAD_RADIUS / SPEED_OF_SOUND * (lateral + lateral.sin());
        let (delay_left, delay_right) = if x >= 0.0 { (itd, 0.0) } else { (0.0, itd) };
        Self {
            gain: model.gain(dist),
            azimuth,
            delay_left,
            delay_right,
            alpha_left: shadow_alpha((-x).acos()),
            alpha_right: shadow_alpha(x.acos()),
        }
    }

    /// Meeting-mode parameters: no ITD, no head shadow (α = 1), just `gain`.
    pub fn centered(gain: f32) -> Self {
        Self {
            gain,
            azimuth: 0.0,
            delay_left: 0.0,
            delay_right: 0.0,
            alpha_left: 1.0,
            alpha_right: 1.0,
        }
    }

    /// Replaces non-finite fields and clamps everything to renderable ranges.
    fn sanitized(self) -> Self {
        let f = |v: f32, lo: f32, hi: f32, default: f32| finite_or(v, default).clamp(lo, hi);
        let max_delay = (MAX_DELAY - BASE_DELAY) / SAMPLE_RATE;
        Self {
            gain: f(self.gain, 0.0, f32::MAX, 0.0),
            azimuth: f(self.azimuth, -PI, PI, 0.0),
            delay_left: f(self.delay_left, 0.0, max_delay, 0.0),
            delay_right: f(self.delay_right, 0.0, max_delay, 0.0),
            alpha_left: f(self.alpha_left, 0.0, 4.0, 1.0),
            alpha_right: f(self.alpha_right, 0.0, 4.0, 1.0),
        }
    }
}

/// Brown–Duda α for an ear whose axis makes angle `theta` (radians) with the source.
fn shadow_alpha(theta: f32) -> f32 {
    (1.0 + ALPHA_MIN / 2.0) + (1.0 - ALPHA_MIN / 2.0) * (theta / THETA_MIN * PI).cos()
}

fn finite_or(v: f32, default: f32) -> f32 {
    if v.is_finite() { v } else { default }
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalized_or(v: [f32; 3], fallback: [f32; 3]) -> [f32; 3] {
    let len = dot(v, v).sqrt();
    if len.is_finite() && len > 1e-9 {
        [v[0] / len, v[1] / len, v[2] / len]
    } else {
        fallback
    }
}

/// Wraps an angle into -π..π.
fn wrap_angle(a: f32) -> f32 {
    (a + PI).rem_euclid(2.0 * PI) - PI
}

/// One-pole glide of `c` towards `target`; lands exactly once f32 resolution stalls it.
fn glide(c: &mut f32, target: f32, k: f32) {
    let next = *c + k * (target - *c);
    *c = if next == *c { target } else { next };
}

/// Smooth limiter: linear below [`SOFT_CLIP_KNEE`], tanh-shaped towards ±1 above; NaN → 0.
fn soft_clip(x: f32) -> f32 {
    if x.is_nan() {
        return 0.0;
    }
    let m = x.abs();
    if m <= SOFT_CLIP_KNEE {
        return x;
    }
    let room = 1.0 - SOFT_CLIP_KNEE;
    (SOFT_CLIP_KNEE + room * ((m - SOFT_CLIP_KNEE) / room).tanh())
        .min(1.0)
        .copysign(x)
}

/// One voice's rendering state: fractional delay line shared by both ears,
/// head-shadow filter per ear, smoothed parameters.
#[derive(Clone, Debug)]
pub struct Voice {
    target: VoiceParams,
    current: VoiceParams,
    primed: bool,
    history: [f32; HISTORY_LEN],
    write: usize,
    /// Previous filter input per ear (left, right).
    x1: [f32; 2],
    /// Previous filter output per ear (left, right).
    y1: [f32; 2],
}

impl Default for Voice {
    fn default() -> Self {
        Self::new()
    }
}

impl Voice {
    /// A silent voice, centered at gain 1. The first [`Voice::set_target`] is applied
    /// immediately (no glide from the default).
    pub fn new() -> Self {
        let centered = VoiceParams::centered(1.0);
        Self {
            target: centered,
            current: centered,
            primed: false,
            history: [0.0; HISTORY_LEN],
            write: 0,
            x1: [0.0; 2],
            y1: [0.0; 2],
        }
    }

    /// Sets the parameters the voice glides to (snaps on the very first call).
    pub fn set_target(&mut self, params: VoiceParams) {
        self.target = params.sanitized();
        if !self.primed {
            self.current = self.target;
            self.primed = true;
        }
    }

    /// Clears audio history and filter state and jumps to the target (e.g. after a gap).
    pub fn reset(&mut self) {
        self.history = [0.0; HISTORY_LEN];
        self.x1 = [0.0; 2];
        self.y1 = [0.0; 2];
        self.current = self.target;
    }

    /// Parameters currently being rendered (mid-glide).
    pub fn current(&self) -> VoiceParams {
        self.current
    }

    /// Parameters the voice is gliding to.
    pub fn target(&self) -> VoiceParams {
        self.target
    }

    /// Renders `input` (mono) and ADDS into `out` (interleaved stereo, len == 2*input.len()).
    /// If the lengths disagree, only the common number of frames is rendered.
    pub fn render_add(&mut self, input: &[f32], out: &mut [f32]) {
        let k = 1.0 - (-1.0 / (GLIDE_TIME * SAMPLE_RATE)).exp();
        // Bilinear transform prewarped at the filter corner 2c/a: t = tau * K.
        let t = 1.0 / (SPEED_OF_SOUND / (HEAD_RADIUS * SAMPLE_RATE)).tan();
        let mut frames = 0usize;
        for (&x, frame) in input.iter().zip(out.chunks_exact_mut(2)) {
            frames += 1;
            let (c, g) = (&mut self.current, &self.target);
            glide(&mut c.gain, g.gain, k);
            glide(&mut c.delay_left, g.delay_left, k);
            glide(&mut c.delay_right, g.delay_right, k);
            glide(&mut c.alpha_left, g.alpha_left, k);
            glide(&mut c.alpha_right, g.alpha_right, k);
            let p = *c;
            self.write = (self.write + 1) % HISTORY_LEN;
            self.history[self.write] = finite_or(x, 0.0);
            let ears = [(p.delay_left, p.alpha_left), (p.delay_right, p.alpha_right)];
            for (ear, (delay, alpha)) in ears.into_iter().enumerate() {
                let s = self.read(BASE_DELAY + delay * SAMPLE_RATE);
                // H(z) = [(1+αt) + (1-αt)z⁻¹] / [(1+t) + (1-t)z⁻¹]
                let x1 = self.x1[ear];
                let mut y =
                    ((s + x1) + alpha * t * (s - x1) - (1.0 - t) * self.y1[ear]) / (1.0 + t);
                if y.abs() < 1e-20 {
                    y = 0.0; // keep denormals out of the recursion
                }
                self.x1[ear] = s;
                self.y1[ear] = y;
                frame[ear] += p.gain * y;
            }
        }
        // Azimuth is informational: glide it once per block along the shorter arc.
        let kb = 1.0 - (-(frames as f32) / (GLIDE_TIME * SAMPLE_RATE)).exp();
        let az = self.current.azimuth;
        self.current.azimuth = wrap_angle(az + kb * wrap_angle(self.target.azimuth - az));
    }

    /// Reads the delay line `delay` samples back (>= 1) with Catmull-Rom interpolation.
    fn read(&self, delay: f32) -> f32 {
        let delay = finite_or(delay, BASE_DELAY).clamp(BASE_DELAY, MAX_DELAY);
        let whole = delay.floor();
        let f = delay - whole;
        let i = whole as usize;
        let at = |back: usize| self.history[(self.write + HISTORY_LEN - back) % HISTORY_LEN];
        let (xm1, x0, x1, x2) = (at(i - 1), at(i), at(i + 1), at(i + 2));
        let c1 = 0.5 * (x1 - xm1);
        let c2 = xm1 - 2.5 * x0 + 2.0 * x1 - 0.5 * x2;
        let c3 = 0.5 * (x2 - xm1) + 1.5 * (x0 - x1);
        ((c3 * f + c2) * f + c1) * f + x0
    }
}

/// Everything that decides a voice's target besides its own position.
#[derive(Clone, Debug)]
struct Scene {
    model: DistanceModel,
    listener: Listener,
    meeting: bool,
}

impl Scene {
    fn target(&self, position: Option<[f32; 3]>) -> VoiceParams {
        match (self.meeting, position) {
            (true, _) => VoiceParams::centered(MEETING_GAIN),
            (false, Some(p)) => VoiceParams::at(&self.listener, p, &self.model),
            (false, None) => VoiceParams::centered(self.model.gain(self.model.reference)),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Slot {
    voice: Voice,
    position: Option<[f32; 3]>,
    last_block: Option<u64>,
}

/// A short sound played once from a place (someone joining, leaving, a chat line).
#[derive(Clone, Debug)]
struct OneShot {
    samples: Arc<[f32]>,
    /// The next sample to play.
    next: usize,
    position: [f32; 3],
    voice: Voice,
}

/// All voices, keyed by `u32` participant id, and the one-shot sounds playing.
#[derive(Clone, Debug)]
pub struct SpatialMixer {
    scene: Scene,
    block: u64,
    slots: HashMap<u32, Slot>,
    one_shots: Vec<OneShot>,
    scratch: Vec<f32>,
}

impl SpatialMixer {
    /// An empty mixer with the default listener, spatial (non-meeting) mode.
    pub fn new(model: DistanceModel) -> Self {
        let scene = Scene {
            model,
            listener: Listener::default(),
            meeting: false,
        };
        Self {
            scene,
            block: 0,
            slots: HashMap::new(),
            one_shots: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Plays `samples` (mono, 48 kHz) once from world position `position`, placed like a
    /// voice there (or centred in meeting mode), mixed into the next blocks. Refused (false)
    /// while [`MAX_ONE_SHOTS`] play already, or when the position is not finite.
    pub fn play(&mut self, samples: Arc<[f32]>, position: [f32; 3]) -> bool {
        if self.one_shots.len() >= MAX_ONE_SHOTS || !position.iter().all(|v| v.is_finite()) {
            return false;
        }
        let mut voice = Voice::new();
        voice.set_target(self.scene.target(Some(position)));
        self.one_shots.push(OneShot {
            samples,
            next: 0,
            position,
            voice,
        });
        true
    }

    /// One-shot sounds still playing.
    pub fn one_shots(&self) -> usize {
        self.one_shots.len()
    }

    /// Updates the listener's head pose; every voice glides to its new placement.
    pub fn set_listener(&mut self, l: Listener) {
        self.scene.listener = l;
        self.retarget_all();
    }

    /// Current listener pose.
    pub fn listener(&self) -> Listener {
        self.scene.listener
    }

    /// Sets (or moves) participant `id`'s world position.
    pub fn set_source(&mut self, id: u32, position: [f32; 3]) {
        let slot = self.slots.entry(id).or_default();
        slot.position = Some(position);
        slot.voice.set_target(self.scene.target(slot.position));
    }

    /// Forgets participant `id` (position and rendering state).
    pub fn remove(&mut self, id: u32) {
        self.slots.remove(&id);
    }

    /// Meeting mode renders every voice centered at [`MEETING_GAIN`]; switching glides.
    pub fn set_meeting_mode(&mut self, on: bool) {
        self.scene.meeting = on;
        self.retarget_all();
    }

    /// Whether meeting mode is on.
    pub fn meeting_mode(&self) -> bool {
        self.scene.meeting
    }

    /// Target parameters of participant `id`, if known.
    pub fn params(&self, id: u32) -> Option<VoiceParams> {
        self.slots.get(&id).map(|s| s.voice.target())
    }

    /// Mixes one block: `voices` yields (id, mono samples); out is interleaved stereo,
    /// overwritten (zeroed first), then soft-clipped/limited to [-1,1]. Ids should be
    /// unique within a block; a voice that skipped blocks restarts from clean state.
    pub fn mix<'a>(&mut self, voices: impl IntoIterator<Item = (u32, &'a [f32])>, out: &mut [f32]) {
        out.fill(0.0);
        let block = self.block;
        for (id, samples) in voices {
            let slot = self.slots.entry(id).or_default();
            if !matches!(slot.last_block, Some(b) if b == block || b.wrapping_add(1) == block) {
                slot.voice.set_target(self.scene.target(slot.position));
                slot.voice.reset();
            }
            slot.last_block = Some(block);
            slot.voice.render_add(samples, out);
        }
        let frames = out.len() / 2;
        for shot in &mut self.one_shots {
            // Its remaining samples, then silence to the block's end (the delay line's tail).
            let rest = shot.samples.get(shot.next..).unwrap_or_default();
            let take = rest.len().min(frames);
            self.scratch.clear();
            self.scratch.extend_from_slice(&rest[..take]);
            self.scratch.resize(frames, 0.0);
            shot.voice.render_add(&self.scratch, out);
            shot.next += frames;
        }
        self.one_shots
            .retain(|shot| shot.next < shot.samples.len() + HISTORY_LEN);
        self.block = block.wrapping_add(1);
        out.iter_mut().for_each(|s| *s = soft_clip(*s));
    }

    fn retarget_all(&mut self) {
        for slot in self.slots.values_mut() {
            slot.voice.set_target(self.scene.target(slot.position));
        }
        for shot in &mut self.one_shots {
            shot.voice
                .set_target(self.scene.target(Some(shot.position)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 960;

    fn noise(n: usize, seed: u32, amp: f32) -> Vec<f32> {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / 8_388_608.0 - 1.0
        };
        (0..n).map(|_| amp * next()).collect()
    }

    fn chan(out: &[f32], ch: usize) -> Vec<f32> {
        out.iter().skip(ch).step_by(2).copied().collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    fn peak(x: &[f32]) -> f32 {
        x.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    /// No step in either channel may exceed what a clean sine of that channel's peak
    /// amplitude at `freq` can make, plus 10 %. The first block is skipped: the test
    /// tone itself starts abruptly (slope jump), which the near ear's shelf boosts.
    fn assert_no_clicks(all: &[f32], freq: f32) {
        for ch in 0..2 {
            let x = chan(&all[2 * BLOCK..], ch);
            let bound = peak(&x) * 2.0 * (PI * freq / SAMPLE_RATE).sin() * 1.1;
            let step = x.windows(2).fold(0.0f32, |m, w| m.max((w[1] - w[0]).abs()));
            println!("  ch {ch}: max step {step:.5} <= sine bound {bound:.5}");
            assert!(step <= bound, "click in channel {ch}");
        }
    }

    /// Mixes `blocks` blocks of a 0.5-amplitude sine as voice `id`; `each(block, mixer)`
    /// runs before every block. Returns all interleaved output.
    fn drive(
        m: &mut SpatialMixer,
        id: u32,
        freq: f64,
        blocks: usize,
        mut each: impl FnMut(usize, &mut SpatialMixer),
    ) -> Vec<f32> {
        let (mut out, mut all) = (vec![0.0; 2 * BLOCK], Vec::new());
        for b in 0..blocks {
            each(b, m);
            let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
            let x: Vec<f32> = (b * BLOCK..(b + 1) * BLOCK)
                .map(|i| 0.5 * (w * i as f64).sin() as f32)
                .collect();
            m.mix([(id, x.as_slice())], &mut out);
            all.extend_from_slice(&out);
        }
        all
    }

    /// (cross-correlation lag of left behind right in samples, right-left level in dB).
    fn itd_ild(source: [f32; 3]) -> (i32, f32) {
        let mut v = Voice::new();
        let p = VoiceParams::at(&Listener::default(), source, &DistanceModel::default());
        v.set_target(p);
        let mut click = vec![0.0; 256];
        click[0] = 1.0;
        let mut out = vec![0.0; 512];
        v.render_add(&click, &mut out);
        let (l, r) = (chan(&out, 0), chan(&out, 1));
        let xcorr = |lag: i32| -> f32 {
            let n = (lag.max(0)..256 + lag.min(0)).map(|n| n as usize);
            n.map(|n| l[n] * r[(n as i32 - lag) as usize]).sum()
        };
        let lag = (-64..=64).fold(0, |b, lag| if xcorr(lag) > xcorr(b) { lag } else { b });
        let onset = |x: &[f32]| x.iter().position(|v| v.abs() > 0.3 * peak(x));
        v.reset();
        let mut out = vec![0.0; 48_000];
        v.render_add(&noise(24_000, 7, 0.5), &mut out);
        let db = 20.0 * (rms(&chan(&out, 1)) / rms(&chan(&out, 0))).log10();
        let (ol, or) = (onset(&l), onset(&r));
        println!("{source:?}: lag {lag}, onset L {ol:?} R {or:?}, R-L {db:.2} dB");
        (lag, db)
    }

    #[test]
    fn lateral_sources_have_itd_and_ild() {
        let (lag, db) = itd_ild([2.0, 0.0, 0.0]);
        assert!((20..=40).contains(&lag) && db >= 3.0);
        let (lag, db) = itd_ild([-2.0, 0.0, 0.0]);
        assert!((-40..=-20).contains(&lag) && db <= -3.0);
    }

    #[test]
    fn farther_voice_is_quieter_by_model_ratio() {
        let settled_rms = |pos: [f32; 3]| {
            let mut m = SpatialMixer::new(DistanceModel::default());
            m.set_source(1, pos);
            let src = noise(BLOCK, 3, 0.5);
            let mut out = vec![0.0; 2 * BLOCK];
            (0..25).for_each(|_| m.mix([(1, src.as_slice())], &mut out));
            rms(&out)
        };
        let ratio = settled_rms([0.0, 0.0, -2.0]) / settled_rms([0.0, 0.0, -8.0]);
        let d = DistanceModel::default();
        let expected = d.gain(2.0) / d.gain(8.0);
        println!("distance 2 vs 8: rms ratio {ratio:.4}, model {expected:.4}");
        assert!((ratio / expected - 1.0).abs() < 0.1);
    }

    #[test]
    fn head_rotation_moves_voice_smoothly() {
        // Brown-Duda predicts R/L = 1.22 at 440 Hz, 1.84 at 1 kHz (source at 90°). Its far-ear
        // bright spot (α minimal at 150°, not 180°) makes R/L peak ~0.6 % before 90°: allow that.
        for (freq, min_final) in [(440.0, 1.15), (1000.0, 1.4)] {
            let mut m = SpatialMixer::new(DistanceModel::default());
            m.set_source(7, [0.0, 0.0, -2.0]);
            let all = drive(&mut m, 7, freq, 100, |b, m| {
                let (s, c) = (FRAC_PI_2 * b as f32 / 99.0).sin_cos();
                let (forward, right) = ([-s, 0.0, -c], [c, 0.0, -s]);
                m.set_listener(Listener {
                    forward,
                    right,
                    ..Listener::default()
                });
            });
            // Per block, over the 1200 samples (whole periods of both tones) ending there.
            let ratios: Vec<f32> = (2..=100)
                .map(|b| &all[2 * (b * BLOCK - 1200)..2 * b * BLOCK])
                .map(|w| rms(&chan(w, 1)) / rms(&chan(w, 0)))
                .collect();
            let drop = ratios.windows(2).fold(0.0f32, |m, w| m.max(w[0] - w[1]));
            let (first, last) = (ratios[0], ratios[ratios.len() - 1]);
            println!("{freq} Hz: R/L {first:.4} -> {last:.4}, worst drop {drop:.2e}");
            assert!((first - 1.0).abs() < 0.02 && last > min_final && drop < 5e-3);
            assert_no_clicks(&all, freq as f32);
        }
    }

    #[test]
    fn teleport_does_not_click() {
        let mut m = SpatialMixer::new(DistanceModel::default());
        m.set_source(3, [-2.0, 0.0, 0.0]);
        let all = drive(&mut m, 3, 440.0, 30, |b, m| {
            if b == 10 {
                m.set_source(3, [2.0, 0.0, 0.0]);
            }
        });
        println!("teleport left -> right:");
        assert_no_clicks(&all, 440.0);
        let tail = &all[all.len() - 2 * BLOCK..];
        assert!(rms(&chan(tail, 1)) > 1.2 * rms(&chan(tail, 0)));
    }

    #[test]
    fn meeting_mode_is_centered_and_glides() {
        let mut m = SpatialMixer::new(DistanceModel::default());
        m.set_source(5, [2.0, 0.0, 0.0]);
        let all = drive(&mut m, 5, 440.0, 60, |b, m| match b {
            10 => m.set_meeting_mode(true),
            40 => {
                assert!(m.meeting_mode());
                assert_eq!(m.params(5), Some(VoiceParams::centered(MEETING_GAIN)));
                m.set_meeting_mode(false);
            }
            _ => {}
        });
        let settled = &all[2 * 39 * BLOCK..2 * 40 * BLOCK];
        let (l, r) = (chan(settled, 0), chan(settled, 1));
        let diff = l
            .iter()
            .zip(&r)
            .fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
        println!(
            "meeting mode settled: max |L-R| {diff:e}, rms {:.4}",
            rms(&l)
        );
        assert!(diff < 1e-6 && !m.meeting_mode());
        assert_no_clicks(&all, 440.0);
    }

    #[test]
    fn degenerate_and_loud_inputs_stay_finite_and_bounded() {
        let l = Listener {
            position: [1.0, 2.0, 3.0],
            ..Listener::default()
        };
        let p = VoiceParams::at(&l, l.position, &DistanceModel::default());
        let p2 = VoiceParams::at(&l, [1.0, 9.0, 3.0], &DistanceModel::default()); // overhead
        for p in [p, p2] {
            assert!(p.azimuth == 0.0 && p.delay_left == 0.0 && p.delay_right == 0.0);
            assert!(p.alpha_left.is_finite() && p.alpha_left == p.alpha_right);
        }
        assert_eq!(p.gain, 1.0);
        let mut m = SpatialMixer::new(DistanceModel::default());
        m.set_listener(l);
        for id in 0..9 {
            m.set_source(id, [1.0 + 0.1 * id as f32, 2.0, 3.0]);
        }
        let mut inputs: Vec<Vec<f32>> = (0..10).map(|id| noise(BLOCK, id + 1, 1.0)).collect();
        inputs[0][100] = f32::NAN;
        let (mut out, mut loudest) = (vec![0.0; 2 * BLOCK], 0.0f32);
        for _ in 0..20 {
            let voices = inputs
                .iter()
                .enumerate()
                .map(|(i, x)| (i as u32, x.as_slice()));
            m.mix(voices, &mut out);
            assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
            loudest = loudest.max(peak(&out));
        }
        println!("10 loud voices: output peak {loudest:.4}");
        assert_eq!(m.params(9), Some(VoiceParams::centered(1.0)));
    }

    #[test]
    fn params_geometry() {
        let (l, d) = (Listener::default(), DistanceModel::default());
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        let at = |pos| VoiceParams::at(&l, pos, &d);
        let r = at([2.0, 0.0, 0.0]);
        assert!(close(r.azimuth, FRAC_PI_2) && r.delay_right == 0.0 && close(r.gain, 0.5));
        assert!(close(r.delay_left, MAX_ITD) && close(r.alpha_right, 2.0) && r.alpha_left < 0.3);
        let left = at([-2.0, 0.0, 0.0]);
        assert!(close(left.azimuth, -FRAC_PI_2) && left.delay_left == 0.0);
        assert!(close(left.delay_right, MAX_ITD) && left.alpha_left > left.alpha_right);
        let behind = at([0.0, 0.0, 2.0]);
        assert!(close(behind.azimuth.abs(), PI) && behind.delay_left + behind.delay_right == 0.0);
        let (back_right, front_right) = (at([1.0, 0.0, 1.0]), at([1.0, 0.0, -1.0]));
        assert!(close(back_right.azimuth, 3.0 * PI / 4.0) && close(front_right.azimuth, PI / 4.0));
        assert!(
            close(back_right.delay_left, front_right.delay_left) && back_right.delay_right == 0.0
        );
        let turned = Listener {
            forward: [1.0, 0.0, 0.0],
            right: [0.0, 0.0, 1.0],
            ..l
        };
        assert!(close(
            VoiceParams::at(&turned, [0.0, 0.0, 3.0], &d).azimuth,
            FRAC_PI_2
        ));
        assert!(close(d.gain(0.5), 1.0) && close(d.gain(3.0), 1.0 / 3.0));
        assert!(close(d.gain(1e6), d.gain(50.0)) && close(d.gain(f32::NAN), d.gain(50.0)));
        println!(
            "MAX_ITD {:.4} ms = {:.2} samples",
            MAX_ITD * 1e3,
            MAX_ITD * SAMPLE_RATE
        );
    }
}
