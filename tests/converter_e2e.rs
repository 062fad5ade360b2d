#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The converter as it runs: `vos-converter serve` as a child process (with its embedded
//! reference backend, seeded from mappings/dev-seed.toml), called over real sockets with
//! hand-written SOAP 1.1 and 1.2 requests. Effects are checked directly over REST on the
//! embedded backend. Every child's stderr is scanned for the CPR numbers the test used.

mod common;

use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use common::child::{CPR_101, CPR_101_ENROLLED, CPR_147, CPR_751, Serve};
use common::soap::{
    DFDG, Fault, PRS, Reply, Service, Side, Soap, WSA, create_contact_group,
    create_person_category, create_person_category_and_interview, envelope_with, metadata_user,
    post_soap, update_contact_group, update_person_category,
};
use common::xml::parse_xml;
use common::{danish_today, date, xs_day};

const ENDPOINT: &str = "/PersonRegistrationService/9";
const WSDL_SOAP11: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const WSDL_SOAP12: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
const REST_BASE: &str = "/personvisitering/v1";

/// The caller of every request: Jobcenter (organisation type 1) of municipality 101.
const ORG_TYPE: &str = "1";
const ORG_CODE: &str = "101";
const USER: &str = "sb-e2e";

const TEXT_100028: &str = "Slutdato kan ikke være fremtidig";
const TEXT_100029: &str = "Kontaktgruppen kan ikke ændres til anden kontaktgruppe for tilmeldte, opdater i stedet tilmeldingen";

// ---------------------------------------------------------------------------------------
// The child process (tests/common/child.rs), as PersonRegistrationService and over REST
// ---------------------------------------------------------------------------------------

impl Serve {
    fn endpoint(&self) -> String {
        self.url(ENDPOINT)
    }

    /// A SOAP call of `op` with the headers a generated client sends.
    async fn call(&self, v: Soap, op: &str, envelope: &str) -> Reply {
        self.call_traced(Service::Prs, v, op, envelope, None).await
    }

    /// A POST with exactly these headers and bytes.
    async fn post_raw(
        &self,
        content_type: &str,
        soap_action: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.send(Service::Prs, content_type, soap_action, body, None)
            .await
    }

