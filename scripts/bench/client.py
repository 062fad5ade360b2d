#!/usr/bin/env python3
"""A fixed request sequence for scripts/bench.sh callgrind: N requests of one kind, one after
another on one keep-alive connection, each checked for a 2xx answer (exit 1 otherwise).

    client.py URL KIND N SLOT CPR...

KIND: soap_read (GetVariablePersonStatus, cycling over the CPR numbers) or soap_create
(CreateContactGroup, a fresh fictitious CPR number per request from the block of SLOT); for
the REST service itself (scripts/bench/syscalls.sh): rest_status (GET status), rest_both (GET
kontaktgrupper then GET personkategorier, kunAktuelle=true: one "request" is both).
The messages are the ones scripts/bench/wrk.lua sends. Standard library only.
"""

import http.client
import sys
import urllib.parse

ORG_TYPE, ORG_CODE, USER = "5", "12345678", "bench"


def envelope(ns_decl: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:dfdg="urn:dk:star:dfdg:common:1" {ns_decl}>\n'
        "  <soapenv:Header>\n"
        "    <dfdg:RequestUserMetadata>\n"
        f"      <dfdg:OrganisationType>{ORG_TYPE}</dfdg:OrganisationType>\n"
        f"      <dfdg:OrganisationCode>{ORG_CODE}</dfdg:OrganisationCode>\n"
        f"      <dfdg:UserIdentifier>{USER}</dfdg:UserIdentifier>\n"
        "    </dfdg:RequestUserMetadata>\n"
        "  </soapenv:Header>\n"
        f"  <soapenv:Body>\n{body}  </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    )


def soap_read(cpr: str):
    body = envelope(
        'xmlns:pss="urn:dk:star:dfdg:PersonStatusService:20"',
        "    <pss:GetVariablePersonStatusRequest>\n"
        f"      <pss:PersonCivilRegistrationIdentifier>{cpr}</pss:PersonCivilRegistrationIdentifier>\n"
        "    </pss:GetVariablePersonStatusRequest>\n",
    )
    return (
        "/PersonStatusService/20",
        '"urn:dk:star:dfdg:PersonStatusService:20/GetVariablePersonStatus"',
        body,
    )


def soap_create(cpr: str):
    body = envelope(
        'xmlns:prs="urn:dk:star:dfdg:PersonRegistrationService:9"',
        "    <prs:CreateContactGroupRequest>\n"
        f"      <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\n"
        "      <prs:ContactGroup>\n"
        "        <prs:ContactGroupTypeIdentifier>1</prs:ContactGroupTypeIdentifier>\n"
        "        <prs:ContactGroupStartTime>2025-01-06T00:00:00+01:00</prs:ContactGroupStartTime>\n"
        "        <prs:ContactGroupEventTime>2025-01-06T09:30:00+01:00</prs:ContactGroupEventTime>\n"
        "      </prs:ContactGroup>\n"
        "    </prs:CreateContactGroupRequest>\n",
    )
    return (
        "/PersonRegistrationService/9",
        '"urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup"',
        body,
    )


def cpr_of(k: int) -> str:
    """As wrk.lua: day 01-28, month 01-12, six more digits."""
    return f"{k % 28 + 1:02d}{k // 28 % 12 + 1:02d}{k // 336:06d}"


REST_PATHS = {
    "rest_status": ["/personvisitering/v1/status"],
    "rest_both": [
        "/personvisitering/v1/kontaktgrupper?kunAktuelle=true",
        "/personvisitering/v1/personkategorier?kunAktuelle=true",
    ],
}


def rest(conn, kind: str, cpr: str) -> bool:
    """The REST reads of KIND for one person, as wrk.lua sends them; False on a non-2xx."""
    for path in REST_PATHS[kind]:
        conn.request(
            "GET",
            path,
            headers={
                "X-Organisation-Type": ORG_TYPE,
                "X-Organisation-Code": ORG_CODE,
                "X-User-Id": USER,
                "X-Cpr": cpr,
            },
        )
        res = conn.getresponse()
        data = res.read()
        if not 200 <= res.status < 300:
            print(f"client.py: {kind} {path} answered {res.status}: {data[:400]!r}", file=sys.stderr)
            return False
    return True


def main() -> int:
    url, kind, n, slot, cprs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    # Slots of wrk.lua use 16 blocks each; the client's blocks come after them.
    counter = (slot * 16 + 15) * 250_000
    for i in range(n):
        if kind.startswith("rest_"):
            if not rest(conn, kind, cprs[i % len(cprs)]):
                return 1
            continue
        if kind == "soap_read":
            path, action, body = soap_read(cprs[i % len(cprs)])
        elif kind == "soap_create":
            path, action, body = soap_create(cpr_of(counter))
            counter += 1
        else:
            print(f"client.py: unknown kind {kind}", file=sys.stderr)
            return 2
        conn.request(
            "POST",
            path,
            body=body.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action},
        )
        res = conn.getresponse()
        data = res.read()
        if not 200 <= res.status < 300:
            print(f"client.py: {kind} #{i} answered {res.status}: {data[:400]!r}", file=sys.stderr)
            return 1
    conn.close()
    print(f"{n} {kind} requests answered 2xx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
