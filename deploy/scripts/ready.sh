#!/bin/sh
# ready.sh HOST PORT [MIN_VOTERS]
# Ready means: a voter of its raft group, with a leader known, in a group of at least
# MIN_VOTERS voters (default 1). A node still catching up as a learner is not ready.
set -eu
host=$1 port=$2 min=${3:-1}
info=$(redis-cli -h "$host" -p "$port" --no-auth-warning INFO raft 2>/dev/null | tr -d '\r')
field() { printf '%s\n' "$info" | sed -n "s/^$1://p"; }
[ "$(field raft_membership)" = voter ] || exit 1
leader=$(field raft_leader_id)
[ -n "$leader" ] && [ "$leader" != 0 ] || exit 1
[ "$(field raft_voters)" -ge "$min" ] || exit 1
