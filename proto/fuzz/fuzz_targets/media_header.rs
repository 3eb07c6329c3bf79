//! The media decoders ([`MediaHeader::decode`], [`MediaFrame::decode`]) on arbitrary bytes, as
//! an audio datagram and as a video stream.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rotunda_proto::limits::{MAX_AUDIO_PAYLOAD, MAX_TRACKS_PER_PARTICIPANT, MAX_VIDEO_PAYLOAD};
use rotunda_proto::{MediaFrame, MediaHeader, ParticipantId, TrackKind};

fuzz_target!(|data: &[u8]| {
    for kind in [TrackKind::Audio, TrackKind::Video] {
        check_header(data, kind);
        check_frame(data, kind);
    }
    // The audio limit is the stricter one: a valid audio header is the same valid video header.
    if let Ok(audio) = MediaHeader::decode(data, TrackKind::Audio) {
        assert_eq!(MediaHeader::decode(data, TrackKind::Video), Ok(audio));
    }
});

fn check_header(data: &[u8], kind: TrackKind) {
    let Ok(header) = MediaHeader::decode(data, kind) else {
        return;
    };
    // The header is canonical: it encodes to exactly the bytes it came from.
    assert_eq!(header.encode()[..], data[..MediaHeader::LEN]);
    assert!(usize::from(header.track.index) < MAX_TRACKS_PER_PARTICIPANT);
    let max = match kind {
        TrackKind::Audio => MAX_AUDIO_PAYLOAD,
        TrackKind::Video => MAX_VIDEO_PAYLOAD,
    };
    assert!(header.payload_len as usize <= max);
}

fn check_frame(data: &[u8], kind: TrackKind) {
    let Ok(frame) = MediaFrame::decode(Bytes::copy_from_slice(data), kind) else {
        return;
    };
    assert_eq!(
        frame.wire.len(),
        MediaHeader::LEN + frame.header.payload_len as usize
    );
    assert_eq!(frame.wire[..], data[..]);
    assert_eq!(MediaHeader::decode(data, kind), Ok(frame.header));
    // Building the frame again from its parts gives the same bytes.
    assert_eq!(MediaFrame::new(frame.header, frame.payload()), frame);

    // The relay's re-stamp changes the participant and nothing else.
    let publisher = ParticipantId(frame.header.sequence.rotate_left(7) ^ 0x5a5a_5a5a);
    let stamped = frame.clone().stamp(publisher);
    let again = MediaFrame::decode(stamped.wire.clone(), kind).expect("a stamped frame decodes");
    assert_eq!(again, stamped);
    assert_eq!(again.header.track.participant, publisher);
    let mut expected = frame.header;
    expected.track.participant = publisher;
    assert_eq!(again.header, expected);
    assert_eq!(again.payload(), frame.payload());
}
