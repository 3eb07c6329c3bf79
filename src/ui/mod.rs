//! The egui interface in the room: top bar (room, microphone, camera, meeting mode, leave),
//! participants list, chat, statistics overlay (F3), name tags over the panels, and badges for
//! devices that did not work. Keys: M microphone, V camera, F3 statistics, Enter chat.

mod fonts;
pub mod model;

use bevy::camera::Viewport;
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::input::EguiWantsInput;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use crate::audio::sounds::SoundsOn;
use crate::audio::{Ears, MeetingMode};
use crate::call::{Call, Command, Connection};
use crate::devices::{Devices, SourceState};
use crate::participants::{Departing, Muted, Participant, Speaking};
use crate::room::avatar::SelfView;
use crate::room::layout::PANEL_HEIGHT;
use crate::room::wall::{OpenScreen, SharedScreen, Wall};
use crate::settings::Settings;
use crate::state::Screen;
use model::{Allowed, CallStats, ChatLog, Invitation, Panels, ParticipantRows, Secured};
use rotunda_engine::media::i420_to_rgba;

/// The UI's model, without drawing (what tests build on).
pub fn logic_plugin(app: &mut App) {
    app.add_plugins(model::plugin);
}

/// Drawing and keys.
pub(super) fn plugin(app: &mut App) {
    app.add_plugins(fonts::plugin);
    app.init_resource::<FullWindow>();
    app.add_systems(Update, handle_keys.run_if(in_state(Screen::InRoom)));
    app.add_systems(OnExit(Screen::InRoom), |mut full: ResMut<FullWindow>| {
        *full = FullWindow::default();
    });
    app.add_systems(OnExit(Screen::InRoom), reset_view);
    app.add_systems(
        EguiPrimaryContextPass,
        (draw_room_ui, draw_full_window)
            .chain()
            .run_if(in_state(Screen::InRoom)),
    );
}

/// The shared screen shown over the whole window, as it was sent (**F** toggles, **Esc**
/// returns), with its picture (RGBA, for egui) and the serial of the picture in it.
#[derive(Resource, Default)]
pub struct FullWindow {
    /// Whose screen; `None` when the room shows.
    pub showing: Option<rotunda_proto::ParticipantId>,
    image: Option<(Handle<Image>, egui::TextureId)>,
    shown: u64,
}

