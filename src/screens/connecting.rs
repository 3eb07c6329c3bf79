//! The connecting screen: shown while the relay is reached and the room joined.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use crate::call::Call;
use crate::settings::Settings;
use crate::state::Screen;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(
        EguiPrimaryContextPass,
        draw_connecting.run_if(in_state(Screen::Connecting)),
    );
}

fn draw_connecting(
    mut contexts: EguiContexts,
    settings: Res<Settings>,
    call: Option<Res<Call>>,
    mut next: ResMut<NextState<Screen>>,
    mut commands: Commands,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let mut root = crate::ui::root_ui(ctx, "screen");
    egui::CentralPanel::default().show(&mut root, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() * 0.35);
            ui.spinner();
            ui.heading(format!(
                "Joining {:?} at {} …",
                settings.room,
                settings.relay_url()
            ));
            if ui.button("Cancel").clicked() {
                if let Some(call) = call {
                    call.leave();
                    // Nothing more from that call reaches the screens.
                    commands.remove_resource::<Call>();
                }
                next.set(Screen::Join);
            }
        });
    });
    Ok(())
}
