"""The legacy WSRM pull queue (WsrmService v3, WsrmMessageService v10) through zeep (PyPI), a
real third-party SOAP client acting as the legacy subscribers.

    zeep_wsrm.py CONVERTER_URL EXCHANGE_LOG

Run by scripts/interop.sh (section run_wsrm) in the .interop venv, against the converter that
start_converter started: dev mode (the embedded backend, seeded with mappings/dev-seed.toml),
WSRM subscribers Jobcenter 1:101 and A-kasse 2:12 (--wsrm-subscriber 1:101 --wsrm-subscriber
2:12). zeep loads the WSDLs the converter SERVES (PersonRegistrationService/9, WsrmService/3 and
WsrmMessageService/10, each ?wsdl), with the dfdg:RequestUserMetadata header as
_soapheaders; the WSDLs declare wsam:Action, so zeep sends WS-Addressing and every reply's
wsa:RelatesTo and wsa:Action are checked too. Each exchange is appended to EXCHANGE_LOG.

The person: 0101701111 of mappings/dev-seed.toml, a citizen of municipality 101 and a member
of a-kasse 12 (not enrolled, so rule 2 does not stop a change of contact group type).

The scenario runs twice, over the SOAP 1.1 ports and then over the SOAP 1.2 ports:
  0. a clean start: earlier sections left an open contact group or person category for the
     person, and a new registration closes the open one (rule 5), which would add an Updated
     message to the ones counted below. So a preparatory contact group and person category
     are created and ended through PRS (closing whatever was open), and then the queues of
     1:101 and 2:12 are drained (CreateSequence, every inventory entry's operation,
     TerminateSequence) until the preparation's messages have come and the inventory is
     empty;
  1. as Jobcenter 101 through PRS: CreateContactGroup type 1, CreateContactGroup type 13
     (which closes the type 1 the day before), CreatePersonCategory;
  2. Jobcenter 101 polls (CreateSequence, CloseSequence while not all there, at most 10 s):
     the inventory is exactly GetContactGroupVersion5 3, GetContactGroupVersion4 3,
     GetPersonCategoryVersion1 1, each naming the converter's WsrmMessageService/10 address;
     the messages, oldest first: type 1 Created, type 1 Updated (end date), type 13 Created,
     and the person category Created, with the identifiers PRS answered, the dates and event
     times sent, RegisteringAuthority 1/101 and RegisteringUser in V5 and V1, neither in V4,
     MessageIdentifiers lower-case UUIDs, all different; GetCprChanged (not in the
     inventory) is empty;
  3. CloseSequence: the closed sequence's id is fault 900530; a new CreateSequence has the
     same inventory and the same messages with the same MessageIdentifiers; A-kasse 12 using
     that SequenceIdentifier is fault 900530 (and the sequence is still Jobcenter 101's);
     TerminateSequence: the id is 900530 from then on, and a new CreateSequence has an empty
     inventory;
  4. A-kasse 12: CreateSequence has only GetContactGroupVersion5 with one message, the type
     13 created (not type 1, no person category, no V4); TerminateSequence; then empty;
  5. Jobcenter 147, no subscriber: CreateSequence is fault 900531.

Exit status 0 when every check holds; each check prints one line.
"""

import datetime as dt
import sys
import time

import requests
import zeep
from zeep.helpers import serialize_object
from zeep.plugins import HistoryPlugin

import zeep_common
from zeep_common import UUID_RE, at, check, danish_today, day, failures, finish, items_of

PRS = ("PersonRegistrationService", 9)
WS = ("WsrmService", 3)
WMS = ("WsrmMessageService", 10)
WMS_NS = "urn:dk:star:dfdg:WsrmMessageService:10"

USER_JC = "zeep-wsrm-jc"
JOBCENTER_101 = {"OrganisationType": 1, "OrganisationCode": "101", "UserIdentifier": USER_JC}
AKASSE_12 = {"OrganisationType": 2, "OrganisationCode": "12", "UserIdentifier": "zeep-wsrm-ak"}
JOBCENTER_147 = {"OrganisationType": 1, "OrganisationCode": "147", "UserIdentifier": "zeep-wsrm-147"}
PERSON = "0101701111"   # municipality 101, a-kasse 12, not enrolled (mappings/dev-seed.toml)

