#!/usr/bin/env python3
"""The replica test's client (scripts/ha.sh, issue 17): Python 3 standard library only.

  driver.py seed   --rest URL --persons N
      puts N fictitious persons in the REST service's person register (SetPersonRegister as
      STAR): all of municipality 101, the even ones members of a-kasse 12, none enrolled. So
      jobcenter 1/101 may register all of them, and a-kasse 12 hears about the even ones.

  driver.py run    --front URL --certs DIR --persons N --workers W --seconds S
                   --stats URL --out FILE [--drain-seconds D] [--rate R]
      calls the converter replicas through HAProxy's HTTPS front (URL, https://localhost:PORT)
      with the dev certificates of DIR, for S seconds:
        - W threads as jobcenter 1/101 (jobcenter-101.pem), R operations a second in all (a
          create with its retries, or a read; 50 by default): creates of contact groups and person
          categories, with a wsa:MessageID and without, some sent twice on purpose (the second
          send must answer the first id), GetVariablePersonStatus and GetPersonHistory reads.
          Each person belongs to one thread, so its creates are made one after the other with
          a later start date each time (rule 5 closes the open one, never refuses).
        - two WSRM subscribers polling their queues: jobcenter 1/101 (jobcenter-101.pem) and
          a-kasse 2/12 (akasse-12.pem): CreateSequence, the Get... operation of every inventory
          entry, TerminateSequence, again and again.
      A failed attempt (a connection error, a 502/503/504 page of HAProxy, a 9005xx or 900901
      fault) is retried as a real client would: a create with the same bytes (the same
      wsa:MessageID, or the same content: both idempotent); a read afresh; a WSRM step on the
      same sequence (any replica serves any step), a CreateSequence afresh. A TerminateSequence
      whose answer was lost is sent again: 200, or 900530 when the lost one had terminated it.
      After S seconds the creates in progress are finished, then the subscribers drain their
      queues until every message the acknowledged creates should give them has come in a
      terminated sequence and the queue is empty (at most D seconds). Every attempt is
      tallied: answered by a replica (the X-Served-By header HAProxy adds; per organisation,
      service and operation, as /api/migration counts) or not, and every failure with its
      start, end and cause. A thread samples HAProxy's stats every 0.5 s for the replicas'
      UP/DOWN changes. Writes FILE (JSON).

  driver.py verify --rest URL --results FILE --events FILE --replicas URL,URL,...
                   --out FILE [--meta FILE] [--settle S]
      reads every person's contact groups and person categories from REST directly (as
      STAR), reads /api/migration from every replica directly S seconds (3) after the last
      call, proves the verdicts below, writes the summary JSON and prints a table; exit
      status 1 when a verdict fails.

Verdicts:
  acknowledged_exactly_once  (a) every acknowledged create is in REST exactly once, under its
                             person and kind
  no_extra_records           (a) REST holds no other registration of the persons: no retry
                             and no deliberate second send made a second one
  retries_same_id            (a) every retry and deliberate second send answered the first id
  no_business_faults         no create ended in a fault other than a retryable one, none gave
                             up, no unexpected answer, no read or WSRM step gave up
  reads_see_writes           a status read shows the person's last open registration of each
                             kind, and a status or history read no id that was not acknowledged
  migration_counts           (b) every replica's /api/migration counts, per organisation,
                             service and operation, the calls the replicas answered, plus at
                             most the calls that were in flight on a killed replica (which it
                             may have counted before it died); faults per organisation and code
                             likewise
  migration_same_everywhere  (b) every replica shows the same numbers
  wsrm_delivered_once        (c) every message the acknowledged creates give each subscriber
                             (mappings/wsrm-routing.toml: jobcenter 101 every contact group
                             change as V5 and V4 and every person category change as V1; a-kasse
                             12, for its members, V5 of a contact group of type 13 or 23 created
                             and of a type 25 ended, here by rule 5's close) came in a terminated
                             sequence; none came that should not; no MessageIdentifier in two
                             terminated sequences, no message under two MessageIdentifiers; the
                             queues were empty at the end
  failures_attributed        (d) every failed attempt was in flight on a replica when it was
                             killed (started before it died, failed within KILL_GRACE seconds),
                             or fell in the PostgreSQL restart window (from its start to
                             PG_GRACE seconds after PostgreSQL was up again)
"""

import argparse
import http.client
import json
import os
import random
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import date, timedelta

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from soapload import (  # noqa: E402  (scripts/pylib: what the load drivers share)
    ALL_IDS, API, CG_ID, CG_TYPES, ERROR_CODE, FIRST_DAY, KINDS, MSG, PC_ID, PC_TYPES, PHS, PRS,
    PSS, WSRM, create_body, envelope, fictitious_cpr, metadata, soap_headers, split_url,
)
from soapload import rest as rest_as_star  # noqa: E402


PATH = {
    "PersonRegistrationService": "/PersonRegistrationService/9",
    "PersonStatusService": "/PersonStatusService/20",
    "PersonHistoryService": "/PersonHistoryService/4",
    "WsrmService": "/WsrmService/3",
    "WsrmMessageService": "/WsrmMessageService/10",
}
NS = {
    "PersonRegistrationService": PRS,
    "PersonStatusService": PSS,
    "PersonHistoryService": PHS,
    "WsrmService": WSRM,
    "WsrmMessageService": MSG,
}

JOBCENTER = ("1", "101")
AKASSE = ("2", "12")
CERT_OF = {JOBCENTER: "jobcenter-101", AKASSE: "akasse-12", ("5", "55570117"): "star"}
# Faults that mean "send it again": the converter's upstream faults (900520-900523), the WSRM
# queue store (900532) and the shared state (900533) unreachable, REST's store (900901).
RETRYABLE = {900520, 900521, 900522, 900523, 900532, 900533, 900901}
UNKNOWN_SEQUENCE = 900530
GIVE_UP_SECONDS = 120.0
# A keep-alive connection idle longer than this is not reused (HAProxy keeps it 15 s).
IDLE_REUSE_SECONDS = 8.0
# Attribution windows (verify): a failure in flight on a killed replica arrives within this
# many seconds of its death; the PostgreSQL restart window ends this many seconds after
# PostgreSQL accepts connections again (a replica's pool reconnects at its next use, /readyz
# reuses a probe for a second, HAProxy wants two good checks a second apart).
KILL_GRACE = 3.0
PG_GRACE = 8.0

V5, V4, PC1 = "GetContactGroupVersion5", "GetContactGroupVersion4", "GetPersonCategoryVersion1"


def cpr_of(i):
    """A fictitious, valid-shaped CPR number: year 78, serial 6000+i."""
    return fictitious_cpr(i, 78, 6000)


def akasse_of(i):
    return "12" if i % 2 == 0 else None


def key_str(k):
    return "|".join(k)


# ---------------------------------------------------------------------------------------------
# REST (seed, verify): plain HTTP to the reference backend, as STAR


def rest(base, method, path, body=None, headers=None, timeout=30):
    return rest_as_star(base, method, path, "ha", body, headers, timeout)


