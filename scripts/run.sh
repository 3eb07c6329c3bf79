#!/usr/bin/env bash
# Runs Rotunda on loopback: a relay and three participants (alice, bob, carol) that see and hear
# each other, each printing whom it decodes, at what frame rate and latency.
#   ROTUNDA_LISTEN (127.0.0.1:4443)  ROTUNDA_ROOM (lobby)  ROTUNDA_DURATION (30s)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --quiet --workspace --bins
bin="$CARGO_TARGET_DIR/debug"
listen="${ROTUNDA_LISTEN:-127.0.0.1:4443}"
room="${ROTUNDA_ROOM:-lobby}"
duration="${ROTUNDA_DURATION:-30s}"

relay_out="$(mktemp)"
"$bin/rotunda-relay" --listen "$listen" >"$relay_out" &
relay=$!
trap 'kill $relay 2>/dev/null || true; wait $relay 2>/dev/null || true; rm -f "$relay_out"' EXIT
until [ -s "$relay_out" ]; do
    kill -0 $relay 2>/dev/null || { echo "the relay did not start (is $listen taken? set ROTUNDA_LISTEN)" >&2; exit 1; }
    sleep 0.1
done
url="$(head -n 1 "$relay_out" | awk '{print $NF}')"
cat "$relay_out"
echo "join from another terminal: $bin/rotunda bot --relay $url --room $room --name you"
echo

pids=()
for name in alice bob carol; do
    "$bin/rotunda" bot --relay "$url" --room "$room" --name "$name" --duration "$duration" \
        --chat "hello from $name" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
