//! Loopback integration tests: the real relay on port 0, real QUIC clients, real codecs.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

mod common;

use common::{
    Joining, PATIENCE, TestRelay, assert_decoded_everyone, bot_config, reports, spawn_bots,
    start_relay,
};
use rotunda_engine::call::Joined;
use rotunda_engine::transport::{self, Event, Session};
use rotunda_engine::{BotReport, Error};
use rotunda_proto::framing::{self, FrameDecoder};
use rotunda_proto::limits::MAX_VIDEO_PAYLOAD;
use rotunda_proto::{
    ErrorCode, FromRelay, Grants, LeaveReason, MediaHeader, PROTOCOL_VERSION, ParticipantId,
    ToRelay, TrackId, TrackInfo, TrackKind, TrackSource,
};
use rotunda_server::token::{IssuerKey, TokenRequest};
use tokio::sync::mpsc;

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time")
        .expect("the session is open")
}

/// Waits for the first control message `pick` accepts, skipping media and others.
async fn wait_for<T>(
    events: &mut mpsc::Receiver<Event>,
    mut pick: impl FnMut(&FromRelay) -> Option<T>,
) -> T {
    loop {
        if let Event::Control(message) = next_event(events).await
            && let Some(found) = pick(&message)
        {
            return found;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bots_see_and_hear_each_other() {
    let relay = start_relay(|_| {}).await;
    let bots = spawn_bots(
        ["ada", "bea", "cy"]
            .into_iter()
            .map(|name| bot_config(relay.join("trio", name), 6))
            .collect(),
    );
    let reports = reports(bots).await;
    assert_decoded_everyone(&reports, 0.9);
    relay.stop().await;
}

/// The control stream of a raw client, read with one decoder throughout.
struct RawControl {
    recv: wtransport::RecvStream,
    decoder: FrameDecoder,
    roster: Vec<rotunda_proto::ParticipantInfo>,
}

/// Opens a raw WebTransport session and its control stream, with nothing said yet.
async fn raw_connect(
    relay: &TestRelay,
) -> (wtransport::Connection, wtransport::SendStream, RawControl) {
    let config = wtransport::ClientConfig::builder()
        .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(relay.hash)])
        .build();
    let endpoint = wtransport::Endpoint::client(config).expect("client endpoint");
    let connection = endpoint.connect(&relay.url).await.expect("connects");
    let (send, recv) = connection
        .open_bi()
        .await
        .expect("opens")
        .await
        .expect("opened");
    let control = RawControl {
        recv,
        decoder: FrameDecoder::new(),
        roster: Vec::new(),
    };
    (connection, send, control)
}

/// Joins with a raw WebTransport client, so the test can send what no real client would.
async fn raw_join(
    relay: &TestRelay,
    room: &str,
    name: &str,
) -> (wtransport::Connection, wtransport::SendStream, RawControl) {
    let (connection, mut send, mut control) = raw_connect(relay).await;
    let mut hello = Vec::new();
    framing::encode_into(
        &ToRelay::Hello {
            version: PROTOCOL_VERSION,
            agent: "raw".into(),
        },
        &mut hello,
    )
    .expect("encodes");
    framing::encode_into(
        &ToRelay::Join {
            room: room.into(),
            name: name.into(),
            token: None,
            resume: None,
            e2ee: false,
        },
        &mut hello,
    )
    .expect("encodes");
    send.write_all(&hello).await.expect("writes");
    match raw_next(&mut control).await {
        Some(FromRelay::Welcome { participants, .. }) => control.roster = participants,
        other => panic!("expected a welcome, got {other:?}"),
    }
    (connection, send, control)
}

/// The next control message, or None once the relay closed the stream.
async fn raw_next(control: &mut RawControl) -> Option<FromRelay> {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            let message = control.decoder.poll_message::<FromRelay>();
            if let Some(message) = message.expect("the relay speaks the protocol") {
                return Some(message);
            }
            match control.recv.read(&mut buf).await {
                Ok(Some(n)) => control.decoder.push(&buf[..n]),
                _ => return None,
            }
        }
    })
    .await
    .expect("relay answers in time")
}

