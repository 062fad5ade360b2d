#!/usr/bin/env python3
"""The soak's client (scripts/soak.sh): Python 3 standard library only.

  driver.py seed   --rest URL --persons N
      puts N fictitious persons in the REST service's person register (SetPersonRegister as
      STAR, municipality 101, not enrolled), so jobcenter 1/101 may register them.

  driver.py run    --soap URL --persons N --workers W --seconds S --converter-pid PID --out FILE
      W threads call the converter for S seconds: creates of contact groups and person
      categories, with a wsa:MessageID and without one, some sent twice on purpose (the
      second send must answer the same id), and GetVariablePersonStatus reads. Each person
      belongs to one worker, so its creates are made one after the other with a later start
      date each time (rule 5 never refuses one). A create is sent again, the same bytes, on
      a connection error and on a 9005xx or 900901 fault, until it answers 200 or another
      fault; a create in progress at the end is finished. Every acknowledged id is
      recorded. A thread samples the converter's VmRSS every 2 s. Writes FILE (JSON).

  driver.py verify --rest URL --results FILE --kills FILE --out FILE [--meta FILE]
      reads every soak person's contact groups and person categories from REST directly
      (as STAR, all of them, no kunAktuelle), proves the verdicts below, writes the summary
      JSON, prints a table; exit status 1 when a verdict fails.

Verdicts:
  acknowledged_exactly_once   every acknowledged id is in REST exactly once, under its person
                              and kind
  no_extra_records            the ids REST holds for the soak's persons are exactly the
                              acknowledged ids (nothing a retry doubled, nothing unacknowledged)
  rss_flat                    the converter's mean RSS of the last window is within 10% of the
                              mean of the second (windows: minutes when the run is 3 minutes
                              or longer, else sixths of the run)
  duplicates_same_id          a deliberate second send, and every retry, answered the first id
  no_business_faults          no create ended in a fault other than a retryable one (10xxxx
                              and 9xxxxx other than 9005xx/900901), none gave up
  reads_see_writes            a status read shows the person's last open registration of each
                              kind (acknowledged before the read) and no id that was not
                              acknowledged
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import soapload  # noqa: E402  (scripts/pylib: what the load drivers share)
from soapload import (  # noqa: E402
    ALL_IDS, API, CG_ID, CG_TYPES, ERROR_CODE, FIRST_DAY, KINDS, PC_ID, PC_TYPES, PRS, PSS,
    create_body, envelope, fictitious_cpr, soap_headers, split_url,
)


# The caller of every SOAP call: jobcenter 101, whose citizens the soak's persons are.
ORG_TYPE, ORG_CODE = "1", "101"
# Faults that mean "send the same content / MessageID again": the converter's upstream
# faults (900520 unreachable, 900521 timeout, 900522 unexpected answer, 900523 outcome
# unknown) and REST's 900901 (the store failed, nothing acknowledged).
RETRYABLE = {900520, 900521, 900522, 900523, 900901}
GIVE_UP_SECONDS = 120.0


def cpr_of(i):
    """A fictitious, valid-shaped CPR number: year 77, serial 5000+i."""
    return fictitious_cpr(i, 77, 5000)


# ---------------------------------------------------------------------------------------------
# REST (seed, verify): as STAR


def rest(base, method, path, body=None, headers=None, timeout=30):
    return soapload.rest(base, method, path, "soak", body, headers, timeout)


def cmd_seed(args):
    for i in range(args.persons):
        body = {"cpr": cpr_of(i), "kommunekode": "101", "akasse": None, "tilmeldt": False}
        status, text = rest(args.rest, "PUT", API + "/personregister", body)
        if status != 204:
            sys.exit(f"soak: SetPersonRegister answered {status}: {text[:300]!r}")
    print(f"  {args.persons} persons in the person register (municipality 101)")


# ---------------------------------------------------------------------------------------------
# SOAP


def metadata(user):
    return soapload.metadata((ORG_TYPE, ORG_CODE), user)


def status_body(cpr):
    return (
        "<pss:GetVariablePersonStatusRequest>"
        f"<pss:PersonCivilRegistrationIdentifier>{cpr}</pss:PersonCivilRegistrationIdentifier>"
        "</pss:GetVariablePersonStatusRequest>"
    )


class Client:
    """One keep-alive connection to the converter, opened again after any error."""

    def __init__(self, url):
        self.host, self.port, _ = split_url(url)
        self.conn = None

    def post(self, path, headers, body):
        """(status, bytes) or raises OSError/HTTPException (the connection is then dropped)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            res = self.conn.getresponse()
            data = res.read()
            if res.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return res.status, data
        except Exception:
            self.conn.close()
            self.conn = None
            raise


