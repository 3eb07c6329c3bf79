//! End-to-end encryption in the browser's build: a whole MLS group made and used inside wasm32,
//! and frames sealed natively (`vectors/frames.txt`) opened here. Runs natively in `cargo test`
//! and on wasm32 in Node.js (scripts/test.sh, wasm-bindgen-test).
//!
//! The vector file is written natively from a real MLS group:
//! `cargo test -p rotunda-e2ee --features vectors --test wasm -- --ignored write_vector`.

use std::collections::HashMap;

use rotunda_e2ee::{EpochSecret, FrameKeys, Member};
use wasm_bindgen_test::wasm_bindgen_test;
use web_time::Instant;

const VECTOR: &str = include_str!("vectors/frames.txt");

/// The vector file: the epoch, its base key, its members, then frames (header, sealed, plain).
struct Vector {
    epoch: u64,
    base: Vec<u8>,
    members: HashMap<u32, String>,
    frames: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn parse(text: &str) -> Vector {
    let mut vector = Vector {
        epoch: 0,
        base: Vec::new(),
        members: HashMap::new(),
        frames: Vec::new(),
    };
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["epoch", n] => vector.epoch = n.parse().expect("epoch"),
            ["base", key] => vector.base = hex(key),
            ["member", index, label] => {
                vector
                    .members
                    .insert(index.parse().expect("index"), (*label).to_owned());
            }
            ["frame", header, sealed, plain] => {
                vector.frames.push((hex(header), hex(sealed), hex(plain)));
            }
            other => panic!("unreadable line {other:?}"),
        }
    }
    vector
}

#[test]
#[wasm_bindgen_test]
fn frames_sealed_natively_open_here() {
    let vector = parse(VECTOR);
    assert!(vector.frames.len() >= 3, "a vector with frames");
    let now = Instant::now();
    let mut keys = FrameKeys::new();
    // We are a member the sender is not: any index of the epoch but the sender's.
    let own = *vector
        .members
        .iter()
        .find(|(_, label)| label.as_str() != "1:ada")
        .expect("a second member")
        .0;
    let secret = EpochSecret {
        epoch: vector.epoch,
        base: vector.base.clone(),
        members: vector.members.clone(),
        own,
    };
    keys.begin(secret, now).expect("keys");
    for (header, sealed, plain) in &vector.frames {
        let opened = keys.open(header, sealed, now).expect("opens");
        assert_eq!(&opened.payload, plain);
        assert_eq!(opened.sender, "1:ada");
        let mut altered = header.clone();
        altered[5] ^= 1;
        assert!(keys.open(&altered, sealed, now).is_err());
    }
}

#[test]
#[wasm_bindgen_test]
fn a_group_made_here_seals_and_opens() {
    let now = Instant::now();
    let everyone = |_: &str| true;
    let mut ada = Member::new("1:ada").expect("member");
    ada.create_group(now).expect("group");
    let bob = Member::new("2:bob").expect("member");
    let commit = ada
        .commit(&[bob.key_package().expect("key package")], &[])
        .expect("commit");
    ada.apply_commit(&commit.commit, &everyone, now)
        .expect("applies");
    let mut bob = bob;
    bob.join(&commit.welcome.expect("welcome"), &everyone, now)
        .expect("joins");
    assert_eq!(ada.safety_code(), bob.safety_code());
    let header = [3u8; 22];
    let sealed = ada.seal(&header, b"from wasm").expect("seals");
    assert_eq!(
        bob.open(&header, &sealed, now).expect("opens").payload,
        b"from wasm"
    );
    let line = bob.seal_chat("hello").expect("seals");
    assert_eq!(
        ada.open_chat(&line).expect("opens"),
        ("2:bob".to_owned(), "hello".to_owned())
    );
}

/// Writes `vectors/frames.txt` from a real group (native only, on request).
#[cfg(feature = "vectors")]
#[test]
#[ignore = "writes the vector file; run on request"]
fn write_vector() {
    use std::fmt::Write as _;
    let now = Instant::now();
    let everyone = |_: &str| true;
    let mut ada = Member::new("1:ada").expect("member");
    ada.create_group(now).expect("group");
    let bob = Member::new("2:bob").expect("member");
    let commit = ada
        .commit(&[bob.key_package().expect("key package")], &[])
        .expect("commit");
    ada.apply_commit(&commit.commit, &everyone, now)
        .expect("applies");
    let EpochSecret {
        epoch,
        base,
        members,
        ..
    } = ada.vector_secret().expect("secret");
    let to_hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut out = String::from(
        "# Frames sealed natively by 1:ada in a real MLS group, and the epoch's SFrame base key\n\
         # (written by the ignored test write_vector in tests/wasm.rs).\n",
    );
    let _ = writeln!(out, "epoch {epoch}");
    let _ = writeln!(out, "base {}", to_hex(&base));
    let mut members: Vec<_> = members.into_iter().collect();
    members.sort();
    for (index, label) in members {
        let _ = writeln!(out, "member {index} {label}");
    }
    for (i, size) in [1usize, 80, 1500, 6000].into_iter().enumerate() {
        let mut header = [0u8; 22];
        header[4] = i as u8;
        header[6..10].copy_from_slice(&(i as u32).to_be_bytes());
        let plain: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        let sealed = ada.seal(&header, &plain).expect("seals");
        let _ = writeln!(
            out,
            "frame {} {} {}",
            to_hex(&header),
            to_hex(&sealed),
            to_hex(&plain)
        );
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/frames.txt");
    std::fs::write(path, out).expect("writes");
}
