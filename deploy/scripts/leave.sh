#!/bin/sh
# leave.sh NODE SEED                   (each HOST:PORT, a client port)
# Removes NODE (its address as CLUSTER NODES lists it) from the cluster with CLUSTER FORGET,
# sent to SEED, another member (a follower forwards it to the leader). Run it before a node
# goes away for good: a cluster that merely lost the node would go on counting it as a voter,
# and one more failure could then cost the quorum. NODE need not be running. When NODE leads,
# SEED takes over first (CLUSTER FAILOVER): a leader is not asked to remove itself.
# Idempotent: done once SEED's cluster lists nothing at NODE's address.
# Retries for LEAVE_TIMEOUT seconds (120). A password, if any, comes from REDISCLI_AUTH.
set -eu
node=$1 seed=$2
end=$(($(date +%s) + ${LEAVE_TIMEOUT:-120}))
[ "$node" != "$seed" ] || { echo "leave: send FORGET through another member than $node" >&2; exit 2; }

call() { # SECONDS HOST:PORT COMMAND...
  t=$1 a=$2
  shift 2
  timeout "$t" redis-cli -h "${a%:*}" -p "${a##*:}" --no-auth-warning "$@" </dev/null 2>/dev/null | tr -d '\r'
}

while :; do
  nodes=$(call 5 "$seed" CLUSTER NODES)
  if [ -n "$nodes" ]; then
    id=$(printf '%s\n' "$nodes" | awk -v a="$node" '{ sub(/@.*/, "", $2) } $2 == a { print $1; exit }')
    [ -n "$id" ] || { echo "leave: $node is not a member of $seed's cluster"; exit 0; }
    reply=$(call 60 "$seed" CLUSTER FORGET "$id")
    case "$reply" in
      OK) echo "leave: $node ($id) forgotten"; continue ;;
      *"forget myself"*) echo "leave: $node leads; $seed takes over: $(call 10 "$seed" CLUSTER FAILOVER)" ;;
      *) echo "leave: FORGET $id via $seed: ${reply:-no answer}" >&2 ;;
    esac
  else
    echo "leave: no answer from $seed" >&2
  fi
  [ "$(date +%s)" -lt "$end" ] || { echo "leave: $node still a member after ${LEAVE_TIMEOUT:-120} s" >&2; exit 1; }
  sleep "${LEAVE_INTERVAL:-1}"
done
