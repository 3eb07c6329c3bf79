//! The call as a state machine on a simulated clock: [`Call`]s joined through the relay's own
//! sans-IO [`Room`], with the real codecs running inline, a link that can be cut, a relay that
//! can restart. Time is `t0 + offset`, taken once from the real clock and never read again;
//! nothing sleeps.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rotunda_engine::call::{Action, Joined, Sources};
use rotunda_engine::codec::native::NativeCodecs;
use rotunda_engine::{
    Call, CallConfig, CallEvent, Command, Error, JoinOptions, SCREEN_INDEX, VideoSpec,
};
use rotunda_proto::room::{Room, RoomConfig};
use rotunda_proto::{FromRelay, LeaveReason, ParticipantId, Pose, TrackKind, TrackSource};
use web_time::Instant;

/// The simulation's step.
const STEP: Duration = Duration::from_millis(5);

/// One participant: its call, the id the room gave it, whether its link is cut, and media held
/// back on its way to it (a stalled link that then delivers all at once).
struct Peer {
    call: Call,
    id: Option<ParticipantId>,
    cut: bool,
    stalled: Option<Vec<(rotunda_proto::MediaFrame, TrackKind)>>,
    events: Vec<CallEvent>,
    connects: Vec<Duration>,
    /// The newest pose of everyone, as this call reported them.
    poses: HashMap<ParticipantId, Pose>,
}

/// Calls and a relay, on a clock of their own.
struct Sim {
    t0: Instant,
    now: Instant,
    room: Room,
    peers: Vec<Peer>,
    secrets: u64,
    /// Whether the relay is up (a connect to a relay that is down fails).
    relay_up: bool,
}

fn config(name: &str, video: bool) -> CallConfig {
    let mut config = CallConfig::new(JoinOptions {
        relay: "https://relay.test:4443".into(),
        cert_hash: Some([1; 32]),
        room: "sim".into(),
        name: name.into(),
        token: None,
        e2ee: false,
    });
    config.video = video.then_some(VideoSpec {
        width: 160,
        height: 120,
        fps: 15,
    });
    config.chat = vec![format!("hello from {name}")];
    config
}

