#!/usr/bin/env bash
# Three bots in one room for 20 s (BENCHMARKS.md, "End-to-end encryption ... In a call"): a
# relay and three `rotunda bot` processes at 640x480@30 under /usr/bin/time; prints each bot's
# CPU, every pair's media and what end-to-end encryption cost. `E2EE=off` creates the room
# without it, for comparison.
#
#   bash scripts/bench-three-bots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --quiet -p rotunda -p rotunda-server --bin rotunda --bin rotunda-relay
bin="$CARGO_TARGET_DIR/debug"
out="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
"$bin/rotunda-relay" --listen "127.0.0.1:$port" >"$out/relay.log" 2>&1 &
relay_pid=$!
trap 'kill $relay_pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/certificate.sha256" >/dev/null; do sleep 0.2; done

flags=()
[ "${E2EE:-on}" = off ] && flags=(--no-e2ee)
pids=()
for name in alice bob carol; do
    /usr/bin/time -f "$name: %U s user, %S s system in %e s" -o "$out/$name.time" \
        "$bin/rotunda" bot --relay "https://127.0.0.1:$port" --room three --name "$name" \
        --duration 20s --video 640x480@30 --chat "hello from $name" --chat-with 3 \
        --stats-json "$out/$name.json" "${flags[@]}" >"$out/$name.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
cat "$out"/*.time
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for name in ["alice", "bob", "carol"]:
    r = json.load(open(f"{out}/{name}.json"))
    c = r["e2ee_cost"]
    print(f"{name}: e2ee {r['e2ee']}, safety code {r['safety_code']}, "
          f"{r['frames_not_opened']} frames not opened, {len(r['chat_received'])} chat lines; "
          f"sealed {c['sealed']} at {c['seal_ms'] * 1000 / max(1, c['sealed']):.1f} µs, "
          f"opened {c['opened']} at {c['open_ms'] * 1000 / max(1, c['opened']):.1f} µs")
    for sender, p in r["peers"].items():
        print(f"  {name} <- {sender}: video {p['video_frames_decoded']}/{p['video_frames_expected']}"
              f" p50/p95 {p['video_latency_ms_p50']:.1f}/{p['video_latency_ms_p95']:.1f} ms,"
              f" audio {p['audio_frames_decoded']}/{p['audio_frames_expected']}"
              f" p50/p95 {p['audio_latency_ms_p50']:.1f}/{p['audio_latency_ms_p95']:.1f} ms")
PY
