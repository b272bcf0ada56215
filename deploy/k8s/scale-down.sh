#!/bin/sh
# scale-down.sh REPLICAS [NAMESPACE]
# Removes the StatefulSet's highest pods from the raft cluster (CLUSTER FORGET, through pod 0)
# and only then scales the StatefulSet down, so the cluster never counts a deleted pod as a
# voter. The REPLICAS left must keep a quorum of the voters (3 -> 2 is fine; 3 -> 1 first
# removes two voters one at a time).
set -eu
want=$1 ns=${2:-default}
now=$(kubectl -n "$ns" get statefulset rockraft -o jsonpath='{.spec.replicas}')
svc=rockraft-headless.$ns.svc.cluster.local
i=$((now - 1))
while [ "$i" -ge "$want" ]; do
  kubectl -n "$ns" exec rockraft-0 -- /scripts/leave.sh \
    "rockraft-0.$svc" 6379 "rockraft-$i.$svc" 6379
  i=$((i - 1))
done
kubectl -n "$ns" scale statefulset rockraft --replicas="$want"
