#!/usr/bin/env bash
# The benchmark harness (README): builds rockraft, makes sure Redis 7 and redis-benchmark are
# installed, then runs benches/harness.py. Arguments go to the harness (e.g. --requests 20000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh"
command -v redis-server >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
cargo build --release --manifest-path "$root/Cargo.toml" --workspace --bins >&2
exec python3 "$root/benches/harness.py" --bin-dir "$CARGO_TARGET_DIR/release" "$@"
