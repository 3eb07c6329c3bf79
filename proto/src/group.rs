//! The relay as MLS's delivery service for an end-to-end encrypted room, sans-IO.
//!
//! The relay holds no group secret and cannot read a commit. What it does: it knows who is in
//! the room (it authenticated them), so it asks one member at a time — the *committer*, the
//! longest in the group — to commit the adds of those who sent a key package and the removals
//! of those who left; it forwards the first commit answering that request to every member, and
//! the welcome to those it adds. Members check every add and removal against the roster the
//! relay sent them (`rotunda-e2ee`), so a relay that lies about who is present is caught, not
//! obeyed.
//!
//! A request is a *round*: it names the epoch it starts from and a number of its own; a commit
//! for any other round is stale and dropped. A committer that does not answer within
//! [`COMMIT_TIMEOUT`] (gone quiet, or misbehaving) is passed over for the next member until a
//! commit lands. When everyone in the group has left, the next joiner starts a new group.
//!
//! A member whose group state was lost or went astray (it missed a commit while reconnecting,
//! or could not apply one) sends a fresh key package: it is then out of the group at once (no
//! commit goes to it), and the next round removes its old leaf and adds it again, in one commit.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::limits::MAX_ADDS_PER_ROUND;
use crate::message::{FromRelay, ParticipantId};

/// How long a committer has to answer a round before the next member is asked.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// One request for a commit, waiting for its answer.
#[derive(Debug, Clone)]
struct Round {
    number: u64,
    committer: ParticipantId,
    adds: Vec<ParticipantId>,
    removes: Vec<ParticipantId>,
    deadline: Instant,
}

/// A room's MLS group as its delivery service sees it.
#[derive(Debug, Default)]
pub struct Delivery {
    /// The group's epoch; `None` until someone starts one.
    epoch: Option<u64>,
    /// Members of the group, as far as the relay has forwarded commits.
    members: BTreeSet<ParticipantId>,
    /// In the room now.
    present: BTreeSet<ParticipantId>,
    /// Key packages of those waiting to be added.
    waiting: BTreeMap<ParticipantId, Vec<u8>>,
    /// Members who asked to be added again: their old leaves, still in the group, go at the
    /// next round.
    stale: BTreeSet<ParticipantId>,
    round: Option<Round>,
    rounds: u64,
    /// Committers passed over since the last commit landed.
    passed_over: BTreeSet<ParticipantId>,
}

impl Delivery {
    /// The group's epoch, if there is a group.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Members of the group, as far as the relay knows.
    pub fn members(&self) -> &BTreeSet<ParticipantId> {
        &self.members
    }

    /// `id` entered the room.
    pub fn joined(&mut self, id: ParticipantId) {
        self.present.insert(id);
    }

    /// `id` sent a key package: it is added at the next round (or starts the group, when there
    /// is none). A member's key package asks to be added again: it lost its group state.
    pub fn key_package(
        &mut self,
        id: ParticipantId,
        package: Vec<u8>,
        now: Instant,
        out: &mut VecDeque<(ParticipantId, FromRelay)>,
    ) {
        if !self.present.contains(&id) {
            return;
        }
        if self.members.remove(&id) {
            self.stale.insert(id);
            self.passed_over.remove(&id);
            if !self.anyone_in_the_group() {
                // It was the group: it starts another.
                self.reset();
            }
        }
        // A round it commits (from a state it lost) or that adds its previous package (whose
        // keys it no longer holds) is void.
        if self
            .round
            .as_ref()
            .is_some_and(|round| round.committer == id || round.adds.contains(&id))
        {
            self.round = None;
        }
        if self.epoch.is_none() {
            self.start(id, out);
        } else {
            self.waiting.insert(id, package);
        }
        self.propose(now, out);
    }

    /// `id` left the room: removed at the next round.
    pub fn left(
        &mut self,
        id: ParticipantId,
        now: Instant,
        out: &mut VecDeque<(ParticipantId, FromRelay)>,
    ) {
        self.present.remove(&id);
        self.waiting.remove(&id);
        self.passed_over.remove(&id);
        if !self.anyone_in_the_group() {
            // No one is left in the group: it is gone with its keys. Whoever waits first starts
            // another.
            self.reset();
            let waiting = std::mem::take(&mut self.waiting);
            if let Some((&first, _)) = waiting.iter().next() {
                self.start(first, out);
                self.waiting = waiting;
                self.waiting.remove(&first);
            }
            self.propose(now, out);
            return;
        }
        // A round that adds or is committed by whoever left is void: its commit would add a
        // member the others no longer see in the room (and refuse), or never come.
        if self
            .round
            .as_ref()
            .is_some_and(|round| round.committer == id || round.adds.contains(&id))
        {
            self.round = None;
        }
        self.propose(now, out);
    }