impl Sim {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            t0,
            now: t0,
            room: Room::new(RoomConfig::default()),
            peers: Vec::new(),
            secrets: 100,
            relay_up: true,
        }
    }

    /// The same, its room end-to-end encrypted (the calls' MLS members are real).
    fn encrypted() -> Self {
        let mut sim = Self::new();
        sim.room.set_e2ee(true);
        sim
    }

    fn add(&mut self, config: CallConfig) -> usize {
        let call = Call::new(
            config,
            Box::new(NativeCodecs::inline()),
            Sources::default(),
            self.now,
            1_000_000_000,
        );
        self.peers.push(Peer {
            call,
            id: None,
            cut: false,
            stalled: None,
            events: Vec::new(),
            connects: Vec::new(),
            poses: HashMap::new(),
        });
        self.peers.len() - 1
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Runs every call's actions against the room, delivers the room's output, advances the
    /// clock by one step.
    fn step(&mut self) {
        let now = self.now;
        for index in 0..self.peers.len() {
            self.peers[index].call.handle_timeout(now);
            while let Some(action) = self.peers[index].call.poll_action() {
                self.act(index, action);
            }
        }
        // The room's control messages and media, to whoever is connected and not cut off.
        let by_id: HashMap<ParticipantId, usize> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.id.map(|id| (id, i)))
            .collect();
        while let Some((to, message)) = self.room.poll_control() {
            if let Some(&i) = by_id.get(&to)
                && !self.peers[i].cut
            {
                self.peers[i].call.handle_message(message, now);
            }
        }
        let mut woken = VecDeque::new();
        while let Some(id) = self.room.poll_woken() {
            woken.push_back(id);
        }
        for id in woken {
            let Some(&i) = by_id.get(&id) else { continue };
            while let Some(frame) = self.room.poll_audio(id) {
                if !self.peers[i].cut {
                    self.peers[i]
                        .call
                        .handle_media(frame, TrackKind::Audio, now);
                }
            }
            while let Some(frame) = self.room.poll_video(id) {
                if !self.peers[i].cut {
                    self.peers[i]
                        .call
                        .handle_media(frame, TrackKind::Video, now);
                }
            }
        }
        for peer in &mut self.peers {
            while let Some(event) = peer.call.poll_event() {
                peer.events.push(event);
            }
            while peer.call.poll_picture().is_some() {}
            while let Some((id, pose)) = peer.call.poll_pose() {
                peer.poses.insert(id, pose);
            }
        }
        self.now += STEP;
    }

    fn act(&mut self, index: usize, action: Action) {
        let now = self.now;
        let elapsed = self.elapsed();
        let peer = &mut self.peers[index];
        match action {
            Action::Connect {
                options, resume, ..
            } => {
                peer.connects.push(elapsed);
                if !self.relay_up || peer.cut {
                    let error = Error::Unreachable {
                        url: options.relay,
                        reason: "down".into(),
                    };
                    peer.call.handle_connect_failed(error, now);
                    return;
                }
                self.secrets += 1;
                let joined = self
                    .room
                    .handle_join(&options.name, resume, self.secrets, now)
                    .expect("joins");
                // The welcome is the first message for the joiner; the rest follow as usual.
                let mut held = Vec::new();
                let mut welcome = None;
                while let Some((to, message)) = self.room.poll_control() {
                    if to == joined.id && welcome.is_none() {
                        match Joined::from_welcome(message) {
                            Ok(first) => welcome = Some(first),
                            Err(other) => held.push((to, other)),
                        }
                    } else {
                        held.push((to, message));
                    }
                }
                peer.id = Some(joined.id);
                peer.call.handle_connected(welcome.expect("a welcome"), now);
                let by_id: HashMap<ParticipantId, usize> = self
                    .peers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.id.map(|id| (id, i)))
                    .collect();
                for (to, message) in held {
                    if let Some(&i) = by_id.get(&to)
                        && !self.peers[i].cut
                    {
                        self.peers[i].call.handle_message(message, now);
                    }
                }
            }
            Action::Send(message) => {
                if let (Some(id), false) = (peer.id, peer.cut) {
                    self.room
                        .handle_message(id, message, now)
                        .expect("the relay accepts what a call sends");
                }
            }
            Action::SendAudio(frame) => {
                if let (Some(id), false) = (peer.id, peer.cut) {
                    self.room
                        .handle_media(id, frame, TrackKind::Audio, now)
                        .expect("audio accepted");
                }
            }
            Action::SendVideo(frame) => {
                if let (Some(id), false) = (peer.id, peer.cut) {
                    self.room
                        .handle_media(id, frame, TrackKind::Video, now)
                        .expect("video accepted");
                }
            }
            // The relay notices a dead connection only later (its own idle timeout): it holds
            // the place meanwhile.
            Action::Disconnect => {}
            Action::Leave => {
                if let Some(id) = peer.id {
                    self.room.handle_leave(id, LeaveReason::Left, now);
                }
                peer.call.handle_left(now);
            }
        }
    }

    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
        }
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> Duration {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return self.elapsed();
            }
            self.step();
        }
        panic!("not done within {limit:?}");
    }

    /// What `index`'s user asks of its call, now.
    fn command(&mut self, index: usize, command: Command) {
        let now = self.now;
        self.peers[index].call.handle_command(command, now);
    }

    fn report(&self, index: usize) -> rotunda_engine::BotReport {
        self.peers[index].call.report(self.now)
    }

    /// The relay restarts: everyone's place is gone, and it is down for `down`.
    fn restart_relay(&mut self, down: Duration) {
        let e2ee = self.room.e2ee();
        self.room = Room::new(RoomConfig::default());
        self.room.set_e2ee(e2ee);
        for peer in &mut self.peers {
            peer.id = None;
        }
        self.relay_up = false;
        self.run_for(down);
        self.relay_up = true;
    }
}

impl Sim {
    /// Holds back the media on its way to `index` for `stall`, then delivers it all at once.
    fn stall(&mut self, index: usize, stall: Duration) {
        self.peers[index].stalled = Some(Vec::new());
        self.run_for(stall);
        let held = self.peers[index].stalled.take().unwrap_or_default();
        let now = self.now;
        for (frame, kind) in held {
            self.peers[index].call.handle_media(frame, kind, now);
        }
    }
}

fn events_of(sim: &Sim, index: usize) -> &[CallEvent] {
    &sim.peers[index].events
}

