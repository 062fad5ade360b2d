"""What the zeep scripts of scripts/interop.sh share: the check runner, the recording transport
and the caller of one port of a served service with its fault checks.

Imported by zeep_prs.py, zeep_reads.py and zeep_tls.py, which run as
`python scripts/interop/<name>.py`: their own folder is on sys.path, so `import zeep_common`
finds this file.
"""

import datetime as dt
import re
import sys
import time
import traceback
from zoneinfo import ZoneInfo

import zeep
from lxml import etree
from zeep.transports import Transport

COMMON = "urn:dk:star:dfdg:common:1"
WSA = "http://www.w3.org/2005/08/addressing"
CPH = ZoneInfo("Europe/Copenhagen")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The failed checks of this run, one line each (step appends; the scripts' main reads it).
failures = []


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def step(name, fn, *args):
    """Runs one check, prints ok or FAIL; returns fn's result (None on failure). fn may return
    a string (printed after the name), a (string, value) pair (the string printed, the value
    returned), or anything else (returned; None as True)."""
    try:
        detail = fn(*args)
    except CheckFailed as e:
        print(f"  FAIL  {name}: {e}")
        failures.append(f"{name}: {e}")
        return None
    except Exception as e:  # a client-side error is a failure too: report it whole
        print(f"  FAIL  {name}: {type(e).__name__}: {e}")
        traceback.print_exc(limit=3)
        failures.append(f"{name}: {type(e).__name__}: {e}")
        return None
    if isinstance(detail, tuple):
        text, detail = detail
        print(f"  ok    {name}" + (f": {text}" if text else ""))
        return detail
    print(f"  ok    {name}" + (f": {detail}" if isinstance(detail, str) else ""))
    return detail if detail is not None else True


def finish(what, log_path, t0=None):
    """The script's last line: every check passed, or how many failed (then exit status 1);
    with t0 (time.monotonic() at the start), how long the checks took."""
    took = f"{time.monotonic() - t0:.1f} s" if t0 is not None else None
    if failures:
        print(f"  {what}: {len(failures)} check(s) failed" + (f" in {took}" if took else "")
              + f" (exchanges in {log_path})")
        sys.exit(1)
    print(f"  {what}: every check passed" + (f" ({took})" if took else ""))


# ---------------------------------------------------------------------------------------------
# Danish days


def danish_today():
    return dt.datetime.now(CPH).date()


def day(d, aware=True):
    """Midnight of a Danish day: aware (zeep writes the Danish offset of that instant) or
    naive (zeep writes no offset: Danish local time by the contract)."""
    midnight = dt.datetime.combine(d, dt.time(0))
    return midnight.replace(tzinfo=CPH) if aware else midnight


def at(d, hour, minute=0):
    return dt.datetime.combine(d, dt.time(hour, minute)).replace(tzinfo=CPH)


def items_of(collection, item):
    """The items of a deserialised collection: zeep gives None for <Collection/>."""
    if collection is None:
        return []
    return list(getattr(collection, item) or [])


# ---------------------------------------------------------------------------------------------
# zeep plumbing


class RecordingTransport(Transport):
    """Keeps the HTTP status of the last response and appends every exchange to a log."""

    def __init__(self, log_path, **kwargs):
        super().__init__(**kwargs)
        self.log_path = log_path
        self.last_status = None
        self.label = ""

    def post_xml(self, address, envelope, headers):
        response = super().post_xml(address, envelope, headers)
        self.last_status = response.status_code
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"\n===== {self.label}\n--- POST {address}\n")
            for k, v in headers.items():
                f.write(f"{k}: {v}\n")
            f.write(etree.tostring(envelope, pretty_print=True, encoding="unicode"))
            f.write(f"--- HTTP {response.status_code} {response.headers.get('Content-Type')}\n")
            f.write(response.content.decode("utf-8", "replace") + "\n")
        return response


def transport(log_path, session):
    """A RecordingTransport over a requests Session, 30 s timeouts."""
    return RecordingTransport(log_path, session=session, timeout=30, operation_timeout=30)


def detail_text(fault):
    if fault.detail is None:
        return "None"
    return etree.tostring(fault.detail, encoding="unicode")


