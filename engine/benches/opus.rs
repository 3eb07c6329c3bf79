//! What decoding a voice costs: 20 ms Opus packets (48 kHz mono, 32 kb/s, as the call sends
//! them) decoded by libopus (the native engine) and by opus-rs (the browser's call worker, see
//! `codec/pure_opus.rs`), one packet at a time as the call's audio tick does.
//!
//! `cargo bench -p rotunda-engine --profile dev --bench opus` prints a table; natively, so the worker's wasm
//! build runs slower than the opus-rs row by what wasm costs.

use std::time::Instant;

/// Samples in one 20 ms packet at 48 kHz.
const FRAME: usize = 960;
/// Packets per measurement (20 s of speech).
const PACKETS: usize = 1000;

fn main() {
    let packets = encode();
    let mut out = vec![0.0f32; FRAME];
    let mut libopus = opus::Decoder::new(48_000, opus::Channels::Mono).expect("a libopus decoder");
    let native = measure(&packets, |packet| {
        libopus
            .decode_float(packet, &mut out, false)
            .expect("decoded");
    });
    let mut out = vec![0.0f32; FRAME];
    let mut rust = opus_rs::OpusDecoder::new(48_000, 1).expect("an opus-rs decoder");
    let ported = measure(&packets, |packet| {
        rust.decode(packet, FRAME, &mut out).expect("decoded");
    });
    println!("| decoder | µs per 20 ms packet (p50 / p95) | share of real time |");
    println!("|---|---:|---:|");
    for (name, (p50, p95)) in [("libopus (native)", native), ("opus-rs (worker)", ported)] {
        println!(
            "| {name} | {p50:.1} / {p95:.1} | {:.2} % of one core |",
            p50 / 20_000.0 * 100.0
        );
    }
}

/// 20 s of a voice-like signal (harmonics with vibrato, syllables), encoded as the call does.
fn encode() -> Vec<Vec<u8>> {
    let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("a libopus encoder");
    encoder
        .set_bitrate(opus::Bitrate::Bits(32_000))
        .expect("a bitrate");
    let signal: Vec<f32> = (0..FRAME * PACKETS)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            let pitch = 160.0 + 30.0 * (t * 4.0).sin();
            let syllables = (t * 3.0 * std::f32::consts::TAU).sin().max(0.0);
            (1..=6)
                .map(|h| (std::f32::consts::TAU * pitch * h as f32 * t).sin() / h as f32)
                .sum::<f32>()
                * 0.2
                * syllables
        })
        .collect();
    signal
        .chunks_exact(FRAME)
        .map(|frame| encoder.encode_vec_float(frame, 1500).expect("encoded"))
        .collect()
}

/// Decodes every packet twice (the first pass warms up); the second pass's times.
fn measure(packets: &[Vec<u8>], mut decode: impl FnMut(&[u8])) -> (f64, f64) {
    let mut times = Vec::with_capacity(packets.len());
    for pass in 0..2 {
        for packet in packets {
            let start = Instant::now();
            decode(packet);
            if pass == 1 {
                times.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 95 / 100])
}
