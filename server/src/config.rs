use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rotunda_proto::room::RoomConfig;

/// How the relay runs; every flag has an environment fallback.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rotunda-relay",
    version,
    about = "Rotunda relay: rooms and media forwarding over WebTransport"
)]
pub struct Config {
    /// Address for WebTransport (UDP) and HTTP (TCP, same port). Port 0 picks a free one.
    #[arg(long, env = "ROTUNDA_LISTEN", default_value = "127.0.0.1:4443")]
    pub listen: SocketAddr,
    /// PEM certificate chain (production). Without it a self-signed dev certificate valid for
    /// less than 14 days is generated, renewed before it expires, and its fingerprint served at
    /// `/certificate.sha256`.
    #[arg(long, env = "ROTUNDA_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for `--cert`.
    #[arg(long, env = "ROTUNDA_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Token every join must carry; none by default.
    #[arg(long, env = "ROTUNDA_TOKEN")]
    pub token: Option<String>,
    /// Most participants in one room.
    #[arg(long, env = "ROTUNDA_MAX_PARTICIPANTS", default_value_t = rotunda_proto::limits::MAX_PARTICIPANTS)]
    pub max_participants: usize,
    /// Video frames queued per subscriber and track before it skips to the next keyframe.
    #[arg(long, env = "ROTUNDA_VIDEO_QUEUE", default_value_t = 15)]
    pub video_queue_frames: usize,
}

impl Config {
    /// The defaults, listening on `listen` (tests pass port 0).
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            cert: None,
            key: None,
            token: None,
            max_participants: rotunda_proto::limits::MAX_PARTICIPANTS,
            video_queue_frames: 15,
        }
    }

    pub(crate) fn room_config(&self) -> RoomConfig {
        RoomConfig {
            max_participants: self
                .max_participants
                .min(rotunda_proto::limits::MAX_PARTICIPANTS),
            video_queue_frames: self.video_queue_frames.max(1),
            audio_queue_frames: 25,
            keyframe_request_interval: Duration::from_millis(250),
        }
    }
}