fn count(events: &[CallEvent], what: impl Fn(&CallEvent) -> bool) -> usize {
    events.iter().filter(|e| what(e)).count()
}

#[test]
fn two_calls_see_hear_and_read_each_other() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(4));
    for (me, other) in [(ada, "bob"), (bob, "ada")] {
        let report = sim.report(me);
        let peer = &report.peers[other];
        assert!(
            peer.video_frames_decoded * 10 >= peer.video_frames_expected * 9,
            "{report:#?}"
        );
        assert!(peer.video_frames_expected >= 40, "{report:#?}");
        assert_eq!(peer.video_frames_wrong_sender, 0);
        assert_eq!(peer.video_frames_unmarked, 0);
        assert!(
            peer.audio_frames_decoded * 10 >= peer.audio_frames_expected * 9,
            "{report:#?}"
        );
        assert_eq!(report.decode_errors, 0);
        assert_eq!(report.chat_received.len(), 2, "{:?}", report.chat_received);
    }
    assert_eq!(
        count(events_of(&sim, ada), |e| matches!(
            e,
            CallEvent::Joined { .. }
        )),
        1
    );
}

#[test]
fn a_cut_link_is_noticed_within_the_silence_and_the_place_is_kept() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(2));
    let ada_id = sim.peers[ada].id.expect("joined");
    sim.peers[ada].cut = true;
    let cut_at = sim.elapsed();
    let noticed = sim.run_until(Duration::from_secs(5), |sim| {
        events_of(sim, ada)
            .iter()
            .any(|e| matches!(e, CallEvent::Reconnecting { .. }))
    });
    let delay = noticed - cut_at;
    assert!(
        delay >= Duration::from_millis(1_900) && delay <= Duration::from_millis(2_100),
        "noticed after {delay:?}"
    );
    // The link comes back after a second: the call is back at its place, and bob never saw it go.
    sim.run_for(Duration::from_secs(1));
    sim.peers[ada].cut = false;
    let back = sim.run_until(Duration::from_secs(3), |sim| {
        events_of(sim, ada)
            .iter()
            .any(|e| matches!(e, CallEvent::Rejoined { .. }))
    });
    let link_back = cut_at + Duration::from_secs(3);
    assert!(
        back - link_back <= Duration::from_millis(900),
        "back {:?} after the link",
        back - link_back
    );
    let Some(CallEvent::Rejoined { you, roster }) = events_of(&sim, ada)
        .iter()
        .find(|e| matches!(e, CallEvent::Rejoined { .. }))
    else {
        unreachable!("found above")
    };
    assert_eq!(*you, ada_id, "same place");
    assert_eq!(roster.len(), 1);
    assert_eq!(
        count(events_of(&sim, bob), |e| matches!(
            e,
            CallEvent::Relay(FromRelay::ParticipantLeft { .. })
        )),
        0,
        "bob never saw ada leave"
    );
    // Media flows again both ways.
    let before = sim.report(bob).peers["ada"].video_frames_decoded;
    sim.run_for(Duration::from_secs(2));
    let report = sim.report(bob);
    assert!(
        report.peers["ada"].video_frames_decoded > before + 15,
        "{report:#?}"
    );
    let ada_report = sim.report(ada);
    let reconnection = &ada_report.reconnections[0];
    assert!(reconnection.resumed);
    assert!(reconnection.rejoined_at_ms.is_some());
    assert!(reconnection.first_media_at_ms.is_some());
    assert_eq!(ada_report.decode_errors, 0);
}