V5, V4, PC1, CPR = ("GetContactGroupVersion5", "GetContactGroupVersion4",
                    "GetPersonCategoryVersion1", "GetCprChanged")
ITEM = {V5: "ContactGroupMessage", V4: "ContactGroupMessage", PC1: "PersonCategoryMessage",
        CPR: "CprChangedMessage"}
UNKNOWN_SEQUENCE = 900530
NOT_SUBSCRIBER = 900531
POLL_SECONDS = 10.0


def today_minus(days):
    return danish_today() - dt.timedelta(days=days)


class Run:
    """The three services over one binding (Soap11 or Soap12), and the checks of one run."""

    def __init__(self, clients, suffix, transport_, history, base_url, index):
        self.suffix = suffix
        self.prs = zeep_common.Caller(clients[PRS], PRS, f"{PRS[0]}{suffix}", transport_, history)
        self.ws = zeep_common.Caller(clients[WS], WS, f"{WS[0]}{suffix}", transport_, history)
        self.wms = zeep_common.Caller(clients[WMS], WMS, f"{WMS[0]}{suffix}", transport_, history)
        self.history = history
        self.endpoint = f"{base_url}/WsrmMessageService/10"
        self.endpoints_seen = set()
        # Days: within the last 30 (later than zeep_reads' person category, which starts 30
        # days back and is still open), each run later than the one before (rule 5), no end
        # date after today (rule 1). Run 0: 20, 19, 18 days back; run 1: 14, 13, 12.
        back = 20 - 6 * index
        self.prep = today_minus(back)
        self.s1 = today_minus(back - 1)
        self.s2 = today_minus(back - 2)
        self.ids = {}

    def step(self, name, fn, *args):
        return zeep_common.step(f"{self.suffix} {name}", fn, *args)

    # --- WSRM plumbing

    def create_sequence(self, who, label):
        """CreateSequence: (SequenceIdentifier, {ServiceName: MessageCount})."""
        r = self.ws.call("CreateSequence", who, label)
        seq = r.SequenceIdentifier
        check(isinstance(seq, str) and UUID_RE.match(seq), f"SequenceIdentifier {seq!r} is not a lower-case UUID")
        inventory = {}
        for entry in items_of(r.InventoryCollection, "Inventory"):
            check(entry.ServiceName not in inventory, f"the inventory names {entry.ServiceName} twice")
            check(isinstance(entry.MessageCount, int) and entry.MessageCount > 0,
                  f"{entry.ServiceName}: MessageCount {entry.MessageCount!r}")
            self.endpoints_seen.add(entry.ServiceEndpoint)
            inventory[entry.ServiceName] = entry.MessageCount
        return seq, inventory

    def messages(self, who, kind, seq, label):
        """The sequence's messages of one kind, as zeep deserialised them. (zeep unwraps the
        response down to the collection's items: a list, or None for an empty collection.)"""
        r = self.wms.call(kind, who, label, SequenceIdentifier=seq)
        if r is None or isinstance(r, list):
            return list(r or [])
        return items_of(r, ITEM[kind])

    def received_count(self, local_name):
        """How many elements of this local name the last reply has (WsrmMessageService ns)."""
        env = self.history.last_received["envelope"]
        return len(env.findall(f".//{{{WMS_NS}}}{local_name}"))

    def finish_sequence(self, operation, who, seq, label):
        r = self.ws.call(operation, who, label, SequenceIdentifier=seq)
        check(r is None, f"{operation} answered {r!r}, expected an empty response")

    def drain(self, who, name, wait_for=frozenset()):
        """CreateSequence, every inventory entry's operation, TerminateSequence, until the
        inventory is empty and every (kind, registration id, ChangeType) of wait_for was seen
        (at most POLL_SECONDS). The number of messages drained."""
        seen, n, rounds = set(), 0, 0
        deadline = time.monotonic() + POLL_SECONDS
        while True:
            rounds += 1
            seq, inventory = self.create_sequence(who, f"{name} drain CreateSequence")
            for kind, count in sorted(inventory.items()):
                got = self.messages(who, kind, seq, f"{name} drain {kind}")
                check(len(got) == count, f"{kind}: {len(got)} messages, the inventory said {count}")
                for m in got:
                    seen.add((kind, registration_id(kind, m), m.ChangeType if kind != CPR else None))
                n += count
            self.finish_sequence("TerminateSequence", who, seq, f"{name} drain TerminateSequence")
            if not inventory and wait_for <= seen:
                return f"{n} messages in {rounds} sequences"
            check(time.monotonic() < deadline,
                  f"after {POLL_SECONDS:g} s the queue still has messages or never got "
                  f"{sorted(wait_for - seen)}")
            if not inventory:
                time.sleep(0.2)

    def poll(self, who, name, want):
        """CreateSequence until the inventory has at least `want` (CloseSequence between
        tries, at most POLL_SECONDS): (SequenceIdentifier, inventory, tries)."""
        deadline = time.monotonic() + POLL_SECONDS
        tries = 0
        while True:
            tries += 1
            seq, inventory = self.create_sequence(who, f"{name} poll CreateSequence")
            if all(inventory.get(k, 0) >= c for k, c in want.items()):
                return seq, inventory, tries
            self.finish_sequence("CloseSequence", who, seq, f"{name} poll CloseSequence")
            check(time.monotonic() < deadline,
                  f"after {POLL_SECONDS:g} s ({tries} polls) the inventory is {inventory}, expected {want}")
            time.sleep(0.2)

    # --- PRS

    def create(self, operation, field, body, label):
        r = self.prs.call(operation, JOBCENTER_101, label,
                          PersonCivilRegistrationIdentifier=PERSON, **{field: body})
        check(isinstance(r, str) and UUID_RE.match(r), f"{operation}: {r!r} is not a lower-case UUID")
        return r

    def update(self, operation, field, body, label, ident):
        r = self.prs.call(operation, JOBCENTER_101, label,
                          PersonCivilRegistrationIdentifier=PERSON, **{field: body})
        check(r == ident, f"{operation} answered {r!r}, expected {ident}")
        return r


