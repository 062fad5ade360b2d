#!/usr/bin/env python3
"""Turns scripts/bench.sh's raw measurements into the table it prints and the JSON it keeps.

    summarize.py load RAW.jsonl ENV.json OUT.json
    summarize.py tls RAW.jsonl ENV.json OUT.json
    summarize.py callgrind RAW.txt N OUTDIR
    summarize.py micro CRITERION.txt OUT.json
    summarize.py scale RAW.jsonl ENV.json SIZES.jsonl OUT.json

Ratios are SOAP via the converter / REST called directly, computed within each run (the two
measurements of a pair run back to back) and then the median over the runs. tls: the same,
plus the reconnects (a new connection per request, TLS session resumption on and off) against
the keep-alive measurement of the same kind and run. scale: per history length N, the SOAP
history read against the two REST history reads one after the other (their p50s added up,
as read/both), the converter's CPU per call and per history item, and its peak RSS under
256 connections on the largest N; the table is markdown. Standard library only.
"""

import json
import re
import statistics
import sys
from collections import defaultdict

# The issue's targets.
TARGET_LATENCY_RATIO = 1.15
TARGET_P99_ADDED_MS = 1.0
TARGET_CPU_US = 40.0
TARGET_RSS_MIB = 64.0

PAIRS = [
    # name, SOAP kind, REST kind, what it means
    ("read/kontaktgrupper", "soap_read", "rest_kontaktgrupper",
     "GetVariablePersonStatus via the converter (2 concurrent REST reads) / GET kontaktgrupper?kunAktuelle=true direct (1 read)"),
    ("read/status", "soap_read", "rest_status",
     "GetVariablePersonStatus via the converter / GET status direct (1 call returning both collections)"),
    ("read/personkategorier", "soap_read", "rest_personkategorier",
     "GetVariablePersonStatus via the converter / GET personkategorier?kunAktuelle=true direct (1 read)"),
    ("read/both", "soap_read", ("rest_kontaktgrupper", "rest_personkategorier"),
     "GetVariablePersonStatus via the converter / the same two REST reads made directly one after "
     "the other (derived: each REST read's p50 and mean added up; the mean of a sequence is the sum "
     "of the means, its p50 only about the sum; no p99)"),
    ("create", "soap_create", "rest_create",
     "CreateContactGroup via the converter (cached code list + POST) / POST kontaktgrupper direct"),
]
TARGET_PAIRS = ("read/kontaktgrupper", "read/status", "read/both", "create")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return [min(xs), max(xs)] if xs else None


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def load(raw_path, env_path, out_path):
    env = json.load(open(env_path))
    recs = [json.loads(line) for line in open(raw_path) if line.strip()]
    by = {}
    for r in recs:
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        cpu_s = r["converter_cpu_ticks"] / r["clk_tck"]
        r["converter_cpu_us_per_req"] = cpu_s / r["requests"] * 1e6 if r["side"] == "soap" else None
        soap = r["side"] == "soap" and "converter_user_ticks" in r
        r["converter_user_us_per_req"] = (r["converter_user_ticks"] / r["clk_tck"] / r["requests"] * 1e6) if soap else None
        r["converter_sys_us_per_req"] = (r["converter_sys_ticks"] / r["clk_tck"] / r["requests"] * 1e6) if soap else None
        r["backend_cpu_us_per_req"] = r["backend_cpu_ticks"] / r["clk_tck"] / r["requests"] * 1e6
        s0, c0 = (float(x) for x in r["own_before"].split())
        s1, c1 = (float(x) for x in r["own_after"].split())
        r["own_mean_us"] = (s1 - s0) / (c1 - c0) * 1e6 if r["side"] == "soap" and c1 > c0 else None
        # The converter's CPU while the REST side runs: what it spends idle (timers, scrapes).
        r["converter_cpu_cores"] = cpu_s / (r["duration_us"] / 1e6)
        by[(r["run"], r["kind"], r["connections"])] = r
    runs = sorted({r["run"] for r in recs if r["run"] > 0})
    kinds = sorted({(r["kind"], r["connections"]) for r in recs if r["run"] > 0},
                   key=lambda k: (k[1], k[0]))

    scenarios = {}
    for kind, conns in kinds:
        rs = [by[(run, kind, conns)] for run in runs if (run, kind, conns) in by]
        scenarios[f"{kind}@c{conns}"] = {
            "kind": kind,
            "connections": conns,
            "runs": len(rs),
            "requests_median": med([r["requests"] for r in rs]),
            "rps_median": med([r["rps"] for r in rs]),
            "p50_ms_median": med([r["p50_us"] / 1000 for r in rs]),
            "p90_ms_median": med([r["p90_us"] / 1000 for r in rs]),
            "p99_ms_median": med([r["p99_us"] / 1000 for r in rs]),
            "p999_ms_median": med([r["p999_us"] / 1000 for r in rs]),
            "mean_ms_median": med([r["mean_us"] / 1000 for r in rs]),
            "max_ms_max": max(r["max_us"] for r in rs) / 1000,
            "converter_cpu_us_per_req_median": med([r["converter_cpu_us_per_req"] for r in rs]),
            "converter_cpu_us_per_req_spread": spread([r["converter_cpu_us_per_req"] for r in rs]),
            "converter_user_us_per_req_median": med([r["converter_user_us_per_req"] for r in rs]),
            "converter_sys_us_per_req_median": med([r["converter_sys_us_per_req"] for r in rs]),
            "converter_cpu_cores_median": med([r["converter_cpu_cores"] for r in rs]),
            "backend_cpu_us_per_req_median": med([r["backend_cpu_us_per_req"] for r in rs]),
            "converter_own_mean_us_median": med([r["own_mean_us"] for r in rs]),
            "converter_peak_rss_mib_max": max(r["converter_hwm_kib"] for r in rs) / 1024,
            "non2xx": sum(r["non2xx"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
        }

    pairs = {}
    for name, soap, rest, meaning in PAIRS:
        rest = rest if isinstance(rest, tuple) else (rest,)
        for conns in (1, 32):
            per_run = []
            for run in runs:
                a = by.get((run, soap, conns))
                bs = [by.get((run, k, conns)) for k in rest]
                if not a or not all(bs):
                    continue
                # One REST side, or several reads one after the other (added up).
                p50 = sum(b["p50_us"] for b in bs)
                mean = sum(b["mean_us"] for b in bs)
                p99 = bs[0]["p99_us"] if len(bs) == 1 else None
                rps = 1 / sum(1 / b["rps"] for b in bs)
                per_run.append({
                    "run": run,
                    "p50_ratio": a["p50_us"] / p50,
                    "p99_ratio": a["p99_us"] / p99 if p99 else None,
                    "mean_ratio": a["mean_us"] / mean,
                    "p50_added_ms": (a["p50_us"] - p50) / 1000,
                    "p99_added_ms": (a["p99_us"] - p99) / 1000 if p99 else None,
                    "throughput_ratio": a["rps"] / rps,
                })
            if not per_run:
                continue
            pairs[f"{name}@c{conns}"] = {
                "meaning": meaning,
                "connections": conns,
                "runs": len(per_run),
                **{f"{k}_median": med([p[k] for p in per_run])
                   for k in ("p50_ratio", "p99_ratio", "mean_ratio", "p50_added_ms",
                             "p99_added_ms", "throughput_ratio")},
                "p50_ratio_spread": spread([p["p50_ratio"] for p in per_run]),
                "p99_added_ms_spread": spread([p["p99_added_ms"] for p in per_run]),
                "mean_ratio_spread": spread([p["mean_ratio"] for p in per_run]),
                "per_run": per_run,
            }

    # Peak RSS: under 256 connections (VmHWM reset before each measurement), and overall
    # (the largest peak seen in any measurement, the start included).
    c256 = [r for r in recs if r["connections"] == 256]
    rss_256 = max((r["converter_hwm_kib"] for r in c256), default=None)
    rss_all = max([r["converter_hwm_kib"] for r in recs] + [r["converter_hwm_before_kib"] for r in recs]
                  + [env.get("converter_startup_hwm_kib", 0)])
    rss_256_mib = rss_256 / 1024 if rss_256 else None

    targets = []
    for name in TARGET_PAIRS:
        p = pairs.get(f"{name}@c1")
        if p:
            targets.append({
                "target": f"latency ratio at c1 (median p50, SOAP/REST) <= {TARGET_LATENCY_RATIO}",
                "pair": name, "value": p["p50_ratio_median"],
                "met": p["p50_ratio_median"] <= TARGET_LATENCY_RATIO})
            if p["p99_added_ms_median"] is not None:
                targets.append({
                    "target": f"added p99 at c1 <= {TARGET_P99_ADDED_MS} ms",
                    "pair": name, "value": p["p99_added_ms_median"],
                    "met": p["p99_added_ms_median"] <= TARGET_P99_ADDED_MS})
    for kind in ("soap_read", "soap_create"):
        for conns in (1, 32, 256):
            s = scenarios.get(f"{kind}@c{conns}")
            if s and s["converter_cpu_us_per_req_median"] is not None:
                targets.append({
                    "target": f"converter CPU per translated request <= {TARGET_CPU_US} us",
                    "pair": f"{kind}@c{conns}", "value": s["converter_cpu_us_per_req_median"],
                    "met": s["converter_cpu_us_per_req_median"] <= TARGET_CPU_US})
    if rss_256_mib is not None:
        targets.append({"target": f"converter peak RSS under 256 connections <= {TARGET_RSS_MIB} MiB",
                        "pair": "soap_read@c256 + soap_create@c256", "value": rss_256_mib,
                        "met": rss_256_mib <= TARGET_RSS_MIB})

    summary = {
        "environment": env,
        "runs": runs,
        "scenarios": scenarios,
        "pairs": pairs,
        "converter_peak_rss_mib_256": rss_256_mib,
        "converter_peak_rss_mib_overall": rss_all / 1024,
        "targets": targets,
        "notes": [
            "ratios are SOAP via converter / REST direct, per run (back-to-back measurements), then the median over runs",
            "converter CPU = utime+stime of the converter's own process during the measurement / requests",
            "converter own time = Prometheus vos_converter_converter_own_seconds (wall time minus the upstream wait), mean",
            "peak RSS = VmHWM, reset (clear_refs 5) before each measurement",
        ],
    }
    json.dump(summary, open(out_path, "w"), indent=2)
    print_load(summary, env, scenarios, pairs, rss_256_mib, rss_all, targets, runs)
    print(f"\nwritten: {out_path}")
    return summary, by, runs


def print_load(summary, env, scenarios, pairs, rss_256_mib, rss_all, targets, runs):
    # The table.
    print(f"\nmachine: {env.get('cpus')} CPUs ({env.get('cpu_model')}), load at start {' '.join(env.get('loadavg_at_start', []))}; "
          f"{len(runs)} runs of {env.get('duration_s')} s per measurement; RUST_LOG={env.get('rust_log')}; "
          f"REST answers {env.get('rest_latency_ms', 0)} ms late (backend --dev-latency-ms)")
    w = max([30] + [len(k) for k in scenarios])
    print(f"\n{'scenario':{w}s}   req/s    p50 ms   p99 ms  conv CPU us/req (user+sys)  conv own us  backend CPU us/req")
    for key, s in scenarios.items():
        split = ""
        if s["converter_user_us_per_req_median"] is not None:
            split = f"({s['converter_user_us_per_req_median']:.0f}+{s['converter_sys_us_per_req_median']:.0f})"
        print(f"{key:{w}s} {s['rps_median']:8.0f} {s['p50_ms_median']:8.3f} {s['p99_ms_median']:8.3f}"
              f"  {fmt(s['converter_cpu_us_per_req_median'], 1):>8s} {split:>17s}  {fmt(s['converter_own_mean_us_median'], 1):>11s}"
              f"  {s['backend_cpu_us_per_req_median']:18.1f}")
    print("\npair (SOAP via converter / REST direct)  p50 ratio  [min-max]       mean ratio  p99 ratio  p99 added ms  throughput ratio")
    for key, p in pairs.items():
        lo, hi = p["p50_ratio_spread"]
        print(f"{key:40s} {p['p50_ratio_median']:9.3f}  [{lo:.3f}-{hi:.3f}]  {p['mean_ratio_median']:10.3f}"
              f"  {fmt(p['p99_ratio_median'], 3):>9s}  {fmt(p['p99_added_ms_median'], 3):>12s}  {p['throughput_ratio_median']:16.3f}")
    print(f"\nconverter peak RSS: {fmt(rss_256_mib, 1)} MiB under 256 connections; {rss_all / 1024:.1f} MiB overall (start included)")
    print("\ntargets:")
    for t in targets:
        print(f"  {'met    ' if t['met'] else 'NOT MET'}  {t['target']:62s} {t['pair']:28s} {t['value']:.3f}")


RECONNECT_TARGETS = [
    # kind, whose CPU pays for the handshake (the process that terminates its TLS)
    ("soap_read", "converter"),
    ("rest_kontaktgrupper", "backend"),
]


def tls(raw_path, env_path, out_path):
    """The load summary of the TLS run, then the reconnects: per kind and concurrency, the
    keep-alive measurement against a new connection per request with session resumption
    (rustls' ticket store) and without (every handshake full), within each run."""
    summary, by, runs = load(raw_path, env_path, out_path)

    def cpu_us(r, who):
        return r[f"{who}_cpu_ticks"] / r["clk_tck"] / r["requests"] * 1e6

    reconnects = {}
    for kind, who in RECONNECT_TARGETS:
        for conns in (1, 32):
            per_run = []
            for run in runs:
                ka = by.get((run, kind, conns))
                res = by.get((run, f"{kind}_reconnect_resumed", conns))
                full = by.get((run, f"{kind}_reconnect_full", conns))
                if not (ka and res and full):
                    continue
                row = {"run": run}
                for name, r in (("resumed", res), ("full", full)):
                    row[f"{name}_p50_ms"] = r["p50_us"] / 1000
                    row[f"{name}_p90_ms"] = r["p90_us"] / 1000
                    row[f"{name}_p99_ms"] = r["p99_us"] / 1000
                    row[f"{name}_mean_ms"] = r["mean_us"] / 1000
                    row[f"{name}_rps"] = r["rps"]
                    row[f"{name}_added_p50_ms"] = (r["p50_us"] - ka["p50_us"]) / 1000
                    row[f"{name}_added_mean_ms"] = (r["mean_us"] - ka["mean_us"]) / 1000
                    row[f"{name}_tls_handshake_p50_ms"] = r["tls_handshake_p50_us"] / 1000
                    row[f"{name}_tls_handshake_p99_ms"] = r["tls_handshake_p99_us"] / 1000
                    row[f"{name}_tls_handshake_mean_ms"] = r["tls_handshake_mean_us"] / 1000
                    row[f"{name}_tcp_connect_p50_ms"] = r["tcp_connect_p50_us"] / 1000
                    row[f"{name}_resumed_share"] = (r["handshakes_resumed"] / r["connections_opened"]
                                                     if r["connections_opened"] else None)
                    row[f"{name}_server_cpu_us_per_req"] = cpu_us(r, who)
                    row[f"{name}_server_cpu_added_us"] = cpu_us(r, who) - cpu_us(ka, who)
                    row[f"{name}_throughput_ratio"] = r["rps"] / ka["rps"]
                row["keepalive_p50_ms"] = ka["p50_us"] / 1000
                row["keepalive_server_cpu_us_per_req"] = cpu_us(ka, who)
                row["full_over_resumed_tls_handshake_p50"] = (full["tls_handshake_p50_us"] / res["tls_handshake_p50_us"]
                                                              if res["tls_handshake_p50_us"] else None)
                row["full_minus_resumed_server_cpu_us"] = cpu_us(full, who) - cpu_us(res, who)
                per_run.append(row)
            if not per_run:
                continue
            keys = [k for k in per_run[0] if k != "run"]
            reconnects[f"{kind}@c{conns}"] = {
                "kind": kind,
                "connections": conns,
                "server": who,
                "runs": len(per_run),
                **{f"{k}_median": med([p[k] for p in per_run]) for k in keys},
                "resumed_added_p50_ms_spread": spread([p["resumed_added_p50_ms"] for p in per_run]),
                "full_added_p50_ms_spread": spread([p["full_added_p50_ms"] for p in per_run]),
                "per_run": per_run,
            }
    summary["reconnects"] = reconnects
    summary["notes"] = summary["notes"] + [
        "both hops mutual TLS (rustls, aws-lc-rs, TLS 1.3); every client presents star.pem (organisation 5:55570117)",
        "keep-alive: every connection opened before the clock starts (tls_load); reconnect: a new TCP connection and "
        "TLS handshake per request, inside the request's latency",
        "resumed: rustls' default in-memory client session store (TLS 1.3 tickets), the handshake kind read from rustls; "
        "full: Resumption::disabled()",
        "added: reconnect minus keep-alive of the same kind, connections and run; server CPU: the process that "
        "terminates the client's TLS (converter for SOAP, backend for direct REST), per request",
    ]
    json.dump(summary, open(out_path, "w"), indent=2)

    print("\nreconnects (a new connection per request) against keep-alive, medians of the per-run values:")
    print(f"{'kind':26s} {'keep-alive':>10s} | {'resumed: p50':>12s} {'added':>7s} {'TLS hs':>7s} {'resumed':>7s} {'CPU+':>6s} | "
          f"{'full: p50':>9s} {'added':>7s} {'TLS hs':>7s} {'CPU+':>6s} | {'hs full/res':>11s} {'CPU full-res':>12s}")
    print(f"{'':26s} {'p50 ms':>10s} | {'ms':>12s} {'ms':>7s} {'p50 ms':>7s} {'share':>7s} {'us':>6s} | "
          f"{'ms':>9s} {'ms':>7s} {'p50 ms':>7s} {'us':>6s} | {'':>11s} {'us/conn':>12s}")
    for key, r in reconnects.items():
        print(f"{key:26s} {r['keepalive_p50_ms_median']:10.3f} | {r['resumed_p50_ms_median']:12.3f} "
              f"{r['resumed_added_p50_ms_median']:7.3f} {r['resumed_tls_handshake_p50_ms_median']:7.3f} "
              f"{fmt(r['resumed_resumed_share_median'], 3):>7s} {r['resumed_server_cpu_added_us_median']:6.0f} | "
              f"{r['full_p50_ms_median']:9.3f} {r['full_added_p50_ms_median']:7.3f} "
              f"{r['full_tls_handshake_p50_ms_median']:7.3f} {r['full_server_cpu_added_us_median']:6.0f} | "
              f"{fmt(r['full_over_resumed_tls_handshake_p50_median'], 2):>11s} {r['full_minus_resumed_server_cpu_us_median']:12.0f}")
    print(f"\nwritten: {out_path}")


ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)\s*$")


def annotate_costs(path, merge):
    """function -> Ir from a callgrind_annotate listing (--auto=no --threshold=100). Each
    line is "Ir (pct)  file:function [object]"; a function's cost is split over the source
    files its instructions come from (inlining): merge="sum" adds them (self cost), "max"
    keeps the largest (inclusive cost, which each line already counts in full)."""
    costs = {}
    try:
        text = open(path).read()
    except OSError:
        return costs
    for line in text.splitlines():
        m = ANNOTATE_LINE.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = m.group(2)
        # The object: its file name only.
        name = re.sub(r"\s*\[(?:.*/)?([^/\]]+)\]$", r" [\1]", name)
        # The source file: a path has no colon, so the first colon ends it.
        file, _, func = name.partition(":")
        if not func:
            func = file
        ir = int(m.group(1).replace(",", ""))
        if merge == "sum":
            costs[func] = costs.get(func, 0) + ir
        else:
            costs[func] = max(costs.get(func, 0), ir)
    return costs


def callgrind(raw_path, n, outdir):
    n = int(n)
    totals = defaultdict(dict)
    for line in open(raw_path):
        kind, count, total = line.split()
        totals[kind][int(count)] = int(total)
    result = {"n": n, "method": "(Ir(2N) - Ir(N)) / N: start, stop and one-time work cancel", "kinds": {}}
    print(f"\ninstructions per request (valgrind --tool=callgrind, N = {n}):")
    for kind, t in totals.items():
        if n not in t or 2 * n not in t:
            continue
        per = (t[2 * n] - t[n]) / n
        top = {}
        for mode in ("yes", "no"):
            merge = "max" if mode == "yes" else "sum"
            a = annotate_costs(f"{outdir}/callgrind.{kind}.{n}.inclusive-{mode}.txt", merge)
            b = annotate_costs(f"{outdir}/callgrind.{kind}.{2 * n}.inclusive-{mode}.txt", merge)
            diff = {f: (b.get(f, 0) - a.get(f, 0)) / n for f in set(a) | set(b)}
            top[mode] = sorted(((v, f) for f, v in diff.items() if v > 0), reverse=True)[:200 if mode == "yes" else 80]
        path = f"{outdir}/callgrind-{kind}-top.txt"
        with open(path, "w") as f:
            f.write(f"{kind}: {per:,.0f} instructions per request ((Ir({2 * n}) - Ir({n})) / {n})\n\n")
            f.write("Per request, inclusive (the function and what it calls), from callgrind_annotate "
                    "--inclusive=yes of both runs, difference / N:\n")
            for v, name in top["yes"]:
                f.write(f"{v:12,.0f}  {100 * v / per:5.1f}%  {name}\n")
            f.write("\nPer request, exclusive (self):\n")
            for v, name in top["no"]:
                f.write(f"{v:12,.0f}  {100 * v / per:5.1f}%  {name}\n")
        result["kinds"][kind] = {
            "ir_n": t[n], "ir_2n": t[2 * n], "instructions_per_request": per,
            "top_inclusive": [{"ir_per_request": v, "function": name} for v, name in top["yes"][:25]],
            "top_self": [{"ir_per_request": v, "function": name} for v, name in top["no"][:25]],
            "profile": path,
        }
        print(f"  {kind:12s} {per:12,.0f} Ir/request   (profile: {path})")
    json.dump(result, open(f"{outdir}/callgrind.json", "w"), indent=2)
    print(f"\nwritten: {outdir}/callgrind.json")


SCALE_SOAP = "soap_history"
SCALE_REST = ("rest_kontaktgruppehistorik", "rest_personkategorihistorik")


def scale(raw_path, env_path, sizes_path, out_path):
    env = json.load(open(env_path))
    recs = [json.loads(line) for line in open(raw_path) if line.strip()]
    sizes = {d["n"]: d for d in (json.loads(line) for line in open(sizes_path) if line.strip())}
    by = {}
    for r in recs:
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["converter_cpu_us_per_req"] = r["converter_cpu_ticks"] / r["clk_tck"] / r["requests"] * 1e6
        r["backend_cpu_us_per_req"] = r["backend_cpu_ticks"] / r["clk_tck"] / r["requests"] * 1e6
        by[(r["n"], r["run"], r["kind"], r["connections"])] = r
    ns = sorted({r["n"] for r in recs if r["connections"] == 1})
    runs = sorted({r["run"] for r in recs if r["run"] > 0 and r["connections"] == 1})

    rows = {}
    for n in ns:
        per_run = []
        for run in runs:
            a = by.get((n, run, SCALE_SOAP, 1))
            bs = [by.get((n, run, k, 1)) for k in SCALE_REST]
            if not a or not all(bs):
                continue
            rest_p50 = sum(b["p50_us"] for b in bs)
            rest_mean = sum(b["mean_us"] for b in bs)
            cpu = a["converter_cpu_us_per_req"]
            per_run.append({
                "run": run,
                "soap_p50_ms": a["p50_us"] / 1000,
                "soap_p99_ms": a["p99_us"] / 1000,
                "rest_kontaktgruppehistorik_p50_ms": bs[0]["p50_us"] / 1000,
                "rest_personkategorihistorik_p50_ms": bs[1]["p50_us"] / 1000,
                "rest_p50_sum_ms": rest_p50 / 1000,
                "p50_ratio": a["p50_us"] / rest_p50,
                "mean_ratio": a["mean_us"] / rest_mean,
                "p50_added_ms": (a["p50_us"] - rest_p50) / 1000,
                "soap_requests": a["requests"],
                "converter_cpu_us_per_call": cpu,
                "converter_user_us_per_call": a["converter_user_ticks"] / a["clk_tck"] / a["requests"] * 1e6,
                "converter_sys_us_per_call": a["converter_sys_ticks"] / a["clk_tck"] / a["requests"] * 1e6,
                "converter_cpu_us_per_item": cpu / n,
                "backend_cpu_us_per_soap_call": a["backend_cpu_us_per_req"],
                "backend_cpu_us_per_rest_pair": sum(b["backend_cpu_us_per_req"] for b in bs),
                "converter_peak_rss_mib": a["converter_hwm_kib"] / 1024,
            })
        if not per_run:
            continue
        keys = [k for k in per_run[0] if k != "run"]
        rows[str(n)] = {
            "n": n,
            "runs": len(per_run),
            **{f"{k}_median": med([p[k] for p in per_run]) for k in keys},
            "p50_ratio_spread": spread([p["p50_ratio"] for p in per_run]),
            **{k: v for k, v in sizes.get(n, {}).items() if k != "n"},
            "per_run": per_run,
        }

    # The cost of one more item: the CPU per call's growth from the smallest N, per item.
    if rows:
        base = rows[str(ns[0])]
        for row in rows.values():
            row["converter_cpu_us_per_added_item_median"] = (
                (row["converter_cpu_us_per_call_median"] - base["converter_cpu_us_per_call_median"])
                / (row["n"] - base["n"]) if row["n"] > base["n"] else None)

    at256 = [r for r in recs if r["kind"] == SCALE_SOAP and r["connections"] == 256 and r["run"] > 0]
    rss = None
    if at256:
        rss = {
            "n": at256[0]["n"],
            "runs": len(at256),
            "seconds": at256[0]["seconds"],
            "converter_peak_rss_mib_max": max(r["converter_hwm_kib"] for r in at256) / 1024,
            "converter_peak_rss_mib_median": med([r["converter_hwm_kib"] / 1024 for r in at256]),
            "rps_median": med([r["rps"] for r in at256]),
            "p50_ms_median": med([r["p50_us"] / 1000 for r in at256]),
            "p99_ms_median": med([r["p99_us"] / 1000 for r in at256]),
            "converter_cpu_us_per_call_median": med([r["converter_cpu_us_per_req"] for r in at256]),
        }

    summary = {
        "environment": env,
        "runs": runs,
        "rows": rows,
        "rss_256": rss,
        "converter_startup_hwm_mib": env.get("converter_startup_hwm_kib", 0) / 1024,
        "notes": [
            "one person per N: one contact group with N versions (1 create + N-1 updates of the end date) and one person category",
            "SOAP: GetPersonHistory (PHS v4, no period) via the converter, which makes GetKontaktgruppeHistorik and "
            "GetPersonkategoriHistorik; REST: the same two GETs made directly, one after the other (p50s added up, as read/both)",
            "latency at concurrency 1 (one wrk connection); ratio = SOAP p50 / REST p50 sum per run, then the median over runs",
            "converter CPU = utime+stime of the converter's process during the SOAP measurement / calls; per item = / N",
            "peak RSS = VmHWM, reset (clear_refs 5) before each measurement at 256 connections on the largest N; "
            "its CPU per call counts the calls completed within the measurement only (those still in flight at the "
            "end did work that is not counted as calls): a rough figure",
            "converter_cpu_us_per_added_item: (CPU per call at N - at the smallest N) / (N - smallest N)",
        ],
    }
    json.dump(summary, open(out_path, "w"), indent=2)

    print(f"\nmachine: {env.get('cpus')} CPUs ({env.get('cpu_model')}), load at start "
          f"{' '.join(env.get('loadavg_at_start', []))}; {len(runs)} runs of {env.get('duration_s')} s per "
          f"measurement at concurrency 1; RUST_LOG={env.get('rust_log')}; REST answers "
          f"{env.get('rest_latency_ms', 0)} ms late\n")
    print("| N | SOAP p50 ms | REST p50 sum ms | ratio [min-max] | CPU µs/call | CPU µs/item | SOAP bytes | REST bytes |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows.values():
        lo, hi = row["p50_ratio_spread"]
        rest_bytes = (row.get("rest_kontaktgruppehistorik_bytes", 0) or 0) + (row.get("rest_personkategorihistorik_bytes", 0) or 0)
        print(f"| {row['n']} | {row['soap_p50_ms_median']:.3f} | {row['rest_p50_sum_ms_median']:.3f} "
              f"| {row['p50_ratio_median']:.3f} [{lo:.3f}-{hi:.3f}] | {row['converter_cpu_us_per_call_median']:.0f} "
              f"| {row['converter_cpu_us_per_item_median']:.2f} | {row.get('soap_bytes', '-')} | {rest_bytes or '-'} |")
    if rss:
        print(f"\nconverter peak RSS under 256 connections on the N = {rss['n']} read: "
              f"{rss['converter_peak_rss_mib_max']:.1f} MiB (max of {rss['runs']} runs of {rss['seconds']} s; "
              f"median {rss['converter_peak_rss_mib_median']:.1f} MiB; {rss['rps_median']:.0f} req/s, "
              f"p50 {rss['p50_ms_median']:.1f} ms, p99 {rss['p99_ms_median']:.1f} ms); "
              f"{summary['converter_startup_hwm_mib']:.1f} MiB after start")
    else:
        print("\nconverter peak RSS under 256 connections: not measured")
    print(f"\nwritten: {out_path}")


UNIT_NS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def micro(txt_path, out_path):
    text = open(txt_path).read()
    pat = re.compile(r"^(\S+/\S+)\s+time:\s+\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]", re.M | re.S)
    # Criterion puts the time on the next line when the name is long: join them first.
    joined = re.sub(r"\n\s+time:", " time:", text)
    res = {}
    for m in pat.finditer(joined):
        res[m.group(1)] = {
            "low_ns": float(m.group(2)) * UNIT_NS[m.group(3)],
            "estimate_ns": float(m.group(4)) * UNIT_NS[m.group(5)],
            "high_ns": float(m.group(6)) * UNIT_NS[m.group(7)],
        }
    json.dump(res, open(out_path, "w"), indent=2)
    print("\nin-process phases (criterion estimate, µs):")
    phases = ["parse", "map", "write", "fault", "all"]
    # The operations' phases; any other group (record) on its own lines.
    ops = sorted({k.split("/")[0] for k in res if f"{k.split('/')[0]}/parse" in res})
    print(f"{'operation':26s}" + "".join(f"{p:>9s}" for p in phases))
    for op in ops:
        cells = [res.get(f"{op}/{p}", {}).get("estimate_ns") for p in phases]
        print(f"{op:26s}" + "".join(f"{(c / 1000 if c is not None else float('nan')):9.2f}" for c in cells))
    others = sorted(k for k in res if k.split("/")[0] not in ops)
    for k in others:
        print(f"{k:35s}{res[k]['estimate_ns'] / 1000:9.2f}")
    print(f"\nwritten: {out_path}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "load":
        load(*sys.argv[2:5])
    elif mode == "tls":
        tls(*sys.argv[2:5])
    elif mode == "callgrind":
        callgrind(*sys.argv[2:5])
    elif mode == "micro":
        micro(*sys.argv[2:4])
    elif mode == "scale":
        scale(*sys.argv[2:6])
    else:
        sys.exit(f"summarize.py: unknown mode {mode}")
