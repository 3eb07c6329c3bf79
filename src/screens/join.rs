//! The join screen: name, room, relay address and devices. Skipped when the command line says
//! where to join.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use super::Screen;
use crate::settings::{DeviceChoice, Settings};

pub(super) fn plugin(app: &mut App) {
    app.add_systems(OnEnter(Screen::Join), skip_when_scripted);
    app.add_systems(
        EguiPrimaryContextPass,
        draw_join_form.run_if(in_state(Screen::Join)),
    );
}

/// The form's fields, kept while the screen is up.
#[derive(Resource, Default)]
struct JoinForm {
    relay: String,
    camera: String,
    microphone: String,
    error: Option<String>,
}

fn skip_when_scripted(
    mut settings: ResMut<Settings>,
    mut next: ResMut<NextState<Screen>>,
    mut commands: Commands,
) {
    if settings.auto_join {
        settings.auto_join = false;
        next.set(Screen::Connecting);
        return;
    }
    commands.insert_resource(JoinForm {
        relay: settings.relay.clone().unwrap_or_default(),
        camera: settings.camera.to_string(),
        microphone: settings.microphone.to_string(),
        error: None,
    });
}

fn draw_join_form(
    mut contexts: EguiContexts,
    mut settings: ResMut<Settings>,
    form: Option<ResMut<JoinForm>>,
    mut next: ResMut<NextState<Screen>>,
) -> Result {
    let Some(mut form) = form else {
        return Ok(());
    };
    let ctx = contexts.ctx_mut()?;
    let mut root = crate::ui::root_ui(ctx, "screen");
    egui::CentralPanel::default().show(&mut root, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() * 0.2);
            ui.heading("Rotunda");
            ui.label("Meet in a 3D room: every voice comes from where its panel stands.");
            ui.add_space(16.0);
        });
        egui::Grid::new("join")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                ui.label("Name");
                ui.text_edit_singleline(&mut settings.name);
                ui.end_row();
                ui.label("Room");
                ui.text_edit_singleline(&mut settings.room);
                ui.end_row();
                ui.label("Relay");
                ui.add(
                    egui::TextEdit::singleline(&mut form.relay)
                        .hint_text(format!("empty: start one on {}", settings.local_relay)),
                );
                ui.end_row();
                ui.label("Camera");
                ui.add(
                    egui::TextEdit::singleline(&mut form.camera)
                        .hint_text("default, an index, synthetic or none"),
                );
                ui.end_row();
                ui.label("Microphone");
                ui.add(
                    egui::TextEdit::singleline(&mut form.microphone)
                        .hint_text("default, an index, synthetic or none"),
                );
                ui.end_row();
            });
        ui.add_space(12.0);
        if let Some(error) = &form.error {
            ui.colored_label(egui::Color32::LIGHT_RED, error);
        }
        let join =
            ui.button("Join").clicked() || ui.input(|input| input.key_pressed(egui::Key::Enter));
        if join {
            match validate(&form, &settings) {
                Ok((relay, camera, microphone)) => {
                    settings.relay = relay;
                    settings.camera = camera;
                    settings.microphone = microphone;
                    next.set(Screen::Connecting);
                }
                Err(error) => form.error = Some(error),
            }
        }
    });
    Ok(())
}

type Choices = (Option<String>, DeviceChoice, DeviceChoice);

fn validate(form: &JoinForm, settings: &Settings) -> Result<Choices, String> {
    if settings.name.trim().is_empty() || settings.name.len() > 64 {
        return Err("Enter a name of 1 to 64 characters.".into());
    }
    if settings.room.trim().is_empty() || settings.room.len() > 64 {
        return Err("Enter a room name of 1 to 64 characters.".into());
    }
    let relay = form.relay.trim();
    let relay = if relay.is_empty() {
        None
    } else if relay.starts_with("https://") {
        Some(relay.to_owned())
    } else {
        return Err("The relay address looks like https://host:port.".into());
    };
    let camera = form.camera.parse().unwrap_or_default();
    let microphone = form.microphone.parse().unwrap_or_default();
    Ok((relay, camera, microphone))
}