def registration_id(kind, m):
    if kind in (V5, V4):
        return m.ContactGroup.ContactGroupIdentifier
    if kind == PC1:
        return m.PersonCategory.PersonCategoryIdentifier
    return None


def same_instant(got, want, what):
    check(isinstance(got, dt.datetime) and got.tzinfo is not None,
          f"{what} {got!r} is not a time with an offset")
    check(got == want, f"{what} {got.isoformat()}, expected {want.isoformat()}")


def check_metadata(m, v5_like, what):
    md = m.WSRMMetadata
    check(isinstance(md.MessageIdentifier, str) and UUID_RE.match(md.MessageIdentifier),
          f"{what}: MessageIdentifier {md.MessageIdentifier!r} is not a lower-case UUID")
    if v5_like:
        ra = md.RegisteringAuthority
        check(ra is not None, f"{what}: no RegisteringAuthority")
        check(ra.OrganisationType == 1 and ra.OrganisationCode == "101",
              f"{what}: RegisteringAuthority {ra.OrganisationType}/{ra.OrganisationCode}, expected 1/101")
        ru = md.RegisteringUser
        check(ru is not None and ru.UserIdentifier == USER_JC,
              f"{what}: RegisteringUser {ru and ru.UserIdentifier!r}, expected {USER_JC!r}")
    check(m.PersonCivilRegistrationIdentifier == PERSON,
          f"{what}: PersonCivilRegistrationIdentifier is not the person registered")


