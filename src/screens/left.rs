//! The screen after leaving: why the call ended, and a way back in. A lost connection is retried
//! on its own, with a growing pause.

use std::time::Duration;

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use super::Screen;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<LeftReason>();
    app.add_systems(Update, retry_after_pause.run_if(in_state(Screen::Left)));
    app.add_systems(
        EguiPrimaryContextPass,
        draw_left.run_if(in_state(Screen::Left)),
    );
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
