//! Four bots, one of them behind a narrow downlink (a rate-limited, drop-tail bottleneck in a
//! UDP proxy, as a home link would be): the relay's allocation gives that one the smaller layers
//! its link carries and every voice, and leaves the other three as they were.
//!
//! The figures of the benchmark run (640x480 behind 1 Mb/s) are in BENCHMARKS.md; this test runs
//! the same shape smaller (320x240 behind 600 kb/s), so it fits the test machine's two cores.
//! The benchmark sets `NARROW_KBPS`, `NARROW_VIDEO`, `NARROW_SECONDS` and `NARROW_SIMULCAST=off`
//! (one video size, for comparison) and reads the printed figures; the test's own checks stay.

use std::time::Duration;

mod common;

use common::link::{Link, conditioner};
use common::{Joining, bot_config, reports, spawn_bots, start_relay};
use rotunda_engine::VideoSpec;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_downlink_gets_smaller_layers_and_every_voice() {
    let kbps: u64 = setting("NARROW_KBPS", 600);
    let video: VideoSpec = setting("NARROW_VIDEO", "320x240@30".parse().expect("spec"));
    let seconds: u64 = setting("NARROW_SECONDS", 12);
    let simulcast = std::env::var("NARROW_SIMULCAST").map_or(true, |v| v != "off");
    let relay = start_relay(|_| {}).await;
    let link = Link {
        delay: Duration::from_millis(20),
        downlink_bps: Some(kbps * 1000),
        queue: Duration::from_millis(300),
        ..Link::default()
    };
    let proxy = conditioner(relay.addr, link).await;
    let configs = ["ada", "bea", "cy", "narrow"]
        .into_iter()
        .map(|name| {
            let mut join = relay.join("narrow", name);
            if name == "narrow" {
                join.relay = format!("https://{proxy}");
            }
            let mut config = bot_config(join, seconds);
            config.video = Some(video);
            config.simulcast = simulcast;
            config
        })
        .collect();
    let reports = reports(spawn_bots(configs)).await;
    for report in &reports {
        assert!(
            report.error.is_none(),
            "{}: {:?}",
            report.name,
            report.error
        );
        for sender in reports.iter().filter(|r| r.name != report.name) {
            let peer = &report.peers[&sender.name];
            println!(
                "{} <- {}: video {} decoded ({:.1} fps), by layer {:?}, {:.0} kb/s (p95 {:.0} ms); audio {}/{} (p95 {:.0} ms)",
                report.name,
                sender.name,
                peer.video_frames_decoded,
                peer.video_frames_decoded as f64 / report.seconds.max(1.0),
                peer.video_frames_by_layer,
                peer.video_kbps,
                peer.video_latency_ms_p95,
                peer.audio_frames_decoded,
                peer.audio_frames_expected,
                peer.audio_latency_ms_p95,
            );
            let audio = peer.audio_frames_decoded as f64 / peer.audio_frames_expected.max(1) as f64;
            assert!(
                audio >= 0.9,
                "{} decoded {audio:.2} of {}'s voice",
                report.name,
                sender.name
            );
            assert_eq!(peer.video_frames_wrong_sender, 0);
            if report.name == "narrow" {
                // Something of every picture; which panels get the smaller layer is the
                // allocator's choice (all are wanted equally), so the share is checked below.
                // (With one size, what does not fit is paused: the comparison run.)
                assert!(
                    !simulcast || peer.video_frames_decoded > 50,
                    "narrow <- {}: {} decoded of {} received, by layer {:?}; the relay's estimate {:?} kb/s; {} frames not opened, added again {} times, {} reconnections",
                    sender.name,
                    peer.video_frames_decoded,
                    peer.video_frames_received,
                    peer.video_frames_by_layer,
                    report.link_kbps,
                    report.frames_not_opened,
                    report.group_rejoins,
                    report.reconnections.len()
                );
            } else {
                // The others are untouched: the top layer, nearly every frame.
                let top = peer.video_frames_by_layer.last().copied().unwrap_or(0);
                assert!(
                    top as f64 >= 0.85 * peer.video_frames_received as f64,
                    "{} <- {}: {:?}",
                    report.name,
                    sender.name,
                    peer.video_frames_by_layer
                );
            }
        }
        println!(
            "{}: downlink {:.0} kb/s, the relay's estimate {:?} kb/s",
            report.name, report.downlink_kbps, report.link_kbps
        );
    }
    let narrow = reports.iter().find(|r| r.name == "narrow").expect("narrow");
    if simulcast {
        // The link carries at most one top layer beside two smaller ones (three top layers and
        // the voices are more than it holds): at most one picture comes mostly at its top.
        // (A sender's top layer: the highest any of its viewers received.)
        let mostly_top: Vec<&String> = narrow
            .peers
            .iter()
            .filter(|(sender, peer)| {
                let top = reports
                    .iter()
                    .filter_map(|r| r.peers.get(*sender))
                    .map(|p| p.video_frames_by_layer.len())
                    .max()
                    .unwrap_or(0);
                let layers = &peer.video_frames_by_layer;
                let at_top = if layers.len() == top {
                    layers.last().copied().unwrap_or(0)
                } else {
                    0
                };
                at_top * 2 > layers.iter().sum::<u64>()
            })
            .map(|(sender, _)| sender)
            .collect();
        assert!(
            mostly_top.len() <= 1,
            "narrow: mostly at the top {mostly_top:?}"
        );
    }
    // The relay told each what it thinks its link carries: the narrow one's least (it may
    // float above the link itself while the layers taken leave it unused).
    let estimate = narrow.link_kbps.expect("the relay's estimate");
    for other in reports.iter().filter(|r| r.name != "narrow") {
        let theirs = other.link_kbps.expect("the relay's estimate");
        assert!(
            estimate < theirs,
            "narrow {estimate}, {} {theirs}",
            other.name
        );
    }
    assert!(
        narrow.downlink_kbps < kbps as f64,
        "{}",
        narrow.downlink_kbps
    );
    relay.stop().await;
}
