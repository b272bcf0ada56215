#!/usr/bin/env bash
# The test command (README): installs what is missing, builds in release mode, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --with-redis-server
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
# The crash tests run a server with failpoints compiled in, kept under its own name.
cargo build --release -p rockraft-server --features failpoints
cp -f "$CARGO_TARGET_DIR/release/rockraft-server" "$CARGO_TARGET_DIR/release/rockraft-server-failpoints"
cargo build --release --workspace --bins
# The criterion suite must keep compiling (running it is `cargo bench -p rockraft-benches`).
cargo bench -p rockraft-benches --no-run
cargo test --release --workspace -- --test-threads=2
# The deployment files, against their schemas and linters (no container runtime needed).
deploy/validate.sh
# A black-box fault campaign: real processes, partitions, kills, pauses, membership changes;
# fails on any linearizability anomaly or lost acknowledged write.
"$CARGO_TARGET_DIR/release/rockraft-ctl" campaign --nodes 3 --duration 90
