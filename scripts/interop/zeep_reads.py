"""PersonStatusService v20 and PersonHistoryService v4 through zeep (PyPI), before and after
the cutover.

    zeep_reads.py CONVERTER_URL EXCHANGE_LOG

Run by scripts/interop.sh (section run_zeep_reads) in the .interop venv, after run_zeep,
against the converter start_converter started: a fresh data directory, the embedded backend
in dev mode seeded with mappings/dev-seed.toml, the default cutover (2025-03-01, past) and
an own cutover 60 days ahead for Jobcenter 1:101 and A-kasse 2:34. zeep loads the WSDLs the
converter SERVES (CONVERTER_URL/<Service>/<version>?wsdl) and reads over both bindings, the
ports <Service>Soap11 and <Service>Soap12, with dfdg:RequestUserMetadata as _soapheaders.
Each exchange (HTTP status, request and response envelopes) is appended to EXCHANGE_LOG.

Callers and persons (mappings/dev-seed.toml; the CPR numbers are fictitious):
  Jobcenter 1:101  before its own cutover: registers through PersonRegistrationService v9
                   for 0101701111 (municipality 101, a-kasse 12), then reads them back from
                   REST: current contact groups and person categories (PSS), every version
                   oldest first (PHS), PeriodStartDate/PeriodEndDate; asking about
                   0303703333 (municipality 147) is fault 900203.
  A-kasse 2:34     before its own cutover, its member 0303703333 (registered by STAR): only
                   the contact group types an a-kasse sees, no person categories (REST's
                   900204 becomes an empty collection).
  Kommune 3:101, A-kasse 2:12
                   past the default cutover: the collections present and empty, no REST call
                   (vos_converter_upstream_seconds does not move), vos_converter_past_cutover 1.
Start dates are derived from today's Danish date (months back), later than anything the
earlier sections registered for these persons (rule 5: a new registration must start after
the open one's start); so the script expects the data of one suite run, as zeep_prs.py does.

zeep reads an empty collection element (<ContactGroupCollection/>) as None; the raw answer
is checked too: the element present, with no children.

Exit status 0 when every check holds; each check prints one line.
"""

import datetime as dt
import re
import sys
import time

import requests
import zeep
from lxml import etree
from zeep.helpers import serialize_object
from zeep.plugins import HistoryPlugin

import zeep_common
from zeep_common import (CPH, UUID_RE, at, check, danish_today, day, failures, finish, items_of, step,
                         transport)

PRS = ("PersonRegistrationService", 9)
PSS = ("PersonStatusService", 20)
PHS = ("PersonHistoryService", 4)

JOBCENTER_101 = {"OrganisationType": 1, "OrganisationCode": "101", "UserIdentifier": "zeep-reads-jc"}
KOMMUNE_101 = {"OrganisationType": 3, "OrganisationCode": "101", "UserIdentifier": "zeep-reads-ko"}
AKASSE_12 = {"OrganisationType": 2, "OrganisationCode": "12", "UserIdentifier": "zeep-reads-ak"}
AKASSE_34 = {"OrganisationType": 2, "OrganisationCode": "34", "UserIdentifier": "zeep-reads-ak"}
STAR = {"OrganisationType": 5, "OrganisationCode": "12345678", "UserIdentifier": "zeep-reads-star"}

PERSON_101 = "0101701111"   # municipality 101, member of a-kasse 12, not enrolled
PERSON_147 = "0303703333"   # municipality 147, member of a-kasse 34, not enrolled

# Rule 6: the contact group types an a-kasse sees (mappings/kontaktgruppetyper.toml).
AKASSE_TYPE = 1
HIDDEN_FROM_AKASSE_TYPE = 12

READ_OPERATIONS = ("GetKontaktgrupper", "GetPersonkategorier", "GetKontaktgruppeHistorik",
                   "GetPersonkategoriHistorik")

ERR_NO_ACCESS = 900203
ERR_START_AFTER_END = 900105


def offset_text(value):
    off = value.utcoffset()
    if off is None:
        return "no offset"
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def check_day(value, d, what):
    """value is the Danish midnight of d, written with the Danish offset (+01:00 in winter,
    +02:00 in summer)."""
    check(isinstance(value, dt.datetime), f"{what} is {value!r}, expected a datetime")
    check(value.utcoffset() is not None, f"{what} {value.isoformat()} has no offset")
    local = value.astimezone(CPH)
    check(local.date() == d and local.time() == dt.time(0),
          f"{what} {value.isoformat()} is not the Danish midnight of {d}")
    want = offset_text(day(d))
    check(offset_text(value) == want, f"{what} {value.isoformat()}: offset {offset_text(value)}, expected {want}")