/// Reads control messages until the relay's error; returns its code.
async fn raw_error(control: &mut RawControl) -> ErrorCode {
    while let Some(message) = raw_next(control).await {
        if let FromRelay::Error { code } = message {
            return code;
        }
    }
    panic!("the relay closed without an error code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_are_removed_while_the_others_carry_on() {
    let relay = start_relay(|_| {}).await;
    let bots = spawn_bots(
        ["ada", "bea", "cy"]
            .into_iter()
            .map(|name| bot_config(relay.join("busy", name), 6))
            .collect(),
    );

    // Garbage on the control stream, once all three bots are in (so they all see it removed).
    let (connection, mut send, mut recv) = raw_join(&relay, "busy", "garbage").await;
    let mut present = recv.roster.len();
    while present < 3 {
        if let Some(FromRelay::ParticipantJoined(_)) = raw_next(&mut recv).await {
            present += 1;
        }
    }
    send.write_all(&[0x05, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
        .await
        .expect("writes");
    assert_eq!(raw_error(&mut recv).await, ErrorCode::BadMessage);
    assert_closed_with(&connection, ErrorCode::BadMessage).await;

    // A video frame over the size limit.
    let (connection, _send, mut recv) = raw_join(&relay, "busy", "oversized").await;
    let header = MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index: 0,
        },
        sequence: 0,
        capture_us: 0,
        keyframe: true,
        layer: 0,
        level: 0,
        payload_len: (MAX_VIDEO_PAYLOAD + 1) as u32,
    };
    let mut stream = connection
        .open_uni()
        .await
        .expect("opens")
        .await
        .expect("opened");
    stream.write_all(&header.encode()).await.expect("writes");
    assert_eq!(raw_error(&mut recv).await, ErrorCode::TooLarge);
    assert_closed_with(&connection, ErrorCode::TooLarge).await;

    // A garbage datagram.
    let (connection, _send, mut recv) = raw_join(&relay, "busy", "noise").await;
    connection.send_datagram([1u8, 2, 3]).expect("sends");
    assert_eq!(raw_error(&mut recv).await, ErrorCode::BadMessage);

    // Video on a track it published as audio.
    let (connection, mut send, mut recv) = raw_join(&relay, "busy", "sneaky").await;
    let audio = TrackInfo {
        kind: TrackKind::Audio,
        codec: "opus".into(),
        source: TrackSource::Microphone,
        width: 0,
        height: 0,
        layers: Vec::new(),
    };
    let mut publish = Vec::new();
    framing::encode_into(
        &ToRelay::Publish {
            index: 0,
            info: audio,
        },
        &mut publish,
    )
    .expect("encodes");
    framing::encode_into(&ToRelay::Ping { nonce: 7 }, &mut publish).expect("encodes");
    send.write_all(&publish).await.expect("writes");
    while raw_next(&mut recv).await != Some(FromRelay::Pong { nonce: 7 }) {}
    let mut stream = connection
        .open_uni()
        .await
        .expect("opens")
        .await
        .expect("opened");
    let frame = rotunda_proto::MediaFrame::new(
        MediaHeader {
            payload_len: 0,
            ..header
        },
        b"\x00\x00\x00\x01",
    );
    stream.write_all(&frame.wire).await.expect("writes");
    stream.finish().await.expect("finishes");
    assert_eq!(raw_error(&mut recv).await, ErrorCode::ProtocolViolation);

    // A hoarder: it announces megabyte frames on every stream it may open and sends most of
    // each, never the end. The relay holds what arrived, within one connection's budget, and
    // stops the streams past it.
    let (connection, mut send, mut recv) = raw_join(&relay, "busy", "hoarder").await;
    let mut publish = Vec::new();
    framing::encode_into(
        &ToRelay::Publish {
            index: 0,
            info: TrackInfo {
                kind: TrackKind::Video,
                codec: "avc1.42E01F".into(),
                source: TrackSource::Camera,
                width: 640,
                height: 480,
                layers: Vec::new(),
            },
        },
        &mut publish,
    )
    .expect("encodes");
    framing::encode_into(&ToRelay::Ping { nonce: 8 }, &mut publish).expect("encodes");
    send.write_all(&publish).await.expect("writes");
    while raw_next(&mut recv).await != Some(FromRelay::Pong { nonce: 8 }) {}
    let claimed = MediaHeader {
        payload_len: MAX_VIDEO_PAYLOAD as u32,
        ..header
    };
    let mut hoard = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let connection = connection.clone();
        hoard.spawn(async move {
            let mut stream = connection.open_uni().await.ok()?.await.ok()?;
            stream.write_all(&claimed.encode()).await.ok()?;
            // 900 KB of the megabyte, then nothing: written, or stopped by the relay.
            let chunk = vec![0u8; 100_000];
            for _ in 0..9 {
                stream.write_all(&chunk).await.ok()?;
            }
            Some(stream)
        });
    }
    let mut most_held = 0;
    let mut kept = Vec::new();
    while let Some(done) = hoard.join_next().await {
        most_held = most_held.max(relay.media_held());
        kept.extend(done.expect("task").into_iter());
    }
    // 24 frames of 900 KB arrived in part or whole: what the relay held is what came, never
    // past one connection's 8 MiB (the claimed 24 MiB were never allocated).
    assert!(
        most_held > 0 && most_held <= 8 * 1024 * 1024,
        "held {most_held} bytes for one connection"
    );
    drop((kept, connection, send, recv));

    // A subscriber that stops reading anything: the relay skips it, the others never notice.
    let (_sleepy, mut sleepy_send, mut control) = raw_join(&relay, "busy", "sleepy").await;
    let mut tracks: Vec<TrackId> = control
        .roster
        .iter()
        .flat_map(|p| {
            p.tracks.iter().map(|(index, _)| TrackId {
                participant: p.id,
                index: *index,
            })
        })
        .collect();
    while tracks.len() < 6 {
        if let Some(FromRelay::TrackPublished { track, .. }) = raw_next(&mut control).await {
            tracks.push(track);
        }
    }
    let mut subscribe = Vec::new();
    for track in tracks {
        framing::encode_into(&ToRelay::Subscribe { track }, &mut subscribe).expect("encodes");
    }
    sleepy_send.write_all(&subscribe).await.expect("writes");

    let reports = reports(bots).await;
    assert_decoded_everyone(&reports, 0.9);
    for report in &reports {
        for removed in ["garbage", "oversized", "noise", "sneaky"] {
            assert!(
                report.left.iter().any(|l| l == removed),
                "{} never heard {removed} leave: {:?}",
                report.name,
                report.left
            );
        }
    }
    relay.stop().await;
}

