//! The client's state: which screen it shows, and why the last call ended. Everything else
//! builds on it; it uses nothing of the client.

use std::time::Duration;

use bevy::prelude::*;

pub(super) fn plugin(app: &mut App) {
    app.init_state::<Screen>();
    app.init_resource::<LeftReason>();
}

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

/// Why the call ended, for the left screen.
#[derive(Resource, Debug, Default, Clone)]
pub struct LeftReason {
    /// What to tell the user; `None` when they left by choice.
    pub message: Option<String>,
    /// When set, the client rejoins on its own.
    pub retry: Option<Retry>,
}

/// An automatic rejoin after a lost connection.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Counts down to the next attempt.
    pub timer: Timer,
    /// Attempts made so far.
    pub attempt: u32,
}

impl Retry {
    /// The next attempt: 1 s, 2 s, 4 s … up to 15 s apart.
    pub fn after(attempt: u32) -> Self {
        let seconds = (1u64 << attempt.min(4)).min(15);
        Self {
            timer: Timer::new(Duration::from_secs(seconds), TimerMode::Once),
            attempt,
        }
    }
}
