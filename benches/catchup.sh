#!/usr/bin/env bash
# Durability figures (issue 4): a node joins a cluster holding N keys (default 1,000,000) and
# catches up through a snapshot. Prints the time from CLUSTER MEET until the new node serves
# identical data, the peak RSS of sender and receiver while it happens, and the raft log's
# size after the N writes (default compaction thresholds unless flags are given).
#
#   benches/catchup.sh [KEYS] [extra rockraft-server flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
shift || true
EXTRA=("$@")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
scripts/deps.sh --build-only
cargo build --release -p rockraft-server -p rockraft-ctl --bins
BIN="$CARGO_TARGET_DIR/release/rockraft-server"
CTL="$CARGO_TARGET_DIR/release/rockraft-ctl"
WORK=$(mktemp -d /tmp/rockraft-catchup.XXXXXX)
PA=${PORT_A:-17101}
PB=${PORT_B:-17102}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

field() { redis-cli -p "$1" info raft | tr -d '\r' | sed -n "s/^$2://p"; }
rss_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
start() {
  "$BIN" --port "$1" --data-dir "$WORK/$1" --metrics-addr off "${EXTRA[@]}" 2>"$WORK/$1.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node on $1 did not start" >&2
  exit 1
}

start "$PA"
A=${PIDS[0]}
for _ in $(seq 1 100); do
  [ "$(field "$PA" raft_role)" = leader ] && break
  sleep 0.1
done
echo "loading $KEYS keys (SET key:N <64 bytes>) into a 1-node cluster..."
t0=$(date +%s.%N)
python3 - "$KEYS" <<'EOF' | redis-cli -p "$PA" --pipe | tail -1
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
val = b"v" * 64
buf = []
for i in range(n):
    k = b"key:%d" % i
    buf.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(k), k, val))
    if len(buf) == 10000:
        out.write(b"".join(buf))
        buf = []
out.write(b"".join(buf))
EOF
t1=$(date +%s.%N)
dbsize=$(redis-cli -p "$PA" dbsize)
echo "loaded: dbsize=$dbsize in $(echo "$t1 - $t0" | bc) s"
# Let RocksDB settle (compaction of the deleted log), then read the raft log's size.
sleep 5
echo
echo "raft log after $KEYS writes:"
for f in raft_first_index raft_last_index raft_log_entries raft_log_bytes raft_log_sst_bytes rocksdb_wal_bytes rocksdb_data_sst_bytes; do
  printf '  %-24s %s\n' "$f" "$(field "$PA" $f)"
done
# raft_log_sst_bytes: the raft column family's SST files. The WAL is shared with the data
# (one fsync covers both) and is recycled as memtables flush.
du -sh "$WORK/$PA/db" | awk '{print "  whole store on disk      " $1}'

start "$PB"
B=${PIDS[1]}
rss_a_before=$(rss_kb "$A" VmRSS)
# Reset the peak-RSS counter of the sender, so its peak is the catch-up's.
echo 5 >"/proc/$A/clear_refs" 2>/dev/null || echo "(cannot reset VmHWM of the sender: peak includes loading)"
rss_b_before=$(rss_kb "$B" VmRSS)
echo
echo "node B joins (CLUSTER MEET)..."
t0=$(date +%s.%N)
redis-cli -p "$PA" cluster meet 127.0.0.1 "$PB" >/dev/null
applied_a=$(field "$PA" raft_applied_index)
ok=0
for _ in $(seq 1 6000); do
  ab=$(field "$PB" raft_applied_index || echo 0)
  if [ "${ab:-0}" -ge "$applied_a" ]; then
    ok=1
    break
  fi
  sleep 0.05
done
# Caught up means a voter too (the wait every cluster-forming script uses).
[ $ok = 1 ] && { "$CTL" cluster wait --ports "$PA,$PB" --timeout 60 >/dev/null || ok=0; }
t1=$(date +%s.%N)
[ $ok = 1 ] || { echo "node B did not catch up" >&2; tail -20 "$WORK/$PB.log" >&2; exit 1; }
da=$(redis-cli -p "$PA" debug digest)
db=$(redis-cli -p "$PB" debug digest)
[ "$da" = "$db" ] || { echo "digests differ: $da vs $db" >&2; exit 1; }
echo
echo "catch-up of $KEYS keys:"
printf '  %-36s %.2f s\n' "MEET to caught up (voter, same digest)" "$(echo "$t1 - $t0" | bc)"
printf '  %-36s %s\n' "snapshots installed on B" "$(field "$PB" raft_snapshots_installed)"
printf '  %-36s %s\n' "snapshots sent by A" "$(field "$PA" raft_snapshots_sent)"
printf '  %-36s %s MB before, peak %s MB\n' "sender RSS" "$((rss_a_before / 1024))" "$(($(rss_kb "$A" VmHWM) / 1024))"
printf '  %-36s %s MB before, peak %s MB\n' "receiver RSS" "$((rss_b_before / 1024))" "$(($(rss_kb "$B" VmHWM) / 1024))"
printf '  %-36s %s\n' "digest (both)" "$da"
grep -h "snapshot generated\|snapshot received\|snapshot installed\|snapshot sent" "$WORK"/*.log | sed 's/^/  log: /' | cut -c1-200
