#!/usr/bin/env python3
"""The WSB side of scripts/bench.sh wsb: the backend's WSB metrics, the wait for a
subscription's backlog to drain, the raw records and the summary.

    wsb.py metrics BACKEND_URL
    wsb.py paced BACKEND_URL RATE SECONDS SLOT
    wsb.py wait BACKEND_URL BEFORE.json SUBSCRIPTIONS TIMEOUT_S ID...
    wsb.py record RAW.jsonl WRK_JSON BEFORE.json AFTER.json RECEIVER.json KEY=VALUE...
    wsb.py summary RAW.jsonl ENV.json OUT.json

metrics: one JSON line from the backend's GET /metrics (OpenMetrics text): the events
written (wsb_events_written_total, all entities), those delivered per subscription
(wsb_events_delivered_total), the retries, and the wsb_delivery_latency_seconds histogram
(cumulative buckets, sum, count).

paced: creates (wrk.lua's rest_create, a fresh fictitious CPR number each, from the block
of SLOT that scripts/bench/client.py uses) at RATE per second on one keep-alive connection,
for SECONDS: request i is sent at start + i / RATE (at once when the one before answered
later than that: "late"), its latency timed from its send to the end of its answer (a raw
socket, no HTTP library: little of the client's own time in it); prints wrk.lua's BENCHJSON
line. wrk has no fixed rate; wrk at concurrency 1 sends the next create as soon as the
last is answered, ~1,000 a second here, more than delivery to three subscriptions keeps up
with.

wait: polls the metrics every 50 ms until the subscriptions ID... have together been
delivered SUBSCRIPTIONS times every event written since BEFORE.json (each subscription gets
every event: the bench's creates are of contact groups, which all three of STAR's
subscriptions see), re-reading the written count each time (a create still in flight when
wrk stopped is counted once it commits); prints the last metrics with "drained_s" (the
time it saw them complete). Exits 1 after TIMEOUT_S.

summary: per load (rN paced, cN wrk), the create's p50 with three subscriptions over its
p50 without, per run (the two measurements back to back), then the median over the runs;
the delivery lag (wsb_delivery_latency_seconds: from the event's write in the create's
transaction to the receiver's 2xx and the cursor's advance recorded, src/backend/wsb/
delivery.rs) at its p50/p99, interpolated within the histogram's buckets as Prometheus'
histogram_quantile does (the buckets double from 1 ms, so the p99 is known only to lie
within its bucket; the bucket is given), and the receiver's own exact figure (arrival minus
the event's tidspunkt, the registration time: that also counts the create's own
transaction); and the delivery throughput: events delivered over the time from the first
create to the last arrival (the wrk runs with most connections), and a held backlog's drain
(the receiver answered 503 while the creates ran, then 204: delivered events / (last
arrival - first arrival)). Standard library only.
"""

import json
import re
import socket
import statistics
import sys
import time
import urllib.parse
import urllib.request

# The goals.
TARGET_P50_RATIO = 1.10
TARGET_LAG_P99_MS = 100.0

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)')


