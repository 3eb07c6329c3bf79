//! The client's systems on a bare `App`: no window, no GPU, no network. Messages stand in for the
//! relay; time advances 100 ms per update.

use std::time::Duration;

use bevy::camera::RenderTargetInfo;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use bevy::time::TimeUpdateStrategy;
use bevy::transform::TransformPlugin;
use rotunda::audio::sounds::{Cue, PlayCue, SoundsOn, decide_cues};
use rotunda::audio::{AudioScene, Ears, MeetingMode};
use rotunda::call::{
    CallEnded, CallJoined, CallReconnecting, CallRejoined, ChatReceived, Connection, Error,
    ParticipantArrived, ParticipantJoined, ParticipantLeft, ParticipantMoved, ParticipantMuted,
    ScreenShared, ScreenStopped,
};
use rotunda::participants::{Arriving, Departing, Muted, Participant, Roster, Target};
use rotunda::room::avatar::{Avatar, place_in_ring};
use rotunda::room::focus::{FOCUS_DISTANCE, Focus, focus_keys, focus_pose, follow_focus};
use rotunda::room::layout::{self, PANEL_WIDTH};
use rotunda::room::panel::PanelParts;
use rotunda::room::view::{MeasuredView, PIN_PRIORITY, Pinned, measure_view, pin_view, ring_view};
use rotunda::room::wall::{SharedScreen, Wall, WallSlot};
use rotunda::settings::Settings;
use rotunda::state::{LeftReason, Screen};
use rotunda::ui::model::{ChatLog, Invitation, Panels, ParticipantRows};
use rotunda_engine::PanelView;
use rotunda_engine::audio::Mixer;
use rotunda_engine::audio::spatial::VoiceParams;
use rotunda_proto::alloc::layer_for_height;
use rotunda_proto::{Grants, LayerInfo, LeaveReason, ParticipantId, ParticipantInfo, Pose};

const STEP: Duration = Duration::from_millis(100);

fn app() -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, TransformPlugin));
    app.insert_resource(TimeUpdateStrategy::ManualDuration(STEP));
    // The logic only: no call, relay or device starts in these tests.
    app.insert_resource(Settings::default());
    app.add_plugins(rotunda::logic_plugin);
    app.update();
    app
}

fn info(id: u32, name: &str) -> ParticipantInfo {
    ParticipantInfo {
        id: ParticipantId(id),
        name: name.into(),
        identity: name.into(),
        tracks: Vec::new(),
        audio_muted: false,
        video_muted: false,
        pose: Pose::default(),
    }
}

fn join(app: &mut App, you: u32, others: &[(u32, &str)]) {
    app.world_mut().write_message(CallJoined {
        you: ParticipantId(you),
        name: "me".into(),
        grants: Grants::ALL,
    });
    for (id, name) in others {
        app.world_mut()
            .write_message(ParticipantJoined(info(*id, name)));
    }
    app.update();
}

fn entity(app: &App, id: u32) -> Option<Entity> {
    app.world()
        .resource::<Roster>()
        .entities
        .get(&ParticipantId(id))
        .copied()
}

fn position(app: &App, id: u32) -> Vec3 {
    let entity = entity(app, id).expect("participant present");
    app.world()
        .get::<Transform>(entity)
        .expect("transform")
        .translation
}

fn participants(app: &mut App) -> usize {
    app.world_mut()
        .query::<&Participant>()
        .iter(app.world())
        .count()
}

fn run(app: &mut App, updates: usize) {
    for _ in 0..updates {
        app.update();
    }
}

#[test]
fn joins_spawn_panels_that_grow_in() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice"), (3, "bob")]);
    assert_eq!(participants(&mut app), 2, "one panel per other participant");
    assert!(entity(&app, 1).is_none(), "no panel for ourselves");
    let alice = entity(&app, 2).expect("alice");
    assert!(app.world().get::<Arriving>(alice).is_some());
    let start = app.world().get::<Transform>(alice).expect("t").scale.x;
    assert!(start < 0.5, "a new panel starts small ({start})");
    run(&mut app, 8);
    assert!(app.world().get::<Arriving>(alice).is_none());
    assert_eq!(
        app.world().get::<Transform>(alice).expect("t").scale,
        Vec3::ONE
    );
}

