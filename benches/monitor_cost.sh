#!/usr/bin/env bash
# The cost of MONITOR and SLOWLOG on SET throughput (issue 19): one rockraft node and Redis 7
# (appendonly yes, appendfsync always), redis-benchmark -t set -c 50, each way in alternation
# (ROUNDS rounds, default 3; medians printed): plain; with a MONITOR client reading everything;
# with slowlog-log-slower-than 0 (every command logged).
#
#   benches/monitor_cost.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${REQUESTS:-100000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
scripts/deps.sh --with-redis-server
cargo build --release -p rockraft-server --bins
BIN="$CARGO_TARGET_DIR/release/rockraft-server"
WORK=$(mktemp -d /tmp/rockraft-monitor.XXXXXX)
RR=${RR_PORT:-17301}
RD=${REDIS_PORT:-17302}
PIDS=()
trap 'for p in "${PIDS[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
"$BIN" --port "$RR" --data-dir "$WORK/rr" --metrics-addr off 2>"$WORK/rr.log" &
PIDS+=($!)
redis-server --port "$RD" --dir "$WORK" --save '' --appendonly yes --appendfsync always \
  --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for p in "$RR" "$RD"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
set_rps() {
  redis-benchmark -p "$1" -t set -n "$N" -c 50 -q 2>/dev/null | tr '\r' '\n' |
    awk '/^SET:/ {s=$2} END {print s}'
}
: >"$WORK/results"
for r in $(seq "$ROUNDS"); do
  for server in rockraft redis; do
    port=$RR
    [ "$server" = redis ] && port=$RD
    echo "$server plain $(set_rps "$port")" | tee -a "$WORK/results"
    redis-cli -p "$port" monitor >/dev/null &
    mon=$!
    sleep 0.3
    echo "$server monitor $(set_rps "$port")" | tee -a "$WORK/results"
    { kill "$mon" && wait "$mon"; } 2>/dev/null || true
    redis-cli -p "$port" config set slowlog-log-slower-than 0 >/dev/null
    echo "$server slowlog $(set_rps "$port")" | tee -a "$WORK/results"
    redis-cli -p "$port" config set slowlog-log-slower-than 10000 >/dev/null
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "medians over $ROUNDS rounds (SET/s):"
for server in rockraft redis; do
  for m in plain monitor slowlog; do
    echo "$server $m $(awk -v s=$server -v m=$m '$1==s && $2==m {print $3}' "$WORK/results" | median)"
  done
done