#[test]
fn a_place_kept_in_an_encrypted_room_is_added_to_the_group_again_and_media_opens() {
    let mut sim = Sim::encrypted();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(2));
    let codes = |sim: &Sim| [ada, bob].map(|p| sim.report(p).safety_code);
    let [a, b] = codes(&sim);
    assert!(a.is_some() && a == b, "{a:?} {b:?}");
    // Ada's link goes for 3 s, and Cy joins meanwhile: the commit adding Cy never reaches Ada
    // (what was queued for her goes with the old connection). The kept place comes back with a
    // fresh member, added again in one commit.
    sim.peers[ada].cut = true;
    sim.run_for(Duration::from_secs(1));
    let cy = sim.add(config("cy", false));
    sim.run_for(Duration::from_secs(2));
    sim.peers[ada].cut = false;
    sim.run_until(Duration::from_secs(3), |sim| {
        events_of(sim, ada)
            .iter()
            .any(|e| matches!(e, CallEvent::Rejoined { .. }))
    });
    let before = sim.report(bob).peers["ada"].video_frames_decoded;
    let ada_before = sim.report(ada).peers["bob"].video_frames_decoded;
    sim.run_for(Duration::from_secs(2));
    let [a2, b2] = codes(&sim);
    let c2 = sim.report(cy).safety_code;
    assert!(
        a2.is_some() && a2 == b2 && b2 == c2 && a2 != a,
        "a new epoch for all: {a2:?} {b2:?} {c2:?}"
    );
    assert!(sim.report(ada).reconnections[0].resumed);
    assert_eq!(
        sim.room.delivery().members().len(),
        3,
        "no leaf left behind"
    );
    // Media opens both ways again.
    assert!(sim.report(bob).peers["ada"].video_frames_decoded > before + 15);
    assert!(sim.report(ada).peers["bob"].video_frames_decoded > ada_before + 15);
}

#[test]
fn after_a_relay_restart_both_rejoin_quickly_and_the_report_merges_by_name() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_secs(2));
    // Down for longer than it takes to notice: the calls try several times meanwhile.
    sim.restart_relay(Duration::from_secs(4));
    let relay_back = sim.elapsed();
    let back = sim.run_until(Duration::from_secs(5), |sim| {
        [ada, bob].iter().all(|&p| {
            events_of(sim, p)
                .iter()
                .any(|e| matches!(e, CallEvent::Rejoined { .. }))
        })
    });
    assert!(
        back - relay_back <= Duration::from_millis(900),
        "back {:?} after the relay",
        back - relay_back
    );
    // First try at once, then waits that grow but stay under a second.
    let tries = &sim.peers[ada].connects;
    assert!(tries.len() >= 4, "{tries:?}");
    for pair in tries[1..].windows(2) {
        assert!(pair[1] - pair[0] <= Duration::from_millis(805), "{tries:?}");
    }
    sim.run_for(Duration::from_secs(2));
    let report = sim.report(bob);
    assert_eq!(report.peers.len(), 1, "one ada, across both sessions");
    let seen = &report.peers["ada"];
    assert!(seen.video_frames_decoded > 40, "{report:#?}");
    assert!(
        !report.reconnections[0].resumed,
        "a restarted relay keeps no place"
    );
}

#[test]
fn video_nobody_sees_is_not_decoded_and_resumes_at_a_keyframe() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(1));
    let ada_id = sim.peers[ada].id.expect("joined");
    sim.command(
        bob,
        Command::Visible {
            id: ada_id,
            visible: false,
        },
    );
    let decoded = sim.report(bob).peers["ada"].video_frames_decoded;
    sim.run_for(Duration::from_secs(2));
    let hidden = sim.report(bob);
    assert_eq!(hidden.peers["ada"].video_frames_decoded, decoded);
    assert!(hidden.peers["ada"].video_frames_skipped >= 25);
    sim.command(
        bob,
        Command::Visible {
            id: ada_id,
            visible: true,
        },
    );
    sim.run_for(Duration::from_secs(2));
    let shown = sim.report(bob);
    assert!(shown.peers["ada"].video_frames_decoded >= decoded + 20);
    assert_eq!(shown.decode_errors, 0, "resumed cleanly at a keyframe");
    assert_eq!(shown.peers["ada"].video_frames_wrong_sender, 0);
}

#[test]
fn a_muted_microphone_and_camera_send_nothing_and_others_see_it() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_secs(1));
    sim.command(ada, Command::Microphone(false));
    sim.command(ada, Command::Camera(false));
    sim.run_for(Duration::from_millis(100));
    let before = sim.report(ada);
    sim.run_for(Duration::from_secs(2));
    let after = sim.report(ada);
    assert_eq!(after.audio_frames_sent, before.audio_frames_sent);
    assert_eq!(after.video_frames_sent, before.video_frames_sent);
    assert!(events_of(&sim, bob).iter().any(|e| matches!(
        e,
        CallEvent::Relay(FromRelay::Mute {
            audio: true,
            video: true,
            ..
        })
    )));
}

