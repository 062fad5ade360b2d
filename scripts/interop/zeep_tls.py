"""The HTTPS door through zeep (PyPI): client certificates, connection agreements, and the
refusals of the door, over a TLS listener of the converter or through a TLS-terminating proxy.

    zeep_tls.py MODE BASE_URL CERT_DIR FOREIGN_DIR EXCHANGE_LOG [DIRECT_URL]

Run by scripts/interop.sh (section https_door) in the .interop venv. CERT_DIR is a set of
`vos-converter dev-certs`, the one the converter (or nginx) trusts; FOREIGN_DIR is a second
set, whose CA nobody here trusts. zeep loads the WSDLs the converter SERVES
(BASE_URL/<Service>/<version>?wsdl) through a requests Session that presents a client
certificate (cert=(pem, key)) and verifies the server with ca.pem (verify=), given to
zeep as Transport(session=...).

MODE
  certificate    BASE_URL is `serve --tls-cert ... --client-ca ... --agreements ...` itself
                 (identity certificate). A connection without a client certificate, or with
                 one of another CA, fails the TLS handshake (the server's alert: certificate
                 required; decrypt error for the other CA's, whose name is the same as the
                 trusted one's, so the signature check is what fails).
  proxy          BASE_URL is nginx (ssl_verify_client on) in front of `serve --trusted-proxy
                 127.0.0.1/32 --client-cert-header X-Client-Cert` (identity proxy), which
                 listens at DIRECT_URL (plain HTTP). The served WSDLs name BASE_URL
                 (X-Forwarded-Host/-Proto of the trusted proxy honoured). nginx refuses a
                 client without a certificate, or with one of another CA, with HTTP 400.
                 Bypassing nginx from 127.0.0.2 (not a trusted proxy) with a forged
                 X-Client-Cert header (a real, valid certificate) is 900512, and its
                 X-Forwarded-* headers do not move the WSDL's address; from the trusted
                 address without the header it is 900512 too, and so it is with the header
                 naming a certificate of another CA (forwarded certificates are verified
                 against --client-ca).
  backend        as certificate, with the converter calling the reference backend over
                 mutual TLS (--rest-url https://..., its own certificate).

The calls (mappings/dev-seed.toml's fictitious persons; the converter is started with an own
cutover ahead for Jobcenter 1:101, so its reads reach REST):
  jobcenter-101.pem (OCES3, CVR 11111111, acts for 1:101 and 3:101):
    1:101  PersonRegistrationService CreateContactGroup for 0101701111 (SOAP 1.1): an id;
    1:101  PersonStatusService GetVariablePersonStatus 0101701111 (SOAP 1.2): the created
           contact group read back from REST;
    3:101  GetVariablePersonStatus 0101701111 (SOAP 1.1): answered;
    5:55570117 (STAR: not in its agreement) CreateContactGroup over both ports: Client/Sender
           fault ErrorCode 900511, and no registration made.

Each exchange (HTTP status, request and response envelopes) is appended to EXCHANGE_LOG.
Exit status 0 when every check holds; each check prints one line.
"""

import argparse
import datetime as dt
import re
import time
import urllib.parse

import requests
import zeep
from requests.adapters import HTTPAdapter
from zeep.transports import Transport

import zeep_common
from zeep_common import CPH, UUID_RE, CheckFailed, at, check, day, finish, items_of, step, transport

PRS = ("PersonRegistrationService", 9)
PSS = ("PersonStatusService", 20)

JOBCENTER_101 = {"OrganisationType": 1, "OrganisationCode": "101", "UserIdentifier": "zeep-tls-jc"}
KOMMUNE_101 = {"OrganisationType": 3, "OrganisationCode": "101", "UserIdentifier": "zeep-tls-ko"}
STAR = {"OrganisationType": 5, "OrganisationCode": "55570117", "UserIdentifier": "zeep-tls-star"}
PERSON_101 = "0101701111"  # municipality 101, not enrolled

