//! The relay as the MLS delivery service of an end-to-end encrypted room, on a simulated clock:
//! who is asked to start the group, to commit adds and removals, what is forwarded to whom, and
//! what happens to stale, unasked and lapsed commits. The MLS messages are opaque bytes here,
//! as they are to the relay.

use std::time::{Duration, Instant};

use rotunda_proto::group::COMMIT_TIMEOUT;
use rotunda_proto::room::{Room, RoomConfig};
use rotunda_proto::*;

fn e2ee_room() -> Room {
    let mut room = Room::new(RoomConfig::default());
    room.set_e2ee(true);
    room
}

fn join(room: &mut Room, name: &str, now: Instant) -> ParticipantId {
    room.handle_join(name, None, 1, now).expect("joins").id
}

fn send(room: &mut Room, from: ParticipantId, message: ToRelay, now: Instant) {
    room.handle_message(from, message, now)
        .expect("message accepted");
}

/// The group messages the room has to send, in order (the rest of the control traffic aside).
fn group_messages(room: &mut Room) -> Vec<(ParticipantId, FromRelay)> {
    std::iter::from_fn(|| room.poll_control())
        .filter(|(_, m)| {
            matches!(
                m,
                FromRelay::GroupCreate
                    | FromRelay::GroupPropose { .. }
                    | FromRelay::GroupCommit { .. }
                    | FromRelay::GroupWelcome { .. }
                    | FromRelay::SealedChat { .. }
            )
        })
        .collect()
}

fn key_package(id: ParticipantId) -> ToRelay {
    ToRelay::KeyPackage {
        package: vec![id.0 as u8; 8],
    }
}

fn commit(round: u64, tag: u8, welcome: bool) -> ToRelay {
    ToRelay::GroupCommit {
        round,
        commit: vec![tag; 4],
        welcome: welcome.then(|| vec![tag; 16]),
    }
}

/// What the relay forwards for a commit tagged `tag` that answers a round at `epoch`: the commit
/// to each of `members`, then its welcome to each of `added`.
fn forwarded(
    epoch: u64,
    tag: u8,
    members: &[ParticipantId],
    added: &[ParticipantId],
) -> Vec<(ParticipantId, FromRelay)> {
    let commits = members.iter().map(|to| {
        (
            *to,
            FromRelay::GroupCommit {
                epoch,
                commit: vec![tag; 4],
            },
        )
    });
    let welcomes = added.iter().map(|to| {
        (
            *to,
            FromRelay::GroupWelcome {
                welcome: vec![tag; 16],
            },
        )
    });
    commits.chain(welcomes).collect()
}

/// Ada starts the group; Bob's key package makes a round for Ada; her commit goes to her, its
/// welcome to Bob. Returns (ada, bob).
fn two_in_the_group(room: &mut Room, now: Instant) -> (ParticipantId, ParticipantId) {
    let ada = join(room, "Ada", now);
    send(room, ada, key_package(ada), now);
    assert_eq!(group_messages(room), vec![(ada, FromRelay::GroupCreate)]);
    let bob = join(room, "Bob", now);
    send(room, bob, key_package(bob), now);
    assert_eq!(
        group_messages(room),
        vec![(
            ada,
            FromRelay::GroupPropose {
                round: 1,
                epoch: 0,
                add: vec![(bob, vec![bob.0 as u8; 8])],
                remove: vec![],
            }
        )]
    );
    send(room, ada, commit(1, 0xA1, true), now);
    assert_eq!(group_messages(room), forwarded(0, 0xA1, &[ada], &[bob]));
    assert_eq!(room.delivery().epoch(), Some(1));
    (ada, bob)
}

#[test]
fn the_first_starts_the_group_and_the_longest_in_it_commits_each_join() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    let cy = join(&mut room, "Cy", now);
    send(&mut room, cy, key_package(cy), now);
    let asked = group_messages(&mut room);
    assert!(
        matches!(&asked[..], [(to, FromRelay::GroupPropose { round: 2, epoch: 1, add, .. })] if *to == ada && add[0].0 == cy),
        "{asked:?}"
    );
    send(&mut room, ada, commit(2, 0xA2, true), now);
    // Every member, the committer too; the welcome to Cy.
    assert_eq!(
        group_messages(&mut room),
        forwarded(1, 0xA2, &[ada, bob], &[cy])
    );
    assert_eq!(room.delivery().epoch(), Some(2));
    assert_eq!(room.delivery().members().len(), 3);
}