def cmd_seed(args):
    for i in range(args.persons):
        body = {"cpr": cpr_of(i), "kommunekode": "101", "akasse": akasse_of(i), "tilmeldt": False}
        status, text = rest(args.rest, "PUT", API + "/personregister", body)
        if status != 204:
            sys.exit(f"ha: SetPersonRegister answered {status}: {text[:300]!r}")
    print(f"  {args.persons} persons in the person register (municipality 101, "
          f"{sum(1 for i in range(args.persons) if akasse_of(i))} of them in a-kasse 12)")


# ---------------------------------------------------------------------------------------------
# SOAP


SOAP_ENVELOPE = re.compile(rb"<(?:\w+:)?Envelope[\s>]")


def tls_context(certs, org):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    name = CERT_OF[org]
    ctx.load_cert_chain(os.path.join(certs, f"{name}.pem"), os.path.join(certs, f"{name}-key.pem"))
    return ctx


class Client:
    """One keep-alive HTTPS connection to HAProxy's front, with one client certificate;
    opened again after any error, after Connection: close, or when idle too long."""

    def __init__(self, front, ctx):
        self.host, self.port, _ = split_url(front)
        self.ctx = ctx
        self.conn = None
        self.last = 0.0

    def post(self, path, headers, body):
        """(status, bytes, X-Served-By or None); raises OSError/HTTPException."""
        if self.conn is not None and time.monotonic() - self.last > IDLE_REUSE_SECONDS:
            self.conn.close()
            self.conn = None
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            res = self.conn.getresponse()
            data = res.read()
            served = res.getheader("X-Served-By")
            if res.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            self.last = time.monotonic()
            return res.status, data, served
        except Exception:
            self.conn.close()
            self.conn = None
            raise


class Result:
    """One attempt. kind: "ok" (a replica's answer without a fault), "fault" (a replica's
    SOAP fault, code), "failed" (no replica answer: connection error or HAProxy's page)."""

    __slots__ = ("kind", "code", "data", "cause", "start", "end", "served", "status", "answered")

    def __init__(self, kind, start, end, code=None, data=b"", cause=None, served=None, status=None):
        self.kind, self.code, self.data, self.cause = kind, code, data, cause
        self.start, self.end, self.served, self.status = start, end, served, status
        # Whether a replica answered it (and so counted it in /api/migration).
        self.answered = kind != "failed"

    def retryable(self):
        return self.kind == "failed" or (self.kind == "fault" and self.code in RETRYABLE)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}  # "operation outcome" -> count
        self.answered = {}  # (type, code, service, operation) -> answers from a replica
        self.faults = {}  # (type, code, fault code) -> a replica's faults
        self.served_by = {}  # replica -> answers
        self.failures = []  # every failed attempt: what (d) attributes
        self.retries = 0
        self.retries_by_cause = {}
        self.duplicate_sends = 0
        self.duplicate_same_id = 0
        self.problems = []
        self.problem_count = {}
        self.last_end = 0.0

    def problem(self, kind, detail):
        with self.lock:
            self.problem_count[kind] = self.problem_count.get(kind, 0) + 1
            if len(self.problems) < 60:
                self.problems.append({"kind": kind, **detail})

    def retry(self, cause):
        with self.lock:
            self.retries += 1
            self.retries_by_cause[cause] = self.retries_by_cause.get(cause, 0) + 1


def attempt(stats, client, org, user, service, op, version, body_xml, extra_header=""):
    """Sends one SOAP call through the front and tallies it."""
    action = f"{NS[service]}/{op}"
    env = envelope(version, metadata(org, user) + extra_header, body_xml)
    start = time.time()
    try:
        status, data, served = client.post(PATH[service], soap_headers(version, action), env)
    except (OSError, http.client.HTTPException) as e:
        r = Result("failed", start, time.time(), cause=f"connection {type(e).__name__}")
    else:
        end = time.time()
        soap = bool(SOAP_ENVELOPE.search(data[:400]))
        if served is None and not soap:
            r = Result("failed", start, end, cause=f"HAProxy {status}", status=status)
        elif not soap:
            # A replica's answer that is not SOAP: the client cannot know what happened, and
            # sends it again. The replica counted the call.
            r = Result("failed", start, end, cause=f"replica {status} without SOAP", served=served,
                       status=status)
            r.answered = True
            stats.problem("unexpected_answer", {"op": op, "status": status, "served_by": served,
                                                "body": data[:300].decode("utf-8", "replace")})
        else:
            m = ERROR_CODE.search(data)
            if m:
                r = Result("fault", start, end, code=int(m.group(1)), data=data, served=served, status=status)
            else:
                r = Result("ok", start, end, data=data, served=served, status=status)
                if status != 200:
                    stats.problem("unexpected_answer", {"op": op, "status": status, "served_by": served,
                                                        "body": data[:300].decode("utf-8", "replace")})
    key = (org[0], org[1], service, op)
    with stats.lock:
        stats.last_end = max(stats.last_end, r.end)
        if r.kind == "failed":
            outcome = r.cause
        elif r.kind == "fault":
            outcome = f"fault {r.code}"
        else:
            outcome = "ok"
        k = f"{op} {outcome}"
        stats.calls[k] = stats.calls.get(k, 0) + 1
        if r.answered:
            stats.answered[key] = stats.answered.get(key, 0) + 1
            name = r.served or "?"
            stats.served_by[name] = stats.served_by.get(name, 0) + 1
            if r.kind == "fault":
                fk = (org[0], org[1], r.code)
                stats.faults[fk] = stats.faults.get(fk, 0) + 1
        if r.retryable():
            stats.failures.append({
                "org": f"{org[0]}:{org[1]}",
                "service": service,
                "operation": op,
                "start": round(r.start, 3),
                "end": round(r.end, 3),
                "cause": r.cause if r.kind == "failed" else str(r.code),
                "answered_by_replica": r.answered,
                "served_by": r.served,
            })
    return r


def until_answered(stats, client, org, user, service, op, version, body_xml, extra_header="",
                   give_up=GIVE_UP_SECONDS, stop=None):
    """attempt() until a result that is not retryable (or give_up seconds): the last one."""
    started = time.monotonic()
    pause = 0.1
    while True:
        r = attempt(stats, client, org, user, service, op, version, body_xml, extra_header)
        if not r.retryable():
            return r
        if time.monotonic() - started > give_up or (stop is not None and stop()):
            return r
        stats.retry(r.cause if r.kind == "failed" else str(r.code))
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


# ---------------------------------------------------------------------------------------------
# Creates and reads (jobcenter 1/101)


