//! What a participant saw of a call: the `--stats-json` report, shared by `rotunda bot`, the
//! windowed client and the browser (`rotunda:stats`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One chat line as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Sender's display name.
    pub from: String,
    /// The text.
    pub text: String,
}

/// What a bot saw of one other participant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// The participant's id.
    pub id: u32,
    /// Video frames received from the relay.
    pub video_frames_received: u64,
    /// Video frames the sender numbered while we were there (from the first to the last
    /// sequence number received), arrived or not.
    #[serde(default)]
    pub video_frames_expected: u64,
    /// Video frames received of each layer, smallest layer first (a viewer receives the layer
    /// its view and link call for).
    #[serde(default)]
    pub video_frames_by_layer: Vec<u64>,
    /// Video received from this participant, in kb/s averaged over the stay.
    #[serde(default)]
    pub video_kbps: f64,
    /// Video frames decoded.
    pub video_frames_decoded: u64,
    /// Video frames not decoded because their panel was out of sight.
    #[serde(default)]
    pub video_frames_skipped: u64,
    /// Decoded pictures whose marks named someone else.
    pub video_frames_wrong_sender: u64,
    /// Decoded pictures that carry no readable marks (any real camera).
    #[serde(default)]
    pub video_frames_unmarked: u64,
    /// Audio packets received.
    pub audio_frames_received: u64,
    /// Audio packets the sender numbered while we were there, arrived or not.
    #[serde(default)]
    pub audio_frames_expected: u64,
    /// Audio packets decoded.
    pub audio_frames_decoded: u64,
    /// Audio packets lost and concealed.
    pub audio_frames_concealed: u64,
    /// Capture to decoded picture, median.
    pub video_latency_ms_p50: f64,
    /// Capture to decoded picture, 95th percentile.
    pub video_latency_ms_p95: f64,
    /// Capture to decoded audio at playout, median.
    pub audio_latency_ms_p50: f64,
    /// Capture to decoded audio at playout, 95th percentile.
    pub audio_latency_ms_p95: f64,
    /// Frames of the participant's shared screen received from the relay.
    #[serde(default)]
    pub screen_frames_received: u64,
    /// Frames of the shared screen the sender numbered while we were there, arrived or not.
    #[serde(default)]
    pub screen_frames_expected: u64,
    /// Frames of the shared screen decoded.
    #[serde(default)]
    pub screen_frames_decoded: u64,
    /// Capture to decoded screen picture, 95th percentile.
    #[serde(default)]
    pub screen_latency_ms_p95: f64,
    /// The newest decoded screen picture's size, WIDTHxHEIGHT.
    #[serde(default)]
    pub screen_size: Option<String>,
    /// The sender marks the shared screen last showed, when it showed the test pattern's.
    #[serde(default)]
    pub screen_marks: Option<u16>,
}

/// A connection lost and found again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconnection {
    /// When the loss was noticed (ms since the Unix epoch).
    pub lost_at_ms: u64,
    /// Why.
    pub reason: String,
    /// Tries until back in (or until the call ended).
    pub attempts: u32,
    /// When the relay welcomed us back, if it did.
    pub rejoined_at_ms: Option<u64>,
    /// The relay kept our place (same id, nobody saw us leave).
    pub resumed: bool,
    /// When the first media from anyone arrived after rejoining.
    pub first_media_at_ms: Option<u64>,
}