#[test]
fn a_leave_is_committed_by_whoever_is_longest_in_the_group() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    room.handle_leave(ada, LeaveReason::Left, now);
    assert_eq!(
        group_messages(&mut room),
        vec![(
            bob,
            FromRelay::GroupPropose {
                round: 2,
                epoch: 1,
                add: vec![],
                remove: vec![ada],
            }
        )]
    );
    send(&mut room, bob, commit(2, 0xB2, false), now);
    assert_eq!(group_messages(&mut room), forwarded(1, 0xB2, &[bob], &[]));
    assert_eq!(room.delivery().members().len(), 1);
}

#[test]
fn a_committer_that_lets_its_round_lapse_is_passed_over_and_its_late_commit_dropped() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    let cy = join(&mut room, "Cy", now);
    send(&mut room, cy, key_package(cy), now);
    group_messages(&mut room);
    // Ada says nothing.
    room.handle_timeout(now + COMMIT_TIMEOUT - Duration::from_millis(1));
    assert!(group_messages(&mut room).is_empty());
    let later = now + COMMIT_TIMEOUT;
    room.handle_timeout(later);
    let asked = group_messages(&mut room);
    assert!(
        matches!(&asked[..], [(to, FromRelay::GroupPropose { round: 3, epoch: 1, .. })] if *to == bob),
        "{asked:?}"
    );
    // Ada's commit for the lapsed round comes too late; Bob's lands.
    send(&mut room, ada, commit(2, 0xA2, true), later);
    assert!(group_messages(&mut room).is_empty());
    send(&mut room, bob, commit(3, 0xB3, true), later);
    let sent = group_messages(&mut room);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(room.delivery().epoch(), Some(2));
}

#[test]
fn commits_not_asked_for_or_adding_without_a_welcome_are_not_forwarded() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    let cy = join(&mut room, "Cy", now);
    send(&mut room, cy, key_package(cy), now);
    group_messages(&mut room);
    // Bob was not asked; Cy is not even in the group.
    send(&mut room, bob, commit(2, 0xB2, true), now);
    send(&mut room, cy, commit(2, 0xC2, true), now);
    assert!(group_messages(&mut room).is_empty());
    // Ada adds Cy without a welcome: she is passed over, Bob is asked.
    send(&mut room, ada, commit(2, 0xA2, false), now);
    let asked = group_messages(&mut room);
    assert!(
        matches!(&asked[..], [(to, FromRelay::GroupPropose { epoch: 1, .. })] if *to == bob),
        "{asked:?}"
    );
    assert_eq!(room.delivery().epoch(), Some(1));
}

#[test]
fn a_joiner_leaving_before_its_add_lands_voids_the_round() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, _bob) = two_in_the_group(&mut room, now);
    let cy = join(&mut room, "Cy", now);
    let dee = join(&mut room, "Dee", now);
    send(&mut room, cy, key_package(cy), now);
    group_messages(&mut room);
    send(&mut room, dee, key_package(dee), now);
    assert!(group_messages(&mut room).is_empty(), "one round at a time");
    room.handle_leave(cy, LeaveReason::Left, now);
    let asked = group_messages(&mut room);
    assert!(
        matches!(&asked[..], [(to, FromRelay::GroupPropose { round: 3, add, remove, .. })]
            if *to == ada && add.len() == 1 && add[0].0 == dee && remove.is_empty()),
        "{asked:?}"
    );
    // The void round's commit is stale.
    send(&mut room, ada, commit(2, 0xA2, true), now);
    assert!(group_messages(&mut room).is_empty());
}

#[test]
fn when_the_whole_group_has_left_the_next_joiner_starts_another() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    let cy = join(&mut room, "Cy", now);
    send(&mut room, cy, key_package(cy), now);
    group_messages(&mut room);
    room.handle_leave(ada, LeaveReason::Left, now);
    group_messages(&mut room);
    room.handle_leave(bob, LeaveReason::Disconnected, now);
    assert_eq!(
        group_messages(&mut room),
        vec![(cy, FromRelay::GroupCreate)]
    );
    assert_eq!(room.delivery().epoch(), Some(0));
    let dee = join(&mut room, "Dee", now);
    send(&mut room, dee, key_package(dee), now);
    let asked = group_messages(&mut room);
    assert!(
        matches!(&asked[..], [(to, FromRelay::GroupPropose { epoch: 0, .. })] if *to == cy),
        "{asked:?}"
    );
}

