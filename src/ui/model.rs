//! What the UI shows, kept apart from how it is drawn: the chat log, the participants list, the
//! live statistics and which panels are open.

use bevy::prelude::*;

use crate::AppSystems;
use crate::call::LiveStats;
use crate::net::{CallJoined, ChatReceived, StatsUpdated};
use crate::participants::{Muted, Participant, Roster, Speaking};
use crate::screens::Screen;

/// Chat lines kept for the session.
pub const CHAT_KEPT: usize = 1_000;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<ChatLog>()
        .init_resource::<Panels>()
        .init_resource::<CallStats>()
        .init_resource::<ParticipantRows>();
    app.add_systems(
        Update,
        (record_chat, record_stats, list_participants)
            .after(AppSystems::Update)
            .before(AppSystems::Present),
    );
    app.add_systems(OnEnter(Screen::Connecting), clear_call_state);
}

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
}

impl Default for Panels {
    fn default() -> Self {
        Self {
            chat: true,
            participants: true,
            stats: false,
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
    devices: Option<Res<crate::net::Devices>>,
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
            speaking: speaking.0 > 0.15 && !muted.audio,
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
) {
    joined.clear();
    log.lines.clear();
    log.unread = 0;
    stats.0 = LiveStats::default();
}