/// Draws the shared screen over the window while it is asked for and still shared.
fn draw_full_window(
    mut contexts: EguiContexts,
    call: Option<Res<Call>>,
    wall: Res<Wall>,
    mut full: ResMut<FullWindow>,
    mut images: ResMut<Assets<Image>>,
    participants: Query<&Participant>,
) -> Result {
    let Some(id) = full.showing else {
        return Ok(());
    };
    if !wall.shares.iter().any(|(sharer, _)| *sharer == id) {
        // Sharing stopped: back to the room.
        if let Some((image, _)) = full.image.take() {
            contexts.remove_image(&image);
        }
        *full = FullWindow::default();
        return Ok(());
    }
    if let Some(call) = &call {
        let full = &mut *full;
        let current = full.image.as_ref().map(|(image, _)| image.clone());
        let picture = call.screens().read_newer(id, full.shown, |frame| {
            let fits = current
                .as_ref()
                .and_then(|image| images.get(image))
                .is_some_and(|image| {
                    image.width() as usize == frame.width && image.height() as usize == frame.height
                });
            let mut rgba = Vec::new();
            i420_to_rgba(frame, &mut rgba);
            (fits, rgba, frame.width as u32, frame.height as u32)
        });
        if let Some((serial, (fits, rgba, width, height))) = picture {
            full.shown = serial;
            match (&current, fits) {
                (Some(image), true) => {
                    if let Some(mut image) = images.get_mut(image) {
                        image.data = Some(rgba);
                    }
                }
                _ => {
                    let image = images.add(Image::new(
                        bevy::render::render_resource::Extent3d {
                            width,
                            height,
                            depth_or_array_layers: 1,
                        },
                        bevy::render::render_resource::TextureDimension::D2,
                        rgba,
                        bevy::render::render_resource::TextureFormat::Rgba8UnormSrgb,
                        bevy::asset::RenderAssetUsages::MAIN_WORLD
                            | bevy::asset::RenderAssetUsages::RENDER_WORLD,
                    ));
                    if let Some((old, _)) = full.image.take() {
                        contexts.remove_image(&old);
                    }
                    let texture =
                        contexts.add_image(bevy_egui::EguiTextureHandle::Strong(image.clone()));
                    full.image = Some((image, texture));
                }
            }
        }
    }
    let ctx = contexts.ctx_mut()?.clone();
    let name = participants
        .iter()
        .find(|p| p.id == id)
        .map_or_else(|| id.to_string(), |p| p.name.clone());
    let area = ctx.content_rect();
    // The room's interface stays underneath, out of reach.
    egui::Area::new(egui::Id::new("full-window"))
        .fixed_pos(area.min)
        .order(egui::Order::Foreground)
        .show(&ctx, |ui| {
            ui.allocate_rect(area, egui::Sense::click());
        });
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Tooltip,
        egui::Id::new("full-window-picture"),
    ));
    painter.rect_filled(area, 0.0, egui::Color32::BLACK);
    if let Some((image, texture)) = &full.image
        && let Some(picture) = images.get(image)
    {
        let size = egui::vec2(picture.width() as f32, picture.height() as f32);
        let scale = (area.width() / size.x).min(area.height() / size.y);
        let shown = egui::Rect::from_center_size(area.center(), size * scale);
        painter.image(
            *texture,
            shown,
            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
            egui::Color32::WHITE,
        );
    }
    let label = painter.layout_no_wrap(
        format!("{name}'s screen · Esc or F returns to the room"),
        egui::FontId::proportional(15.0),
        egui::Color32::from_gray(235),
    );
    let at = area.min + egui::vec2(12.0, 10.0);
    painter.rect_filled(
        egui::Rect::from_min_size(at, label.size()).expand(6.0),
        6.0,
        egui::Color32::from_black_alpha(190),
    );
    painter.galley(at, label, egui::Color32::from_gray(235));
    Ok(())
}

/// Lays `contents` out in a column `width` wide, centred in `ui`.
pub fn centred(ui: &mut egui::Ui, width: f32, contents: impl FnOnce(&mut egui::Ui)) {
    ui.horizontal(|ui| {
        ui.add_space(((ui.available_width() - width) / 2.0).max(0.0));
        ui.vertical(|ui| {
            ui.set_width(width);
            contents(ui);
        });
    });
}

/// A root `Ui` covering the window, for panels (egui 0.36 shows panels inside a `Ui`).
pub fn root_ui(ctx: &egui::Context, id: &'static str) -> egui::Ui {
    egui::Ui::new(
        ctx.clone(),
        egui::Id::new(id),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    )
}

/// Everything the room's interface reads and changes.
#[derive(SystemParam)]
struct RoomUi<'w, 's> {
    settings: Res<'w, Settings>,
    call: Option<Res<'w, Call>>,
    connection: Res<'w, Connection>,
    stats: Res<'w, CallStats>,
    devices: ResMut<'w, Devices>,
    meeting: ResMut<'w, MeetingMode>,
    sounds: ResMut<'w, SoundsOn>,
    panels: ResMut<'w, Panels>,
    log: ResMut<'w, ChatLog>,
    allowed: Res<'w, Allowed>,
    secured: Res<'w, Secured>,
    rows: Res<'w, ParticipantRows>,
    cameras: Query<'w, 's, (&'static mut Camera, &'static GlobalTransform), With<Ears>>,
    participants: Query<
        'w,
        's,
        (
            &'static Participant,
            &'static Muted,
            &'static Speaking,
            &'static GlobalTransform,
        ),
        Without<Departing>,
    >,
    shared_screens: Query<'w, 's, (&'static SharedScreen, &'static GlobalTransform)>,
    self_view: Query<'w, 's, (&'static GlobalTransform, &'static Visibility), With<SelfView>>,
}

