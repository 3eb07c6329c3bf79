//! The 3D room: a round hall with a floor, walls, a centre piece and warm light; the participants'
//! panels; the local viewer's movement; and a self-view in the corner.

pub mod avatar;
pub mod focus;
pub mod hall;
pub mod layout;
pub mod panel;
mod scene;
pub mod view;
pub mod wall;

use bevy::prelude::*;

/// The room's visuals and the viewer's movement.
pub(super) fn plugin(app: &mut App) {
    app.add_plugins((
        scene::plugin,
        hall::plugin,
        panel::plugin,
        avatar::plugin,
        view::plugin,
        wall::plugin,
        focus::plugin,
    ));
}
