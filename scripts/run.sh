#!/usr/bin/env bash
# Runs Rotunda on loopback: the 3D room client, which starts a relay in-process on
# 127.0.0.1:4443 (or joins the one already there), and two bots (alice, bob) in the same room
# so there is someone to meet. Another `rotunda --room lobby` on this machine joins them, and so
# does a browser: the relay serves the browser client (built here into wasm/dist) at its own
# address, http://127.0.0.1:4443/?room=lobby.
#   ROTUNDA_ROOM (lobby)  ROTUNDA_NAME ($USER)  ROTUNDA_BOTS (2)  ROTUNDA_RELAY (a relay URL)
# Without a display (a server, a container), the room runs under Xvfb for 30 s and saves a
# screenshot to rotunda-room.png instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --quiet --workspace --bins
bash scripts/web.sh
# This checkout's bundle, even when the relay was built from another one sharing the target dir.
export ROTUNDA_WEB_ROOT="${ROTUNDA_WEB_ROOT:-$PWD/wasm/dist}"
# The client reads its assets (assets/: the interface font) from here.
export BEVY_ASSET_ROOT="${BEVY_ASSET_ROOT:-$PWD}"
bin="$CARGO_TARGET_DIR/debug"
room="${ROTUNDA_ROOM:-lobby}"
name="${ROTUNDA_NAME:-${USER:-guest}}"
bots="${ROTUNDA_BOTS:-2}"
relay="${ROTUNDA_RELAY:-https://127.0.0.1:4443}"

args=(--room "$room" --name "$name")
[ -n "${ROTUNDA_RELAY:-}" ] && args+=(--relay "$ROTUNDA_RELAY")
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "no display: running the room under Xvfb for 30 s; the screenshot goes to rotunda-room.png"
    export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
    client=(xvfb-run -a -s "-screen 0 1280x720x24" "$bin/rotunda" "${args[@]}"
        --camera synthetic --mic synthetic --duration 30s
        --screenshot rotunda-room.png --screenshot-after 20s --stats-json rotunda-stats.json)
else
    client=("$bin/rotunda" "${args[@]}")
fi

"${client[@]}" &
window=$!
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
# The bots join once the relay answers (the client starts it).
for _ in $(seq 100); do
    curl -sf "http://${relay#https://}/healthz" >/dev/null 2>&1 && break
    kill -0 $window 2>/dev/null || break
    sleep 0.2
done
if [ -z "${ROTUNDA_RELAY:-}" ]; then
    echo "rotunda: join from a browser (Chrome, Edge) at http://${relay#https://}/?room=$room"
fi
names=(alice bob carol dave erin frank)
for ((i = 0; i < bots && i < ${#names[@]}; i++)); do
    "$bin/rotunda" bot --relay "$relay" --room "$room" --name "${names[$i]}" --duration 24h \
        --chat "hello from ${names[$i]}" >/dev/null &
    pids+=($!)
done
wait $window