#[test]
fn a_repeated_join_updates_rather_than_duplicates() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice")]);
    let mut renamed = info(2, "alice (laptop)");
    renamed.audio_muted = true;
    app.world_mut().write_message(ParticipantJoined(renamed));
    app.update();
    assert_eq!(participants(&mut app), 1);
    let alice = entity(&app, 2).expect("alice");
    assert_eq!(
        app.world().get::<Participant>(alice).expect("p").name,
        "alice (laptop)"
    );
    assert!(app.world().get::<Muted>(alice).expect("m").audio);
}

#[test]
fn leaves_shrink_out_and_despawn() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice"), (3, "bob")]);
    run(&mut app, 8);
    let alice = entity(&app, 2).expect("alice");
    app.world_mut().write_message(ParticipantLeft {
        id: ParticipantId(2),
        reason: LeaveReason::Left,
    });
    app.update();
    assert!(entity(&app, 2).is_none(), "gone from the roster at once");
    assert!(
        app.world().get::<Departing>(alice).is_some(),
        "animating out"
    );
    run(&mut app, 8);
    assert!(
        app.world().get_entity(alice).is_err(),
        "despawned after shrinking"
    );
    assert_eq!(participants(&mut app), 1, "bob stays");
}

#[test]
fn poses_move_panels_smoothly() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice")]);
    let start = position(&app, 2);
    let goal = Vec3::new(6.0, layout::PANEL_CENTER_Y, -2.0);
    app.world_mut().write_message(ParticipantMoved {
        id: ParticipantId(2),
        pose: Pose {
            position: [6.0, 1.6, -2.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        },
    });
    app.update();
    let target = app
        .world()
        .get::<Target>(entity(&app, 2).expect("alice"))
        .expect("target");
    assert_eq!(target.position, goal);
    // It glides: every step covers part of the remaining way, never jumping or overshooting.
    let mut last = start.distance(goal);
    let first = position(&app, 2).distance(goal);
    assert!(
        first < last && first > 0.2 * last,
        "no jump: {first} of {last}"
    );
    for _ in 0..20 {
        app.update();
        let left = position(&app, 2).distance(goal);
        assert!(left < last, "keeps closing in");
        last = left;
    }
    assert!(last < 0.01, "arrives ({last})");
}

#[test]
fn participants_without_poses_stand_apart_in_the_ring() {
    let mut app = app();
    let others: Vec<(u32, String)> = (2..=12).map(|id| (id, format!("p{id}"))).collect();
    let named: Vec<(u32, &str)> = others.iter().map(|(id, n)| (*id, n.as_str())).collect();
    join(&mut app, 1, &named);
    run(&mut app, 2);
    let positions: Vec<Vec3> = (2..=12).map(|id| position(&app, id)).collect();
    for (i, a) in positions.iter().enumerate() {
        for b in &positions[i + 1..] {
            assert!(a.distance(*b) >= PANEL_WIDTH, "{a} and {b} overlap");
        }
    }
    // Our own slot stays free: nobody stands there.
    let ours = layout::ring(12)[0].translation;
    assert!(positions.iter().all(|p| p.distance(ours) > PANEL_WIDTH));
}

#[test]
fn the_ring_keeps_1_to_30_panels_apart_and_facing_the_centre() {
    for count in 1..=30 {
        let slots = layout::ring(count);
        assert_eq!(slots.len(), count);
        for (i, slot) in slots.iter().enumerate() {
            let to_centre =
                (Vec3::new(0.0, slot.translation.y, 0.0) - slot.translation).normalize_or_zero();
            let front = slot.rotation * Vec3::Z;
            assert!(
                front.dot(to_centre) > 0.999,
                "slot {i} of {count} faces {front}, not the centre"
            );
            assert!(slot.translation.xz().length() < layout::ROOM_RADIUS - 2.0);
            for other in &slots[i + 1..] {
                let gap = slot.translation.distance(other.translation);
                assert!(gap >= PANEL_WIDTH + layout::GAP - 1e-3, "{count}: {gap}");
            }
        }
    }
}

