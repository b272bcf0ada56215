#!/usr/bin/env bash
# Side-by-side: redis-benchmark against a 1-node rockraft, the leader of a 3-node rockraft
# cluster (all on this machine), and Redis 7 with
# `--appendonly yes --appendfsync always` (every write fsync'd, like rockraft's raft log),
# on this machine, in one run. Usage: benches/compare.sh [redis-benchmark args…]
# Default workload: -t set,get -n 100000 -c 50 -d 64 -r 100000 -q
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" --with-redis-server
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
# The same build as the test command, so the two share one set of compiled dependencies.
cargo build --release --manifest-path "$root/Cargo.toml" --workspace --bins >&2

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-t set,get -n 100000 -c 50 -d 64 -r 100000 -q)

work="$(mktemp -d)"
rr_port=17379; redis_port=17380
cleanup() {
  kill "${rr_pid:-}" "${redis_pid:-}" 2>/dev/null || true
  "$CARGO_TARGET_DIR/release/rockraft-ctl" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$CARGO_TARGET_DIR/release/rockraft-server" --port $rr_port --data-dir "$work/rockraft" \
  --metrics-addr off --log-level warn & rr_pid=$!
redis-server --port $redis_port --bind 127.0.0.1 --dir "$work" --save '' \
  --appendonly yes --appendfsync always --daemonize no --logfile "$work/redis.log" & redis_pid=$!

for port in $rr_port $redis_port; do
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p $port SET __probe__ 1 2>/dev/null)" = "OK" ] && break
    sleep 0.1
  done
done

echo "machine: $(nproc) cores, $(uname -r); redis-benchmark ${args[*]}"
echo "--- rockraft (1 node, raft log fsync per batch)"
redis-benchmark -p $rr_port "${args[@]}" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | grep -v 'rps=' || true
echo "--- rockraft (leader of a 3-node cluster on this machine)"
"$CARGO_TARGET_DIR/release/rockraft-ctl" cluster up --nodes 3 --base-port 17401 --dir "$work/cluster" >/dev/null
leader=""
for port in 17401 17402 17403; do
  redis-cli -p $port INFO raft | grep -q '^raft_role:leader' && leader=$port
done
redis-benchmark -p "$leader" "${args[@]}" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | grep -v 'rps=' || true
echo "--- redis $(redis-server --version | grep -o 'v=[0-9.]*') (appendonly yes, appendfsync always)"
redis-benchmark -p $redis_port "${args[@]}" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | grep -v 'rps=' || true
