//! What the application and the call say to each other: [`Command`]s in, [`CallEvent`]s out.

use rotunda_proto::{FromRelay, Grants, ParticipantId, ParticipantInfo, Pose};
use serde::{Deserialize, Serialize};

use super::{BotReport, PanelView, Security};
use crate::Error;
use crate::audio::Scene;

/// What the application asks of the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Say something in the chat.
    Chat(String),
    /// Turn the microphone on or off (off: nothing is sent, others see it muted).
    Microphone(bool),
    /// Turn the camera on or off.
    Camera(bool),
    /// Share the screen or stop sharing it (when the call has one to share): its track is
    /// published or withdrawn, so the others' walls show it or empty.
    Screen(bool),
    /// Where the local participant stands and looks.
    Pose(Pose),
    /// Where the listener and every voice stand, for the spatial mixer.
    Scene(Scene),
    /// Whether a participant's picture can be seen: video nobody sees is not decoded (it
    /// resumes at a keyframe when it shows again).
    Visible {
        /// Whose picture.
        id: ParticipantId,
        /// Seen (in view and large enough to matter).
        visible: bool,
    },
    /// How everyone's picture appears on screen now (every frame, or whenever it changes); the
    /// relay hears when that changes which size of a picture is needed.
    View(Vec<PanelView>),
    /// Keep a short sound (mono, 48 kHz, at most 2 s) under a name, to play with
    /// [`Command::Play`].
    Sound {
        /// Its name.
        name: String,
        /// Its samples.
        samples: Vec<f32>,
    },
    /// Play a sound loaded with [`Command::Sound`] once, from a place in the room (as a voice
    /// standing there would be heard).
    Play {
        /// Which sound.
        sound: String,
        /// From where, metres.
        at: [f32; 3],
    },
    /// Leave the room and end the call.
    Leave,
}

/// What happened in the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CallEvent {
    /// Joined: our id and who was already there.
    Joined {
        /// Our id.
        you: ParticipantId,
        /// Our name in the room (an access token may have chosen it).
        name: String,
        /// What we may do: a participant without the publish grant sends nothing, one without
        /// the subscribe grant receives nothing, one without the chat grant says nothing.
        grants: Grants,
        /// Everyone else present.
        roster: Vec<ParticipantInfo>,
    },
    /// The connection was lost; the call is trying to rejoin (the room stays on screen).
    Reconnecting {
        /// Tries so far.
        attempt: u32,
        /// What went wrong (the loss, or the last try).
        reason: Error,
    },
    /// Back in the room after a loss: our id (the same when the relay kept our place) and
    /// everyone present now.
    Rejoined {
        /// Our id.
        you: ParticipantId,
        /// Everyone else present.
        roster: Vec<ParticipantInfo>,
    },
    /// A message from the relay (joins, leaves, mutes, chat, errors; poses are polled apart).
    Relay(FromRelay),
    /// Live statistics, once a second.
    Stats(LiveStats),
    /// The whole report so far, once a second (when the configuration asks for it).
    Report(Box<BotReport>),
    /// How loud every voice is (RMS, 0..1), several times a second.
    Levels(Vec<(ParticipantId, f32)>),
    /// The call ended; with the reason when it was not by our choice.
    Ended {
        /// What the call saw.
        report: Box<BotReport>,
        /// Why it ended early.
        error: Option<Error>,
    },
    /// The call could not start.
    Failed(Error),
    /// End-to-end encryption changed: the room's mode, the group's epoch, its safety code.
    Security(Security),
}

/// Live statistics of the call, for the overlay and the status line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStats {
    /// Seconds in the call.
    pub seconds: f64,
    /// Round-trip time to the relay.
    pub rtt_ms: f64,
    /// Bitrate sent, video and audio, in kb/s.
    pub kbps_out: f64,
    /// Bitrate received, in kb/s.
    pub kbps_in: f64,
    /// The relay's estimate of what our downlink carries, in kb/s (it sends within it).
    #[serde(default)]
    pub link_kbps: Option<u32>,
    /// What the camera is sent as now (it may have stepped down for the CPU).
    pub video_sent: Option<String>,
    /// The camera's layers being encoded now (bit n: layer n, smallest first): those someone
    /// receives.
    pub layers_sent: u8,
    /// Per remote participant present.
    pub peers: Vec<LivePeer>,
}

/// Live statistics of one remote participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LivePeer {
    /// Who.
    pub id: ParticipantId,
    /// Their name.
    pub name: String,
    /// Video frames decoded in the last second.
    pub fps: f64,
    /// Audio packets decoded in the last second.
    pub audio_per_second: f64,
    /// Bitrate received from them, in kb/s.
    pub kbps: f64,
    /// Share of audio packets concealed in the last second (0..1).
    pub audio_loss: f64,
    /// Audio packets waiting in the jitter buffer.
    pub jitter_depth: usize,
    /// The layer of their video received now (0: the smallest).
    pub layer: Option<u8>,
    /// Capture to decoded picture, median of the last frames.
    pub video_latency_ms: f64,
    /// Capture to decoded sound, median of the last packets (about 0.6 s).
    pub audio_latency_ms: f64,
    /// The same, the most of those packets.
    pub audio_latency_max_ms: f64,
}

impl LiveStats {
    /// The status line `rotunda bot` prints once a second.
    pub fn status_line(&self, name: &str) -> String {
        let mut line = format!(
            "[{name}] {:>3.0}s rtt {:.1} ms |",
            self.seconds.floor(),
            self.rtt_ms
        );
        if self.peers.is_empty() {
            line.push_str(" alone");
        }
        for peer in self.peers.iter().take(STATUS_PEERS) {
            line.push_str(&format!(
                " {}: video {:.0} fps {:.0} ms, audio {:.0}/s {:.0} ms (max {:.0}) |",
                peer.name,
                peer.fps,
                peer.video_latency_ms,
                peer.audio_per_second,
                peer.audio_latency_ms,
                peer.audio_latency_max_ms
            ));
        }
        // A big room's line stays readable: the rest in one figure each.
        let rest = &self.peers[self.peers.len().min(STATUS_PEERS)..];
        if !rest.is_empty() {
            let fps: f64 = rest.iter().map(|p| p.fps).sum();
            let audio: f64 = rest.iter().map(|p| p.audio_per_second).sum();
            line.push_str(&format!(
                " {} more: video {fps:.0} fps, audio {audio:.0}/s in all |",
                rest.len()
            ));
        }
        line
    }
}

/// Peers the status line names one by one.
const STATUS_PEERS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> LivePeer {
        LivePeer {
            id: ParticipantId(n),
            name: format!("p{n}"),
            fps: 30.0,
            audio_per_second: 50.0,
            kbps: 500.0,
            audio_loss: 0.0,
            jitter_depth: 2,
            layer: Some(2),
            video_latency_ms: 10.0,
            audio_latency_ms: 40.0,
            audio_latency_max_ms: 60.0,
        }
    }

    #[test]
    fn a_big_rooms_status_line_names_a_few_and_sums_the_rest() {
        let mut live = LiveStats {
            peers: (1..=60).map(peer).collect(),
            ..LiveStats::default()
        };
        let line = live.status_line("bot");
        assert!(line.contains(" p8: video 30 fps"), "{line}");
        assert!(!line.contains(" p9: "), "{line}");
        assert!(
            line.ends_with(" 52 more: video 1560 fps, audio 2600/s in all |"),
            "{line}"
        );
        live.peers.truncate(2);
        let line = live.status_line("bot");
        assert!(
            line.contains(" p2: video 30 fps") && !line.contains("more"),
            "{line}"
        );
    }
}
