#!/usr/bin/env bash
# Runs deploy/scripts (join, ready, leave) against three real rockraft-server processes on
# 127.0.0.1, locked with a password and a cluster secret as the StatefulSet runs them: a lone
# node is not taken for a seed, two nodes join (again harmlessly), all three become ready
# voters, a node that lost its data joins again under a new id (its old id forgotten), the
# leader leaves (handing over first), and the two left take writes. Bounded by TEST_TIMEOUT
# seconds (300).
# TEST_PORTS: three client ports then three bus ports (a test harness picks free ones);
# otherwise free ones in 30000-32767. Binaries: $CARGO_TARGET_DIR/release (default
# $HOME/.cache/rockraft/target/release).
set -euo pipefail
if [ -z "${TEST_SCRIPTS_TIMED:-}" ]; then
  TEST_SCRIPTS_TIMED=1 exec timeout -k 10 "${TEST_TIMEOUT:-300}" bash "$0" "$@"
fi
cd "$(dirname "$0")"
server=${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}/release/rockraft-server
[ -x "$server" ] || { echo "build rockraft-server first ($server)" >&2; exit 1; }

if [ -n "${TEST_PORTS:-}" ]; then
  read -r -a ports <<<"$TEST_PORTS"
else
  # Below 32768, where Linux's default range of ephemeral ports (outgoing connections)
  # starts, so none is taken between this check and the bind.
  in_use=$(ss -Htan | awk '{ sub(/.*:/, "", $4); print $4 }')
  while :; do
    base=$((30000 + RANDOM % 1700))
    ports=($((base + 1)) $((base + 2)) $((base + 3)) $((base + 1001)) $((base + 1002)) $((base + 1003)))
    clash=no
    for p in "${ports[@]}"; do grep -qx "$p" <<<"$in_use" && clash=yes; done
    [ "$clash" = no ] && break
  done
fi
addr() { echo "127.0.0.1:${ports[$(($1 - 1))]}"; }
cli() { local n=$1; shift; redis-cli -p "${ports[$((n - 1))]}" --no-auth-warning "$@" </dev/null | tr -d '\r'; }
info() { cli "$1" INFO raft | sed -n "s/^$2://p"; }

work=$(mktemp -d /tmp/rockraft-test-scripts.XXXXXX)
declare -A pid=()
export REDISCLI_AUTH=test-pass JOIN_TIMEOUT=60 LEAVE_TIMEOUT=60
start() {
  "$server" --port "${ports[$(($1 - 1))]}" --bus-port "${ports[$(($1 + 2))]}" --data-dir "$work/n$1" \
    --metrics-addr off --log-level warn --requirepass test-pass --cluster-secret test-secret \
    2>>"$work/n$1.log" &
  pid[$1]=$!
}
cleanup() {
  local rc=$?
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" != 0 ]; then tail -n 20 "$work"/n*.log >&2 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' TERM INT
wait_for() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do [ $SECONDS -lt "$deadline" ] || return 1; sleep 0.2; done
}
answers() { [ "$(cli "$1" PING 2>/dev/null)" = PONG ]; }
fail() { echo "test_scripts: FAIL: $*" >&2; exit 1; }
members_are() { [ "$(cli 1 CLUSTER NODES | grep -c .)" = "$1" ]; }
is() { [ "$(info "$1" "$2")" = "$3" ]; } # NODE FIELD VALUE

for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do wait_for 30 answers "$i" || fail "node $i does not answer"; done
# Every node starts as the one voter of its own cluster: ready for MIN_VOTERS 1, not for 2.
scripts/ready.sh "$(addr 1)" 1 || fail "a lone node is not ready for 1 voter"
! scripts/ready.sh "$(addr 2)" 2 || fail "an unjoined node is ready for 2 voters"
# With the first seed down, a lone node is no seed: no second cluster forms.
! JOIN_TIMEOUT=2 scripts/join.sh "$(addr 3)" 127.0.0.1:1 "$(addr 2)" 2>/dev/null || fail "joined a lone node"
is 3 raft_voters 1 || fail "node 3 joined a lone node"
scripts/join.sh "$(addr 1)" "$(addr 1)" # the first seed: nothing to do
scripts/join.sh "$(addr 2)" "$(addr 1)"
# A second seed is used only as a member of a formed cluster: node 2 now is.
scripts/join.sh "$(addr 3)" 127.0.0.1:1 "$(addr 2)"
scripts/join.sh "$(addr 3)" "$(addr 1)" | grep -q 'is a member' || fail "a second join was not a no-op"
for i in 1 2 3; do
  wait_for 60 scripts/ready.sh "$(addr "$i")" 3 || fail "node $i never ready"
  is "$i" raft_membership voter || fail "node $i is not a voter"
  is "$i" raft_voters 3 || fail "node $i sees $(info "$i" raft_voters) voters, not 3"
done
echo "test_scripts: 3 voters, all ready"

# Node 2 loses its data and comes back under a new id: it joins again, its old id is forgotten.
old=$(cli 2 CLUSTER MYID)
kill -9 "${pid[2]}"
wait "${pid[2]}" 2>/dev/null || true
rm -rf "$work/n2"
start 2
wait_for 30 answers 2 || fail "node 2 does not answer after restart"
scripts/join.sh "$(addr 2)" "$(addr 1)"
[ "$(cli 2 CLUSTER MYID)" != "$old" ] || fail "node 2 kept its id"
wait_for 60 scripts/ready.sh "$(addr 2)" 3 || fail "node 2 never ready again"
wait_for 30 members_are 3 || fail "old id of node 2 still listed: $(cli 1 CLUSTER NODES)"
echo "test_scripts: node 2 rejoined with an empty data directory, old id forgotten"

# Node 3 leads, then leaves: leave.sh hands leadership over first.
cli 3 CLUSTER FAILOVER >/dev/null
wait_for 20 is 3 raft_role leader || fail "node 3 did not take over"
scripts/leave.sh "$(addr 3)" "$(addr 1)"
scripts/leave.sh "$(addr 3)" "$(addr 1)" | grep -q 'not a member' || fail "a second leave was not a no-op"
for i in 1 2; do
  wait_for 30 scripts/ready.sh "$(addr "$i")" 2 || fail "node $i not ready after the leave"
  is "$i" raft_voters 2 || fail "node $i sees $(info "$i" raft_voters) voters"
done
! cli 1 CLUSTER NODES | grep -q ":${ports[2]}@" || fail "node 3 still listed"
[ "$(redis-cli -c -p "${ports[1]}" --no-auth-warning SET after-leave yes </dev/null)" = OK ] || fail "write after leave"
[ "$(redis-cli -c -p "${ports[0]}" --no-auth-warning GET after-leave </dev/null)" = yes ] || fail "read after leave"
echo "test_scripts: node 3 removed, 2 voters take writes"