fn draw_room_ui(mut contexts: EguiContexts, mut room: RoomUi) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let width = ctx.content_rect().width();
    if room.panels.arrived {
        room.panels.fit(width);
    } else {
        room.panels.arrive(width);
    }
    let mut ui = root_ui(&ctx, "room");
    draw_top_bar(&mut ui, &mut room, width);
    draw_participants(&mut ui, &room);
    draw_chat(&mut ui, &mut room);
    fit_view(&ctx, ui.available_rect_before_wrap(), &mut room);
    draw_stats(&ctx, &room);
    draw_name_tags(&ctx, &room);
    draw_screen_tags(&ctx, &room);
    draw_self_view_tag(&ctx, &room);
    draw_invitation(&ctx, &mut room);
    Ok(())
}

/// The invitation: a dialog from the top bar's Invite, and, alone in the room, a card in the
/// empty ring saying how to bring someone in.
fn draw_invitation(ctx: &egui::Context, room: &mut RoomUi) {
    let invitation = Invitation::to(&room.settings);
    let alone = room.participants.is_empty() && room.call.is_some();
    if room.panels.invite {
        let mut open = true;
        egui::Window::new("Invite someone")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, 0.0))
            .show(ctx, |ui| invitation_body(ui, &invitation));
        room.panels.invite = open;
    } else if alone {
        egui::Area::new(egui::Id::new("alone"))
            .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, -30.0))
            .order(egui::Order::Middle)
            .show(ctx, |ui| {
                egui::Frame::new()
                    .fill(egui::Color32::from_rgb(26, 27, 32))
                    .corner_radius(8.0)
                    .inner_margin(egui::Margin::same(14))
                    .show(ui, |ui| {
                        ui.visuals_mut().override_text_color = Some(egui::Color32::from_gray(225));
                        ui.label(
                            egui::RichText::new("You are the only one here.")
                                .color(egui::Color32::WHITE)
                                .strong(),
                        );
                        invitation_body(ui, &invitation);
                    });
            });
    }
}

fn invitation_body(ui: &mut egui::Ui, invitation: &Invitation) {
    for (what, text) in [
        ("In a browser (Chrome or Edge), open:", &invitation.link),
        ("Or run Rotunda:", &invitation.command),
    ] {
        ui.label(what);
        ui.horizontal(|ui| {
            ui.monospace(text.as_str());
            if ui.small_button("Copy").clicked() {
                ui.ctx().copy_text(text.clone());
            }
        });
    }
    if invitation.needs_token {
        ui.colored_label(
            egui::Color32::from_rgb(240, 180, 60),
            "This room asks for an access token: each person needs their own from its host.",
        );
    }
}

/// Turns the microphone on or off (the switch moves only when the call took the command).
pub fn set_microphone(devices: &mut Devices, call: Option<&Call>, on: bool) {
    if !devices.microphone.sends() || devices.microphone_on == on {
        return;
    }
    if call.is_none_or(|call| call.send(Command::Microphone(on))) {
        devices.microphone_on = on;
        devices.microphone_off_by_user = !on;
    }
}

/// Turns the camera on or off (the switch moves only when the call took the command).
pub fn set_camera(devices: &mut Devices, call: Option<&Call>, on: bool) {
    if !devices.camera.sends() || devices.camera_on == on {
        return;
    }
    if call.is_none_or(|call| call.send(Command::Camera(on))) {
        devices.camera_on = on;
        devices.camera_off_by_user = !on;
    }
}

