//! A room's MLS group end to end, the relay played by the test: joins and leaves move epochs,
//! keys follow membership, commits are checked against the roster.

use std::collections::HashSet;
use std::time::Duration;

use rotunda_e2ee::{Error, Member, PREVIOUS_EPOCH_KEPT};
use web_time::Instant;

/// The relay's side: who is in the room, and the members' groups.
struct Room {
    roster: HashSet<String>,
    members: Vec<Member>,
    now: Instant,
}

impl Room {
    /// `first` starts the group.
    fn new(first: &str) -> Self {
        let now = Instant::now();
        let mut member = Member::new(first).expect("member");
        member.create_group(now).expect("group");
        Self {
            roster: [first.to_owned()].into(),
            members: vec![member],
            now,
        }
    }

    fn member(&mut self, label: &str) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.label() == label)
            .expect("present")
    }

    /// `label` joins: the first member commits its add, everyone applies it, it joins with the
    /// welcome.
    fn join(&mut self, label: &str) {
        let newcomer = Member::new(label).expect("member");
        let key_package = newcomer.key_package().expect("key package");
        self.roster.insert(label.to_owned());
        let commit = self.members[0].commit(&[key_package], &[]).expect("commit");
        self.apply(&commit.commit);
        let mut newcomer = newcomer;
        let welcome = commit.welcome.expect("a welcome for the newcomer");
        newcomer
            .join(&welcome, &self.roster, self.now)
            .expect("joins");
        self.members.push(newcomer);
    }

    /// `label` leaves: gone from the roster, the first member left commits its removal.
    fn leave(&mut self, label: &str) -> Member {
        self.roster.remove(label);
        let at = self
            .members
            .iter()
            .position(|m| m.label() == label)
            .expect("present");
        let gone = self.members.remove(at);
        let commit = self.members[0]
            .commit(&[], &[label.to_owned()])
            .expect("commit");
        self.apply(&commit.commit);
        gone
    }

    fn apply(&mut self, commit: &[u8]) {
        for member in &mut self.members {
            member
                .apply_commit(commit, &self.roster, self.now)
                .expect("applies");
        }
    }

    fn codes(&self) -> HashSet<Option<String>> {
        self.members.iter().map(Member::safety_code).collect()
    }
}

const HEADER: [u8; 22] = [0x11; 22];

#[test]
fn everyone_shares_one_epoch_and_safety_code_and_opens_everyone_s_frames() {
    let mut room = Room::new("1:ada@example.org");
    room.join("2:bob@example.org");
    room.join("3:cy@example.org");
    let codes = room.codes();
    assert_eq!(codes.len(), 1, "one code for all: {codes:?}");
    let code = codes.into_iter().next().flatten().expect("a code");
    assert_eq!(code.len(), 35, "{code}");
    let epochs: HashSet<_> = room.members.iter().map(Member::epoch).collect();
    assert_eq!(epochs, [Some(2)].into());

    let now = room.now;
    for sender in 0..3 {
        let label = room.members[sender].label().to_owned();
        let payload = format!("a frame from {label}");
        let sealed = room.members[sender]
            .seal(&HEADER, payload.as_bytes())
            .expect("seals");
        assert!(
            !sealed
                .windows(payload.len())
                .any(|w| w == payload.as_bytes())
        );
        for receiver in (0..3).filter(|r| *r != sender) {
            let opened = room.members[receiver]
                .open(&HEADER, &sealed, now)
                .expect("opens");
            assert_eq!(opened.sender, label);
            assert_eq!(opened.payload, payload.as_bytes());
        }
    }

    let line = room
        .member("2:bob@example.org")
        .seal_chat("hi all")
        .expect("seals");
    let (from, text) = room
        .member("3:cy@example.org")
        .open_chat(&line)
        .expect("opens");
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("2:bob@example.org", "hi all")
    );
}

#[test]
fn a_member_who_left_cannot_open_what_follows_even_if_the_relay_forwards_it() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    room.join("3:cy");
    let before = room.members[0].seal(&HEADER, b"before").expect("seals");
    let mut cy = room.leave("3:cy");
    assert!(cy.open(&HEADER, &before, room.now).is_ok());
    let after = room.members[0].seal(&HEADER, b"after").expect("seals");
    assert!(
        matches!(cy.open(&HEADER, &after, room.now), Err(Error::UnknownEpoch)),
        "the epoch after its leave is not one it holds"
    );
    let opened = room.members[1]
        .open(&HEADER, &after, room.now)
        .expect("opens");
    assert_eq!(opened.payload, b"after");
    assert_eq!(room.codes().len(), 1);
    assert_ne!(room.members[0].safety_code(), cy.safety_code());
}

#[test]
fn a_later_joiner_cannot_open_what_came_before() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    let earlier = room.members[1].seal(&HEADER, b"earlier").expect("seals");
    room.join("3:cy");
    let later = room.members[1].seal(&HEADER, b"later").expect("seals");
    let now = room.now;
    let cy = room.member("3:cy");
    assert!(cy.open(&HEADER, &earlier, now).is_err());
    assert_eq!(
        cy.open(&HEADER, &later, now).expect("opens").payload,
        b"later"
    );
}