def fail(msg):
    print(f"wsb.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def labels(text):
    return dict(re.findall(r'(\w+)="([^"]*)"', text or ""))


def metrics(base):
    with urllib.request.urlopen(base.rstrip("/") + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {"written": 0.0, "delivered": {}, "retries": 0.0, "dead_lettered": 0.0,
           "buckets": [], "latency_sum": 0.0, "latency_count": 0.0, "t": time.time()}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, lab, value = m.group(1), labels(m.group(2)), float(m.group(3))
        if name == "wsb_events_written_total":
            out["written"] += value
        elif name == "wsb_events_delivered_total":
            out["delivered"][lab.get("subscription", "")] = value
        elif name == "wsb_delivery_retries_total":
            out["retries"] += value
        elif name == "wsb_events_dead_lettered_total":
            out["dead_lettered"] += value
        elif name == "wsb_delivery_latency_seconds_bucket":
            le = lab.get("le", "+Inf")
            out["buckets"].append([float("inf") if le == "+Inf" else float(le), value])
        elif name == "wsb_delivery_latency_seconds_sum":
            out["latency_sum"] = value
        elif name == "wsb_delivery_latency_seconds_count":
            out["latency_count"] = value
    out["buckets"].sort()
    return out


def read_answer(sock, buf):
    """One HTTP/1.1 answer off sock (Content-Length body): (status, body, the rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head = buf[:end].decode("latin-1").lower()
    status = int(head.split(" ", 2)[1])
    if "transfer-encoding:" in head:
        raise ConnectionError("chunked answer")
    m = re.search(r"content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(buf) < end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return status, buf[end:end + length], buf[end + length:]


def cpr_of(k):
    """As wrk.lua: day 01-28, month 01-12, six more digits."""
    return f"{k % 28 + 1:02d}{k // 28 % 12 + 1:02d}{k // 336:06d}"


def paced(base, rate, seconds, slot):
    u = urllib.parse.urlsplit(base)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = ("POST /personvisitering/v1/kontaktgrupper HTTP/1.1\r\n"
            f"Host: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
            "X-Organisation-Type: 5\r\nX-Organisation-Code: 12345678\r\nX-User-Id: bench\r\n")
    counter = (slot * 16 + 15) * 250_000  # scripts/bench/client.py's block of the slot
    lat, non2xx, errors, late, buf = [], 0, 0, 0, b""
    start = time.perf_counter()
    i = 0
    while True:
        due = start + i / rate
        if due >= start + seconds:
            break
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.001:
            late += 1
        body = ('{"cpr":"' + cpr_of(counter) + '","kontaktgruppetype":1,"startdato":"2025-01-06",'
                '"haendelsestidspunkt":"2025-01-06T08:30:00Z"}').encode()
        counter += 1
        req = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        try:
            sock.sendall(req)
            status, answer, buf = read_answer(sock, buf)
        except (OSError, ValueError, IndexError) as e:
            errors += 1
            print(f"wsb.py paced: {e}", file=sys.stderr)
            break
        lat.append(time.perf_counter() - t0)
        if not 200 <= status < 300:
            non2xx += 1
            if non2xx <= 3:
                print(f"wsb.py paced: answered {status}: {answer[:400]!r}", file=sys.stderr)
        i += 1
    duration = time.perf_counter() - start
    sock.close()
    lat.sort()

    def pct(p):
        return lat[max(1, min(len(lat), int(-(-p * len(lat) // 100)))) - 1] * 1e6 if lat else 0

    mean = statistics.fmean(lat) * 1e6 if lat else 0
    print("BENCHJSON " + json.dumps({
        "requests": len(lat), "duration_us": int(duration * 1e6), "non2xx": non2xx, "errors": errors,
        "mean_us": mean, "stdev_us": statistics.pstdev(lat) * 1e6 if lat else 0,
        "max_us": lat[-1] * 1e6 if lat else 0, "p50_us": pct(50), "p90_us": pct(90),
        "p99_us": pct(99), "p999_us": pct(99.9), "late": late, "rate": rate,
    }))


def wait(base, before_path, subs, timeout, ids):
    before = json.load(open(before_path))
    deadline = time.time() + timeout
    while True:
        m = metrics(base)
        written = m["written"] - before["written"]
        delivered = sum(m["delivered"].get(i, 0.0) for i in ids)
        if written > 0 and delivered >= subs * written:
            m["drained_s"] = time.time()
            print(json.dumps(m))
            return
        if time.time() > deadline:
            fail(f"after {timeout} s: {delivered:.0f} of {subs} x {written:.0f} events delivered")
        time.sleep(0.05)


def delta_buckets(before, after):
    b0 = {le: c for le, c in before["buckets"]}
    return [[le, c - b0.get(le, 0.0)] for le, c in after["buckets"]]


def quantile(q, buckets):
    """histogram_quantile over cumulative [le, count] buckets: (estimate, (lo, hi)) in s."""
    if not buckets or buckets[-1][1] <= 0:
        return None, None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le, (prev_le, None)
            if c == prev_c:
                return le, (prev_le, le)
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c), (prev_le, le)
        prev_le, prev_c = le, c
    return prev_le, (prev_le, None)


def record(raw, wrk_json, before_path, after_path, receiver_path, pairs):
    d = json.loads(wrk_json)
    before, after = json.load(open(before_path)), json.load(open(after_path))
    recv = json.load(open(receiver_path))
    for p in pairs:
        k, v = p.split("=", 1)
        try:
            d[k] = int(v)
        except ValueError:
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
    ids = [i for i in str(d.get("subscriptions", "")).split(",") if i]
    d["subscriptions"] = ids
    d["written"] = after["written"] - before["written"]
    d["delivered"] = sum(after["delivered"].get(i, 0.0) for i in ids)
    d["retries"] = after["retries"] - before["retries"]
    d["dead_lettered"] = after["dead_lettered"] - before["dead_lettered"]
    d["latency_buckets"] = delta_buckets(before, after)
    d["latency_sum_s"] = after["latency_sum"] - before["latency_sum"]
    d["latency_count"] = after["latency_count"] - before["latency_count"]
    d["drained_s"] = after.get("drained_s")
    d["receiver"] = recv
    with open(raw, "a") as f:
        f.write(json.dumps(d) + "\n")
    # One line for the log.
    rps = d["requests"] / (d["duration_us"] / 1e6)
    line = (f"  run {d['run']} {d['variant']:6s} {d['load']:5s} {d['requests']:7d} creates "
            f"{rps:7.0f}/s  p50 {d['p50_us'] / 1000:7.3f} ms  p99 {d['p99_us'] / 1000:7.3f} ms  "
            f"backend CPU {d['backend_ticks'] / d['clk_tck'] / d['requests'] * 1e6:6.0f} us/create")
    if ids:
        p99, _ = quantile(0.99, d["latency_buckets"])
        lag = recv.get("lag", {})
        line += (f"\n        delivered {d['delivered']:.0f} of {len(ids)} x {d['written']:.0f}, "
                 f"lag p99 {fmt_ms(p99)} ms (histogram), receiver p50/p99 {fmt(lag.get('p50_ms'))}/"
                 f"{fmt(lag.get('p99_ms'))} ms; last arrival {recv.get('last_s', 0) - d['t_end']:.3f} s "
                 f"after the creates ended; retries {d['retries']:.0f}")
    print(line)


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_ms(s, digits=1):
    return "-" if s is None else f"{s * 1000:.{digits}f}"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return [min(xs), max(xs)] if xs else None


def merged(recs):
    out = {}
    for r in recs:
        for le, c in r["latency_buckets"]:
            out[le] = out.get(le, 0.0) + c
    return sorted([le, c] for le, c in out.items())


def share(buckets, le_s):
    """The share of the events at most le_s (a bucket bound)."""
    if not buckets or not buckets[-1][1]:
        return None
    return next((c for le, c in buckets if le >= le_s - 1e-12), 0.0) / buckets[-1][1]


def lag_of(recs):
    """The delivery lag of these measurements: histogram (merged) and receiver figures."""
    if not recs:
        return None
    b = merged(recs)
    p50, p50_bucket = quantile(0.50, b)
    p99, p99_bucket = quantile(0.99, b)
    count = sum(r["latency_count"] for r in recs)
    lag = [r["receiver"].get("lag", {}) for r in recs]
    return {
        "events": count,
        "histogram_p50_ms": None if p50 is None else p50 * 1000,
        "histogram_p99_ms": None if p99 is None else p99 * 1000,
        "histogram_p99_bucket_ms": None if p99_bucket is None else [
            p99_bucket[0] * 1000, None if p99_bucket[1] is None else p99_bucket[1] * 1000],
        "histogram_p99_per_run_ms": [fmt_ms(quantile(0.99, r["latency_buckets"])[0]) for r in recs],
        "histogram_mean_ms": sum(r["latency_sum_s"] for r in recs) / count * 1000 if count else None,
        "share_at_most_64ms": share(b, 0.064),
        "share_at_most_128ms": share(b, 0.128),
        "receiver_p50_ms_median": med([x.get("p50_ms") for x in lag]),
        "receiver_p99_ms_median": med([x.get("p99_ms") for x in lag]),
        "receiver_p99_ms_max": max((x.get("p99_ms") or 0 for x in lag), default=None),
        "receiver_max_ms": max((x.get("max_ms") or 0 for x in lag), default=None),
    }


def load_name(load):
    """c1 -> "c1 (wrk, closed loop)", r100 -> "100/s (paced)"."""
    if load.startswith("r"):
        return f"{load[1:]}/s paced"
    return f"{load} wrk"


def summary(raw_path, env_path, out_path):
    env = json.load(open(env_path))
    env.pop("converter_startup_hwm_kib", None)
    recs = [json.loads(line) for line in open(raw_path) if line.strip()]
    for r in recs:
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["backend_cpu_us_per_create"] = r["backend_ticks"] / r["clk_tck"] / r["requests"] * 1e6
        r["receiver_cpu_us_per_event"] = (r["receiver_ticks"] / r["clk_tck"] / r["delivered"] * 1e6
                                          if r["delivered"] else None)
    by = {(r["run"], r["variant"], r["load"]): r for r in recs}
    runs = sorted({r["run"] for r in recs if r["run"] > 0 and r["variant"] in ("none", "subs3")})
    loads = []
    for r in recs:
        if r["run"] > 0 and r["variant"] == "subs3" and r["load"] not in loads:
            loads.append(r["load"])

    creates = {}
    for load in loads:
        per_run = []
        for run in runs:
            a, b = by.get((run, "none", load)), by.get((run, "subs3", load))
            if not a or not b:
                continue
            per_run.append({
                "run": run,
                "order": b.get("order"),
                "none_p50_ms": a["p50_us"] / 1000, "subs3_p50_ms": b["p50_us"] / 1000,
                "none_p99_ms": a["p99_us"] / 1000, "subs3_p99_ms": b["p99_us"] / 1000,
                "none_rps": a["rps"], "subs3_rps": b["rps"],
                "p50_ratio": b["p50_us"] / a["p50_us"],
                "p50_added_ms": (b["p50_us"] - a["p50_us"]) / 1000,
                "p99_ratio": b["p99_us"] / a["p99_us"],
                "rps_ratio": b["rps"] / a["rps"],
                "none_backend_cpu_us_per_create": a["backend_cpu_us_per_create"],
                "subs3_backend_cpu_us_per_create": b["backend_cpu_us_per_create"],
                "subs3_backend_cpu_us_per_create_with_drain": (
                    (b["backend_ticks"] + b["backend_drain_ticks"]) / b["clk_tck"] / b["requests"] * 1e6),
                "receiver_cpu_us_per_event": b["receiver_cpu_us_per_event"],
                "drain_after_creates_s": b["receiver"]["last_s"] - b["t_end"] if b["receiver"].get("count") else None,
                "late": b.get("late"),
                "retries": b["retries"],
            })
        if not per_run:
            continue
        keys = [k for k in per_run[0] if k not in ("run", "order")]
        subs = [by[(p["run"], "subs3", load)] for p in per_run]
        creates[load] = {
            "load": load,
            "what": load_name(load),
            "runs": len(per_run),
            **{f"{k}_median": med([p[k] for p in per_run]) for k in keys},
            "p50_ratio_spread": spread([p["p50_ratio"] for p in per_run]),
            "lag": lag_of(subs),
            "per_run": per_run,
        }

    # Throughput while creating: the subs3 runs of the closed-loop load with most connections.
    closed = [x for x in loads if x.startswith("c")]
    top = max(closed, key=lambda x: int(x[1:])) if closed else None
    during = []
    for r in recs:
        if r["variant"] != "subs3" or r["run"] <= 0 or r["load"] != top:
            continue
        rv = r["receiver"]
        if not rv.get("count"):
            continue
        during.append({
            "run": r["run"],
            "events_delivered": rv["count"],
            "seconds_first_create_to_last_arrival": rv["last_s"] - r["t_start"],
            "events_per_s": rv["count"] / (rv["last_s"] - r["t_start"]),
            "creates_per_s": r["rps"],
            "last_arrival_after_creates_ended_s": rv["last_s"] - r["t_end"],
        })
    burst = None
    for r in recs:
        if r["variant"] == "burst":
            rv = r["receiver"]
            span = (rv["last_s"] - rv["first_s"]) if rv.get("count") else None
            burst = {
                "events_delivered": rv.get("count"),
                "creates": r["requests"],
                "creates_written": r["written"],
                "seconds_first_to_last_arrival": span,
                "events_per_s": rv["count"] / span if span else None,
                "events_per_s_from_release": rv["count"] / (rv["last_s"] - r["t_release"]) if rv.get("count") else None,
                "first_arrival_after_release_s": rv["first_s"] - r["t_release"] if rv.get("count") else None,
                "refused_while_held": r.get("refused_while_held"),
                "backend_cpu_us_per_event": r["backend_drain_ticks"] / r["clk_tck"] / rv["count"] * 1e6 if rv.get("count") else None,
                "receiver_cpu_us_per_event": r["receiver_cpu_us_per_event"],
                "lag": lag_of([r]),
            }

    goals = {}
    for load, c in creates.items():
        if load == top and len(closed) > 1:
            continue
        ratio, lag = c["p50_ratio_median"], c["lag"] or {}
        p99 = lag.get("histogram_p99_ms")
        goals[load] = {
            "what": c["what"],
            "create_p50_ratio": ratio,
            "create_p50_ratio_met": ratio < TARGET_P50_RATIO,
            "delivery_lag_p99_ms": p99,
            "delivery_lag_p99_bucket_ms": lag.get("histogram_p99_bucket_ms"),
            "delivery_lag_p99_met": None if p99 is None else p99 < TARGET_LAG_P99_MS,
            "receiver_lag_p99_ms_median": lag.get("receiver_p99_ms_median"),
        }
    summary = {
        "environment": env,
        "runs": runs,
        "creates": creates,
        "throughput_while_creating": {"load": top, "per_run": during,
                                      "events_per_s_median": med([d["events_per_s"] for d in during])},
        "throughput_backlog": burst,
        "goals": goals,
        "targets": {"create_p50_ratio_below": TARGET_P50_RATIO, "delivery_lag_p99_ms_below": TARGET_LAG_P99_MS},
        "notes": [
            "creates: POST /personvisitering/v1/kontaktgrupper directly at the backend as STAR, a fresh fictitious "
            "CPR number per create; rN: N creates a second on one connection (wsb.py paced); cN: wrk rest_create "
            "with N connections, each sending its next create when the last is answered",
            "'none': no subscription; 'subs3': three subscriptions (STAR, Kontaktgruppe+Personkategori+CprSkift) "
            "to one receiver (examples/wsb_receiver.rs) at three paths, made just before the measurement; after it "
            "the backlog drains and they are deleted",
            "ratio = subs3 / none within one run (the two back to back, every other run in the reverse order), then the median",
            "lag (histogram) = wsb_delivery_latency_seconds: from the event's write in the create's transaction to the "
            "receiver's 2xx and the cursor's advance recorded, interpolated within its doubling buckets (1, 2, 4, ..., 64, 128 ms, ...); merged over the runs",
            "lag (receiver) = arrival minus the event's tidspunkt (the create's registration time, taken before its "
            "transaction): the create's own transaction and commit included; exact, per run, then the median",
            "throughput while creating = events the receiver got / (last arrival - the start of wrk)",
            "throughput of a backlog = the creates written while the receiver answered 503 (the backend retrying every "
            "20-100 ms), then delivered after it answered 204: events / (last arrival - first arrival)",
            "backend CPU per create = the backend's utime+stime during the creates / creates; with drain: until every "
            "event was delivered",
        ],
    }
    json.dump(summary, open(out_path, "w"), indent=2)

    print(f"\nmachine: {env.get('cpus')} CPUs ({env.get('cpu_model')}), load at start "
          f"{' '.join(env.get('loadavg_at_start', []))}; {len(runs)} runs of {env.get('duration_s')} s per "
          f"measurement; RUST_LOG={env.get('rust_log')}\n")
    print("| creates | none p50 ms | 3 subs p50 ms | p50 ratio [min-max] | none p99 ms | 3 subs p99 ms | "
          "none creates/s | 3 subs creates/s | backend CPU µs/create: none / 3 subs (+ drain) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in creates.values():
        lo, hi = c["p50_ratio_spread"]
        print(f"| {c['what']} | {c['none_p50_ms_median']:.3f} | {c['subs3_p50_ms_median']:.3f} "
              f"| {c['p50_ratio_median']:.3f} [{lo:.3f}-{hi:.3f}] | {c['none_p99_ms_median']:.3f} "
              f"| {c['subs3_p99_ms_median']:.3f} | {c['none_rps_median']:.0f} | {c['subs3_rps_median']:.0f} "
              f"| {c['none_backend_cpu_us_per_create_median']:.0f} / {c['subs3_backend_cpu_us_per_create_median']:.0f} "
              f"({c['subs3_backend_cpu_us_per_create_with_drain_median']:.0f}) |")
    print("\n| delivery lag, 3 subs | events | histogram p50 ms | histogram p99 ms (bucket) | ≤ 64 ms | ≤ 128 ms | "
          "receiver p50 ms | receiver p99 ms (max of runs) | receiver max ms | last arrival after the creates s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(c["what"], c["lag"], c["drain_after_creates_s_median"]) for c in creates.values()]
    if burst:
        rows.append(("backlog drain", burst["lag"], None))
    for name, lag, drain in rows:
        if not lag:
            continue
        bk = lag["histogram_p99_bucket_ms"] or [None, None]
        print(f"| {name} | {lag['events']:.0f} | {fmt(lag['histogram_p50_ms'])} | {fmt(lag['histogram_p99_ms'])} "
              f"({fmt(bk[0], 0)}-{fmt(bk[1], 0)}] | {fmt((lag['share_at_most_64ms'] or 0) * 100)}% "
              f"| {fmt((lag['share_at_most_128ms'] or 0) * 100)}% "
              f"| {fmt(lag['receiver_p50_ms_median'])} | {fmt(lag['receiver_p99_ms_median'])} "
              f"({fmt(lag['receiver_p99_ms_max'])}) | {fmt(lag['receiver_max_ms'])} | {fmt(drain, 2)} |")
    print("\n| throughput, 3 subs | events delivered | seconds | events/s |")
    print("|---|---:|---:|---:|")
    for d in during:
        print(f"| {load_name(top)} creates, run {d['run']} (first create to last arrival; the last "
              f"{d['last_arrival_after_creates_ended_s']:.2f} s after the creates ended) | {d['events_delivered']} "
              f"| {d['seconds_first_create_to_last_arrival']:.2f} | {d['events_per_s']:.0f} |")
    if burst and burst["events_per_s"]:
        print(f"| backlog of {burst['creates_written']:.0f} creates (first to last arrival; backend CPU "
              f"{fmt(burst['backend_cpu_us_per_event'], 0)} µs/event) | "
              f"{burst['events_delivered']} | {burst['seconds_first_to_last_arrival']:.2f} | {burst['events_per_s']:.0f} |")
    print()
    for g in goals.values():
        print(f"goals at {g['what']}: create p50 with three subscriptions < {TARGET_P50_RATIO:.2f} x without: "
              f"{fmt(g['create_p50_ratio'], 3)} -> {'met' if g['create_p50_ratio_met'] else 'NOT met'}; "
              f"delivery lag p99 < {TARGET_LAG_P99_MS:.0f} ms (histogram): {fmt(g['delivery_lag_p99_ms'])} ms -> "
              f"{'met' if g['delivery_lag_p99_met'] else 'NOT met'}")
    print(f"\nwritten: {out_path}")


def main():
    if len(sys.argv) < 2:
        fail(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "metrics" and len(args) == 1:
        print(json.dumps(metrics(args[0])))
    elif cmd == "paced" and len(args) == 4:
        paced(args[0], float(args[1]), float(args[2]), int(args[3]))
    elif cmd == "wait" and len(args) >= 5:
        wait(args[0], args[1], int(args[2]), float(args[3]), args[4:])
    elif cmd == "record" and len(args) >= 5:
        record(args[0], args[1], args[2], args[3], args[4], args[5:])
    elif cmd == "summary" and len(args) == 3:
        summary(*args)
    else:
        fail(f"usage: {__doc__}")


if __name__ == "__main__":
    main()