/// Shares the screen or stops (the switch moves only when the call took the command).
pub fn set_screen(devices: &mut Devices, call: Option<&Call>, on: bool) {
    if !devices.screen.sends() || devices.screen_on == on {
        return;
    }
    if call.is_none_or(|call| call.send(Command::Screen(on))) {
        devices.screen_on = on;
        // In the browser the user picks a display each time; it stops with the sharing.
        #[cfg(web)]
        if on {
            crate::devices::web::offer_screen();
        } else {
            crate::devices::web::stop_screen();
        }
    }
}

/// Cuts `text` to the protocol's chat limit (in bytes), on a character boundary.
pub fn chat_text(text: &str) -> String {
    let mut end = text.len().min(rotunda_proto::limits::MAX_CHAT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn handle_keys(
    keys: Res<ButtonInput<KeyCode>>,
    wants: Option<Res<EguiWantsInput>>,
    call: Option<Res<Call>>,
    mut devices: ResMut<Devices>,
    mut panels: ResMut<Panels>,
    (wall, mut full, mut opened): (Res<Wall>, ResMut<FullWindow>, MessageReader<OpenScreen>),
) {
    // A double-click on a screen on the wall: that one over the whole window.
    for OpenScreen(id) in opened.read() {
        full.showing = Some(*id);
    }
    if wants.is_some_and(|w| w.wants_keyboard_input()) {
        return;
    }
    if keys.just_pressed(KeyCode::KeyM) {
        let on = !devices.microphone_on;
        set_microphone(&mut devices, call.as_deref(), on);
    }
    if keys.just_pressed(KeyCode::KeyV) {
        let on = !devices.camera_on;
        set_camera(&mut devices, call.as_deref(), on);
    }
    // The browser's display went away (stopped from its bar, or refused): sharing ends.
    #[cfg(web)]
    if crate::devices::web::display_gone() {
        set_screen(&mut devices, call.as_deref(), false);
    }
    // Shift+S: S alone walks backwards.
    let shift = keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
    if shift && keys.just_pressed(KeyCode::KeyS) {
        let on = !devices.screen_on;
        set_screen(&mut devices, call.as_deref(), on);
    }
    if keys.just_pressed(KeyCode::F3) {
        panels.stats = !panels.stats;
    }
    // F: the first shared screen over the whole window, and back; Esc: back.
    if keys.just_pressed(KeyCode::KeyF) {
        full.showing = match full.showing {
            Some(_) => None,
            None => wall.shares.first().map(|(id, _)| *id),
        };
    }
    if keys.just_pressed(KeyCode::Escape) {
        full.showing = None;
    }
}

fn badge(ui: &mut egui::Ui, what: &str, state: &SourceState) {
    if let SourceState::Fallback(reason) = state {
        ui.label(
            egui::RichText::new(format!("⚠ no {what}"))
                .color(egui::Color32::BLACK)
                .background_color(egui::Color32::from_rgb(250, 180, 60)),
        )
        .on_hover_text(reason.as_str());
    }
}

/// The top bar; `width` is the window's, which decides how many side panels fit.
fn draw_top_bar(ui: &mut egui::Ui, room: &mut RoomUi, width: f32) {
    let RoomUi {
        settings,
        call,
        connection,
        stats,
        devices,
        meeting,
        sounds,
        panels,
        log,
        allowed,
        secured,
        ..
    } = room;
    let may_publish = allowed.0.publish;
    egui::Panel::top("top").show(ui, |ui| {
        // Wrapped: in a small window every control stays reachable, Leave included.
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("Rotunda · {}", settings.room));
            ui.separator();
            match &connection.reconnecting {
                Some((attempt, reason)) => {
                    ui.colored_label(
                        egui::Color32::from_rgb(240, 180, 60),
                        format!("reconnecting… (try {attempt})"),
                    )
                    .on_hover_text(reason.explain());
                }
                None => {
                    ui.label(format!("connected · {:.0} ms", stats.0.rtt_ms));
                }
            }
            ui.separator();
            lock_badge(ui, &secured.0);
            if !may_publish {
                ui.colored_label(egui::Color32::LIGHT_BLUE, "watching only")
                    .on_hover_text("Your access token does not let you publish in this room.");
            }
            let mut microphone = devices.microphone_on;
            if ui
                .add_enabled(
                    devices.microphone.sends() && may_publish,
                    egui::Checkbox::new(&mut microphone, "Microphone (M)"),
                )
                .changed()
            {
                set_microphone(devices, call.as_deref(), microphone);
            }
            let mut camera = devices.camera_on;
            if ui
                .add_enabled(
                    devices.camera.sends() && may_publish,
                    egui::Checkbox::new(&mut camera, "Camera (V)"),
                )
                .changed()
            {
                set_camera(devices, call.as_deref(), camera);
            }
            let mut screen = devices.screen_on;
            if ui
                .add_enabled(
                    devices.screen.sends() && may_publish,
                    egui::Checkbox::new(&mut screen, "Share screen (Shift+S)"),
                )
                .on_disabled_hover_text("No screen to capture here")
                .changed()
            {
                set_screen(devices, call.as_deref(), screen);
            }
            ui.checkbox(&mut meeting.0, "Meeting mode")
                .on_hover_text("Every voice centred, as in a flat call");
            ui.checkbox(&mut sounds.0, "Sounds")
                .on_hover_text("A chime when someone comes or goes, a blip for a chat line");
            ui.separator();
            let chat_label = if log.unread > 0 && !panels.chat {
                format!("Chat ({})", log.unread)
            } else {
                "Chat".to_owned()
            };
            if ui.selectable_label(panels.chat, chat_label).clicked() {
                panels.toggle_chat(width);
                if panels.chat {
                    log.unread = 0;
                }
            }
            if ui.selectable_label(panels.participants, "People").clicked() {
                panels.toggle_participants(width);
            }
            if ui.selectable_label(panels.stats, "Stats (F3)").clicked() {
                panels.stats = !panels.stats;
            }
            if ui.selectable_label(panels.invite, "Invite").clicked() {
                panels.invite = !panels.invite;
            }
            badge(ui, "camera", &devices.camera);
            badge(ui, "microphone", &devices.microphone);
            badge(ui, "speakers", &devices.speakers);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Leave").clicked()
                    && let Some(call) = &call
                {
                    call.leave();
                }
            });
        });
    });
}