    /// A REST read as Jobcenter 101, asserting 200.
    async fn rest_get(&self, path: &str, cpr: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{REST_BASE}{path}", self.rest))
            .header("X-Organisation-Type", ORG_TYPE)
            .header("X-Organisation-Code", ORG_CODE)
            .header("X-Cpr", cpr)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn contact_groups(&self, cpr: &str) -> Vec<Value> {
        self.rest_get("/kontaktgrupper", cpr).await["kontaktgrupper"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn person_categories(&self, cpr: &str) -> Vec<Value> {
        self.rest_get("/personkategorier", cpr).await["personkategorier"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn instant(s: &str) -> Timestamp {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// SOAP requests (tests/common/soap.rs)
// ---------------------------------------------------------------------------------------

fn action(op: &str) -> String {
    Service::Prs.action(op)
}

/// An envelope of version `v` with these header blocks and this body content.
fn envelope(v: Soap, header: &str, body: &str) -> String {
    envelope_with(
        v,
        &[("dfdg", DFDG), ("wsa", WSA), ("prs", PRS)],
        header,
        body,
    )
}

fn metadata(org_type: &str, org_code: &str) -> String {
    metadata_user(org_type, org_code, USER)
}

/// RequestUserMetadata of Jobcenter 101.
fn jobcenter() -> String {
    metadata(ORG_TYPE, ORG_CODE)
}

/// Jobcenter 101's metadata and a wsa:MessageID.
fn jobcenter_with_message_id(message_id: &str) -> String {
    format!("{}<wsa:MessageID>{message_id}</wsa:MessageID>", jobcenter())
}

/// The CreateContactGroup most tests start from: type 1 from 2024-01-01.
fn first_contact_group(cpr: &str) -> String {
    create_contact_group(
        cpr,
        1,
        "2024-01-01T00:00:00+01:00",
        None,
        "2024-01-01T10:00:00+01:00",
    )
}

// ---------------------------------------------------------------------------------------
// SOAP answers
// ---------------------------------------------------------------------------------------

impl Reply {
    /// A successful answer of `op`: HTTP 200, the version's content type, `<op>Response`
    /// in the service's namespace with the id element `id`, which is returned.
    fn ok(&self, v: Soap, op: &str, id: &str) -> Uuid {
        let (doc, el) = self.response(v, PRS, op);
        let id_el = doc
            .child(el, PRS, id)
            .unwrap_or_else(|| panic!("no {id} in {}", self.text));
        let text = doc.els[id_el].text.as_str();
        let uuid: Uuid = text
            .parse()
            .unwrap_or_else(|_| panic!("{id} {text:?} is not a UUID"));
        assert_eq!(
            text,
            uuid.hyphenated().to_string(),
            "not lower-case hyphenated: {text}"
        );
        uuid
    }

    /// Asserts a fault of version `v`, from `side`, with HTTP `status` and first error
    /// `code`; returns it.
    fn expect_fault(&self, v: Soap, side: Side, status: StatusCode, code: u32) -> Fault {
        let f = self.fault(v);
        assert_eq!(f.errors[0].0, code, "{}", self.text);
        assert_eq!(f.code, v.fault_code(side), "{}", self.text);
        assert_eq!(self.status, status, "{}", self.text);
        f
    }

    /// A fault with the usual status of its version and side.
    fn expect(&self, v: Soap, side: Side, code: u32) -> Fault {
        self.expect_fault(v, side, v.fault_status(side), code)
    }

    /// The wsa header of the answer: (Action, MessageID, RelatesTo).
    fn wsa(&self, v: Soap) -> (String, String, String) {
        let doc = self.doc();
        let header = doc
            .child(0, v.ns(), "Header")
            .unwrap_or_else(|| panic!("no Header: {}", self.text));
        let get = |name: &str| {
            let el = doc
                .child(header, WSA, name)
                .unwrap_or_else(|| panic!("no wsa:{name}: {}", self.text));
            doc.els[el].text.trim().to_owned()
        };
        (get("Action"), get("MessageID"), get("RelatesTo"))
    }
}

// ---------------------------------------------------------------------------------------
// REST checks
// ---------------------------------------------------------------------------------------

/// Rule 8: the registrant is Jobcenter 101 (and the user the request named).
fn assert_registrant(record: &Value, field: &str) {
    let r = &record[field];
    assert_eq!(
        r["organisationstype"],
        Value::from(1),
        "{field} of {record}"
    );
    assert_eq!(
        r["organisationskode"],
        Value::from(ORG_CODE),
        "{field} of {record}"
    );
    assert_eq!(r["brugerId"], Value::from(USER), "{field} of {record}");
}

fn date_field(record: &Value, field: &str) -> Option<Date> {
    record[field].as_str().map(date)
}

// ---------------------------------------------------------------------------------------
// 1. Every operation, both SOAP versions
// ---------------------------------------------------------------------------------------

async fn every_operation(v: Soap) {
    let mut s = Serve::start(&[]);
    let cpr = CPR_101;
    // SOAP 1.1 sends times with their offsets; SOAP 1.2 without (Danish local time).
    let (start, event) = match v {
        Soap::V11 => ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00"),
        Soap::V12 => ("2024-01-01T00:00:00", "2024-01-01T10:00:00"),
    };
    let event_instant = instant("2024-01-01T09:00:00Z");

    // CreateContactGroup.
    let r = s
        .call(
            v,
            "CreateContactGroup",
            &envelope(
                v,
                &jobcenter(),
                &create_contact_group(cpr, 1, start, None, event),
            ),
        )
        .await;
    let cg = r.ok(v, "CreateContactGroup", "ContactGroupIdentifier");
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), cpr).await;
    assert_eq!(rec["id"], Value::from(cg.to_string()), "{rec}");
    assert_eq!(rec["kontaktgruppetype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(date_field(&rec, "slutdato"), None, "{rec}");
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        event_instant,
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(1), "{rec}");
    assert_registrant(&rec, "oprettetAf");
    assert_registrant(&rec, "registreretAf");

    // UpdateContactGroup: end it today (Danish date), type, start and event unchanged.
    let today = danish_today();
    let body = update_contact_group(cpr, cg, 1, start, Some(&xs_day(today)), event);
    let r = s
        .call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
        .await;
    assert_eq!(r.ok(v, "UpdateContactGroup", "ContactGroupIdentifier"), cg);
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), cpr).await;
    assert_eq!(date_field(&rec, "slutdato"), Some(today), "{rec}");
    assert_eq!(rec["kontaktgruppetype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        event_instant,
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(2), "{rec}");
    assert_registrant(&rec, "oprettetAf");
    assert_registrant(&rec, "registreretAf");
    assert_eq!(s.contact_groups(cpr).await.len(), 1);

    // CreatePersonCategory.
    let body = create_person_category(cpr, 1, start, None, event);
    let r = s
        .call(v, "CreatePersonCategory", &envelope(v, &jobcenter(), &body))
        .await;
    let pc = r.ok(v, "CreatePersonCategory", "PersonCategoryIdentifier");
    let rec = s.rest_get(&format!("/personkategorier/{pc}"), cpr).await;
    assert_eq!(rec["personkategoritype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(date_field(&rec, "slutdato"), None, "{rec}");
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        event_instant,
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(1), "{rec}");
    assert_registrant(&rec, "oprettetAf");

    // UpdatePersonCategory: every field changes.
    let (start2, end2, event2) = match v {
        Soap::V11 => (
            "2024-02-01T00:00:00+01:00",
            "2024-06-30T00:00:00+02:00",
            "2024-02-01T09:30:00+01:00",
        ),
        Soap::V12 => (
            "2024-02-01T00:00:00",
            "2024-06-30T00:00:00",
            "2024-02-01T09:30:00",
        ),
    };
    let body = update_person_category(cpr, pc, 2, start2, Some(end2), event2);
    let r = s
        .call(v, "UpdatePersonCategory", &envelope(v, &jobcenter(), &body))
        .await;
    assert_eq!(
        r.ok(v, "UpdatePersonCategory", "PersonCategoryIdentifier"),
        pc
    );
    let rec = s.rest_get(&format!("/personkategorier/{pc}"), cpr).await;
    assert_eq!(rec["personkategoritype"], Value::from(2), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-02-01")),
        "{rec}"
    );
    assert_eq!(
        date_field(&rec, "slutdato"),
        Some(date("2024-06-30")),
        "{rec}"
    );
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        instant("2024-02-01T08:30:00Z"),
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(2), "{rec}");
    assert_registrant(&rec, "oprettetAf");
    assert_registrant(&rec, "registreretAf");
    assert_eq!(s.person_categories(cpr).await.len(), 1);

    s.finish(&[cpr]);
}

#[tokio::test]
async fn every_operation_end_to_end_soap11() {
    every_operation(Soap::V11).await;
}

#[tokio::test]
async fn every_operation_end_to_end_soap12() {
    every_operation(Soap::V12).await;
}

// ---------------------------------------------------------------------------------------
// 2. 100028 and 100029 reach the SOAP client unchanged
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn source_error_codes_reach_the_client_unchanged() {
    let mut s = Serve::start(&[]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");

    // 100028: an end date tomorrow (Danish date).
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101)),
        )
        .await;
    let cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    let tomorrow = xs_day(danish_today().checked_add(1.day()).unwrap());
    for v in [Soap::V11, Soap::V12] {
        let body = update_contact_group(CPR_101, cg, 1, start, Some(&tomorrow), event);
        let r = s
            .call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
            .await;
        let f = r.expect(v, Side::Client, 100028);
        assert_eq!(
            f.errors,
            vec![(100028, TEXT_100028.to_owned())],
            "{}",
            r.text
        );
        assert_eq!(f.reason, TEXT_100028, "{}", r.text);
        // Byte for byte: the text as UTF-8, not as character references.
        assert!(
            r.text
                .contains(&format!("<dfdg:ErrorText>{TEXT_100028}</dfdg:ErrorText>")),
            "{}",
            r.text
        );
    }
    // A fault to a request with a MessageID relates to it.
    let mid = format!("urn:uuid:{}", Uuid::new_v4());
    let body = update_contact_group(CPR_101, cg, 1, start, Some(&tomorrow), event);
    let r = s
        .call(
            Soap::V12,
            "UpdateContactGroup",
            &envelope(Soap::V12, &jobcenter_with_message_id(&mid), &body),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 100028);
    let (_, _, relates_to) = r.wsa(Soap::V12);
    assert_eq!(relates_to, mid, "{}", r.text);
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), CPR_101).await;
    assert_eq!(
        (date_field(&rec, "slutdato"), &rec["version"]),
        (None, &Value::from(1)),
        "{rec}"
    );

    // 100029: the enrolled person has a contact group of type 1; one of type 2 is refused.
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(
                Soap::V11,
                &jobcenter(),
                &first_contact_group(CPR_101_ENROLLED),
            ),
        )
        .await;
    let enrolled_cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    for v in [Soap::V11, Soap::V12] {
        let body = create_contact_group(
            CPR_101_ENROLLED,
            2,
            "2024-03-01T00:00:00+01:00",
            None,
            "2024-03-01T10:00:00+01:00",
        );
        let r = s
            .call(v, "CreateContactGroup", &envelope(v, &jobcenter(), &body))
            .await;
        let f = r.expect(v, Side::Client, 100029);
        assert_eq!(
            f.errors,
            vec![(100029, TEXT_100029.to_owned())],
            "{}",
            r.text
        );
        assert_eq!(f.reason, TEXT_100029, "{}", r.text);
        assert!(
            r.text
                .contains(&format!("<dfdg:ErrorText>{TEXT_100029}</dfdg:ErrorText>")),
            "{}",
            r.text
        );
    }
    let groups = s.contact_groups(CPR_101_ENROLLED).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["id"], Value::from(enrolled_cg.to_string()));
    assert_eq!(date_field(&groups[0], "slutdato"), None, "{groups:?}");

    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 3. A retried MessageID creates one record
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_message_id_creates_one_record() {
    const CONCURRENT: usize = 8;
    let mut s = Serve::start(&[]);
    let mid = format!("urn:uuid:{}", Uuid::new_v4());
    let message = envelope(
        Soap::V11,
        &jobcenter_with_message_id(&mid),
        &first_contact_group(CPR_101),
    );

    let check = |r: &Reply, v: Soap, mid: &str| -> Uuid {
        let id = r.ok(v, "CreateContactGroup", "ContactGroupIdentifier");
        let (action_, message_id, relates_to) = r.wsa(v);
        assert_eq!(relates_to, mid, "{}", r.text);
        assert_eq!(action_, action("CreateContactGroupResponse"), "{}", r.text);
        assert!(!message_id.is_empty() && message_id != mid, "{}", r.text);
        id
    };

    // The first sending, concurrently several times (a client's retries racing).
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        let (client, url, message, barrier) = (
            s.client.clone(),
            s.endpoint(),
            message.clone(),
            barrier.clone(),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            post_soap(
                &client,
                &url,
                Soap::V11,
                &action("CreateContactGroup"),
                &message,
            )
            .await
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.push(check(&r.unwrap(), Soap::V11, &mid));
    }
    // Then twice more, one after the other.
    for _ in 0..2 {
        ids.push(check(
            &s.call(Soap::V11, "CreateContactGroup", &message).await,
            Soap::V11,
            &mid,
        ));
    }
    let first = ids[0];
    assert!(
        ids.iter().all(|id| *id == first),
        "one MessageID, several ids: {ids:?}"
    );
    let groups = s.contact_groups(CPR_101).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["id"], Value::from(first.to_string()));
    assert_registrant(&groups[0], "oprettetAf");

    // Another MessageID is another message: another contact group (from a later day, rule 5).
    let mid2 = format!("urn:uuid:{}", Uuid::new_v4());
    let body = create_contact_group(
        CPR_101,
        1,
        "2024-02-01T00:00:00+01:00",
        None,
        "2024-02-01T10:00:00+01:00",
    );
    let r = s
        .call(
            Soap::V12,
            "CreateContactGroup",
            &envelope(Soap::V12, &jobcenter_with_message_id(&mid2), &body),
        )
        .await;
    let second = check(&r, Soap::V12, &mid2);
    assert_ne!(second, first);
    let groups = s.contact_groups(CPR_101).await;
    assert_eq!(groups.len(), 2, "{groups:?}");

    // The first message once more, after the second closed its record: still its id, and
    // nothing new.
    let r = s.call(Soap::V11, "CreateContactGroup", &message).await;
    assert_eq!(check(&r, Soap::V11, &mid), first);
    assert_eq!(s.contact_groups(CPR_101).await.len(), 2);

    s.finish(&[]);
}

