#!/usr/bin/env bash
# Runs deploy/scripts (join, ready, leave) against three real rockraft-server processes on
# 127.0.0.1, as the Kubernetes StatefulSet and the compose file run them: the nodes form one
# cluster, every node becomes ready, the third leaves, the other two still take writes.
set -euo pipefail
cd "$(dirname "$0")"
target=${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}
server=$target/release/rockraft-server
[ -x "$server" ] || { echo "build rockraft-server first ($server)" >&2; exit 1; }
# TEST_PORTS: three client ports then three bus ports (a test harness picks free ones).
if [ -n "${TEST_PORTS:-}" ]; then
  read -r -a ports <<<"$TEST_PORTS"
else
  base=$((33000 + RANDOM % 5000))
  ports=($((base + 1)) $((base + 2)) $((base + 3)) $((base + 101)) $((base + 102)) $((base + 103)))
fi
p() { echo "${ports[$(($1 - 1))]}"; }
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for i in 1 2 3; do
  "$server" --port "$(p "$i")" --bus-port "$(p $((i + 3)))" --data-dir "$work/n$i" \
    --metrics-addr off --log-level warn 2>"$work/n$i.log" &
  pids+=($!)
done
wait_for() { # wait_for SECONDS COMMAND…
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}
for i in 1 2 3; do wait_for 30 redis-cli -p "$(p "$i")" PING >/dev/null; done
for i in 2 3; do scripts/join.sh 127.0.0.1 "$(p 1)" 127.0.0.1 "$(p "$i")"; done
# Joining again changes nothing.
scripts/join.sh 127.0.0.1 "$(p 1)" 127.0.0.1 "$(p 3)"
for i in 1 2 3; do
  wait_for 60 scripts/ready.sh 127.0.0.1 "$(p "$i")" 3 || { echo "node $i never ready" >&2; exit 1; }
done
echo "test_scripts: 3 voters, all ready"
# The leader may be any of them: leave.sh hands leadership over when it must.
scripts/leave.sh 127.0.0.1 "$(p 1)" 127.0.0.1 "$(p 3)"
wait_for 30 scripts/ready.sh 127.0.0.1 "$(p 1)" 2
voters=$(redis-cli -p "$(p 1)" INFO raft | tr -d '\r' | sed -n 's/^raft_voters://p')
[ "$voters" = 2 ] || { echo "expected 2 voters, got $voters" >&2; exit 1; }
ok=$(redis-cli -c -p "$(p 2)" SET after-leave yes | tr -d '\r')
[ "$ok" = OK ] || { echo "write after leave: $ok" >&2; exit 1; }
echo "test_scripts: node 3 removed, 2 voters take writes"
