//! What sharing a screen costs the sharer's CPU: capturing the monitor (xcap), converting it to
//! I420, and encoding it with the screen's settings (openh264's screen-content mode, the bits of
//! a 10 fps picture) at 1920x1080, for a still page of text and for one scrolling 4 pixels every
//! picture, at 5 and 15 pictures a second; the top layer alone, and with the two smaller layers
//! a room of mixed views also takes.
//!
//! Needs a display to capture and ImageMagick's `display` to show the page on it, e.g.
//! `Xvfb :77 -screen 0 1920x1080x24 &` then `DISPLAY=:77 cargo bench --bench screen`.

use std::time::Instant;

use rotunda_engine::VideoSpec;
use rotunda_engine::call::layer_bitrate;
use rotunda_engine::codec::native::NativeCodecs;
use rotunda_engine::codec::{Codecs, VideoEncoder, VideoEncoderConfig};
use rotunda_engine::media::{VideoFrame, rgba_to_i420, scale_i420};

/// Pictures encoded per case (after one warm-up round).
const PICTURES: usize = 60;
/// Captures timed.
const CAPTURES: usize = 30;

fn main() {
    let (capture_ms, convert_ms) = capture_cost();
    println!(
        "capture (xcap, 1920x1080 RGBA): p50 {:.1} ms, p95 {:.1} ms",
        capture_ms.0, capture_ms.1
    );
    println!("RGBA to I420: p50 {:.1} ms", convert_ms);
    println!();
    println!(
        "| content | fps | layers | encode ms/picture (p50 / p95) | kb/s | capture + convert + encode, share of one core |"
    );
    println!("|---|---:|---|---:|---:|---:|");
    for scrolling in [false, true] {
        for fps in [5u32, 15] {
            for all_layers in [false, true] {
                let (p50, p95, kbps) = encode_cost(fps, scrolling, all_layers);
                let busy = (capture_ms.0 + convert_ms + p50) * f64::from(fps) / 10.0;
                println!(
                    "| {} | {fps} | {} | {p50:.1} / {p95:.1} | {kbps:.0} | {busy:.0} % |",
                    if scrolling {
                        "scrolling text"
                    } else {
                        "still text"
                    },
                    if all_layers {
                        "1920x1080 + 960x540 + 480x270"
                    } else {
                        "1920x1080"
                    },
                );
            }
        }
    }
}

