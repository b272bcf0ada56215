#!/bin/sh
# join.sh SEED_HOST SEED_PORT SELF_HOST SELF_PORT
# Brings the node at SELF into the cluster that SEED belongs to: CLUSTER MEET, sent to the
# seed (a follower forwards it to the leader). Safe to run again: a node already in the
# cluster is left as it is (MEET is idempotent), so it can run at every container start.
# A password, if any, comes from REDISCLI_AUTH, as redis-cli reads it.
set -eu
seed_host=$1 seed_port=$2 self_host=$3 self_port=$4
tries=${JOIN_TRIES:-60}

call() { h=$1 p=$2; shift 2; redis-cli -h "$h" -p "$p" --no-auth-warning "$@" 2>/dev/null | tr -d '\r'; }

# The seed itself needs no joining.
if [ "$seed_host:$seed_port" = "$self_host:$self_port" ]; then
  exit 0
fi
i=0
while [ "$i" -lt "$tries" ]; do
  i=$((i + 1))
  # Already a member of a cluster of more than one node: nothing to do.
  voters=$(call "$self_host" "$self_port" INFO raft | sed -n 's/^raft_voters://p')
  learners=$(call "$self_host" "$self_port" INFO raft | sed -n 's/^raft_learners://p')
  if [ -n "$voters" ] && [ $((voters + ${learners:-0})) -gt 1 ]; then
    echo "join: $self_host:$self_port is already in a cluster of $((voters + ${learners:-0})) nodes"
    exit 0
  fi
  reply=$(call "$seed_host" "$seed_port" CLUSTER MEET "$self_host" "$self_port" || true)
  if [ "$reply" = "OK" ]; then
    echo "join: $self_host:$self_port met by $seed_host:$seed_port"
    exit 0
  fi
  echo "join: attempt $i: ${reply:-no answer from $seed_host:$seed_port}" >&2
  sleep "${JOIN_INTERVAL:-2}"
done
echo "join: $self_host:$self_port could not join $seed_host:$seed_port" >&2
exit 1
