#!/bin/sh
# leave.sh SEED_HOST SEED_PORT NODE_HOST NODE_PORT
# Removes the node at NODE from the cluster before it goes away (scaling down): its id, then
# CLUSTER FORGET sent to the seed (forwarded to the leader). Removing a node first keeps the
# quorum right: a cluster that only lost the pod would still count it as a voter.
set -eu
seed_host=$1 seed_port=$2 node_host=$3 node_port=$4
call() { h=$1 p=$2; shift 2; redis-cli -h "$h" -p "$p" --no-auth-warning "$@" 2>/dev/null | tr -d '\r'; }

id=$(call "$node_host" "$node_port" CLUSTER MYID)
if [ -z "$id" ]; then
  echo "leave: no answer from $node_host:$node_port" >&2
  exit 1
fi
i=0
while [ "$i" -lt "${LEAVE_TRIES:-30}" ]; do
  i=$((i + 1))
  reply=$(call "$seed_host" "$seed_port" CLUSTER FORGET "$id" || true)
  case "$reply" in
    OK) echo "leave: $node_host:$node_port ($id) removed"; exit 0 ;;
    *"Unknown node"*) echo "leave: $node_host:$node_port ($id) is not a member"; exit 0 ;;
    # The node leaving leads: the seed takes over first (a leader does not remove itself).
    *"forget myself"*) call "$seed_host" "$seed_port" CLUSTER FAILOVER >/dev/null || true ;;
    *) echo "leave: attempt $i: FORGET $id: ${reply:-no answer}" >&2 ;;
  esac
  sleep "${LEAVE_INTERVAL:-1}"
done
echo "leave: could not remove $node_host:$node_port" >&2
exit 1
