//! Relay benchmark: P publishers x S subscribers of realistic media over real QUIC on loopback.
//!
//! The relay runs as its own process (the `rotunda-relay` binary), so its CPU time and memory are
//! read from `/proc` apart from the load generator's. Each publisher sends 1.5 Mb/s of video (30
//! frames/s on a stream each, a 4x keyframe every 2 s) and 32 kb/s of audio (50 datagrams/s);
//! every subscriber subscribes to every publisher. Payloads are opaque bytes of the sizes real
//! media has: the relay never looks inside.
//!
//! A `+N` scenario adds N subscribers that subscribe to everything, then stop reading anything
//! (a dead or hopelessly slow participant); the table's figures are the healthy subscribers'.
//!
//! `--hoarders N` adds N hostile clients in a room of their own while the scenario runs: each
//! publishes a video track, then keeps every stream it may open (32) busy with a frame whose
//! header claims a megabyte, sends 900 KB of it and never the end; the relay must hold no more
//! than its budgets (8 MiB a connection, 256 MiB in all) and the scenario's media must not
//! suffer.
//!
//! `--hoard-bytes B` makes each hoarder send B bytes of each frame (default 900000; 0: headers
//! only). `--junk N` adds N clients in that room sending what a fuzzer makes: random bytes as
//! media streams, as media headers claiming any length, as datagrams, and as control messages
//! (the relay then closes the session; they join again). `--bots N` puts N real `rotunda bot`
//! processes (`$ROTUNDA_BOT`, else `$CARGO_TARGET_DIR/debug/rotunda`: build it first) in a room
//! of their own for the run, end-to-end encrypted, and prints what each decoded of the others.
//! `--hostile-nice N` runs the hoarders and junk clients on threads of their own at that nice
//! value (Linux: per thread), the relay and the bots at the usual priority: on one machine, it
//! stands for hostile clients elsewhere, whose CPU is not the relay's.
//!
//! `cargo bench -p rotunda-server --bench relay [-- --seconds 10 --scenario 2x8+1 --hoarders 200]`

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rotunda_proto::framing::{self, FrameDecoder};
use rotunda_proto::{
    FromRelay, MediaFrame, MediaHeader, PROTOCOL_VERSION, ParticipantId, ToRelay, TrackId,
    TrackInfo, TrackKind, TrackSource,
};
use tokio::sync::Mutex;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

const VIDEO_BPS: usize = 1_500_000;
const FPS: usize = 30;
const GOP: usize = 60;
const AUDIO_BYTES: usize = 80;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

struct RelayProcess {
    child: Child,
    url: String,
    hash: [u8; 32],
}

impl RelayProcess {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotunda-relay"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("starts rotunda-relay");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = lines.next().and_then(Result::ok).expect("url line");
        let url = url.rsplit(' ').next().expect("url").to_owned();
        let hash_line = lines.next().and_then(Result::ok).expect("hash line");
        let hex = hash_line.split_whitespace().nth(2).expect("hash");
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex, &mut hash).expect("hex");
        Self { child, url, hash }
    }

    /// (user + system CPU seconds, resident set in MiB, peak resident set in MiB)
    fn usage(&self) -> (f64, f64, f64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let ticks: f64 = fields
            .get(11)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            ticks / 100.0,
            kib("VmRSS:") / 1024.0,
            kib("VmHWM:") / 1024.0,
        )
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    decoder: FrameDecoder,
    _endpoint: Endpoint<wtransport::endpoint::endpoint_side::Client>,
}

impl Client {
    async fn join(relay: &RelayProcess, room: &str, name: &str) -> Self {
        Self::join_at(&relay.url, relay.hash, room, name)
            .await
            .expect("the relay lets it in")
    }

