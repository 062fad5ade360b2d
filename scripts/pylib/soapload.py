"""What the load drivers share (scripts/soak/driver.py, scripts/ha/driver.py): the legacy
contracts' namespaces, the SOAP envelope and the PersonRegistrationService create they send,
fictitious CPR numbers, and plain HTTP to the reference backend as STAR. Python standard
library only."""

import http.client
import json
import re
import urllib.parse
from datetime import date

PRS = "urn:dk:star:dfdg:PersonRegistrationService:9"
PSS = "urn:dk:star:dfdg:PersonStatusService:20"
PHS = "urn:dk:star:dfdg:PersonHistoryService:4"
WSRM = "urn:dk:star:dfdg:WsrmService:3"
MSG = "urn:dk:star:dfdg:WsrmMessageService:10"
DFDG = "urn:dk:star:dfdg:common:1"
WSA = "http://www.w3.org/2005/08/addressing"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
API = "/personvisitering/v1"

CG_TYPES = [1, 2, 4, 5, 7, 8, 10, 13, 21, 22, 23, 25]  # named in the source, valid since 1990
PC_TYPES = [1, 2, 3, 4]
FIRST_DAY = date(2000, 1, 1)
KINDS = {
    "cg": ("ContactGroup", "kontaktgrupper"),
    "pc": ("PersonCategory", "personkategorier"),
}

ERROR_CODE = re.compile(rb"ErrorCode>\s*(\d+)\s*<")
CG_ID = re.compile(rb"<(?:\w+:)?ContactGroupIdentifier>([^<]+)<")
PC_ID = re.compile(rb"<(?:\w+:)?PersonCategoryIdentifier>([^<]+)<")
ALL_IDS = re.compile(rb"<(?:\w+:)?(ContactGroupIdentifier|PersonCategoryIdentifier)>([^<]+)<")


def fictitious_cpr(i, year, serial):
    """A fictitious, valid-shaped CPR number: day 1-28, month 1-12, the two-digit `year`,
    serial `serial` + i (each driver its own year and serials)."""
    return f"{1 + i % 28:02d}{1 + (i // 28) % 12:02d}{year:02d}{serial + i:04d}"


def split_url(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port, u.path.rstrip("/")


def rest(base, method, path, user, body=None, headers=None, timeout=30):
    """One call to the reference backend as STAR (user id `user`); answers (status, body)."""
    host, port, prefix = split_url(base)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        h = {"X-Organisation-Type": "5", "X-Organisation-Code": "12345678", "X-User-Id": user}
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, prefix + path, body=data, headers=h)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def envelope(version, header, body):
    """A SOAP 1.1 or 1.2 envelope declaring every service's prefix (prs, pss, phs, ws, wm)."""
    ns = SOAP11 if version == "1.1" else SOAP12
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<env:Envelope xmlns:env="{ns}" xmlns:dfdg="{DFDG}" xmlns:prs="{PRS}" '
        f'xmlns:pss="{PSS}" xmlns:phs="{PHS}" xmlns:ws="{WSRM}" xmlns:wm="{MSG}" '
        f'xmlns:wsa="{WSA}"><env:Header>{header}</env:Header>'
        f"<env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def metadata(org, user):
    """RequestUserMetadata for organisation (type, code) and user."""
    return (
        f"<dfdg:RequestUserMetadata><dfdg:OrganisationType>{org[0]}</dfdg:OrganisationType>"
        f"<dfdg:OrganisationCode>{org[1]}</dfdg:OrganisationCode>"
        f"<dfdg:UserIdentifier>{user}</dfdg:UserIdentifier></dfdg:RequestUserMetadata>"
    )


def soap_headers(version, action):
    if version == "1.1":
        return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    return {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}


def create_body(what, cpr, ty, day, end):
    """Create<what>Request: start at the day's Danish midnight, event at 10:00 local, an
    optional end date (the start day: never in the future)."""
    start = f"{day.isoformat()}T00:00:00"
    end_el = f"<prs:{what}EndTime>{start}</prs:{what}EndTime>" if end else ""
    return (
        f"<prs:Create{what}Request>"
        f"<prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>"
        f"<prs:{what}><prs:{what}TypeIdentifier>{ty}</prs:{what}TypeIdentifier>"
        f"<prs:{what}StartTime>{start}</prs:{what}StartTime>{end_el}"
        f"<prs:{what}EventTime>{day.isoformat()}T10:00:00</prs:{what}EventTime>"
        f"</prs:{what}></prs:Create{what}Request>"
    )
