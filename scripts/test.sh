#!/usr/bin/env bash
# Runs every check Rotunda has: formatting, lints, unit, protocol, loopback and CLI tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
