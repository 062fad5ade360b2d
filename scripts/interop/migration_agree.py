#!/usr/bin/env python3
"""/metrics and /api/migration tell the same story, as scripts/interop.sh's check_dashboard
runs it after its scripted mix of SOAP calls.

    migration_agree.py METRICS_BEFORE METRICS_AFTER API_JSON EXPECTED_JSON

EXPECTED_JSON: {"TYPE:CODE": {"calls": N, "faults": {"CODE": N, ...},
                "operations": {"Service/Operation": N}}, ...}: what the mix sent (the faults as
the converter answered them).

Checks, for every organisation in either:
  - its calls, faults, faults by code and calls per operation in /api/migration equal the sums
    of vos_converter_soap_calls_total over its labels (the usage counts all days shown, the
    metrics since start: the converter started with a fresh data directory today);
  - callsPerDay adds up to each operation's total, today's Danish date is the last day;
  - vos_converter_past_cutover, where the converter has set it, equals pastCutover;
and overall:
  - overhead.samples equals the number of calls (and the histograms' counts);
  - overhead p50/p99 lie in the vos_converter_converter_own_seconds buckets that hold those
    ranks of the same calls;
  - the mix's own calls are the difference between the two /metrics texts, per organisation,
    fault code and operation.
Exit 1 with every disagreement listed.
"""

import datetime
import json
import re
import sys
from collections import defaultdict
from zoneinfo import ZoneInfo

before_path, after_path, api_path, expected_path = sys.argv[1:5]
problems = []