# ---------------------------------------------------------------------------------------------
# The load


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}  # "operation outcome" -> count
        self.faults = {}  # fault code -> count (every call)
        self.retries = 0  # sends again after a retryable failure
        self.retries_by_cause = {}
        self.duplicate_sends = 0
        self.duplicate_same_id = 0
        self.problems = []  # what breaks a verdict, with evidence (capped)
        self.problem_count = {}

    def call(self, op, outcome, code=None):
        with self.lock:
            k = f"{op} {outcome}"
            self.calls[k] = self.calls.get(k, 0) + 1
            if code is not None:
                self.faults[str(code)] = self.faults.get(str(code), 0) + 1

    def problem(self, kind, detail):
        with self.lock:
            self.problem_count[kind] = self.problem_count.get(kind, 0) + 1
            if len(self.problems) < 50:
                self.problems.append({"kind": kind, **detail})


def classify(status, data):
    """("ok", id-or-None) | ("fault", code) | ("odd", text)."""
    m = ERROR_CODE.search(data)
    if m:
        return "fault", int(m.group(1))
    if status == 200:
        m = CG_ID.search(data) or PC_ID.search(data)
        return "ok", m.group(1).decode() if m else None
    return "odd", f"HTTP {status}: {data[:200]!r}"


class Worker(threading.Thread):
    def __init__(self, n, args, persons, stats, deadline, t0):
        super().__init__(name=f"worker-{n}", daemon=True)
        self.n = n
        self.url = args.soap
        self.client = Client(args.soap)
        self.persons = persons  # [index]
        self.stats = stats
        self.deadline = deadline
        self.t0 = t0
        self.rng = random.Random(args.seed * 1000 + n)
        self.user = f"soak-w{n}"
        self.next_day = {i: FIRST_DAY for i in persons}  # per person, the next start date
        self.last_open = {}  # (person, kind) -> id of the last create without an end date
        self.acked = []  # every acknowledged create
        self.unresolved = []

    def send(self, path, version, action, env):
        try:
            status, data = self.client.post(path, soap_headers(version, action), env)
        except (OSError, http.client.HTTPException) as e:
            return "conn", type(e).__name__
        return classify(status, data)

    def run(self):
        i = 0
        while time.monotonic() < self.deadline:
            person = self.persons[i % len(self.persons)]
            i += 1
            if self.rng.random() < 0.25:
                self.status_read(person)
            else:
                self.create(person)

    def status_read(self, person):
        """GetVariablePersonStatus, checked for read-your-writes: it shows each kind's last
        open registration of the person and only acknowledged ids (this worker owns the
        person, so none of its creates is in flight)."""
        version = self.rng.choice(["1.1", "1.2"])
        env = envelope(version, metadata(self.user), status_body(cpr_of(person)))
        try:
            status, data = self.client.post(
                "/PersonStatusService/20",
                soap_headers(version, f"{PSS}/GetVariablePersonStatus"),
                env,
            )
        except (OSError, http.client.HTTPException):
            self.stats.call("GetVariablePersonStatus", "connection error")
            return
        outcome, value = classify(status, data)
        if outcome == "fault":
            self.stats.call("GetVariablePersonStatus", f"fault {value}", value)
            return
        if outcome != "ok":
            self.stats.call("GetVariablePersonStatus", "unexpected answer")
            self.stats.problem("unexpected_answer", {"op": "GetVariablePersonStatus", "answer": value})
            return
        self.stats.call("GetVariablePersonStatus", "200")
        seen = {"cg": set(), "pc": set()}
        for m in ALL_IDS.finditer(data):
            seen["cg" if m.group(1) == b"ContactGroupIdentifier" else "pc"].add(m.group(2).decode())
        acked = {r["id"] for r in self.acked if r["person"] == person}
        for kind in ("cg", "pc"):
            want = self.last_open.get((person, kind))
            if want is not None and want not in seen[kind]:
                self.stats.problem("read_misses_write", {"kind": kind, "id": want})
            for ident in seen[kind] - acked:
                self.stats.problem("read_shows_unacknowledged", {"kind": kind, "id": ident})

    def create(self, person):
        kind = self.rng.choice(["cg", "pc"])
        what, _ = KINDS[kind]
        op = f"Create{what}"
        with_mid = self.rng.random() < 0.5
        ended = self.rng.random() < 0.15
        duplicate = self.rng.random() < 0.2
        version = self.rng.choice(["1.1", "1.2"])
        day = self.next_day[person]
        self.next_day[person] = day + timedelta(days=1)
        ty = self.rng.choice(CG_TYPES if kind == "cg" else PC_TYPES)
        cpr = cpr_of(person)
        action = f"{PRS}/{op}"
        header = metadata(self.user)
        mid = None
        if with_mid:
            mid = f"urn:uuid:{uuid.uuid4()}"
            header += f"<wsa:MessageID>{mid}</wsa:MessageID><wsa:Action>{action}</wsa:Action>"
        env = envelope(version, header, create_body(what, cpr, ty, day, ended))
        rec = {
            "person": person,
            "kind": kind,
            "day": day.isoformat(),
            "message_id": mid is not None,
            "ended": ended,
            "worker": self.n,
            "first_sent": time.time(),
            "attempts": 0,
            "failures": [],  # [cause, wall time the failure answer arrived], before the 200
            "duplicate_failures": [],  # the same, of the deliberate second send
        }
        ident = self.until_answered(op, version, action, env, rec)
        if ident is None:
            return
        rec["id"] = ident
        rec["acked_at"] = time.time()
        self.acked.append(rec)
        self.last_open[(person, kind)] = None if ended else ident
        if duplicate:
            with self.stats.lock:
                self.stats.duplicate_sends += 1
            again = self.until_answered(op, version, action, env, rec, duplicate=True)
            if again == ident:
                with self.stats.lock:
                    self.stats.duplicate_same_id += 1
            elif again is not None:
                self.stats.problem(
                    "duplicate_other_id",
                    {"op": op, "first": ident, "second": again, "message_id": mid is not None},
                )

    def until_answered(self, op, version, action, env, rec, duplicate=False):
        """Sends env until a 200 (its id) or a fault that is not retryable (None)."""
        started = time.monotonic()
        pause = 0.1
        label = op + (" (duplicate)" if duplicate else "")
        while True:
            rec["attempts"] += 1
            outcome, value = self.send("/PersonRegistrationService/9", version, action, env)
            if outcome == "ok":
                self.stats.call(label, "200")
                if value is None:
                    self.stats.problem("200_without_id", {"op": op})
                if "id" in rec and value != rec["id"]:
                    self.stats.problem(
                        "retry_other_id", {"op": op, "first": rec["id"], "second": value}
                    )
                return value
            if outcome == "fault":
                self.stats.call(label, f"fault {value}", value)
                if value not in RETRYABLE:
                    self.stats.problem(
                        "business_fault", {"op": op, "code": value, "day": rec["day"]}
                    )
                    return None
                cause = str(value)
            elif outcome == "conn":
                self.stats.call(label, "connection error")
                cause = f"connection {value}"
            else:
                self.stats.call(label, "unexpected answer")
                self.stats.problem("unexpected_answer", {"op": op, "answer": value})
                cause = "unexpected answer"
            rec["duplicate_failures" if duplicate else "failures"].append([cause, time.time()])
            if time.monotonic() - started > GIVE_UP_SECONDS:
                self.stats.problem("gave_up", {"op": op, "attempts": rec["attempts"]})
                self.unresolved.append(rec)
                return None
            with self.stats.lock:
                self.stats.retries += 1
                self.stats.retries_by_cause[cause] = self.stats.retries_by_cause.get(cause, 0) + 1
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmd_run(args):
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    persons = list(range(args.persons))
    workers = [
        Worker(n, args, persons[n :: args.workers], stats, deadline, t0)
        for n in range(args.workers)
    ]
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            now = time.monotonic() - t0
            if now > args.seconds:
                break
            kib = rss_kib(args.converter_pid)
            if kib is not None:
                samples.append([round(now, 2), kib])
            stop.wait(2.0)

    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    started_wall = time.time()
    for w in workers:
        w.start()
    last = 0
    timeline = []  # [seconds, calls so far, retries so far], every 5 s: throughput around kills
    while any(w.is_alive() for w in workers):
        time.sleep(1)
        el = int(time.monotonic() - t0)
        if el % 5 == 0 and (not timeline or timeline[-1][0] != el):
            with stats.lock:
                timeline.append([el, sum(stats.calls.values()), stats.retries])
        if el - last >= 30 and el <= args.seconds:
            last = el
            with stats.lock:
                n = sum(stats.calls.values())
            print(f"  {el:4d} s: {n} calls, {stats.retries} retries", flush=True)
    stop.set()
    st.join()
    out = {
        "started": started_wall,
        "seconds": args.seconds,
        "load_seconds_with_tail": round(time.monotonic() - t0, 2),
        "workers": args.workers,
        "persons": args.persons,
        "calls": stats.calls,
        "faults": stats.faults,
        "retries": stats.retries,
        "retries_by_cause": stats.retries_by_cause,
        "duplicate_sends": stats.duplicate_sends,
        "duplicate_same_id": stats.duplicate_same_id,
        "problems": stats.problems,
        "problem_count": stats.problem_count,
        "rss_samples": samples,
        "timeline": timeline,
        "acked": [r for w in workers for r in w.acked],
        "unresolved": [r for w in workers for r in w.unresolved],
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"  load done: {sum(stats.calls.values())} calls, {len(out['acked'])} creates acknowledged")