    /// Joins `room` at the relay at `url`; `None` if it could not.
    async fn join_at(url: &str, hash: [u8; 32], room: &str, name: &str) -> Option<Self> {
        let config = ClientConfig::builder()
            .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
            .build();
        let endpoint = Endpoint::client(config).ok()?;
        let connection = endpoint.connect(url).await.ok()?;
        let (send, recv) = connection.open_bi().await.ok()?.await.ok()?;
        let mut client = Self {
            connection,
            send,
            recv,
            decoder: FrameDecoder::new(),
            _endpoint: endpoint,
        };
        client
            .send(ToRelay::Hello {
                version: PROTOCOL_VERSION,
                agent: "bench".into(),
            })
            .await;
        client
            .send(ToRelay::Join {
                room: room.into(),
                name: name.into(),
                token: None,
                resume: None,
                // The relay forwards opaque bytes either way; no MLS here.
                e2ee: false,
            })
            .await;
        loop {
            match client.next().await {
                Some(FromRelay::Welcome { .. }) => return Some(client),
                Some(_) => {}
                None => return None,
            }
        }
    }

    async fn send(&mut self, message: ToRelay) {
        let bytes = framing::encode(&message).expect("encodes");
        self.send.write_all(&bytes).await.expect("writes");
    }

    /// The next control message; `None` once the session is over.
    async fn next(&mut self) -> Option<FromRelay> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(message) = self.decoder.poll_message().expect("decodes") {
                return Some(message);
            }
            let n = self.recv.read(&mut buf).await.ok().flatten()?;
            self.decoder.push(&buf[..n]);
        }
    }
}

#[derive(Default)]
struct Received {
    video_frames: AtomicU64,
    audio_frames: AtomicU64,
    bytes: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

async fn receive(connection: Connection, received: Arc<Received>) {
    let datagrams = {
        let (connection, received) = (connection.clone(), received.clone());
        tokio::spawn(async move {
            while let Ok(datagram) = connection.receive_datagram().await {
                received.audio_frames.fetch_add(1, Ordering::Relaxed);
                received
                    .bytes
                    .fetch_add(datagram.payload().len() as u64, Ordering::Relaxed);
            }
        })
    };
    while let Ok(mut stream) = connection.accept_uni().await {
        let received = received.clone();
        tokio::spawn(async move {
            let Ok(data) = stream.quic_stream_mut().read_to_end(4 << 20).await else {
                return;
            };
            let Ok(header) = MediaHeader::decode(&data, TrackKind::Video) else {
                return;
            };
            let latency = now_us().saturating_sub(header.capture_us);
            received.video_frames.fetch_add(1, Ordering::Relaxed);
            received
                .bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            received.latencies_us.lock().await.push(latency);
        });
    }
    datagrams.abort();
}

/// Publishes one video and one audio track.
async fn announce(client: &mut Client) {
    let video = TrackInfo {
        kind: TrackKind::Video,
        codec: "avc1.42E01F".into(),
        source: TrackSource::Camera,
        width: 1280,
        height: 720,
        layers: Vec::new(),
    };
    let audio = TrackInfo {
        kind: TrackKind::Audio,
        codec: "opus".into(),
        source: TrackSource::Microphone,
        width: 0,
        height: 0,
        layers: Vec::new(),
    };
    client
        .send(ToRelay::Publish {
            index: 0,
            info: video,
        })
        .await;
    client
        .send(ToRelay::Publish {
            index: 1,
            info: audio,
        })
        .await;
}

/// Sends media for `seconds`; returns the video and audio frames sent, and the client (kept open
/// until the frames still in flight have landed).
async fn publish(mut client: Client, seconds: f64) -> (u64, u64, Client) {
    // Keyframes are 4x a delta frame; the average over a GOP is the target bitrate.
    let per_gop = VIDEO_BPS / 8 * GOP / FPS;
    let delta = per_gop / (GOP + 3);
    let key = delta * 4;
    let video_payload = vec![0x5au8; key];
    let audio_payload = vec![0xa5u8; AUDIO_BYTES];
    let mut video_tick = tokio::time::interval(Duration::from_secs_f64(1.0 / FPS as f64));
    let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let (mut video_seq, mut audio_seq) = (0u32, 0u32);
    let mut force_key = false;
    let header = |index: u8, sequence: u32, keyframe: bool| MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index,
        },
        sequence,
        capture_us: now_us(),
        keyframe,
        layer: 0,
        level: 0,
        payload_len: 0,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = video_tick.tick() => {
                let keyframe = force_key || (video_seq as usize).is_multiple_of(GOP);
                force_key = false;
                let len = if keyframe { key } else { delta };
                let frame = MediaFrame::new(header(0, video_seq, keyframe), &video_payload[..len]);
                video_seq += 1;
                let connection = client.connection.clone();
                tokio::spawn(async move {
                    if let Ok(opening) = connection.open_uni().await
                        && let Ok(mut stream) = opening.await
                    {
                        let _ = stream.write_all(&frame.wire).await;
                        let _ = stream.finish().await;
                    }
                });
            }
            _ = audio_tick.tick() => {
                let frame = MediaFrame::new(header(1, audio_seq, true), &audio_payload);
                audio_seq += 1;
                let _ = client.connection.send_datagram(&frame.wire);
            }
            message = client.next() => match message {
                Some(FromRelay::KeyframeRequest { .. }) => force_key = true,
                Some(_) => {}
                None => break,
            },
        }
    }
    (u64::from(video_seq), u64::from(audio_seq), client)
}

