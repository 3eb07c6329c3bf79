//! Our member of the room's group, sealing and opening (see the module above).

use std::collections::{HashMap, HashSet, VecDeque};

use rotunda_e2ee::{Error as E2eeError, Member};

use crate::call::report::E2eeCost;
use rotunda_proto::{FromRelay, MediaFrame, MediaHeader, ParticipantId, ToRelay, TrackId};

use super::{Outcome, Security};
use web_time::Instant;

/// Our side of the room's group.
pub(in crate::call) struct Secure {
    /// The room is end-to-end encrypted (the welcome said).
    e2ee: bool,
    you: Option<ParticipantId>,
    member: Option<Member>,
    /// Everyone's identity, for their labels.
    identities: HashMap<ParticipantId, String>,
    /// Chat lines said before we held the group's keys.
    pending_chat: VecDeque<String>,
    /// Frames that did not open (no key for their epoch, or altered).
    pub(in crate::call) refused: u64,
    /// What sealing and opening cost so far.
    pub(in crate::call) cost: E2eeCost,
    /// Times we asked to be added to the group again (a commit or welcome did not apply).
    pub(in crate::call) rejoins: u64,
}

fn label(id: ParticipantId, identity: &str) -> String {
    format!("{}:{identity}", id.0)
}

/// The id a label names.
fn id_of(label: &str) -> Option<ParticipantId> {
    label
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .map(ParticipantId)
}

/// What a header authenticates: everything but the publisher's id and the payload length.
fn aad(header: &MediaHeader) -> [u8; MediaHeader::LEN] {
    MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index: header.track.index,
        },
        payload_len: 0,
        ..*header
    }
    .encode()
}

impl Secure {
    pub(in crate::call) fn new() -> Self {
        Self {
            e2ee: false,
            you: None,
            member: None,
            identities: HashMap::new(),
            pending_chat: VecDeque::new(),
            refused: 0,
            cost: E2eeCost::default(),
            rejoins: 0,
        }
    }

    /// The welcome: our id and identity, whether the room is encrypted, who is here. Returns
    /// our key package to send, when the room is encrypted. A connection that takes our place
    /// back (resumed) may have missed group messages on the way: we are added again with a
    /// fresh member rather than risk keys that went astray.
    pub(in crate::call) fn welcome(
        &mut self,
        you: ParticipantId,
        identity: &str,
        e2ee: bool,
        roster: impl IntoIterator<Item = (ParticipantId, String)>,
    ) -> Option<ToRelay> {
        self.e2ee = e2ee;
        self.identities = roster.into_iter().collect();
        self.identities.insert(you, identity.to_owned());
        self.you = Some(you);
        if !e2ee {
            self.member = None;
            return None;
        }
        self.fresh_member()
    }

    /// A new member of our own, out of the group until the relay has it added: its key package
    /// to send.
    fn fresh_member(&mut self) -> Option<ToRelay> {
        let you = self.you?;
        let identity = self.identities.get(&you)?;
        let member = match Member::new(&label(you, identity)) {
            Ok(member) => member,
            Err(error) => {
                tracing::error!(%error, "no end-to-end encryption: cannot make our MLS member");
                self.member = None;
                return None;
            }
        };
        let package = member.key_package();
        self.member = Some(member);
        match package {
            Ok(package) => Some(ToRelay::KeyPackage { package }),
            Err(error) => {
                tracing::error!(%error, "cannot make our MLS key package");
                None
            }
        }
    }

    /// Someone joined.
    pub(in crate::call) fn joined(&mut self, id: ParticipantId, identity: &str) {
        self.identities.insert(id, identity.to_owned());
    }

    /// Someone left.
    pub(in crate::call) fn left(&mut self, id: ParticipantId) {
        self.identities.remove(&id);
    }

    /// The room is end-to-end encrypted.
    pub(in crate::call) fn e2ee(&self) -> bool {
        self.e2ee
    }

    /// We hold the group's current keys.
    pub(in crate::call) fn ready(&self) -> bool {
        self.member.as_ref().is_some_and(Member::in_group)
    }

    /// The state to show.
    pub(in crate::call) fn security(&self) -> Security {
        let member = self.member.as_ref().filter(|m| m.in_group());
        Security {
            e2ee: self.e2ee,
            ready: member.is_some(),
            epoch: member.and_then(Member::epoch),
            safety_code: member.and_then(Member::safety_code),
            members: member.map_or(0, |m| m.members().len()),
        }
    }