class Pacer:
    """Spaces the workers' operations (a create with its retries, or a read) to `rate` a
    second in all: the load of a busy day's KSS traffic, not a benchmark, so that WSB
    delivery (one event at a time) keeps up and the drain at the end is short."""

    def __init__(self, rate):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self):
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class Worker(threading.Thread):
    def __init__(self, n, args, persons, stats, deadline, pacer):
        super().__init__(name=f"worker-{n}", daemon=True)
        self.n = n
        self.client = Client(args.front, tls_context(args.certs, JOBCENTER))
        self.persons = persons
        self.stats = stats
        self.deadline = deadline
        self.rng = random.Random(args.seed * 1000 + n)
        self.user = f"ha-w{n}"
        self.next_day = {i: FIRST_DAY for i in persons}
        self.last_open = {}  # (person, kind) -> id of the last create without an end date
        self.acked = []  # every acknowledged create, in order
        self.unresolved = []
        self.pacer = pacer

    def run(self):
        i = 0
        while time.monotonic() < self.deadline:
            self.pacer.wait()
            if time.monotonic() >= self.deadline:
                break
            person = self.persons[i % len(self.persons)]
            i += 1
            x = self.rng.random()
            if x < 0.15:
                self.read(person, "PersonStatusService", "GetVariablePersonStatus")
            elif x < 0.25:
                self.read(person, "PersonHistoryService", "GetPersonHistory")
            else:
                self.create(person)

    def read(self, person, service, op):
        """A status or history read, sent afresh after a failure. Read-your-writes: the
        worker owns the person, so none of its creates is in flight."""
        version = self.rng.choice(["1.1", "1.2"])
        prefix = "pss" if service == "PersonStatusService" else "phs"
        body = (f"<{prefix}:{op}Request><{prefix}:PersonCivilRegistrationIdentifier>{cpr_of(person)}"
                f"</{prefix}:PersonCivilRegistrationIdentifier></{prefix}:{op}Request>")
        r = until_answered(self.stats, self.client, JOBCENTER, self.user, service, op, version, body,
                           give_up=60.0)
        if r.kind == "failed" or (r.kind == "fault" and r.code in RETRYABLE):
            self.stats.problem("read_gave_up", {"op": op, "last": r.cause or r.code})
            return
        if r.kind == "fault":
            self.stats.problem("read_fault", {"op": op, "code": r.code})
            return
        seen = {"cg": set(), "pc": set()}
        for m in ALL_IDS.finditer(r.data):
            seen["cg" if m.group(1) == b"ContactGroupIdentifier" else "pc"].add(m.group(2).decode())
        acked = {a["id"] for a in self.acked if a["person"] == person}
        for kind in ("cg", "pc"):
            if op == "GetVariablePersonStatus":
                want = self.last_open.get((person, kind))
                if want is not None and want not in seen[kind]:
                    self.stats.problem("read_misses_write", {"op": op, "kind": kind, "id": want})
            else:
                mine = {a["id"] for a in self.acked if a["person"] == person and a["kind"] == kind}
                for ident in mine - seen[kind]:
                    self.stats.problem("read_misses_write", {"op": op, "kind": kind, "id": ident})
            for ident in seen[kind] - acked:
                self.stats.problem("read_shows_unacknowledged", {"op": op, "kind": kind, "id": ident})

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
        header = ""
        if with_mid:
            header = (f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
                      f"<wsa:Action>{PRS}/{op}</wsa:Action>")
        body = create_body(what, cpr_of(person), ty, day, ended)
        rec = {
            "person": person,
            "kind": kind,
            "type": ty,
            "day": day.isoformat(),
            "message_id": with_mid,
            "ended": ended,
            "worker": self.n,
            "attempts": 0,
        }
        ident = self.send_create(op, version, body, header, rec)
        if ident is None:
            return
        rec["id"] = ident
        self.acked.append(rec)
        self.last_open[(person, kind)] = None if ended else ident
        if duplicate:
            with self.stats.lock:
                self.stats.duplicate_sends += 1
            again = self.send_create(op, version, body, header, rec, duplicate=True)
            if again == ident:
                with self.stats.lock:
                    self.stats.duplicate_same_id += 1
            elif again is not None:
                self.stats.problem("duplicate_other_id", {"op": op, "first": ident, "second": again})

    def send_create(self, op, version, body, header, rec, duplicate=False):
        """The same bytes until a 200 (its id) or a fault that is not retryable (None)."""
        started = time.monotonic()
        pause = 0.1
        while True:
            rec["attempts"] += 1
            r = attempt(self.stats, self.client, JOBCENTER, self.user, "PersonRegistrationService",
                        op, version, body, header)
            if r.kind == "ok":
                m = CG_ID.search(r.data) or PC_ID.search(r.data)
                value = m.group(1).decode() if m else None
                if value is None:
                    self.stats.problem("200_without_id", {"op": op})
                if "id" in rec and value != rec["id"]:
                    self.stats.problem("retry_other_id", {"op": op, "first": rec["id"], "second": value})
                if rec["attempts"] > 1 and not duplicate:
                    rec["after_retry"] = True
                return value
            if not r.retryable():
                self.stats.problem("business_fault", {"op": op, "code": r.code, "day": rec["day"]})
                return None
            if time.monotonic() - started > GIVE_UP_SECONDS:
                self.stats.problem("gave_up", {"op": op, "attempts": rec["attempts"]})
                self.unresolved.append(rec)
                return None
            self.stats.retry(r.cause if r.kind == "failed" else str(r.code))
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


# ---------------------------------------------------------------------------------------------
# WSRM subscribers


def local(tag):
    return tag.rsplit("}", 1)[-1]


def parse_sequence(data):
    """CreateSequence's answer: (SequenceIdentifier, {ServiceName: count}, {endpoints})."""
    root = ET.fromstring(data)
    seq, inventory, endpoints = None, {}, set()
    for el in root.iter():
        if local(el.tag) == "SequenceIdentifier":
            seq = (el.text or "").strip()
        elif local(el.tag) == "Inventory":
            name = count = None
            for c in el:
                if local(c.tag) == "ServiceName":
                    name = (c.text or "").strip()
                elif local(c.tag) == "MessageCount":
                    count = int((c.text or "0").strip())
                elif local(c.tag) == "ServiceEndpoint":
                    endpoints.add((c.text or "").strip())
            inventory[name] = count
    return seq, inventory, endpoints


def parse_messages(data):
    """A Get... answer's messages: [(MessageIdentifier, registration id, ChangeType, type)]."""
    root = ET.fromstring(data)
    out = []
    for el in root.iter():
        if not (el.tag.startswith("{" + MSG + "}") and local(el.tag).endswith("Message")):
            continue
        fields = {}
        for c in el.iter():
            if len(c) == 0 and c is not el:
                fields[local(c.tag)] = (c.text or "").strip()
        if "MessageIdentifier" not in fields:
            continue
        reg = fields.get("ContactGroupIdentifier") or fields.get("PersonCategoryIdentifier")
        ty = fields.get("ContactGroupTypeIdentifier") or fields.get("PersonCategoryTypeIdentifier")
        out.append((fields["MessageIdentifier"], reg, fields.get("ChangeType"), ty))
    return out


