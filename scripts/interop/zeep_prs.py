"""PersonRegistrationService v9 through zeep (PyPI), a real third-party SOAP client.

    zeep_prs.py ENDPOINT_URL EXCHANGE_LOG

Run by scripts/interop.sh (section run_zeep) in the .interop venv, against a converter that
`vos-converter serve` started with a fresh data directory (embedded backend, dev mode,
seeded with mappings/dev-seed.toml). zeep loads the WSDL the converter SERVES
(ENDPOINT_URL?wsdl) and drives every operation over both bindings, the SOAP 1.1 port
PersonRegistrationServiceSoap11 and the SOAP 1.2 port PersonRegistrationServiceSoap12,
with the dfdg:RequestUserMetadata header as _soapheaders.

zeep adds wsa:Action, wsa:MessageID and wsa:To to every call (the WSDL declares
wsam:Action), so every create takes the converter's idempotent path. Each exchange (HTTP
status, request and response envelopes) is appended to EXCHANGE_LOG.

Callers and persons (mappings/dev-seed.toml; the CPR numbers are fictitious):
  Jobcenter 101 (OrganisationType 1, OrganisationCode 101) may touch the persons of
  municipality 101 only: 0101701111 (not enrolled) and 0202702222 (enrolled, rule 2).
  STAR (5) may touch everyone, also persons not in the register: a fresh CPR per binding.
Rule 5 (a new registration must start after the open one's start): the second binding uses
later start dates than the first for the same person.

Exit status 0 when every check holds; each check prints one line.
"""

import datetime as dt
import sys
import uuid

import requests
import zeep
from zeep.plugins import HistoryPlugin, Plugin

import zeep_common
from zeep_common import UUID_RE, WSA, CheckFailed, at, check, danish_today, day, failures, finish, transport

PRS = ("PersonRegistrationService", 9)

JOBCENTER_101 = {"OrganisationType": 1, "OrganisationCode": "101", "UserIdentifier": "zeep-jc"}
STAR = {"OrganisationType": 5, "OrganisationCode": "12345678", "UserIdentifier": "zeep-star"}
NOT_ENROLLED_101 = "0101701111"
ENROLLED_101 = "0202702222"
MUNICIPALITY_147 = "0303703333"
# Fictitious persons not in the person register (STAR only), one set per binding.
FRESH = {
    "PersonRegistrationServiceSoap11": ("0101900101", "0101900102"),
    "PersonRegistrationServiceSoap12": ("0201900201", "0201900202"),
}
PORTS = ["PersonRegistrationServiceSoap11", "PersonRegistrationServiceSoap12"]

ERR_FUTURE_END = (100028, "Slutdato kan ikke være fremtidig")
ERR_OTHER_TYPE_ENROLLED = (
    100029,
    "Kontaktgruppen kan ikke ændres til anden kontaktgruppe for tilmeldte, opdater i stedet tilmeldingen",
)

# ---------------------------------------------------------------------------------------------
# zeep plumbing


class FixedMessageID(Plugin):
    """Replaces the wsa:MessageID that zeep generated with a chosen one, as a client that
    retries a message does. Runs after zeep's own WS-Addressing step."""

    def __init__(self):
        self.message_id = None

    def egress(self, envelope, http_headers, operation, binding_options):
        if self.message_id is not None:
            mid = envelope.find(f"{{http://www.w3.org/2003/05/soap-envelope}}Header/{{{WSA}}}MessageID")
            if mid is None:
                mid = envelope.find(f"{{http://schemas.xmlsoap.org/soap/envelope/}}Header/{{{WSA}}}MessageID")
            if mid is None:
                raise CheckFailed("zeep sent no wsa:MessageID to replace")
            mid.text = self.message_id
        return envelope, http_headers