#[test]
fn mute_state_reaches_the_participants_list() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice"), (3, "bob")]);
    app.world_mut().write_message(ParticipantMuted {
        id: ParticipantId(3),
        audio: true,
        video: false,
    });
    app.update();
    let bob = entity(&app, 3).expect("bob");
    assert_eq!(
        *app.world().get::<Muted>(bob).expect("muted"),
        Muted {
            audio: true,
            video: false
        }
    );
    let rows = app.world().resource::<ParticipantRows>().0.clone();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["me", "alice", "bob"], "us first, then by name");
    assert!(rows[0].you);
    assert!(rows[2].audio_muted && !rows[2].video_muted);
    assert!(!rows[1].audio_muted);
}

#[test]
fn chat_is_kept_in_room_order_and_counts_unread() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice")]);
    app.world_mut().resource_mut::<Panels>().chat = false;
    let line = |seq: u64, from: u32, text: &str| ChatReceived {
        seq,
        from: ParticipantId(from),
        name: if from == 1 { "me" } else { "alice" }.into(),
        text: text.into(),
    };
    for message in [
        line(3, 2, "third"),
        line(1, 2, "first"),
        line(2, 1, "mine"),
        line(3, 2, "third again"),
    ] {
        app.world_mut().write_message(message);
    }
    app.update();
    let log = app.world().resource::<ChatLog>();
    let texts: Vec<&str> = log.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["first", "mine", "third"], "by seq, repeats dropped");
    assert!(log.lines[1].mine);
    assert_eq!(log.unread, 2, "our own line is not unread");
}