/// What a bot saw, written by `--stats-json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotReport {
    /// The bot's display name.
    pub name: String,
    /// The room.
    pub room: String,
    /// The bot's participant id.
    pub id: u32,
    /// Per other participant, by display name.
    pub peers: BTreeMap<String, PeerReport>,
    /// Video and audio packets that failed to decode.
    pub decode_errors: u64,
    /// Chat lines received, in the room's order (own lines included).
    pub chat_received: Vec<ChatLine>,
    /// The application's short sounds played (someone joining, leaving, a chat line), by name.
    #[serde(default)]
    pub sounds_played: BTreeMap<String, u64>,
    /// Names of participants whose leaving was announced.
    pub left: Vec<String>,
    /// Video frames sent (every layer's).
    pub video_frames_sent: u64,
    /// Video frames sent per layer (smallest first).
    #[serde(default)]
    pub video_frames_sent_by_layer: Vec<u64>,
    /// Audio frames sent.
    pub audio_frames_sent: u64,
    /// Audio frames not sent: silence (Opus DTX).
    #[serde(default)]
    pub audio_frames_silent: u64,
    /// Encoded video bytes sent.
    pub video_bytes_sent: u64,
    /// Encoded audio bytes sent.
    pub audio_bytes_sent: u64,
    /// Seconds the bot was in the room.
    pub seconds: f64,
    /// Keyframe requests received from the relay.
    pub keyframe_requests_received: u64,
    /// Round-trip time to the relay at the end, in ms.
    pub rtt_ms: f64,
    /// All media received (payloads), in kb/s averaged over the stay.
    #[serde(default)]
    pub downlink_kbps: f64,
    /// The relay's estimate of this bot's downlink at the end, in kb/s.
    #[serde(default)]
    pub link_kbps: Option<u32>,
    /// Times a panel grew enough to ask the relay for a larger layer, and the time from asking
    /// to the first frame of it (median and 95th percentile, ms).
    #[serde(default)]
    pub layer_switches: u64,
    /// See `layer_switches`.
    #[serde(default)]
    pub layer_switch_ms_p50: f64,
    /// See `layer_switches`.
    #[serde(default)]
    pub layer_switch_ms_p95: f64,
    /// What the camera was sent as at the end (`WIDTHxHEIGHT@FPS`; smaller than asked when the
    /// encoder could not keep up).
    #[serde(default)]
    pub video_sent: Option<String>,
    /// The shared screen's top layer, WIDTHxHEIGHT@FPS, when sharing one.
    #[serde(default)]
    pub screen_sent: Option<String>,
    /// Shared screen frames sent (every layer's).
    #[serde(default)]
    pub screen_frames_sent: u64,
    /// Encoded shared screen bytes sent.
    #[serde(default)]
    pub screen_bytes_sent: u64,
    /// Connections lost and found again.
    #[serde(default)]
    pub reconnections: Vec<Reconnection>,
    /// Why the session ended early, if it did.
    pub error: Option<String>,
    /// The room was end-to-end encrypted.
    #[serde(default)]
    pub e2ee: bool,
    /// The safety code of the group's epoch at the end: equal for everyone in the room.
    #[serde(default)]
    pub safety_code: Option<String>,
    /// The safety code of every epoch we were in, oldest first (the newest lines kept): people
    /// who left at different times compare the codes of the epochs they shared.
    #[serde(default)]
    pub safety_codes: Vec<String>,
    /// Frames that did not open (sealed under an epoch whose keys we did not hold, or altered).
    #[serde(default)]
    pub frames_not_opened: u64,
    /// What sealing our frames and opening everyone else's cost.
    #[serde(default)]
    pub e2ee_cost: E2eeCost,
    /// Times we asked to be added to the group again, our group state lost or gone astray (a
    /// commit or welcome that did not apply).
    #[serde(default)]
    pub group_rejoins: u64,
}

/// Time spent sealing and opening media frames (measured around each; in the browser the
/// clock is coarse, to 0.1 ms with jitter, so only means over many frames tell).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct E2eeCost {
    /// Frames sealed.
    pub sealed: u64,
    /// Their bytes before sealing.
    pub sealed_bytes: u64,
    /// Time spent sealing them, ms.
    pub seal_ms: f64,
    /// Frames opened (or tried).
    pub opened: u64,
    /// Their bytes as they came, sealed.
    pub opened_bytes: u64,
    /// Time spent opening them, ms.
    pub open_ms: f64,
}