#[test]
fn leaving_says_goodbye_and_ends_with_the_report() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", false));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_secs(1));
    sim.command(ada, Command::Leave);
    sim.run_for(Duration::from_millis(50));
    assert!(sim.peers[ada].call.is_over());
    let Some(CallEvent::Ended { report, error }) = events_of(&sim, ada).last() else {
        panic!("{:?}", events_of(&sim, ada).last());
    };
    assert_eq!(*error, None);
    assert!(report.audio_frames_sent > 30);
    assert!(
        events_of(&sim, bob)
            .iter()
            .any(|e| matches!(e, CallEvent::Relay(FromRelay::ParticipantLeft { .. })))
    );
}

#[test]
fn a_duration_ends_the_call_by_itself() {
    let mut sim = Sim::new();
    let mut short = config("ada", false);
    short.duration = Some(Duration::from_secs(1));
    let ada = sim.add(short);
    sim.run_for(Duration::from_millis(1_100));
    assert!(sim.peers[ada].call.is_over());
}

#[test]
fn a_first_join_that_fails_fails_the_call() {
    let mut sim = Sim::new();
    sim.relay_up = false;
    let ada = sim.add(config("ada", false));
    sim.run_for(Duration::from_millis(20));
    assert!(sim.peers[ada].call.is_over());
    assert!(matches!(
        events_of(&sim, ada).last(),
        Some(CallEvent::Failed(Error::Unreachable { .. }))
    ));
}

#[test]
fn a_refusal_while_rejoining_ends_the_call() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", false));
    sim.run_for(Duration::from_secs(1));
    sim.peers[ada].cut = true;
    sim.run_for(Duration::from_millis(2_100));
    sim.peers[ada].cut = false;
    // The relay now refuses (say, its room filled up meanwhile).
    let now = sim.now;
    sim.peers[ada]
        .call
        .handle_connect_failed(Error::Refused(rotunda_proto::ErrorCode::RoomFull), now);
    sim.run_for(Duration::from_millis(20));
    assert!(matches!(
        events_of(&sim, ada).last(),
        Some(CallEvent::Ended {
            error: Some(Error::Refused(rotunda_proto::ErrorCode::RoomFull)),
            ..
        })
    ));
}

#[test]
fn the_mixer_places_a_voice_that_is_heard() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", false));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_millis(500));
    let ada_id = sim.peers[ada].id.expect("joined");
    sim.command(
        bob,
        Command::Scene(rotunda_engine::audio::Scene {
            sources: vec![(ada_id, [3.0, 0.0, 0.0])],
            ..Default::default()
        }),
    );
    sim.run_for(Duration::from_millis(500));
    let mut out = vec![0.0f32; 1920];
    sim.peers[bob].call.render(&mut out);
    let left: f32 = out.iter().step_by(2).map(|s| s * s).sum();
    let right: f32 = out.iter().skip(1).step_by(2).map(|s| s * s).sum();
    assert!(right > 0.01, "ada is heard");
    assert!(right > left, "on the right");
    assert!(
        events_of(&sim, bob)
            .iter()
            .any(|e| matches!(e, CallEvent::Levels(levels) if levels.iter().any(|(id, l)| *id == ada_id && *l > 0.01)))
    );
}

#[test]
fn a_burst_after_a_stall_is_played_faster_not_dropped() {
    let mut sim = Sim::new();
    sim.add(config("ada", false));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_secs(2));
    // Half a second of ada's audio arrives at once, four times.
    for _ in 0..4 {
        sim.stall(bob, Duration::from_millis(500));
        sim.run_for(Duration::from_secs(1));
    }
    sim.run_for(Duration::from_secs(1));
    let report = sim.report(bob);
    let peer = &report.peers["ada"];
    assert!(
        peer.audio_frames_decoded + 3 >= peer.audio_frames_expected,
        "nothing dropped: {peer:?}"
    );
    assert_eq!(peer.audio_frames_concealed, 0, "{peer:?}");
    // Most packets waited little; the bursts drained within about a second each.
    assert!(peer.audio_latency_ms_p50 < 120.0, "{peer:?}");
    assert!(peer.audio_latency_ms_p95 < 600.0, "{peer:?}");
    let Some(CallEvent::Stats(live)) = events_of(&sim, bob)
        .iter()
        .rev()
        .find(|e| matches!(e, CallEvent::Stats(_)))
    else {
        panic!("no statistics");
    };
    assert!(
        live.peers[0].jitter_depth <= 6,
        "back near the target: {live:?}"
    );
}

