#!/usr/bin/env python3
"""validate_files.py COMMAND: the checks of deploy/validate.sh that no linter does.

  render                 k8s/rockraft.yaml as generated from k8s/rockraft.yaml.in + scripts/
  structure              cross-file checks (ports, names, mounts, embedded scripts)
  source-metrics         a scrape-like list of the metric names the Rust sources export
  promql-rules           the dashboard's queries as a Prometheus rules file (for promtool)
  inline-scripts DIR     the shell snippets in k8s/ and compose.yaml, as DIR/*.sh
Run from deploy/.
"""
import json
import pathlib
import re
import sys

import yaml

SCRIPTS = ("join.sh", "leave.sh", "ready.sh")
ROOT = pathlib.Path("..")


def render():
    src = open("k8s/rockraft.yaml.in").read()
    for name in SCRIPTS:
        body = "".join("    " + l if l.strip() else "\n"
                       for l in open("scripts/" + name).read().splitlines(True))
        src = src.replace("@@%s@@\n" % name, body)
    return src


def k8s_docs():
    return {d["kind"] + "/" + d["metadata"]["name"]: d
            for d in yaml.safe_load_all(open("k8s/rockraft.yaml"))}


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else ": " + str(detail)))
    return ok


def structure():
    ok = True
    docs = k8s_docs()
    cm = docs["ConfigMap/rockraft-scripts"]["data"]
    for name in SCRIPTS:
        ok &= check(f"ConfigMap's {name} is scripts/{name}, byte for byte",
                    cm.get(name) == open("scripts/" + name).read(), "run validate.sh --write")

    sts = docs["StatefulSet/rockraft"]
    pod = sts["spec"]["template"]
    server = next(c for c in pod["spec"]["containers"] if c["name"] == "rockraft")
    exposed = re.search(r"^EXPOSE (.*)$", open("Dockerfile").read(), re.M).group(1).split()
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    ok &= check("container ports are the Dockerfile's EXPOSE (client, bus, metrics)",
                sorted(map(str, ports.values())) == sorted(exposed), (ports, exposed))
    ok &= check("bus = client + 10000, metrics = client + 20000 (the server's defaults)",
                ports["bus"] == ports["redis"] + 10000 and ports["metrics"] == ports["redis"] + 20000, ports)
    headless = docs["Service/rockraft-headless"]["spec"]
    ok &= check("StatefulSet's serviceName is the headless Service, which publishes unready pods",
                sts["spec"]["serviceName"] == "rockraft-headless" and headless["clusterIP"] == "None"
                and headless["publishNotReadyAddresses"] is True)
    labels = pod["metadata"]["labels"]
    for key, sel in [("Service/rockraft", docs["Service/rockraft"]["spec"]["selector"]),
                     ("Service/rockraft-headless", headless["selector"]),
                     ("PodDisruptionBudget/rockraft", docs["PodDisruptionBudget/rockraft"]["spec"]["selector"]["matchLabels"]),
                     ("StatefulSet selector", sts["spec"]["selector"]["matchLabels"])]:
        ok &= check(f"{key} selects the pods", sel.items() <= labels.items(), (sel, labels))
    env = {e["name"]: e.get("value") for e in server["env"]}
    ok &= check("advertised host is the pod's stable DNS name",
                env.get("ROCKRAFT_ADVERTISE_HOST") == "$(POD_NAME).rockraft-headless.$(POD_NAMESPACE).svc.cluster.local")
    ok &= check("no service links (they would set ROCKRAFT_PORT=tcp://...)",
                pod["spec"].get("enableServiceLinks") is False)
    ok &= check("a password is set (the image binds 0.0.0.0: protected mode)",
                "ROCKRAFT_REQUIREPASS" in env and "REDISCLI_AUTH" in env)
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    ok &= check("data volume at the image's data dir", "/var/lib/rockraft" in mounts, mounts)

    compose = yaml.safe_load(open("compose.yaml"))
    nodes = sorted(s for s in compose["services"] if s.startswith("node"))
    prom = yaml.safe_load(open("prometheus/prometheus.yml"))
    targets = sorted(t for j in prom["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"])
    ok &= check("Prometheus scrapes every compose node's metrics port",
                targets == [f"{n}:{ports['metrics']}" for n in nodes], targets)
    for n in nodes:
        s = compose["services"][n]
        ok &= check(f"{n} advertises its service name and has a volume of its own",
                    s["environment"].get("ROCKRAFT_ADVERTISE_HOST") == n
                    and s["volumes"] == [f"{n}-data:/var/lib/rockraft"], s)
    init = " ".join(compose["services"]["init"]["command"])
    ok &= check("init MEETs every other node into node1's cluster",
                all(f"join.sh {n}:6379 node1:6379" in init for n in nodes if n != "node1"), init)

    dash = json.load(open("grafana/rockraft.json"))
    ds = yaml.safe_load(open("grafana/provisioning/datasources/prometheus.yaml"))["datasources"][0]
    uids = {p["datasource"]["uid"] for p in dash["panels"]} | \
        {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]}
    ok &= check("dashboard's panels use the provisioned data source", uids == {ds["uid"]}, uids)
    ids = [p["id"] for p in dash["panels"]]
    ok &= check("panel ids unique, every query has a refId and an expression",
                len(ids) == len(set(ids)) and all(t.get("refId") and t.get("expr")
                                                  for p in dash["panels"] for t in p["targets"]))
    provider = yaml.safe_load(open("grafana/provisioning/dashboards/rockraft.yaml"))["providers"][0]
    mounted = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]]
    ok &= check("the dashboard file is mounted where the provider looks",
                f"{provider['options']['path']}/rockraft.json" in mounted, mounted)
    return ok