/// The room's encryption in the top bar: a lock when media and chat are sealed end to end, a
/// plain warning when the relay can read them.
fn lock_badge(ui: &mut egui::Ui, security: &rotunda_engine::Security) {
    if !security.e2ee {
        ui.colored_label(
            egui::Color32::from_rgb(240, 180, 60),
            "⚠ not end-to-end encrypted",
        )
        .on_hover_text(
            "This room was created without end-to-end encryption: the relay can see and hear \
             everything in it.",
        );
    } else if security.ready {
        ui.colored_label(egui::Color32::LIGHT_GREEN, "🔒 end-to-end encrypted")
            .on_hover_text(
                "Video, voices and chat are sealed with keys only the people in this room hold. \
                 Compare the safety code (People) with theirs.",
            );
    } else {
        ui.colored_label(egui::Color32::LIGHT_BLUE, "🔒 securing…")
            .on_hover_text("Waiting for the room's keys: media flows once they arrive.");
    }
    ui.separator();
}

fn draw_participants(ui: &mut egui::Ui, room: &RoomUi) {
    let rows = &room.rows;
    if !room.panels.participants {
        return;
    }
    egui::Panel::left("people")
        .default_size(170.0)
        .show(ui, |ui| {
            ui.heading(format!("People ({})", rows.0.len()));
            if let Some(code) = &room.secured.0.safety_code {
                ui.label(egui::RichText::new("Safety code").small())
                    .on_hover_text(
                        "Everyone in the room sees the same code. Read it out: if theirs \
                         differs, someone is between you.",
                    );
                // Three groups a line, so the panel stays narrow.
                let groups: Vec<&str> = code.split(' ').collect();
                for line in groups.chunks(3) {
                    ui.monospace(line.join(" "));
                }
            } else if !room.secured.0.e2ee {
                ui.colored_label(
                    egui::Color32::from_rgb(240, 180, 60),
                    "Not end-to-end encrypted",
                );
            }
            ui.separator();
            // A big room's list scrolls; only the rows in sight are laid out.
            let row_height =
                ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show_rows(ui, row_height, rows.0.len(), |ui, range| {
                    for row in &rows.0[range] {
                        ui.horizontal(|ui| {
                            let name = if row.you {
                                format!("{} (you)", row.name)
                            } else {
                                row.name.clone()
                            };
                            let text = egui::RichText::new(name);
                            ui.label(if row.speaking {
                                text.color(egui::Color32::LIGHT_GREEN).strong()
                            } else {
                                text
                            });
                            if row.audio_muted {
                                ui.colored_label(egui::Color32::LIGHT_RED, "mic off");
                            }
                            if row.video_muted {
                                ui.colored_label(egui::Color32::LIGHT_RED, "cam off");
                            }
                        });
                    }
                });
        });
}

