#!/bin/sh
# ready.sh NODE [MIN_VOTERS]           (NODE is HOST:PORT, a client port)
# Exits 0 when NODE is a voter (INFO raft: raft_membership:voter), knows a leader, and its
# cluster has at least MIN_VOTERS voters (1). A learner still catching up is not ready; nor,
# with MIN_VOTERS 2, is a node that has not joined yet (every node starts as the only voter
# of its own one-node cluster). A password, if any, comes from REDISCLI_AUTH.
set -eu
node=$1 min=${2:-1}
info=$(timeout 5 redis-cli -h "${node%:*}" -p "${node##*:}" --no-auth-warning INFO raft </dev/null 2>/dev/null | tr -d '\r')
field() { printf '%s\n' "$info" | sed -n "s/^$1://p"; }
[ "$(field raft_membership)" = voter ] || exit 1
# Node ids are random 64-bit numbers, too big for sh arithmetic: compare as text.
case "$(field raft_leader_id)" in '' | 0) exit 1 ;; esac
[ "$(field raft_voters)" -ge "$min" ] 2>/dev/null || exit 1