struct Row {
    scenario: String,
    offered_mbps: f64,
    delivered_mbps: f64,
    cpu_s_per_gbit: f64,
    relay_cpu_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    dropped_video: u64,
    expected_video: u64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// Joins a subscriber that subscribes to every track once `want` tracks are published. Its
/// control messages are read until the subscriptions are in place (the oneshot then fires with
/// the client); a `stalled` one stops reading there and never takes any media.
async fn subscriber(
    relay: &RelayProcess,
    room: &str,
    name: &str,
    want: usize,
    received: Option<Arc<Received>>,
) -> tokio::sync::oneshot::Receiver<Option<Client>> {
    let mut client = Client::join(relay, room, name).await;
    let stalled = received.is_none();
    if let Some(received) = received {
        tokio::spawn(receive(client.connection.clone(), received));
    }
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed = 0;
        while let Some(message) = client.next().await {
            match message {
                FromRelay::TrackPublished { track, .. } => {
                    client.send(ToRelay::Subscribe { track }).await;
                    subscribed += 1;
                    if subscribed == want {
                        // The relay handles control in order: the pong means every
                        // subscription is in place.
                        client.send(ToRelay::Ping { nonce: 1 }).await;
                    }
                }
                FromRelay::Pong { .. } => break,
                _ => {}
            }
        }
        if stalled {
            let _ = ready_tx.send(Some(client));
            return;
        }
        let _ = ready_tx.send(None);
        while client.next().await.is_some() {}
    });
    ready_rx
}

/// A hostile client: see the module's documentation. Runs until `until`.
async fn hoard(url: String, hash: [u8; 32], name: String, until: Instant, bytes: usize) {
    let Some(mut client) = Client::join_at(&url, hash, "hoard", &name).await else {
        return;
    };
    client
        .send(ToRelay::Publish {
            index: 0,
            info: TrackInfo {
                kind: TrackKind::Video,
                codec: "avc1.42E01F".into(),
                source: TrackSource::Camera,
                width: 640,
                height: 480,
                layers: Vec::new(),
            },
        })
        .await;
    let header = MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index: 0,
        },
        sequence: 0,
        capture_us: 0,
        keyframe: true,
        layer: 0,
        level: 0,
        payload_len: rotunda_proto::limits::MAX_VIDEO_PAYLOAD as u32,
    }
    .encode();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let connection = client.connection.clone();
        streams.spawn(async move {
            let chunk = vec![0u8; 100_000];
            while Instant::now() < until {
                let Some(mut stream) = open_uni(&connection).await else {
                    return;
                };
                if stream.write_all(&header).await.is_err() {
                    continue;
                }
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    left -= n;
                }
                // Never the end: held until the relay stops it (its budget or its timeout).
                let left = until.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(left, stream.stopped()).await;
            }
        });
    }
    while streams.join_next().await.is_some() {}
    drop(client);
}

/// Opens a unidirectional stream; `None` once the connection refuses.
async fn open_uni(connection: &Connection) -> Option<SendStream> {
    connection.open_uni().await.ok()?.await.ok()
}

/// A small, fast, seeded generator (xorshift64*): junk needs no quality.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, most: usize) -> Vec<u8> {
        let len = 1 + self.below(most);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A client sending what a fuzzer makes, in the hoarders' room, until `until`; joins again