#[test]
fn a_pose_held_back_by_the_control_budget_still_goes_out() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", false));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_millis(500));
    let ada_id = sim.peers[ada].id.expect("joined");
    // Far more poses at once than the budget lets go; then she stands still.
    for step in 0..200 {
        let pose = Pose {
            position: [step as f32, 0.0, 0.0],
            ..Pose::default()
        };
        sim.command(ada, Command::Pose(pose));
    }
    sim.run_for(Duration::from_millis(500));
    let seen = sim.peers[bob].poses.get(&ada_id).expect("a pose arrived");
    assert_eq!(seen.position[0], 199.0, "bob sees where ada stopped");
}

#[test]
fn a_mute_while_away_reaches_the_others_when_the_place_is_taken_back() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", true));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(1));
    let ada_id = sim.peers[ada].id.expect("joined");
    sim.peers[ada].cut = true;
    sim.run_for(Duration::from_millis(2_200));
    // Muted while rejoining: nothing can go out yet.
    sim.command(ada, Command::Microphone(false));
    sim.peers[ada].cut = false;
    sim.run_until(Duration::from_secs(3), |sim| {
        events_of(sim, ada)
            .iter()
            .any(|e| matches!(e, CallEvent::Rejoined { .. }))
    });
    sim.run_for(Duration::from_millis(200));
    assert!(
        sim.peers[ada].connects.len() >= 2,
        "ada rejoined: {:?}",
        sim.peers[ada].connects
    );
    let muted = events_of(&sim, bob).iter().rev().find_map(|e| match e {
        CallEvent::Relay(FromRelay::Mute { id, audio, .. }) if *id == ada_id => Some(*audio),
        _ => None,
    });
    assert_eq!(muted, Some(true), "bob sees ada muted");
}

#[test]
fn chat_sent_again_on_a_rejoin_is_counted_once() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", false));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_millis(500));
    sim.command(bob, Command::Chat("one".into()));
    sim.command(bob, Command::Chat("two".into()));
    sim.run_for(Duration::from_millis(200));
    let before = sim.report(ada).chat_received;
    assert!(before.iter().any(|line| line.text == "two"), "{before:?}");
    // Ada's link drops; the relay keeps her place and sends her the room's chat again.
    sim.peers[ada].cut = true;
    sim.run_for(Duration::from_millis(2_200));
    sim.peers[ada].cut = false;
    sim.run_until(Duration::from_secs(3), |sim| {
        events_of(sim, ada)
            .iter()
            .any(|e| matches!(e, CallEvent::Rejoined { .. }))
    });
    sim.run_for(Duration::from_millis(200));
    assert_eq!(sim.report(ada).chat_received, before, "each line once");
}

#[test]
fn chat_after_a_relay_restart_is_numbered_on_for_the_application() {
    let mut sim = Sim::new();
    let ada = sim.add(config("ada", false));
    let bob = sim.add(config("bob", false));
    sim.run_for(Duration::from_millis(500));
    sim.command(bob, Command::Chat("before".into()));
    sim.run_for(Duration::from_millis(200));
    // The restarted relay numbers its room's lines from 1 again; the application, which keeps
    // the chat it has shown, must still get the new line as new.
    sim.restart_relay(Duration::from_secs(2));
    sim.run_until(Duration::from_secs(5), |sim| {
        events_of(sim, bob)
            .iter()
            .any(|e| matches!(e, CallEvent::Rejoined { .. }))
    });
    sim.command(bob, Command::Chat("after".into()));
    sim.run_for(Duration::from_millis(300));
    let lines: Vec<(u64, String)> = events_of(&sim, ada)
        .iter()
        .filter_map(|e| match e {
            CallEvent::Relay(FromRelay::Chat { seq, text, .. }) => Some((*seq, text.clone())),
            _ => None,
        })
        .collect();
    let texts: Vec<&str> = lines.iter().map(|(_, text)| text.as_str()).collect();
    assert!(
        texts.contains(&"before") && texts.contains(&"after"),
        "{lines:?}"
    );
    assert!(
        lines.windows(2).all(|pair| pair[1].0 > pair[0].0),
        "numbers only grow: {lines:?}"
    );
}

