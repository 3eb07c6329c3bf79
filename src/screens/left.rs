//! The screen after leaving: why the call ended, and a way back in. A lost connection is retried
//! on its own, with a growing pause.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use crate::AppSystems;
use crate::call::{CallEnded, CallJoined, Error};
use crate::settings::Settings;
use crate::state::{LeftReason, Retry, Screen};

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Update, follow_call_end.in_set(AppSystems::Update));
    app.add_systems(Update, retry_after_pause.run_if(in_state(Screen::Left)));
    app.add_systems(
        EguiPrimaryContextPass,
        draw_left.run_if(in_state(Screen::Left)),
    );
}

/// Follows the call: into the room once joined; to this screen when the call ends, with the
/// reason and an automatic retry for a lost connection.
fn follow_call_end(
    mut ended: MessageReader<CallEnded>,
    mut joined: MessageReader<CallJoined>,
    screen: Res<State<Screen>>,
    mut next: ResMut<NextState<Screen>>,
    mut reason: ResMut<LeftReason>,
    settings: Res<Settings>,
) {
    if joined.read().last().is_some() && *screen.get() == Screen::Connecting {
        reason.retry = None;
        next.set(Screen::InRoom);
    }
    let Some(end) = ended.read().last() else {
        return;
    };
    // Only a call being joined or in progress leads to the left screen.
    if !matches!(screen.get(), Screen::Connecting | Screen::InRoom) {
        return;
    }
    let attempt = reason.retry.as_ref().map_or(0, |r| r.attempt + 1);
    // A scripted run does not retry: it reports and exits.
    let retry = end.retry && settings.duration.is_none() && settings.screenshot.is_none();
    *reason = LeftReason {
        message: end.error.as_ref().map(Error::explain),
        retry: retry.then(|| Retry::after(attempt)),
    };
    next.set(Screen::Left);
}

fn retry_after_pause(
    time: Res<Time>,
    mut reason: ResMut<LeftReason>,
    mut next: ResMut<NextState<Screen>>,
) {
    let Some(retry) = &mut reason.retry else {
        return;
    };
    if retry.timer.tick(time.delta()).just_finished() {
        next.set(Screen::Connecting);
    }
}

fn draw_left(
    mut contexts: EguiContexts,
    mut reason: ResMut<LeftReason>,
    mut next: ResMut<NextState<Screen>>,
    mut exit: MessageWriter<AppExit>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let mut root = crate::ui::root_ui(ctx, "screen");
    egui::CentralPanel::default().show(&mut root, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() * 0.3);
            match &reason.message {
                Some(message) => {
                    ui.heading("The call ended");
                    ui.colored_label(egui::Color32::LIGHT_RED, message);
                }
                None => {
                    ui.heading("You left the room");
                }
            }
            if let Some(retry) = &reason.retry {
                ui.label(format!(
                    "Reconnecting in {:.0} s (attempt {}) …",
                    retry.timer.remaining_secs().ceil(),
                    retry.attempt + 1
                ));
            }
            ui.add_space(12.0);
            crate::ui::centred(ui, 210.0, |ui| {
                ui.horizontal(|ui| {
                    if ui.button("Rejoin").clicked() {
                        reason.retry = None;
                        next.set(Screen::Connecting);
                    }
                    if ui.button("Change room").clicked() {
                        reason.retry = None;
                        next.set(Screen::Join);
                    }
                    if ui.button("Quit").clicked() {
                        exit.write(AppExit::Success);
                    }
                });
            });
        });
    });
    Ok(())
}
