//! What the client's CPU spends per rendered frame on video panels: decoding every panel's
//! stream (the engine's openh264 decoder, run inline here), storing the picture in its mailbox,
//! and copying it into the panel's texture bytes (the YUV → RGB conversion runs in the panel's
//! shader, on the GPU).
//!
//! `cargo bench --bench panels` prints a table for 1, 9 and 25 panels of 640x480@30.

use std::time::{Duration, Instant};

use rotunda::room::panel::{pack_planes, planes_image};
use rotunda_engine::VideoSpec;
use rotunda_engine::codec::native::NativeCodecs;
use rotunda_engine::codec::{Codecs, EncodedVideo, VideoDecoder, VideoEncoderConfig};
use rotunda_engine::mailbox::Pictures;
use rotunda_engine::media::pattern::TestPattern;
use rotunda_engine::media::{VideoFrame, VideoSource};
use rotunda_proto::ParticipantId;

/// Frames in the encoded clip (3 s at 30 fps, one keyframe).
const CLIP: usize = 90;

fn main() {
    let spec = VideoSpec::default();
    let clip = encode_clip(spec);
    let bytes: usize = clip.iter().map(|chunk| chunk.data.len()).sum();
    println!(
        "clip: {CLIP} frames of {}x{}@{}, {:.0} kb/s",
        spec.width,
        spec.height,
        spec.fps,
        bytes as f64 * 8.0 / 1000.0 / (CLIP as f64 / f64::from(spec.fps))
    );
    println!();
    println!(
        "| panels | decode + mailbox copy, ms/frame | texture copy, ms/frame | total ms/frame (p50 / p95) | share of a 33 ms frame |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for panels in [1usize, 9, 25] {
        let row = run(&clip, panels, spec);
        println!(
            "| {panels} | {:.2} | {:.2} | {:.2} / {:.2} | {:.0} % of one core |",
            row.decode_ms,
            row.copy_ms,
            row.p50_ms,
            row.p95_ms,
            row.p50_ms / (1000.0 / f64::from(spec.fps)) * 100.0
        );
    }
}

fn encode_clip(spec: VideoSpec) -> Vec<EncodedVideo> {
    let mut encoder = NativeCodecs::inline()
        .video_encoder(VideoEncoderConfig {
            width: spec.width,
            height: spec.height,
            bitrate: spec.bitrate(),
            fps: spec.fps,
            screen: false,
        })
        .expect("encoder");
    let mut pattern = TestPattern::new(7, spec.width, spec.height);
    let mut frame = VideoFrame::new(spec.width, spec.height);
    (0..CLIP)
        .map(|n| {
            pattern.next_frame(&mut frame);
            encoder.encode(&frame, n as u64, n == 0).expect("encodes");
            encoder.poll_output().expect("output").expect("encoded")
        })
        .collect()
}

struct Row {
    decode_ms: f64,
    copy_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
}

/// Plays the clip on `panels` panels, twice over, one rendered frame per clip frame.
fn run(clip: &[EncodedVideo], panels: usize, spec: VideoSpec) -> Row {
    let pictures = Pictures::default();
    let mut decoders: Vec<Box<dyn VideoDecoder>> = (0..panels)
        .map(|_| NativeCodecs::inline().video_decoder().expect("decoder"))
        .collect();
    let mut textures: Vec<Vec<u8>> = (0..panels)
        .map(|_| {
            planes_image(spec.width, spec.height)
                .data
                .expect("image bytes")
        })
        .collect();
    let mut shown = vec![0u64; panels];
    let (mut decode, mut copy) = (Duration::ZERO, Duration::ZERO);
    let mut frames = Vec::new();
    for round in 0..2 {
        for chunk in clip {
            let start = Instant::now();
            for (i, decoder) in decoders.iter_mut().enumerate() {
                decoder.decode(chunk.clone()).expect("decodes");
                if let Some(picture) = decoder.poll_output() {
                    let picture = picture.expect("a picture");
                    pictures.store(ParticipantId(i as u32), picture.frame);
                }
            }
            let decoded = Instant::now();
            for (i, texture) in textures.iter_mut().enumerate() {
                if let Some((serial, packed)) =
                    pictures.read_newer(ParticipantId(i as u32), shown[i], |frame| {
                        pack_planes(frame, texture)
                    })
                {
                    assert!(packed);
                    shown[i] = serial;
                }
            }
            let done = Instant::now();
            // The first round warms up caches and allocations.
            if round == 1 {
                decode += decoded - start;
                copy += done - decoded;
                frames.push((done - start).as_secs_f64() * 1000.0);
            }
        }
    }
    frames.sort_by(f64::total_cmp);
    let n = frames.len() as f64;
    Row {
        decode_ms: decode.as_secs_f64() * 1000.0 / n,
        copy_ms: copy.as_secs_f64() * 1000.0 / n,
        p50_ms: frames[frames.len() / 2],
        p95_ms: frames[(frames.len() * 95 / 100).min(frames.len() - 1)],
    }
}
