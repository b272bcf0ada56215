#!/usr/bin/env bash
# Big collections (issue 13's figures): a 1,000,000-member hash and sorted set in Redis 7 (AOF
# always) and a 1-node rockraft: load time, RSS, disk, DEL time. Arguments go to the script
# (e.g. --members 100000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" --with-redis-server
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p rockraft-server --bins >&2
exec python3 "$root/benches/collections.py" --bin-dir "$CARGO_TARGET_DIR/release" "$@"
