#!/usr/bin/env bash
# Runs every check Rotunda has: formatting, lints (native and browser), unit, protocol (natively
# and on wasm32), loopback, CLI, window and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The browser build: its lints, then the bundle the browser test loads (wasm/dist); this also
# installs the wasm32 target and wasm-bindgen-cli.
bash scripts/web.sh
cargo clippy --quiet -p rotunda-wasm -p rotunda-worker --target wasm32-unknown-unknown -- -D warnings
# The browser test drives Debian's Chromium with playwright-core (tests/browser).
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium ..."
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
# The screen-sharing test shows its picture with ImageMagick's display.
if ! command -v display >/dev/null 2>&1; then
    echo "installing imagemagick ..."
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends imagemagick >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
    echo "installing nodejs and npm ..."
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The wire messages' tests again, compiled to wasm32 and run in Node.js by wasm-bindgen-test.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p rotunda-proto --target wasm32-unknown-unknown --test messages 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
# End-to-end encryption in the browser's build: an MLS group made in wasm, and frames sealed
# natively opened there.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p rotunda-e2ee --target wasm32-unknown-unknown --test wasm 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e
# Every failure's message again at the end, where a log cut short in the middle still shows it.
awk '/panicked at/ { p = 1 } /^stack backtrace:|^note: / { p = 0 } p && !/^\[(driver|bot)\]/ { print }' "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