class Poller(threading.Thread):
    """One legacy WSRM subscriber polling its queue through the front."""

    def __init__(self, org, args, stats, deadline):
        super().__init__(name=f"wsrm-{org[0]}:{org[1]}", daemon=True)
        self.org = org
        self.sub = f"{org[0]}:{org[1]}"
        self.client = Client(args.front, tls_context(args.certs, org))
        self.stats = stats
        self.deadline = deadline
        self.rng = random.Random(args.seed * 7919 + int(org[0]))
        self.user = f"ha-wsrm-{org[0]}-{org[1]}"
        self.endpoint = f"{args.front.rstrip('/')}/WsrmMessageService/10"
        self.sequences = []
        self.expected = None  # set by the main thread when the load is over
        self.drain_deadline = None
        self.drained = None  # seconds the drain took, once done
        self.last_inventory = None
        self.polls = 0

    def step(self, service, op, version, inner, give_up=30.0):
        body = f"<{'ws' if service == 'WsrmService' else 'wm'}:{op}Request>{inner}" \
               f"</{'ws' if service == 'WsrmService' else 'wm'}:{op}Request>"
        return until_answered(self.stats, self.client, self.org, self.user, service, op, version,
                              body, give_up=give_up)

    def delivered(self):
        out = set()
        for s in self.sequences:
            if s["outcome"] in ("terminated", "terminated, answer lost"):
                for kind, msgs in s["messages"].items():
                    for _mid, reg, change, _ty in msgs:
                        out.add((kind, reg, change))
        return out

    def run(self):
        hard_end = None
        while True:
            now = time.monotonic()
            if self.expected is None:
                if now >= self.deadline:
                    # The load is over: wait for the main thread's expectations.
                    time.sleep(0.1)
                    continue
            else:
                if hard_end is None:
                    hard_end = self.drain_deadline
                    drain_start = now
                if now >= hard_end:
                    break
            total = self.poll_once()
            if self.expected is not None and total == 0 and self.expected <= self.delivered():
                self.drained = round(time.monotonic() - drain_start, 2)
                break
            time.sleep(0.3 if not total else 0.02)

    def poll_once(self):
        """One sequence: CreateSequence, every inventory entry, TerminateSequence. The number
        of messages the inventory named (None when CreateSequence failed)."""
        self.polls += 1
        version = self.rng.choice(["1.1", "1.2"])
        r = self.step("WsrmService", "CreateSequence", version, "")
        if r.kind != "ok":
            if not r.retryable():
                self.stats.problem("wsrm_fault", {"sub": self.sub, "op": "CreateSequence", "code": r.code})
            else:
                self.stats.problem("wsrm_gave_up", {"sub": self.sub, "op": "CreateSequence"})
            return None
        try:
            seq, inventory, endpoints = parse_sequence(r.data)
        except ET.ParseError as e:
            self.stats.problem("wsrm_unparsable", {"sub": self.sub, "op": "CreateSequence", "error": str(e)})
            return None
        self.last_inventory = inventory
        if endpoints and endpoints != {self.endpoint}:
            self.stats.problem("wsrm_endpoint", {"sub": self.sub, "got": sorted(endpoints), "want": self.endpoint})
        s = {"seq": seq, "created": round(r.end, 3), "inventory": inventory, "messages": {},
             "outcome": None}
        self.sequences.append(s)
        seq_el = f"<wm:SequenceIdentifier>{seq}</wm:SequenceIdentifier>"
        for kind, count in sorted(inventory.items()):
            r = self.step("WsrmMessageService", kind, version, seq_el)
            if r.kind == "fault" and r.code == UNKNOWN_SEQUENCE:
                # Released (its timeout) while the store was unreachable: comes again.
                s["outcome"] = "released before it was read"
                return sum(inventory.values())
            if r.kind != "ok":
                self.stats.problem("wsrm_gave_up" if r.retryable() else "wsrm_fault",
                                   {"sub": self.sub, "op": kind, "code": r.code, "cause": r.cause})
                s["outcome"] = "abandoned"
                return sum(inventory.values())
            msgs = parse_messages(r.data)
            if len(msgs) != count:
                self.stats.problem("wsrm_inventory_mismatch",
                                   {"sub": self.sub, "kind": kind, "inventory": count, "got": len(msgs)})
            s["messages"][kind] = msgs
        s["outcome"] = self.terminate(seq, version)
        return sum(inventory.values())

    def terminate(self, seq, version):
        """TerminateSequence until 200; 900530 after an attempt that may have reached a
        replica means that attempt terminated it (its answer was lost)."""
        inner = f"<ws:SequenceIdentifier>{seq}</ws:SequenceIdentifier>"
        body = f"<ws:TerminateSequenceRequest>{inner}</ws:TerminateSequenceRequest>"
        maybe_reached = False
        started = time.monotonic()
        pause = 0.1
        while True:
            r = attempt(self.stats, self.client, self.org, self.user, "WsrmService",
                        "TerminateSequence", version, body)
            if r.kind == "ok":
                return "terminated"
            if r.kind == "fault" and r.code == UNKNOWN_SEQUENCE:
                if maybe_reached:
                    return "terminated, answer lost"
                self.stats.problem("wsrm_terminate_unknown", {"sub": self.sub, "seq": seq})
                return "unknown sequence at terminate"
            if not r.retryable():
                self.stats.problem("wsrm_fault", {"sub": self.sub, "op": "TerminateSequence", "code": r.code})
                return "fault"
            # HAProxy's 503 (no replica) and a replica's 900532 (nothing acknowledged) did
            # not terminate it; a broken connection or a 502/504 may have.
            if r.kind == "failed" and (r.status != 503 or r.answered):
                maybe_reached = True
            if r.kind == "fault" and r.code == 900523:
                maybe_reached = True
            if time.monotonic() - started > 30.0:
                self.stats.problem("wsrm_gave_up", {"sub": self.sub, "op": "TerminateSequence"})
                return "gave up"
            self.stats.retry(r.cause if r.kind == "failed" else str(r.code))
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def expected_messages(acked):
    """What the acknowledged creates give each subscriber, as {subscriber: {(kind, id,
    change)}}. Each worker's creates are in order per person; rule 5: a create closes the
    person's open registration of its kind (an Updated with the end date), then its own
    Created. Routing (mappings/wsrm-routing.toml): jobcenter 101 (every person's
    municipality) gets V5 and V4 of every contact group change and V1 of every person
    category change; a-kasse 12 gets, for its members, V5 of a contact group of type 13 or 23
    created and of a type 25 ended."""
    out = {"1:101": set(), "2:12": set()}
    open_ = {}
    for rec in acked:
        person, kind = rec["person"], rec["kind"]
        events = []
        prev = open_.get((person, kind))
        if prev is not None:
            events.append(("Updated", prev))
        events.append(("Created", rec))
        open_[(person, kind)] = None if rec["ended"] else rec
        for change, r in events:
            if kind == "cg":
                out["1:101"].add((V5, r["id"], change))
                out["1:101"].add((V4, r["id"], change))
                if akasse_of(person) == "12" and (
                    (change == "Created" and r["type"] in (13, 23))
                    or (change == "Updated" and r["type"] == 25)
                ):
                    out["2:12"].add((V5, r["id"], change))
            else:
                out["1:101"].add((PC1, r["id"], change))
    return out


def stats_sampler(url, stop, transitions, t0):
    """HAProxy's replica states every 0.5 s: [time, server, from, to] for every change."""
    last = {}
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                text = res.read().decode()
            for line in text.splitlines():
                cols = line.split(",")
                if len(cols) > 17 and cols[0] == "vos_converter" and cols[1] not in ("BACKEND", "FRONTEND"):
                    state = cols[17].split(" ")[0]
                    if last.get(cols[1]) != state:
                        transitions.append([round(time.time(), 3), cols[1], last.get(cols[1]), state])
                        last[cols[1]] = state
        except Exception as e:  # noqa: BLE001 - a sample that fails is skipped, and noted
            transitions.append([round(time.time(), 3), "stats", None, f"unreadable: {type(e).__name__}"])
        stop.wait(0.5)


