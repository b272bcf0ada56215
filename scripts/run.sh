#!/usr/bin/env bash
# Runs one rockraft node (README): 127.0.0.1:6379, data in ./data. Flags go to rockraft-server,
# e.g. scripts/run.sh --port 7001 --data-dir d1. See scripts/run.sh --help.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" --build-only
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
# The same build as the test command, so the two share one set of compiled dependencies.
cargo build --release --manifest-path "$root/Cargo.toml" --workspace --bins >&2
exec "$CARGO_TARGET_DIR/release/rockraft-server" "$@"
