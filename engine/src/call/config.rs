//! What a call is asked to do: where and as whom, what it publishes, how long it stays.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::JoinOptions;

/// Resolution and frame rate, written `640x480@30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSpec {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
}

impl Default for VideoSpec {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            fps: 30,
        }
    }
}

impl VideoSpec {
    /// The encoder's target: 800 kb/s at 640x480@30, scaled by pixel rate.
    pub fn bitrate(&self) -> u32 {
        let scale =
            (self.width * self.height) as f64 / (640.0 * 480.0) * f64::from(self.fps) / 30.0;
        ((800_000.0 * scale) as u32).max(100_000)
    }

    /// Half the width and height (even), for a publisher whose CPU cannot keep up; `None` below
    /// 160x120.
    pub fn smaller(&self) -> Option<Self> {
        let (width, height) = ((self.width / 2) & !1, (self.height / 2) & !1);
        (width >= 160 && height >= 120).then_some(Self {
            width,
            height,
            fps: self.fps,
        })
    }
}

impl std::fmt::Display for VideoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, self.fps)
    }
}

impl FromStr for VideoSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not WIDTHxHEIGHT@FPS, e.g. 640x480@30");
        let (size, fps) = s.split_once('@').unwrap_or((s, "30"));
        let (w, h) = size.split_once('x').ok_or_else(bad)?;
        let spec = VideoSpec {
            width: w.parse().map_err(|_| bad())?,
            height: h.parse().map_err(|_| bad())?,
            fps: fps.parse().map_err(|_| bad())?,
        };
        let ok = (64..=3840).contains(&spec.width)
            && (64..=2160).contains(&spec.height)
            && spec.width.is_multiple_of(2)
            && spec.height.is_multiple_of(2)
            && (1..=60).contains(&spec.fps);
        if !ok {
            return Err(format!(
                "{s:?}: even sizes from 64x64 to 3840x2160, 1 to 60 fps"
            ));
        }
        Ok(spec)
    }
}

/// What a call does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallConfig {
    /// Where and as whom.
    pub join: JoinOptions,
    /// How long it stays; until [`Command::Leave`](super::Command::Leave) when `None`.
    pub duration: Option<Duration>,
    /// Video to publish, if any.
    pub video: Option<VideoSpec>,
    /// Publish the video as simulcast layers (down to 160x120), so each viewer gets the size
    /// it sees; else the one size alone.
    pub simulcast: bool,
    /// A shared screen to publish as a second video track, if any (its pictures scaled to this
    /// size and rate; with `simulcast`, in layers by halves as the camera's).
    #[serde(default)]
    pub screen: Option<VideoSpec>,
    /// Share the screen from the start (else from [`Command::Screen`](super::Command::Screen)).
    #[serde(default)]
    pub share_screen: bool,
    /// The most this call wants to receive, in kb/s (the relay keeps within it).
    pub max_kbps: Option<u32>,
    /// Publish audio.
    pub audio: bool,
    /// Chat lines to send once, right after joining.
    pub chat: Vec<String>,
    /// Say `chat` only once this many people (us included) are in the call: in an end-to-end
    /// encrypted room, in its group, since a line is sealed for those in it then and is not
    /// for anyone who joins later. 0 or 1: right after joining.
    pub chat_with: usize,
    /// Start with the microphone off.
    pub microphone_off: bool,
    /// Start with the camera off.
    pub camera_off: bool,
    /// Someone looks at the call: decoded pictures (and the self-view) go to the application,
    /// voices to the mixer. A bot only counts what it decodes.
    pub presented: bool,
    /// Rejoin by itself when the connection is lost after joining.
    pub reconnect: bool,
    /// Receive the others' tracks (a load-test publisher does not).
    pub subscribe: bool,
    /// Emit the whole report once a second ([`CallEvent::Report`](super::CallEvent::Report)),
    /// as the browser logs it.
    pub live_report: bool,
}

impl CallConfig {
    /// A call joining `join`, publishing `video` and audio, staying until told to leave (or for
    /// `duration`), presented, reconnecting.
    pub fn new(join: JoinOptions) -> Self {
        Self {
            join,
            duration: None,
            video: Some(VideoSpec::default()),
            simulcast: true,
            screen: None,
            share_screen: false,
            max_kbps: None,
            audio: true,
            chat: Vec::new(),
            chat_with: 0,
            microphone_off: false,
            camera_off: false,
            presented: true,
            reconnect: true,
            subscribe: true,
            live_report: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_specs_parse_and_refuse_nonsense() {
        let spec: VideoSpec = "320x240@15".parse().expect("parses");
        assert_eq!((spec.width, spec.height, spec.fps), (320, 240, 15));
        assert_eq!(spec.to_string(), "320x240@15");
        assert_eq!("640x480".parse::<VideoSpec>().map(|s| s.fps), Ok(30));
        for bad in ["640", "641x480", "640x480@0", "x", "99999x2@30"] {
            assert!(bad.parse::<VideoSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_smaller_layer_halves_and_stops_at_160x120() {
        let spec = VideoSpec::default();
        let half = spec.smaller().expect("320x240");
        assert_eq!((half.width, half.height), (320, 240));
        assert_eq!(
            half.smaller().map(|s| (s.width, s.height)),
            Some((160, 120))
        );
        assert_eq!(half.smaller().and_then(|s| s.smaller()), None);
        assert!(half.bitrate() < spec.bitrate());
    }
}