def check_instant(value, expected, what):
    check(isinstance(value, dt.datetime), f"{what} is {value!r}, expected a datetime")
    check(value.utcoffset() is not None, f"{what} {value.isoformat()} has no offset")
    check(value == expected, f"{what} {value.isoformat()}, expected {expected.isoformat()}")
    want = offset_text(value.astimezone(CPH))
    check(offset_text(value) == want,
          f"{what} {value.isoformat()}: offset {offset_text(value)}, expected the Danish {want}")


# ---------------------------------------------------------------------------------------------
# zeep plumbing


class Caller(zeep_common.Caller):
    """One port of one service, with the shared transport and history."""

    def __init__(self, client, service, port, transport_, history):
        super().__init__(client, service, port, transport_, history)
        self.service_name = service[0]

    def raw_collection(self, path):
        """The collection element of the last answer (path below the response wrapper, local
        names), as lxml gives it; None when absent."""
        body = self.history.last_received["envelope"]
        node = None
        for child in body.iter():
            if etree.QName(child).localname == "Body":
                node = child
                break
        check(node is not None and len(node), "the answer has no SOAP Body content")
        node = node[0]
        for name in path.split("/"):
            node = node.find(f"{{{self.ns}}}{name}")
            if node is None:
                return None
        return node


def collection_empty(caller, result, element, item):
    """The collection is present in the answer and empty: zeep's attribute exists and is
    None or has no items, and the raw element is there with no children."""
    check(hasattr(result, element), f"zeep's answer has no attribute {element}")
    value = getattr(result, element)
    check(value is None or not items_of(value, item),
          f"{element} has {len(items_of(value, item))} items, expected none")
    wrapper = "PersonStatus" if caller.service_name == PSS[0] else "PersonHistory"
    raw = caller.raw_collection(f"{wrapper}/{element}")
    check(raw is not None, f"the answer has no {element} element (it must be present, empty)")
    check(len(raw) == 0 and not (raw.text or "").strip(),
          f"the answer's {element} has content: {etree.tostring(raw, encoding='unicode')[:200]}")
    return "None" if value is None else "no items"