/// A call that can share a screen (the marked pattern stands in for it), not sharing yet.
fn sharer(name: &str) -> CallConfig {
    let mut config = config(name, false);
    config.screen = Some(VideoSpec {
        width: 320,
        height: 180,
        fps: 5,
    });
    config
}

/// Screen frames `index` decoded of `from`'s.
fn screen_decoded(sim: &Sim, index: usize, from: &str) -> u64 {
    sim.report(index)
        .peers
        .get(from)
        .map_or(0, |peer| peer.screen_frames_decoded)
}

/// Whether `index` heard `from`'s screen track published (`true`) or withdrawn (`false`) last.
fn screen_shown(sim: &Sim, index: usize, from: ParticipantId) -> Option<bool> {
    events_of(sim, index).iter().rev().find_map(|e| match e {
        CallEvent::Relay(FromRelay::TrackPublished { track, info })
            if track.participant == from && info.source == TrackSource::Screen =>
        {
            Some(true)
        }
        CallEvent::Relay(FromRelay::TrackUnpublished { track })
            if track.participant == from && track.index == SCREEN_INDEX =>
        {
            Some(false)
        }
        _ => None,
    })
}

#[test]
fn a_screen_shared_reaches_the_others_and_stops_when_sharing_stops() {
    let mut sim = Sim::new();
    let ada = sim.add(sharer("ada"));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(1));
    let ada_id = sim.peers[ada].id.expect("joined");
    assert_eq!(screen_shown(&sim, bob, ada_id), None, "nothing shared yet");
    assert_eq!(
        sim.report(ada).screen_frames_sent,
        0,
        "nothing captured yet"
    );

    sim.command(ada, Command::Screen(true));
    sim.run_for(Duration::from_secs(3));
    assert_eq!(screen_shown(&sim, bob, ada_id), Some(true));
    let decoded = screen_decoded(&sim, bob, "ada");
    let peer = sim.report(bob).peers["ada"].clone();
    assert!(
        decoded >= 12,
        "bob decoded {decoded} of ada's screen: {peer:?}"
    );
    assert_eq!(peer.screen_marks, Some(ada_id.0 as u16), "{peer:?}");
    assert_eq!(peer.screen_size.as_deref(), Some("320x180"));
    assert_eq!(peer.video_frames_received, 0, "a screen is not a camera");

    sim.command(ada, Command::Screen(false));
    sim.run_for(Duration::from_millis(500));
    assert_eq!(screen_shown(&sim, bob, ada_id), Some(false));
    let stopped = screen_decoded(&sim, bob, "ada");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        screen_decoded(&sim, bob, "ada"),
        stopped,
        "nothing after the stop"
    );
}

#[test]
fn sharing_started_while_away_is_announced_when_the_place_is_taken_back() {
    let mut sim = Sim::new();
    let ada = sim.add(sharer("ada"));
    let bob = sim.add(config("bob", true));
    sim.run_for(Duration::from_secs(1));
    let ada_id = sim.peers[ada].id.expect("joined");
    sim.peers[ada].cut = true;
    sim.run_for(Duration::from_millis(2_200));
    // Shared while rejoining: nothing can go out yet.
    sim.command(ada, Command::Screen(true));
    sim.peers[ada].cut = false;
    sim.run_until(Duration::from_secs(3), |sim| {
        events_of(sim, ada)
            .iter()
            .any(|e| matches!(e, CallEvent::Rejoined { .. }))
    });
    assert!(
        sim.report(ada).reconnections[0].resumed,
        "the place was kept"
    );
    sim.run_for(Duration::from_secs(3));
    assert_eq!(screen_shown(&sim, bob, ada_id), Some(true));
    assert!(screen_decoded(&sim, bob, "ada") >= 10);
    // And stopped while away again: withdrawn when back.
    sim.peers[ada].cut = true;
    sim.run_for(Duration::from_millis(2_200));
    sim.command(ada, Command::Screen(false));
    sim.peers[ada].cut = false;
    sim.run_for(Duration::from_secs(3));
    assert_eq!(screen_shown(&sim, bob, ada_id), Some(false));
}