#[test]
fn voices_are_placed_where_panels_stand() {
    let mut app = app();
    app.world_mut().spawn((
        Ears,
        Transform::from_xyz(0.0, 1.6, 0.0).looking_at(Vec3::new(0.0, 1.6, -1.0), Vec3::Y),
    ));
    join(&mut app, 1, &[(2, "alice")]);
    let alice = entity(&app, 2).expect("alice");
    // Alice to our right, 2 m away.
    app.world_mut().write_message(ParticipantMoved {
        id: ParticipantId(2),
        pose: Pose {
            position: [2.0, 1.6, 0.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        },
    });
    run(&mut app, 30);
    let near = placed(&app, 2).expect("alice is placed");
    assert!(
        (near.azimuth - std::f32::consts::FRAC_PI_2).abs() < 0.1,
        "{near:?}"
    );
    assert!(
        near.delay_right < 1e-6 && near.delay_left > 0.0005,
        "{near:?}"
    );
    assert!(
        near.alpha_right > near.alpha_left,
        "the far ear is shadowed"
    );
    // Farther away on the same side: quieter, same direction.
    app.world_mut().write_message(ParticipantMoved {
        id: ParticipantId(2),
        pose: Pose {
            position: [8.0, 1.6, 0.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        },
    });
    run(&mut app, 30);
    let far = placed(&app, 2).expect("alice is placed");
    assert!(far.gain < near.gain * 0.5, "{} vs {}", far.gain, near.gain);
    assert!(app.world().get::<Transform>(alice).is_some());
}

/// Where the engine's mixer would place participant `id`, given the scene the room made.
fn placed(app: &App, id: u32) -> Option<VoiceParams> {
    let mut mixer = Mixer::default();
    mixer.set_scene(&app.world().resource::<AudioScene>().0);
    mixer.spatial().params(id)
}

#[test]
fn meeting_mode_reaches_the_mixer() {
    let mut app = app();
    app.world_mut().resource_mut::<MeetingMode>().0 = true;
    app.update();
    let mut mixer = Mixer::default();
    mixer.set_scene(&app.world().resource::<AudioScene>().0);
    assert!(mixer.spatial().meeting_mode());
}

#[test]
fn joining_enters_the_room_and_a_lost_call_retries() {
    let mut app = app();
    app.world_mut()
        .resource_mut::<NextState<Screen>>()
        .set(Screen::Connecting);
    app.update();
    join(&mut app, 1, &[(2, "alice")]);
    app.update();
    assert_eq!(
        *app.world().resource::<State<Screen>>().get(),
        Screen::InRoom
    );
    let lost = Error::Silent { seconds: 2 };
    app.world_mut().write_message(CallEnded {
        report: None,
        retry: lost.is_retryable(),
        error: Some(lost),
    });
    run(&mut app, 2);
    assert_eq!(*app.world().resource::<State<Screen>>().get(), Screen::Left);
    let reason = app.world().resource::<LeftReason>().clone();
    assert!(reason.message.is_some_and(|m| m.contains("lost")));
    assert!(reason.retry.is_some(), "a lost connection is retried");
    assert_eq!(participants(&mut app), 0, "the room's panels are gone");
    assert!(app.world().resource::<Roster>().entities.is_empty());
    // The retry fires after its pause.
    run(&mut app, 12);
    assert_eq!(
        *app.world().resource::<State<Screen>>().get(),
        Screen::Connecting
    );
}

#[test]
fn a_refused_join_is_not_retried() {
    let mut app = app();
    app.world_mut()
        .resource_mut::<NextState<Screen>>()
        .set(Screen::Connecting);
    app.update();
    let refused = Error::Refused(rotunda_proto::ErrorCode::RoomFull);
    app.world_mut().write_message(CallEnded {
        report: None,
        retry: refused.is_retryable(),
        error: Some(refused),
    });
    run(&mut app, 20);
    assert_eq!(*app.world().resource::<State<Screen>>().get(), Screen::Left);
    let reason = app.world().resource::<LeftReason>().clone();
    assert_eq!(reason.message.as_deref(), Some("The room is full."));
    assert!(reason.retry.is_none());
}

#[test]
fn a_rejoin_keeps_the_room_on_screen_and_drops_only_who_is_gone() {
    let mut app = app();
    app.world_mut()
        .resource_mut::<NextState<Screen>>()
        .set(Screen::Connecting);
    app.update();
    join(&mut app, 1, &[(2, "alice"), (3, "bob")]);
    run(&mut app, 8);
    let alice = entity(&app, 2).expect("alice");
    // Lost: still in the room, marked as reconnecting.
    app.world_mut().write_message(CallReconnecting {
        attempt: 1,
        reason: Error::Silent { seconds: 2 },
    });
    app.world_mut().resource_mut::<Connection>().reconnecting =
        Some((1, Error::Silent { seconds: 2 }));
    run(&mut app, 3);
    assert_eq!(
        *app.world().resource::<State<Screen>>().get(),
        Screen::InRoom
    );
    assert_eq!(participants(&mut app), 2, "the panels stay");
    // Back: alice is still here, bob is gone, carol came.
    app.world_mut().write_message(CallRejoined {
        you: ParticipantId(1),
        present: vec![ParticipantId(2), ParticipantId(4)],
    });
    app.world_mut()
        .write_message(ParticipantJoined(info(2, "alice")));
    app.world_mut()
        .write_message(ParticipantJoined(info(4, "carol")));
    run(&mut app, 10);
    assert_eq!(
        entity(&app, 2),
        Some(alice),
        "alice's panel is the same one"
    );
    assert!(entity(&app, 3).is_none(), "bob is gone");
    assert!(entity(&app, 4).is_some(), "carol arrived");
    assert_eq!(
        *app.world().resource::<State<Screen>>().get(),
        Screen::InRoom
    );
}

// ----- What the window sees -----------------------------------------------------------------

/// The room's camera as the window has it: where our place in the ring stands, looking at the
/// centre, a 1280x720 view with the window's projection.
fn room_camera(app: &mut App, ids: &[ParticipantId], you: ParticipantId) {
    let (eye, yaw) = place_in_ring(ids, you).expect("a place");
    let aspect = 1280.0 / 720.0;
    let mut camera = Camera::default();
    camera.computed.clip_from_view =
        Mat4::perspective_infinite_reverse_rh(layout::vertical_fov(aspect), aspect, 0.1);
    camera.computed.target_info = Some(RenderTargetInfo {
        physical_size: UVec2::new(1280, 720),
        scale_factor: 1.0,
    });
    app.world_mut().spawn((
        camera,
        Transform::from_translation(eye).with_rotation(Quat::from_rotation_y(yaw)),
        Ears,
    ));
}

/// Each panel's video surface, as the room's panel plugin attaches it (drawn: in view).
fn attach_screens(app: &mut App, ids: &[u32]) {
    for id in ids {
        let panel = entity(app, *id).expect("a panel");
        let screen = app.world_mut().spawn(ViewVisibility::VISIBLE).id();
        app.world_mut().entity_mut(panel).insert(PanelParts {
            screen,
            material: Handle::default(),
            frame: Handle::default(),
            image: Handle::default(),
            shown: 0,
            unseen_since: None,
            unseen_frames: 0,
            hidden: false,
        });
    }
}

/// A participant walks to `spot` (its eyes at the usual height).
fn walk_to(app: &mut App, id: u32, spot: Vec3) {
    app.world_mut().write_message(ParticipantMoved {
        id: ParticipantId(id),
        pose: Pose {
            position: [spot.x, 1.6, spot.z],
            orientation: [0.0, 0.0, 0.0, 1.0],
        },
    });
}

fn measured(app: &App) -> Vec<PanelView> {
    app.world()
        .resource::<MeasuredView>()
        .0
        .clone()
        .expect("measured")
}

#[test]
fn the_window_measures_each_panel_and_one_walking_up_needs_a_larger_picture() {
    let mut app = app();
    app.init_resource::<MeasuredView>()
        .add_systems(Update, measure_view);
    join(
        &mut app,
        1,
        &[(2, "ada"), (3, "bea"), (4, "cy"), (5, "dee")],
    );
    attach_screens(&mut app, &[2, 3, 4, 5]);
    let ids: Vec<ParticipantId> = (1..=5).map(ParticipantId).collect();
    room_camera(&mut app, &ids, ParticipantId(1));
    // Grown in, standing at their ring places.
    run(&mut app, 10);
    let view = measured(&app);
    // As `rotunda bot --view 1280x720` reckons it from the same layout, within a few pixels.
    let reckoned = ring_view(&ids, ParticipantId(1), Vec2::new(1280.0, 720.0));
    assert_eq!(view.len(), 4);
    println!("measured {view:?}\nreckoned {reckoned:?}");
    for (seen, expected) in view.iter().zip(&reckoned) {
        assert_eq!(seen.id, expected.id);
        assert!(seen.height > 0, "{seen:?}");
        assert!(
            seen.height.abs_diff(expected.height) <= 3,
            "{seen:?} vs {expected:?}"
        );
    }
    let before = view.iter().find(|p| p.id == ParticipantId(2)).expect("ada");
    // Ada walks up to a metre and a half before our eyes: taller on screen, a larger layer.
    let (eye, yaw) = place_in_ring(&ids, ParticipantId(1)).expect("a place");
    let ahead = Vec3::new(-yaw.sin(), 0.0, -yaw.cos());
    let spot = eye + ahead * 1.5;
    walk_to(&mut app, 2, spot);
    run(&mut app, 40);
    let after = measured(&app);
    let near = after
        .iter()
        .find(|p| p.id == ParticipantId(2))
        .expect("ada");
    println!("ada: {before:?} in the ring, {near:?} before our eyes");
    assert!(near.height > 2 * before.height, "{before:?} then {near:?}");
    assert!(near.priority > 0, "in the middle of the view: {near:?}");
    let layer = |width, height, fps, kbps| LayerInfo {
        width,
        height,
        fps,
        kbps,
    };
    let layers = [
        layer(160, 120, 15, 70),
        layer(320, 240, 30, 200),
        layer(640, 480, 30, 600),
    ];
    assert!(
        layer_for_height(&layers, near.height) > layer_for_height(&layers, before.height),
        "{before:?} then {near:?}"
    );
    // Behind us (a panel moved out of the view's frame): nothing.
    let behind = eye - ahead * 2.0;
    walk_to(&mut app, 2, behind);
    run(&mut app, 40);
    let gone = measured(&app);
    let ada = gone.iter().find(|p| p.id == ParticipantId(2)).expect("ada");
    assert_eq!(ada.height, 0, "{ada:?}");
}

#[test]
fn what_the_token_grants_reaches_the_room() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice")]);
    assert_eq!(app.world().resource::<Roster>().your_grants, Grants::ALL);
    let watcher = Grants {
        publish: false,
        subscribe: true,
        chat: false,
    };
    app.world_mut().write_message(CallJoined {
        you: ParticipantId(5),
        name: "Watcher".into(),
        grants: watcher,
    });
    app.update();
    let roster = app.world().resource::<Roster>();
    assert_eq!(
        (roster.your_name.as_str(), roster.your_grants),
        ("Watcher", watcher),
        "the name and grants the relay gave"
    );
}

fn wall(app: &mut App) -> Vec<(u32, WallSlot)> {
    let mut screens: Vec<(u32, WallSlot)> = app
        .world_mut()
        .query::<(&SharedScreen, &WallSlot)>()
        .iter(app.world())
        .map(|(screen, slot)| (screen.id.0, *slot))
        .collect();
    screens.sort_by(|a, b| a.1.x.total_cmp(&b.1.x));
    screens
}

#[test]
fn the_wall_holds_every_shared_screen_side_by_side_and_empties() {
    let mut app = app();
    join(&mut app, 1, &[(2, "alice"), (3, "bob")]);
    assert!(wall(&mut app).is_empty(), "nobody shares: an empty wall");

    // One share: in the middle.
    app.world_mut()
        .write_message(ScreenShared(ParticipantId(2)));
    app.update();
    let one = wall(&mut app);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, 2);
    assert!(one[0].1.x.abs() < 1e-6 && one[0].1.width > 1.0, "{one:?}");

    // A second: side by side, the first share on the left, the same size, apart.
    app.world_mut()
        .write_message(ScreenShared(ParticipantId(3)));
    // Said again (a roster after a rejoin): still one screen each.
    app.world_mut()
        .write_message(ScreenShared(ParticipantId(2)));
    app.update();
    let two = wall(&mut app);
    assert_eq!(two.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2, 3]);
    let (left, right) = (two[0].1, two[1].1);
    assert!((left.x + right.x).abs() < 1e-6, "centred: {two:?}");
    assert_eq!(left.width, right.width);
    assert!(right.x - left.x >= left.width, "no overlap: {two:?}");

    // The first stops: the other moves to the middle; its sharer leaves: the wall empties.
    app.world_mut()
        .write_message(ScreenStopped(ParticipantId(2)));
    app.update();
    let back = wall(&mut app);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].0, 3);
    assert!(back[0].1.x.abs() < 1e-6, "{back:?}");
    app.world_mut().write_message(ParticipantLeft {
        id: ParticipantId(3),
        reason: LeaveReason::Left,
    });
    app.update();
    assert!(wall(&mut app).is_empty());
    assert!(app.world().resource::<Wall>().shares.is_empty());
}

