//! What end-to-end encryption costs: sealing and opening one media frame with SFrame (a voice's
//! 20 ms Opus packet, a 60 kB video keyframe), and an MLS commit that adds one member to groups
//! of 2, 20 and 200 (making it, and applying it as another member).
//!
//! `cargo bench -p rotunda-e2ee --bench e2ee` prints two tables.

use std::time::Instant;

use rotunda_e2ee::Member;

fn main() {
    let now = web_time::Instant::now();
    let mut ada = Member::new("1:ada").expect("member");
    ada.create_group(now).expect("group");
    let bob = Member::new("2:bob").expect("member");
    let commit = ada
        .commit(&[bob.key_package().expect("key package")], &[])
        .expect("commit");
    let everyone = |_: &str| true;
    ada.apply_commit(&commit.commit, &everyone, now)
        .expect("applies");
    let mut bob = bob;
    bob.join(&commit.welcome.expect("welcome"), &everyone, now)
        .expect("joins");

    let header = [0u8; 22];
    println!("| frame | seal µs (p50 / p95) | open µs (p50 / p95) | bytes added |");
    println!("|---|---:|---:|---:|");
    for (name, size, runs) in [
        ("Opus packet, 80 B", 80, 20_000),
        ("video frame, 6 kB", 6_000, 5_000),
        ("keyframe, 60 kB", 60_000, 1_000),
    ] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mut seal = Vec::with_capacity(runs);
        let mut open = Vec::with_capacity(runs);
        let mut added = 0;
        for run in 0..2 * runs {
            let start = Instant::now();
            let sealed = ada.seal(&header, &payload).expect("seals");
            let sealed_at = start.elapsed();
            let start = Instant::now();
            let opened = bob.open(&header, &sealed, now).expect("opens");
            let opened_at = start.elapsed();
            assert_eq!(opened.payload.len(), size);
            added = sealed.len() - size;
            if run >= runs {
                seal.push(sealed_at.as_secs_f64() * 1e6);
                open.push(opened_at.as_secs_f64() * 1e6);
            }
        }
        let (s50, s95) = percentiles(&mut seal);
        let (o50, o95) = percentiles(&mut open);
        println!("| {name} | {s50:.1} / {s95:.1} | {o50:.1} / {o95:.1} | {added} |");
    }

    println!();
    println!(
        "| members | make the commit (ms) | apply it (ms) | join with its welcome (ms) | commit / welcome bytes |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for size in [2usize, 20, 200] {
        let (make, apply, join, bytes) = commit_into(size);
        println!("| {size} | {make:.1} | {apply:.1} | {join:.1} | {bytes} |");
    }
}

/// A group of `size` (two of them real members with their state, the rest key packages of
/// members this process does not follow), then one commit adding one more: the times to make
/// it, to apply it as the other member, and for the newcomer to join.
fn commit_into(size: usize) -> (f64, f64, f64, String) {
    let now = web_time::Instant::now();
    let everyone = |_: &str| true;
    let mut ada = Member::new("0:ada").expect("member");
    ada.create_group(now).expect("group");
    let bob = Member::new("1:bob").expect("member");
    let mut packages = vec![bob.key_package().expect("key package")];
    for i in 2..size {
        let other = Member::new(&format!("{i}:other")).expect("member");
        packages.push(other.key_package().expect("key package"));
    }
    let commit = ada.commit(&packages, &[]).expect("commit");
    ada.apply_commit(&commit.commit, &everyone, now)
        .expect("applies");
    let mut bob = bob;
    bob.join(&commit.welcome.expect("welcome"), &everyone, now)
        .expect("joins");
    assert_eq!(ada.members().len(), size);

    let newcomer = Member::new(&format!("{size}:new")).expect("member");
    let package = newcomer.key_package().expect("key package");
    let start = Instant::now();
    let commit = ada.commit(&[package], &[]).expect("commit");
    let make = start.elapsed().as_secs_f64() * 1e3;
    ada.apply_commit(&commit.commit, &everyone, now)
        .expect("applies");
    let start = Instant::now();
    bob.apply_commit(&commit.commit, &everyone, now)
        .expect("applies");
    let apply = start.elapsed().as_secs_f64() * 1e3;
    let welcome = commit.welcome.expect("welcome");
    let mut newcomer = newcomer;
    let start = Instant::now();
    newcomer.join(&welcome, &everyone, now).expect("joins");
    let join = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(ada.safety_code(), newcomer.safety_code());
    (
        make,
        apply,
        join,
        format!("{} / {}", commit.commit.len(), welcome.len()),
    )
}

fn percentiles(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 95 / 100])
}