async fn assert_closed_with(connection: &wtransport::Connection, code: ErrorCode) {
    let closed = tokio::time::timeout(PATIENCE, connection.closed())
        .await
        .expect("closed in time");
    match closed {
        wtransport::error::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.code().into_inner(), u64::from(code.as_u32()));
        }
        other => panic!("closed otherwise: {other:?}"),
    }
}

async fn session(
    relay: &TestRelay,
    room: &str,
    name: &str,
) -> (Session, Joined, mpsc::Receiver<Event>) {
    // The relay's own messages: chat in the clear, no group.
    let mut join = relay.join(room, name);
    join.e2ee = false;
    transport::connect(&join, None).await.expect("joins")
}

#[tokio::test]
async fn chat_reaches_everyone_in_order_and_leaves_are_announced() {
    let relay = start_relay(|_| {}).await;
    let (ada, _, mut ada_events) = session(&relay, "talk", "ada").await;
    let (bea, bea_joined, mut bea_events) = session(&relay, "talk", "bea").await;
    wait_for(&mut ada_events, |m| {
        matches!(m, FromRelay::ParticipantJoined(p) if p.name == "bea").then_some(())
    })
    .await;
    for i in 0..5 {
        ada.send(ToRelay::Chat {
            text: format!("ada {i}"),
        })
        .expect("sends");
        bea.send(ToRelay::Chat {
            text: format!("bea {i}"),
        })
        .expect("sends");
    }
    let chat = |m: &FromRelay| match m {
        FromRelay::Chat {
            seq, name, text, ..
        } => Some((*seq, name.clone(), text.clone())),
        _ => None,
    };
    let mut seen = Vec::new();
    for events in [&mut ada_events, &mut bea_events] {
        let mut lines = Vec::new();
        while lines.len() < 10 {
            lines.push(wait_for(events, chat).await);
        }
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "everyone sees one order");
    assert!(
        seen[0].windows(2).all(|w| w[0].0 < w[1].0),
        "sequence numbers increase"
    );
    for name in ["ada", "bea"] {
        let own: Vec<_> = seen[0]
            .iter()
            .filter(|l| l.1 == name)
            .map(|l| l.2.clone())
            .collect();
        assert_eq!(
            own,
            (0..5).map(|i| format!("{name} {i}")).collect::<Vec<_>>(),
            "each sender's order kept"
        );
    }

    // A latecomer gets the history, in the same order.
    let (cy, cy_joined, mut cy_events) = session(&relay, "talk", "cy").await;
    let mut history = Vec::new();
    while history.len() < 10 {
        history.push(wait_for(&mut cy_events, chat).await);
    }
    assert_eq!(history, seen[0]);

    // Leaving is announced to the others.
    let cy_id = cy_joined.you;
    cy.leave().await;
    for events in [&mut ada_events, &mut bea_events] {
        let reason = wait_for(events, |m| match m {
            FromRelay::ParticipantLeft { id, reason } if *id == cy_id => Some(*reason),
            _ => None,
        })
        .await;
        assert_eq!(reason, LeaveReason::Left);
    }
    // A dropped connection is announced too.
    let bea_id = bea_joined.you;
    drop(bea);
    let reason = wait_for(&mut ada_events, |m| match m {
        FromRelay::ParticipantLeft { id, reason } if *id == bea_id => Some(*reason),
        _ => None,
    })
    .await;
    assert_ne!(reason, LeaveReason::Removed(ErrorCode::Internal));
    drop(ada);
    relay.stop().await;
}

