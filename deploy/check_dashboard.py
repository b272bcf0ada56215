#!/usr/bin/env python3
"""check_dashboard.py DASHBOARD.json SCRAPE.txt

Every metric a dashboard query names must be one the server exports: each name in each
panel's PromQL is looked up in a /metrics scrape of a live node. Exits 1 listing any missing.
"""
import json
import re
import sys

FUNCS = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "instance", "cmd"}


def names(expr):
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
    return {n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if n not in FUNCS}


def main():
    dash = json.load(open(sys.argv[1]))
    scrape = open(sys.argv[2]).read()
    exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", scrape, re.M))
    wanted = {}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            for n in names(t["expr"]):
                wanted.setdefault(n, p["title"])
    missing = sorted(n for n in wanted if n not in exported)
    for n in missing:
        print(f"missing: {n} (panel {wanted[n]!r})")
    print(f"{len(wanted)} metric names in {len(dash['panels'])} panels, {len(missing)} missing")
    return 1 if missing or not wanted else 0


if __name__ == "__main__":
    sys.exit(main())
