//! Scripted runs, for tests and the README picture: leave after `--duration`, write
//! `--stats-json` at the end, look closely at `--focus NAME` once they are here, save
//! `--screenshot` once the room has been up for `--screenshot-after` and every shader is
//! compiled, then exit.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::render_resource::PipelineCache;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::render::{Render, RenderApp, RenderSystems};

use crate::call::CallEnded;
use crate::settings::Settings;
use crate::state::Screen;

pub(super) fn plugin(app: &mut App) {
    let ready = PipelinesReady::default();
    app.insert_resource(ready.clone());
    app.init_resource::<Script>();
    if let Some(render) = app.get_sub_app_mut(RenderApp) {
        render
            .insert_resource(ready)
            .add_systems(Render, report_pipelines.in_set(RenderSystems::Cleanup));
    }
    app.add_systems(OnEnter(Screen::InRoom), note_entry);
    app.add_systems(First, note_first_frame);
    app.add_systems(
        Update,
        (take_screenshot, write_stats, exit_when_done).chain(),
    );
    app.add_systems(
        Update,
        focus_as_asked
            .after(crate::AppSystems::Update)
            .run_if(in_state(Screen::InRoom)),
    );
}

/// `--focus NAME`: as if the user clicked that person's panel, once, when they are here;
/// `--focus screen`: as if they pressed F once a screen is shared.
fn focus_as_asked(
    settings: Res<Settings>,
    participants: Query<&crate::participants::Participant>,
    avatars: Query<(&crate::room::avatar::Avatar, &Transform)>,
    mut focus: ResMut<crate::room::focus::Focus>,
    (wall, mut full): (Res<crate::room::wall::Wall>, ResMut<crate::ui::FullWindow>),
    mut done: Local<bool>,
) {
    let Some(name) = &settings.focus else {
        return;
    };
    if *done {
        return;
    }
    if name == "screen" {
        // The first shared screen over the whole window, as F shows it.
        if let Some((id, _)) = wall.shares.first() {
            full.showing = Some(*id);
            *done = true;
        }
        return;
    }
    let found = participants.iter().find(|p| &p.name == name);
    if let (Some(participant), Some((avatar, transform))) = (found, avatars.iter().next()) {
        focus.look_at(participant.id, avatar, transform.translation);
        *done = true;
    }
}

/// Set by the render world when no pipeline is waiting to compile.
#[derive(Resource, Clone, Default)]
pub struct PipelinesReady(Arc<AtomicBool>);

#[derive(Resource, Default)]
struct Script {
    /// When the room was entered, in real time (virtual time lags on a slow renderer).
    entered: Option<Duration>,
    screenshot_requested: bool,
    screenshot_saved: Arc<AtomicBool>,
    ended: bool,
    failed: bool,
}

fn report_pipelines(cache: Res<PipelineCache>, ready: Res<PipelinesReady>) {
    let waiting = cache.waiting_pipelines().count();
    let was = ready.0.swap(waiting == 0, Ordering::Relaxed);
    if was != (waiting == 0) {
        debug!(waiting, "pipelines ready: {}", waiting == 0);
    }
}

/// Says when the first frame has been drawn (the browser test measures the time to it).
fn note_first_frame(frames: Res<bevy::diagnostic::FrameCount>, time: Res<Time<Real>>) {
    if frames.0 == 1 {
        info!(
            "rotunda:first-frame after {:.0} ms",
            time.elapsed().as_secs_f64() * 1000.0
        );
    }
}

fn note_entry(time: Res<Time<Real>>, mut script: ResMut<Script>) {
    if script.entered.is_none() {
        script.entered = Some(time.elapsed());
    }
}

fn take_screenshot(
    time: Res<Time<Real>>,
    settings: Res<Settings>,
    ready: Res<PipelinesReady>,
    mut script: ResMut<Script>,
    mut commands: Commands,
) {
    let (Some(path), Some(entered)) = (&settings.screenshot, script.entered) else {
        return;
    };
    if script.screenshot_requested
        || time.elapsed().saturating_sub(entered) < settings.screenshot_after
        || !ready.0.load(Ordering::Relaxed)
    {
        return;
    }
    script.screenshot_requested = true;
    info!("taking the screenshot {}", path.display());
    let saved = script.screenshot_saved.clone();
    commands
        .spawn(Screenshot::primary_window())
        .observe(save_to_disk(path.clone()))
        .observe(move |_: On<ScreenshotCaptured>| saved.store(true, Ordering::Relaxed));
}

fn write_stats(
    mut ended: MessageReader<CallEnded>,
    settings: Res<Settings>,
    mut script: ResMut<Script>,
) {
    let Some(end) = ended.read().last() else {
        return;
    };
    script.ended = true;
    script.failed = end.report.is_none() || end.error.is_some();
    if let Some(error) = &end.error {
        eprintln!("rotunda: {error}");
    }
    let (Some(path), Some(report)) = (&settings.stats_json, &end.report) else {
        return;
    };
    if let Err(error) = write_json(path, report) {
        eprintln!("rotunda: cannot write {}: {error}", path.display());
    }
}

fn write_json(path: &Path, report: &impl serde::Serialize) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// A scripted run exits once the call ended (with `--duration`) and the screenshot is saved.
fn exit_when_done(
    settings: Res<Settings>,
    script: Res<Script>,
    time: Res<Time<Real>>,
    mut frames: Local<u64>,
    mut exit: MessageWriter<AppExit>,
) {
    *frames += 1;
    let scripted = settings.duration.is_some() || settings.screenshot.is_some();
    if !scripted {
        return;
    }
    let screenshot_done =
        settings.screenshot.is_none() || script.screenshot_saved.load(Ordering::Relaxed);
    // With a duration, wait for the call's end; a screenshot-only run ends with the picture.
    let call_done = settings.duration.is_none() || script.ended;
    // A call that ended before the screenshot could be taken ends the run too.
    let gave_up = script.ended && !script.screenshot_requested;
    if (screenshot_done && call_done) || gave_up {
        let failed = script.failed || (gave_up && settings.screenshot.is_some());
        if gave_up && settings.screenshot.is_some() {
            eprintln!("rotunda: the call ended before the screenshot could be taken");
        }
        info!(
            frames = *frames,
            seconds = time.elapsed_secs(),
            "scripted run over"
        );
        exit.write(if failed {
            AppExit::error()
        } else {
            AppExit::Success
        });
    }
}
