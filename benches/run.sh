#!/usr/bin/env bash
# The benchmark harness (README): builds rockraft, makes sure Redis 7 and redis-benchmark are
# installed, then runs benches/harness.py. Arguments go to the harness (e.g. --requests 20000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" --with-redis-server
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
cargo build --release --manifest-path "$root/Cargo.toml" --workspace --bins >&2
exec python3 "$root/benches/harness.py" --bin-dir "$CARGO_TARGET_DIR/release" "$@"