def cmd_run(args):
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    persons = list(range(args.persons))
    pacer = Pacer(args.rate)
    workers = [Worker(n, args, persons[n :: args.workers], stats, deadline, pacer)
               for n in range(args.workers)]
    pollers = [Poller(org, args, stats, deadline) for org in (JOBCENTER, AKASSE)]
    transitions = []
    stop = threading.Event()
    sampler = threading.Thread(target=stats_sampler, args=(args.stats, stop, transitions, t0), daemon=True)
    sampler.start()
    started_wall = time.time()
    for t in workers + pollers:
        t.start()
    timeline = []
    last_print = 0
    while any(w.is_alive() for w in workers):
        time.sleep(1)
        el = int(time.monotonic() - t0)
        if el % 5 == 0 and (not timeline or timeline[-1][0] != el):
            with stats.lock:
                timeline.append([el, sum(stats.calls.values()), stats.retries, len(stats.failures)])
        if el - last_print >= 15 and el <= args.seconds:
            last_print = el
            with stats.lock:
                n, f = sum(stats.calls.values()), len(stats.failures)
            print(f"  {el:4d} s: {n} calls, {f} failed attempts, {stats.retries} retries", flush=True)
    load_end = time.monotonic()
    acked = [r for w in workers for r in w.acked]
    expected = expected_messages(acked)
    for p in pollers:
        p.drain_deadline = time.monotonic() + args.drain_seconds
        p.expected = expected[p.sub]
    for p in pollers:
        p.join(args.drain_seconds + 120)
    stop.set()
    sampler.join(5)
    out = {
        "started": started_wall,
        "seconds": args.seconds,
        "load_seconds_with_tail": round(load_end - t0, 2),
        "workers": args.workers,
        "rate": args.rate,
        "persons": args.persons,
        "front": args.front,
        "calls": stats.calls,
        "answered": [[*k, n] for k, n in sorted(stats.answered.items())],
        "faults": [[*k, n] for k, n in sorted(stats.faults.items())],
        "served_by": stats.served_by,
        "failures": stats.failures,
        "retries": stats.retries,
        "retries_by_cause": stats.retries_by_cause,
        "duplicate_sends": stats.duplicate_sends,
        "duplicate_same_id": stats.duplicate_same_id,
        "problems": stats.problems,
        "problem_count": stats.problem_count,
        "timeline": timeline,
        "last_call_end": stats.last_end,
        "haproxy_transitions": transitions,
        "acked": acked,
        "unresolved": [r for w in workers for r in w.unresolved],
        "wsrm": {
            p.sub: {
                "sequences": p.sequences,
                "expected": sorted(list(e) for e in expected[p.sub]),
                "polls": p.polls,
                "drained_after_s": p.drained,
                "last_inventory": p.last_inventory,
                "still_running": p.is_alive(),
            }
            for p in pollers
        },
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"  load done: {sum(stats.calls.values())} calls, {len(acked)} creates acknowledged, "
          f"{len(stats.failures)} failed attempts; WSRM drained: "
          + ", ".join(f"{p.sub} {'in ' + str(p.drained) + ' s' if p.drained is not None else 'NOT'}"
                      for p in pollers), flush=True)


# ---------------------------------------------------------------------------------------------
# Verification


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return json.loads(res.read())


def migration_counts(m):
    """/api/migration → ({(type, code, service, op): total}, {(type, code, fault): count})."""
    calls, faults = {}, {}
    for o in m.get("organisations", []):
        t, c = o["organisationType"], o["organisationCode"]
        for op in o.get("operations", []):
            calls[(t, c, op["service"], op["operation"])] = op["total"]
        for f in o.get("faultsByCode", []):
            faults[(t, c, f["code"])] = f["count"]
    return calls, faults


def attribute(failures, kills, pg):
    """Each failure's attribution: "kill N" (in flight on the replica killed at kill N),
    "postgres restart", or None."""
    for f in failures:
        f["attributed"] = None
        for k in kills:
            if f["start"] <= k["dead"] + 0.05 and k["kill_sent"] <= f["end"] <= k["dead"] + KILL_GRACE:
                f["attributed"] = f"kill {k['n']}"
                break
        if f["attributed"] is None:
            for p in pg:
                if p["start"] - 0.2 <= f["end"] <= p["ready"] + PG_GRACE:
                    f["attributed"] = "postgres restart"
                    break


def haproxy_outages(transitions, t0):
    """From the sampled states: [server or "all", from s, for s] for every stretch out of
    rotation (not UP), "all" while no replica was UP."""
    state, since, out = {}, {}, []
    none_since = None
    for t, srv, _old, new in transitions:
        if srv == "stats":
            continue
        up = new == "UP"
        if not up and state.get(srv, True):
            since[srv] = t
        if up and not state.get(srv, True):
            out.append([srv, round(since[srv] - t0, 1), round(t - since[srv], 1)])
        state[srv] = up
        all_down = bool(state) and not any(state.values())
        if all_down and none_since is None:
            none_since = t
        if not all_down and none_since is not None:
            out.append(["all", round(none_since - t0, 1), round(t - none_since, 1)])
            none_since = None
    return out


