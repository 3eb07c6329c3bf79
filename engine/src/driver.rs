//! The one driver of a [`Call`], for both platforms: it carries what the transport received,
//! what the application asked and what the codecs delivered into the call, and does what the
//! call says (connect, send, leave). It waits on all of them at once and on the call's next
//! timer, so the call runs as often as something happens and never polls.
//!
//! What differs per platform is only what it is given: the runtime behind [`rt`], the
//! transport's [`Session`], the codecs, the sources and the speakers. Natively it runs as a tokio
//! task; in the browser in a dedicated worker.

use std::time::Duration;

use rotunda_proto::{ParticipantId, Pose};
use tokio::sync::mpsc;
use web_time::Instant;

use crate::audio::Speakers;
use crate::call::{
    Action, BotReport, Call, CallConfig, CallEvent, Command, Decoded, Joined, Sources,
};
use crate::codec::{Codecs, Wake};
use crate::transport::{self, Event, Session};
use crate::{Error, rt};

/// How often the speakers are topped up.
const RENDER_EVERY: Duration = Duration::from_millis(5);
/// Most stereo frames rendered at once (100 ms).
const RENDER_MAX: usize = 4_800;
/// Events taken from the transport in one turn, at most.
const EVENTS_PER_TURN: usize = 256;
/// A turn of the loop that starts this late, or takes this long, is reported (at most once per
/// [`STALL_REPORT_EVERY`]): the machine is too busy for the call to keep time.
const STALL: Duration = Duration::from_millis(100);
const STALL_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Where the call's output goes: the application (through channels and mailboxes natively, or
/// messages to the page from a worker), or a bot's console.
pub trait Outputs {
    /// An event.
    fn event(&mut self, event: CallEvent);
    /// A participant's newest picture of a camera or a shared screen.
    fn picture(&mut self, picture: Decoded);
    /// A participant's newest pose.
    fn pose(&mut self, id: ParticipantId, pose: Pose);
    /// The end of a turn: what was batched may go.
    fn flush(&mut self) {}
}

/// What a call is made of.
pub struct Parts {
    /// What it does.
    pub config: CallConfig,
    /// Its codecs.
    pub codecs: Box<dyn Codecs>,
    /// Its camera and microphone.
    pub sources: Sources,
    /// What the mix plays on, when anyone listens.
    pub speakers: Option<Box<dyn Speakers>>,
    /// What the codecs wake the driver with.
    pub wake: Wake,
}

/// A connection try's outcome, with the number of the try it answers.
type Connected = (u64, Result<(Session, Joined, mpsc::Receiver<Event>), Error>);

