#!/bin/sh
# scale-down.sh REPLICAS [NAMESPACE]
# Removes the StatefulSet's highest pods from the raft cluster, one at a time (leave.sh:
# CLUSTER FORGET through pod 0, which takes over first if a pod leaving leads), and only then
# scales the StatefulSet down. Scaling alone would leave the deleted pods counted as voters:
# 5 -> 3 that way leaves 3 of 5 voters, and one more failure costs the quorum.
# Their volumes are deleted with them (persistentVolumeClaimRetentionPolicy), so a later
# scale-up starts those ordinals empty, as a node that was forgotten must.
set -eu
want=$1 ns=${2:-default}
[ "$want" -ge 1 ] || { echo "scale-down: keep at least one pod" >&2; exit 2; }
now=$(kubectl -n "$ns" get statefulset rockraft -o jsonpath='{.spec.replicas}')
svc=rockraft-headless.$ns.svc.cluster.local
i=$((now - 1))
while [ "$i" -ge "$want" ]; do
  kubectl -n "$ns" exec rockraft-0 -c rockraft -- \
    /scripts/leave.sh "rockraft-$i.$svc:6379" "rockraft-0.$svc:6379"
  i=$((i - 1))
done
kubectl -n "$ns" scale statefulset rockraft --replicas="$want"
