#!/usr/bin/env bash
# TLS figures (issue 18): a 3-node cluster measured three ways, in alternation (ROUNDS rounds,
# default 3; the median of each is printed): plaintext bus and clients; the bus on mutual TLS
# (--tls-cluster yes) with plaintext clients; bus and clients on TLS. redis-benchmark runs
# SET and GET at -c 50 against the leader. Certificates are made with openssl.
#
#   benches/tls_cluster.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${REQUESTS:-100000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rockraft/target}"
scripts/deps.sh
cargo build --release -p rockraft-server --bins
BIN="$CARGO_TARGET_DIR/release/rockraft-server"
WORK=$(mktemp -d /tmp/rockraft-tls.XXXXXX)
BASE=${BASE_PORT:-17201}
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# A CA and one node certificate (127.0.0.1, server and client authentication).
(
  cd "$WORK"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
    -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=node -keyout node.key -out node.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf
  openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out node.pem 2>/dev/null
)
TLS_FILES=(--tls-cert-file "$WORK/node.pem" --tls-key-file "$WORK/node.key"
  --tls-ca-cert-file "$WORK/ca.pem")
CLI_TLS=(--tls --cacert "$WORK/ca.pem" --cert "$WORK/node.pem" --key "$WORK/node.key")

# start MODE: 3 nodes, joined; MODE is plain or tls (bus on TLS, TLS ports beside the plain).
start() {
  local mode=$1 extra=()
  rm -rf "$WORK/data"
  for i in 0 1 2; do
    local port=$((BASE + i))
    if [ "$mode" = tls ]; then
      extra=(--tls-cluster yes --tls-port $((port + 100)) "${TLS_FILES[@]}")
    fi
    "$BIN" --port "$port" --data-dir "$WORK/data/$i" --metrics-addr off "${extra[@]}" \
      2>"$WORK/node$i.log" &
    PIDS+=($!)
  done
  for i in 0 1 2; do
    for _ in $(seq 100); do redis-cli -p $((BASE + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for i in 1 2; do
    local meet=$((BASE + i))
    [ "$mode" = tls ] && meet=$((meet + 100))
    redis-cli -p "$BASE" cluster meet 127.0.0.1 "$meet" >/dev/null
  done
  for _ in $(seq 300); do
    [ "$(redis-cli -p "$BASE" info raft | tr -d '\r' | sed -n 's/^raft_voters://p')" = 3 ] && break
    sleep 0.1
  done
}

# bench PORT [redis-cli TLS flags]: "SET/s GET/s"
bench() {
  local port=$1
  shift
  redis-benchmark -p "$port" "$@" -t set,get -n "$N" -c 50 -q 2>/dev/null | tr '\r' '\n' |
    awk '/^SET:/ {s=$2} /^GET:/ {g=$2} END {print s, g}'
}

: >"$WORK/results"
for r in $(seq "$ROUNDS"); do
  start plain
  echo "plain $(bench "$BASE")" | tee -a "$WORK/results"
  stop_all
  start tls
  echo "tlsbus $(bench "$BASE")" | tee -a "$WORK/results"
  echo "tlsall $(bench $((BASE + 100)) "${CLI_TLS[@]}")" | tee -a "$WORK/results"
  grep -h "bus_auth\|refused" "$WORK"/node*.log | head -3 || true
  stop_all
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "medians over $ROUNDS rounds (SET/s GET/s):"
for m in plain tlsbus tlsall; do
  echo "$m $(awk -v m=$m '$1==m {print $2}' "$WORK/results" | median) $(awk -v m=$m '$1==m {print $3}' "$WORK/results" | median)"
done