# ---------------------------------------------------------------------------------------------
# Verification


def parse_instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def window_mean(samples, lo, hi):
    vals = [kib for t, kib in samples if lo <= t < hi]
    return (sum(vals) / len(vals), len(vals)) if vals else (None, 0)


def cmd_verify(args):
    with open(args.results) as f:
        res = json.load(f)
    kills = []
    if os.path.exists(args.kills):
        with open(args.kills) as f:
            kills = [json.loads(line) for line in f if line.strip()]
    meta = {}
    if args.meta and os.path.exists(args.meta):
        with open(args.meta) as f:
            meta = json.load(f)

    # Every soak person's records, as REST holds them.
    held = {}  # id -> [(person, kind, registreringstidspunkt)]
    for person in range(res["persons"]):
        for kind, (_, coll) in KINDS.items():
            status, body = rest(args.rest, "GET", f"{API}/{coll}", headers={"X-Cpr": cpr_of(person)})
            if status != 200:
                sys.exit(f"soak: GET {coll} answered {status}: {body[:300]!r}")
            for item in json.loads(body)[coll]:
                held.setdefault(item["id"], []).append(
                    (person, kind, item.get("registreringstidspunkt"), item.get("version"))
                )

    acked = res["acked"]
    acked_ids = {}
    for r in acked:
        acked_ids.setdefault(r["id"], []).append(r)
    missing, doubled, misplaced = [], [], []
    for ident, recs in acked_ids.items():
        h = held.get(ident, [])
        if not h:
            missing.append(ident)
        elif len(h) > 1:
            doubled.append(ident)
        elif (h[0][0], h[0][1]) != (recs[0]["person"], recs[0]["kind"]):
            misplaced.append(ident)
    # Two different logical creates acknowledged with one id would hide a lost record.
    shared = [i for i, recs in acked_ids.items() if len(recs) > 1]
    extra = sorted(set(held) - set(acked_ids))

    # A 900520 ("nothing was written") whose create REST had already recorded before the
    # fault arrived: the fault said less than it knew.
    written_before_fault = []
    for r in acked:
        h = held.get(r["id"])
        if not h or not h[0][2]:
            continue
        registered = parse_instant(h[0][2])
        for cause, at in r["failures"]:
            if registered < at:
                written_before_fault.append(
                    {
                        "cause": cause,
                        "operation": "CreateContactGroup" if r["kind"] == "cg" else "CreatePersonCategory",
                        "message_id": r["message_id"],
                        "attempts": r["attempts"],
                        "registered": h[0][2],
                        "fault_arrived": datetime.fromtimestamp(at, timezone.utc).isoformat(),
                        "fault_after_commit_ms": round((at - registered) * 1000, 1),
                    }
                )
                break

    samples = res["rss_samples"]
    total = res["seconds"]
    if total >= 180:
        second, last = (60, 120), (total - 60, total)
        windows = "minutes"
    else:
        sixth = total / 6
        second, last = (sixth, 2 * sixth), (total - sixth, total)
        windows = "sixths"
    m2, n2 = window_mean(samples, *second)
    ml, nl = window_mean(samples, *last)
    rss_ratio = (ml / m2) if (m2 and ml) else None

    pc = res["problem_count"]
    verdicts = {
        "acknowledged_exactly_once": not missing and not doubled and not misplaced and not shared,
        "no_extra_records": not extra,
        "rss_flat": rss_ratio is not None and abs(rss_ratio - 1) <= 0.10,
        "duplicates_same_id": not pc.get("duplicate_other_id") and not pc.get("retry_other_id")
        and not pc.get("200_without_id"),
        "no_business_faults": not pc.get("business_fault") and not pc.get("gave_up")
        and not pc.get("unexpected_answer"),
        "reads_see_writes": not pc.get("read_misses_write")
        and not pc.get("read_shows_unacknowledged"),
    }
    creates_with_retry = sum(1 for r in acked if r["failures"])
    summary = {
        "meta": meta,
        "seconds": total,
        "workers": res["workers"],
        "persons": res["persons"],
        "calls_total": sum(res["calls"].values()),
        "calls_by_outcome": dict(sorted(res["calls"].items())),
        "faults_by_code": res["faults"],
        "creates_acknowledged": len(acked),
        "creates_acknowledged_by": {
            "contact_group": sum(1 for r in acked if r["kind"] == "cg"),
            "person_category": sum(1 for r in acked if r["kind"] == "pc"),
            "with_message_id": sum(1 for r in acked if r["message_id"]),
            "without_message_id": sum(1 for r in acked if not r["message_id"]),
        },
        "creates_acknowledged_after_a_retry": creates_with_retry,
        "retries": res["retries"],
        "retries_by_cause": res["retries_by_cause"],
        "duplicate_sends": res["duplicate_sends"],
        "duplicate_sends_same_id": res["duplicate_same_id"],
        "calls_timeline": res.get("timeline", []),
        "backend_kills": len(kills),
        "kills": kills,
        "rest_records_of_soak_persons": len(held),
        "missing": missing[:20],
        "doubled": doubled[:20],
        "misplaced": misplaced[:20],
        "acknowledged_twice_for_different_creates": shared[:20],
        "extra": extra[:20],
        "extra_count": len(extra),
        "retried_creates_already_written_when_the_fault_came": len(written_before_fault),
        "retried_creates_already_written_by_cause": count_by(written_before_fault, "cause"),
        "retried_creates_already_written": written_before_fault[:50],
        "problem_count": pc,
        "problems": res["problems"],
        "unresolved": len(res["unresolved"]),
        "rss": {
            "windows": windows,
            "second_window_s": list(second),
            "last_window_s": list(last),
            "second_window_mean_kib": round(m2) if m2 else None,
            "second_window_samples": n2,
            "last_window_mean_kib": round(ml) if ml else None,
            "last_window_samples": nl,
            "last_over_second": round(rss_ratio, 4) if rss_ratio else None,
            "max_kib": max((k for _, k in samples), default=None),
            "samples": samples,
        },
        "verdicts": verdicts,
        "passed": all(verdicts.values()),
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
    print_table(summary)
    sys.exit(0 if summary["passed"] else 1)


def count_by(items, key):
    out = {}
    for i in items:
        out[i[key]] = out.get(i[key], 0) + 1
    return out


def print_table(s):
    r = s["rss"]
    rows = [
        ("run", f"{s['seconds']} s, {s['workers']} workers, {s['persons']} persons"),
        ("SOAP calls", str(s["calls_total"])),
    ]
    for k, v in s["calls_by_outcome"].items():
        rows.append(("  " + k, str(v)))
    rows += [
        ("creates acknowledged", str(s["creates_acknowledged"])),
        ("  after a retry", str(s["creates_acknowledged_after_a_retry"])),
        ("retries (sends again)", str(s["retries"])),
        ("deliberate duplicate sends", f"{s['duplicate_sends']} ({s['duplicate_sends_same_id']} same id)"),
        ("backend kills (SIGKILL)", str(s["backend_kills"])),
        ("REST records, soak persons", str(s["rest_records_of_soak_persons"])),
        ("  missing / doubled / extra", f"{len(s['missing'])} / {len(s['doubled'])} / {s['extra_count']}"),
        (
            "retried, already written",
            f"{s['retried_creates_already_written_when_the_fault_came']} "
            f"{json.dumps(s['retried_creates_already_written_by_cause'])}",
        ),
        (
            f"converter RSS ({r['windows']})",
            f"2nd {fmt_kib(r['second_window_mean_kib'])}, last {fmt_kib(r['last_window_mean_kib'])}, "
            f"ratio {r['last_over_second']}, max {fmt_kib(r['max_kib'])}",
        ),
    ]
    for k, v in s["verdicts"].items():
        rows.append((f"verdict {k}", "PASS" if v else "FAIL"))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if s["problems"]:
        print("  problems (first ones):")
        for p in s["problems"][:10]:
            print("    " + json.dumps(p))


def fmt_kib(k):
    return "-" if k is None else f"{k / 1024:.1f} MiB"


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--rest", required=True)
    s.add_argument("--persons", type=int, default=100)
    r = sub.add_parser("run")
    r.add_argument("--soap", required=True)
    r.add_argument("--persons", type=int, default=100)
    r.add_argument("--workers", type=int, default=8)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--converter-pid", type=int, required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--out", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--rest", required=True)
    v.add_argument("--results", required=True)
    v.add_argument("--kills", required=True)
    v.add_argument("--meta")
    v.add_argument("--out", required=True)
    args = p.parse_args()
    {"seed": cmd_seed, "run": cmd_run, "verify": cmd_verify}[args.cmd](args)


if __name__ == "__main__":
    main()
