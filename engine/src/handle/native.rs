//! Natively a call runs as a task on a tokio runtime of the application's, its video codecs on
//! threads of their own.

use std::collections::BTreeSet;

use rotunda_proto::{FromRelay, ParticipantId};

use super::EngineSide;
use crate::Error;
use crate::audio::Speakers;
use crate::call::{BotReport, CallConfig, CallEvent, Command, Decoded, PanelView, Sources};
use crate::codec::Wake;
use crate::codec::native::NativeCodecs;
use crate::driver::{self, Outputs, Parts};

/// Starts the call behind `side`'s handle on `runtime`, with the application's devices.
pub fn start(
    side: EngineSide,
    config: CallConfig,
    sources: Sources,
    speakers: Option<Box<dyn Speakers>>,
    runtime: &tokio::runtime::Handle,
) {
    let wake = Wake::default();
    let parts = Parts {
        config,
        codecs: Box::new(NativeCodecs::new(wake.clone())),
        sources,
        speakers,
        wake,
    };
    runtime.spawn(async move {
        let mut outputs = side.outputs;
        match driver::run(parts, side.commands, &mut outputs).await {
            Ok(report) => tracing::debug!(?report.error, "call over"),
            Err(error) => tracing::debug!(%error, "call could not start"),
        }
    });
}

/// What a bot sees: from the room's roster (everyone's id, ours among them) and our id, how tall
/// each panel appears (see [`run_bot_viewing`]).
pub type ViewFn = Box<dyn FnMut(&[ParticipantId], ParticipantId) -> Vec<PanelView> + Send>;

/// A participant without a window: publishes the synthetic pattern and tone, decodes everyone,
/// prints a status line a second when `status`, and returns what it saw (or why it could not
/// join). Runs on the current tokio runtime.
pub async fn run_bot(config: CallConfig, status: bool) -> Result<BotReport, Error> {
    run_bot_viewing(config, status, None).await
}

/// A bot that, with `view`, tells the relay what a window standing in its place would see
/// (asked again whenever someone comes or goes, and once a second); without, it takes every
/// video whole.
pub async fn run_bot_viewing(
    config: CallConfig,
    status: bool,
    view: Option<ViewFn>,
) -> Result<BotReport, Error> {
    run_bot_until(
        config,
        Sources::default(),
        status,
        view,
        std::future::pending(),
    )
    .await
}

/// [`run_bot_viewing`] with the given `sources` (a screen to share), that leaves the room early,
/// with its report, once `leave` is ready (the command line's Ctrl-C).
pub async fn run_bot_until(
    config: CallConfig,
    sources: Sources,
    status: bool,
    view: Option<ViewFn>,
    leave: impl Future<Output = ()>,
) -> Result<BotReport, Error> {
    let wake = Wake::default();
    let name = config.join.name.clone();
    let parts = Parts {
        config: CallConfig {
            presented: false,
            ..config
        },
        codecs: Box::new(NativeCodecs::new(wake.clone())),
        sources,
        speakers: None,
        wake,
    };
    let (commands_tx, commands) = tokio::sync::mpsc::channel(16);
    let leaving = commands_tx.clone();
    let mut console = Console {
        name,
        status,
        view,
        commands: commands_tx,
        you: None,
        present: BTreeSet::new(),
    };
    let call = driver::run(parts, commands, &mut console);
    tokio::pin!(call);
    tokio::select! {
        report = &mut call => return report,
        () = leave => {}
    }
    // The call leaves as it would at its end: a leave message, then the report.
    let _ = leaving.send(Command::Leave).await;
    call.await
}

/// A bot's output: status lines on stdout, and its view when it has one.
struct Console {
    name: String,
    status: bool,
    view: Option<ViewFn>,
    commands: tokio::sync::mpsc::Sender<Command>,
    you: Option<ParticipantId>,
    present: BTreeSet<ParticipantId>,
}

impl Console {
    fn look(&mut self) {
        let (Some(view), Some(you)) = (&mut self.view, self.you) else {
            return;
        };
        let ids: Vec<ParticipantId> = self.present.iter().copied().chain([you]).collect();
        let mut ids = ids;
        ids.sort();
        let panels = view(&ids, you);
        // A full queue drops this view; the next change sends a newer one.
        let _ = self.commands.try_send(Command::View(panels));
    }
}

impl Outputs for Console {
    fn event(&mut self, event: CallEvent) {
        match &event {
            CallEvent::Joined { you, roster, .. } | CallEvent::Rejoined { you, roster } => {
                self.you = Some(*you);
                self.present = roster.iter().map(|p| p.id).collect();
                self.look();
            }
            CallEvent::Relay(FromRelay::ParticipantJoined(info)) => {
                self.present.insert(info.id);
                self.look();
            }
            CallEvent::Relay(FromRelay::ParticipantLeft { id, .. }) => {
                self.present.remove(id);
                self.look();
            }
            _ => {}
        }
        if matches!(event, CallEvent::Stats(_)) {
            // Once a second: a view that changes with time (see `--view-cycle`) is seen.
            self.look();
        }
        match event {
            CallEvent::Stats(live) if self.status => {
                println!("{}", live.status_line(&self.name));
            }
            CallEvent::Reconnecting { attempt, reason } if self.status => {
                println!("[{}] reconnecting (try {attempt}): {reason}", self.name);
            }
            CallEvent::Rejoined { you, .. } if self.status => {
                println!("[{}] back in the room as {you}", self.name);
            }
            _ => {}
        }
    }

    fn picture(&mut self, _picture: Decoded) {}

    fn pose(&mut self, _id: ParticipantId, _pose: rotunda_proto::Pose) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_handle_can_be_shared_with_the_applications_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<crate::Engine>();
    }
}
