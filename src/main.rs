//! `rotunda`: the Rotunda client. Without a subcommand it opens the 3D room; `rotunda bot …` runs
//! a participant without a window.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rotunda::settings::{DeviceChoice, Settings};
use rotunda_engine::call::Sources;
use rotunda_engine::handle::native::{ViewFn, run_bot_until};
use rotunda_engine::load::LoadTest;
use rotunda_engine::transport::trust;
use rotunda_engine::{CallConfig, JoinOptions, VideoSpec};
use rotunda_proto::ParticipantId;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "rotunda",
    version,
    about = "Rotunda: meet in a 3D room with live video and spatial audio"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    room: RoomArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Join a room without a window: publish a synthetic test pattern and tone, decode everyone,
    /// print live statistics.
    Bot(BotArgs),
    /// Many publishers from one process, replaying pre-encoded layered clips and sound (a few
    /// speaking, the rest silent): for benchmarks and for sizing a relay.
    LoadTest(LoadTestArgs),
}

#[derive(clap::Args)]
struct LoadTestArgs {
    /// The relay's WebTransport URL.
    #[arg(long, env = "ROTUNDA_RELAY", default_value = "https://127.0.0.1:4443")]
    relay: String,
    /// SHA-256 of the relay's certificate (hex); fetched from a loopback relay when absent.
    #[arg(long, env = "ROTUNDA_CERT_HASH", value_parser = parse_hash)]
    cert_hash: Option<[u8; 32]>,
    /// Room to fill.
    #[arg(long, env = "ROTUNDA_ROOM", default_value = "lobby")]
    room: String,
    /// Access token, when the relay asks for one.
    #[arg(long, env = "ROTUNDA_TOKEN")]
    token: Option<String>,
    /// Create the room end-to-end encrypted: every publisher is then a member of its MLS group
    /// and seals its media (it costs the publishers, not the relay; off by default here).
    #[arg(long)]
    e2ee: bool,
    /// How many publishers.
    #[arg(long, default_value_t = 10)]
    publishers: usize,
    /// How many of them speak (the rest have open, silent microphones).
    #[arg(long, default_value_t = 1)]
    speakers: usize,
    /// How long they stay, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Their camera's top layer, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x480@30")]
    video: VideoSpec,
    /// Publish one video size only (no simulcast layers).
    #[arg(long)]
    no_simulcast: bool,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

/// The windowed client.
#[derive(clap::Args)]
struct RoomArgs {
    /// The relay's WebTransport URL. Without it, a relay starts in this process on
    /// --local-relay (or, when one already runs there, the client joins it).
    #[arg(long, env = "ROTUNDA_RELAY")]
    relay: Option<String>,
    /// Where the in-process relay listens when --relay is not given.
    #[arg(long, default_value = "127.0.0.1:4443")]
    local_relay: SocketAddr,
    /// SHA-256 of the relay's certificate (hex); fetched from a loopback relay when absent.
    #[arg(long, env = "ROTUNDA_CERT_HASH", value_parser = parse_hash)]
    cert_hash: Option<[u8; 32]>,
    /// Room to join (joins at once, skipping the join screen).
    #[arg(long, env = "ROTUNDA_ROOM")]
    room: Option<String>,
    /// Display name (joins at once, skipping the join screen).
    #[arg(long, env = "ROTUNDA_NAME")]
    name: Option<String>,
    /// Access token, when the relay asks for one.
    #[arg(long, env = "ROTUNDA_TOKEN")]
    token: Option<String>,
    /// Create the room without end-to-end encryption (by default media and chat are sealed
    /// with keys the people in it agree, MLS and SFrame, with a safety code to compare).
    /// Joining a room someone else created follows that room; a room without it is marked so
    /// for everyone in it.
    #[arg(long)]
    no_e2ee: bool,
    /// Camera: an index or name from the list the join screen shows, `synthetic` (test
    /// pattern) or `none`.
    #[arg(long, default_value = "default")]
    camera: DeviceChoice,
    /// Microphone: an index or name, `synthetic` (test tone) or `none`.
    #[arg(long, default_value = "default")]
    mic: DeviceChoice,
    /// Speakers: an index or name, or `none`.
    #[arg(long, default_value = "default")]
    speakers: DeviceChoice,
    /// Video to send, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x480@30")]
    video: VideoSpec,
    /// Share the screen from the moment we join (else with Shift+S or the top bar).
    #[arg(long)]
    share_screen: bool,
    /// Look closely at this person once they are in the room, as clicking their panel does;
    /// `screen`: show the first shared screen over the window, as F does (for scripted
    /// screenshots).
    #[arg(long)]
    focus: Option<String>,
    /// Leave and exit after this long in the room, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Write the call's statistics as JSON to this file at exit (as `rotunda bot`).
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Save a screenshot of the window to this PNG file, then exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// When to take the screenshot, counted from entering the room.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    screenshot_after: Duration,
    /// Say this in the chat once, after joining (repeatable).
    #[arg(long)]
    chat: Vec<String>,
    /// Say the --chat lines only once this many people (you included) are in the room (in an
    /// end-to-end encrypted room, in its group: later joiners cannot read earlier lines).
    #[arg(long, default_value_t = 0)]
    chat_with: usize,
    /// Start with spatial audio off (every voice centred).
    #[arg(long)]
    meeting_mode: bool,
    /// Start without the room's short sounds (joins, leaves, chat lines); the top bar turns
    /// them back on.
    #[arg(long)]
    no_sounds: bool,
}

#[derive(clap::Args)]
struct BotArgs {
    /// The relay's WebTransport URL.
    #[arg(long, env = "ROTUNDA_RELAY", default_value = "https://127.0.0.1:4443")]
    relay: String,
    /// SHA-256 of the relay's certificate (hex); fetched from a loopback relay when absent.
    #[arg(long, env = "ROTUNDA_CERT_HASH", value_parser = parse_hash)]
    cert_hash: Option<[u8; 32]>,
    /// Room to join.
    #[arg(long, env = "ROTUNDA_ROOM", default_value = "lobby")]
    room: String,
    /// Display name.
    #[arg(long, env = "ROTUNDA_NAME", default_value = "bot")]
    name: String,
    /// Access token, when the relay asks for one.
    #[arg(long, env = "ROTUNDA_TOKEN")]
    token: Option<String>,
    /// Create the room without end-to-end encryption (by default media and chat are sealed
    /// with keys the people in it agree, MLS and SFrame, with a safety code to compare).
    /// Joining a room someone else created follows that room; a room without it is marked so
    /// for everyone in it.
    #[arg(long)]
    no_e2ee: bool,
    /// How long to stay, e.g. 20s or 2m (Ctrl-C or SIGTERM leaves earlier, with the report).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Video to publish, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x480@30")]
    video: VideoSpec,
    /// Publish no video.
    #[arg(long)]
    no_video: bool,
    /// Publish no audio.
    #[arg(long)]
    no_audio: bool,
    /// Say this in the chat once, after joining.
    #[arg(long)]
    chat: Option<String>,
    /// Say --chat only once this many people (you included) are in the room (in an end-to-end
    /// encrypted room, in its group: later joiners cannot read earlier lines).
    #[arg(long, default_value_t = 0)]
    chat_with: usize,
    /// Write the statistics as JSON to this file at exit.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// See the room as a window this large standing in our ring place would (WIDTHxHEIGHT,
    /// e.g. 1280x720), and receive each video at the size it appears there; without it every
    /// video comes whole.
    #[arg(long, value_parser = parse_view)]
    view: Option<(u32, u32)>,
    /// With --view: every this long, the window shrinks to a quarter of its size and grows back
    /// (panels shrink and grow: the relay switches layers; the report times it).
    #[arg(long, value_parser = humantime::parse_duration, requires = "view")]
    view_cycle: Option<Duration>,
    /// Receive at most this many kb/s (the relay keeps within it).
    #[arg(long)]
    max_kbps: Option<u32>,
    /// Publish one video size only (no simulcast layers).
    #[arg(long)]
    no_simulcast: bool,
    /// Share the screen (the primary monitor; under X11 that of $DISPLAY) as a second video,
    /// shown on the room's wall.
    #[arg(long)]
    share_screen: bool,
    /// The most a shared screen is sent at, WIDTHxHEIGHT@FPS (a smaller screen at its own size).
    #[arg(long, default_value_t = rotunda::devices::SHARED_MOST, requires = "share_screen")]
    screen: VideoSpec,
}

async fn run_load_test(args: LoadTestArgs) -> anyhow::Result<()> {
    if args.publishers == 0 || args.publishers > rotunda_proto::limits::MAX_PARTICIPANTS {
        anyhow::bail!(
            "--publishers must be 1 to {}",
            rotunda_proto::limits::MAX_PARTICIPANTS
        );
    }
    let test = LoadTest {
        join: JoinOptions {
            relay: args.relay,
            cert_hash: args.cert_hash,
            room: args.room,
            name: "load".into(),
            token: args.token,
            e2ee: args.e2ee,
        },
        publishers: args.publishers,
        speakers: args.speakers.min(args.publishers),
        duration: args.duration,
        video: args.video,
        simulcast: !args.no_simulcast,
    };
    let summary = rotunda_engine::load::run(test).await;
    print!("{}", summary.summary());
    if let Some(path) = args.stats_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.completed == 0 {
        anyhow::bail!("no publisher stayed to the end");
    }
    Ok(())
}

/// Ctrl-C, or a polite request to stop (SIGTERM): the bot leaves early and still reports.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // No handler could be installed: the bot runs its full duration.
        std::future::pending::<()>().await;
    }
}

