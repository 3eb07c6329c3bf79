//! Round trip of every wire message, and the decoders' answers to bad input. These run natively
//! and, since the browser speaks the same wire, on wasm32 too (`wasm-bindgen-test`, run by
//! Node.js).

use bytes::Bytes;
use rotunda_proto::framing::{self, FrameDecoder, Message};
use rotunda_proto::limits::{
    MAX_ADDS_PER_ROUND, MAX_CHAT, MAX_CONTROL_MESSAGE, MAX_DISPLAY_NAME, MAX_KEY_PACKAGE,
    MAX_MLS_MESSAGE, MAX_VIDEO_PAYLOAD,
};
use rotunda_proto::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn track() -> TrackId {
    TrackId {
        participant: ParticipantId(7),
        index: 1,
    }
}

fn video_info() -> TrackInfo {
    TrackInfo {
        kind: TrackKind::Video,
        codec: "avc1.42E01F".into(),
        source: TrackSource::Camera,
        width: 640,
        height: 480,
        layers: Vec::new(),
    }
}

fn participant() -> ParticipantInfo {
    ParticipantInfo {
        id: ParticipantId(3),
        name: "Ada".into(),
        identity: "ada@example.org".into(),
        tracks: vec![(0, video_info())],
        audio_muted: true,
        video_muted: false,
        pose: Pose {
            position: [1.0, 0.0, -2.5],
            orientation: [
                0.0,
                std::f32::consts::FRAC_1_SQRT_2,
                0.0,
                std::f32::consts::FRAC_1_SQRT_2,
            ],
        },
    }
}