fn draw_chat(ui: &mut egui::Ui, room: &mut RoomUi) {
    let RoomUi {
        panels,
        log,
        call,
        allowed,
        ..
    } = room;
    let may_chat = allowed.0.chat;
    if !panels.chat {
        return;
    }
    log.unread = 0;
    egui::Panel::right("chat")
        .default_size(260.0)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Chat");
                if ui.small_button("×").clicked() {
                    panels.chat = false;
                }
            });
            ui.separator();
            let input_height = 36.0;
            egui::ScrollArea::vertical()
                .max_height(ui.available_height() - input_height)
                .stick_to_bottom(true)
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    for line in &log.lines {
                        ui.horizontal_wrapped(|ui| {
                            let name = egui::RichText::new(format!("{}:", line.name)).strong();
                            ui.label(if line.mine {
                                name.color(egui::Color32::LIGHT_BLUE)
                            } else {
                                name
                            });
                            ui.label(&line.text);
                        });
                    }
                });
            if !may_chat {
                ui.weak("Your access token does not let you chat in this room.");
                return;
            }
            let response = ui.add(
                egui::TextEdit::singleline(&mut log.draft)
                    .hint_text("Say something… (Enter)")
                    .desired_width(f32::INFINITY),
            );
            if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                let text = log.draft.trim().to_owned();
                if !text.is_empty()
                    && let Some(call) = &call
                {
                    call.send(Command::Chat(chat_text(&text)));
                }
                log.draft.clear();
                response.request_focus();
            }
        });
}

/// Renders the room only where the panels leave room for it, so nothing hides behind them.
fn fit_view(ctx: &egui::Context, free: egui::Rect, room: &mut RoomUi) {
    let scale = ctx.pixels_per_point();
    let min = UVec2::new(
        (free.min.x * scale).max(0.0) as u32,
        (free.min.y * scale).max(0.0) as u32,
    );
    let size = UVec2::new(
        (free.width() * scale).max(1.0) as u32,
        (free.height() * scale).max(1.0) as u32,
    );
    for (mut camera, _) in &mut room.cameras {
        let unchanged = camera
            .viewport
            .as_ref()
            .is_some_and(|v| v.physical_position == min && v.physical_size == size);
        if !unchanged && free.width() >= 16.0 && free.height() >= 16.0 {
            camera.viewport = Some(Viewport {
                physical_position: min,
                physical_size: size,
                ..default()
            });
        }
    }
}

/// Outside the room the whole window is the room's view again, and the side panels fit the
/// window anew on coming back.
fn reset_view(mut cameras: Query<&mut Camera, With<Ears>>, mut panels: ResMut<Panels>) {
    for mut camera in &mut cameras {
        camera.viewport = None;
    }
    panels.arrived = false;
}

