//! What the user chose on the command line (or on the join screen): where to meet, as whom, with
//! which devices, and what a scripted run does (duration, statistics, screenshot).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bevy::prelude::Resource;

use rotunda_engine::VideoSpec;

/// Which device to use for the camera or the microphone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The system's default device, falling back to the synthetic source.
    #[default]
    Default,
    /// A device by index or name.
    Named(String),
    /// The synthetic source (test pattern or tone).
    Synthetic,
    /// Nothing: publish no track.
    None,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" | "default" => Self::Default,
            "synthetic" => Self::Synthetic,
            "none" => Self::None,
            name => Self::Named(name.to_owned()),
        })
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Named(name) => f.write_str(name),
            Self::Synthetic => f.write_str("synthetic"),
            Self::None => f.write_str("none"),
        }
    }
}

/// The client's settings.
#[derive(Resource, Debug, Clone)]
pub struct Settings {
    /// The relay's URL; `None` starts one in this process on loopback.
    pub relay: Option<String>,
    /// Where the in-process relay listens.
    pub local_relay: std::net::SocketAddr,
    /// SHA-256 of the relay's certificate, when it is not on loopback.
    pub cert_hash: Option<[u8; 32]>,
    /// Room to join.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Access token.
    pub token: Option<String>,
    /// Ask for end-to-end encryption when this join creates the room (on by default; a room
    /// without it is marked so for everyone in it).
    pub e2ee: bool,
    /// Camera.
    pub camera: DeviceChoice,
    /// Microphone.
    pub microphone: DeviceChoice,
    /// Speakers.
    pub speakers: DeviceChoice,
    /// Video sent.
    pub video: VideoSpec,
    /// Send the video in simulcast layers (each viewer gets the size it sees).
    pub simulcast: bool,
    /// Share the screen from the moment we join (else with Shift+S or the top bar).
    pub share_screen: bool,
    /// Look closely at this person once they are in the room (as clicking their panel does).
    pub focus: Option<String>,
    /// Join without showing the join screen.
    pub auto_join: bool,
    /// Leave and exit after this long in the room.
    pub duration: Option<Duration>,
    /// Write the call's statistics here at exit (the shape of `rotunda bot --stats-json`).
    pub stats_json: Option<PathBuf>,
    /// Save a screenshot here, then exit.
    pub screenshot: Option<PathBuf>,
    /// When to take the screenshot, counted from entering the room.
    pub screenshot_after: Duration,
    /// Start with spatial audio off.
    pub meeting_mode: bool,
    /// Play the room's short sounds (someone joining or leaving, a chat line).
    pub sounds: bool,
    /// Lines said in the chat once, right after joining.
    pub chat: Vec<String>,
    /// Say `chat` only once this many people (us included) are in the room.
    pub chat_with: usize,
    /// The page's canvas to draw in (a CSS selector), in the browser.
    pub canvas: Option<String>,
    /// Pixels per logical pixel, when the platform's own answer is wrong: a page zoomed out
    /// (device pixel ratio below 1, which the windowing layer rounds up to 1).
    pub scale_factor: Option<f32>,
    /// On a software renderer, the least time from one frame's start to the next: in a page a
    /// frame blocks the thread the call runs on until it is drawn, so frames must leave the
    /// call time in between. Natively (`None`) frames follow each other.
    pub software_frame_interval: Option<Duration>,
    /// In the browser: the script of the call's worker (the engine's own module).
    pub worker_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            relay: None,
            local_relay: std::net::SocketAddr::from(([127, 0, 0, 1], 4443)),
            cert_hash: None,
            room: "lobby".into(),
            name: default_name(),
            token: None,
            e2ee: true,
            camera: DeviceChoice::Default,
            microphone: DeviceChoice::Default,
            speakers: DeviceChoice::Default,
            video: VideoSpec::default(),
            simulcast: true,
            share_screen: false,
            focus: None,
            auto_join: false,
            duration: None,
            stats_json: None,
            screenshot: None,
            screenshot_after: Duration::from_secs(8),
            meeting_mode: false,
            sounds: true,
            chat: Vec::new(),
            chat_with: 0,
            canvas: None,
            scale_factor: None,
            software_frame_interval: None,
            worker_url: "./worker.js".into(),
        }
    }
}

impl Settings {
    /// The relay to connect to: the given one, or the in-process one.
    pub fn relay_url(&self) -> String {
        self.relay
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.local_relay))
    }
}

/// The user's login name, or "guest".
fn default_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|name| !name.is_empty() && name.len() <= 32)
        .unwrap_or_else(|| "guest".into())
}
