//! The screens drawn over the room's states ([`Screen`](crate::state::Screen)): join →
//! connecting → in room → left, and the moves between them. What a screen spawns is despawned
//! when it exits.

mod connecting;
mod join;
mod left;

use bevy::prelude::*;

pub(super) fn plugin(app: &mut App) {
    app.add_plugins((join::plugin, connecting::plugin, left::plugin));
}