fn draw_stats(ctx: &egui::Context, room: &RoomUi) {
    if !room.panels.stats {
        return;
    }
    let stats = &room.stats.0;
    egui::Window::new("Statistics")
        .anchor(egui::Align2::LEFT_BOTTOM, [12.0, -12.0])
        .resizable(false)
        .show(ctx, |ui| {
            ui.label(format!(
                "RTT {:.1} ms · out {:.0} kb/s · in {:.0} kb/s",
                stats.rtt_ms, stats.kbps_out, stats.kbps_in
            ));
            // What the relay thinks our link carries: it sends within it.
            if let Some(link) = stats.link_kbps {
                ui.label(format!("downlink estimate {link} kb/s (the relay's)"));
            }
            // The camera's layers someone receives (those alone are encoded).
            let layers: Vec<String> = (0..8)
                .filter(|n| stats.layers_sent & (1 << n) != 0)
                .map(|n| format!("L{n}"))
                .collect();
            if let Some(sent) = &stats.video_sent {
                let layers = if layers.is_empty() {
                    "none wanted".to_owned()
                } else {
                    layers.join(" ")
                };
                ui.label(format!("camera {sent} · encoding {layers}"));
            }
            egui::Grid::new("peers").striped(true).show(ui, |ui| {
                for header in [
                    "who",
                    "layer",
                    "fps",
                    "kb/s",
                    "audio loss",
                    "jitter",
                    "video",
                    "audio",
                ] {
                    ui.strong(header);
                }
                ui.end_row();
                for peer in &stats.peers {
                    let name = room
                        .participants
                        .iter()
                        .find(|(p, ..)| p.id == peer.id)
                        .map_or_else(|| peer.id.to_string(), |(p, ..)| p.name.clone());
                    ui.label(name);
                    ui.label(
                        peer.layer
                            .map_or_else(|| "paused".to_owned(), |l| format!("L{l}")),
                    );
                    ui.label(format!("{:.0}", peer.fps));
                    ui.label(format!("{:.0}", peer.kbps));
                    ui.label(format!("{:.1} %", peer.audio_loss * 100.0));
                    ui.label(format!("{} × 20 ms", peer.jitter_depth));
                    ui.label(format!("{:.0} ms", peer.video_latency_ms));
                    ui.label(format!("{:.0} ms", peer.audio_latency_ms));
                    ui.end_row();
                }
            });
        });
}

/// "You" over the self-view (the picture-in-picture of what our camera sends, mirrored).
fn draw_self_view_tag(ctx: &egui::Context, room: &RoomUi) {
    let (Some((camera, camera_transform)), Some((view, visibility))) =
        (room.cameras.iter().next(), room.self_view.iter().next())
    else {
        return;
    };
    if visibility == Visibility::Hidden {
        return;
    }
    // The quad is 0.24 x 0.18 m: its top-left corner.
    let corner = view.transform_point(Vec3::new(-0.12, 0.09, 0.0));
    let Ok(at) = camera.world_to_viewport(camera_transform, corner) else {
        return;
    };
    show_tag(
        ctx,
        egui::Id::new("self-view-tag"),
        egui::pos2(at.x + 4.0, at.y + 4.0),
        egui::Align2::LEFT_TOP,
        |ui| {
            ui.label(
                egui::RichText::new("You")
                    .small()
                    .color(egui::Color32::WHITE),
            );
        },
    );
}

/// A tag over the room's view with its `pivot` at `at`: a dark rounded box, not clickable.
fn show_tag(
    ctx: &egui::Context,
    id: egui::Id,
    at: egui::Pos2,
    pivot: egui::Align2,
    contents: impl FnOnce(&mut egui::Ui),
) {
    egui::Area::new(id)
        .fixed_pos(at)
        .pivot(pivot)
        .interactable(false)
        .order(egui::Order::Middle)
        .show(ctx, |ui| {
            egui::Frame::new()
                .fill(egui::Color32::from_black_alpha(170))
                .corner_radius(6.0)
                .inner_margin(egui::Margin::symmetric(8, 3))
                .show(ui, contents);
        });
}