def cmd_verify(args):
    with open(args.results) as f:
        res = json.load(f)
    events = []
    if os.path.exists(args.events):
        with open(args.events) as f:
            events = [json.loads(line) for line in f if line.strip()]
    kills = [e for e in events if e["type"] == "kill"]
    pg = [e for e in events if e["type"] == "pg_restart"]
    meta = {}
    if args.meta and os.path.exists(args.meta):
        with open(args.meta) as f:
            meta = json.load(f)
    replicas = [u for u in args.replicas.split(",") if u]

    # (b) first: /api/migration on every replica, settle seconds after the last call.
    wait = res["last_call_end"] + args.settle - time.time()
    if wait > 0:
        time.sleep(wait)
    migration = {}
    for u in replicas:
        try:
            migration[u] = get_json(u.rstrip("/") + "/api/migration")
        except Exception as e:  # noqa: BLE001 - reported as a failed verdict
            migration[u] = {"error": f"{type(e).__name__}: {e}"}
    read_at = time.time()

    # (a) every person's records, as REST holds them.
    held = {}
    for person in range(res["persons"]):
        for kind, (_, coll) in KINDS.items():
            status, body = rest(args.rest, "GET", f"{API}/{coll}", headers={"X-Cpr": cpr_of(person)})
            if status != 200:
                sys.exit(f"ha: GET {coll} answered {status}: {body[:300]!r}")
            for item in json.loads(body)[coll]:
                held.setdefault(item["id"], []).append((person, kind))
    acked = res["acked"]
    acked_ids = {}
    for r in acked:
        acked_ids.setdefault(r["id"], []).append(r)
    missing = [i for i in acked_ids if not held.get(i)]
    doubled = [i for i in acked_ids if len(held.get(i, [])) > 1]
    misplaced = [i for i, recs in acked_ids.items()
                 if len(held.get(i, [])) == 1 and held[i][0] != (recs[0]["person"], recs[0]["kind"])]
    shared = [i for i, recs in acked_ids.items() if len(recs) > 1]
    extra = sorted(set(held) - set(acked_ids))

    # (d) failures, attributed.
    failures = res["failures"]
    attribute(failures, kills, pg)
    unattributed = [f for f in failures if f["attributed"] is None]
    by_cause = {}
    for f in failures:
        k = f"{f['cause']} / {f['attributed'] or 'UNATTRIBUTED'}"
        by_cause[k] = by_cause.get(k, 0) + 1
    pg_failures = [f for f in failures if f["attributed"] == "postgres restart"]
    pg_last_after = (
        round(max(f["end"] for f in pg_failures) - pg[0]["ready"], 2) if pg_failures and pg else None
    )

    # (b) migration: answered <= counted <= answered + in flight on a killed replica.
    answered = {tuple(a[:4]): a[4] for a in res["answered"]}
    faults_seen = {(a[0], a[1], a[2]): a[3] for a in res["faults"]}
    allowance, allowance_org = {}, {}
    for f in failures:
        if f["attributed"] and f["attributed"].startswith("kill") and not f["answered_by_replica"]:
            t, c = f["org"].split(":")
            k = (t, c, f["service"], f["operation"])
            allowance[k] = allowance.get(k, 0) + 1
            allowance_org[(t, c)] = allowance_org.get((t, c), 0) + 1
    mismatches = []
    per_replica = {}
    for u, m in migration.items():
        if "error" in m:
            mismatches.append({"replica": u, "error": m["error"]})
            continue
        calls, faults = migration_counts(m)
        per_replica[u] = (calls, faults)
        for k in sorted(set(calls) | set(answered)):
            got, want, extra_ok = calls.get(k, 0), answered.get(k, 0), allowance.get(k, 0)
            if not want <= got <= want + extra_ok:
                mismatches.append({"replica": u, "key": key_str(k), "counted": got, "answered": want,
                                   "in_flight_on_killed": extra_ok})
        for k in sorted(set(faults) | set(faults_seen)):
            got, want = faults.get(k, 0), faults_seen.get(k, 0)
            extra_ok = allowance_org.get((k[0], k[1]), 0)
            if not want <= got <= want + extra_ok:
                mismatches.append({"replica": u, "fault": f"{k[0]}:{k[1]} {k[2]}", "counted": got,
                                   "answered": want, "in_flight_on_killed": extra_ok})
    views = [(json.dumps(sorted((key_str(k), n) for k, n in c.items())),
              json.dumps(sorted((f"{k[0]}:{k[1]}:{k[2]}", n) for k, n in f.items())))
             for c, f in per_replica.values()]
    same_everywhere = len(per_replica) == len(replicas) and len(set(views)) == 1
    wsrm_depths = {
        u: {q["subscriber"]: q.get("depth") for q in m.get("wsrm", [])} for u, m in migration.items()
        if "error" not in m
    }

    # (c) WSRM.
    wsrm_report = {}
    wsrm_ok = True
    for sub, w in res["wsrm"].items():
        expected = {tuple(e) for e in w["expected"]}
        delivered = {}  # (kind, id, change) -> {MessageIdentifier}
        seqs_of = {}  # MessageIdentifier -> [sequence]
        outcomes = {}
        for s in w["sequences"]:
            outcomes[s["outcome"]] = outcomes.get(s["outcome"], 0) + 1
            if s["outcome"] not in ("terminated", "terminated, answer lost"):
                continue
            for kind, msgs in s["messages"].items():
                for mid, reg, change, _ty in msgs:
                    delivered.setdefault((kind, reg, change), set()).add(mid)
                    seqs_of.setdefault(mid, []).append(s["seq"])
        missing_m = sorted(expected - set(delivered))
        unexpected_m = sorted(set(delivered) - expected)
        twice = {mid: s for mid, s in seqs_of.items() if len(s) > 1}
        two_ids = {"|".join(k): sorted(v) for k, v in delivered.items() if len(v) > 1}
        empty_at_end = w["last_inventory"] == {} and not w["still_running"]
        ok = not missing_m and not unexpected_m and not twice and not two_ids and empty_at_end
        wsrm_ok = wsrm_ok and ok
        by_kind = {}
        for kind, _reg, _change in expected:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        wsrm_report[sub] = {
            "expected": len(expected),
            "expected_by_kind": by_kind,
            "delivered_in_terminated_sequences": len(delivered),
            "missing": len(missing_m),
            "missing_first": missing_m[:10],
            "unexpected": len(unexpected_m),
            "unexpected_first": unexpected_m[:10],
            "message_identifier_in_two_terminated_sequences": len(twice),
            "message_identifier_in_two_first": dict(list(twice.items())[:5]),
            "message_under_two_identifiers": len(two_ids),
            "sequences": len(w["sequences"]),
            "sequences_by_outcome": outcomes,
            "polls": w["polls"],
            "drained_after_s": w["drained_after_s"],
            "queue_empty_at_end": empty_at_end,
        }

    # While PostgreSQL was down: /readyz 503 naming the state store; after: 200 everywhere.
    readyz_ok = bool(pg)
    for p in pg:
        down = p.get("readyz_down")
        if down is not None and not (down.get("status") == 503 and "state store" in down.get("body", "")):
            readyz_ok = False
        for b in p.get("readyz_back", []):
            if b["readyz"].get("status") != 200:
                readyz_ok = False
    depth_ok = all(d == 0 for depths in wsrm_depths.values() for d in depths.values()) and bool(wsrm_depths)

    pc = res["problem_count"]
    verdicts = {
        "acknowledged_exactly_once": not missing and not doubled and not misplaced and not shared,
        "no_extra_records": not extra,
        "retries_same_id": not pc.get("duplicate_other_id") and not pc.get("retry_other_id")
        and not pc.get("200_without_id"),
        "no_business_faults": not any(pc.get(k) for k in (
            "business_fault", "unexpected_answer", "gave_up", "read_gave_up", "read_fault", "wsrm_fault", "wsrm_gave_up",
            "wsrm_unparsable", "wsrm_endpoint", "wsrm_inventory_mismatch", "wsrm_terminate_unknown")),
        "reads_see_writes": not pc.get("read_misses_write") and not pc.get("read_shows_unacknowledged"),
        "migration_counts": not mismatches,
        "migration_same_everywhere": same_everywhere,
        "wsrm_delivered_once": wsrm_ok and depth_ok,
        "readyz_follows_state_store": readyz_ok,
        "failures_attributed": not unattributed,
    }
    # HAProxy's view: how long each replica was out, and how long none was UP.
    transitions = res.get("haproxy_transitions", [])
    outages = haproxy_outages(transitions, res["started"])
    summary = {
        "meta": meta,
        "seconds": res["seconds"],
        "workers": res["workers"],
        "rate": res["rate"],
        "persons": res["persons"],
        "calls_total": sum(res["calls"].values()),
        "calls_by_outcome": dict(sorted(res["calls"].items())),
        "answered_by_replica": res["served_by"],
        "creates_acknowledged": len(acked),
        "creates_acknowledged_by": {
            "contact_group": sum(1 for r in acked if r["kind"] == "cg"),
            "person_category": sum(1 for r in acked if r["kind"] == "pc"),
            "with_message_id": sum(1 for r in acked if r["message_id"]),
            "without_message_id": sum(1 for r in acked if not r["message_id"]),
        },
        "creates_acknowledged_after_a_retry": sum(1 for r in acked if r.get("after_retry")),
        "retries": res["retries"],
        "retries_by_cause": res["retries_by_cause"],
        "duplicate_sends": res["duplicate_sends"],
        "duplicate_sends_same_id": res["duplicate_same_id"],
        "replica_kills": kills,
        "postgres_restarts": pg,
        "failed_attempts": len(failures),
        "failed_attempts_by_cause_and_attribution": dict(sorted(by_cause.items())),
        "failed_attempts_unattributed": unattributed[:50],
        "postgres_window_last_failure_after_ready_s": pg_last_after,
        "rest_records_of_the_persons": len(held),
        "missing": missing[:20],
        "doubled": doubled[:20],
        "misplaced": misplaced[:20],
        "acknowledged_twice_for_different_creates": shared[:20],
        "extra": extra[:20],
        "extra_count": len(extra),
        "migration": {
            "read_s_after_last_call": round(read_at - res["last_call_end"], 2),
            "keys_answered": len(answered),
            "calls_answered": sum(answered.values()),
            "calls_counted_per_replica": {u: sum(c.values()) for u, (c, _f) in per_replica.items()},
            "allowance_in_flight_on_killed": sum(allowance.values()),
            "mismatches": mismatches[:40],
            "wsrm_depth_per_replica": wsrm_depths,
        },
        "wsrm": wsrm_report,
        "haproxy_out_of_rotation": outages,
        "haproxy_transitions": transitions,
        "calls_timeline": res.get("timeline", []),
        "problem_count": pc,
        "problems": res["problems"],
        "unresolved": len(res["unresolved"]),
        "verdicts": verdicts,
        "passed": all(verdicts.values()),
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
    print_table(summary)
    sys.exit(0 if summary["passed"] else 1)


def print_table(s):
    rows = [
        ("run", f"{s['seconds']} s, {s['workers']} workers at {s['rate']:g}/s, {s['persons']} persons, 2 WSRM subscribers"),
        ("SOAP calls (attempts)", str(s["calls_total"])),
    ]
    for k, v in s["calls_by_outcome"].items():
        rows.append(("  " + k, str(v)))
    rows += [
        ("answered per replica", json.dumps(dict(sorted(s["answered_by_replica"].items())))),
        ("creates acknowledged", f"{s['creates_acknowledged']} ({s['creates_acknowledged_after_a_retry']} after a retry)"),
        ("retries (sends again)", f"{s['retries']} {json.dumps(s['retries_by_cause'])}"),
        ("deliberate second sends", f"{s['duplicate_sends']} ({s['duplicate_sends_same_id']} same id)"),
        ("replica kills (SIGKILL)", ", ".join(f"r{k['replica']} at {k['at_s']} s" for k in s["replica_kills"]) or "none"),
        ("PostgreSQL restarts", ", ".join(f"at {p['at_s']} s, down {p['down_s']} s" for p in s["postgres_restarts"]) or "none"),
    ]
    for p in s["postgres_restarts"]:
        d = p.get("readyz_down")
        if d:
            rows.append(("  r3 /readyz while down", f"{d['status']} after {d['after_s']} s: {d['body'][:90]!r}"))
        backs = [f"r{b['replica']} {b['readyz']['status']} after {b['readyz']['after_s']} s" for b in p.get("readyz_back", [])]
        rows.append(("  /readyz once it was up", ", ".join(backs)))
    rows += [
        ("HAProxy: out of rotation", ", ".join(f"{o[0]} at {o[1]} s for {o[2]} s" for o in s["haproxy_out_of_rotation"]) or "never"),
        ("REST records of the persons", str(s["rest_records_of_the_persons"])),
        ("  missing / doubled / extra", f"{len(s['missing'])} / {len(s['doubled'])} / {s['extra_count']}"),
        ("failed attempts", str(s["failed_attempts"])),
    ]
    for k, v in s["failed_attempts_by_cause_and_attribution"].items():
        rows.append(("  " + k, str(v)))
    if s["postgres_window_last_failure_after_ready_s"] is not None:
        rows.append(("  last PG-window failure", f"{s['postgres_window_last_failure_after_ready_s']} s after PostgreSQL was up"))
    m = s["migration"]
    rows += [
        ("/api/migration", f"read {m['read_s_after_last_call']} s after the last call; "
                           f"answered {m['calls_answered']}, counted {json.dumps(m['calls_counted_per_replica'])}, "
                           f"allowance {m['allowance_in_flight_on_killed']}"),
    ]
    for sub, w in s["wsrm"].items():
        rows.append((f"WSRM {sub}",
                     f"expected {w['expected']} {json.dumps(w['expected_by_kind'])}, delivered {w['delivered_in_terminated_sequences']}, "
                     f"missing {w['missing']}, unexpected {w['unexpected']}, id twice {w['message_identifier_in_two_terminated_sequences']}, "
                     f"two ids {w['message_under_two_identifiers']}; {w['sequences']} sequences "
                     f"{json.dumps(w['sequences_by_outcome'])}; drained in {w['drained_after_s']} s"))
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
    if s["migration"]["mismatches"]:
        print("  /api/migration mismatches (first ones):")
        for p in s["migration"]["mismatches"][:10]:
            print("    " + json.dumps(p))
    if s["failed_attempts_unattributed"]:
        print("  unattributed failures (first ones):")
        for p in s["failed_attempts_unattributed"][:10]:
            print("    " + json.dumps(p))


def cmd_front_checks(args):
    """HAProxy's front as the shipped configuration promises it (run after verify, so that
    its calls are not in /api/migration's comparison): no client certificate fails the
    handshake; a client's own X-Client-Cert is replaced by its verified certificate, and its
    X-Forwarded-Host by the Host it used; the forwarded certificate is the caller's. Adds
    "front_checks" to the summary; exit 1 when one fails."""
    results = {}
    stats = Stats()
    certs = args.certs

    def check(name, fn):
        try:
            ok, detail = fn()
        except Exception as e:  # noqa: BLE001 - a check that raises fails
            ok, detail = False, f"{type(e).__name__}: {e}"
        results[name] = {"passed": ok, "detail": detail}
        print(f"  {'PASS' if ok else 'FAIL'} {name}: {detail}")

    def no_certificate():
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        c = Client(args.front, ctx)
        try:
            status, data, _ = c.post(PATH["PersonStatusService"], soap_headers("1.1", f"{PSS}/GetVariablePersonStatus"), b"x")
        except (OSError, http.client.HTTPException) as e:
            return True, f"refused: {type(e).__name__}"
        return False, f"answered {status} {data[:100]!r}"

    status_body = (f"<pss:GetVariablePersonStatusRequest><pss:PersonCivilRegistrationIdentifier>{cpr_of(0)}"
                   f"</pss:PersonCivilRegistrationIdentifier></pss:GetVariablePersonStatusRequest>")
    star_pem = open(os.path.join(certs, "star.pem")).read()

    class Forging(Client):
        def __init__(self, front, ctx, extra):
            super().__init__(front, ctx)
            self.extra = extra

        def post(self, path, headers, body):
            return super().post(path, {**headers, **self.extra}, body)

    def forged_certificate():
        forged = {"X-Client-Cert": urllib.parse.quote(star_pem, safe="")}
        c = Forging(args.front, tls_context(certs, JOBCENTER), forged)
        r = attempt(stats, c, ("5", "55570117"), "ha-front", "PersonStatusService", "GetVariablePersonStatus",
                    "1.1", status_body)
        return (r.kind == "fault" and r.code == 900511,
                f"jobcenter-101.pem with star.pem in X-Client-Cert, claiming STAR: {r.kind} {r.code or ''}")

    def genuine_star():
        c = Client(args.front, tls_context(certs, ("5", "55570117")))
        r = attempt(stats, c, ("5", "55570117"), "ha-front", "PersonStatusService", "GetVariablePersonStatus",
                    "1.1", status_body)
        return r.kind == "ok", f"star.pem claiming STAR: {r.kind} {r.code or ''}"

    def forged_host():
        # A registration, so that the queue has a message and the inventory an address.
        c = Client(args.front, tls_context(certs, JOBCENTER))
        r = attempt(stats, c, JOBCENTER, "ha-front", "PersonRegistrationService", "CreateContactGroup", "1.1",
                    create_body("ContactGroup", cpr_of(1), 1, date(2020, 1, 1), False))
        if r.kind != "ok":
            return False, f"CreateContactGroup: {r.kind} {r.code}"
        f = Forging(args.front, tls_context(certs, JOBCENTER), {"X-Forwarded-Host": "evil.example"})
        end = time.monotonic() + 15
        while True:
            r = attempt(stats, f, JOBCENTER, "ha-front", "WsrmService", "CreateSequence", "1.1",
                        "<ws:CreateSequenceRequest/>")
            if r.kind != "ok":
                return False, f"CreateSequence: {r.kind} {r.code}"
            seq, inventory, endpoints = parse_sequence(r.data)
            attempt(stats, f, JOBCENTER, "ha-front", "WsrmService", "TerminateSequence", "1.1",
                    f"<ws:TerminateSequenceRequest><ws:SequenceIdentifier>{seq}</ws:SequenceIdentifier>"
                    "</ws:TerminateSequenceRequest>")
            if endpoints or time.monotonic() > end:
                break
            time.sleep(0.2)
        want = f"{args.front.rstrip('/')}/WsrmMessageService/10"
        return endpoints == {want}, f"ServiceEndpoint {sorted(endpoints)} with X-Forwarded-Host: evil.example"

    def large_certificate():
        # A 4 KB certificate of the dev CA (ha.sh makes it: 80 DNS names) and a 60 KB body:
        # HAProxy must have room to add its 5 KB X-Client-Cert (tune.maxrewrite). The
        # replica's answer, whatever it says (the certificate has no CVR: a door fault),
        # proves the request reached it whole.
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        ctx.load_cert_chain(os.path.join(certs, "large-client.pem"), os.path.join(certs, "large-client-key.pem"))
        c = Client(args.front, ctx)
        padding = "<!--" + "x" * 60000 + "-->"
        r = attempt(stats, c, JOBCENTER, "ha-front", "PersonStatusService", "GetVariablePersonStatus",
                    "1.1", padding + status_body)
        return (r.kind in ("ok", "fault") and r.served is not None,
                f"{r.kind} {r.code or r.cause or ''} from {r.served or 'no replica'}")

    check("no client certificate: handshake refused", no_certificate)
    check("a 4 KB client certificate and a 60 KB request reach a replica", large_certificate)
    check("a client's X-Client-Cert is replaced by its own certificate", forged_certificate)
    check("the forwarded certificate is the caller's (star.pem acts as STAR)", genuine_star)
    check("a client's X-Forwarded-Host is replaced", forged_host)
    if args.summary and os.path.exists(args.summary):
        with open(args.summary) as f:
            summary = json.load(f)
        summary["front_checks"] = results
        summary["passed"] = summary["passed"] and all(r["passed"] for r in results.values())
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=2)
    sys.exit(0 if all(r["passed"] for r in results.values()) else 1)