fn parse_view(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not WIDTHxHEIGHT, e.g. 1280x720");
    let (w, h) = text.split_once('x').ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(64..=7680).contains(&w) || !(64..=4320).contains(&h) {
        return Err(format!("{text:?}: from 64x64 to 7680x4320"));
    }
    Ok((w, h))
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    trust::parse_hash(text).ok_or_else(|| "expected 64 hex digits (a SHA-256)".to_owned())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bot(args)) => {
            init_logging();
            tokio::runtime::Runtime::new()?.block_on(run_bot(args))
        }
        Some(Command::LoadTest(args)) => {
            init_logging();
            tokio::runtime::Runtime::new()?.block_on(run_load_test(args))
        }
        // Bevy sets up logging itself.
        None => run_room(cli.room),
    }
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn run_room(args: RoomArgs) -> anyhow::Result<()> {
    let defaults = Settings::default();
    let auto_join = args.room.is_some()
        || args.name.is_some()
        || args.duration.is_some()
        || args.screenshot.is_some();
    let settings = Settings {
        relay: args.relay,
        local_relay: args.local_relay,
        cert_hash: args.cert_hash,
        room: args.room.unwrap_or(defaults.room),
        name: args.name.unwrap_or(defaults.name),
        token: args.token,
        e2ee: !args.no_e2ee,
        camera: args.camera,
        microphone: args.mic,
        speakers: args.speakers,
        video: args.video,
        simulcast: true,
        share_screen: args.share_screen,
        focus: args.focus,
        auto_join,
        duration: args.duration,
        stats_json: args.stats_json,
        screenshot: args.screenshot,
        screenshot_after: args.screenshot_after,
        meeting_mode: args.meeting_mode,
        sounds: !args.no_sounds,
        chat: args.chat,
        chat_with: args.chat_with,
        canvas: None,
        scale_factor: None,
        software_frame_interval: None,
        worker_url: defaults.worker_url,
    };
    let exit = rotunda::app(settings).run();
    if exit.is_error() {
        anyhow::bail!("the client ended with an error");
    }
    Ok(())
}

