#!/usr/bin/env python3
"""The data of scripts/bench.sh scale: one fictitious person whose contact group history
holds N versions, and the check that both sides answer all of them.

    history.py seed BACKEND_URL CPR N
    history.py verify BACKEND_URL CONVERTER_URL CPR N

seed (as STAR, organisation type 5, like the load mode's seed): SetPersonRegister, one
contact group (CreateKontaktgruppe, startdato 2000-01-01) and N - 1 UpdateKontaktgruppe
calls, each setting another end date (startdato + i days, i = 1 .. N - 1, never after today,
rule 1). Only the end date of a contact group can change (rule 4) and every change that
changes something records a new version (src/backend/rules.rs, update), so the history holds
the create's version and one per update: N versions of one contact group. Then one person
category. One keep-alive connection for all of it (http.client).

verify: GET kontaktgruppehistorik answers N versions (versions 1 .. N of one id) and
GET personkategorihistorik one; GetPersonHistory through the converter answers a
well-formed envelope with N <ContactGroupHistory> items and one <PersonCategoryHistory>.
Prints one JSON line (the answers' sizes) for the summary; exits 1 on any mismatch.
Standard library only.
"""

import datetime
import http.client
import json
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

API = "/personvisitering/v1"
ORG_TYPE = "5"
ORG_CODE = "12345678"
START = datetime.date(2000, 1, 1)
PHS_NS = "urn:dk:star:dfdg:PersonHistoryService:4"


def fail(msg):
    print(f"history.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


class Client:
    """One keep-alive HTTP/1.1 connection to BASE (http only: scale runs without TLS)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http":
            fail(f"{base}: only http:// here")
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: once more on a new one.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def star(extra=None):
    h = {"X-Organisation-Type": ORG_TYPE, "X-Organisation-Code": ORG_CODE, "X-User-Id": "bench-seed"}
    h.update(extra or {})
    return h


def expect(status, body, want, what):
    if status != want:
        fail(f"{what} answered {status}, expected {want}: {body[:400]!r}")


def seed(backend, cpr, n):
    n = int(n)
    if n < 1:
        fail("N must be at least 1")
    last_end = START + datetime.timedelta(days=n - 1)
    if last_end > datetime.date.today():
        fail(f"N = {n}: the last end date {last_end} would be in the future (rule 1)")
    c = Client(backend)
    t0 = time.monotonic()
    s, b = c.request("PUT", f"{API}/personregister",
                     {"cpr": cpr, "kommunekode": "101", "akasse": None, "tilmeldt": False}, star())
    expect(s, b, 204, "SetPersonRegister")
    s, b = c.request("POST", f"{API}/kontaktgrupper",
                     {"cpr": cpr, "kontaktgruppetype": 2, "startdato": START.isoformat(),
                      "haendelsestidspunkt": f"{START.isoformat()}T08:00:00Z"}, star())
    expect(s, b, 201, "CreateKontaktgruppe")
    kg = json.loads(b)["id"]
    for i in range(1, n):
        end = START + datetime.timedelta(days=i)
        s, b = c.request("PATCH", f"{API}/kontaktgrupper/{kg}",
                         {"cpr": cpr, "slutdato": end.isoformat()}, star())
        expect(s, b, 200, f"UpdateKontaktgruppe {i} of {n - 1}")
        v = json.loads(b).get("version")
        if v != i + 1:
            fail(f"UpdateKontaktgruppe {i}: version {v}, expected {i + 1}")
    s, b = c.request("POST", f"{API}/personkategorier",
                     {"cpr": cpr, "personkategoritype": 2, "startdato": START.isoformat(),
                      "haendelsestidspunkt": f"{START.isoformat()}T09:00:00Z"}, star())
    expect(s, b, 201, "CreatePersonkategori")
    print(f"  N = {n}: 1 person, 1 contact group with {n} version(s) (1 create + {n - 1} updates), "
          f"1 person category in {time.monotonic() - t0:.1f} s")


def soap_history(cpr):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:dfdg="urn:dk:star:dfdg:common:1" xmlns:phs="{PHS_NS}">
  <soapenv:Header>
    <dfdg:RequestUserMetadata>
      <dfdg:OrganisationType>{ORG_TYPE}</dfdg:OrganisationType>
      <dfdg:OrganisationCode>{ORG_CODE}</dfdg:OrganisationCode>
      <dfdg:UserIdentifier>bench</dfdg:UserIdentifier>
    </dfdg:RequestUserMetadata>
  </soapenv:Header>
  <soapenv:Body>
    <phs:GetPersonHistoryRequest>
      <phs:PersonCivilRegistrationIdentifier>{cpr}</phs:PersonCivilRegistrationIdentifier>
    </phs:GetPersonHistoryRequest>
  </soapenv:Body>
</soapenv:Envelope>
""".encode()


def verify(backend, converter, cpr, n):
    n = int(n)
    rest = Client(backend)
    s, kg_body = rest.request("GET", f"{API}/kontaktgruppehistorik", headers=star({"X-Cpr": cpr}))
    expect(s, kg_body, 200, "GET kontaktgruppehistorik")
    vs = json.loads(kg_body)["versioner"]
    if len(vs) != n:
        fail(f"GET kontaktgruppehistorik: {len(vs)} versions, expected {n}")
    if len({v["id"] for v in vs}) != 1 or [v["version"] for v in vs] != list(range(1, n + 1)):
        fail(f"GET kontaktgruppehistorik: not versions 1..{n} of one contact group")
    s, pc_body = rest.request("GET", f"{API}/personkategorihistorik", headers=star({"X-Cpr": cpr}))
    expect(s, pc_body, 200, "GET personkategorihistorik")
    pcs = json.loads(pc_body)["versioner"]
    if len(pcs) != 1:
        fail(f"GET personkategorihistorik: {len(pcs)} versions, expected 1")

    soap = Client(converter)
    s, xml = soap.request("POST", "/PersonHistoryService/4", soap_history(cpr), {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": f'"{PHS_NS}/GetPersonHistory"',
    })
    expect(s, xml, 200, "GetPersonHistory via the converter")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        fail(f"GetPersonHistory: the answer is not well-formed XML: {e}")
    cg = len(root.findall(f".//{{{PHS_NS}}}ContactGroupHistory"))
    pc = len(root.findall(f".//{{{PHS_NS}}}PersonCategoryHistory"))
    if cg != n or pc != 1:
        fail(f"GetPersonHistory: {cg} <ContactGroupHistory> and {pc} <PersonCategoryHistory>, expected {n} and 1")
    print(f"  N = {n}: GetPersonHistory via the converter -> 200, {cg} <ContactGroupHistory> + {pc} "
          f"<PersonCategoryHistory>, {len(xml)} bytes; GET kontaktgruppehistorik -> {len(vs)} versions, "
          f"{len(kg_body)} bytes; GET personkategorihistorik -> {len(pcs)}, {len(pc_body)} bytes", file=sys.stderr)
    print(json.dumps({"n": n, "soap_bytes": len(xml), "rest_kontaktgruppehistorik_bytes": len(kg_body),
                      "rest_personkategorihistorik_bytes": len(pc_body)}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "seed":
        seed(*sys.argv[2:5])
    elif len(sys.argv) == 6 and sys.argv[1] == "verify":
        verify(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