ERR_NOT_IN_AGREEMENT = 900511
ERR_NO_CERTIFICATE = 900512


def short(e):
    """An exception's message, on one line and not too long."""
    text = " ".join(str(e).split())
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------------------------------------
# Sessions and zeep plumbing


class SourceAddressAdapter(HTTPAdapter):
    """Connects from a chosen local address (127.0.0.2: a loopback address that is not the
    trusted proxy)."""

    def __init__(self, source, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session(certs, name=None, ca=True, source=None, headers=None):
    """A requests Session: the client certificate certs/name.pem (none without a name), the
    server verified with certs/ca.pem (without ca, with certifi's roots). The environment is
    not consulted: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE would replace verify= (requests lets
    them win over Session.verify), and no proxy is wanted on loopback."""
    s = requests.Session()
    s.trust_env = False
    if ca:
        s.verify = f"{certs}/ca.pem"
    if name:
        s.cert = (f"{certs}/{name}.pem", f"{certs}/{name}-key.pem")
    if source:
        adapter = SourceAddressAdapter(source)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
    if headers:
        s.headers.update(headers)
    return s


def endpoint(base, service):
    return f"{base}/{service[0]}/{service[1]}"


class Caller(zeep_common.Caller):
    """One port of one service, called through a transport (and so a session)."""

    def __init__(self, client, service, suffix, transport_, address=None):
        super().__init__(client, service, f"{service[0]}{suffix}", transport_, address=address)

    def expect_fault(self, operation, identity, label, code, **kwargs):
        """A zeep Fault whose dfdg:ServiceFault's first Error has ErrorCode code; Client (SOAP
        1.1, HTTP 500) or Sender (SOAP 1.2, HTTP 400). Returns the errors [(code, text)] and
        the fault string."""
        errors = super().expect_fault(operation, identity, label, code, **kwargs)
        return errors, self.last_fault.message


# ---------------------------------------------------------------------------------------------
# Checks


def load_clients(base, s, log_path, expected_base):
    """zeep clients of PRS and PSS from the served WSDLs, over session s; both ports of each
    name expected_base."""
    t = transport(log_path, s)
    clients = {}
    for service in (PRS, PSS):
        client = zeep.Client(f"{endpoint(base, service)}?wsdl", transport=t)
        for suffix in ("Soap11", "Soap12"):
            port = f"{service[0]}{suffix}"
            address = client.wsdl.services[service[0]].ports[port].binding_options["address"]
            check(address == endpoint(expected_base, service),
                  f"{port}: the served WSDL gives the address {address}, expected {endpoint(expected_base, service)}")
        clients[service] = client
    return clients, t


def allowed_and_refused(clients, t, label):
    """The jobcenter certificate's calls: two claims of its agreement, one outside it."""
    prs11 = Caller(clients[PRS], PRS, "Soap11", t)
    prs12 = Caller(clients[PRS], PRS, "Soap12", t)
    pss11 = Caller(clients[PSS], PSS, "Soap11", t)
    pss12 = Caller(clients[PSS], PSS, "Soap12", t)
    today = dt.datetime.now(CPH).date()
    start = today - dt.timedelta(days=20)
    state = {}

    def create():
        r = prs11.call("CreateContactGroup", JOBCENTER_101, "CreateContactGroup Jobcenter 101",
                       PersonCivilRegistrationIdentifier=PERSON_101,
                       ContactGroup={"ContactGroupTypeIdentifier": 1,
                                     "ContactGroupStartTime": day(start),
                                     "ContactGroupEventTime": at(start, 9, 30)})
        check(isinstance(r, str) and UUID_RE.match(r), f"ContactGroupIdentifier {r!r} is not a lower-case UUID")
        state["cg"] = r
        return f"ContactGroupIdentifier {r}"

    def read_back():
        check("cg" in state, "needs the contact group created above")
        r = pss12.call("GetVariablePersonStatus", JOBCENTER_101, "GetVariablePersonStatus Jobcenter 101",
                       PersonCivilRegistrationIdentifier=PERSON_101)
        check(r.PersonCivilRegistrationIdentifier == PERSON_101,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        ids = [c.ContactGroupIdentifier for c in items_of(r.ContactGroupCollection, "ContactGroup")]
        check(state["cg"] in ids, f"the created contact group {state['cg']} is not in {ids}")
        return f"{len(ids)} current contact group(s), the created one among them"

    def kommune():
        r = pss11.call("GetVariablePersonStatus", KOMMUNE_101, "GetVariablePersonStatus Kommune 101",
                       PersonCivilRegistrationIdentifier=PERSON_101)
        check(r.PersonCivilRegistrationIdentifier == PERSON_101,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        return "answered"

    def refused(caller):
        def run():
            other = today - dt.timedelta(days=10)
            errors, message = caller.expect_fault(
                "CreateContactGroup", STAR, "CreateContactGroup claiming STAR", ERR_NOT_IN_AGREEMENT,
                PersonCivilRegistrationIdentifier=PERSON_101,
                ContactGroup={"ContactGroupTypeIdentifier": 2, "ContactGroupStartTime": day(other),
                              "ContactGroupEventTime": at(other, 9)})
            # The fault names the refused claim, never what the certificate may act for.
            check("101" not in message, f"the fault string names the agreement's organisations: {message!r}")
            return f"Fault {errors[0][0]} {message!r}"
        return run

    def nothing_registered():
        check("cg" in state, "needs the contact group created above")
        r = pss11.call("GetVariablePersonStatus", JOBCENTER_101, "GetVariablePersonStatus after the refusals",
                       PersonCivilRegistrationIdentifier=PERSON_101)
        types = sorted(c.ContactGroupTypeIdentifier for c in items_of(r.ContactGroupCollection, "ContactGroup"))
        check(2 not in types, f"a type 2 contact group exists after the refused creates: types {types}")
        return f"contact group types {types}: no type 2"

    step(f"{label}: jobcenter-101.pem as 1:101, PRS CreateContactGroup (SOAP 1.1)", create)
    step(f"{label}: jobcenter-101.pem as 1:101, PSS GetVariablePersonStatus reads it back (SOAP 1.2)", read_back)
    step(f"{label}: jobcenter-101.pem as 3:101, PSS GetVariablePersonStatus (SOAP 1.1)", kommune)
    step(f"{label}: jobcenter-101.pem claiming 5:55570117 -> {ERR_NOT_IN_AGREEMENT} (SOAP 1.1)", refused(prs11))
    step(f"{label}: jobcenter-101.pem claiming 5:55570117 -> {ERR_NOT_IN_AGREEMENT} (SOAP 1.2)", refused(prs12))
    step(f"{label}: the refused creates registered nothing", nothing_registered)


VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"


def tls_reason(e):
    """The innermost OpenSSL reason of a requests exception, e.g. TLSV13_ALERT_CERTIFICATE_REQUIRED."""
    m = re.findall(r"\[SSL: ([A-Z0-9_]+)\]", str(e))
    if m:
        return m[-1]
    return "connection reset" if "reset" in str(e).lower() else short(e)


def handshake_refused(base, s, what, by_server=True):
    """certificate mode: the TLS handshake (or, in TLS 1.3, the first read after it) fails.
    by_server: the server refused the client (an alert from it, or a reset); otherwise the
    client refused the server's certificate."""
    url = f"{endpoint(base, PSS)}?wsdl"
    try:
        r = s.get(url, timeout=10)
    except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as e:
        reason = tls_reason(e)
        if by_server:
            check(VERIFY_FAILED not in str(e),
                  f"{what}: the client did not accept the server's certificate: {short(e)}")
            check("ALERT" in reason or reason == "connection reset",
                  f"{what}: not a refusal by the server: {short(e)}")
        else:
            check(reason == VERIFY_FAILED, f"{what}: {reason}, expected {VERIFY_FAILED}")
        return f"{type(e).__name__} {reason}"
    raise CheckFailed(f"{what}: GET {url} answered HTTP {r.status_code}; expected the handshake to fail")


def zeep_refused(base, s, what):
    """zeep itself cannot load the WSDL over a refused connection."""
    try:
        zeep.Client(f"{endpoint(base, PRS)}?wsdl", transport=Transport(session=s, timeout=10))
    except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as e:
        check(VERIFY_FAILED not in str(e), f"{what}: the client did not accept the server's certificate: {short(e)}")
        return f"{type(e).__name__} {tls_reason(e)}"
    raise CheckFailed(f"{what}: zeep loaded the WSDL")


def nginx_refused(base, s, what, text):
    """proxy mode: nginx completes the handshake and answers 400 itself."""
    url = f"{endpoint(base, PSS)}?wsdl"
    r = s.get(url, timeout=10)
    check(r.status_code == 400, f"{what}: GET {url} answered HTTP {r.status_code}, expected nginx's 400")
    check(text in r.text, f"{what}: nginx's answer does not say {text!r}: {short(r.text)}")
    check("definitions" not in r.text, f"{what}: the answer is a WSDL")
    return f"HTTP 400 {text!r}"


def escaped_pem(path):
    """A PEM file as nginx's $ssl_client_escaped_cert gives it (URL-escaped)."""
    return urllib.parse.quote(open(path, encoding="ascii").read(), safe="")


def bypass(args, certs, foreign, log_path):
    """Straight to the converter's plain listener, not through nginx."""
    direct = args.direct_url.rstrip("/")
    forged = {"X-Client-Cert": escaped_pem(f"{certs}/jobcenter-101.pem"),
              "X-Forwarded-Host": "soap.attacker.example", "X-Forwarded-Proto": "https"}
    untrusted = session(certs, ca=False, source="127.0.0.2", headers=forged)
    as_proxy = session(certs, ca=False, headers=forged)
    trusted = session(certs, ca=False)
    other_ca = session(certs, ca=False, headers={"X-Client-Cert": escaped_pem(f"{foreign}/jobcenter-101.pem")})

    def control():
        # The same headers from the trusted address are honoured: what 127.0.0.2 gets below is
        # the address's doing, not the headers'.
        forwarded = "https://soap.attacker.example"
        clients, t = load_clients(direct, as_proxy, log_path, forwarded)
        c = Caller(clients[PSS], PSS, "Soap11", t, address=endpoint(direct, PSS))
        r = c.call("GetVariablePersonStatus", JOBCENTER_101, "GetVariablePersonStatus from 127.0.0.1 with the headers",
                   PersonCivilRegistrationIdentifier=PERSON_101)
        check(r.PersonCivilRegistrationIdentifier == PERSON_101,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        return f"the WSDL names {forwarded}, and 1:101 with the forwarded certificate is answered"

    def wsdl_untouched():
        load_clients(direct, untrusted, log_path, direct)
        return f"from 127.0.0.2 with X-Forwarded-Host/-Proto: the WSDL still names {direct}"

    def forged_cert():
        clients, t = load_clients(direct, untrusted, log_path, direct)
        c = Caller(clients[PRS], PRS, "Soap11", t)
        today = dt.datetime.now(CPH).date()
        errors, message = c.expect_fault(
            "CreateContactGroup", JOBCENTER_101, "CreateContactGroup from 127.0.0.2, forged X-Client-Cert",
            ERR_NO_CERTIFICATE, PersonCivilRegistrationIdentifier=PERSON_101,
            ContactGroup={"ContactGroupTypeIdentifier": 4, "ContactGroupStartTime": day(today),
                          "ContactGroupEventTime": at(today, 8)})
        return f"Fault {errors[0][0]} {message!r}"

    def no_header():
        clients, t = load_clients(direct, trusted, log_path, direct)
        c = Caller(clients[PSS], PSS, "Soap12", t)
        errors, message = c.expect_fault(
            "GetVariablePersonStatus", JOBCENTER_101, "GetVariablePersonStatus from 127.0.0.1, no X-Client-Cert",
            ERR_NO_CERTIFICATE, PersonCivilRegistrationIdentifier=PERSON_101)
        return f"Fault {errors[0][0]} {message!r}"

    def forwarded_other_ca():
        clients, t = load_clients(direct, other_ca, log_path, direct)
        c = Caller(clients[PSS], PSS, "Soap11", t)
        errors, message = c.expect_fault(
            "GetVariablePersonStatus", JOBCENTER_101,
            "GetVariablePersonStatus from 127.0.0.1, X-Client-Cert of another CA",
            ERR_NO_CERTIFICATE, PersonCivilRegistrationIdentifier=PERSON_101)
        return f"Fault {errors[0][0]} {message!r}"

    step("bypassing nginx, from 127.0.0.1 (control): X-Client-Cert and X-Forwarded-* honoured", control)
    step("bypassing nginx, from 127.0.0.2: X-Forwarded-* ignored", wsdl_untouched)
    step(f"bypassing nginx, from 127.0.0.2: forged X-Client-Cert (a valid certificate) -> "
         f"{ERR_NO_CERTIFICATE}", forged_cert)
    step(f"bypassing nginx, from 127.0.0.1 (the trusted proxy's address) without X-Client-Cert -> "
         f"{ERR_NO_CERTIFICATE}", no_header)
    step(f"bypassing nginx, from 127.0.0.1 with X-Client-Cert of another CA (checked against --client-ca) -> "
         f"{ERR_NO_CERTIFICATE}", forwarded_other_ca)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("certificate", "proxy", "backend"))
    p.add_argument("base_url")
    p.add_argument("cert_dir")
    p.add_argument("foreign_dir")
    p.add_argument("exchange_log")
    p.add_argument("direct_url", nargs="?")
    args = p.parse_args()
    if args.mode == "proxy" and not args.direct_url:
        p.error("proxy mode needs DIRECT_URL")
    base = args.base_url.rstrip("/")
    certs, foreign, log_path = args.cert_dir, args.foreign_dir, args.exchange_log
    open(log_path, "w").close()
    t0 = time.monotonic()
    print(f"  zeep {zeep.__version__}, requests {requests.__version__}, {args.mode} mode, {base}")
    label = {"certificate": "TLS", "proxy": "nginx", "backend": "TLS + mTLS REST"}[args.mode]

    loaded = {}

    def load():
        loaded["clients"] = load_clients(base, session(certs, "jobcenter-101"), log_path, base)
        return "both ports of each"

    if step(f"{label}: zeep loads the PRS and PSS WSDLs with jobcenter-101.pem; they name {base}", load):
        allowed_and_refused(*loaded["clients"], label)

    no_cert = session(certs)  # verifies the server, presents nothing
    other_ca = session(certs, "jobcenter-101")
    other_ca.cert = (f"{foreign}/jobcenter-101.pem", f"{foreign}/jobcenter-101-key.pem")
    if args.mode == "proxy":
        step(f"{label}: no client certificate -> refused by nginx",
             nginx_refused, base, no_cert, "no certificate", "No required SSL certificate was sent")
        step(f"{label}: a client certificate of another CA -> refused by nginx",
             nginx_refused, base, other_ca, "another CA", "The SSL certificate error")
        bypass(args, certs, foreign, log_path)
    else:
        step(f"{label}: no client certificate -> the handshake fails", handshake_refused, base, no_cert,
             "no certificate")
        step(f"{label}: no client certificate -> zeep cannot load the WSDL", zeep_refused, base, no_cert,
             "no certificate")
        step(f"{label}: a client certificate of another CA -> the handshake fails", handshake_refused, base,
             other_ca, "another CA")
        step(f"{label}: the server is verified: without ca.pem the handshake fails", handshake_refused, base,
             session(certs, "jobcenter-101", ca=False), "certifi's roots only", False)

    finish("zeep tls", log_path, t0)


if __name__ == "__main__":
    main()
