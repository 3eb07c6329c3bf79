//! The join screen: name, room, relay address and devices. Skipped when the command line says
//! where to join.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use crate::settings::{DeviceChoice, Settings};
use crate::state::Screen;
use rotunda_engine::VideoSpec;

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
    camera: DeviceChoice,
    microphone: DeviceChoice,
    video: VideoSpec,
    cameras: Vec<(DeviceChoice, String)>,
    microphones: Vec<(DeviceChoice, String)>,
    error: Option<String>,
}

/// The choices a device menu offers: the system's default, every device found, the synthetic
/// source and none.
fn menu(
    devices: impl IntoIterator<Item = (String, String)>,
    synthetic: &str,
) -> Vec<(DeviceChoice, String)> {
    let mut menu = vec![(DeviceChoice::Default, "system default".to_owned())];
    menu.extend(
        devices
            .into_iter()
            .map(|(id, name)| (DeviceChoice::Named(id), name)),
    );
    menu.push((DeviceChoice::Synthetic, synthetic.to_owned()));
    menu.push((DeviceChoice::None, "none".to_owned()));
    menu
}

fn device_menu(
    ui: &mut egui::Ui,
    id: &str,
    choice: &mut DeviceChoice,
    menu: &[(DeviceChoice, String)],
) {
    let selected = menu
        .iter()
        .find(|(c, _)| c == choice)
        .map_or_else(|| choice.to_string(), |(_, label)| label.clone());
    egui::ComboBox::from_id_salt(id)
        .selected_text(selected)
        .width(260.0)
        .show_ui(ui, |ui| {
            for (value, label) in menu {
                ui.selectable_value(choice, value.clone(), label);
            }
        });
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
        camera: settings.camera.clone(),
        microphone: settings.microphone.clone(),
        video: settings.video,
        ..default()
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
    if form.cameras.is_empty() {
        // Listed when the form is first drawn, not in tests that never draw it.
        let (cameras, microphones) = crate::devices::list_devices();
        form.cameras = menu(cameras, "test pattern");
        form.microphones = menu(microphones, "test tone");
    }
    let ctx = contexts.ctx_mut()?;
    let mut root = crate::ui::root_ui(ctx, "screen");
    egui::CentralPanel::default().show(&mut root, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() * 0.2);
            ui.heading("Rotunda");
            ui.label("Meet in a 3D room: every voice comes from where its panel stands.");
            ui.add_space(16.0);
        });
        crate::ui::centred(ui, 380.0, |ui| {
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
                    let form = &mut *form;
                    ui.label("Camera");
                    device_menu(ui, "camera", &mut form.camera, &form.cameras);
                    ui.end_row();
                    ui.label("Resolution");
                    egui::ComboBox::from_id_salt("resolution")
                        .selected_text(format!("{}x{}", form.video.width, form.video.height))
                        .show_ui(ui, |ui| {
                            for (width, height) in [(320, 240), (640, 480), (1280, 720)] {
                                let spec = VideoSpec {
                                    width,
                                    height,
                                    fps: 30,
                                };
                                ui.selectable_value(
                                    &mut form.video,
                                    spec,
                                    format!("{width}x{height}"),
                                );
                            }
                        });
                    ui.end_row();
                    ui.label("Microphone");
                    device_menu(ui, "microphone", &mut form.microphone, &form.microphones);
                    ui.end_row();
                    ui.label("Privacy");
                    ui.checkbox(&mut settings.e2ee, "End-to-end encrypted")
                        .on_hover_text(
                            "For a room you create: media and chat sealed with keys only the \
                             people in it hold. A room someone else created stays as it is.",
                        );
                    ui.end_row();
                });
            ui.add_space(12.0);
            if let Some(error) = &form.error {
                ui.colored_label(egui::Color32::LIGHT_RED, error);
            }
            let join = ui.button("Join").clicked()
                || ui.input(|input| input.key_pressed(egui::Key::Enter));
            if join {
                match validate(&form, &settings) {
                    Ok(relay) => {
                        settings.relay = relay;
                        settings.camera = form.camera.clone();
                        settings.microphone = form.microphone.clone();
                        settings.video = form.video;
                        next.set(Screen::Connecting);
                    }
                    Err(error) => form.error = Some(error),
                }
            }
        });
    });
    Ok(())
}

/// Checks the form; the relay to use (`None`: the local one).
fn validate(form: &JoinForm, settings: &Settings) -> Result<Option<String>, String> {
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
    Ok(relay)
}