def source_metrics():
    """Every name the sources give to counter!/gauge!/histogram! (and telemetry's COUNTERS),
    as the exporter lists them: histograms (buckets are set) as _bucket, _sum and _count."""
    kinds = {}
    for f in list((ROOT / "server/src").rglob("*.rs")) + list((ROOT / "raftstore/src").rglob("*.rs")):
        text = f.read_text()
        for kind, name in re.findall(r"\b(counter|gauge|histogram)!\(\s*\"([a-z0-9_]+)\"", text):
            kinds[name] = kind
        for block in re.findall(r"const COUNTERS[^=]*=\s*\[(.*?)\];", text, re.S):
            for name in re.findall(r"\"([a-z0-9_]+)\"", block):
                kinds[name] = "counter"
    out = []
    for name, kind in sorted(kinds.items()):
        out += [name + s for s in ("_bucket", "_sum", "_count")] if kind == "histogram" else [name]
    return "".join(f"{n} 0\n" for n in out)


def promql_rules():
    dash = json.load(open("grafana/rockraft.json"))
    rules = [{"record": f"dashboard:panel{p['id']}:{t['refId']}",
              "expr": re.sub(r"\$__(rate_)?interval|\$__range", "1m", t["expr"])}
             for p in dash["panels"] for t in p["targets"]]
    return yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False)


def inline_scripts(out):
    out = pathlib.Path(out)
    snippets = []
    sts = k8s_docs()["StatefulSet/rockraft"]["spec"]["template"]["spec"]
    for c in sts["containers"]:
        for where, cmd in [("command", c.get("command")),
                           ("readiness", c.get("readinessProbe", {}).get("exec", {}).get("command"))]:
            if cmd and cmd[:2] == ["/bin/sh", "-c"]:
                snippets.append((f"k8s-{c['name']}-{where}", cmd[2]))
    init = yaml.safe_load(open("compose.yaml"))["services"]["init"]
    snippets.append(("compose-init", init["command"][0]))
    for name, body in snippets:
        (out / f"{name}.sh").write_text("#!/bin/sh\n" + body + "\n")
        print(out / f"{name}.sh")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "render":
        sys.stdout.write(render())
    elif cmd == "structure":
        sys.exit(0 if structure() else 1)
    elif cmd == "source-metrics":
        sys.stdout.write(source_metrics())
    elif cmd == "promql-rules":
        sys.stdout.write(promql_rules())
    elif cmd == "inline-scripts" and len(sys.argv) == 3:
        inline_scripts(sys.argv[2])
    else:
        sys.exit(__doc__)