class Caller:
    """One port of one service (name, version), called with dfdg:RequestUserMetadata through a
    RecordingTransport; with a zeep HistoryPlugin (history) the replies' WS-Addressing headers
    are checked too. address: call there rather than at the WSDL's address of the port."""

    # Whether a fault without a dfdg:ServiceFault is reported with its whole detail.
    show_fault_detail = False

    def __init__(self, client, service, port, transport_, history=None, address=None):
        self.client = client
        self.ns = f"urn:dk:star:dfdg:{service[0]}:{service[1]}"
        self.port = port
        if address is None:
            self.proxy = client.bind(service[0], port)
        else:
            binding = client.wsdl.services[service[0]].ports[port].binding.name
            self.proxy = client.create_service(binding, address)
        self.transport = transport_
        self.history = history
        self.soap12 = port.endswith("Soap12")
        self.header_type = client.get_element(f"{{{COMMON}}}RequestUserMetadata")
        self.fault_type = client.get_element(f"{{{COMMON}}}ServiceFault")

    def send(self, operation, identity, label, **kwargs):
        """The call as it is: the exchange labelled label in the log, zeep's answer returned."""
        self.transport.label = f"{self.port} {label}"
        header = self.header_type(**identity)
        return getattr(self.proxy, operation)(_soapheaders=[header], **kwargs)

    def call(self, operation, identity, label, **kwargs):
        """The call, answered with HTTP 200 (and, with a history, the reply's WS-Addressing)."""
        result = self.send(operation, identity, label, **kwargs)
        check(self.transport.last_status == 200, f"HTTP {self.transport.last_status}, expected 200")
        if self.history is not None:
            self.check_wsa_reply(operation)
        return result

    def sent_message_id(self):
        return self.history.last_sent["envelope"].findtext(f".//{{{WSA}}}MessageID")

    def check_wsa_reply(self, operation, fault=False):
        """The reply to a request with wsa:MessageID: RelatesTo it, the declared action."""
        sent = self.sent_message_id()
        env = self.history.last_received["envelope"]
        got = {n: env.findtext(f".//{{{WSA}}}{n}") for n in ("Action", "RelatesTo", "MessageID")}
        check(sent, "zeep sent no wsa:MessageID")
        check(got["RelatesTo"] == sent,
              f"wsa:RelatesTo {got['RelatesTo']!r}, expected the request's MessageID {sent!r}")
        expected = f"{self.ns}/{operation}" + ("/Fault/ServiceFault" if fault else "Response")
        check(got["Action"] == expected, f"wsa:Action {got['Action']!r}, expected {expected!r}")
        check(got["MessageID"] and got["MessageID"] != sent,
              f"the reply's wsa:MessageID {got['MessageID']!r} is missing or the request's")

    def expect_fault(self, operation, identity, label, code, text=None, **kwargs):
        """Calls and expects a zeep Fault whose dfdg:ServiceFault's first Error is code (and
        text: the ErrorText and the fault string; without it the fault string starts with the
        ErrorText). Checks the fault code side (Client for SOAP 1.1, Sender for SOAP 1.2), the
        HTTP status (500, 400) and, with a history, the reply's WS-Addressing headers too.
        Returns the errors [(code, text)]; the fault is kept as self.last_fault."""
        try:
            result = self.send(operation, identity, label, **kwargs)
        except zeep.exceptions.Fault as fault:
            self.last_fault = fault
            errors = self.fault_errors(fault)
            detail = f", detail {detail_text(fault)}" if self.show_fault_detail else ""
            check(errors, f"the fault has no dfdg:ServiceFault/dfdg:Error in its detail: "
                          f"message {fault.message!r}{detail}")
            check(errors[0][0] == code, f"ErrorCode {errors[0][0]} ({errors[0][1]!r}), expected {code}")
            if text is not None:
                check(errors[0][1] == text, f"ErrorText {errors[0][1]!r}, expected {text!r}")
                check(fault.message == text, f"fault string {fault.message!r}, expected {text!r}")
            else:
                check(fault.message.startswith(errors[0][1]),
                      f"fault string {fault.message!r} does not start with the ErrorText {errors[0][1]!r}")
            side = "Sender" if self.soap12 else "Client"
            check((fault.code or "").split(":")[-1] == side, f"fault code {fault.code!r}, expected {side}")
            status = 400 if self.soap12 else 500
            check(self.transport.last_status == status,
                  f"HTTP {self.transport.last_status} for the fault, expected {status}")
            if self.history is not None:
                self.check_wsa_reply(operation, fault=True)
            return errors
        raise CheckFailed(f"expected a Fault with ErrorCode {code}, got the answer {result!r}")

    def fault_errors(self, fault):
        """[(ErrorCode, ErrorText)] of the fault's dfdg:ServiceFault: read from the lxml
        detail element zeep gives, and decoded once more with the WSDL's ServiceFault type;
        the two readings must agree."""
        if fault.detail is None:
            return []
        faults = fault.detail.findall(f".//{{{COMMON}}}ServiceFault")
        check(len(faults) == 1, f"{len(faults)} dfdg:ServiceFault elements in the detail")
        by_xpath = []
        for error in faults[0].findall(f"{{{COMMON}}}Error"):
            code = (error.findtext(f"{{{COMMON}}}ErrorCode") or "").strip()
            check(code.isdigit(), f"ErrorCode {code!r} is not a number")
            by_xpath.append((int(code), error.findtext(f"{{{COMMON}}}ErrorText")))
        decoded = self.fault_type.parse(faults[0], self.client.wsdl.types)
        by_type = [(e.ErrorCode, e.ErrorText) for e in decoded.Error]
        check(by_type == by_xpath, f"zeep's ServiceFault type reads {by_type}, the detail says {by_xpath}")
        return by_xpath