/// whenever the relay ends its session. Returns how many things it sent.
async fn junk(url: String, hash: [u8; 32], name: String, until: Instant, seed: u64) -> u64 {
    let mut rng = Junk(seed | 1);
    let mut sent = 0;
    while Instant::now() < until {
        let Some(mut client) = Client::join_at(&url, hash, "hoard", &name).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while Instant::now() < until {
            let ok = match rng.below(10) {
                // Random bytes as a media stream (0..=2), or a media header claiming any length
                // and then fewer or more bytes than it says, left open half the time (3..=5).
                kind @ 0..=5 => {
                    let headed = kind >= 3;
                    let mut bytes = Vec::new();
                    if headed {
                        bytes.extend(
                            MediaHeader {
                                track: TrackId {
                                    participant: ParticipantId(rng.next() as u32),
                                    index: rng.next() as u8,
                                },
                                sequence: rng.next() as u32,
                                capture_us: rng.next(),
                                keyframe: rng.next().is_multiple_of(2),
                                layer: rng.next() as u8,
                                level: rng.next() as u8,
                                payload_len: rng.next() as u32,
                            }
                            .encode(),
                        );
                    }
                    bytes.extend(rng.bytes(if headed { 3000 } else { 4000 }));
                    let finish = !headed || rng.next().is_multiple_of(2);
                    match open_uni(&client.connection).await {
                        Some(mut stream) => {
                            let _ = stream.write_all(&bytes).await;
                            if finish {
                                let _ = stream.finish().await;
                            }
                            true
                        }
                        None => false,
                    }
                }
                // Random datagrams (media headers and audio, to the relay).
                6..=8 => client.connection.send_datagram(rng.bytes(1100)).is_ok(),
                // Junk on the control stream: the relay ends the session.
                _ => {
                    let _ = client.send.write_all(&rng.bytes(300)).await;
                    false
                }
            };
            sent += 1;
            if !ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    sent
}

/// Real bots in a room of their own, end-to-end encrypted, for `seconds`; their stats files.
fn start_bots(relay: &RelayProcess, bots: usize, seconds: f64) -> Vec<(Child, std::path::PathBuf)> {
    let bin = std::env::var("ROTUNDA_BOT").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{target}/debug/rotunda")
    });
    let dir = std::env::temp_dir().join(format!("rotunda-abuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    (0..bots)
        .map(|b| {
            let stats = dir.join(format!("bot{b}.json"));
            let _ = std::fs::remove_file(&stats);
            let child = Command::new(&bin)
                .args(["bot", "--relay", &relay.url, "--cert-hash"])
                .arg(hex::encode(relay.hash))
                .args(["--room", "call", "--name", &format!("bot{b}")])
                .args([
                    "--duration",
                    &format!("{seconds}s"),
                    "--video",
                    "640x480@30",
                ])
                .arg("--stats-json")
                .arg(&stats)
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(stats.with_extension("log"))
                        .map_or_else(|_| Stdio::null(), Stdio::from),
                )
                .spawn()
                .unwrap_or_else(|e| panic!("{bin} starts (build it first): {e}"));
            (child, stats)
        })
        .collect()
}

/// Waits for the bots and prints what each decoded of every other, against what was sent
/// while it was there.
fn finish_bots(bots: Vec<(Child, std::path::PathBuf)>) {
    for (mut child, stats) in bots {
        let status = child.wait();
        let Ok(text) = std::fs::read_to_string(&stats) else {
            // What the bot said last, to tell why.
            let log = std::fs::read_to_string(stats.with_extension("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            eprintln!(
                "{}: no report ({status:?}); its log ends: {:?}",
                stats.display(),
                tail.into_iter().rev().collect::<Vec<_>>()
            );
            continue;
        };
        let Ok(report) = serde_json::from_str::<serde_json::Value>(&text) else {
            eprintln!("{}: not JSON", stats.display());
            continue;
        };
        let count = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_default();
        let mut line = format!(
            "{} (e2ee {}, error {}):",
            report["name"].as_str().unwrap_or("?"),
            report["e2ee"],
            report["error"]
        );
        if let Some(peers) = report["peers"].as_object() {
            for (other, peer) in peers {
                line.push_str(&format!(
                    " <- {other} video {}/{} ({:.1} %), audio {}/{} ({:.1} %);",
                    count(peer, "video_frames_decoded"),
                    count(peer, "video_frames_expected"),
                    100.0 * count(peer, "video_frames_decoded")
                        / count(peer, "video_frames_expected").max(1.0),
                    count(peer, "audio_frames_decoded"),
                    count(peer, "audio_frames_expected"),
                    100.0 * count(peer, "audio_frames_decoded")
                        / count(peer, "audio_frames_expected").max(1.0),
                ));
            }
        }
        eprintln!("{line}");
    }
}

/// The hostile side of a run.
#[derive(Clone, Copy)]
struct Hostile {
    hoarders: usize,
    hoard_bytes: usize,
    junk: usize,
    bots: usize,
    /// The hostile clients' threads' nice value.
    nice: i32,
}

/// A runtime for the hostile clients, its threads at nice value `nice` (0: as the rest).
fn hostile_runtime(nice: i32) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            if nice != 0 {
                // Linux: a thread's nice value is its own; `renice` sets it by thread id.
                let tid = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
                let done = tid.is_some_and(|tid| {
                    Command::new("renice")
                        .args(["-n", &nice.to_string(), "-p", &tid])
                        .stdout(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                });
                if !done {
                    eprintln!("the hostile clients keep their priority (renice failed)");
                }
            }
        })
        .build()
        .expect("hostile runtime")
}

