//! What spatial audio costs: the mixer rendering N moving voices into stereo, 20 ms at a time, as
//! the speakers' callback runs it.
//!
//! `cargo bench --bench mixer` prints a table for 1, 8 and 30 voices.

use std::time::Instant;

use rotunda_engine::audio::spatial::{DistanceModel, Listener, SpatialMixer};

/// Samples in one 20 ms block at 48 kHz.
const BLOCK: usize = 960;
/// Blocks rendered per measurement (20 s of audio).
const BLOCKS: usize = 1000;

fn main() {
    println!("| voices | µs per 20 ms block (p50 / p95) | share of real time |");
    println!("|---:|---:|---:|");
    for voices in [1usize, 8, 30] {
        let (p50, p95) = run(voices);
        println!(
            "| {voices} | {p50:.1} / {p95:.1} | {:.2} % of one core |",
            p50 / 20_000.0 * 100.0
        );
    }
}

fn run(voices: usize) -> (f64, f64) {
    let mut mixer = SpatialMixer::new(DistanceModel::default());
    let inputs: Vec<Vec<f32>> = (0..voices)
        .map(|v| {
            (0..BLOCK)
                .map(|i| ((i * (v + 3)) as f32 * 0.05).sin() * 0.3)
                .collect()
        })
        .collect();
    let mut out = vec![0.0f32; BLOCK * 2];
    let mut times = Vec::with_capacity(BLOCKS);
    for block in 0..BLOCKS * 2 {
        // Everyone walks around the listener, who turns slowly: every parameter keeps gliding.
        let t = block as f32 * 0.02;
        let turn = t * 0.3;
        mixer.set_listener(Listener {
            position: [0.0, 1.6, 0.0],
            forward: [-turn.sin(), 0.0, -turn.cos()],
            right: [turn.cos(), 0.0, -turn.sin()],
        });
        for v in 0..voices {
            let angle = v as f32 / voices as f32 * std::f32::consts::TAU + t * 0.5;
            let r = 2.0 + v as f32 % 5.0;
            mixer.set_source(v as u32, [r * angle.sin(), 1.5, r * angle.cos()]);
        }
        let start = Instant::now();
        mixer.mix(
            inputs
                .iter()
                .enumerate()
                .map(|(v, s)| (v as u32, s.as_slice())),
            &mut out,
        );
        // The first half warms up.
        if block >= BLOCKS {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 95 / 100])
}
