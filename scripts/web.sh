#!/usr/bin/env bash
# Builds the browser client into wasm/dist (where the relay serves it from by default): the
# client compiled to wasm32, bound by wasm-bindgen (the CLI pinned to Cargo.lock's version,
# installed when missing), and index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    rustup target add wasm32-unknown-unknown
fi
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$version" ]; then
    echo "installing wasm-bindgen-cli $version (about 2 minutes) ..."
    cargo install --quiet wasm-bindgen-cli --version "$version"
fi

cargo build --quiet -p rotunda-wasm --target wasm32-unknown-unknown --profile web
out=wasm/dist
rm -rf "$out.new"
mkdir -p "$out.new"
wasm-bindgen --target web --no-typescript --out-dir "$out.new" \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/web/rotunda_wasm.wasm"
# wasm-opt only where asked for: Debian's binaryen produces a module that does not load.
if [ -n "${ROTUNDA_WASM_OPT:-}" ]; then
    "$ROTUNDA_WASM_OPT" -Os --enable-bulk-memory --enable-nontrapping-float-to-int \
        -o "$out.new/rotunda_wasm_bg.wasm" "$out.new/rotunda_wasm_bg.wasm"
fi
cp index.html "$out.new/"
rm -rf "$out"
mv "$out.new" "$out"
wasm="$out/rotunda_wasm_bg.wasm"
echo "browser client built in $out: $(( $(stat -c %s "$wasm") / 1024 )) KiB of wasm, $(( $(gzip -9c "$wasm" | wc -c) / 1024 )) KiB gzipped"