# ---------------------------------------------------------------------------------------------
# Metrics: which REST calls the converter made

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(base_url):
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    upstream, past = {}, {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        if m.group(1) == "vos_converter_upstream_seconds_count":
            upstream[labels.get("operation_id")] = float(m.group(3))
        elif m.group(1) == "vos_converter_past_cutover":
            past[f"{labels.get('organisation_type')}:{labels.get('organisation_code')}"] = float(m.group(3))
    return upstream, past


# ---------------------------------------------------------------------------------------------
# The scenario


class Plan:
    """The registrations this script makes, their days derived from today's Danish date."""

    def __init__(self):
        self.today = danish_today()
        self.tomorrow = self.today + dt.timedelta(days=1)
        # Months back: later than the earlier sections' 2024/2025 starts (rule 5); a summer and
        # a winter day most of the year, so both Danish offsets appear.
        self.cg_start = self.today - dt.timedelta(days=180)
        self.cg_event = at(self.cg_start, 9, 30)
        self.pc_start = self.today - dt.timedelta(days=30)
        self.pc_event = at(self.pc_start, 10, 15)
        self.hidden_start = self.today - dt.timedelta(days=150)
        self.ak_start = self.today - dt.timedelta(days=60)
        self.ids = {}
        self.t0 = None
        self.t1 = None


def register(prs11, prs12, plan):
    """The data through PersonRegistrationService v9 (both ports)."""
    plan.t0 = dt.datetime.now(dt.timezone.utc)

    def create_cg():
        r = prs11.call("CreateContactGroup", JOBCENTER_101, "CreateContactGroup 0101701111",
                       PersonCivilRegistrationIdentifier=PERSON_101,
                       ContactGroup={"ContactGroupTypeIdentifier": 1,
                                     "ContactGroupStartTime": day(plan.cg_start),
                                     "ContactGroupEventTime": plan.cg_event})
        check(isinstance(r, str) and UUID_RE.match(r), f"ContactGroupIdentifier {r!r}")
        plan.ids["cg"] = r
        return f"type 1 from {plan.cg_start} ({offset_text(day(plan.cg_start))}): {r}"

    def update_cg():
        r = prs12.call("UpdateContactGroup", JOBCENTER_101, "UpdateContactGroup 0101701111 end today",
                       PersonCivilRegistrationIdentifier=PERSON_101,
                       ContactGroup={"ContactGroupIdentifier": plan.ids["cg"],
                                     "ContactGroupTypeIdentifier": 1,
                                     "ContactGroupStartTime": day(plan.cg_start),
                                     "ContactGroupEndTime": day(plan.today),
                                     "ContactGroupEventTime": plan.cg_event})
        check(r == plan.ids["cg"], f"UpdateContactGroup answered {r!r}, expected {plan.ids['cg']}")
        return f"end {plan.today}: a second version"

    def create_pc():
        r = prs11.call("CreatePersonCategory", JOBCENTER_101, "CreatePersonCategory 0101701111",
                       PersonCivilRegistrationIdentifier=PERSON_101,
                       PersonCategory={"PersonCategoryTypeIdentifier": 2,
                                       "PersonCategoryStartTime": day(plan.pc_start),
                                       "PersonCategoryEventTime": plan.pc_event})
        check(isinstance(r, str) and UUID_RE.match(r), f"PersonCategoryIdentifier {r!r}")
        plan.ids["pc"] = r
        return f"type 2 from {plan.pc_start} ({offset_text(day(plan.pc_start))}): {r}"

    def star_for_akasse():
        hidden = prs12.call("CreateContactGroup", STAR, "STAR CreateContactGroup 0303703333 hidden type",
                            PersonCivilRegistrationIdentifier=PERSON_147,
                            ContactGroup={"ContactGroupTypeIdentifier": HIDDEN_FROM_AKASSE_TYPE,
                                          "ContactGroupStartTime": day(plan.hidden_start),
                                          "ContactGroupEventTime": at(plan.hidden_start, 8)})
        seen = prs12.call("CreateContactGroup", STAR, "STAR CreateContactGroup 0303703333 a-kasse type",
                          PersonCivilRegistrationIdentifier=PERSON_147,
                          ContactGroup={"ContactGroupTypeIdentifier": AKASSE_TYPE,
                                        "ContactGroupStartTime": day(plan.ak_start),
                                        "ContactGroupEventTime": at(plan.ak_start, 8)})
        pc = prs12.call("CreatePersonCategory", STAR, "STAR CreatePersonCategory 0303703333",
                        PersonCivilRegistrationIdentifier=PERSON_147,
                        PersonCategory={"PersonCategoryTypeIdentifier": 2,
                                        "PersonCategoryStartTime": day(plan.ak_start),
                                        "PersonCategoryEventTime": at(plan.ak_start, 8)})
        for what, r in (("hidden", hidden), ("seen", seen), ("pc", pc)):
            check(isinstance(r, str) and UUID_RE.match(r), f"{what}: {r!r} is not a UUID")
        plan.ids.update(ak_hidden=hidden, ak_cg=seen, ak_pc=pc)
        return (f"type {HIDDEN_FROM_AKASSE_TYPE} from {plan.hidden_start} (closed by) type "
                f"{AKASSE_TYPE} from {plan.ak_start}, person category type 2")

    ok = step(f"PRS {prs11.port}: Jobcenter 101 CreateContactGroup 0101701111", create_cg)
    if ok:
        step(f"PRS {prs12.port}: Jobcenter 101 UpdateContactGroup 0101701111", update_cg)
    step(f"PRS {prs11.port}: Jobcenter 101 CreatePersonCategory 0101701111", create_pc)
    step(f"PRS {prs12.port}: STAR registers for a-kasse 34's member 0303703333", star_for_akasse)
    plan.t1 = dt.datetime.now(dt.timezone.utc)
    return all(k in plan.ids for k in ("cg", "pc", "ak_hidden", "ak_cg", "ak_pc"))


def check_registered_by(item, type_, code, what):
    check(item.RegisteredByOrganisationType == type_ and item.RegisteredByOrganisationCode == code,
          f"{what} registered by {item.RegisteredByOrganisationType}/{item.RegisteredByOrganisationCode!r}, "
          f"expected {type_}/{code!r}")


def check_registration_time(v, plan, what):
    """RegistrationTime: the instant that version was recorded, during this script's
    registrations, with the Danish offset of that instant."""
    t = v.RegistrationTime
    check(isinstance(t, dt.datetime) and t.utcoffset() is not None,
          f"{what} RegistrationTime {t!r} is not a datetime with an offset")
    slack = dt.timedelta(seconds=5)
    check(plan.t0 - slack <= t <= plan.t1 + slack,
          f"{what} RegistrationTime {t.isoformat()} is not within the registrations "
          f"({plan.t0.isoformat()} .. {plan.t1.isoformat()})")
    want = offset_text(t.astimezone(CPH))
    check(offset_text(t) == want,
          f"{what} RegistrationTime {t.isoformat()}: offset {offset_text(t)}, expected the Danish {want}")


def overlaps(v, start, end):
    """The REST service's period filter: the version's own period meets [start, end]."""
    s = v.ContactGroupStartTime if hasattr(v, "ContactGroupStartTime") else v.PersonCategoryStartTime
    e = v.ContactGroupEndTime if hasattr(v, "ContactGroupEndTime") else v.PersonCategoryEndTime
    s = s.astimezone(CPH).date()
    e = e.astimezone(CPH).date() if e is not None else None
    return (end is None or s <= end) and (start is None or e is None or e >= start)


def is_current(end, plan):
    """Not ended before today's Danish date (the PSS collections' rule)."""
    return end is None or end.astimezone(CPH).date() >= plan.today


def version_key(v):
    return serialize_object(v)


def before_cutover(pss, phs, plan, full_history):
    """Jobcenter 101 (before its own cutover) and A-kasse 34 (likewise) on one port pair."""
    port = pss.port.replace("PersonStatusService", "")

    # --- GetVariablePersonStatus, Jobcenter 101, 0101701111.
    def status():
        r = pss.call("GetVariablePersonStatus", JOBCENTER_101, "GetVariablePersonStatus Jobcenter 101",
                     PersonCivilRegistrationIdentifier=PERSON_101)
        check(r.PersonCivilRegistrationIdentifier == PERSON_101,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        cgs = items_of(r.ContactGroupCollection, "ContactGroup")
        pcs = items_of(r.PersonCategoryCollection, "PersonCategory")
        check(cgs, "ContactGroupCollection.ContactGroup is empty")
        check(pcs, "PersonCategoryCollection.PersonCategory is empty")
        ids = [c.ContactGroupIdentifier for c in cgs]
        check(len(ids) == len(set(ids)), f"a contact group appears twice: {ids}")
        mine = [c for c in cgs if c.ContactGroupIdentifier == plan.ids["cg"]]
        check(len(mine) == 1, f"the created contact group {plan.ids['cg']} is not in {ids}")
        cg = mine[0]
        check(cg.ContactGroupTypeIdentifier == 1, f"ContactGroupTypeIdentifier {cg.ContactGroupTypeIdentifier}")
        check_day(cg.ContactGroupStartTime, plan.cg_start, "ContactGroupStartTime")
        check_day(cg.ContactGroupEndTime, plan.today, "ContactGroupEndTime")
        check_instant(cg.ContactGroupEventTime, plan.cg_event, "ContactGroupEventTime")
        check_registered_by(cg, 1, "101", "the contact group")
        for c in cgs:  # current: not ended before today
            check(is_current(c.ContactGroupEndTime, plan),
                  f"contact group {c.ContactGroupIdentifier} ended {c.ContactGroupEndTime}, before today")
        pmine = [p for p in pcs if p.PersonCategoryIdentifier == plan.ids["pc"]]
        check(len(pmine) == 1, f"the created person category {plan.ids['pc']} is not in "
                               f"{[p.PersonCategoryIdentifier for p in pcs]}")
        pc = pmine[0]
        check(pc.PersonCategoryTypeIdentifier == 2, f"PersonCategoryTypeIdentifier {pc.PersonCategoryTypeIdentifier}")
        check_day(pc.PersonCategoryStartTime, plan.pc_start, "PersonCategoryStartTime")
        check(pc.PersonCategoryEndTime is None, f"PersonCategoryEndTime {pc.PersonCategoryEndTime!r}, expected none")
        check_instant(pc.PersonCategoryEventTime, plan.pc_event, "PersonCategoryEventTime")
        check_registered_by(pc, 1, "101", "the person category")
        for p in pcs:
            check(is_current(p.PersonCategoryEndTime, plan),
                  f"person category {p.PersonCategoryIdentifier} ended {p.PersonCategoryEndTime}, before today")
        return (f"{len(cgs)} contact group(s), {len(pcs)} person category(ies); start "
                f"{cg.ContactGroupStartTime.isoformat()}, end {cg.ContactGroupEndTime.isoformat()}, "
                f"person category start {pc.PersonCategoryStartTime.isoformat()}", r)

    # --- GetPersonHistory, Jobcenter 101, 0101701111, no period.
    def history():
        r = phs.call("GetPersonHistory", JOBCENTER_101, "GetPersonHistory Jobcenter 101",
                     PersonCivilRegistrationIdentifier=PERSON_101)
        check(r.PersonCivilRegistrationIdentifier == PERSON_101,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        cgs = items_of(r.ContactGroupHistoryCollection, "ContactGroupHistory")
        pcs = items_of(r.PersonCategoryHistoryCollection, "PersonCategoryHistory")
        for name, vs in (("ContactGroupHistory", cgs), ("PersonCategoryHistory", pcs)):
            times = [v.RegistrationTime for v in vs]
            check(all(isinstance(t, dt.datetime) for t in times), f"{name}: a RegistrationTime is missing")
            check(times == sorted(times), f"{name} is not oldest first: "
                                          f"{[t.isoformat() for t in times]}")
        mine = [v for v in cgs if v.ContactGroupIdentifier == plan.ids["cg"]]
        check(len(mine) == 2, f"{len(mine)} versions of the created contact group, expected 2 "
                              f"(created, then ended by UpdateContactGroup)")
        first, second = mine
        for n, v in enumerate(mine, 1):
            check(v.ContactGroupTypeIdentifier == 1, f"version {n}: type {v.ContactGroupTypeIdentifier}")
            check_day(v.ContactGroupStartTime, plan.cg_start, f"version {n} ContactGroupStartTime")
            check_instant(v.ContactGroupEventTime, plan.cg_event, f"version {n} ContactGroupEventTime")
            check_registered_by(v, 1, "101", f"version {n}")
            check_registration_time(v, plan, f"version {n}")
        check(first.ContactGroupEndTime is None,
              f"version 1 ContactGroupEndTime {first.ContactGroupEndTime!r}, expected none")
        check_day(second.ContactGroupEndTime, plan.today, "version 2 ContactGroupEndTime")
        check(first.RegistrationTime <= second.RegistrationTime, "version 2 was recorded before version 1")
        pmine = [v for v in pcs if v.PersonCategoryIdentifier == plan.ids["pc"]]
        check(len(pmine) == 1, f"{len(pmine)} versions of the created person category, expected 1")
        pv = pmine[0]
        check(pv.PersonCategoryTypeIdentifier == 2, f"person category type {pv.PersonCategoryTypeIdentifier}")
        check_day(pv.PersonCategoryStartTime, plan.pc_start, "PersonCategoryStartTime")
        check(pv.PersonCategoryEndTime is None, f"PersonCategoryEndTime {pv.PersonCategoryEndTime!r}")
        check_instant(pv.PersonCategoryEventTime, plan.pc_event, "PersonCategoryEventTime")
        check_registered_by(pv, 1, "101", "the person category version")
        check_registration_time(pv, plan, "the person category version")
        return (f"{len(cgs)} contact group version(s), {len(pcs)} person category version(s); the created "
                f"contact group recorded {first.RegistrationTime.isoformat()} and "
                f"{second.RegistrationTime.isoformat()}", r)

    st = step(f"PSS {port}: Jobcenter 101 GetVariablePersonStatus 0101701111 (before its cutover)", status)
    hi = step(f"PHS {port}: Jobcenter 101 GetPersonHistory 0101701111 (before its cutover)", history)
    if hi is not None:
        full_history[port] = hi

    # The status is the history's latest version of each registration, those not ended before today.
    def status_is_latest_history():
        check(st is not None and hi is not None, "needs both reads above")
        for coll, item, hcoll, hitem, idf, endf in (
                ("ContactGroupCollection", "ContactGroup", "ContactGroupHistoryCollection",
                 "ContactGroupHistory", "ContactGroupIdentifier", "ContactGroupEndTime"),
                ("PersonCategoryCollection", "PersonCategory", "PersonCategoryHistoryCollection",
                 "PersonCategoryHistory", "PersonCategoryIdentifier", "PersonCategoryEndTime")):
            latest, creator = {}, {}
            for v in items_of(getattr(hi, hcoll), hitem):
                latest[getattr(v, idf)] = v
                creator.setdefault(getattr(v, idf), v)
            current = {i for i, v in latest.items() if is_current(getattr(v, endf), plan)}
            items = {getattr(s, idf): s for s in items_of(getattr(st, coll), item)}
            check(set(items) == current, f"{coll}: {sorted(items)}; the history's current ones: {sorted(current)}")
            for i, s in items.items():
                s_fields = {k: v for k, v in serialize_object(s).items() if not k.startswith("RegisteredBy")}
                h_fields = {k: v for k, v in serialize_object(latest[i]).items()
                            if k in s_fields}
                check(s_fields == h_fields, f"{coll} {i}: status {s_fields}, latest version {h_fields}")
                check_registered_by(s, creator[i].RegisteredByOrganisationType,
                                    creator[i].RegisteredByOrganisationCode, f"{coll} {i} (its creator)")
        return "the current registrations, their latest versions, registered by their creator"

    step(f"PSS/PHS {port}: the status is the history's current latest versions", status_is_latest_history)

    # --- PeriodStartDate / PeriodEndDate (xs:date): the versions whose own period overlaps.
    def period(start, end, expect_cg, expect_pc):
        def run():
            check(hi is not None, "needs the full history above")
            args = {}
            if start is not None:
                args["PeriodStartDate"] = start
            if end is not None:
                args["PeriodEndDate"] = end
            r = phs.call("GetPersonHistory", JOBCENTER_101, f"GetPersonHistory period {start}..{end}",
                         PersonCivilRegistrationIdentifier=PERSON_101, **args)
            out = []
            for hcoll, hitem, idf, key, n_expected in (
                    ("ContactGroupHistoryCollection", "ContactGroupHistory", "ContactGroupIdentifier", "cg", expect_cg),
                    ("PersonCategoryHistoryCollection", "PersonCategoryHistory", "PersonCategoryIdentifier", "pc",
                     expect_pc)):
                got = items_of(getattr(r, hcoll), hitem)
                want = [v for v in items_of(getattr(hi, hcoll), hitem) if overlaps(v, start, end)]
                check([version_key(v) for v in got] == [version_key(v) for v in want],
                      f"{hitem}: {len(got)} versions, expected the {len(want)} of the full history that "
                      f"overlap the period, in the same order")
                n_mine = sum(1 for v in got if getattr(v, idf) == plan.ids[key])
                check(n_mine == n_expected, f"{n_mine} versions of the created {hitem}, expected {n_expected}")
                out.append(f"{len(got)} {hitem}")
            return f"{', '.join(out)} (created contact group: {expect_cg}, person category: {expect_pc} versions)"
        return run

    before_cg = plan.cg_start - dt.timedelta(days=1)
    step(f"PHS {port}: PeriodEndDate {before_cg} (before the registrations)",
         period(None, before_cg, 0, 0))
    step(f"PHS {port}: PeriodStartDate = PeriodEndDate = {plan.cg_start}",
         period(plan.cg_start, plan.cg_start, 2, 0))
    step(f"PHS {port}: PeriodStartDate {plan.tomorrow} (version 2 ended today: out)",
         period(plan.tomorrow, None, 1, 1))
    step(f"PHS {port}: PeriodStartDate {plan.pc_start}, PeriodEndDate {plan.today}",
         period(plan.pc_start, plan.today, 2, 1))

    def period_reversed():
        errors = phs.expect_fault("GetPersonHistory", JOBCENTER_101, "GetPersonHistory period reversed",
                                  ERR_START_AFTER_END, PersonCivilRegistrationIdentifier=PERSON_101,
                                  PeriodStartDate=plan.today, PeriodEndDate=plan.cg_start)
        return f"Fault {errors[0][0]} {errors[0][1]!r}"

    step(f"PHS {port}: PeriodStartDate after PeriodEndDate -> {ERR_START_AFTER_END}", period_reversed)

    # --- Another municipality's citizen: REST's refusal as a fault, never data.
    def no_access(caller, operation):
        def run():
            errors = caller.expect_fault(operation, JOBCENTER_101, f"{operation} 0303703333 Jobcenter 101",
                                         ERR_NO_ACCESS, PersonCivilRegistrationIdentifier=PERSON_147)
            return f"Fault {errors[0][0]} {errors[0][1]!r}"
        return run

    step(f"PSS {port}: Jobcenter 101 GetVariablePersonStatus 0303703333 (municipality 147) -> {ERR_NO_ACCESS}",
         no_access(pss, "GetVariablePersonStatus"))
    step(f"PHS {port}: Jobcenter 101 GetPersonHistory 0303703333 (municipality 147) -> {ERR_NO_ACCESS}",
         no_access(phs, "GetPersonHistory"))

    # --- A-kasse 34, before its own cutover: its types only, no person categories.
    def akasse_status():
        r = pss.call("GetVariablePersonStatus", AKASSE_34, "GetVariablePersonStatus A-kasse 34",
                     PersonCivilRegistrationIdentifier=PERSON_147)
        check(r.PersonCivilRegistrationIdentifier == PERSON_147,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        cgs = items_of(r.ContactGroupCollection, "ContactGroup")
        check([c.ContactGroupIdentifier for c in cgs] == [plan.ids["ak_cg"]],
              f"contact groups {[c.ContactGroupIdentifier for c in cgs]}, expected [{plan.ids['ak_cg']}]")
        cg = cgs[0]
        check(cg.ContactGroupTypeIdentifier == AKASSE_TYPE, f"type {cg.ContactGroupTypeIdentifier}")
        check_day(cg.ContactGroupStartTime, plan.ak_start, "ContactGroupStartTime")
        check(cg.ContactGroupEndTime is None, f"ContactGroupEndTime {cg.ContactGroupEndTime!r}")
        check_registered_by(cg, 5, "12345678", "the contact group")
        how = collection_empty(pss, r, "PersonCategoryCollection", "PersonCategory")
        return f"contact group type {AKASSE_TYPE} only; PersonCategoryCollection empty ({how})"

    def akasse_history():
        r = phs.call("GetPersonHistory", AKASSE_34, "GetPersonHistory A-kasse 34",
                     PersonCivilRegistrationIdentifier=PERSON_147)
        check(r.PersonCivilRegistrationIdentifier == PERSON_147,
              f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}")
        vs = items_of(r.ContactGroupHistoryCollection, "ContactGroupHistory")
        ids = [v.ContactGroupIdentifier for v in vs]
        check(plan.ids["ak_hidden"] not in ids,
              f"the type {HIDDEN_FROM_AKASSE_TYPE} contact group (not an a-kasse type, rule 6) is in the history")
        check(ids == [plan.ids["ak_cg"]], f"versions of {ids}, expected one of {plan.ids['ak_cg']}")
        check(all(v.ContactGroupTypeIdentifier == AKASSE_TYPE for v in vs), "a version of another type")
        check_registration_time(vs[0], plan, "the version")
        how = collection_empty(phs, r, "PersonCategoryHistoryCollection", "PersonCategoryHistory")
        return (f"1 version, type {AKASSE_TYPE}; type {HIDDEN_FROM_AKASSE_TYPE} hidden; "
                f"PersonCategoryHistoryCollection empty ({how})")

    step(f"PSS {port}: A-kasse 34 GetVariablePersonStatus 0303703333 (before its cutover)", akasse_status)
    step(f"PHS {port}: A-kasse 34 GetPersonHistory 0303703333 (before its cutover)", akasse_history)
    return st, hi


def after_cutover(pss, phs, plan):
    """Kommune 101 and A-kasse 12, past the default cutover, on one port pair."""
    port = pss.port.replace("PersonStatusService", "")

    def status(identity, who):
        def run():
            r = pss.call("GetVariablePersonStatus", identity, f"GetVariablePersonStatus {who}",
                         PersonCivilRegistrationIdentifier=PERSON_101)
            check(r.PersonCivilRegistrationIdentifier == PERSON_101,
                  f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}, expected the request's")
            a = collection_empty(pss, r, "ContactGroupCollection", "ContactGroup")
            b = collection_empty(pss, r, "PersonCategoryCollection", "PersonCategory")
            return f"ContactGroupCollection {a}, PersonCategoryCollection {b}"
        return run

    def history(identity, who, **period):
        def run():
            r = phs.call("GetPersonHistory", identity, f"GetPersonHistory {who}",
                         PersonCivilRegistrationIdentifier=PERSON_101, **period)
            check(r.PersonCivilRegistrationIdentifier == PERSON_101,
                  f"PersonCivilRegistrationIdentifier {r.PersonCivilRegistrationIdentifier!r}, expected the request's")
            a = collection_empty(phs, r, "ContactGroupHistoryCollection", "ContactGroupHistory")
            b = collection_empty(phs, r, "PersonCategoryHistoryCollection", "PersonCategoryHistory")
            return f"ContactGroupHistoryCollection {a}, PersonCategoryHistoryCollection {b}"
        return run

    step(f"PSS {port}: Kommune 101 GetVariablePersonStatus 0101701111 (past the cutover): empty",
         status(KOMMUNE_101, "Kommune 101"))
    step(f"PHS {port}: Kommune 101 GetPersonHistory 0101701111 (past the cutover): empty",
         history(KOMMUNE_101, "Kommune 101"))
    step(f"PHS {port}: Kommune 101 GetPersonHistory 0101701111 with a period (past the cutover): empty",
         history(KOMMUNE_101, "Kommune 101 period", PeriodStartDate=plan.cg_start, PeriodEndDate=plan.today))
    step(f"PSS {port}: A-kasse 12 GetVariablePersonStatus 0101701111 (past the cutover): empty",
         status(AKASSE_12, "A-kasse 12"))
    step(f"PHS {port}: A-kasse 12 GetPersonHistory 0101701111 (past the cutover): empty",
         history(AKASSE_12, "A-kasse 12"))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base_url, log_path = sys.argv[1].rstrip("/"), sys.argv[2]
    open(log_path, "w").close()
    t_start = time.monotonic()
    print(f"  zeep {zeep.__version__}, converter {base_url}, Danish date today {danish_today()}")
    transport_ = transport(log_path, requests.Session())
    history = HistoryPlugin()
    clients = {}
    for service in (PRS, PSS, PHS):
        endpoint = f"{base_url}/{service[0]}/{service[1]}"
        client = zeep.Client(f"{endpoint}?wsdl", transport=transport_, plugins=[history])
        clients[service] = client
        for suffix in ("Soap11", "Soap12"):
            port = f"{service[0]}{suffix}"
            address = client.wsdl.services[service[0]].ports[port].binding_options["address"]
            if address != endpoint:
                print(f"  FAIL  {port}: the served WSDL gives the address {address}, expected {endpoint}")
                failures.append(f"{port} address {address}")
    callers = {(service, suffix): Caller(clients[service], service, f"{service[0]}{suffix}", transport_, history)
               for service in (PRS, PSS, PHS) for suffix in ("Soap11", "Soap12")}

    plan = Plan()
    print("  before the cutover: Jobcenter 1:101 and A-kasse 2:34 (own cutover ahead); registrations:")
    registered = register(callers[(PRS, "Soap11")], callers[(PRS, "Soap12")], plan)
    if not registered:
        print("  FAIL  the registrations failed: the reads that need them fail too")
        failures.append("registrations")
    answers = {}
    full_history = {}
    for suffix in ("Soap11", "Soap12"):
        answers[suffix] = before_cutover(callers[(PSS, suffix)], callers[(PHS, suffix)], plan, full_history)

    def same_answers():
        for what, (a, b) in (("GetVariablePersonStatus", (answers["Soap11"][0], answers["Soap12"][0])),
                             ("GetPersonHistory", (answers["Soap11"][1], answers["Soap12"][1]))):
            check(a is not None and b is not None, f"{what}: a read above failed")
            check(serialize_object(a) == serialize_object(b), f"{what}: SOAP 1.1 and SOAP 1.2 answers differ")
        return "GetVariablePersonStatus and GetPersonHistory deserialise alike"

    step("SOAP 1.1 and SOAP 1.2: the same answers", same_answers)

    print("  after the cutover: Kommune 3:101 and A-kasse 2:12 (the default cutover, past):")
    before, _ = metrics(base_url)
    for suffix in ("Soap11", "Soap12"):
        after_cutover(callers[(PSS, suffix)], callers[(PHS, suffix)], plan)
    after, past = metrics(base_url)

    def no_rest_calls():
        check(all(op in before for op in READ_OPERATIONS),
              f"vos_converter_upstream_seconds has no count for {[o for o in READ_OPERATIONS if o not in before]} "
              f"after the reads before the cutover")
        moved = {op: after.get(op, 0) - before.get(op, 0) for op in READ_OPERATIONS if after.get(op) != before.get(op)}
        check(not moved, f"REST calls during the reads past the cutover: {moved}")
        return f"vos_converter_upstream_seconds_count unchanged for {', '.join(READ_OPERATIONS)}"

    def gauges():
        want = {"1:101": 0, "2:34": 0, "3:101": 1, "2:12": 1}
        got = {k: past.get(k) for k in want}
        check(got == want, f"vos_converter_past_cutover {got}, expected {want}")
        return ", ".join(f"{k}={v:g}" for k, v in got.items())

    step("/metrics: no REST call for the reads past the cutover", no_rest_calls)
    step("/metrics: vos_converter_past_cutover per caller", gauges)

    finish("zeep reads", log_path, t_start)


if __name__ == "__main__":
    main()
