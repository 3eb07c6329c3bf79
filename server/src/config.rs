use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

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
    /// The token issuer's public key (`PREFIX.pub` from `rotunda-relay keygen`): every join
    /// must then carry a token it signed, for the room joined, within its validity, and may do
    /// only what the token grants. Without it (and without `--token`) anyone may join any room.
    #[arg(
        long,
        env = "ROTUNDA_ISSUER_KEY",
        value_name = "FILE",
        conflicts_with = "token"
    )]
    pub issuer_key: Option<PathBuf>,
    /// One shared string every join must carry (a development convenience; `--issuer-key` is
    /// the real thing).
    #[arg(long, env = "ROTUNDA_TOKEN")]
    pub token: Option<String>,
    /// Most participants in one room (the protocol carries up to 256).
    #[arg(long, env = "ROTUNDA_MAX_PARTICIPANTS", default_value_t = rotunda_proto::room::DEFAULT_MAX_PARTICIPANTS)]
    pub max_participants: usize,
    /// Video frames queued per subscriber and track before it skips to the next keyframe.
    #[arg(long, env = "ROTUNDA_VIDEO_QUEUE", default_value_t = 15)]
    pub video_queue_frames: usize,
    /// Record every published track as the relay receives it under this directory (see the
    /// `record` module: Annex-B H.264 per video track and layer, length-prefixed audio). In an
    /// end-to-end encrypted room that is ciphertext.
    #[arg(long, env = "ROTUNDA_RECORD", value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Most connections open at once.
    #[arg(long, env = "ROTUNDA_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Most connections open at once from one address (a load test from one machine counts
    /// one per simulated publisher).
    #[arg(
        long,
        env = "ROTUNDA_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 512
    )]
    pub max_connections_per_address: usize,
    /// Megabytes of unfinished incoming video frames the relay holds at most, all connections
    /// together (each also has its own 8 MiB); a frame that would go over is dropped.
    #[arg(long, env = "ROTUNDA_MEDIA_BUFFER_MB", default_value_t = 256)]
    pub media_buffer_mb: usize,
    /// Directory holding the browser client's bundle (`index.html`, the JS glue and the wasm),
    /// served over HTTP on the relay's TCP port. When unset: `wasm/dist` in this checkout, where
    /// the web build puts it.
    #[arg(long, env = "ROTUNDA_WEB_ROOT", value_name = "DIR")]
    pub web_root: Option<PathBuf>,
}

impl Config {
    /// The defaults, listening on `listen` (tests pass port 0).
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            cert: None,
            key: None,
            issuer_key: None,
            token: None,
            max_participants: rotunda_proto::room::DEFAULT_MAX_PARTICIPANTS,
            video_queue_frames: 15,
            record: None,
            max_connections: 4096,
            max_connections_per_address: 512,
            media_buffer_mb: 256,
            web_root: None,
        }
    }

    /// The directory the browser client is served from: `web_root`, else `ROTUNDA_WEB_ROOT` (a
    /// relay started in-process by the client has no command line), else the default
    /// `wasm/dist`.
    pub fn resolved_web_root(&self) -> PathBuf {
        self.web_root
            .clone()
            .or_else(|| std::env::var_os("ROTUNDA_WEB_ROOT").map(PathBuf::from))
            .unwrap_or_else(default_web_root)
    }

    pub(crate) fn room_config(&self) -> RoomConfig {
        RoomConfig {
            max_participants: self
                .max_participants
                .min(rotunda_proto::limits::MAX_PARTICIPANTS),
            video_queue_frames: self.video_queue_frames.max(1),
            ..RoomConfig::default()
        }
    }
}

/// Where the web build puts the browser client's bundle: `wasm/dist` beside `server/`.
const DEFAULT_WEB_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wasm/dist");

/// [`DEFAULT_WEB_ROOT`] with its `..` resolved lexically, so logs read cleanly.
fn default_web_root() -> PathBuf {
    let mut path = PathBuf::new();
    for component in Path::new(DEFAULT_WEB_ROOT).components() {
        match component {
            Component::ParentDir if path.file_name().is_some() => {
                path.pop();
            }
            other => path.push(other),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_web_root_defaults_to_the_web_build_output() {
        let expected = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|repo| repo.join("wasm").join("dist"));
        assert_eq!(Some(default_web_root()), expected);
        let config = Config::on(SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(Some(config.resolved_web_root()), expected);
        let parsed = Config::try_parse_from(["rotunda-relay", "--web-root", "/srv/rotunda"])
            .expect("parses");
        assert_eq!(parsed.web_root, Some(PathBuf::from("/srv/rotunda")));
    }
}
