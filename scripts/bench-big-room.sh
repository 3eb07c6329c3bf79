#!/usr/bin/env bash
# The big-room benchmark (BENCHMARKS.md, "Big rooms"): a relay, `rotunda load-test` with N
# publishers (K speaking) and one `rotunda bot --view 1280x720` for 30 s; prints what the bot
# received and the relay's CPU. `LAYERS=off` runs the same room with every video at one size and
# the bot taking everything whole, for comparison.
#
#   bash scripts/bench-big-room.sh [PUBLISHERS] [SPEAKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
publishers="${1:-150}"
speakers="${2:-3}"
layers="${LAYERS:-on}"
# (The workspace's feature set, as the tests build it: no rebuild between the two.)
cargo build --quiet -p rotunda -p rotunda-server --bin rotunda --bin rotunda-relay
bin="$CARGO_TARGET_DIR/debug"
out="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
relay="https://127.0.0.1:$port"
"$bin/rotunda-relay" --listen "127.0.0.1:$port" >"$out/relay.log" 2>&1 &
relay_pid=$!
trap 'kill $relay_pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/certificate.sha256" >/dev/null; do sleep 0.2; done

load_flags=()
bot_flags=(--view 1280x720)
if [ "$layers" = off ]; then
    load_flags=(--no-simulcast)
    bot_flags=()
fi
"$bin/rotunda" load-test --relay "$relay" --room big --publishers "$publishers" \
    --speakers "$speakers" --duration 60s --stats-json "$out/load.json" "${load_flags[@]}" \
    >"$out/load.log" 2>&1 &
load_pid=$!
# Everyone in (25 ms apart) and their clips made.
sleep $((publishers / 20 + 10))
cpu() { awk '{ print $14 + $15 }' "/proc/$relay_pid/stat"; }
rss() { awk '/VmRSS/ { print $2 }' "/proc/$relay_pid/status"; }
cpu_before=$(cpu)
"$bin/rotunda" bot --relay "$relay" --room big --name viewer --duration 30s \
    --stats-json "$out/viewer.json" "${bot_flags[@]}" >"$out/viewer.log" 2>&1 || true
cpu_after=$(cpu)
rss_kib=$(rss)
wait "$load_pid" || true
ticks=$(getconf CLK_TCK)
python3 - "$out" "$cpu_before" "$cpu_after" "$ticks" "$rss_kib" "$speakers" <<'EOF'
import json, sys
out, before, after, ticks, rss, speakers = sys.argv[1], *map(float, sys.argv[2:6]), int(sys.argv[6])
viewer = json.load(open(f"{out}/viewer.json"))
load = json.load(open(f"{out}/load.json"))
seconds = viewer["seconds"]
peers = viewer["peers"]
print(f"publishers {load['publishers']} ({load['speakers']} speaking), stayed {load['completed']}, "
      f"sending {load['kbps_sent']:.0f} kb/s in all")
print(f"relay CPU over the bot's {seconds:.0f} s: {(after - before) / ticks / seconds * 100:.0f} % "
      f"of one core; RSS {rss / 1024:.0f} MiB")
print(f"bot downlink {viewer['downlink_kbps']:.0f} kb/s; peers with video "
      f"{sum(1 for p in peers.values() if p['video_frames_decoded'] > 0)} of {len(peers)}")
by_layer = {}
for p in peers.values():
    layers = p.get("video_frames_by_layer", [])
    if layers:
        top = max(range(len(layers)), key=lambda n: layers[n])
        by_layer.setdefault(top, []).append(p["video_frames_decoded"] / seconds)
for layer, rates in sorted(by_layer.items()):
    rates.sort()
    print(f"  mostly layer {layer}: {len(rates)} panels, fps min {rates[0]:.1f} "
          f"median {rates[len(rates) // 2]:.1f}")
for n in range(1, speakers + 1):
    p = peers.get(f"load-{n}")
    if p:
        share = p["audio_frames_decoded"] / max(1, p["audio_frames_expected"])
        print(f"  speaker load-{n}: audio {p['audio_frames_decoded']}/{p['audio_frames_expected']} "
              f"({share * 100:.1f} %), p95 {p['audio_latency_ms_p95']:.0f} ms")
quiet = [p for name, p in peers.items() if name.startswith("load-") and int(name[5:]) > speakers]
print(f"  silent microphones: {sum(p['audio_frames_received'] for p in quiet)} audio frames "
      f"received from {len(quiet)}")
print(f"layer switches timed: {viewer.get('layer_switches', 0)}, p50 "
      f"{viewer.get('layer_switch_ms_p50', 0):.0f} ms, p95 {viewer.get('layer_switch_ms_p95', 0):.0f} ms")
EOF
echo "(logs and JSON in $out)"