/// Without WS-Addressing a create's id comes from its content (issue 14 point 2): the same
/// content sent again (a KSS retrying after a timeout, in SOAP 1.1 or 1.2, with or without
/// offsets: the same instants) creates one record and answers its id; other content is
/// another record. An update sent twice leaves one record with the second's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_create_without_message_id_creates_one_record() {
    let mut s = Serve::start(&[]);
    let v11 = envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101));
    // The same content as SOAP 1.2 writes it: Danish local time without offsets.
    let v12_body = create_contact_group(
        CPR_101,
        1,
        "2024-01-01T00:00:00",
        None,
        "2024-01-01T10:00:00",
    );
    let v12 = envelope(Soap::V12, &jobcenter(), &v12_body);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (client, url) = (s.client.clone(), s.endpoint());
        let (v, message) = if i % 2 == 0 {
            (Soap::V11, v11.clone())
        } else {
            (Soap::V12, v12.clone())
        };
        tasks.spawn(async move {
            let r = post_soap(&client, &url, v, &action("CreateContactGroup"), &message).await;
            (v, r)
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (v, r) = done.unwrap();
        ids.push(r.ok(v, "CreateContactGroup", "ContactGroupIdentifier"));
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one content, several ids: {ids:?}"
    );
    let groups = s.contact_groups(CPR_101).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["id"], Value::from(ids[0].to_string()));

    // Another event time is another registration (here: closing the first, rule 5).
    let later = create_contact_group(
        CPR_101,
        1,
        "2024-02-01T00:00:00+01:00",
        None,
        "2024-02-01T10:00:00+01:00",
    );
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &later),
        )
        .await;
    let second = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    assert_ne!(second, ids[0]);
    assert_eq!(s.contact_groups(CPR_101).await.len(), 2);

    // Updates are idempotent by nature: the same update twice, one record, the same content.
    let update = update_contact_group(
        CPR_101,
        second,
        1,
        "2024-02-01T00:00:00+01:00",
        Some("2024-02-10"),
        "2024-02-01T10:00:00+01:00",
    );
    let message = envelope(Soap::V11, &jobcenter(), &update);
    let mut after = Vec::new();
    for _ in 0..2 {
        let r = s.call(Soap::V11, "UpdateContactGroup", &message).await;
        assert_eq!(
            r.ok(Soap::V11, "UpdateContactGroup", "ContactGroupIdentifier"),
            second
        );
        after.push(
            s.rest_get(&format!("/kontaktgrupper/{second}"), CPR_101)
                .await,
        );
    }
    assert_eq!(after[0]["slutdato"], after[1]["slutdato"], "{after:?}");
    assert_eq!(
        after[0]["version"], after[1]["version"],
        "the repeated update recorded a version: {after:?}"
    );
    assert_eq!(date_field(&after[1], "slutdato"), Some(date("2024-02-10")));
    assert_eq!(s.contact_groups(CPR_101).await.len(), 2);
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 4. Rule 4
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_update_cannot_change_type_start_or_event_time() {
    let mut s = Serve::start(&[]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101)),
        )
        .await;
    let cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    let today = xs_day(danish_today());

    let changes = [
        (Soap::V11, 2, start, event),
        (Soap::V12, 2, start, event),
        (Soap::V11, 1, "2024-01-02T00:00:00+01:00", event),
        (Soap::V12, 1, start, "2024-01-01T11:00:00+01:00"),
    ];
    for (v, ty, start, event) in changes {
        let body = update_contact_group(CPR_101, cg, ty, start, Some(&today), event);
        let r = s
            .call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
            .await;
        let f = r.expect(v, Side::Client, 900509);
        assert_eq!(
            f.errors[0].1,
            "Kontaktgruppens type, starttidspunkt og hændelsestidspunkt kan ikke ændres",
            "{}",
            r.text
        );
    }
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), CPR_101).await;
    assert_eq!(rec["kontaktgruppetype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(date_field(&rec, "slutdato"), None, "{rec}");
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        instant("2024-01-01T09:00:00Z"),
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(1), "{rec}");

    // The same values written another way are unchanged: the update goes through.
    let body = update_contact_group(
        CPR_101,
        cg,
        1,
        "2024-01-01T00:00:00",
        Some(&today),
        "2024-01-01T09:00:00Z",
    );
    let r = s
        .call(
            Soap::V11,
            "UpdateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &body),
        )
        .await;
    assert_eq!(
        r.ok(Soap::V11, "UpdateContactGroup", "ContactGroupIdentifier"),
        cg
    );
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), CPR_101).await;
    assert_eq!(date_field(&rec, "slutdato"), Some(danish_today()), "{rec}");
    assert_eq!(rec["version"], Value::from(2), "{rec}");

    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 5. The retired method
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_person_category_and_interview_is_retired() {
    let mut s = Serve::start(&[]);
    let body = create_person_category_and_interview(
        CPR_101,
        1,
        "2024-01-01T00:00:00+01:00",
        "2024-01-01T10:00:00+01:00",
        "2024-01-05T10:00:00+01:00",
    );
    for v in [Soap::V11, Soap::V12] {
        let r = s
            .call(
                v,
                "CreatePersonCategoryAndInterview",
                &envelope(v, &jobcenter(), &body),
            )
            .await;
        let f = r.expect(v, Side::Client, 900510);
        assert!(
            f.reason.contains("CreatePersonkategori"),
            "the fault does not name the replacement: {}",
            r.text
        );
        assert!(f.errors[0].1.starts_with("Metoden er udgået"), "{}", r.text);
    }
    assert!(s.person_categories(CPR_101).await.is_empty());
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------

/// A valid, idempotent call (a CreateContactGroup with a fixed MessageID): the service
/// still serves, and always answers the same id.
async fn still_serves(s: &Serve, mid: &str, id: &mut Option<Uuid>, after: &str) {
    let env = envelope(
        Soap::V11,
        &jobcenter_with_message_id(mid),
        &first_contact_group(CPR_101),
    );
    let r = s.call(Soap::V11, "CreateContactGroup", &env).await;
    assert_eq!(r.status, StatusCode::OK, "after {after}: {}", r.text);
    let got = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    assert_eq!(*id.get_or_insert(got), got, "after {after}");
}

#[tokio::test]
async fn bad_input_gets_a_fault_and_the_service_stays_up() {
    let mut s = Serve::start(&[]);
    let mid = format!("urn:uuid:{}", Uuid::new_v4());
    let mut id = None;
    still_serves(&s, &mid, &mut id, "start").await;

    let v11 = |body: &str| envelope(Soap::V11, &jobcenter(), body);
    let valid_body = first_contact_group(CPR_101);
    let ct11 = "text/xml; charset=utf-8";
    let ct12 = "application/soap+xml; charset=utf-8";
    let create = format!("\"{}\"", action("CreateContactGroup"));

    // A DOCTYPE with entities (billion laughs).
    let mut laughs =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol0 \"lol\">\n");
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        laughs.push_str(&format!("<!ENTITY lol{i} \"{refs}\">\n"));
    }
    laughs.push_str("]>\n");
    let with_laughs = v11(&first_contact_group("&lol9;"));
    laughs.push_str(with_laughs.split_once("?>\n").unwrap().1);
    let r = s.post_raw(ct11, Some(&create), laughs.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900502);
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
    still_serves(&s, &mid, &mut id, "billion laughs").await;

    // A body over 1 MiB, in both versions: 413, quickly.
    for (v, ct) in [(Soap::V11, ct11), (Soap::V12, ct12)] {
        let padding = format!("<!--{}-->", "x".repeat(1024 * 1024));
        let big = envelope(v, &format!("{}{padding}", jobcenter()), &valid_body);
        assert!(big.len() > 1024 * 1024);
        let r = s.post_raw(ct, Some(&create), big.into_bytes()).await;
        r.expect_fault(v, Side::Client, StatusCode::PAYLOAD_TOO_LARGE, 900503);
        assert!(
            r.elapsed < Duration::from_secs(2),
            "a large body took {:?}",
            r.elapsed
        );
        still_serves(&s, &mid, &mut id, "a large body").await;
    }

    // Nesting deeper than 32, in SOAP 1.2.
    let deep = format!("{}{}", "<prs:Nest>".repeat(40), "</prs:Nest>".repeat(40));
    let body = valid_body.replace(
        "</prs:CreateContactGroupRequest>",
        &format!("{deep}</prs:CreateContactGroupRequest>"),
    );
    let r = s
        .post_raw(
            ct12,
            None,
            envelope(Soap::V12, &jobcenter(), &body).into_bytes(),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 900503);
    still_serves(&s, &mid, &mut id, "deep nesting").await;

    // More than 2000 elements.
    let many = format!("{}<extra>{}</extra>", jobcenter(), "<x/>".repeat(2100));
    let r = s
        .post_raw(
            ct11,
            Some(&create),
            envelope(Soap::V11, &many, &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900503);
    still_serves(&s, &mid, &mut id, "many elements").await;

    // Not UTF-8.
    let mut bytes = v11(&valid_body).into_bytes();
    let at = bytes.windows(6).position(|w| w == b"sb-e2e").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    let r = s.post_raw(ct11, Some(&create), bytes).await;
    r.expect(Soap::V11, Side::Client, 900501);
    still_serves(&s, &mid, &mut id, "invalid UTF-8").await;

    // Malformed XML: crossed tags, and a document cut short (in SOAP 1.2).
    let crossed = v11(&valid_body).replace("</prs:ContactGroup>", "</prs:Contact>");
    let r = s.post_raw(ct11, Some(&create), crossed.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900501);
    let full = envelope(Soap::V12, &jobcenter(), &valid_body);
    let cut = full[..full.len() - 40].to_owned();
    let r = s.post_raw(ct12, None, cut.into_bytes()).await;
    r.expect(Soap::V12, Side::Client, 900501);
    still_serves(&s, &mid, &mut id, "malformed XML").await;

    // Not a SOAP content type: 415, answered as a SOAP 1.1 fault.
    let r = s
        .post_raw(
            "application/json",
            None,
            br#"{"cpr": "0101701111"}"#.to_vec(),
        )
        .await;
    r.expect_fault(
        Soap::V11,
        Side::Client,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        900505,
    );
    still_serves(&s, &mid, &mut id, "application/json").await;

    // An unknown Body element (no action: the body decides), an unknown action, and a known
    // element name in another namespace.
    let unknown =
        v11(&valid_body.replace("CreateContactGroupRequest", "DeleteContactGroupRequest"));
    let r = s.post_raw(ct11, Some("\"\""), unknown.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900504);
    let r = s
        .post_raw(
            ct11,
            Some(&format!("\"{}\"", action("DeleteContactGroup"))),
            v11(&valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900504);
    let other_ns = v11(&valid_body.replace(
        "<prs:CreateContactGroupRequest>",
        "<prs:CreateContactGroupRequest xmlns:prs=\"urn:dk:star:dfdg:PersonRegistrationService:8\">",
    ));
    let r = s.post_raw(ct11, None, other_ns.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900504);
    still_serves(&s, &mid, &mut id, "an unknown operation").await;

    // A SOAPAction / action naming another operation than the body.
    let update = format!("\"{}\"", action("UpdateContactGroup"));
    let r = s
        .post_raw(ct11, Some(&update), v11(&valid_body).into_bytes())
        .await;
    r.expect(Soap::V11, Side::Client, 900504);
    let ct = format!("{ct12}; action={update}");
    let r = s
        .post_raw(
            &ct,
            None,
            envelope(Soap::V12, &jobcenter(), &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 900504);
    still_serves(&s, &mid, &mut id, "action and body disagreeing").await;

    // No RequestUserMetadata; one without OrganisationCode.
    let r = s
        .post_raw(
            ct11,
            Some(&create),
            envelope(Soap::V11, "", &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900507);
    let partial = "<dfdg:RequestUserMetadata><dfdg:OrganisationType>1</dfdg:OrganisationType></dfdg:RequestUserMetadata>";
    let r = s
        .post_raw(
            ct12,
            None,
            envelope(Soap::V12, partial, &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 900507);
    // Identity values go to REST as header values: a control character or a letter outside
    // ASCII is the caller's error, named as such, not an upstream failure.
    for user in ["j&#248;rgen", "ab&#10;12"] {
        let meta = metadata_user("1", "101", user);
        let r = s
            .post_raw(
                ct11,
                Some(&create),
                envelope(Soap::V11, &meta, &valid_body).into_bytes(),
            )
            .await;
        let f = r.expect(Soap::V11, Side::Client, 900507);
        assert!(f.reason.contains("ASCII"), "{user}: {}", f.reason);
    }
    still_serves(&s, &mid, &mut id, "missing metadata").await;

    // Not a date in ContactGroupStartTime: the fault names the element.
    let body = create_contact_group(CPR_101, 1, "not-a-date", None, "2024-01-01T10:00:00+01:00");
    let r = s
        .post_raw(ct11, Some(&create), v11(&body).into_bytes())
        .await;
    let f = r.expect(Soap::V11, Side::Client, 900508);
    assert!(
        f.reason.contains("ContactGroupStartTime"),
        "the fault does not name the element: {}",
        r.text
    );
    still_serves(&s, &mid, &mut id, "a non-date").await;

    // A SOAP 1.2 envelope as text/xml, and a SOAP 1.1 envelope as application/soap+xml.
    let r = s
        .post_raw(
            ct11,
            Some(&create),
            envelope(Soap::V12, &jobcenter(), &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900506);
    let r = s.post_raw(ct12, None, v11(&valid_body).into_bytes()).await;
    r.expect(Soap::V12, Side::Client, 900506);
    still_serves(&s, &mid, &mut id, "a version mismatch").await;

    // An empty SOAPAction, and SOAP 1.2 without an action: the body decides.
    let env = envelope(Soap::V11, &jobcenter_with_message_id(&mid), &valid_body);
    let r = s.post_raw(ct11, Some("\"\""), env.into_bytes()).await;
    assert_eq!(
        Some(r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier")),
        id
    );
    let env = envelope(Soap::V12, &jobcenter_with_message_id(&mid), &valid_body);
    let r = s.post_raw(ct12, None, env.into_bytes()).await;
    assert_eq!(
        Some(r.ok(Soap::V12, "CreateContactGroup", "ContactGroupIdentifier")),
        id
    );

    // All of it made one contact group.
    assert_eq!(s.contact_groups(CPR_101).await.len(), 1);
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 7. Upstream failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unreachable_rest_service_is_a_server_fault() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}");
    let mut s = Serve::start(&["--rest-url", &url, "--identity", "header"]);
    assert_eq!(s.rest, url);
    for v in [Soap::V11, Soap::V12] {
        let r = s
            .call(
                v,
                "CreateContactGroup",
                &envelope(v, &jobcenter(), &first_contact_group(CPR_101)),
            )
            .await;
        r.expect(v, Side::Server, 900520);
        assert!(
            r.elapsed < Duration::from_secs(3),
            "900520 took {:?}",
            r.elapsed
        );
    }
    s.finish(&[]);
}

#[tokio::test]
async fn a_rest_service_that_never_answers_is_a_timeout_fault() {
    // Accepts connections and holds them open, never answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut s = Serve::start(&[
        "--rest-url",
        &url,
        "--identity",
        "header",
        "--upstream-timeout-ms",
        "500",
    ]);
    for v in [Soap::V11, Soap::V12] {
        let r = s
            .call(
                v,
                "CreateContactGroup",
                &envelope(v, &jobcenter(), &first_contact_group(CPR_101)),
            )
            .await;
        r.expect(v, Side::Server, 900521);
        eprintln!("{v:?}: 900521 after {:?}", r.elapsed);
        assert!(
            r.elapsed > Duration::from_millis(400),
            "900521 before the timeout: {:?}",
            r.elapsed
        );
        assert!(
            r.elapsed < Duration::from_secs(3),
            "900521 took {:?}",
            r.elapsed
        );
    }
    silent.abort();
    s.finish(&[]);
}

/// What the REST stand-in of [`a_write_whose_answer_is_lost_has_an_unknown_outcome`] does
/// with a write (any request but a GET) once it has read all of it.
#[derive(Clone, Copy, Debug)]
enum LostAnswer {
    /// Closes the connection without a word.
    Reset,
    /// Holds the connection and never answers.
    Silent,
    /// Answers 201 with a body that is not JSON.
    Garbage,
    /// Answers 201 with JSON that lacks the new registration's id.
    NoId,
    /// Answers 201 with a Content-Length over `max_upstream_bytes`, and sends that much.
    Oversized,
    /// Answers 201 chunked, without a length, and never stops sending.
    Endless,
    /// Answers 502 with a gateway's HTML page (no problem+json).
    Gateway,
}

/// A REST stand-in: every GET (the code lists) is a 503, which the converter notes and goes
/// on without; every write is read whole and then answered as `lost` says. Counts writes.
async fn lost_answer_stand_in(lost: LostAnswer) -> (String, Arc<std::sync::atomic::AtomicU32>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let writes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = writes.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            let (tx, rx) = tokio::sync::oneshot::channel::<tokio::net::TcpStream>();
            held.push(rx);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(head) = common::http::read_request(&mut conn, &mut buf).await else {
                        return;
                    };
                    let answer = |status: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let reply = if head.starts_with("get ") {
                        answer("503 Service Unavailable", "{}")
                    } else {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        match lost {
                            LostAnswer::Reset => return,
                            LostAnswer::Silent => {
                                let _ = tx.send(conn);
                                return;
                            }
                            LostAnswer::Garbage => answer("201 Created", "<html>ok</html>"),
                            LostAnswer::NoId => answer("201 Created", r#"{"status":"ok"}"#),
                            LostAnswer::Gateway => {
                                answer("502 Bad Gateway", "<html>502 Bad Gateway</html>")
                            }
                            LostAnswer::Oversized | LostAnswer::Endless => {
                                let chunked = matches!(lost, LostAnswer::Endless);
                                let head = if chunked {
                                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                                } else {
                                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n".to_owned()
                                };
                                let piece = format!("{{\"id\":\"{}", "a".repeat(8192));
                                let framed = format!("{:x}\r\n{piece}\r\n", piece.len());
                                let out = if chunked { framed } else { piece };
                                if conn.write_all(head.as_bytes()).await.is_err() {
                                    return;
                                }
                                // Until the converter goes away (at most the 100 MB).
                                for _ in 0..100_000_000 / out.len() {
                                    if conn.write_all(out.as_bytes()).await.is_err() {
                                        break;
                                    }
                                }
                                return;
                            }
                        }
                    };
                    if conn.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, writes)
}

/// Issue 14 point 1: a write that reached REST but whose answer never came back whole (the
/// connection closed, no answer by the deadline, a 2xx that cannot be read: also one over
/// `max_upstream_bytes`, by its Content-Length or as it streams, issue 14 point 4) is
/// 900523 on the Server side, "outcome unknown, send it again", not 900520 "nothing was
/// written"; and the write was in fact sent. A write that never left (REST unreachable,
/// above) stays 900520.
#[tokio::test]
async fn a_write_whose_answer_is_lost_has_an_unknown_outcome() {
    for lost in [
        LostAnswer::Reset,
        LostAnswer::Silent,
        LostAnswer::Garbage,
        LostAnswer::NoId,
        LostAnswer::Oversized,
        LostAnswer::Endless,
        LostAnswer::Gateway,
    ] {
        let (url, writes) = lost_answer_stand_in(lost).await;
        let mut s = Serve::start(&[
            "--rest-url",
            &url,
            "--identity",
            "header",
            "--upstream-timeout-ms",
            "1500",
            "--max-upstream-bytes",
            "65536",
        ]);
        for v in [Soap::V11, Soap::V12] {
            let before = writes.load(std::sync::atomic::Ordering::SeqCst);
            let r = s
                .call(
                    v,
                    "CreateContactGroup",
                    &envelope(v, &jobcenter(), &first_contact_group(CPR_101)),
                )
                .await;
            let f = r.expect_fault(v, Side::Server, StatusCode::INTERNAL_SERVER_ERROR, 900523);
            assert!(
                f.reason.contains("samme indhold") && f.reason.contains("wsa:MessageID"),
                "{lost:?}: the fault says how to retry: {}",
                f.reason
            );
            assert_eq!(
                writes.load(std::sync::atomic::Ordering::SeqCst),
                before + 1,
                "{lost:?}: the write reached the stand-in once"
            );
            assert!(
                r.elapsed < Duration::from_secs(5),
                "{lost:?}: {:?}",
                r.elapsed
            );
        }
        s.finish(&[]);
    }
}

// ---------------------------------------------------------------------------------------
// 8. The WSDL
// ---------------------------------------------------------------------------------------

async fn wsdl_locations(s: &Serve, headers: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let mut req = s.client.get(format!("{}?wsdl", s.endpoint()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/xml"), "WSDL content type {ct}");
    let text = res.text().await.unwrap();
    let doc = parse_xml(&text).unwrap_or_else(|e| panic!("the WSDL is not well-formed ({e})"));
    assert_eq!(doc.els[0].name, "definitions");
    assert!(
        !text.contains("location=\"http://localhost:8080"),
        "a placeholder address is left in the WSDL"
    );
    let locations = |ns: &str| -> Vec<String> {
        doc.all(ns, "address")
            .iter()
            .map(|e| e.attr("location").unwrap().to_owned())
            .collect()
    };
    (locations(WSDL_SOAP11), locations(WSDL_SOAP12))
}

#[tokio::test]
async fn the_wsdl_names_the_address_the_client_used() {
    // The test client (127.0.0.1) is a trusted proxy here.
    let mut s = Serve::start(&[
        "--dev",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--identity",
        "header",
    ]);
    let direct = s.endpoint();
    assert_eq!(
        wsdl_locations(&s, &[]).await,
        (vec![direct.clone()], vec![direct.clone()])
    );

    let proxied = "https://gw.example/PersonRegistrationService/9".to_owned();
    let forwarded = [
        ("X-Forwarded-Host", "gw.example"),
        ("X-Forwarded-Proto", "https"),
    ];
    assert_eq!(
        wsdl_locations(&s, &forwarded).await,
        (vec![proxied.clone()], vec![proxied])
    );
    // And without them again: nothing of the forwarded address is kept.
    assert_eq!(
        wsdl_locations(&s, &[]).await,
        (vec![direct.clone()], vec![direct.clone()])
    );
    // The address comes from the request: no cache may keep it.
    let res = s.client.get(format!("{direct}?wsdl")).send().await.unwrap();
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    s.finish(&[]);

    // From a client that is not a trusted proxy, forwarded headers change nothing.
    let mut s = Serve::start(&[]);
    let direct = s.endpoint();
    assert_eq!(
        wsdl_locations(&s, &forwarded).await,
        (vec![direct.clone()], vec![direct.clone()])
    );
    s.finish(&[]);

    // With public_url the address is fixed, and cacheable.
    let mut s = Serve::start(&["--public-url", "https://soap.example:8443"]);
    let fixed = "https://soap.example:8443/PersonRegistrationService/9".to_owned();
    assert_eq!(
        wsdl_locations(&s, &forwarded).await,
        (vec![fixed.clone()], vec![fixed])
    );
    let res = s
        .client
        .get(format!("{}?wsdl", s.endpoint()))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("cache-control").is_none());
    s.finish(&[]);
}

/// src/soap/wsdl.rs client_base: a forwarded scheme other than http/https, and a forwarded
/// host with characters no host has, are ignored: the WSDL names the address the client
/// used (its Host header, on plain http).
#[tokio::test]
async fn the_wsdl_ignores_forwarded_values_no_proxy_would_send() {
    let mut s = Serve::start(&[
        "--dev",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--identity",
        "header",
    ]);
    let direct = s.endpoint();
    let cases: [&[(&str, &str)]; 3] = [
        &[("X-Forwarded-Proto", "gopher")],
        &[("X-Forwarded-Proto", "javascript:alert(1)//")],
        &[("X-Forwarded-Host", "gw.example\"><x")],
    ];
    let mut wrong = Vec::new();
    for headers in cases {
        let got = wsdl_locations(&s, headers).await;
        if got != (vec![direct.clone()], vec![direct.clone()]) {
            wrong.push(format!("{headers:?} gave {got:?}"));
        }
    }
    s.finish(&[]);
    assert!(
        wrong.is_empty(),
        "the WSDL should name {direct}:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 9. No CPR in the log
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_cpr_number_reaches_the_log() {
    let mut s = Serve::start_with(&[], "debug");
    let not_registered = "0505705555";
    let invalid = "3213991234";
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");

    for v in [Soap::V11, Soap::V12] {
        // Refused by REST: someone else's citizens, someone not in the register, no CPR.
        for cpr in [CPR_147, CPR_751, not_registered, invalid] {
            let r = s
                .call(
                    v,
                    "CreateContactGroup",
                    &envelope(v, &jobcenter(), &first_contact_group(cpr)),
                )
                .await;
            let f = r.fault(v);
            assert!(f.errors[0].0 >= 900_000, "{}", r.text);
        }
        // A CPR number where a date and a UUID belong.
        let body = create_contact_group(CPR_101, 1, CPR_101, None, event);
        s.call(v, "CreateContactGroup", &envelope(v, &jobcenter(), &body))
            .await
            .expect(v, Side::Client, 900508);
        let body = update_contact_group(CPR_101, Uuid::nil(), 1, start, None, event)
            .replace(&Uuid::nil().to_string(), CPR_101);
        s.call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
            .await
            .expect(v, Side::Client, 900508);
        // A malformed document with a CPR number in it.
        let cut = envelope(v, &jobcenter(), &first_contact_group(CPR_101_ENROLLED))
            .replace("</env:Body>", "");
        s.call(v, "CreateContactGroup", &cut)
            .await
            .expect(v, Side::Client, 900501);
    }
    // Successful calls, and a business refusal.
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101)),
        )
        .await;
    let cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    let tomorrow = xs_day(danish_today().checked_add(1.day()).unwrap());
    let body = update_contact_group(CPR_101, cg, 1, start, Some(&tomorrow), event);
    s.call(
        Soap::V12,
        "UpdateContactGroup",
        &envelope(Soap::V12, &jobcenter(), &body),
    )
    .await
    .expect(Soap::V12, Side::Client, 100028);
    let body = update_contact_group(CPR_101, cg, 2, start, None, event);
    s.call(
        Soap::V12,
        "UpdateContactGroup",
        &envelope(Soap::V12, &jobcenter(), &body),
    )
    .await
    .expect(Soap::V12, Side::Client, 900509);
    let body = create_person_category(CPR_101_ENROLLED, 2, start, None, event);
    let r = s
        .call(
            Soap::V12,
            "CreatePersonCategory",
            &envelope(Soap::V12, &jobcenter(), &body),
        )
        .await;
    r.ok(
        Soap::V12,
        "CreatePersonCategory",
        "PersonCategoryIdentifier",
    );

    let log = s.finish(&[not_registered, invalid]);
    assert!(
        log.contains("soap call"),
        "the converter logged no SOAP call:\n{log}"
    );
    assert!(
        log.contains("DEBUG"),
        "RUST_LOG=debug did not reach the child:\n{log}"
    );
}
