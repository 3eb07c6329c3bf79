//! The `rotunda bot` command as a user runs it: three processes in one room for 20 seconds
//! against a loopback relay, trusting its dev certificate by fetching `/certificate.sha256`, each
//! writing `--stats-json`. The room is end-to-end encrypted, as by default.

mod common;

use std::path::PathBuf;

use common::{PATIENCE, start_relay};
use serde_json::Value;
use tokio::process::Command;

const NAMES: [&str; 3] = ["ada", "bea", "cy"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bot_processes_decode_each_other_for_twenty_seconds() {
    let relay = start_relay(|_| {}).await;
    let url = relay.url.clone();

    let dir = std::env::temp_dir().join(format!("rotunda-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let stats = |name: &str| -> PathBuf { dir.join(format!("{name}.json")) };
    let children: Vec<_> = NAMES
        .iter()
        .map(|name| {
            Command::new(env!("CARGO_BIN_EXE_rotunda"))
                .args(["bot", "--relay", &url, "--room", "cli", "--name", name])
                .args(["--duration", "20s", "--chat", &format!("hi from {name}")])
                // Said once all three are in the group, so that all can read it.
                .args(["--chat-with", "3"])
                .arg("--stats-json")
                .arg(stats(name))
                // A bot that outlives the test is killed with it.
                .kill_on_drop(true)
                .spawn()
                .expect("rotunda bot starts")
        })
        .collect();
    for mut child in children {
        // Twenty seconds in the room, then the report: well within the patience given.
        let status = tokio::time::timeout(PATIENCE * 2, child.wait())
            .await
            .expect("the bot ends in time")
            .expect("waits");
        assert!(status.success(), "a bot failed: {status}");
    }

    let reports: Vec<Value> = NAMES
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(stats(name)).expect("stats written");
            serde_json::from_str(&text).expect("stats are JSON")
        })
        .collect();
    // Encrypted by default, and everyone shows the same safety code while all three are in
    // the room (each leaves at its own moment, moving the others on to another epoch).
    let codes = |report: &Value| -> Vec<String> {
        report["safety_codes"]
            .as_array()
            .expect("safety_codes is an array")
            .iter()
            .filter_map(|code| code.as_str().map(str::to_owned))
            .collect()
    };
    let shared: Vec<String> = codes(&reports[0])
        .into_iter()
        .filter(|code| reports[1..].iter().all(|r| codes(r).contains(code)))
        .collect();
    assert!(
        shared.iter().any(|code| code.len() >= 30),
        "no safety code shared by all: {:?}",
        reports.iter().map(codes).collect::<Vec<_>>()
    );
    for (name, report) in NAMES.iter().zip(&reports) {
        assert_eq!(report["e2ee"], true, "{name}");
        assert_eq!(report["name"], *name);
        assert_eq!(report["room"], "cli");
        assert_eq!(report["decode_errors"], 0, "{name}");
        let peers = report["peers"].as_object().expect("peers is an object");
        for (other, sent) in NAMES.iter().zip(&reports).filter(|(n, _)| *n != name) {
            let peer = &peers[*other];
            for key in [
                "video_frames_decoded",
                "video_frames_wrong_sender",
                "audio_frames_decoded",
            ] {
                assert!(peer[key].is_u64(), "{name}/{other}/{key} is an integer");
            }
            for key in [
                "video_latency_ms_p50",
                "video_latency_ms_p95",
                "audio_latency_ms_p50",
                "audio_latency_ms_p95",
            ] {
                assert!(peer[key].is_f64(), "{name}/{other}/{key} is a number");
            }
            // Against what the sender numbered while this bot was there, which must be most of
            // what it sent (they were together nearly the whole time). Video: of its busiest
            // layer (a viewer takes one layer at a time; the sender may encode two for a while
            // when its viewers take different ones).
            let count = |value: &Value, key: &str| value[key].as_f64().unwrap_or_default();
            let busiest = sent["video_frames_sent_by_layer"]
                .as_array()
                .expect("video_frames_sent_by_layer is an array")
                .iter()
                .filter_map(Value::as_f64)
                .fold(0.0, f64::max);
            for (expected, sent_count) in [
                ("video_frames_expected", busiest),
                ("audio_frames_expected", count(sent, "audio_frames_sent")),
            ] {
                assert!(
                    count(peer, expected) >= 0.8 * sent_count,
                    "{name} was there for too little of {other}'s {expected}"
                );
            }
            let video = count(peer, "video_frames_decoded") / count(peer, "video_frames_expected");
            let audio = count(peer, "audio_frames_decoded") / count(peer, "audio_frames_expected");
            assert!(video >= 0.9, "{name} decoded {video:.3} of {other}'s video");
            assert!(audio >= 0.9, "{name} decoded {audio:.3} of {other}'s audio");
            assert_eq!(
                peer["video_frames_wrong_sender"], 0,
                "{name} misread {other}"
            );
        }
        let chat: Vec<(String, String)> = report["chat_received"]
            .as_array()
            .expect("chat_received is an array")
            .iter()
            .map(|line| {
                (
                    line["from"].as_str().unwrap_or_default().to_owned(),
                    line["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for other in NAMES {
            assert!(
                chat.contains(&(other.to_owned(), format!("hi from {other}"))),
                "{name} missed {other}'s chat line: {chat:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    relay.stop().await;
}
