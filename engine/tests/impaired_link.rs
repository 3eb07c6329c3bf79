//! Three bots reach the relay through a link conditioner (a UDP proxy on loopback that delays,
//! jitters, reorders and drops packets), as on a real network: QUIC retransmits lost video
//! stream data, the receivers reorder frames, the jitter buffer and Opus concealment cover lost
//! audio datagrams.

use std::time::Duration;

mod common;

use common::link::{Link, conditioner};
use common::{Joining, bot_config, reports, spawn_bots, start_relay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_decode_each_other_over_a_delayed_lossy_link() {
    let relay = start_relay(|_| {}).await;
    // 40–50 ms each way (a ~90 ms round trip), 2 % loss each way.
    let link = Link {
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        loss: 0.02,
        ..Link::default()
    };
    let proxy = conditioner(relay.addr, link).await;

    let bots = spawn_bots(
        ["ada", "bea", "cy"]
            .into_iter()
            .map(|name| {
                let mut join = relay.join("far", name);
                join.relay = format!("https://{proxy}");
                bot_config(join, 8)
            })
            .collect(),
    );
    let reports = reports(bots).await;
    for report in &reports {
        assert!(
            report.error.is_none(),
            "{}: {:?}",
            report.name,
            report.error
        );
        assert_eq!(
            report.chat_received.len(),
            3,
            "{} chat (epochs {:?}, added again {} times, {} reconnections, {} frames not opened)",
            report.name,
            report.safety_codes.len(),
            report.group_rejoins,
            report.reconnections.len(),
            report.frames_not_opened
        );
        for sender in reports.iter().filter(|r| r.name != report.name) {
            let peer = &report.peers[&sender.name];
            // Against what the sender numbered while this bot was there.
            let video = peer.video_frames_decoded as f64 / peer.video_frames_expected as f64;
            let audio = (peer.audio_frames_decoded + peer.audio_frames_concealed) as f64
                / peer.audio_frames_expected as f64;
            assert!(peer.video_frames_expected * 10 >= common::busiest_layer(sender) * 7);
            println!(
                "{} <- {}: video {}/{} (p95 {:.0} ms), audio {} decoded + {} concealed / {} (p95 {:.0} ms)",
                report.name,
                sender.name,
                peer.video_frames_decoded,
                sender.video_frames_sent,
                peer.video_latency_ms_p95,
                peer.audio_frames_decoded,
                peer.audio_frames_concealed,
                sender.audio_frames_sent,
                peer.audio_latency_ms_p95,
            );
            assert!(
                video >= 0.8,
                "{} decoded {video:.2} of {}'s video",
                report.name,
                sender.name
            );
            assert!(
                audio >= 0.9,
                "{} played {audio:.2} of {}'s audio",
                report.name,
                sender.name
            );
            assert_eq!(peer.video_frames_wrong_sender, 0);
        }
    }
    relay.stop().await;
}