#[test]
fn an_invitation_names_the_room_for_a_browser_and_for_the_command_line() {
    let mut settings = Settings {
        relay: Some("https://meet.example.org:4443".into()),
        room: "design review".into(),
        ..Settings::default()
    };
    let invitation = Invitation::to(&settings);
    assert_eq!(
        invitation.link,
        "http://meet.example.org:4443/?room=design%20review"
    );
    assert_eq!(
        invitation.command,
        "rotunda --relay https://meet.example.org:4443 --room 'design review'"
    );
    assert!(!invitation.needs_token);
    // A relay with its own certificate is pinned; a token is never handed on.
    settings.cert_hash = Some([0xab; 32]);
    settings.token = Some("secret".into());
    let invitation = Invitation::to(&settings);
    assert!(
        invitation
            .command
            .ends_with(&format!(" --cert-hash {}", "ab".repeat(32)))
    );
    assert!(!invitation.command.contains("secret") && !invitation.link.contains("secret"));
    assert!(invitation.needs_token);
}

/// The viewer (at the ring, looking at the centre) and one panel across the ring, with the
/// focus systems alone.
fn focus_app() -> (App, Entity) {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, TransformPlugin));
    app.insert_resource(TimeUpdateStrategy::ManualDuration(STEP));
    app.init_resource::<ButtonInput<KeyCode>>();
    app.init_resource::<Focus>().init_resource::<Pinned>();
    app.add_systems(Update, (focus_keys, follow_focus).chain());
    app.world_mut().spawn((
        Participant {
            id: ParticipantId(2),
            name: "alice".into(),
        },
        Transform::from_xyz(0.0, 1.55, -4.0),
    ));
    let viewer = app
        .world_mut()
        .spawn((Avatar::default(), Transform::from_xyz(0.0, 1.6, 6.0)))
        .id();
    app.update();
    (app, viewer)
}