async fn run_bot(args: BotArgs) -> anyhow::Result<()> {
    let mut config = CallConfig::new(JoinOptions {
        relay: args.relay,
        cert_hash: args.cert_hash,
        room: args.room,
        name: args.name,
        token: args.token,
        e2ee: !args.no_e2ee,
    });
    config.duration = Some(args.duration);
    config.video = (!args.no_video).then_some(args.video);
    config.audio = !args.no_audio;
    config.chat = args.chat.into_iter().collect();
    config.chat_with = args.chat_with;
    config.max_kbps = args.max_kbps;
    config.simulcast = !args.no_simulcast;
    let mut sources = Sources::default();
    if args.share_screen {
        let screen = rotunda::devices::screen::Screen::open(args.screen)
            .map_err(|reason| anyhow::anyhow!("cannot share the screen: {reason}"))?;
        println!(
            "[{}] sharing the screen {} at {}",
            config.join.name, screen.name, screen.spec
        );
        config.screen = Some(screen.spec);
        config.share_screen = true;
        sources.screen = Some(Box::new(screen));
    }
    let cycle = args.view_cycle.filter(|c| !c.is_zero());
    let start = std::time::Instant::now();
    let view = args.view.map(|(w, h)| {
        let size = bevy::math::Vec2::new(w as f32, h as f32);
        Box::new(move |ids: &[ParticipantId], you: ParticipantId| {
            let shrunk = cycle.is_some_and(|cycle| {
                (start.elapsed().as_secs_f64() / cycle.as_secs_f64()) as u64 % 2 == 1
            });
            let size = if shrunk { size / 4.0 } else { size };
            rotunda::room::view::ring_view(ids, you, size)
        }) as ViewFn
    });
    let report = run_bot_until(config, sources, true, view, interrupted())
        .await
        .map_err(|error| anyhow::anyhow!("{}", error.explain()))?;
    print!("{}", report.summary());
    if let Some(path) = args.stats_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(error) = report.error {
        anyhow::bail!(error);
    }
    Ok(())
}