#[test]
fn the_previous_epoch_opens_for_a_few_seconds() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    let in_flight = room.members[0].seal(&HEADER, b"in flight").expect("seals");
    room.join("3:cy");
    let now = room.now;
    let bob = room.member("2:bob");
    assert!(
        bob.open(&HEADER, &in_flight, now + Duration::from_secs(1))
            .is_ok()
    );
    assert!(
        bob.open(
            &HEADER,
            &in_flight,
            now + PREVIOUS_EPOCH_KEPT + Duration::from_secs(1)
        )
        .is_err()
    );
}

#[test]
fn any_header_byte_changed_fails_authentication() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    let sealed = room.members[0].seal(&HEADER, b"payload").expect("seals");
    let now = room.now;
    for at in 0..HEADER.len() {
        let mut altered = HEADER;
        altered[at] ^= 0x80;
        assert!(
            matches!(
                room.members[1].open(&altered, &sealed, now),
                Err(Error::Forged)
            ),
            "byte {at}"
        );
    }
}

#[test]
fn a_commit_adding_someone_not_in_the_room_is_refused() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    // The relay (or a member it colludes with) tries to add a listener of its own.
    let spy = Member::new("66:spy").expect("member");
    let commit = room.members[0]
        .commit(&[spy.key_package().expect("key package")], &[])
        .expect("commit");
    let epoch = room.members[1].epoch();
    let refused = room.members[1].apply_commit(&commit.commit, &room.roster, room.now);
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert_eq!(room.members[1].epoch(), epoch, "the group is as it was");
    // Nor can the spy join with the welcome while anyone is outside the roster, from its view.
    let mut spy = spy;
    let welcome = commit.welcome.expect("welcome");
    let roster_without_spy = room.roster.clone();
    assert!(matches!(
        spy.join(&welcome, &roster_without_spy, room.now),
        Err(Error::Refused(_))
    ));
}

#[test]
fn a_commit_removing_someone_still_present_is_refused() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    room.join("3:cy");
    let commit = room.members[0]
        .commit(&[], &["3:cy".to_owned()])
        .expect("commit");
    let refused = room.members[1].apply_commit(&commit.commit, &room.roster, room.now);
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
}

#[test]
fn one_who_lost_their_group_state_is_removed_and_added_again_in_one_commit() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    room.join("3:cy");
    // Cy's state went astray (it missed a commit): a fresh member under the same label.
    room.members.retain(|m| m.label() != "3:cy");
    let mut cy = Member::new("3:cy").expect("member");
    let package = cy.key_package().expect("key package");
    let commit = room.members[0]
        .commit(&[package], &["3:cy".to_owned()])
        .expect("commit");
    room.apply(&commit.commit);
    cy.join(&commit.welcome.expect("a welcome"), &room.roster, room.now)
        .expect("joins");
    room.members.push(cy);
    assert_eq!(room.codes().len(), 1);
    assert_eq!(room.members[0].members().len(), 3, "no leaf left behind");
    let sealed = room.members[2].seal(&HEADER, b"back").expect("seals");
    let opened = room.members[1]
        .open(&HEADER, &sealed, room.now)
        .expect("opens");
    assert_eq!(opened.sender, "3:cy");
}

#[test]
fn racing_commits_settle_on_the_one_the_relay_forwards() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    let dee = Member::new("4:dee").expect("member");
    room.roster.insert("4:dee".into());
    let package = dee.key_package().expect("key package");
    // Both commit the same add; the relay forwards bob's, the first to arrive.
    let _ada_s = room.members[0]
        .commit(std::slice::from_ref(&package), &[])
        .expect("commit");
    let bob_s = room.members[1].commit(&[package], &[]).expect("commit");
    room.apply(&bob_s.commit);
    let mut dee = dee;
    dee.join(&bob_s.welcome.expect("welcome"), &room.roster, room.now)
        .expect("joins");
    room.members.push(dee);
    assert_eq!(room.codes().len(), 1);
    let sealed = room.members[0].seal(&HEADER, b"settled").expect("seals");
    assert!(room.members[2].open(&HEADER, &sealed, room.now).is_ok());
}

#[test]
fn junk_is_an_error_not_a_panic() {
    let mut room = Room::new("1:ada");
    room.join("2:bob");
    let now = room.now;
    let member = &mut room.members[1];
    for junk in [&b""[..], b"\x00", b"\x01\x00\x01", &[0xff; 64], &[0u8; 300]] {
        assert!(member.apply_commit(junk, &HashSet::new(), now).is_err());
        assert!(member.open(&HEADER, junk, now).is_err());
        assert!(member.open_chat(junk).is_err());
        assert!(
            Member::new("x")
                .expect("member")
                .join(junk, &HashSet::new(), now)
                .is_err()
        );
        assert!(member.commit(&[junk.to_vec()], &[]).is_err());
    }
    assert_eq!(member.epoch(), Some(1));
}
