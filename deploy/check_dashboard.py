#!/usr/bin/env python3
"""check_dashboard.py DASHBOARD.json SCRAPE.txt

Every metric a Grafana dashboard's queries name must be one the server exports: each metric
name in each PromQL query (panels, panels inside rows, template variables) is looked up among
the sample names of SCRAPE.txt, a /metrics scrape in Prometheus' text format. A histogram is
looked up by the series the query names (X_bucket, X_sum, X_count), as the scrape lists them.
Exits 1 listing the names that are missing (or when no query names any metric).
"""
import json
import re
import sys

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# PromQL words that are not metric names (functions are told apart by the "(" after them).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "atan2", "inf", "nan"}
# Clauses whose parentheses hold label names.
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr):
    # Label matchers, ranges and subqueries, strings, Grafana variables, then label lists.
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)
    expr = LABEL_LISTS.sub(" ", expr)
    names = set()
    for m in IDENT.finditer(expr):
        name, rest = m.group(), expr[m.end():].lstrip()
        after_digit = m.start() > 0 and (expr[m.start() - 1].isdigit() or expr[m.start() - 1] == ".")
        if name.lower() in KEYWORDS or rest.startswith("(") or after_digit:  # 1e3, offset 5m
            continue
        names.add(name)
    return names


def queries(dashboard):
    """(where, PromQL) for every query of the dashboard."""
    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    yield f"panel {p.get('title')!r}", t["expr"]
            yield from walk(p.get("panels", []))
    yield from walk(dashboard.get("panels", []))
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") != "query" or not q:
            continue
        # label_values(metric, label) and query_result(expr) hold a query; label_values(label)
        # names a label only.
        m = re.fullmatch(r"label_values\((.*),\s*\w+\s*\)|query_result\((.*)\)", q.strip())
        if m:
            yield f"variable {v.get('name')!r}", m.group(1) or m.group(2)
        elif not q.strip().startswith("label_values("):
            yield f"variable {v.get('name')!r}", q


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        dashboard = json.load(f)
    with open(argv[2]) as f:
        exported = {m.group(1) for m in re.finditer(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ \t]", f.read(), re.M)}
    wanted = {}
    for where, expr in queries(dashboard):
        for name in metric_names(expr):
            wanted.setdefault(name, where)
    missing = sorted(n for n in wanted if n not in exported)
    for n in missing:
        print(f"missing: {n} ({wanted[n]})")
    print(f"{len(wanted)} metric names in the dashboard's queries, {len(missing)} missing from {argv[2]}")
    return 1 if missing or not wanted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