    /// A commit from `from` answering round `round`: forwarded to every member and its welcome
    /// to those it adds when it answers the round waiting; dropped otherwise (stale, or from a
    /// member not asked). Returns whether it was taken.
    pub fn commit(
        &mut self,
        from: ParticipantId,
        round: u64,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
        now: Instant,
        out: &mut VecDeque<(ParticipantId, FromRelay)>,
    ) -> bool {
        let Some(epoch) = self.epoch else {
            return false;
        };
        let answers = self
            .round
            .as_ref()
            .is_some_and(|r| r.number == round && r.committer == from);
        if !answers {
            return false;
        }
        let Some(taken) = self.round.take() else {
            return false;
        };
        if !taken.adds.is_empty() && welcome.is_none() {
            // Adds without a welcome leave the newcomers out: ask someone else.
            self.passed_over.insert(from);
            self.propose(now, out);
            return false;
        }
        for member in self.members.iter().filter(|m| self.present.contains(m)) {
            out.push_back((
                *member,
                FromRelay::GroupCommit {
                    epoch,
                    commit: commit.clone(),
                },
            ));
        }
        if let Some(welcome) = welcome {
            for added in &taken.adds {
                out.push_back((
                    *added,
                    FromRelay::GroupWelcome {
                        welcome: welcome.clone(),
                    },
                ));
            }
        }
        for removed in &taken.removes {
            self.members.remove(removed);
            self.stale.remove(removed);
        }
        for added in &taken.adds {
            self.waiting.remove(added);
            self.members.insert(*added);
        }
        self.epoch = Some(epoch + 1);
        self.passed_over.clear();
        self.propose(now, out);
        true
    }

    /// Time passed: a committer that let its round lapse is passed over.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut VecDeque<(ParticipantId, FromRelay)>) {
        if let Some(round) = self.round.as_ref()
            && now >= round.deadline
        {
            self.passed_over.insert(round.committer);
            self.round = None;
            self.propose(now, out);
        }
    }

    /// When the round waiting lapses, if one does.
    pub fn deadline(&self) -> Option<Instant> {
        self.round.as_ref().map(|round| round.deadline)
    }

    /// Whether anyone in the room is in the group.
    fn anyone_in_the_group(&self) -> bool {
        self.members
            .iter()
            .any(|member| self.present.contains(member))
    }

    /// Whether a member of the group has left the room (its leaf is to be removed).
    fn anyone_gone(&self) -> bool {
        self.members
            .iter()
            .any(|member| !self.present.contains(member))
    }

    /// The group is gone: no epoch, no members, no round.
    fn reset(&mut self) {
        self.epoch = None;
        self.members.clear();
        self.stale.clear();
        self.round = None;
    }

    fn start(&mut self, id: ParticipantId, out: &mut VecDeque<(ParticipantId, FromRelay)>) {
        self.epoch = Some(0);
        self.members = [id].into();
        self.passed_over.clear();
        out.push_back((id, FromRelay::GroupCreate));
    }

    /// Asks for a commit when there is something to commit and no round waiting.
    fn propose(&mut self, now: Instant, out: &mut VecDeque<(ParticipantId, FromRelay)>) {
        let Some(epoch) = self.epoch else {
            return;
        };
        if self.round.is_some() {
            return;
        }
        if self.waiting.is_empty() && self.stale.is_empty() && !self.anyone_gone() {
            return;
        }
        let mut candidates = self
            .members
            .iter()
            .filter(|m| self.present.contains(m))
            .copied();
        let committer = match candidates.clone().find(|m| !self.passed_over.contains(m)) {
            Some(committer) => committer,
            None => {
                // Everyone was passed over: start again from the longest in the group.
                self.passed_over.clear();
                match candidates.next() {
                    Some(committer) => committer,
                    None => return,
                }
            }
        };
        // At most a control message's worth of key packages at a time, those added again
        // first; the rest next round.
        let add: Vec<(ParticipantId, Vec<u8>)> = self
            .waiting
            .iter()
            .filter(|(id, _)| self.stale.contains(id))
            .chain(
                self.waiting
                    .iter()
                    .filter(|(id, _)| !self.stale.contains(id)),
            )
            .take(MAX_ADDS_PER_ROUND)
            .map(|(id, package)| (*id, package.clone()))
            .collect();
        let adds: Vec<ParticipantId> = add.iter().map(|(id, _)| *id).collect();
        // Those gone, and the old leaves of those added again in this very commit (members
        // accept removing someone present only beside their new leaf).
        let removes: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| !self.present.contains(m))
            .chain(
                self.stale
                    .iter()
                    .filter(|s| !self.present.contains(s) || adds.contains(s)),
            )
            .copied()
            .collect();
        if adds.is_empty() && removes.is_empty() {
            return;
        }
        self.rounds += 1;
        out.push_back((
            committer,
            FromRelay::GroupPropose {
                round: self.rounds,
                epoch,
                add,
                remove: removes.clone(),
            },
        ));
        self.round = Some(Round {
            number: self.rounds,
            committer,
            adds,
            removes,
            deadline: now + COMMIT_TIMEOUT,
        });
    }
}