async fn scenario(
    publishers: usize,
    subscribers: usize,
    stalled: usize,
    hostile: Hostile,
    hostile_side: tokio::runtime::Handle,
    seconds: f64,
) -> Row {
    let Hostile {
        hoarders,
        hoard_bytes,
        junk: junkers,
        bots,
        nice: _,
    } = hostile;
    let relay = RelayProcess::start();
    let room = "bench";
    let until = Instant::now() + Duration::from_secs_f64(seconds + 5.0);
    let bots = start_bots(&relay, bots, seconds + 5.0);
    let mut hoard_tasks = Vec::new();
    for h in 0..hoarders {
        hoard_tasks.push(hostile_side.spawn(hoard(
            relay.url.clone(),
            relay.hash,
            format!("hoarder{h}"),
            until,
            hoard_bytes,
        )));
    }
    let mut junk_tasks = Vec::new();
    for j in 0..junkers {
        junk_tasks.push(hostile_side.spawn(junk(
            relay.url.clone(),
            relay.hash,
            format!("junk{j}"),
            until,
            0x9e37_79b9_7f4a_7c15 ^ (j as u64 + 1),
        )));
    }
    let want = publishers * 2;
    let mut subs = Vec::new();
    for s in 0..subscribers {
        let received = Arc::new(Received::default());
        let ready = subscriber(
            &relay,
            room,
            &format!("sub{s}"),
            want,
            Some(received.clone()),
        )
        .await;
        subs.push((Some(received), ready));
    }
    for s in 0..stalled {
        let ready = subscriber(&relay, room, &format!("stalled{s}"), want, None).await;
        subs.push((None, ready));
    }
    let mut pubs = Vec::new();
    for p in 0..publishers {
        let mut client = Client::join(&relay, room, &format!("pub{p}")).await;
        announce(&mut client).await;
        pubs.push(client);
    }
    let mut receivers = Vec::new();
    let mut stalled_clients = Vec::new();
    for (received, ready) in subs {
        if let Ok(Some(client)) = ready.await {
            stalled_clients.push(client);
        }
        receivers.extend(received);
    }
    let (cpu_before, _, _) = relay.usage();
    let started = Instant::now();
    let tasks: Vec<_> = pubs
        .into_iter()
        .map(|c| tokio::spawn(publish(c, seconds)))
        .collect();
    let mut sent_video = 0;
    let mut publishers_open = Vec::new();
    for task in tasks {
        let (video, _, client) = task.await.expect("publisher");
        sent_video += video;
        publishers_open.push(client);
    }
    // Let in-flight frames land (bounded wait: frames still missing then count as dropped).
    let expected_video = sent_video * subscribers as u64;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        let got: u64 = receivers
            .iter()
            .map(|r| r.video_frames.load(Ordering::Relaxed))
            .sum();
        if got >= expected_video {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(publishers_open);
    drop(stalled_clients);
    // With bots, the run lasts as long as they stay (and the hostile clients with them).
    while !bots.is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_after, rss, peak) = relay.usage();
    for task in hoard_tasks {
        task.abort();
    }
    let mut junk_sent = 0;
    for task in junk_tasks {
        junk_sent += task.await.unwrap_or_default();
    }
    if junkers > 0 {
        eprintln!("{junkers} junk clients sent {junk_sent} junk streams, datagrams and messages");
    }
    finish_bots(bots);
    let bytes: u64 = receivers
        .iter()
        .map(|r| r.bytes.load(Ordering::Relaxed))
        .sum();
    let got_video: u64 = receivers
        .iter()
        .map(|r| r.video_frames.load(Ordering::Relaxed))
        .sum();
    let mut latencies = Vec::new();
    for r in &receivers {
        latencies.extend(r.latencies_us.lock().await.iter().copied());
    }
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let delivered_bits = bytes as f64 * 8.0;
    let cpu = cpu_after - cpu_before;
    Row {
        scenario: match (stalled, hoarders) {
            (0, 0) => format!("{publishers}x{subscribers}"),
            (_, 0) => format!("{publishers}x{subscribers} + {stalled} stalled"),
            (0, _) => format!("{publishers}x{subscribers} + {hoarders} hoarders"),
            _ => format!("{publishers}x{subscribers} + {stalled} stalled + {hoarders} hoarders"),
        } + &match (junkers, hostile.bots) {
            (0, 0) => String::new(),
            (j, b) => format!(" + {j} junk + {b} bots"),
        },
        offered_mbps: (publishers * subscribers) as f64
            * (VIDEO_BPS as f64 + AUDIO_BYTES as f64 * 8.0 * 50.0)
            / 1e6,
        delivered_mbps: delivered_bits / seconds / 1e6,
        cpu_s_per_gbit: cpu / (delivered_bits / 1e9),
        relay_cpu_pct: cpu / elapsed * 100.0,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        dropped_video: expected_video.saturating_sub(got_video),
        expected_video,
        rss_mib: rss,
        peak_rss_mib: peak,
    }
}

