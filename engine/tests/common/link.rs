//! A link conditioner: a UDP proxy on loopback between clients and the relay that delays,
//! jitters and drops packets, and can hold the relay → client direction to a rate behind a
//! drop-tail queue (a home downlink's bottleneck), as `tc netem` would (this machine has none).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// One-way impairment of every packet, and the downlink's bottleneck.
#[derive(Clone, Copy, Default)]
pub struct Link {
    /// Added to every packet, each way.
    pub delay: Duration,
    /// Up to this much more, at random.
    pub jitter: Duration,
    /// Share of packets dropped, each way.
    pub loss: f64,
    /// The relay → client direction carries at most this many bits a second (`None`: no limit).
    pub downlink_bps: Option<u64>,
    /// Its queue holds at most this much time's worth of packets; more are dropped.
    pub queue: Duration,
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

/// The bottleneck of one client's downlink: when its queue drains.
struct Bottleneck {
    free_at: Instant,
}

/// Forwards UDP between clients and `upstream`, impairing both directions. Each client gets an
/// upstream socket (and a downlink bottleneck) of its own, so the relay sees distinct peers.
pub async fn conditioner(upstream: SocketAddr, link: Link) -> SocketAddr {
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
                    // Relay → client, through the bottleneck.
                    let (front, back_rx, rng) = (front.clone(), back.clone(), rng.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        let mut bottleneck = Bottleneck {
                            free_at: Instant::now(),
                        };
                        while let Ok(n) = back_rx.recv(&mut buf).await {
                            let Some(mut delay) = impair(&rng) else {
                                continue;
                            };
                            if let Some(bps) = link.downlink_bps {
                                let now = Instant::now();
                                let start = bottleneck.free_at.max(now);
                                if start.saturating_duration_since(now) > link.queue {
                                    continue; // the queue is full: dropped at its tail
                                }
                                let sending = Duration::from_secs_f64(n as f64 * 8.0 / bps as f64);
                                bottleneck.free_at = start + sending;
                                delay += bottleneck.free_at - now;
                            }
                            let (front, packet) = (front.clone(), buf[..n].to_vec());
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = front.send_to(&packet, client).await;
                            });
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
