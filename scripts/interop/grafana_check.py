#!/usr/bin/env python3
"""Checks deploy/grafana/vos-converter.json, as scripts/interop.sh's check_dashboard runs it.

    grafana_check.py DASHBOARD.json METRICS.txt METRICS_RS

- It is JSON in the shape Grafana's dashboard import takes: a dashboard object (title, uid,
  schemaVersion, no numeric id) with panels, each with a unique id, a type and a gridPos; every
  query panel names the Prometheus datasource variable and has targets with a refId and a
  PromQL expr; the templating list has a datasource variable of type prometheus.
- Every metric an expr names is one the converter exposes: a family in the /metrics text taken
  after traffic (METRICS.txt), or one src/observe/metrics.rs registers (a counter or histogram
  that has not been touched yet has no samples), with the exposition's suffixes.
- Every expr, with Grafana's variables replaced by plain values, parses as PromQL (the PyPI
  package promql-parser, Python bindings of a Rust PromQL parser).
Exit 1 with every problem listed.
"""

import json
import re
import sys

import promql_parser

dashboard_path, metrics_path, metrics_rs = sys.argv[1:4]
problems = []


def problem(msg):
    problems.append(msg)
    print(f"  FAIL: {msg}")


with open(dashboard_path, encoding="utf-8") as f:
    try:
        d = json.load(f)
    except json.JSONDecodeError as e:
        print(f"  FAIL: {dashboard_path} is not JSON: {e}")
        sys.exit(1)

# The dashboard object itself (the import UI and provisioning take it as is; the HTTP API
# wraps it as {"dashboard": ...}).
if "dashboard" in d and "panels" not in d:
    d = d["dashboard"]
for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list),
                  ("templating", dict), ("time", dict)):
    if not isinstance(d.get(key), kind):
        problem(f"dashboard.{key} missing or not a {kind.__name__}")
if d.get("id") not in (None,):
    problem("dashboard.id must be null (import assigns one)")
if not 36 <= d.get("schemaVersion", 0) <= 41:
    problem(f"schemaVersion {d.get('schemaVersion')} is not a current Grafana 10/11 one")
if len(d.get("uid", "")) > 40:
    problem("uid longer than 40 characters")

variables = d.get("templating", {}).get("list", [])
ds_vars = [v for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"]
if not ds_vars:
    problem("no Prometheus datasource variable in templating.list")
ds_ref = "${%s}" % ds_vars[0]["name"] if ds_vars else None

# Metric families the converter has: the /metrics text after traffic, and the registrations.
with open(metrics_path, encoding="utf-8") as f:
    exposed = set(re.findall(r"^# TYPE (\S+) (\w+)", f.read(), re.M))
with open(metrics_rs, encoding="utf-8") as f:
    rs = f.read()
prefix = re.search(r'Registry::with_prefix\("([^"]+)"\)', rs)
prefix = prefix.group(1) if prefix else "vos_converter"
registered = {f"{prefix}_{name}" for name in re.findall(r'registry\.register\(\s*"([^"]+)"', rs, re.S)}
families = {name for name, _ in exposed} | registered
samples = set()
for fam in families:
    samples |= {fam, f"{fam}_total", f"{fam}_bucket", f"{fam}_count", f"{fam}_sum", f"{fam}_created"}
print(f"  {len(registered)} families registered in metrics.rs, {len(exposed)} in /metrics now")

exprs = []
ids = set()
panels = list(d.get("panels", []))
for p in list(panels):
    panels.extend(p.get("panels", []))  # panels inside collapsed rows
for p in panels:
    pid, ptype, title = p.get("id"), p.get("type"), p.get("title", "?")
    if not isinstance(pid, int) or pid in ids:
        problem(f"panel {title!r}: id {pid!r} missing or repeated")
    ids.add(pid)
    if not isinstance(ptype, str):
        problem(f"panel {title!r}: no type")
    gp = p.get("gridPos", {})
    if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")) or gp.get("x", 0) + gp.get("w", 0) > 24:
        problem(f"panel {title!r}: gridPos {gp} is not h/w/x/y within 24 columns")
    if ptype == "row":
        continue
    targets = p.get("targets")
    if not targets:
        problem(f"panel {title!r}: no targets")
        continue
    if (p.get("datasource") or {}).get("uid") != ds_ref:
        problem(f"panel {title!r}: datasource is not {ds_ref}")
    refs = set()
    for t in targets:
        expr, ref = t.get("expr"), t.get("refId")
        if not isinstance(expr, str) or not expr.strip():
            problem(f"panel {title!r}: a target without expr")
            continue
        if not ref or ref in refs:
            problem(f"panel {title!r}: refId {ref!r} missing or repeated")
        refs.add(ref)
        if (t.get("datasource") or {}).get("uid") != ds_ref:
            problem(f"panel {title!r} [{ref}]: datasource is not {ds_ref}")
        if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
            problem(f"panel {title!r} [{ref}]: unbalanced brackets")
        names = set(re.findall(r"\b(vos_converter_[a-z_]+)\b", expr))
        if not names:
            problem(f"panel {title!r} [{ref}]: names no vos_converter_ metric")
        for n in names - samples:
            problem(f"panel {title!r} [{ref}]: {n} is not a metric the converter exposes")
        exprs.append((title, ref, expr))

for v in variables:
    if v.get("type") == "query":
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        for n in set(re.findall(r"\b(vos_converter_[a-z_]+)\b", q or "")) - samples:
            problem(f"variable {v.get('name')}: {n} is not a metric the converter exposes")

print(f"  {len(panels)} panels, {len(exprs)} queries over "
      f"{len({n for _, _, e in exprs for n in re.findall(r'vos_converter_[a-z_]+', e)})} series names")


def plain(expr):
    """Grafana's variables as values Prometheus can parse."""
    return (expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
            .replace("$__interval", "1m").replace("$organisation_type", ".*")
            .replace("$organisation_code", ".*"))


for title, ref, expr in exprs:
    try:
        promql_parser.parse(plain(expr))
    except Exception as e:  # the parser raises ValueError subclasses with the position
        problem(f"panel {title!r} [{ref}]: not PromQL: {e}")
for v in variables:
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = re.fullmatch(r"label_values\((.+), *(\w+)\)", q or "") if v.get("type") == "query" else None
    if v.get("type") == "query" and not m:
        problem(f"variable {v.get('name')}: {q!r} is not label_values(SELECTOR, LABEL)")
    elif m:
        try:
            promql_parser.parse(plain(m.group(1)))
        except Exception as e:
            problem(f"variable {v.get('name')}: selector not PromQL: {e}")
print(f"  {len(exprs)} queries parse as PromQL")

if problems:
    print(f"grafana check: {len(problems)} problems")
    sys.exit(1)
print("grafana check: importable dashboard JSON, PromQL that parses, only metrics the converter exposes")