class Caller(zeep_common.Caller):
    # A create answers HTTP 200 with an id (expect_id checks both): the call as it is.
    call = zeep_common.Caller.send
    show_fault_detail = True

    def __init__(self, client, port, transport_, history, fixed):
        super().__init__(client, PRS, port, transport_, history)
        self.fixed = fixed

    def expect_id(self, result, what):
        check(isinstance(result, str) and UUID_RE.match(result),
              f"{what}: {result!r} is not a lower-case UUID")
        check(self.transport.last_status == 200, f"HTTP {self.transport.last_status}, expected 200")
        return result


def step(port, name):
    """Decorator-less runner: step(port, name)(fn, *args) runs fn, prints ok or FAIL."""
    return lambda fn, *args: zeep_common.step(f"{port} {name}", fn, *args)


# ---------------------------------------------------------------------------------------------
# Scenarios


def contact_group(type_, start, event, end=None, ident=None):
    cg = {}
    if ident is not None:
        cg["ContactGroupIdentifier"] = ident
    cg.update(ContactGroupTypeIdentifier=type_, ContactGroupStartTime=start)
    if end is not None:
        cg["ContactGroupEndTime"] = end
    cg["ContactGroupEventTime"] = event
    return cg


def person_category(type_, start, event, end=None, ident=None):
    pc = {}
    if ident is not None:
        pc["PersonCategoryIdentifier"] = ident
    pc.update(PersonCategoryTypeIdentifier=type_, PersonCategoryStartTime=start)
    if end is not None:
        pc["PersonCategoryEndTime"] = end
    pc["PersonCategoryEventTime"] = event
    return pc


