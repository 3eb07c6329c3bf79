#!/usr/bin/env bash
# Builds the browser client into wasm/dist (where the relay serves it from by default):
# - the room (the same Bevy client, wasm32) and the call's engine (its own module, run in a
#   worker), each bound by wasm-bindgen (the CLI pinned to Cargo.lock's version, installed when
#   missing);
# - both in a content-addressed folder b-<hash>/ (cached by browsers for a year), every module
#   and script beside its brotli and gzip forms (the relay sends those to browsers that take
#   them);
# - index.html, which names that folder and loads the room with a progress bar;
# - assets/, the room's assets (as natively: its font, its sounds), compressed likewise.
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

cargo build --quiet -p rotunda-wasm -p rotunda-worker --target wasm32-unknown-unknown --profile web
built="$CARGO_TARGET_DIR/wasm32-unknown-unknown/web"
out=wasm/dist
rm -rf "$out.new"
mkdir -p "$out.new/bundle"
for module in rotunda_wasm rotunda_worker; do
    wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
        --out-dir "$out.new/bundle" "$built/$module.wasm"
done
# wasm-opt only where asked for: Debian's binaryen produces a module that does not load.
if [ -n "${ROTUNDA_WASM_OPT:-}" ]; then
    for wasm in "$out.new"/bundle/*.wasm; do
        "$ROTUNDA_WASM_OPT" -Os --enable-bulk-memory --enable-nontrapping-float-to-int \
            -o "$wasm" "$wasm"
    done
fi
# The worker's script: it loads the engine's module, whose start function then takes the page's
# messages. What the page posts while the module still loads is kept and handed over after.
cat > "$out.new/bundle/worker.js" <<'JS'
const early = [];
self.onmessage = (event) => early.push(event);
const { default: init } = await import('./rotunda_worker.js');
await init();
for (const event of early) self.onmessage(event);
JS
hash="$(cat "$out.new"/bundle/* | sha256sum | cut -c1-16)"
bundle="b-$hash"
mv "$out.new/bundle" "$out.new/$bundle"
for file in "$out.new/$bundle"/*.wasm "$out.new/$bundle"/*.js; do
    brotli --quality=9 --keep --force "$file"
    gzip -9 --keep --force "$file"
done
# The room's assets (its font, its sounds), where the client asks for them: beside index.html.
cp -r assets "$out.new/assets"
for file in "$out.new"/assets/fonts/*.ttf "$out.new"/assets/fonts/*.otf "$out.new"/assets/sounds/*.wav; do
    brotli --quality=9 --keep --force "$file"
    gzip -9 --keep --force "$file"
done
room="$out.new/$bundle/rotunda_wasm_bg.wasm"
sed -e "s|{{BUNDLE}}|$bundle|g" -e "s|{{MODULE_BYTES}}|$(stat -c %s "$room")|g" \
    index.html > "$out.new/index.html"
rm -rf "$out"
mv "$out.new" "$out"
kib() { echo $(( $(stat -c %s "$1") / 1024 )); }
room="$out/$bundle/rotunda_wasm_bg.wasm"
engine="$out/$bundle/rotunda_worker_bg.wasm"
echo "browser client built in $out/$bundle: the room $(kib "$room") KiB of wasm" \
    "($(kib "$room.br") KiB brotli, $(kib "$room.gz") KiB gzip), the engine $(kib "$engine") KiB" \
    "($(kib "$engine.br") KiB brotli)"