#[tokio::test]
async fn tracks_presence_and_pings_reach_the_room() {
    let relay = start_relay(|_| {}).await;
    let (ada, ada_joined, mut ada_events) = session(&relay, "presence", "ada").await;
    let video = TrackInfo {
        kind: TrackKind::Video,
        codec: "avc1.42E01F".into(),
        source: TrackSource::Camera,
        width: 640,
        height: 480,
        layers: Vec::new(),
    };
    ada.send(ToRelay::Publish {
        index: 0,
        info: video.clone(),
    })
    .expect("sends");
    ada.send(ToRelay::Mute {
        audio: true,
        video: false,
    })
    .expect("sends");
    ada.send(ToRelay::Ping { nonce: 42 }).expect("sends");
    wait_for(&mut ada_events, |m| {
        (*m == FromRelay::Pong { nonce: 42 }).then_some(())
    })
    .await;
    let (bea, bea_joined, mut bea_events) = session(&relay, "presence", "bea").await;
    let roster = &bea_joined.roster;
    assert_eq!(roster.len(), 1);
    assert_eq!(roster[0].name, "ada");
    assert_eq!(roster[0].tracks, vec![(0, video)]);
    assert!(roster[0].audio_muted);
    ada.send(ToRelay::Unpublish { index: 0 }).expect("sends");
    let unpublished = wait_for(&mut bea_events, |m| match m {
        FromRelay::TrackUnpublished { track } => Some(*track),
        _ => None,
    })
    .await;
    assert_eq!(
        unpublished,
        TrackId {
            participant: ada_joined.you,
            index: 0
        }
    );
    drop((ada, bea));
    relay.stop().await;
}

#[tokio::test]
async fn full_rooms_wrong_tokens_and_shutdown_give_error_codes() {
    let relay = start_relay(|config| {
        config.max_participants = 1;
        config.token = Some("sesame".into());
    })
    .await;
    let mut join = relay.join("small", "ada");
    let refused = transport::connect(&join, None).await.err();
    assert!(
        matches!(refused, Some(Error::Refused(ErrorCode::Unauthorized))),
        "{refused:?}"
    );
    join.token = Some("sesame".into());
    let (ada, _, mut ada_events) = transport::connect(&join, None)
        .await
        .expect("joins with the token");
    join.name = "bea".into();
    let refused = transport::connect(&join, None).await.err();
    assert!(
        matches!(refused, Some(Error::Refused(ErrorCode::RoomFull))),
        "{refused:?}"
    );

    // Shutdown tells the client why.
    relay.stop().await;
    let mut told = None;
    while let Ok(Some(event)) = tokio::time::timeout(PATIENCE, ada_events.recv()).await {
        match event {
            Event::Control(FromRelay::Error { code }) => told = Some(code),
            Event::Closed(Error::Closed(code)) => {
                told = told.or(code);
                break;
            }
            Event::Closed(_) => break,
            _ => {}
        }
    }
    assert_eq!(told, Some(ErrorCode::ShuttingDown));
    drop(ada);
}