#[test]
fn a_member_that_lost_its_group_state_is_removed_and_added_again_in_one_commit() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    // Bob could not apply a commit (or came back on a new connection): a fresh key package.
    let fresh = ToRelay::KeyPackage {
        package: vec![0xB0; 8],
    };
    send(&mut room, bob, fresh, now);
    assert_eq!(
        group_messages(&mut room),
        vec![(
            ada,
            FromRelay::GroupPropose {
                round: 2,
                epoch: 1,
                add: vec![(bob, vec![0xB0; 8])],
                remove: vec![bob],
            }
        )]
    );
    assert_eq!(
        room.delivery().members().len(),
        1,
        "out of the group at once"
    );
    send(&mut room, ada, commit(2, 0xA2, true), now);
    // Not the commit to Bob (his old state could not apply it): the welcome.
    assert_eq!(
        group_messages(&mut room),
        forwarded(1, 0xA2, &[ada], &[bob])
    );
    assert_eq!(room.delivery().epoch(), Some(2));
    assert_eq!(room.delivery().members().len(), 2);
}

#[test]
fn a_committer_asking_to_be_added_again_voids_its_round() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    let cy = join(&mut room, "Cy", now);
    send(&mut room, cy, key_package(cy), now);
    group_messages(&mut room);
    // Ada, asked to add Cy, lost her state: Bob (still in the group) commits both.
    send(&mut room, ada, key_package(ada), now);
    let asked = group_messages(&mut room);
    assert!(
        matches!(&asked[..], [(to, FromRelay::GroupPropose { round: 3, epoch: 1, add, remove })]
            if *to == bob && add.len() == 2 && add[0].0 == ada && remove == &vec![ada]),
        "{asked:?}"
    );
    // Her commit for the void round is dropped.
    send(&mut room, ada, commit(2, 0xA2, true), now);
    assert!(group_messages(&mut room).is_empty());
}

#[test]
fn the_last_member_asking_to_be_added_again_starts_another_group() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let ada = join(&mut room, "Ada", now);
    send(&mut room, ada, key_package(ada), now);
    group_messages(&mut room);
    send(&mut room, ada, key_package(ada), now);
    assert_eq!(
        group_messages(&mut room),
        vec![(ada, FromRelay::GroupCreate)]
    );
    assert_eq!(room.delivery().epoch(), Some(0));
}

#[test]
fn sealed_chat_goes_to_the_others_and_plain_chat_is_refused() {
    let now = Instant::now();
    let mut room = e2ee_room();
    let (ada, bob) = two_in_the_group(&mut room, now);
    send(
        &mut room,
        ada,
        ToRelay::SealedChat {
            sealed: vec![7; 50],
        },
        now,
    );
    assert_eq!(
        group_messages(&mut room),
        vec![(
            bob,
            FromRelay::SealedChat {
                from: ada,
                name: "Ada".into(),
                sealed: vec![7; 50]
            }
        )]
    );
    let plain = room.handle_message(
        bob,
        ToRelay::Chat {
            text: "in the clear".into(),
        },
        now,
    );
    assert!(plain.is_err());
}

#[test]
fn a_room_without_encryption_says_so_and_takes_no_group_messages() {
    let now = Instant::now();
    let mut room = Room::new(RoomConfig::default());
    room.set_e2ee(false);
    let ada = join(&mut room, "Ada", now);
    let welcome = room.poll_control();
    assert!(
        matches!(welcome, Some((_, FromRelay::Welcome { e2ee: false, .. }))),
        "{welcome:?}"
    );
    assert!(room.handle_message(ada, key_package(ada), now).is_err());
    let mut encrypted = e2ee_room();
    join(&mut encrypted, "Ada", now);
    assert!(matches!(
        encrypted.poll_control(),
        Some((_, FromRelay::Welcome { e2ee: true, .. }))
    ));
    // The mode is the first joiner's: it does not change while anyone is in.
    encrypted.set_e2ee(false);
    assert!(encrypted.e2ee());
}