def http_status(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:  # noqa: BLE001 - not there (yet)
        return None, str(e).encode()


def cmd_wait_http(args):
    """Until URL answers STATUS (exit 0), at most TIMEOUT seconds (exit 1, the last answer)."""
    end = time.monotonic() + args.timeout
    while True:
        status, body = http_status(args.url)
        if status == args.status:
            return
        if time.monotonic() > end:
            sys.exit(f"ha: {args.url} answered {status} {body[:200]!r} for {args.timeout:g} s, not {args.status}")
        time.sleep(0.1)


def cmd_readyz(args):
    """Until URL answers STATUS, at most TIMEOUT seconds: prints {"status", "body", "after_s"}
    of the last answer (exit 0 either way; the verdict is verify's)."""
    t0 = time.monotonic()
    while True:
        status, body = http_status(args.url)
        if status == args.status or time.monotonic() - t0 > args.timeout:
            print(json.dumps({"status": status, "body": body[:300].decode("utf-8", "replace").strip(),
                              "after_s": round(time.monotonic() - t0, 2)}))
            return
        time.sleep(0.05)


def cmd_wait_up(args):
    """Until HAProxy's stats (URL, CSV) show WANT replicas UP (exit 0), at most TIMEOUT s."""
    end = time.monotonic() + args.timeout
    while True:
        status, body = http_status(args.stats)
        states = {}
        if status == 200:
            for line in body.decode().splitlines():
                cols = line.split(",")
                if len(cols) > 17 and cols[0] == "vos_converter" and cols[1] not in ("BACKEND", "FRONTEND"):
                    states[cols[1]] = cols[17]
        if sum(1 for v in states.values() if v == "UP") >= args.want:
            return
        if time.monotonic() > end:
            sys.exit(f"ha: HAProxy's replicas after {args.timeout:g} s: {states or (status, body[:200])}")
        time.sleep(0.2)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait-http")
    w.add_argument("--url", required=True)
    w.add_argument("--status", type=int, default=200)
    w.add_argument("--timeout", type=float, default=60)
    fc = sub.add_parser("front-checks")
    fc.add_argument("--front", required=True)
    fc.add_argument("--certs", required=True)
    fc.add_argument("--summary")
    z = sub.add_parser("readyz")
    z.add_argument("--url", required=True)
    z.add_argument("--status", type=int, required=True)
    z.add_argument("--timeout", type=float, default=30)
    u = sub.add_parser("wait-up")
    u.add_argument("--stats", required=True)
    u.add_argument("--want", type=int, required=True)
    u.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("seed")
    s.add_argument("--rest", required=True)
    s.add_argument("--persons", type=int, default=60)
    r = sub.add_parser("run")
    r.add_argument("--front", required=True)
    r.add_argument("--certs", required=True)
    r.add_argument("--persons", type=int, default=60)
    r.add_argument("--workers", type=int, default=6)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--stats", required=True)
    r.add_argument("--drain-seconds", type=float, default=60)
    r.add_argument("--rate", type=float, default=50, help="creates and reads a second, all workers")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--out", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--rest", required=True)
    v.add_argument("--results", required=True)
    v.add_argument("--events", required=True)
    v.add_argument("--replicas", required=True)
    v.add_argument("--meta")
    v.add_argument("--settle", type=float, default=3.0)
    v.add_argument("--out", required=True)
    args = p.parse_args()
    {"seed": cmd_seed, "run": cmd_run, "verify": cmd_verify, "wait-http": cmd_wait_http,
     "wait-up": cmd_wait_up, "readyz": cmd_readyz,
     "front-checks": cmd_front_checks}[args.cmd](args)


if __name__ == "__main__":
    main()