def check_cg(m, exp, v5, what):
    """One contact group message against exp: id, type, start, end (None: absent), event,
    change."""
    check_metadata(m, v5, what)
    cg = m.ContactGroup
    check(cg.ContactGroupIdentifier == exp["id"],
          f"{what}: ContactGroupIdentifier {cg.ContactGroupIdentifier}, expected {exp['id']}")
    check(cg.ContactGroupTypeIdentifier == exp["type"],
          f"{what}: ContactGroupTypeIdentifier {cg.ContactGroupTypeIdentifier}, expected {exp['type']}")
    same_instant(cg.ContactGroupStartTime, day(exp["start"]), f"{what}: ContactGroupStartTime")
    if exp["end"] is None:
        check(cg.ContactGroupEndTime is None, f"{what}: ContactGroupEndTime {cg.ContactGroupEndTime}, expected none")
    else:
        same_instant(cg.ContactGroupEndTime, day(exp["end"]), f"{what}: ContactGroupEndTime")
    same_instant(cg.ContactGroupEventTime, exp["event"], f"{what}: ContactGroupEventTime")
    check(m.ChangeType == exp["change"], f"{what}: ChangeType {m.ChangeType}, expected {exp['change']}")


def check_pc(m, exp, what):
    check_metadata(m, True, what)
    pc = m.PersonCategory
    check(pc.PersonCategoryIdentifier == exp["id"],
          f"{what}: PersonCategoryIdentifier {pc.PersonCategoryIdentifier}, expected {exp['id']}")
    check(pc.PersonCategoryTypeIdentifier == exp["type"],
          f"{what}: PersonCategoryTypeIdentifier {pc.PersonCategoryTypeIdentifier}, expected {exp['type']}")
    same_instant(pc.PersonCategoryStartTime, day(exp["start"]), f"{what}: PersonCategoryStartTime")
    check(pc.PersonCategoryEndTime is None, f"{what}: PersonCategoryEndTime {pc.PersonCategoryEndTime}, expected none")
    same_instant(pc.PersonCategoryEventTime, exp["event"], f"{what}: PersonCategoryEventTime")
    check(m.ChangeType == exp["change"], f"{what}: ChangeType {m.ChangeType}, expected {exp['change']}")