impl E2eeCost {
    /// Mean µs to seal a frame.
    pub fn seal_us(&self) -> f64 {
        self.seal_ms * 1000.0 / self.sealed.max(1) as f64
    }

    /// Mean µs to open a frame.
    pub fn open_us(&self) -> f64 {
        self.open_ms * 1000.0 / self.opened.max(1) as f64
    }
}

impl BotReport {
    /// A few lines for people, printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "[{}] summary: sent {} video frames ({:.0} kb/s) and {} audio frames ({:.0} kb/s), {} decode errors, {} chat lines received\n",
            self.name,
            self.video_frames_sent,
            self.video_bytes_sent as f64 * 8.0 / 1000.0 / self.seconds.max(0.001),
            self.audio_frames_sent,
            self.audio_bytes_sent as f64 * 8.0 / 1000.0 / self.seconds.max(0.001),
            self.decode_errors,
            self.chat_received.len()
        );
        if let Some(screen) = &self.screen_sent {
            out.push_str(&format!(
                "  shared the screen at {screen}: {} frames ({:.0} kb/s)\n",
                self.screen_frames_sent,
                self.screen_bytes_sent as f64 * 8.0 / 1000.0 / self.seconds.max(0.001),
            ));
        }
        match (&self.safety_code, self.e2ee) {
            (Some(code), _) => out.push_str(&format!(
                "  end-to-end encrypted, safety code {code} ({} frames did not open, {} times added again; sealing {:.1} µs a frame of {:.0} B on average, opening {:.1} µs)\n",
                self.frames_not_opened,
                self.group_rejoins,
                self.e2ee_cost.seal_us(),
                self.e2ee_cost.sealed_bytes as f64 / self.e2ee_cost.sealed.max(1) as f64,
                self.e2ee_cost.open_us(),
            )),
            (None, true) => {
                out.push_str("  end-to-end encrypted, but the room's keys never came\n")
            }
            (None, false) => {
                out.push_str("  NOT end-to-end encrypted: the relay could read everything\n");
            }
        }
        for (name, peer) in &self.peers {
            out.push_str(&format!(
                "  {name}: video {} decoded ({} wrong sender, {} unmarked), latency p50 {:.1} ms p95 {:.1} ms; audio {} decoded, {} concealed, latency p50 {:.1} ms p95 {:.1} ms\n",
                peer.video_frames_decoded,
                peer.video_frames_wrong_sender,
                peer.video_frames_unmarked,
                peer.video_latency_ms_p50,
                peer.video_latency_ms_p95,
                peer.audio_frames_decoded,
                peer.audio_frames_concealed,
                peer.audio_latency_ms_p50,
                peer.audio_latency_ms_p95,
            ));
            if peer.screen_frames_expected > 0 {
                out.push_str(&format!(
                    "  {name}'s screen: {} of {} frames decoded, {}, latency p95 {:.1} ms\n",
                    peer.screen_frames_decoded,
                    peer.screen_frames_expected,
                    peer.screen_size.as_deref().unwrap_or("no picture"),
                    peer.screen_latency_ms_p95,
                ));
            }
        }
        for reconnection in &self.reconnections {
            match reconnection.rejoined_at_ms {
                Some(at) => out.push_str(&format!(
                    "  reconnected after {} ms ({} tries, {}): {}\n",
                    at.saturating_sub(reconnection.lost_at_ms),
                    reconnection.attempts,
                    if reconnection.resumed {
                        "same place"
                    } else {
                        "new place"
                    },
                    reconnection.reason
                )),
                None => out.push_str(&format!(
                    "  connection lost, not back ({} tries): {}\n",
                    reconnection.attempts, reconnection.reason
                )),
            }
        }
        if let Some(error) = &self.error {
            out.push_str(&format!("  ended early: {error}\n"));
        }
        out
    }
}
