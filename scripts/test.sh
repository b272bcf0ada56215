#!/usr/bin/env bash
# The test command (README): installs what is missing, builds in release mode, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
cargo build --release --workspace --bins
cargo test --release --workspace -- --test-threads=2
