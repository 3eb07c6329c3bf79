//! Natively a call runs as a task on a tokio runtime of the application's, its video codecs on
//! threads of their own.

use super::EngineSide;
use crate::Error;
use crate::audio::Speakers;
use crate::call::{BotReport, CallConfig, CallEvent, Sources};
use crate::codec::Wake;
use crate::codec::native::NativeCodecs;
use crate::driver::{self, Outputs, Parts};
use crate::media::VideoFrame;

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

/// A participant without a window: publishes the synthetic pattern and tone, decodes everyone,
/// prints a status line a second when `status`, and returns what it saw (or why it could not
/// join). Runs on the current tokio runtime.
pub async fn run_bot(config: CallConfig, status: bool) -> Result<BotReport, Error> {
    let wake = Wake::default();
    let name = config.join.name.clone();
    let parts = Parts {
        config: CallConfig {
            presented: false,
            ..config
        },
        codecs: Box::new(NativeCodecs::new(wake.clone())),
        sources: Sources::default(),
        speakers: None,
        wake,
    };
    // A bot takes no commands: the channel stays open (and empty) for the whole call.
    let (_commands, commands) = tokio::sync::mpsc::channel(1);
    let mut console = Console { name, status };
    driver::run(parts, commands, &mut console).await
}

/// A bot's output: status lines on stdout.
struct Console {
    name: String,
    status: bool,
}

impl Outputs for Console {
    fn event(&mut self, event: CallEvent) {
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

    fn picture(&mut self, _id: rotunda_proto::ParticipantId, _frame: VideoFrame) {}

    fn pose(&mut self, _id: rotunda_proto::ParticipantId, _pose: rotunda_proto::Pose) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_handle_can_be_shared_with_the_applications_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<crate::Engine>();
    }
}