/// Runs a call to its end; `commands` closing counts as leaving. Returns what the call saw, or
/// why it could not join.
pub async fn run(
    parts: Parts,
    mut commands: mpsc::Receiver<Command>,
    out: &mut impl Outputs,
) -> Result<BotReport, Error> {
    let Parts {
        config,
        codecs,
        sources,
        mut speakers,
        wake,
    } = parts;
    let mut call = Call::new(config, codecs, sources, Instant::now(), rt::wall_clock_us());
    let mut session: Option<(Session, mpsc::Receiver<Event>)> = None;
    let (connected_tx, mut connected) = mpsc::channel::<Connected>(4);
    let mut tries = 0u64;
    let mut commands_open = true;
    let mut mix = Vec::new();
    let mut next_render = Instant::now();
    let mut report = None;
    let mut failed = None;
    let mut turn_started = Instant::now();
    let mut stalls = Stalls::default();
    loop {
        while let Some(action) = call.poll_action() {
            match action {
                Action::Connect {
                    options,
                    resume,
                    timeout,
                } => {
                    tries += 1;
                    let attempt = tries;
                    let done = connected_tx.clone();
                    rt::spawn(async move {
                        let result = tokio::select! {
                            biased;
                            result = transport::connect(&options, resume) => result,
                            () = rt::sleep_until(Instant::now() + timeout) => Err(Error::JoinTimeout {
                                seconds: timeout.as_secs(),
                            }),
                        };
                        let _ = done.send((attempt, result)).await;
                    });
                }
                Action::Send(message) => {
                    if let Some((live, _)) = &session {
                        match live.send(message) {
                            Ok(()) => {}
                            Err(Error::Lost) => {
                                session = None;
                                call.handle_closed(Error::Lost, Instant::now());
                            }
                            Err(error) => tracing::warn!(%error, "control message dropped"),
                        }
                    }
                }
                Action::SendAudio(frame) => {
                    if let Some((live, _)) = &session
                        && live.send_audio(&frame).is_err()
                    {
                        session = None;
                        call.handle_closed(Error::Lost, Instant::now());
                    }
                }
                Action::SendVideo(frame) => {
                    let index = frame.header.track.index;
                    if let Some((live, _)) = &session
                        && !live.send_video(frame)
                    {
                        call.handle_video_refused(index);
                    }
                }
                Action::Disconnect => session = None,
                Action::Leave => {
                    if let Some((live, _)) = session.take() {
                        live.leave().await;
                    }
                    call.handle_left(Instant::now());
                }
            }
        }
        while let Some(event) = call.poll_event() {
            match &event {
                CallEvent::Ended { report: seen, .. } => report = Some((**seen).clone()),
                CallEvent::Failed(error) => failed = Some(error.clone()),
                _ => {}
            }
            out.event(event);
        }
        while let Some(picture) = call.poll_picture() {
            out.picture(picture);
        }
        while let Some((id, pose)) = call.poll_pose() {
            out.pose(id, pose);
        }
        out.flush();
        if call.is_over() {
            break;
        }
        let now = Instant::now();
        if let Some(speakers) = &mut speakers
            && now >= next_render
        {
            next_render = now + RENDER_EVERY;
            let frames = speakers.wanted(now).min(RENDER_MAX);
            if frames > 0 {
                mix.resize(frames * 2, 0.0);
                call.render(&mut mix);
                speakers.play(&mix);
            }
        }
        let mut wake_at = call.poll_timeout();
        if speakers.is_some() {
            wake_at = wake_at.min(next_render);
        }
        let busy = Instant::now().saturating_duration_since(turn_started);
        tokio::select! {
            biased;
            answer = connected.recv() => {
                if let Some((attempt, result)) = answer {
                    let now = Instant::now();
                    match result {
                        // Only the newest try counts; an older one's session just closes.
                        Ok(_) if attempt != tries => {}
                        Ok((live, joined, events)) => {
                            session = Some((live, events));
                            call.handle_connected(joined, now);
                        }
                        Err(error) if attempt == tries => call.handle_connect_failed(error, now),
                        Err(_) => {}
                    }
                }
            }
            command = commands.recv(), if commands_open => {
                let now = Instant::now();
                match command {
                    Some(command) => {
                        call.handle_command(command, now);
                        // Whatever else is queued, in the same turn.
                        while let Ok(command) = commands.try_recv() {
                            call.handle_command(command, now);
                        }
                    }
                    None => {
                        // The application is gone: that is leaving.
                        commands_open = false;
                        call.handle_command(Command::Leave, now);
                    }
                }
            }
            event = next_event(&mut session) => {
                let now = Instant::now();
                let mut event = event;
                for _ in 0..EVENTS_PER_TURN {
                    match event {
                        Some(Event::Control(message)) => call.handle_message(message, now),
                        Some(Event::Media(frame, kind)) => call.handle_media(frame, kind, now),
                        Some(Event::Closed(error)) => {
                            session = None;
                            call.handle_closed(error, now);
                            break;
                        }
                        None => {
                            session = None;
                            call.handle_closed(Error::Lost, now);
                            break;
                        }
                    }
                    event = match &mut session {
                        Some((_, events)) => match events.try_recv() {
                            Ok(next) => Some(next),
                            Err(_) => break,
                        },
                        None => break,
                    };
                }
            }
            () = wake.notified() => {}
            () = rt::sleep_until(wake_at) => {}
        }
        turn_started = Instant::now();
        stalls.check(
            busy,
            turn_started.saturating_duration_since(wake_at),
            turn_started,
        );
        call.handle_timeout(turn_started);
    }
    match (report, failed) {
        (Some(report), _) => Ok(report),
        (None, Some(error)) => Err(error),
        (None, None) => Ok(call.report(Instant::now())),
    }
}

/// Turns of the loop that came late or took long, reported now and then.
#[derive(Default)]
struct Stalls {
    count: u64,
    worst_late: Duration,
    worst_busy: Duration,
    reported: Option<Instant>,
}

impl Stalls {
    fn check(&mut self, busy: Duration, late: Duration, now: Instant) {
        if busy < STALL && late < STALL {
            return;
        }
        self.count += 1;
        self.worst_late = self.worst_late.max(late);
        self.worst_busy = self.worst_busy.max(busy);
        if self
            .reported
            .is_some_and(|at| now.saturating_duration_since(at) < STALL_REPORT_EVERY)
        {
            return;
        }
        tracing::warn!(
            stalls = self.count,
            late_ms = self.worst_late.as_millis() as u64,
            busy_ms = self.worst_busy.as_millis() as u64,
            "the call's loop is held up: the machine is too busy for it to keep time"
        );
        self.reported = Some(now);
        self.count = 0;
        self.worst_late = Duration::ZERO;
        self.worst_busy = Duration::ZERO;
    }
}

/// The next event of the session; never, without one.
async fn next_event(session: &mut Option<(Session, mpsc::Receiver<Event>)>) -> Option<Event> {
    match session {
        Some((_, events)) => events.recv().await,
        None => std::future::pending().await,
    }
}