/// Under every shared screen on the wall, whose it is.
fn draw_screen_tags(ctx: &egui::Context, room: &RoomUi) {
    let Some((camera, camera_transform)) = room.cameras.iter().next() else {
        return;
    };
    for (screen, transform) in &room.shared_screens {
        let (scale, _, centre) = transform.to_scale_rotation_translation();
        let below = centre - Vec3::Y * (scale.y / 2.0 + 0.05);
        let Ok(at) = camera.world_to_viewport(camera_transform, below) else {
            continue;
        };
        let name = room
            .participants
            .iter()
            .find(|(p, ..)| p.id == screen.id)
            .map_or_else(|| screen.id.to_string(), |(p, ..)| p.name.clone());
        show_tag(
            ctx,
            egui::Id::new(("screen-tag", screen.id.0)),
            egui::pos2(at.x, at.y),
            egui::Align2::CENTER_TOP,
            |ui| {
                ui.label(
                    egui::RichText::new(format!("{name}'s screen"))
                        .color(egui::Color32::WHITE)
                        .strong(),
                );
            },
        );
    }
}

/// How loud a voice is now: four bars of rising height, lit from the left as the level rises
/// (0..1; the first lights at [`model::SPEAKING_LEVEL`]).
fn voice_meter(ui: &mut egui::Ui, level: f32) {
    let (area, _) = ui.allocate_exact_size(egui::vec2(14.0, 11.0), egui::Sense::hover());
    for bar in 0..4u8 {
        let lit =
            level > model::SPEAKING_LEVEL + f32::from(bar) * (1.0 - model::SPEAKING_LEVEL) / 4.0;
        let height = 4.0 + 2.3 * f32::from(bar);
        let left = area.left() + f32::from(bar) * 3.6;
        let rect = egui::Rect::from_min_max(
            egui::pos2(left, area.bottom() - height),
            egui::pos2(left + 2.4, area.bottom()),
        );
        let colour = if lit {
            egui::Color32::from_rgb(90, 230, 120)
        } else {
            egui::Color32::from_gray(110)
        };
        ui.painter().rect_filled(rect, 0.5, colour);
    }
}

/// Name tags above every panel in sight, with the microphone state and a voice meter.
fn draw_name_tags(ctx: &egui::Context, room: &RoomUi) {
    let Some((camera, camera_transform)) = room.cameras.iter().next() else {
        return;
    };
    let reconnecting = room.connection.reconnecting.is_some();
    for (participant, muted, speaking, transform) in &room.participants {
        let above = transform.translation() + Vec3::Y * (PANEL_HEIGHT / 2.0 + 0.18);
        let Ok(at) = camera.world_to_viewport(camera_transform, above) else {
            continue;
        };
        // Only over the room's view, not over the side panels.
        if camera
            .logical_viewport_rect()
            .is_some_and(|view| !view.contains(at))
        {
            continue;
        }
        show_tag(
            ctx,
            egui::Id::new(("tag", participant.id.0)),
            egui::pos2(at.x, at.y),
            egui::Align2::CENTER_BOTTOM,
            |ui| {
                ui.horizontal(|ui| {
                    if muted.audio {
                        let (dot, _) =
                            ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                        ui.painter().circle_filled(
                            dot.center(),
                            4.5,
                            egui::Color32::from_rgb(220, 70, 70),
                        );
                    } else {
                        voice_meter(ui, speaking.0);
                    }
                    ui.label(
                        egui::RichText::new(&participant.name)
                            .color(egui::Color32::WHITE)
                            .strong(),
                    );
                    if reconnecting {
                        ui.colored_label(egui::Color32::from_rgb(240, 180, 60), "reconnecting");
                    } else if muted.audio {
                        ui.colored_label(egui::Color32::LIGHT_RED, "muted");
                    }
                });
            },
        );
    }
}