fn press(app: &mut App, key: KeyCode) {
    app.world_mut()
        .resource_mut::<ButtonInput<KeyCode>>()
        .press(key);
    app.update();
    let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
    keys.release(key);
    keys.clear();
}

fn viewer_at(app: &App, viewer: Entity) -> Vec3 {
    app.world()
        .get::<Transform>(viewer)
        .expect("viewer")
        .translation
}

#[test]
fn focusing_glides_up_to_a_panel_and_esc_glides_back() {
    let (mut app, viewer) = focus_app();
    let start = viewer_at(&app, viewer);
    let avatar = app.world().get::<Avatar>(viewer).expect("avatar");
    let mut focus = Focus::default();
    focus.look_at(ParticipantId(2), avatar, start);
    app.insert_resource(focus);
    // Halfway after a few frames, there after two seconds: in front of the panel, facing it.
    run(&mut app, 3);
    let moving = viewer_at(&app, viewer);
    assert!(moving.z < start.z - 1.0 && moving.z > -2.3, "{moving}");
    run(&mut app, 20);
    let (goal, yaw) = focus_pose(Vec3::new(0.0, 1.55, -4.0), start);
    assert!(
        viewer_at(&app, viewer).distance(goal) < 0.05,
        "{}",
        viewer_at(&app, viewer)
    );
    assert!((goal.z - (-4.0 + FOCUS_DISTANCE)).abs() < 1e-4 && yaw.abs() < 1e-4);
    assert!(app.world().get::<Avatar>(viewer).expect("avatar").moved);

    // Esc: back where the viewer stood, and the ring may move them again.
    press(&mut app, KeyCode::Escape);
    assert_eq!(app.world().resource::<Focus>().target, None);
    run(&mut app, 30);
    assert!(viewer_at(&app, viewer).distance(start) < 0.05);
    assert!(!app.world().get::<Avatar>(viewer).expect("avatar").moved);
    assert_eq!(*app.world().resource::<Focus>(), Focus::default());

    // Walking while focused: the focus ends where the viewer is.
    let avatar = app.world().get::<Avatar>(viewer).expect("avatar");
    let mut focus = Focus::default();
    focus.look_at(ParticipantId(2), avatar, start);
    app.insert_resource(focus);
    run(&mut app, 4);
    app.world_mut()
        .resource_mut::<ButtonInput<KeyCode>>()
        .press(KeyCode::KeyW);
    app.update();
    let stopped = viewer_at(&app, viewer);
    run(&mut app, 10);
    assert_eq!(viewer_at(&app, viewer), stopped);
    assert_eq!(*app.world().resource::<Focus>(), Focus::default());
}

