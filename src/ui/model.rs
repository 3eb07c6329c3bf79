//! What the UI shows, kept apart from how it is drawn: the chat log, the participants list, the
//! live statistics and which panels are open.

use bevy::prelude::*;

use crate::AppSystems;
use crate::call::{CallJoined, ChatReceived, LiveStats, SecurityChanged, StatsUpdated};
use crate::participants::{Muted, Participant, Roster, Speaking};
use crate::state::Screen;

/// Chat lines kept for the session.
pub const CHAT_KEPT: usize = 1_000;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<ChatLog>()
        .init_resource::<Allowed>()
        .init_resource::<Secured>()
        .init_resource::<Panels>()
        .init_resource::<CallStats>()
        .init_resource::<ParticipantRows>();
    app.add_systems(
        Update,
        (
            record_chat,
            record_stats,
            list_participants,
            note_grants,
            note_security,
        )
            .after(AppSystems::Update)
            .before(AppSystems::Present),
    );
    app.add_systems(OnEnter(Screen::Connecting), clear_call_state);
}

/// What the relay lets us do in this room (what our access token grants).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed(pub rotunda_proto::Grants);

fn note_grants(mut joined: MessageReader<CallJoined>, mut allowed: ResMut<Allowed>) {
    if let Some(joined) = joined.read().last() {
        allowed.0 = joined.grants;
    }
}

/// What end-to-end encryption is in this room, as the call last said.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct Secured(pub rotunda_engine::Security);

fn note_security(mut changed: MessageReader<SecurityChanged>, mut secured: ResMut<Secured>) {
    if let Some(changed) = changed.read().last() {
        secured.0 = changed.0.clone();
    }
}

/// A voice at least this loud (0..1, as [`Speaking`]) counts as speaking.
pub const SPEAKING_LEVEL: f32 = 0.15;

/// One chat line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The room's order.
    pub seq: u64,
    /// Who said it.
    pub name: String,
    /// What.
    pub text: String,
    /// Whether we said it.
    pub mine: bool,
}

/// The chat of this session, in the room's order.
#[derive(Resource, Debug, Default)]
pub struct ChatLog {
    /// The lines, by `seq`.
    pub lines: Vec<ChatLine>,
    /// Lines received while the chat was closed.
    pub unread: usize,
    /// What is being typed.
    pub draft: String,
}

impl ChatLog {
    /// Adds a line in `seq` order (a repeated `seq` is ignored); counts it unread when the chat
    /// is closed and it is not ours.
    pub fn add(&mut self, line: ChatLine, open: bool) {
        match self.lines.binary_search_by_key(&line.seq, |l| l.seq) {
            Ok(_) => return,
            Err(at) => {
                if !open && !line.mine {
                    self.unread += 1;
                }
                self.lines.insert(at, line);
            }
        }
        let excess = self.lines.len().saturating_sub(CHAT_KEPT);
        self.lines.drain(..excess);
    }
}

/// Which side panels and overlays are open.
#[derive(Resource, Debug, Clone, Copy)]
pub struct Panels {
    /// The chat.
    pub chat: bool,
    /// The participants list.
    pub participants: bool,
    /// The statistics overlay.
    pub stats: bool,
    /// The invitation dialog.
    pub invite: bool,
    /// Fitted to the window since arriving in the room.
    pub arrived: bool,
}

impl Default for Panels {
    fn default() -> Self {
        Self {
            chat: true,
            participants: true,
            stats: false,
            invite: false,
            arrived: false,
        }
    }
}

/// How someone else joins this room: the link a browser opens and the command a native client
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The browser link (the relay serves the client at its own address).
    pub link: String,
    /// The native command.
    pub command: String,
    /// The room asks for an access token: each person needs their own.
    pub needs_token: bool,
}

impl Invitation {
    /// The invitation to the room `settings` joined.
    pub fn to(settings: &crate::settings::Settings) -> Self {
        let relay = settings.relay_url();
        let address = relay
            .strip_prefix("https://")
            .unwrap_or(&relay)
            .trim_end_matches('/');
        let link = format!("http://{address}/?room={}", percent_encode(&settings.room));
        let mut command = format!(
            "rotunda --relay {relay} --room {}",
            shell_quote(&settings.room)
        );
        if let Some(hash) = settings.cert_hash {
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            command.push_str(&format!(" --cert-hash {hex}"));
        }
        Self {
            link,
            command,
            needs_token: settings.token.is_some(),
        }
    }
}

/// `text` for a URL's query: letters, digits and `-_.~` as they are, every other byte as %XX.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Below this window width (in points) the room shows one side panel at a time, so the view
/// between them stays wide enough for the ring.
pub const NARROW_WINDOW: f32 = 1000.0;
/// Below this window width the side panels start closed: the room gets the whole window.
pub const SMALL_WINDOW: f32 = 720.0;

impl Panels {
    /// Arriving in the room in a window `width` wide: a small window starts with the side
    /// panels closed (the chat counts what arrives meanwhile); a narrow one with the chat only.
    pub fn arrive(&mut self, width: f32) {
        self.arrived = true;
        if width < SMALL_WINDOW {
            self.chat = false;
            self.participants = false;
        }
        self.fit(width);
    }