def run_port(c, index):
    port = c.port
    # Start days: later in the second binding (rule 5), around the DST changes of 2024.
    cg_start = dt.date(2024, 3, 31) + dt.timedelta(days=index)   # CET -> CEST on 2024-03-31
    pc_start = dt.date(2024, 7, 1) + dt.timedelta(days=index)
    enrolled_start = dt.date(2024, 10, 27) + dt.timedelta(days=2 * index)  # CEST -> CET
    fresh_cg, fresh_retry = FRESH[port]
    state = {}

    # --- Jobcenter 101, not enrolled person of municipality 101: every operation.
    def create_cg():
        cg = contact_group(1, day(cg_start), at(cg_start, 9, 30))
        state["cg"] = cg
        r = c.call("CreateContactGroup", JOBCENTER_101, "CreateContactGroup",
                   PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, ContactGroup=cg)
        state["cg_id"] = c.expect_id(r, "ContactGroupIdentifier")
        c.check_wsa_reply("CreateContactGroup")
        return f"ContactGroupIdentifier {r}"

    def update_cg_tomorrow():
        tomorrow = danish_today() + dt.timedelta(days=1)
        cg = state["cg"]
        cg = contact_group(cg["ContactGroupTypeIdentifier"], cg["ContactGroupStartTime"],
                           cg["ContactGroupEventTime"], day(tomorrow, aware=False), state["cg_id"])
        c.expect_fault("UpdateContactGroup", JOBCENTER_101, "UpdateContactGroup end tomorrow",
                       *ERR_FUTURE_END,
                       PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, ContactGroup=cg)
        return f"end {tomorrow} (offset-less) -> Fault {ERR_FUTURE_END[0]}"

    def update_cg_today():
        today = danish_today()
        cg = state["cg"]
        cg = contact_group(cg["ContactGroupTypeIdentifier"], cg["ContactGroupStartTime"],
                           cg["ContactGroupEventTime"], day(today), state["cg_id"])
        r = c.call("UpdateContactGroup", JOBCENTER_101, "UpdateContactGroup end today",
                   PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, ContactGroup=cg)
        c.expect_id(r, "ContactGroupIdentifier")
        check(r == state["cg_id"], f"UpdateContactGroup answered {r}, expected {state['cg_id']}")
        c.check_wsa_reply("UpdateContactGroup")
        return f"end {today} -> the same id"

    def update_cg_other_type():
        cg = state["cg"]
        cg = contact_group(2, cg["ContactGroupStartTime"], cg["ContactGroupEventTime"],
                           ident=state["cg_id"])
        c.expect_fault("UpdateContactGroup", JOBCENTER_101, "UpdateContactGroup other type",
                       900509, PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, ContactGroup=cg)
        return "type 1 -> 2 -> Fault 900509 (rule 4)"

    def create_pc():
        pc = person_category(2, day(pc_start), at(pc_start, 10))
        state["pc"] = pc
        r = c.call("CreatePersonCategory", JOBCENTER_101, "CreatePersonCategory",
                   PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, PersonCategory=pc)
        state["pc_id"] = c.expect_id(r, "PersonCategoryIdentifier")
        c.check_wsa_reply("CreatePersonCategory")
        return f"PersonCategoryIdentifier {r}"

    def update_pc():
        pc = state["pc"]
        end = pc_start + dt.timedelta(days=90)
        pc = person_category(3, pc["PersonCategoryStartTime"], pc["PersonCategoryEventTime"],
                             day(end), state["pc_id"])
        r = c.call("UpdatePersonCategory", JOBCENTER_101, "UpdatePersonCategory",
                   PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, PersonCategory=pc)
        c.expect_id(r, "PersonCategoryIdentifier")
        check(r == state["pc_id"], f"UpdatePersonCategory answered {r}, expected {state['pc_id']}")
        c.check_wsa_reply("UpdatePersonCategory")
        return f"type 2 -> 3, end {end} -> the same id"

    def create_pc_and_interview():
        pc = person_category(2, day(pc_start), at(pc_start, 10))
        errors = c.expect_fault(
            "CreatePersonCategoryAndInterview", JOBCENTER_101, "CreatePersonCategoryAndInterview",
            900510, PersonCivilRegistrationIdentifier=NOT_ENROLLED_101, PersonCategory=pc,
            Interview={"InterviewTime": at(pc_start, 11), "InterviewTypeIdentifier": 1})
        return f"Fault 900510: {errors[0][1]}"

    # --- Jobcenter 101, enrolled person: rule 2.
    def enrolled_other_type():
        first = contact_group(1, day(enrolled_start), at(enrolled_start, 8))
        r = c.call("CreateContactGroup", JOBCENTER_101, "CreateContactGroup enrolled type 1",
                   PersonCivilRegistrationIdentifier=ENROLLED_101, ContactGroup=first)
        c.expect_id(r, "ContactGroupIdentifier")
        later = enrolled_start + dt.timedelta(days=1)
        other = contact_group(13, day(later), at(later, 8))
        c.expect_fault("CreateContactGroup", JOBCENTER_101, "CreateContactGroup enrolled type 13",
                       *ERR_OTHER_TYPE_ENROLLED,
                       PersonCivilRegistrationIdentifier=ENROLLED_101, ContactGroup=other)
        return f"type 1 {r}, then type 13 -> Fault {ERR_OTHER_TYPE_ENROLLED[0]}"

    # --- Jobcenter 101, a person of another municipality: rule 7.
    def other_municipality():
        cg = contact_group(1, day(cg_start), at(cg_start, 9))
        c.expect_fault("CreateContactGroup", JOBCENTER_101, "CreateContactGroup municipality 147",
                       900203, PersonCivilRegistrationIdentifier=MUNICIPALITY_147, ContactGroup=cg)
        return "Fault 900203 (rule 7)"

    # --- STAR, persons not in the register; a retried message (the same wsa:MessageID).
    def star_fresh_person():
        start = dt.date(2025, 1, 6)
        cg = contact_group(2, day(start), at(start, 9, 30))
        r = c.call("CreateContactGroup", STAR, "STAR CreateContactGroup fresh person",
                   PersonCivilRegistrationIdentifier=fresh_cg, ContactGroup=cg)
        c.expect_id(r, "ContactGroupIdentifier")
        cg = contact_group(2, cg["ContactGroupStartTime"], cg["ContactGroupEventTime"],
                           day(danish_today()), r)
        r2 = c.call("UpdateContactGroup", STAR, "STAR UpdateContactGroup fresh person",
                    PersonCivilRegistrationIdentifier=fresh_cg, ContactGroup=cg)
        check(r2 == r, f"UpdateContactGroup answered {r2}, expected {r}")
        return f"created and ended today: {r}"

    def retried_create(operation, field, make):
        message_id = f"urn:uuid:{uuid.uuid4()}"
        c.fixed.message_id = message_id
        try:
            ids = []
            for attempt in (1, 2):
                r = c.call(operation, STAR, f"STAR {operation} retry {attempt}",
                           PersonCivilRegistrationIdentifier=fresh_retry, **{field: make()})
                ids.append(c.expect_id(r, f"{operation} attempt {attempt}"))
                check(c.sent_message_id() == message_id,
                      f"zeep sent MessageID {c.sent_message_id()!r}, not the fixed one")
                c.check_wsa_reply(operation)
            check(ids[0] == ids[1], f"the same MessageID answered {ids[0]} and then {ids[1]}")
            # The same MessageID with other content names another registration: refused.
            other = make()
            key = next(k for k in other if k.endswith("TypeIdentifier"))
            other[key] = 4
            c.expect_fault(operation, STAR, f"STAR {operation} same MessageID, other content",
                           900304, PersonCivilRegistrationIdentifier=fresh_retry, **{field: other})
        finally:
            c.fixed.message_id = None
        return f"MessageID {message_id} twice -> {ids[0]} both times; other content -> Fault 900304"

    def retried_cg():
        start = dt.date(2025, 2, 3)
        return retried_create("CreateContactGroup", "ContactGroup",
                              lambda: contact_group(1, day(start), at(start, 12)))

    def retried_pc():
        start = dt.date(2025, 2, 3)
        return retried_create("CreatePersonCategory", "PersonCategory",
                              lambda: person_category(1, day(start), at(start, 12)))

    s = lambda name: step(port, name)  # noqa: E731
    if s("CreateContactGroup (Jobcenter 101, 0101701111)")(create_cg):
        s("UpdateContactGroup, end date tomorrow -> 100028")(update_cg_tomorrow)
        s("UpdateContactGroup, same type/start/event, end date today")(update_cg_today)
        s("UpdateContactGroup, other type -> 900509")(update_cg_other_type)
    if s("CreatePersonCategory (Jobcenter 101, 0101701111)")(create_pc):
        s("UpdatePersonCategory")(update_pc)
    s("CreatePersonCategoryAndInterview -> 900510")(create_pc_and_interview)
    s("CreateContactGroup type 1 then type 13 for enrolled 0202702222 -> 100029")(enrolled_other_type)
    s("CreateContactGroup for 0303703333 (municipality 147) as Jobcenter 101 -> 900203")(other_municipality)
    s("STAR: CreateContactGroup + UpdateContactGroup, person not in the register")(star_fresh_person)
    s("STAR: CreateContactGroup retried with the same wsa:MessageID")(retried_cg)
    s("STAR: CreatePersonCategory retried with the same wsa:MessageID")(retried_pc)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    endpoint, log_path = sys.argv[1:]
    open(log_path, "w").close()
    print(f"  zeep {zeep.__version__}, WSDL {endpoint}?wsdl, Danish date today {danish_today()}")
    transport_ = transport(log_path, requests.Session())
    history = HistoryPlugin()
    fixed = FixedMessageID()
    client = zeep.Client(f"{endpoint}?wsdl", transport=transport_, plugins=[history, fixed])
    for port in PORTS:
        address = client.wsdl.services["PersonRegistrationService"].ports[port].binding_options["address"]
        if address != endpoint:
            print(f"  FAIL  {port}: the served WSDL gives the address {address}, expected {endpoint}")
            failures.append(f"{port} address {address}")
    for index, port in enumerate(PORTS):
        run_port(Caller(client, port, transport_, history, fixed), index)
    finish("zeep", log_path)


if __name__ == "__main__":
    main()
