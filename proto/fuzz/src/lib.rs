//! Checks shared by the fuzz targets of `rotunda-proto`'s decoders.
//!
//! Each target lives in `fuzz_targets/`; run one with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> -O` from `proto/`.

use std::fmt::Debug;

use rotunda_proto::Error;
use rotunda_proto::framing::{self, FrameDecoder, Message};

/// What decoding a byte stream gave: the messages, then the error that stopped it, if any.
#[derive(Debug, PartialEq)]
struct Outcome<M> {
    messages: Vec<M>,
    error: Option<Error>,
    /// Bytes left buffered at the end (0 after an error).
    buffered: usize,
}

/// Decodes `data` as a control stream of `M` and checks the decoder's invariants:
///
/// - it never panics;
/// - the same bytes give the same messages and the same error whether they arrive at once or in
///   pieces;
/// - after an error the decoder stays failed;
/// - every decoded message is valid, re-encodes, and decodes back to itself, also byte by byte;
/// - a body decoded directly by [`framing::decode_body`] round-trips the same way.
pub fn check_stream<M: Message + PartialEq + Debug>(data: &[u8]) {
    let whole = decode_stream::<M>([data]);
    // Piece sizes from 1 to 16 bytes, chosen by the input itself.
    let step = data.first().map_or(1, |b| usize::from(b % 16) + 1);
    let pieces = decode_stream::<M>(data.chunks(step));
    assert_eq!(
        whole, pieces,
        "decoding depends on how the bytes were split"
    );

    for message in &whole.messages {
        check_round_trip(message);
    }
    if let Ok(message) = framing::decode_body::<M>(data) {
        check_round_trip(&message);
    }
}

fn decode_stream<'a, M: Message>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome<M> {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.poll_message::<M>() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => {
                    assert!(
                        decoder.poll_message::<M>().is_err(),
                        "the decoder recovered after {error:?}"
                    );
                    return Outcome {
                        messages,
                        error: Some(error),
                        buffered: decoder.buffered(),
                    };
                }
            }
        }
    }
    Outcome {
        messages,
        error: None,
        buffered: decoder.buffered(),
    }
}

fn check_round_trip<M: Message + PartialEq + Debug>(message: &M) {
    message
        .validate()
        .expect("a decoded message passes validation");
    let wire = framing::encode(message).expect("a decoded message re-encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    let again = decoder
        .poll_message::<M>()
        .expect("a re-encoded message decodes");
    assert_eq!(
        again.as_ref(),
        Some(message),
        "the round trip changed the message"
    );
    assert_eq!(
        decoder.buffered(),
        0,
        "the re-encoded frame has trailing bytes"
    );

    // Byte by byte: nothing before the last byte, the message at it.
    let mut decoder = FrameDecoder::new();
    for (i, byte) in wire.iter().enumerate() {
        decoder.push(std::slice::from_ref(byte));
        let got = decoder
            .poll_message::<M>()
            .expect("a re-encoded message decodes");
        if i + 1 < wire.len() {
            assert!(got.is_none(), "a message before its last byte");
        } else {
            assert_eq!(got.as_ref(), Some(message));
        }
    }
}
