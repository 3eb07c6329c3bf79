//! The browser's side of the call's end-to-end encryption, for now: rooms without it work as
//! natively; an encrypted room is refused with [`crate::Error::NoE2ee`] (see the module above).

use rotunda_proto::{FromRelay, MediaFrame, MediaHeader, ParticipantId, ToRelay};
use web_time::Instant;

use super::{Outcome, Security};

/// No group: media and chat pass as they are, in rooms that are not encrypted.
pub(in crate::call) struct Secure {
    e2ee: bool,
    /// Always 0 here: nothing is opened.
    pub(in crate::call) refused: u64,
}

impl Secure {
    pub(in crate::call) fn new() -> Self {
        Self {
            e2ee: false,
            refused: 0,
        }
    }

    /// The welcome: whether the room is encrypted (the call then ends, [`Secure::unsupported`]).
    pub(in crate::call) fn welcome(
        &mut self,
        _you: ParticipantId,
        _identity: &str,
        e2ee: bool,
        _resumed: bool,
        _roster: impl IntoIterator<Item = (ParticipantId, String)>,
    ) -> Option<ToRelay> {
        self.e2ee = e2ee;
        None
    }

    /// The room is encrypted and this build cannot take part.
    pub(in crate::call) fn unsupported(&self) -> bool {
        self.e2ee
    }

    pub(in crate::call) fn joined(&mut self, _id: ParticipantId, _identity: &str) {}

    pub(in crate::call) fn left(&mut self, _id: ParticipantId) {}

    pub(in crate::call) fn e2ee(&self) -> bool {
        self.e2ee
    }

    pub(in crate::call) fn security(&self) -> Security {
        Security {
            e2ee: self.e2ee,
            ..Security::default()
        }
    }

    pub(in crate::call) fn handle(&mut self, _message: &FromRelay, _now: Instant) -> Outcome {
        Outcome::default()
    }

    pub(in crate::call) fn seal_chat(&mut self, _text: &str) -> Option<ToRelay> {
        None
    }

    pub(in crate::call) fn seal(
        &mut self,
        header: MediaHeader,
        payload: &[u8],
    ) -> Option<MediaFrame> {
        (!self.e2ee).then(|| MediaFrame::new(header, payload))
    }

    pub(in crate::call) fn open(&mut self, frame: MediaFrame, _now: Instant) -> Option<MediaFrame> {
        (!self.e2ee).then_some(frame)
    }
}