def run_binding(r):
    """The scenario over one binding; returns nothing, records failures."""
    state = {}

    # --- 0. A clean start.
    def prepare():
        cg = {"ContactGroupTypeIdentifier": 1, "ContactGroupStartTime": day(r.prep),
              "ContactGroupEventTime": at(r.prep, 8)}
        cg_id = r.create("CreateContactGroup", "ContactGroup", cg, "prep CreateContactGroup type 1")
        r.update("UpdateContactGroup", "ContactGroup",
                 {"ContactGroupIdentifier": cg_id, **cg, "ContactGroupEndTime": day(r.prep)},
                 "prep UpdateContactGroup end", cg_id)
        pc = {"PersonCategoryTypeIdentifier": 2, "PersonCategoryStartTime": day(r.prep),
              "PersonCategoryEventTime": at(r.prep, 8)}
        pc_id = r.create("CreatePersonCategory", "PersonCategory", pc, "prep CreatePersonCategory")
        r.update("UpdatePersonCategory", "PersonCategory",
                 {"PersonCategoryIdentifier": pc_id, **pc, "PersonCategoryEndTime": day(r.prep)},
                 "prep UpdatePersonCategory end", pc_id)
        state["prep"] = (cg_id, pc_id)
        return f"contact group {cg_id} and person category {pc_id} from {r.prep}, both ended that day"

    if not r.step(f"prep: Jobcenter 101 creates and ends a contact group and a person category of {PERSON} (PRS)",
                  prepare):
        return
    cg_id, pc_id = state["prep"]
    wait = frozenset({(V5, cg_id, "Updated"), (V4, cg_id, "Updated"), (PC1, pc_id, "Updated")})
    if not r.step("drain Jobcenter 1:101's queue (until the prep's last messages came and it is empty)",
                  r.drain, JOBCENTER_101, "1:101", wait):
        return
    if not r.step("drain A-kasse 2:12's queue", r.drain, AKASSE_12, "2:12"):
        return

    # --- 1. The registrations.
    exp = {}

    def register():
        e1 = at(r.s1, 9, 30)
        id1 = r.create("CreateContactGroup", "ContactGroup",
                       {"ContactGroupTypeIdentifier": 1, "ContactGroupStartTime": day(r.s1),
                        "ContactGroupEventTime": e1}, "CreateContactGroup type 1")
        e13 = at(r.s2, 10, 45)
        id13 = r.create("CreateContactGroup", "ContactGroup",
                        {"ContactGroupTypeIdentifier": 13, "ContactGroupStartTime": day(r.s2),
                         "ContactGroupEventTime": e13}, "CreateContactGroup type 13")
        ep = at(r.s1, 11, 15)
        idp = r.create("CreatePersonCategory", "PersonCategory",
                       {"PersonCategoryTypeIdentifier": 2, "PersonCategoryStartTime": day(r.s1),
                        "PersonCategoryEventTime": ep}, "CreatePersonCategory type 2")
        exp["cg"] = [
            {"id": id1, "type": 1, "start": r.s1, "end": None, "event": e1, "change": "Created"},
            # Rule 5: the type 13 closes the type 1 the day before it starts.
            {"id": id1, "type": 1, "start": r.s1, "end": r.s2 - dt.timedelta(days=1), "event": e1,
             "change": "Updated"},
            {"id": id13, "type": 13, "start": r.s2, "end": None, "event": e13, "change": "Created"},
        ]
        exp["pc"] = [{"id": idp, "type": 2, "start": r.s1, "event": ep, "change": "Created"}]
        return f"type 1 {id1} from {r.s1}, type 13 {id13} from {r.s2}, person category {idp}"

    if not r.step("Jobcenter 101: CreateContactGroup type 1, type 13, CreatePersonCategory (PRS)", register):
        return

    # --- 2. Jobcenter 101 polls and reads.
    want = {V5: 3, V4: 3, PC1: 1}

    def poll():
        t0 = time.monotonic()
        seq, inventory, tries = r.poll(JOBCENTER_101, "1:101", want)
        state["seq"] = seq
        check(inventory == want, f"inventory {inventory}, expected exactly {want}")
        return f"inventory {inventory} after {tries} poll(s), {time.monotonic() - t0:.2f} s"

    if not r.step("Jobcenter 101 CreateSequence: the inventory names V5 3, V4 3, V1 1", poll):
        return
    seq = state["seq"]

    def endpoint():
        check(r.endpoints_seen == {r.endpoint},
              f"ServiceEndpoint {sorted(r.endpoints_seen)}, expected the WsrmMessageService address {r.endpoint!r}")
        return r.endpoint

    r.step("the inventory's ServiceEndpoint is the converter's WsrmMessageService/10", endpoint)

    def read_all(seq, label):
        """{kind: messages} of the three kinds, checked against exp."""
        got = {}
        v5 = r.messages(JOBCENTER_101, V5, seq, f"1:101 {label} {V5}")
        check(len(v5) == 3, f"{V5}: {len(v5)} messages, expected 3")
        check(r.received_count("RegisteringAuthority") == 3, f"{V5}: the reply has "
              f"{r.received_count('RegisteringAuthority')} RegisteringAuthority elements, expected 3")
        for i, (m, e) in enumerate(zip(v5, exp["cg"])):
            check_cg(m, e, True, f"{V5}[{i}]")
        got[V5] = v5
        v4 = r.messages(JOBCENTER_101, V4, seq, f"1:101 {label} {V4}")
        check(len(v4) == 3, f"{V4}: {len(v4)} messages, expected 3")
        for element in ("RegisteringAuthority", "RegisteringUser"):
            check(r.received_count(element) == 0, f"{V4}: the reply has {element}")
        check(r.received_count("MessageIdentifier") == 3, f"{V4}: not 3 MessageIdentifier elements")
        for i, (m, e) in enumerate(zip(v4, exp["cg"])):
            check_cg(m, e, False, f"{V4}[{i}]")
        got[V4] = v4
        pc = r.messages(JOBCENTER_101, PC1, seq, f"1:101 {label} {PC1}")
        check(len(pc) == 1, f"{PC1}: {len(pc)} messages, expected 1")
        check_pc(pc[0], exp["pc"][0], f"{PC1}[0]")
        got[PC1] = pc
        ids = [m.WSRMMetadata.MessageIdentifier for k in (V5, V4, PC1) for m in got[k]]
        check(len(set(ids)) == len(ids), f"MessageIdentifiers repeat: {ids}")
        cpr = r.messages(JOBCENTER_101, CPR, seq, f"1:101 {label} {CPR}")
        check(cpr == [], f"{CPR} (not in the inventory): {len(cpr)} messages")
        return got

    def first_read():
        state["first"] = read_all(seq, "first")
        return ("V5 and V4: type 1 Created, type 1 Updated (end), type 13 Created; V1: Created; "
                "RegisteringAuthority 1/101 in V5 and V1 only; 7 distinct MessageIdentifiers; GetCprChanged empty")

    if not r.step("Jobcenter 101 GetContactGroupVersion5/4, GetPersonCategoryVersion1, GetCprChanged", first_read):
        return

    # --- 3. Close: again; terminate: never again.
    def close_again():
        r.finish_sequence("CloseSequence", JOBCENTER_101, seq, "1:101 CloseSequence")
        r.wms.expect_fault(V5, JOBCENTER_101, "1:101 V5 with the closed sequence", UNKNOWN_SEQUENCE,
                           SequenceIdentifier=seq)
        seq2, inventory = r.create_sequence(JOBCENTER_101, "1:101 CreateSequence after close")
        check(seq2 != seq, "the new sequence has the closed one's SequenceIdentifier")
        check(inventory == want, f"inventory after CloseSequence {inventory}, expected {want}")
        again = read_all(seq2, "again")
        for kind in (V5, V4, PC1):
            before = [m.WSRMMetadata.MessageIdentifier for m in state["first"][kind]]
            now = [m.WSRMMetadata.MessageIdentifier for m in again[kind]]
            check(now == before, f"{kind}: MessageIdentifiers {now} after the close, before {before}")
            check([serialize_object(m) for m in again[kind]]
                  == [serialize_object(m) for m in state["first"][kind]],
                  f"{kind}: the messages differ from the first delivery")
        state["seq2"] = seq2
        return f"the closed id is {UNKNOWN_SEQUENCE}; sequence {seq2}: the same 7 messages, the same MessageIdentifiers"

    if not r.step("CloseSequence: the messages come again with the same MessageIdentifiers", close_again):
        return
    seq2 = state["seq2"]

    def other_org():
        r.wms.expect_fault(V5, AKASSE_12, "2:12 V5 with 1:101's sequence", UNKNOWN_SEQUENCE,
                           SequenceIdentifier=seq2)
        r.ws.expect_fault("TerminateSequence", AKASSE_12, "2:12 TerminateSequence of 1:101's sequence",
                          UNKNOWN_SEQUENCE, SequenceIdentifier=seq2)
        still = r.messages(JOBCENTER_101, V5, seq2, "1:101 V5 after 2:12's tries")
        check(len(still) == 3, f"Jobcenter 101's sequence has {len(still)} V5 messages after A-kasse 12's tries")
        return f"{V5} and TerminateSequence -> Fault {UNKNOWN_SEQUENCE}; the sequence is still 1:101's"

    r.step("A-kasse 12 with Jobcenter 101's SequenceIdentifier -> 900530", other_org)

    def terminate():
        r.finish_sequence("TerminateSequence", JOBCENTER_101, seq2, "1:101 TerminateSequence")
        r.wms.expect_fault(V5, JOBCENTER_101, "1:101 V5 with the terminated sequence", UNKNOWN_SEQUENCE,
                           SequenceIdentifier=seq2)
        r.ws.expect_fault("TerminateSequence", JOBCENTER_101, "1:101 TerminateSequence again",
                          UNKNOWN_SEQUENCE, SequenceIdentifier=seq2)
        seq3, inventory = r.create_sequence(JOBCENTER_101, "1:101 CreateSequence after terminate")
        check(inventory == {}, f"inventory after TerminateSequence {inventory}, expected empty")
        r.finish_sequence("TerminateSequence", JOBCENTER_101, seq3, "1:101 TerminateSequence (empty)")
        return f"the terminated id is {UNKNOWN_SEQUENCE}; a new CreateSequence has an empty inventory"

    r.step("TerminateSequence: the messages never come again", terminate)

    # --- 4. A-kasse 12.
    def akasse():
        seq_a, inventory = r.create_sequence(AKASSE_12, "2:12 CreateSequence")
        check(inventory == {V5: 1}, f"inventory {inventory}, expected exactly {{{V5!r}: 1}}")
        got = r.messages(AKASSE_12, V5, seq_a, f"2:12 {V5}")
        check(len(got) == 1, f"{V5}: {len(got)} messages, expected 1")
        check_cg(got[0], exp["cg"][2], True, f"2:12 {V5}[0]")
        jc_ids = {m.WSRMMetadata.MessageIdentifier for m in state["first"][V5]}
        check(got[0].WSRMMetadata.MessageIdentifier not in jc_ids,
              "A-kasse 12's MessageIdentifier is one of Jobcenter 101's")
        for kind in (V4, PC1):
            other = r.messages(AKASSE_12, kind, seq_a, f"2:12 {kind}")
            check(other == [], f"{kind}: {len(other)} messages for the a-kasse")
        r.finish_sequence("TerminateSequence", AKASSE_12, seq_a, "2:12 TerminateSequence")
        seq_b, inventory = r.create_sequence(AKASSE_12, "2:12 CreateSequence after terminate")
        check(inventory == {}, f"inventory after TerminateSequence {inventory}, expected empty")
        r.finish_sequence("TerminateSequence", AKASSE_12, seq_b, "2:12 TerminateSequence (empty)")
        return f"{V5} 1: type 13 {exp['cg'][2]['id']} Created; no V4, no person category; then empty"

    r.step("A-kasse 12: only GetContactGroupVersion5, the type 13 created", akasse)

    # --- 5. Not a subscriber.
    def not_subscriber():
        errors = r.ws.expect_fault("CreateSequence", JOBCENTER_147, "1:147 CreateSequence", NOT_SUBSCRIBER)
        return f"Fault {NOT_SUBSCRIBER} {errors[0][1]!r}"

    r.step("Jobcenter 147 (no subscriber) CreateSequence -> 900531", not_subscriber)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base_url, log_path = sys.argv[1].rstrip("/"), sys.argv[2]
    open(log_path, "w").close()
    t_start = time.monotonic()
    print(f"  zeep {zeep.__version__}, converter {base_url}, Danish date today {danish_today()}, person {PERSON}")
    transport_ = zeep_common.transport(log_path, requests.Session())
    history = HistoryPlugin()
    clients = {}
    for service in (PRS, WS, WMS):
        endpoint = f"{base_url}/{service[0]}/{service[1]}"

        def load():
            client = zeep.Client(f"{endpoint}?wsdl", transport=transport_, plugins=[history])
            ports = client.wsdl.services[service[0]].ports
            for suffix in ("Soap11", "Soap12"):
                port = f"{service[0]}{suffix}"
                check(port in ports, f"no port {port}: {sorted(ports)}")
                address = ports[port].binding_options["address"]
                check(address == endpoint, f"{port}: the served WSDL gives the address {address}, expected {endpoint}")
            clients[service] = client
            ops = sorted(ports[f"{service[0]}Soap11"].binding._operations)
            return f"{len(ops)} operations: {', '.join(ops)}"

        zeep_common.step(f"zeep.Client({endpoint}?wsdl)", load)
    if len(clients) < 3:
        finish("zeep wsrm", log_path, t_start)
        return
    for index, suffix in enumerate(("Soap11", "Soap12")):
        print(f"  -- SOAP {'1.1' if suffix == 'Soap11' else '1.2'} ports")
        run_binding(Run(clients, suffix, transport_, history, base_url, index))
    finish("zeep wsrm", log_path, t_start)


if __name__ == "__main__":
    main()
