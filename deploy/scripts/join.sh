#!/bin/sh
# join.sh SELF SEED [SEED...]          (each HOST:PORT, a client port)
# Brings the node at SELF into the cluster of the first SEED with CLUSTER MEET, sent to a seed
# (a follower forwards it to the leader). A later seed (any member, e.g. a Service in front of
# the ready ones) takes the MEET only if it is a voter of a cluster of two or more, so nodes
# that find the first seed down never form a second cluster among themselves.
# Idempotent: nothing is sent when a seed's cluster already lists SELF's id, so it can run at
# every start. An older entry at SELF's address (the node came back without its data, so under
# a new id) is forgotten before the MEET: the dead id would go on counting toward the quorum,
# and raft traffic for it would reach the new node at that address.
# Retries for JOIN_TIMEOUT seconds (120). A password, if any, comes from REDISCLI_AUTH.
set -eu
self=$1
shift
end=$(($(date +%s) + ${JOIN_TIMEOUT:-120}))

# call SECONDS HOST:PORT COMMAND...: the reply, or nothing if the node does not answer in time.
call() {
  t=$1 a=$2
  shift 2
  timeout "$t" redis-cli -h "${a%:*}" -p "${a##*:}" --no-auth-warning "$@" </dev/null 2>/dev/null | tr -d '\r'
}

# One round over the seeds: 0 done, 1 try again, 2 give up.
attempt() {
  me=$(call 5 "$self" CLUSTER MYID)
  [ -n "$me" ] || { echo "join: $self does not answer yet" >&2; return 1; }
  [ "$self" != "$1" ] || { echo "join: $self is the first seed: it founds the cluster"; return 0; }
  first=$1
  for seed; do
    [ "$seed" != "$self" ] || continue
    nodes=$(call 5 "$seed" CLUSTER NODES)
    [ -n "$nodes" ] || { echo "join: no answer from $seed" >&2; continue; }
    case "$nodes" in
      *"$me "*) echo "join: $self ($me) is a member (asked $seed)"; return 0 ;;
    esac
    if [ "$seed" != "$first" ]; then
      voters=$(call 5 "$seed" INFO raft | sed -n 's/^raft_voters://p')
      [ "${voters:-0}" -ge 2 ] || { echo "join: $seed is not in a formed cluster" >&2; continue; }
    fi
    stale=$(printf '%s\n' "$nodes" | awk -v a="$self" -v me="$me" '{ sub(/@.*/, "", $2) } $2 == a && $1 != me { print $1 }')
    for id in $stale; do
      reply=$(call 60 "$seed" CLUSTER FORGET "$id")
      echo "join: forgetting $id, an older node at $self: ${reply:-no answer}"
      [ "$reply" = OK ] || return 1
    done
    # MEET names SELF's client port; it may wait behind another membership change.
    reply=$(call 60 "$seed" CLUSTER MEET "${self%:*}" "${self##*:}")
    case "$reply" in
      OK) echo "join: $self ($me) met by $seed"; return 0 ;;
      *"not empty"*) echo "join: $self cannot join (empty its data directory first): $reply" >&2; return 2 ;;
      *) echo "join: MEET $self via $seed: ${reply:-no answer}" >&2 ;;
    esac
  done
  return 1
}

while :; do
  rc=0
  attempt "$@" || rc=$?
  [ "$rc" -eq 1 ] || exit "$rc"
  [ "$(date +%s)" -lt "$end" ] || { echo "join: $self did not join within ${JOIN_TIMEOUT:-120} s" >&2; exit 1; }
  sleep "${JOIN_INTERVAL:-2}"
done