#[test]
fn pinning_the_focused_person_puts_their_picture_first_and_whole() {
    let (mut app, viewer) = focus_app();
    app.add_systems(Update, pin_view.after(follow_focus));
    let panel = |id: u32, height: u16, priority: u8| PanelView {
        id: ParticipantId(id),
        height,
        priority,
    };
    let measured = vec![panel(2, 90, 0), panel(3, 200, 3)];
    app.insert_resource(MeasuredView(Some(measured.clone())));
    app.update();
    assert_eq!(
        app.world().resource::<MeasuredView>().0.as_ref(),
        Some(&measured)
    );
    // P with nobody focused pins nobody.
    press(&mut app, KeyCode::KeyP);
    assert_eq!(app.world().resource::<Pinned>().0, None);

    let avatar = app.world().get::<Avatar>(viewer).expect("avatar");
    let mut focus = Focus::default();
    focus.look_at(ParticipantId(2), avatar, Vec3::new(0.0, 1.6, 6.0));
    app.insert_resource(focus);
    app.insert_resource(MeasuredView(Some(measured.clone())));
    press(&mut app, KeyCode::KeyP);
    assert_eq!(app.world().resource::<Pinned>().0, Some(ParticipantId(2)));
    let view = app
        .world()
        .resource::<MeasuredView>()
        .0
        .clone()
        .expect("a view");
    // Above the speaker, and its top layer whatever its panel's size.
    assert_eq!(view[0], panel(2, u16::MAX, PIN_PRIORITY));
    assert_eq!(view[1], measured[1]);
    assert!(view[0].priority > view[1].priority);
    // P again unpins.
    press(&mut app, KeyCode::KeyP);
    assert_eq!(app.world().resource::<Pinned>().0, None);
}

