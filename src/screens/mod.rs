//! The screens, as states: join → connecting → in room → left. What a screen spawns is despawned
//! when it exits.

mod connecting;
mod join;
mod left;

use bevy::prelude::*;

pub use left::{LeftReason, Retry};

/// Which screen the client shows.
#[derive(States, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Screen {
    /// The join form: name, room, relay, devices.
    #[default]
    Join,
    /// Connecting to the relay and joining the room.
    Connecting,
    /// In the room.
    InRoom,
    /// Left the room, by choice or not; the reason is in [`LeftReason`].
    Left,
}

pub(super) fn plugin(app: &mut App) {
    app.init_state::<Screen>();
    app.add_plugins((join::plugin, connecting::plugin, left::plugin));
}
