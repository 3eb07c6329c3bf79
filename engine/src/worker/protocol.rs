//! What the page and the engine's worker say to each other. Each message is postcard bytes in a
//! `Uint8Array` under `message`, beside the objects that must travel as themselves: the camera's
//! frames (a `ReadableStream`), the microphone's and the speakers' `MessagePort`s, a picture's
//! planes (an `ArrayBuffer`, transferred, not copied).

use rotunda_proto::{ParticipantId, Pose, TrackSource};
use serde::{Deserialize, Serialize};

use crate::call::{CallConfig, CallEvent, Command};

/// From the page to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Start the call. The camera, microphone and speakers come beside it when the page has
    /// them (the synthetic pattern and tone stand in otherwise).
    Start(Box<CallConfig>),
    /// A display to share (the page's `getDisplayMedia`): its frames' stream comes beside
    /// (`screen`).
    Screen,
    /// A command for the call.
    Command(Command),
    /// The page drew a frame: the newest pictures may come (one per participant, at most once a
    /// frame, so a page that draws seldom is not sent pictures it never shows).
    Drawn,
}

/// From the worker to the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// A call event.
    Event(CallEvent),
    /// The newest poses.
    Poses(Vec<(ParticipantId, Pose)>),
    /// A decoded picture, I420; its planes travel beside the message.
    Picture {
        /// Whose.
        id: ParticipantId,
        /// Their camera or their shared screen.
        source: TrackSource,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A line for the page's console (the browser test reads `rotunda:` lines there).
    Log {
        /// An error (`console.error`) rather than news.
        error: bool,
        /// The line.
        line: String,
    },
    /// The call is over and the worker stops.
    Done,
}

/// A message as bytes.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(message)
}

/// A message from bytes; an error for anything that is not one.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::JoinOptions;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let start = ToWorker::Start(Box::new(CallConfig::new(JoinOptions {
            relay: "https://127.0.0.1:4443".into(),
            cert_hash: Some([7; 32]),
            room: "lobby".into(),
            name: "ada".into(),
            token: None,
            e2ee: false,
        })));
        let bytes = encode(&start).expect("encodes");
        assert_eq!(decode::<ToWorker>(&bytes).expect("decodes"), start);
        let event = FromWorker::Event(CallEvent::Levels(vec![(ParticipantId(3), 0.5)]));
        let bytes = encode(&event).expect("encodes");
        assert_eq!(decode::<FromWorker>(&bytes).expect("decodes"), event);
        assert!(decode::<FromWorker>(&[0xff, 0xff, 0xff]).is_err());
    }
}