    /// A window that became narrow keeps one side panel: the chat.
    pub fn fit(&mut self, width: f32) {
        if width < NARROW_WINDOW && self.chat && self.participants {
            self.participants = false;
        }
    }

    /// Opens or closes the chat; in a narrow window opening it closes the people list.
    pub fn toggle_chat(&mut self, width: f32) {
        self.chat = !self.chat;
        if self.chat && width < NARROW_WINDOW {
            self.participants = false;
        }
    }

    /// Opens or closes the people list; in a narrow window opening it closes the chat.
    pub fn toggle_participants(&mut self, width: f32) {
        self.participants = !self.participants;
        if self.participants && width < NARROW_WINDOW {
            self.chat = false;
        }
    }
}

/// The latest live statistics.
#[derive(Resource, Debug, Default, Clone)]
pub struct CallStats(pub LiveStats);

/// One row of the participants list.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantRow {
    /// The name.
    pub name: String,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Speaking now.
    pub speaking: bool,
    /// This is us.
    pub you: bool,
}

/// The participants list, us first, then by name.
#[derive(Resource, Debug, Default, Clone)]
pub struct ParticipantRows(pub Vec<ParticipantRow>);

fn record_chat(
    mut chat: MessageReader<ChatReceived>,
    roster: Res<Roster>,
    panels: Res<Panels>,
    mut log: ResMut<ChatLog>,
) {
    for line in chat.read() {
        log.add(
            ChatLine {
                seq: line.seq,
                name: line.name.clone(),
                text: line.text.clone(),
                mine: Some(line.from) == roster.you,
            },
            panels.chat,
        );
    }
}

fn record_stats(mut updates: MessageReader<StatsUpdated>, mut stats: ResMut<CallStats>) {
    if let Some(update) = updates.read().last() {
        stats.0 = update.0.clone();
    }
}

/// A participant whose row shows something new.
type RowChanged = Or<(Changed<Participant>, Changed<Muted>, Changed<Speaking>)>;

/// Rebuilds the list when someone came, went, muted, spoke or changed their name.
fn list_participants(
    roster: Res<Roster>,
    devices: Option<Res<crate::devices::Devices>>,
    changed: Query<(), RowChanged>,
    participants: Query<(&Participant, &Muted, &Speaking)>,
    mut rows: ResMut<ParticipantRows>,
) {
    let devices_changed = devices.as_ref().is_some_and(|d| d.is_changed());
    if !roster.is_changed() && !devices_changed && changed.is_empty() {
        return;
    }
    let mut list: Vec<ParticipantRow> = participants
        .iter()
        .filter(|(p, ..)| roster.entities.contains_key(&p.id))
        .map(|(participant, muted, speaking)| ParticipantRow {
            name: participant.name.clone(),
            audio_muted: muted.audio,
            video_muted: muted.video,
            speaking: speaking.0 > SPEAKING_LEVEL && !muted.audio,
            you: false,
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    if roster.you.is_some() {
        let (audio_muted, video_muted) = devices
            .map(|d| (!d.microphone_on, !d.camera_on))
            .unwrap_or_default();
        list.insert(
            0,
            ParticipantRow {
                name: roster.your_name.clone(),
                audio_muted,
                video_muted,
                speaking: false,
                you: true,
            },
        );
    }
    if rows.0 != list {
        rows.0 = list;
    }
}

/// A new call starts with an empty chat and no statistics.
fn clear_call_state(
    mut joined: MessageReader<CallJoined>,
    mut log: ResMut<ChatLog>,
    mut stats: ResMut<CallStats>,
    mut secured: ResMut<Secured>,
) {
    joined.clear();
    log.lines.clear();
    log.unread = 0;
    stats.0 = LiveStats::default();
    secured.0 = rotunda_engine::Security::default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_window_keeps_both_side_panels() {
        let mut panels = Panels::default();
        panels.arrive(1280.0);
        assert!(panels.chat && panels.participants && panels.arrived);
        panels.toggle_participants(1280.0);
        panels.toggle_participants(1280.0);
        assert!(panels.chat && panels.participants);
    }

    #[test]
    fn a_narrow_window_shows_one_side_panel_at_a_time() {
        let mut panels = Panels::default();
        panels.arrive(900.0);
        assert!(panels.chat && !panels.participants);
        panels.toggle_participants(900.0);
        assert!(!panels.chat && panels.participants);
        panels.toggle_chat(900.0);
        assert!(panels.chat && !panels.participants);
        panels.toggle_chat(900.0);
        assert!(!panels.chat && !panels.participants);
    }

    #[test]
    fn a_window_made_narrow_closes_the_people_list() {
        let mut panels = Panels::default();
        panels.arrive(1280.0);
        panels.fit(1100.0);
        assert!(panels.chat && panels.participants);
        panels.fit(800.0);
        assert!(panels.chat && !panels.participants);
    }

    #[test]
    fn a_small_window_starts_with_the_room_only_and_lets_a_panel_open() {
        let mut panels = Panels::default();
        panels.arrive(640.0);
        assert!(!panels.chat && !panels.participants);
        panels.toggle_chat(640.0);
        panels.fit(640.0);
        assert!(panels.chat && !panels.participants);
    }
}