fn round_trip<M: Message + PartialEq + Clone + std::fmt::Debug>(message: M) {
    let wire = framing::encode(&message).expect("encodes");
    let mut decoder = FrameDecoder::new();
    // Byte by byte: a frame may arrive in any number of pieces.
    for (i, byte) in wire.iter().enumerate() {
        decoder.push(std::slice::from_ref(byte));
        let got: Option<M> = decoder.poll_message().expect("decodes");
        if i + 1 < wire.len() {
            assert!(got.is_none(), "a message before its last byte");
        } else {
            assert_eq!(got, Some(message.clone()));
        }
    }
    assert_eq!(decoder.buffered(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn every_to_relay_message_round_trips() {
    let all = vec![
        ToRelay::Hello {
            version: PROTOCOL_VERSION,
            agent: "rotunda-test".into(),
        },
        ToRelay::Join {
            room: "team".into(),
            name: "Ada".into(),
            token: Some("secret".into()),
            resume: None,
            e2ee: true,
        },
        ToRelay::Join {
            room: "team".into(),
            name: "Bob".into(),
            token: None,
            resume: Some(Resume {
                id: ParticipantId(4),
                secret: u64::MAX,
            }),
            e2ee: false,
        },
        ToRelay::Publish {
            index: 1,
            info: video_info(),
        },
        ToRelay::Unpublish { index: 1 },
        ToRelay::Subscribe { track: track() },
        ToRelay::Unsubscribe { track: track() },
        ToRelay::KeyframeRequest { track: track() },
        ToRelay::Chat {
            text: "hello, room ✓".into(),
        },
        ToRelay::Pose(participant().pose),
        ToRelay::Mute {
            audio: true,
            video: false,
        },
        ToRelay::Ping { nonce: u64::MAX },
        ToRelay::Leave,
        ToRelay::KeyPackage {
            package: vec![1, 2, 3],
        },
        ToRelay::GroupCommit {
            round: 7,
            commit: vec![9; 400],
            welcome: Some(vec![8; 40_000]),
        },
        ToRelay::GroupCommit {
            round: u64::MAX,
            commit: vec![9],
            welcome: None,
        },
        ToRelay::SealedChat {
            sealed: vec![0xAA; 100],
        },
    ];
    for message in all {
        round_trip(message);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn every_from_relay_message_round_trips() {
    let all = vec![
        FromRelay::Welcome {
            version: PROTOCOL_VERSION,
            you: ParticipantId(9),
            name: "Ada".into(),
            identity: "ada@example.org".into(),
            grants: Grants {
                publish: false,
                subscribe: true,
                chat: false,
            },
            participants: vec![participant(), participant()],
            resume_secret: 0xDEAD_BEEF,
            resumed: true,
            e2ee: true,
        },
        FromRelay::ParticipantJoined(participant()),
        FromRelay::ParticipantLeft {
            id: ParticipantId(3),
            reason: LeaveReason::Removed(ErrorCode::TooLarge),
        },
        FromRelay::ParticipantLeft {
            id: ParticipantId(3),
            reason: LeaveReason::Left,
        },
        FromRelay::TrackPublished {
            track: track(),
            info: video_info(),
        },
        FromRelay::TrackUnpublished { track: track() },
        FromRelay::KeyframeRequest { index: 1, layer: 0 },
        FromRelay::Chat {
            seq: 12,
            from: ParticipantId(3),
            name: "Ada".into(),
            text: "hi".into(),
        },
        FromRelay::Pose {
            id: ParticipantId(3),
            pose: Pose::default(),
        },
        FromRelay::Mute {
            id: ParticipantId(3),
            audio: false,
            video: true,
        },
        FromRelay::Pong { nonce: 5 },
        FromRelay::Link { kbps: 2_500 },
        FromRelay::Error {
            code: ErrorCode::RoomFull,
        },
        FromRelay::GroupCreate,
        FromRelay::GroupPropose {
            round: 3,
            epoch: 12,
            add: vec![
                (ParticipantId(5), vec![1; 300]),
                (ParticipantId(6), vec![2; 300]),
            ],
            remove: vec![ParticipantId(2)],
        },
        FromRelay::GroupCommit {
            epoch: 12,
            commit: vec![3; 460],
        },
        FromRelay::GroupWelcome {
            welcome: vec![4; 36_000],
        },
        FromRelay::SealedChat {
            from: ParticipantId(5),
            name: "Ada".into(),
            sealed: vec![5; 120],
        },
    ];
    for message in all {
        round_trip(message);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn several_messages_in_one_push_come_out_in_order() {
    let mut wire = Vec::new();
    for nonce in 0..5 {
        framing::encode_into(&ToRelay::Ping { nonce }, &mut wire).expect("encodes");
    }
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    for nonce in 0..5 {
        let got: Option<ToRelay> = decoder.poll_message().expect("decodes");
        assert_eq!(got, Some(ToRelay::Ping { nonce }));
    }
    assert_eq!(decoder.poll_message::<ToRelay>(), Ok(None));
}

#[wasm_bindgen_test(unsupported = test)]
fn oversized_fields_are_refused_on_both_sides() {
    let chat = ToRelay::Chat {
        text: "x".repeat(MAX_CHAT + 1),
    };
    assert!(matches!(
        chat.validate(),
        Err(Error::TooLarge { field: "chat", .. })
    ));
    let join = ToRelay::Join {
        room: "r".into(),
        name: "n".repeat(MAX_DISPLAY_NAME + 1),
        token: None,
        resume: None,
        e2ee: true,
    };
    assert_eq!(
        join.validate().map_err(|e| e.code()),
        Err(ErrorCode::TooLarge)
    );
    // The encoder refuses it; a hand-made frame with it is refused by the decoder.
    assert!(framing::encode(&chat).is_err());
    let body = postcard_body(&chat);
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame_of(&body));
    assert!(matches!(
        decoder.poll_message::<ToRelay>(),
        Err(Error::TooLarge { .. })
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn mls_messages_are_bounded_and_never_empty() {
    let too_big = ToRelay::KeyPackage {
        package: vec![0; MAX_KEY_PACKAGE + 1],
    };
    assert!(matches!(
        too_big.validate(),
        Err(Error::TooLarge {
            field: "key package",
            ..
        })
    ));
    let empty = ToRelay::GroupCommit {
        round: 1,
        commit: Vec::new(),
        welcome: None,
    };
    assert_eq!(empty.validate(), Err(Error::Empty("commit")));
    let welcome = ToRelay::GroupCommit {
        round: 1,
        commit: vec![1],
        welcome: Some(vec![0; MAX_MLS_MESSAGE + 1]),
    };
    assert!(welcome.validate().is_err());
    let crowded = FromRelay::GroupPropose {
        round: 1,
        epoch: 0,
        add: vec![(ParticipantId(1), vec![1]); MAX_ADDS_PER_ROUND + 1],
        remove: Vec::new(),
    };
    assert!(crowded.validate().is_err());
    // The most a request may carry still fits one control message.
    let full = FromRelay::GroupPropose {
        round: 1,
        epoch: 0,
        add: vec![(ParticipantId(1), vec![1; MAX_KEY_PACKAGE]); MAX_ADDS_PER_ROUND],
        remove: vec![ParticipantId(2); 200],
    };
    assert!(framing::encode(&full).is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn empty_names_and_non_finite_poses_are_refused() {
    let join = ToRelay::Join {
        room: " ".into(),
        name: "Ada".into(),
        token: None,
        resume: None,
        e2ee: true,
    };
    assert_eq!(join.validate(), Err(Error::Empty("room")));
    let pose = ToRelay::Pose(Pose {
        position: [f32::NAN, 0.0, 0.0],
        orientation: [0.0, 0.0, 0.0, 1.0],
    });
    assert!(pose.validate().is_err());
    let publish = ToRelay::Publish {
        index: 200,
        info: video_info(),
    };
    assert!(publish.validate().is_err());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_huge_length_prefix_is_refused_before_buffering_the_body() {
    let mut decoder = FrameDecoder::new();
    let len = (MAX_CONTROL_MESSAGE + 1) as u32;
    decoder.push(&[
        (len & 0x7f) as u8 | 0x80,
        ((len >> 7) & 0x7f) as u8 | 0x80,
        (len >> 14) as u8,
    ]);
    assert!(matches!(
        decoder.poll_message::<ToRelay>(),
        Err(Error::TooLarge { .. })
    ));
    // Once out of sync it stays refused.
    decoder.push(&framing::encode(&ToRelay::Leave).expect("encodes"));
    assert!(decoder.poll_message::<ToRelay>().is_err());
}

#[wasm_bindgen_test(unsupported = test)]
fn garbage_is_a_typed_error_never_a_panic() {
    // A deterministic pseudo-random sweep over short inputs.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..200 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        let _ = decoder.poll_message::<ToRelay>();
        let _ = framing::decode_body::<FromRelay>(&bytes);
        let _ = MediaFrame::decode(Bytes::from(bytes.clone()), TrackKind::Video);
    }
    let mut decoder = FrameDecoder::new();
    decoder.push(&[3, 0xff, 0xff, 0xff]);
    assert_eq!(
        decoder.poll_message::<ToRelay>(),
        Err(Error::Malformed("bad body"))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn media_frames_round_trip_and_restamp() {
    let header = MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index: 2,
        },
        sequence: 41,
        capture_us: 1_700_000_000_123_456,
        keyframe: true,
        layer: 0,
        level: 0,
        payload_len: 0,
    };
    let frame = MediaFrame::new(header, b"annex-b bytes");
    assert_eq!(frame.header.payload_len, 13);
    let decoded = MediaFrame::decode(frame.wire.clone(), TrackKind::Video).expect("decodes");
    assert_eq!(decoded, frame);
    assert_eq!(decoded.payload(), b"annex-b bytes");
    let stamped = decoded.stamp(ParticipantId(77));
    let again = MediaFrame::decode(stamped.wire.clone(), TrackKind::Video).expect("decodes");
    assert_eq!(again.header.track.participant, ParticipantId(77));
    assert_eq!(again.header.sequence, 41);
    assert!(again.header.keyframe);
    assert_eq!(again.payload(), b"annex-b bytes");
}

#[wasm_bindgen_test(unsupported = test)]
fn media_frames_with_bad_lengths_or_flags_are_refused() {
    let header = MediaHeader {
        track: TrackId {
            participant: ParticipantId(0),
            index: 0,
        },
        sequence: 1,
        capture_us: 1,
        keyframe: false,
        layer: 0,
        level: 0,
        payload_len: 0,
    };
    let frame = MediaFrame::new(header, &[0u8; 2000]);
    // Too big for an audio datagram.
    assert!(matches!(
        MediaFrame::decode(frame.wire.clone(), TrackKind::Audio),
        Err(Error::TooLarge { .. })
    ));
    // Truncated.
    assert!(MediaFrame::decode(frame.wire.slice(..100), TrackKind::Video).is_err());
    assert!(MediaFrame::decode(frame.wire.slice(..10), TrackKind::Video).is_err());
    // A claimed length over the video limit is refused from the header alone.
    let mut huge = header;
    huge.payload_len = (MAX_VIDEO_PAYLOAD + 1) as u32;
    assert!(MediaHeader::decode(&huge.encode(), TrackKind::Video).is_err());
    // Unknown flags.
    let mut bytes = header.encode().to_vec();
    bytes[5] = 0x80;
    assert!(MediaHeader::decode(&bytes, TrackKind::Video).is_err());
}

#[wasm_bindgen_test(unsupported = test)]
fn error_codes_map_to_numbers_and_back() {
    let mut known = 0;
    for code in 0..32 {
        if let Some(found) = ErrorCode::from_u32(code) {
            assert_eq!(found.as_u32(), code);
            known += 1;
        }
    }
    assert_eq!(known, 16, "every code from 0 to 15 is one of ours");
    assert_eq!(ErrorCode::from_u32(4), Some(ErrorCode::RoomFull));
    assert_eq!(ErrorCode::from_u32(11), Some(ErrorCode::TokenExpired));
    assert_eq!(ErrorCode::from_u32(14), Some(ErrorCode::NotAllowed));
    assert_eq!(ErrorCode::from_u32(999), None);
    assert_eq!(Error::RoomFull.code(), ErrorCode::RoomFull);
}

fn postcard_body(message: &ToRelay) -> Vec<u8> {
    // Bypasses the encoder's limit check, as a misbehaving peer would.
    postcard::to_allocvec(message).expect("serializes")
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    push_varint(&mut wire, body.len());
    wire.extend_from_slice(body);
    wire
}

fn push_varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
