//! Three bots reach the relay through a link conditioner (a UDP proxy on loopback that delays,
//! jitters, reorders and drops packets), as on a real network: QUIC retransmits lost video
//! stream data, the receivers reorder frames, the jitter buffer and Opus concealment cover lost
//! audio datagrams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{Joining, bot_config, reports, spawn_bots, start_relay};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

/// One-way impairment of every packet.
#[derive(Clone, Copy)]
struct Link {
    delay: Duration,
    jitter: Duration,
    loss: f64,
}

/// A seeded xorshift generator: the same run of losses and delays every time.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Forwards UDP between clients and `upstream`, impairing both directions. Each client gets an
/// upstream socket of its own, so the relay sees distinct peers.
async fn conditioner(upstream: SocketAddr, link: Link) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let addr = front.local_addr().expect("addr");
    let rng = Arc::new(std::sync::Mutex::new(Rng(0x9e37_79b9_7f4a_7c15)));
    let impair = move |rng: &std::sync::Mutex<Rng>| -> Option<Duration> {
        let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
        if rng.unit() < link.loss {
            return None;
        }
        Some(link.delay + link.jitter.mul_f64(rng.unit()))
    };
    let clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, client)) = front.recv_from(&mut buf).await {
            let back = {
                let mut clients = clients.lock().await;
                if let Some(back) = clients.get(&client) {
                    back.clone()
                } else {
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
                    back.connect(upstream).await.expect("connects");
                    clients.insert(client, back.clone());
                    // Relay → client.
                    let (front, back_rx, rng) = (front.clone(), back.clone(), rng.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = back_rx.recv(&mut buf).await {
                            if let Some(delay) = impair(&rng) {
                                let (front, packet) = (front.clone(), buf[..n].to_vec());
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    let _ = front.send_to(&packet, client).await;
                                });
                            }
                        }
                    });
                    back
                }
            };
            // Client → relay.
            if let Some(delay) = impair(&rng) {
                let packet = buf[..n].to_vec();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = back.send(&packet).await;
                });
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_decode_each_other_over_a_delayed_lossy_link() {
    let relay = start_relay(|_| {}).await;
    // 40–50 ms each way (a ~90 ms round trip), 2 % loss each way.
    let link = Link {
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        loss: 0.02,
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
        assert_eq!(report.chat_received.len(), 3, "{} chat", report.name);
        for sender in reports.iter().filter(|r| r.name != report.name) {
            let peer = &report.peers[&sender.name];
            // Against what the sender numbered while this bot was there.
            let video = peer.video_frames_decoded as f64 / peer.video_frames_expected as f64;
            let audio = (peer.audio_frames_decoded + peer.audio_frames_concealed) as f64
                / peer.audio_frames_expected as f64;
            assert!(peer.video_frames_expected * 10 >= sender.video_frames_sent * 7);
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