#[tokio::test]
async fn the_dev_certificate_fingerprint_is_served_and_trusted_on_loopback() {
    let relay = start_relay(|_| {}).await;
    // No hash given: the client fetches /certificate.sha256 from the loopback relay.
    let mut join = relay.join("trust", "ada");
    join.cert_hash = None;
    let (ada, _, _events) = transport::connect(&join, None)
        .await
        .expect("joins after fetching the hash");
    // A wrong pinned hash is refused, and the error says it was the certificate.
    join.cert_hash = Some([7; 32]);
    let refused = transport::connect(&join, None)
        .await
        .err()
        .expect("refused");
    assert!(matches!(refused, Error::Certificate { .. }), "{refused:?}");
    assert!(
        refused.explain().contains("certificate does not match"),
        "{}",
        refused.explain()
    );
    assert!(!refused.is_retryable());
    drop(ada);
    relay.stop().await;
}

#[tokio::test]
async fn an_old_client_is_refused_clearly() {
    let relay = start_relay(|_| {}).await;
    let (connection, mut send, mut control) = raw_connect(&relay).await;
    let mut hello = Vec::new();
    framing::encode_into(
        &ToRelay::Hello {
            version: PROTOCOL_VERSION - 1,
            agent: "rotunda/0.0 (old)".into(),
        },
        &mut hello,
    )
    .expect("encodes");
    send.write_all(&hello).await.expect("writes");
    let code = raw_error(&mut control).await;
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert_closed_with(&connection, ErrorCode::UnsupportedVersion).await;
    assert!(
        Error::Refused(code).explain().contains("version"),
        "an old client says why"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_lost_connection_takes_its_place_back_and_nobody_sees_it_go() {
    let relay = start_relay(|_| {}).await;
    let (ada, ada_joined, mut stale_events) = session(&relay, "blip", "ada").await;
    let (_bea, _, mut bea_events) = session(&relay, "blip", "bea").await;
    // Ada's network blipped: before the relay noticed her old connection go, a new one presents
    // the secret.
    let stale = ada;
    let (_ada_again, joined, _) =
        transport::connect(&relay.join("blip", "ada"), Some(ada_joined.resume))
            .await
            .expect("rejoins");
    assert!(joined.resumed, "the place was kept");
    assert_eq!(joined.you, ada_joined.you);
    // The relay closes the old connection; its end does not take the place with it.
    while !matches!(next_event(&mut stale_events).await, Event::Closed(_)) {}
    drop(stale);
    // Bea hears of no leave: a ping's answer comes first, then ada (the same id) speaks.
    _bea.send(ToRelay::Ping { nonce: 9 }).expect("sends");
    let first = wait_for(&mut bea_events, |m| match m {
        FromRelay::Pong { nonce: 9 } => Some("pong"),
        FromRelay::ParticipantLeft { .. } => Some("left"),
        _ => None,
    })
    .await;
    assert_eq!(first, "pong");
    _ada_again
        .send(ToRelay::Chat {
            text: "still here".into(),
        })
        .expect("sends");
    let from = wait_for(&mut bea_events, |m| match m {
        FromRelay::Chat { from, text, .. } if text == "still here" => Some(*from),
        FromRelay::ParticipantLeft { .. } => panic!("bea saw ada leave"),
        _ => None,
    })
    .await;
    assert_eq!(from, ada_joined.you);
    let (_cy, cy_joined, _) = session(&relay, "blip", "cy").await;
    assert!(cy_joined.roster.iter().any(|p| p.id == ada_joined.you));
    relay.stop().await;
}

/// A relay that asks for tokens signed by a fresh issuer; the issuer's secret key stays here.
async fn start_signed_relay(dir: &std::path::Path) -> (TestRelay, IssuerKey) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("temp dir");
    let (issuer, _) = IssuerKey::generate().expect("key pair");
    let (_, public) = issuer.write(&dir.join("issuer")).expect("writes the keys");
    let relay = start_relay(|config| config.issuer_key = Some(public)).await;
    (relay, issuer)
}

fn token(issuer: &IssuerKey, room: &str, identity: &str, grants: Grants, at: SystemTime) -> String {
    issuer
        .sign(
            &TokenRequest {
                room: room.into(),
                identity: identity.into(),
                name: None,
                ttl: Duration::from_secs(3600),
                grants,
            },
            at,
        )
        .expect("signs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_tokens_admit_their_identity_and_bound_what_it_may_do() {
    let dir = std::env::temp_dir().join(format!("rotunda-signed-{}", std::process::id()));
    let (relay, issuer) = start_signed_relay(&dir).await;
    let (stranger, _) = IssuerKey::generate().expect("key pair");
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let watcher = Grants {
        publish: false,
        subscribe: true,
        chat: false,
    };

    // Each wrong token is refused with its own code, and the client explains it.
    let mut join = relay.join("standup", "ada");
    let refusals = [
        (None, ErrorCode::Unauthorized),
        (
            Some(token(&stranger, "standup", "ada", Grants::ALL, now)),
            ErrorCode::Unauthorized,
        ),
        (
            Some(token(
                &issuer,
                "standup",
                "ada",
                Grants::ALL,
                now - 2 * hour,
            )),
            ErrorCode::TokenExpired,
        ),
        (
            Some(token(&issuer, "standup", "ada", Grants::ALL, now + hour)),
            ErrorCode::TokenNotYetValid,
        ),
        (
            Some(token(&issuer, "retro", "ada", Grants::ALL, now)),
            ErrorCode::WrongRoom,
        ),
    ];
    for (token, code) in refusals {
        join.token = token;
        let refused = transport::connect(&join, None).await.err();
        assert!(
            matches!(&refused, Some(Error::Refused(c)) if *c == code),
            "{code:?}: {refused:?}"
        );
        let refused = refused.expect("refused");
        assert!(!refused.is_retryable());
        assert!(!refused.explain().is_empty());
    }

    // A good token admits its identity, named as the joiner asked, with every grant.
    join.token = Some(token(
        &issuer,
        "standup",
        "ada@example.org",
        Grants::ALL,
        now,
    ));
    let (ada, ada_joined, mut ada_events) = transport::connect(&join, None)
        .await
        .expect("joins with a signed token");
    assert_eq!(ada_joined.grants, Grants::ALL);
    assert_eq!(ada_joined.name, "ada");

    // One who may only watch: the welcome says so, the others see its identity, and what it
    // may not do is refused with its code.
    let (connection, mut send, mut control) = raw_connect(&relay).await;
    let mut hello = Vec::new();
    for message in [
        ToRelay::Hello {
            version: PROTOCOL_VERSION,
            agent: "raw".into(),
        },
        ToRelay::Join {
            room: "standup".into(),
            name: "watcher".into(),
            token: Some(token(
                &issuer,
                "standup",
                "watcher@example.org",
                watcher,
                now,
            )),
            resume: None,
            e2ee: false,
        },
        ToRelay::Publish {
            index: 0,
            info: TrackInfo {
                kind: TrackKind::Audio,
                codec: "opus".into(),
                source: TrackSource::Microphone,
                width: 0,
                height: 0,
                layers: Vec::new(),
            },
        },
    ] {
        framing::encode_into(&message, &mut hello).expect("encodes");
    }
    send.write_all(&hello).await.expect("writes");
    match raw_next(&mut control).await {
        Some(FromRelay::Welcome {
            grants, identity, ..
        }) => assert_eq!(
            (grants, identity.as_str()),
            (watcher, "watcher@example.org")
        ),
        other => panic!("expected a welcome, got {other:?}"),
    }
    let seen = wait_for(&mut ada_events, |message| match message {
        FromRelay::ParticipantJoined(info) => Some(info.identity.clone()),
        _ => None,
    })
    .await;
    assert_eq!(seen, "watcher@example.org");
    assert_eq!(raw_error(&mut control).await, ErrorCode::NotAllowed);
    assert_closed_with(&connection, ErrorCode::NotAllowed).await;
    let (left, reason) = wait_for(&mut ada_events, |message| match message {
        FromRelay::ParticipantLeft { id, reason } => Some((*id, *reason)),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        LeaveReason::Removed(ErrorCode::NotAllowed),
        "{left}"
    );
    drop(ada);
    relay.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_and_hears_and_sends_nothing() {
    let dir = std::env::temp_dir().join(format!("rotunda-watcher-{}", std::process::id()));
    let (relay, issuer) = start_signed_relay(&dir).await;
    let now = SystemTime::now();
    let mut ada = bot_config(relay.join("town-hall", "ada"), 5);
    ada.join.token = Some(token(
        &issuer,
        "town-hall",
        "ada@example.org",
        Grants::ALL,
        now,
    ));
    let mut bea = bot_config(relay.join("town-hall", "bea"), 5);
    bea.join.token = Some(token(
        &issuer,
        "town-hall",
        "bea@example.org",
        Grants {
            publish: false,
            subscribe: true,
            chat: false,
        },
        now,
    ));
    let reports = reports(spawn_bots(vec![ada, bea])).await;
    let (ada, bea) = (&reports[0], &reports[1]);
    // Bea receives Ada's picture and voice.
    let from_ada = bea.peers.get("ada").expect("bea saw ada");
    assert!(
        from_ada.video_frames_decoded > 30 && from_ada.audio_frames_received > 50,
        "{from_ada:?}"
    );
    // Bea sent nothing, said nothing, and Ada received nothing from her.
    assert_eq!((bea.video_frames_sent, bea.audio_frames_sent), (0, 0));
    // (A peer enters a report with its first media.)
    let from_bea = ada.peers.get("bea").map_or((0, 0), |peer| {
        (peer.video_frames_received, peer.audio_frames_received)
    });
    assert_eq!(from_bea, (0, 0));
    assert!(
        ada.chat_received.iter().all(|line| line.from != "bea"),
        "{:?}",
        ada.chat_received
    );
    assert!(bea.chat_received.iter().any(|line| line.from == "ada"));
    relay.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn failed_joins_from_one_address_are_slowed() {
    let dir = std::env::temp_dir().join(format!("rotunda-attempts-{}", std::process::id()));
    let (relay, issuer) = start_signed_relay(&dir).await;
    let mut join = relay.join("vault", "mallory");
    join.token = Some("v4.public.guess".into());
    for _ in 0..10 {
        let refused = transport::connect(&join, None).await.err();
        assert!(
            matches!(refused, Some(Error::Refused(ErrorCode::Unauthorized))),
            "{refused:?}"
        );
    }
    // Now even a good token from this address waits its turn.
    join.token = Some(token(
        &issuer,
        "vault",
        "ada",
        Grants::ALL,
        SystemTime::now(),
    ));
    let refused = transport::connect(&join, None).await.err();
    assert!(
        matches!(refused, Some(Error::Refused(ErrorCode::TooManyAttempts))),
        "{refused:?}"
    );
    relay.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_records_what_it_forwards_and_the_video_decodes() {
    let dir = std::env::temp_dir().join(format!("rotunda-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = dir.clone();
    let relay = start_relay(|config| config.record = Some(record)).await;
    // A room created without end-to-end encryption: the relay holds the media as sent.
    let mut ada = bot_config(relay.join("all hands", "ada"), 4);
    ada.join.e2ee = false;
    ada.simulcast = false;
    let mut bea = bot_config(relay.join("all hands", "bea"), 4);
    bea.join.e2ee = false;
    let reports = reports(spawn_bots(vec![ada, bea])).await;
    relay.stop().await;
    let ada = &reports[0];
    assert!(
        !ada.e2ee && !reports[1].e2ee,
        "the room says it is not encrypted"
    );
    assert_eq!(ada.safety_code, None);

    // One folder per room opening, the room's name made safe for a file system.
    let rooms: Vec<_> = std::fs::read_dir(dir.join("all%20hands"))
        .expect("the room's folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let video = rooms[0].join(format!("p{}-t0-L0.h264", ada.id));
    let bytes = std::fs::read(&video).expect("ada's video was recorded");
    // Annex-B H.264 as sent: every picture decodes.
    let mut decoder = openh264::decoder::Decoder::new().expect("decoder");
    let mut pictures = 0u64;
    for nal in openh264::nal_units(&bytes) {
        if let Ok(Some(_)) = decoder.decode(nal) {
            pictures += 1;
        }
    }
    assert!(
        pictures * 10 >= ada.video_frames_sent * 9 && pictures <= ada.video_frames_sent,
        "{pictures} pictures decoded of {} sent",
        ada.video_frames_sent
    );
    // The voice: length-prefixed packets, one per frame sent.
    let audio = std::fs::read(rooms[0].join(format!("p{}-t1.opus-frames", ada.id)))
        .expect("ada's voice was recorded");
    let mut packets = 0u64;
    let mut rest = audio.as_slice();
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        assert!(len <= tail.len(), "a packet cut short");
        rest = &tail[len..];
        packets += 1;
    }
    assert!(
        packets * 10 >= ada.audio_frames_sent * 9 && packets <= ada.audio_frames_sent,
        "{packets} packets recorded of {} sent",
        ada.audio_frames_sent
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_shares_one_safety_code_and_its_relay_holds_only_ciphertext() {
    let dir = std::env::temp_dir().join(format!("rotunda-sealed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = dir.clone();
    let relay = start_relay(|config| config.record = Some(record)).await;
    let mut ada = bot_config(relay.join("sealed", "ada"), 5);
    ada.simulcast = false;
    ada.chat = vec!["hello bea".into()];
    ada.join.e2ee = true;
    let mut bea = bot_config(relay.join("sealed", "bea"), 5);
    bea.chat = vec!["hello ada".into()];
    bea.join.e2ee = true;
    let all = reports(spawn_bots(vec![ada, bea])).await;
    relay.stop().await;
    let (ada, bea) = (&all[0], &all[1]);
    for report in [ada, bea] {
        assert!(
            report.error.is_none(),
            "{}: {:?}",
            report.name,
            report.error
        );
        assert!(
            report.e2ee,
            "{} was told the room is encrypted",
            report.name
        );
    }
    // One code for the room while both are in it (whoever leaves second may see one more
    // epoch, alone).
    assert!(ada.safety_code.is_some(), "ada holds the group's keys");
    assert!(
        ada.safety_codes
            .iter()
            .any(|code| code.len() >= 30 && bea.safety_codes.contains(code)),
        "one code for the room: {:?} / {:?}",
        ada.safety_codes,
        bea.safety_codes
    );
    // Each sees and hears the other through the seals.
    let from_ada = &bea.peers["ada"];
    let from_bea = &ada.peers["bea"];
    for (peer, who) in [(from_ada, "bea <- ada"), (from_bea, "ada <- bea")] {
        assert!(
            peer.video_frames_decoded * 10 >= peer.video_frames_expected * 8,
            "{who}: {peer:?}"
        );
        assert!(peer.audio_frames_decoded > 50, "{who}: {peer:?}");
        assert_eq!(peer.video_frames_wrong_sender, 0, "{who}");
    }
    // Each says a line once both are in the group (`spawn_bots`), and each reads the other's.
    let heard = |report: &BotReport, from: &str, text: &str| {
        report
            .chat_received
            .iter()
            .any(|line| line.from == from && line.text == text)
    };
    assert!(
        heard(ada, "bea", "hello ada") && heard(bea, "ada", "hello bea"),
        "{:?} / {:?}",
        ada.chat_received,
        bea.chat_received
    );
    assert!(heard(ada, "ada", "hello bea") && heard(bea, "bea", "hello ada"));

    // What the relay recorded of Ada's picture is ciphertext: not one picture decodes.
    let rooms: Vec<_> = std::fs::read_dir(dir.join("sealed"))
        .expect("the room's folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    let bytes = std::fs::read(rooms[0].join(format!("p{}-t0-L0.h264", ada.id)))
        .expect("ada's video was recorded");
    assert!(bytes.len() > 10_000, "{} bytes recorded", bytes.len());
    let mut decoder = openh264::decoder::Decoder::new().expect("decoder");
    let pictures = openh264::nal_units(&bytes)
        .filter(|nal| matches!(decoder.decode(nal), Ok(Some(_))))
        .count();
    assert_eq!(
        pictures, 0,
        "a relay decoded a picture of an encrypted room"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