/// The display's capture and conversion: (p50, p95) ms of a capture, p50 ms of a conversion.
/// The text page shown full-screen in ImageMagick's `display` (a bare Xvfb root cannot be
/// captured), captured until the capture works, then timed.
fn capture_cost() -> ((f64, f64), f64) {
    let dir = std::env::temp_dir().join(format!("rotunda-screen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("page.png");
    let (w, h) = (1920, 1080);
    let page = text_page(w, h);
    image::GrayImage::from_raw(w as u32, h as u32, page)
        .expect("a page")
        .save(&file)
        .expect("the page is written");
    let mut shown = std::process::Command::new("display")
        .args(["-backdrop", "-geometry", "+0+0"])
        .arg(&file)
        .spawn()
        .expect("ImageMagick's display");
    let monitors = xcap::Monitor::all().expect("a display to capture (DISPLAY)");
    let monitor = monitors.into_iter().next().expect("a monitor");
    let start = Instant::now();
    while monitor.capture_image().is_err() {
        assert!(
            start.elapsed().as_secs() < 10,
            "the display never showed the page"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let timed = capture_timed(&monitor);
    let _ = shown.kill();
    let _ = shown.wait();
    let _ = std::fs::remove_dir_all(&dir);
    timed
}

fn capture_timed(monitor: &xcap::Monitor) -> ((f64, f64), f64) {
    let mut frame = VideoFrame::new(1920, 1080);
    let (mut captures, mut converts) = (Vec::new(), Vec::new());
    for _ in 0..CAPTURES {
        let start = Instant::now();
        let image = monitor.capture_image().expect("captures");
        let captured = Instant::now();
        rgba_to_i420(
            image.as_raw(),
            image.width() as usize,
            image.height() as usize,
            &mut frame,
        );
        captures.push((captured - start).as_secs_f64() * 1000.0);
        converts.push(captured.elapsed().as_secs_f64() * 1000.0);
    }
    (
        (
            percentile(&mut captures, 0.5),
            percentile(&mut captures, 0.95),
        ),
        percentile(&mut converts, 0.5),
    )
}

/// Encoding `PICTURES` pictures of a page of text (scrolling or not) at `fps`: p50 and p95 ms
/// per picture (every layer's encoders together), and the kb/s it made.
fn encode_cost(fps: u32, scrolling: bool, all_layers: bool) -> (f64, f64, f64) {
    let top = VideoSpec {
        width: 1920,
        height: 1080,
        fps,
    };
    let mut specs = vec![top];
    if all_layers {
        specs.push(VideoSpec {
            width: 960,
            height: 540,
            fps,
        });
        specs.push(VideoSpec {
            width: 480,
            height: 270,
            fps,
        });
    }
    let mut encoders: Vec<(Box<dyn VideoEncoder>, VideoFrame)> = specs
        .iter()
        .map(|spec| {
            let encoder = NativeCodecs::inline()
                .video_encoder(VideoEncoderConfig {
                    width: spec.width,
                    height: spec.height,
                    bitrate: layer_bitrate(*spec, true),
                    fps,
                    screen: true,
                })
                .expect("encoder");
            (encoder, VideoFrame::new(spec.width, spec.height))
        })
        .collect();
    let page = text_page(1920, 1080 + 4 * 2 * PICTURES);
    let mut picture = VideoFrame::new(1920, 1080);
    let mut times = Vec::new();
    let mut bytes = 0usize;
    for round in 0..2 {
        for n in 0..PICTURES {
            let offset = if scrolling {
                4 * (round * PICTURES + n)
            } else {
                0
            };
            cut(&page, offset, &mut picture);
            let start = Instant::now();
            let mut made = 0;
            for (encoder, scaled) in &mut encoders {
                let source = if (scaled.width, scaled.height) == (1920, 1080) {
                    &picture
                } else {
                    scale_i420(&picture, scaled);
                    &*scaled
                };
                let timestamp = (n as u64) * 1_000_000 / u64::from(fps);
                encoder.encode(source, timestamp, n == 0).expect("encodes");
                while let Some(chunk) = encoder.poll_output() {
                    made += chunk.expect("encoded").data.len();
                }
            }
            if round == 1 {
                times.push(start.elapsed().as_secs_f64() * 1000.0);
                bytes += made;
            }
        }
    }
    let seconds = PICTURES as f64 / f64::from(fps);
    (
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.95),
        bytes as f64 * 8.0 / 1000.0 / seconds,
    )
}

/// A white page `width` wide and `height` tall with lines of dark "words" (strokes of glyph
/// size, as text is to an encoder), as luma.
fn text_page(width: usize, height: usize) -> Vec<u8> {
    let mut page = vec![235u8; width * height];
    let mut seed = 0x2545_f491_u32;
    let mut next = |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    for line in (40..height.saturating_sub(40)).step_by(28) {
        let mut x = 80;
        while x < width - 200 {
            let word = 20 + next(80) as usize;
            for dx in 0..word {
                // Strokes: most columns of a word carry ink, at glyph height.
                if next(4) != 0 {
                    let top = line + next(4) as usize;
                    for y in top..line + 14 {
                        page[y * width + x + dx] = 30;
                    }
                }
            }
            x += word + 10;
        }
    }
    page
}

/// The part of `page` from row `offset` into `picture` (grey chroma: text is black on white).
fn cut(page: &[u8], offset: usize, picture: &mut VideoFrame) {
    let (w, h) = (picture.width, picture.height);
    picture
        .y
        .copy_from_slice(&page[offset * w..(offset + h) * w]);
    picture.u.fill(128);
    picture.v.fill(128);
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}