fn main() {
    let mut seconds = 10.0;
    let mut only: Option<String> = None;
    let mut hostile = Hostile {
        hoarders: 0,
        hoard_bytes: 900_000,
        junk: 0,
        bots: 0,
        nice: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--scenario" => only = args.next(),
            "--hoarders" => {
                hostile.hoarders = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "--hoard-bytes" => {
                hostile.hoard_bytes = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "--junk" => hostile.junk = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--bots" => hostile.bots = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--hostile-nice" => {
                hostile.nice = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            _ => {} // cargo bench passes --bench
        }
    }
    // PxS, or PxS+N for N more subscribers that stop reading once subscribed.
    let parse = |s: &str| -> (usize, usize, usize) {
        let (ps, stalled) = s.split_once('+').unwrap_or((s, "0"));
        let (p, s) = ps.split_once('x').expect("PxS[+N]");
        (
            p.parse().expect("P"),
            s.parse().expect("S"),
            stalled.parse().expect("N"),
        )
    };
    let scenarios: Vec<(usize, usize, usize)> = match only {
        Some(s) => vec![parse(&s)],
        None => ["1x1", "1x8", "4x4", "2x16", "4x12", "2x8", "2x8+1"]
            .into_iter()
            .map(parse)
            .collect(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hostile_side = hostile_runtime(hostile.nice);
    let mut rows = Vec::new();
    for (p, s, stalled) in scenarios {
        eprintln!(
            "running {p} publishers x {s} subscribers (+{stalled} stalled) for {seconds} s ..."
        );
        rows.push(runtime.block_on(scenario(
            p,
            s,
            stalled,
            hostile,
            hostile_side.handle().clone(),
            seconds,
        )));
    }
    println!(
        "| P x S | offered Mb/s | delivered Mb/s | relay CPU % | relay CPU s / Gbit | latency p50 ms | latency p99 ms | video frames dropped | relay RSS MiB (peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {} of {} | {:.1} ({:.1}) |",
            r.scenario,
            r.offered_mbps,
            r.delivered_mbps,
            r.relay_cpu_pct,
            r.cpu_s_per_gbit,
            r.p50_ms,
            r.p99_ms,
            r.dropped_video,
            r.expected_video,
            r.rss_mib,
            r.peak_rss_mib
        );
    }
}