/// Every cue the room decided to play, in order.
#[derive(Resource, Default)]
struct Heard(Vec<PlayCue>);

fn heard(app: &mut App) -> Vec<(Cue, Vec3)> {
    std::mem::take(&mut app.world_mut().resource_mut::<Heard>().0)
        .into_iter()
        .map(|cue| (cue.cue, cue.at))
        .collect()
}

#[test]
fn a_sound_marks_who_comes_goes_or_chats_from_where_they_stand() {
    let mut app = app();
    app.init_resource::<Heard>();
    app.add_systems(
        Update,
        (|mut cues: MessageReader<PlayCue>, mut heard: ResMut<Heard>| {
            heard.0.extend(cues.read().copied());
        })
        .after(decide_cues),
    );
    let chat = |seq: u64, from: u32| ChatReceived {
        seq,
        from: ParticipantId(from),
        name: format!("p{from}"),
        text: "hello".into(),
    };
    // Joining: those already there and the chat history they said make no sound.
    join(&mut app, 1, &[(2, "alice")]);
    app.world_mut().write_message(chat(1, 2));
    run(&mut app, 20);
    assert_eq!(heard(&mut app), [], "the room as it was is quiet");

    // Bob comes in: a chime from where his panel will stand.
    app.world_mut()
        .write_message(ParticipantArrived(ParticipantId(3)));
    app.world_mut()
        .write_message(ParticipantJoined(info(3, "bob")));
    run(&mut app, 2);
    let bob = app
        .world()
        .get::<Target>(entity(&app, 3).expect("bob"))
        .copied();
    let bob = bob.expect("bob's target");
    assert!(bob.placed);
    assert_eq!(heard(&mut app), [(Cue::Join, bob.position)]);

    // Alice says something: a blip from her panel; our own line is silent.
    run(&mut app, 8);
    let alice_at = position(&app, 2);
    app.world_mut().write_message(chat(2, 2));
    app.world_mut().write_message(chat(3, 1));
    run(&mut app, 1);
    let cues = heard(&mut app);
    assert_eq!(cues.len(), 1, "{cues:?}");
    assert_eq!(cues[0].0, Cue::Chat);
    assert!(
        cues[0].1.distance(alice_at) < 1e-3,
        "{cues:?} vs {alice_at}"
    );
    assert!(cues[0].1.distance(bob.position) > 0.5, "not from bob");

    // Alice leaves: a falling chime from where she stood.
    let alice_at = position(&app, 2);
    app.world_mut().write_message(ParticipantLeft {
        id: ParticipantId(2),
        reason: LeaveReason::Left,
    });
    run(&mut app, 1);
    let cues = heard(&mut app);
    assert_eq!(cues.len(), 1, "{cues:?}");
    assert_eq!(cues[0].0, Cue::Leave);
    assert!(cues[0].1.distance(alice_at) < 0.2, "{cues:?} vs {alice_at}");

    // With the sounds off (the top bar's switch), nothing plays.
    app.world_mut().resource_mut::<SoundsOn>().0 = false;
    app.world_mut().write_message(chat(4, 3));
    app.world_mut().write_message(ParticipantLeft {
        id: ParticipantId(3),
        reason: LeaveReason::Left,
    });
    run(&mut app, 3);
    assert_eq!(heard(&mut app), []);
}