    /// A group message from the relay.
    pub(in crate::call) fn handle(&mut self, message: &FromRelay, now: Instant) -> Outcome {
        let mut outcome = Outcome::default();
        if !self.e2ee {
            return outcome;
        }
        let roster: HashSet<String> = self
            .identities
            .iter()
            .map(|(id, identity)| label(*id, identity))
            .collect();
        let Some(member) = self.member.as_mut() else {
            return outcome;
        };
        let result = match message {
            FromRelay::GroupCreate => member.create_group(now).map(|_| true),
            FromRelay::GroupPropose {
                round, add, remove, ..
            } => {
                let packages: Vec<Vec<u8>> = add.iter().map(|(_, p)| p.clone()).collect();
                let labels: Vec<String> = member
                    .members()
                    .into_iter()
                    .filter(|l| id_of(l).is_some_and(|id| remove.contains(&id)))
                    .collect();
                match member.commit(&packages, &labels) {
                    Ok(commit) => {
                        outcome.send.push(ToRelay::GroupCommit {
                            round: *round,
                            commit: commit.commit,
                            welcome: commit.welcome,
                        });
                        Ok(false)
                    }
                    Err(error) => Err(error),
                }
            }
            FromRelay::GroupCommit { commit, .. } => {
                member.apply_commit(commit, &roster, now).map(|_| true)
            }
            FromRelay::GroupWelcome { welcome } => member.join(welcome, &roster, now).map(|_| true),
            FromRelay::SealedChat { from, name, sealed } => match member.open_chat(sealed) {
                Ok((sender, text)) if id_of(&sender) == Some(*from) => {
                    outcome.chat = Some((*from, name.clone(), text));
                    Ok(false)
                }
                Ok((sender, _)) => Err(E2eeError::Refused(format!(
                    "a chat line from {from} sealed by {sender:?}"
                ))),
                Err(error) => Err(error),
            },
            _ => Ok(false),
        };
        match result {
            Ok(new_epoch) => {
                outcome.new_epoch = new_epoch;
                if new_epoch {
                    tracing::info!(
                        epoch = ?member.epoch(),
                        members = member.members().len(),
                        safety_code = ?member.safety_code(),
                        "end-to-end encryption: a new epoch"
                    );
                }
            }
            Err(error) => {
                // A commit or welcome we cannot apply leaves us out of the group's next epoch
                // for good (the relay has us as a member of it): we ask to be added again. A
                // commit, or a request to commit, before our welcome (we are waiting to be
                // added, our key package on its way) is no one's fault.
                let astray = match message {
                    FromRelay::GroupCommit { .. } => member.in_group(),
                    FromRelay::GroupWelcome { .. } => true,
                    _ => false,
                };
                tracing::warn!(%error, astray, "a group message did not apply");
                if astray && let Some(send) = self.fresh_member() {
                    self.rejoins += 1;
                    outcome.send.push(send);
                }
            }
        }
        if self.ready() {
            while let Some(text) = self.pending_chat.pop_front() {
                if let Some(send) = self.seal_chat(&text) {
                    outcome.send.push(send);
                }
            }
        }
        outcome
    }

    /// Seals a chat line (or keeps it until we hold the keys). `None`: nothing to send now.
    pub(in crate::call) fn seal_chat(&mut self, text: &str) -> Option<ToRelay> {
        let ready = self.ready();
        let member = self.member.as_mut().filter(|_| ready);
        let Some(member) = member else {
            self.pending_chat.push_back(text.to_owned());
            return None;
        };
        match member.seal_chat(text) {
            Ok(sealed) => Some(ToRelay::SealedChat { sealed }),
            Err(error) => {
                tracing::warn!(%error, "a chat line could not be sealed");
                None
            }
        }
    }

    /// Seals a media payload under `header`; `None` when we hold no keys yet (the frame is not
    /// sent: no one could open it).
    pub(in crate::call) fn seal(
        &mut self,
        header: MediaHeader,
        payload: &[u8],
    ) -> Option<MediaFrame> {
        if !self.e2ee {
            return Some(MediaFrame::new(header, payload));
        }
        let member = self.member.as_mut().filter(|m| m.in_group())?;
        let started = Instant::now();
        let sealed = member.seal(&aad(&header), payload);
        self.cost.sealed += 1;
        self.cost.sealed_bytes += payload.len() as u64;
        self.cost.seal_ms += started.elapsed().as_secs_f64() * 1000.0;
        match sealed {
            Ok(sealed) => Some(MediaFrame::new(header, &sealed)),
            Err(error) => {
                tracing::warn!(%error, "a frame could not be sealed");
                None
            }
        }
    }

    /// Opens a media frame; `None` when it does not open (counted in [`Secure::refused`]).
    pub(in crate::call) fn open(&mut self, frame: MediaFrame, now: Instant) -> Option<MediaFrame> {
        if !self.e2ee {
            return Some(frame);
        }
        let member = self.member.as_mut()?;
        let header = frame.header;
        let started = Instant::now();
        let opened = member.open(&aad(&header), frame.payload(), now);
        self.cost.opened += 1;
        self.cost.opened_bytes += frame.payload().len() as u64;
        self.cost.open_ms += started.elapsed().as_secs_f64() * 1000.0;
        match opened {
            Ok(opened) if id_of(&opened.sender) == Some(header.track.participant) => {
                Some(MediaFrame::new(header, &opened.payload))
            }
            Ok(opened) => {
                self.refused += 1;
                tracing::warn!(
                    sender = opened.sender,
                    stamped = %header.track.participant,
                    "a frame sealed by one member came as another's"
                );
                None
            }
            Err(_) => {
                self.refused += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_participant() {
        assert_eq!(
            label(ParticipantId(7), "ada@example.org"),
            "7:ada@example.org"
        );
        assert_eq!(id_of("7:ada:with:colons"), Some(ParticipantId(7)));
        assert_eq!(id_of("ada"), None);
    }

    #[test]
    fn the_publisher_id_and_length_are_left_out_of_what_is_authenticated() {
        let header = MediaHeader {
            track: TrackId {
                participant: ParticipantId(0),
                index: 1,
            },
            sequence: 9,
            capture_us: 1234,
            keyframe: true,
            layer: 2,
            level: 0,
            payload_len: 0,
        };
        let stamped = MediaHeader {
            track: TrackId {
                participant: ParticipantId(5),
                index: 1,
            },
            payload_len: 999,
            ..header
        };
        assert_eq!(aad(&header), aad(&stamped));
        let other = MediaHeader {
            sequence: 10,
            ..header
        };
        assert_ne!(aad(&header), aad(&other));
    }
}