def check(ok, msg):
    print(f"  {'ok' if ok else 'FAIL'}: {msg}")
    if not ok:
        problems.append(msg)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if not m:
                continue
            labels = dict(LABEL.findall(m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def calls_by_org(samples):
    """TYPE:CODE -> {"calls", "faults", "codes": {code: n}, "ops": {svc/op: n}}"""
    orgs = defaultdict(lambda: {"calls": 0, "faults": 0, "codes": defaultdict(int), "ops": defaultdict(int)})
    for name, labels, value in samples:
        if name != "vos_converter_soap_calls_total":
            continue
        o = orgs[f"{labels['organisation_type']}:{labels['organisation_code']}"]
        n = int(value)
        o["calls"] += n
        o["ops"][f"{labels['service']}/{labels['operation']}"] += n
        if labels.get("outcome") == "fault":
            o["faults"] += n
            o["codes"][labels.get("fault_code", "")] += n
    return orgs


before = calls_by_org(parse(before_path))
after_samples = parse(after_path)
after = calls_by_org(after_samples)
with open(api_path, encoding="utf-8") as f:
    api = json.load(f)
with open(expected_path, encoding="utf-8") as f:
    expected = json.load(f)

api_orgs = {f"{o['organisationType']}:{o['organisationCode']}": o for o in api["organisations"]}
# generatedAt: RFC 3339 in UTC with up to nine fraction digits (Python takes six).
generated = re.sub(r"(\.\d{6})\d*", r"\1", api["generatedAt"]).replace("Z", "+00:00")
today = datetime.datetime.fromisoformat(generated).astimezone(ZoneInfo("Europe/Copenhagen")).date().isoformat()
check(api["days"][-1] == today,
      f"/api/migration's days end on its generatedAt's date in Copenhagen ({api['days'][-1]})")

# Per organisation: the same numbers on both sides.
for key in sorted(set(after) | {k for k, o in api_orgs.items() if o["calls"] > 0}):
    m = after.get(key)
    a = api_orgs.get(key)
    if m is None or a is None:
        check(False, f"{key} is in {'/api/migration' if m is None else '/metrics'} only")
        continue
    api_ops = {f"{op['service']}/{op['operation']}": op["total"] for op in a["operations"]}
    api_codes = {str(f["code"]): f["count"] for f in a["faultsByCode"]}
    same = (a["calls"] == m["calls"] and a["faults"] == m["faults"] and api_codes == dict(m["codes"])
            and api_ops == dict(m["ops"]))
    m_ops, m_codes = dict(m["ops"]), dict(m["codes"])
    ops_word = "agree" if api_ops == m_ops else f"differ: {api_ops} vs {m_ops}"
    check(same, f"{key}: /api/migration {a['calls']} calls, {a['faults']} faults {api_codes}; "
          f"/metrics {m['calls']} calls, {m['faults']} faults {m_codes}; operations {ops_word}")
    for op in a["operations"]:
        if sum(op["callsPerDay"]) != op["total"] or len(op["callsPerDay"]) != len(api["days"]):
            check(False, f"{key} {op['operation']}: callsPerDay {op['callsPerDay']} does not add up to {op['total']}")
    rate = a["faults"] / a["calls"] if a["calls"] else 0.0
    if abs(a["faultRate"] - rate) > 1e-9:
        check(False, f"{key}: faultRate {a['faultRate']} is not faults/calls ({rate})")

# The cutover gauge, where the converter has set it.
gauges = {f"{l['organisation_type']}:{l['organisation_code']}": v
          for n, l, v in after_samples if n == "vos_converter_past_cutover"}
for key, v in sorted(gauges.items()):
    a = api_orgs.get(key)
    if a is None:
        check(False, f"vos_converter_past_cutover{{{key}}} = {v:g}, but {key} is not in /api/migration")
    else:
        check(bool(v) == a["pastCutover"],
              f"{key}: vos_converter_past_cutover {v:g}, pastCutover {a['pastCutover']} "
              f"({a['daysToCutover']} days to {a['cutover']})")

# Overhead: the same calls as the histograms.
total_calls = sum(o["calls"] for o in after.values())
hist_counts = {
    fam: int(sum(v for n, _, v in after_samples if n == f"vos_converter_{fam}_count"))
    for fam in ("soap_call_seconds", "converter_own_seconds")
}
oh = api["overhead"]
if total_calls < 4096:
    check(oh["samples"] == total_calls == hist_counts["soap_call_seconds"] == hist_counts["converter_own_seconds"],
          f"overhead over {oh['samples']} calls; {total_calls} calls counted, histogram counts {hist_counts}")
check(0 < oh["p50Micros"] <= oh["p99Micros"], f"overhead p50 {oh['p50Micros']} µs <= p99 {oh['p99Micros']} µs")
buckets = defaultdict(float)
for n, l, v in after_samples:
    if n == "vos_converter_converter_own_seconds_bucket":
        buckets[float(l["le"])] += v
bounds = sorted(buckets)
for name, p in (("p50", 0.5), ("p99", 0.99)):
    micros = oh[f"{name}Micros"]
    rank = round((oh["samples"] - 1) * p)  # usage.rs: nearest rank over the sorted samples
    upper = next((b for b in bounds if buckets[b] > rank), float("inf"))
    lower = max([b for b in bounds if b < upper], default=0.0)
    # own_micros truncates to whole µs; the histogram observes the exact seconds.
    check(lower * 1e6 - 1 <= micros <= upper * 1e6,
          f"overhead {name} {micros} µs lies in the own-time histogram's bucket ({lower * 1e6:g}, {upper * 1e6:g}] µs")

# The scripted mix: exactly its calls were added.
for key, exp in sorted(expected.items()):
    b = before.get(key, {"calls": 0, "faults": 0, "codes": {}, "ops": {}})
    a = after.get(key, {"calls": 0, "faults": 0, "codes": {}, "ops": {}})
    d_calls = a["calls"] - b["calls"]
    d_codes = {c: a["codes"].get(c, 0) - b["codes"].get(c, 0) for c in set(a["codes"]) | set(b["codes"])}
    d_codes = {c: n for c, n in d_codes.items() if n}
    d_ops = {o: a["ops"].get(o, 0) - b["ops"].get(o, 0) for o in set(a["ops"]) | set(b["ops"])}
    d_ops = {o: n for o, n in d_ops.items() if n}
    check(d_calls == exp["calls"] and d_codes == exp["faults"] and d_ops == exp["operations"],
          f"{key}: the mix sent {exp['calls']} calls {exp['operations']}, faults {exp['faults']}; "
          f"/metrics grew by {d_calls} {d_ops}, faults {d_codes}")

if problems:
    print(f"migration agreement: {len(problems)} disagreements")
    sys.exit(1)
print("migration agreement: /metrics and /api/migration agree")
