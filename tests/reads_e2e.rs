#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reads as they run: PersonStatusService v20 (GetVariablePersonStatus) and
//! PersonHistoryService v4 (GetPersonHistory) through `vos-converter serve` as a child
//! process, over real sockets. Registrations are made through PersonRegistrationService v9
//! against the embedded reference backend (seeded from mappings/dev-seed.toml), then read
//! back; the cutover (rule 9) and its per-organisation overrides, the a-kasse view (rule 6),
//! access (rule 7), the legacy splice and the shadow compare are checked from the outside.
//! "No REST call" is proven with a `--rest-url` where nothing listens: a read that called
//! REST would be a fault 900520. A stub legacy SOAP service (a raw HTTP responder on a tokio
//! listener) answers with canned bytes. Every child's stderr is scanned for CPR numbers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use common::child::{CPR_101, CPR_101_ENROLLED, CPR_147, Serve, closed_url};
use common::soap::{
    DFDG, PHS, PRS, PSS, Reply, SOAP11, SOAP12, Service as Svc, Side, Soap, create_contact_group,
    create_person_category, envelope_with, history_request, metadata_user, status_request,
    update_contact_group, update_person_category,
};
use common::{danish_today, xs_day};

/// A caller: (OrganisationType, OrganisationCode).
type Org = (&'static str, &'static str);
const JOBCENTER_101: Org = ("1", "101");
const JOBCENTER_147: Org = ("1", "147");
const KOMMUNE_147: Org = ("3", "147");
const AKASSE_12: Org = ("2", "12");
const STAR: Org = ("5", "12345678");

const TEXT_900203: &str = "Organisationen har ikke adgang til borgeren";
const SHADOW_LINE: &str = "shadow compare: legacy and REST differ";

// ---------------------------------------------------------------------------------------
// The child process (tests/common/child.rs), as the three services
// ---------------------------------------------------------------------------------------

impl Serve {
    async fn call(&self, v: Soap, svc: Svc, op: &str, envelope: &str) -> Reply {
        self.call_traced(svc, v, op, envelope, None).await
    }

    /// GetVariablePersonStatus as `org` about `cpr`.
    async fn status(&self, v: Soap, org: Org, cpr: &str) -> Reply {
        self.call(
            v,
            Svc::Pss,
            "GetVariablePersonStatus",
            &envelope(v, org, &status_request(cpr)),
        )
        .await
    }

    /// GetPersonHistory as `org` about `cpr`, with an optional period (xs:date).
    async fn history(
        &self,
        v: Soap,
        org: Org,
        cpr: &str,
        start: Option<&str>,
        end: Option<&str>,
    ) -> Reply {
        self.call(
            v,
            Svc::Phs,
            "GetPersonHistory",
            &envelope(v, org, &history_request(cpr, start, end)),
        )
        .await
    }

    /// A PRS write that must succeed; returns the identifier it answers.
    async fn prs(&self, org: Org, op: &str, body: &str, id: &str) -> Uuid {
        let r = self
            .call(Soap::V11, Svc::Prs, op, &envelope(Soap::V11, org, body))
            .await;
        r.prs_ok(op, id)
    }

    async fn create_cg(
        &self,
        org: Org,
        cpr: &str,
        ty: u32,
        start: &str,
        end: Option<&str>,
        event: &str,
    ) -> Uuid {
        let body = create_contact_group(cpr, ty, start, end, event);
        self.prs(org, "CreateContactGroup", &body, "ContactGroupIdentifier")
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_cg(
        &self,
        org: Org,
        cpr: &str,
        id: Uuid,
        ty: u32,
        start: &str,
        end: Option<&str>,
        event: &str,
    ) {
        let body = update_contact_group(cpr, id, ty, start, end, event);
        let got = self
            .prs(org, "UpdateContactGroup", &body, "ContactGroupIdentifier")
            .await;
        assert_eq!(got, id);
    }

    async fn create_pc(
        &self,
        org: Org,
        cpr: &str,
        ty: u32,
        start: &str,
        end: Option<&str>,
        event: &str,
    ) -> Uuid {
        let body = create_person_category(cpr, ty, start, end, event);
        self.prs(
            org,
            "CreatePersonCategory",
            &body,
            "PersonCategoryIdentifier",
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_pc(
        &self,
        org: Org,
        cpr: &str,
        id: Uuid,
        ty: u32,
        start: &str,
        end: Option<&str>,
        event: &str,
    ) {
        let body = update_person_category(cpr, id, ty, start, end, event);
        let got = self
            .prs(
                org,
                "UpdatePersonCategory",
                &body,
                "PersonCategoryIdentifier",
            )
            .await;
        assert_eq!(got, id);
    }
}

// ---------------------------------------------------------------------------------------
// SOAP requests (tests/common/soap.rs)
// ---------------------------------------------------------------------------------------

impl Svc {
    /// (operation, wrapper, KG collection, KG item, PC collection, PC item) of a read.
    fn read_names(self) -> [&'static str; 6] {
        match self {
            Svc::Pss => [
                "GetVariablePersonStatus",
                "PersonStatus",
                "ContactGroupCollection",
                "ContactGroup",
                "PersonCategoryCollection",
                "PersonCategory",
            ],
            Svc::Phs => [
                "GetPersonHistory",
                "PersonHistory",
                "ContactGroupHistoryCollection",
                "ContactGroupHistory",
                "PersonCategoryHistoryCollection",
                "PersonCategoryHistory",
            ],
            Svc::Prs => unreachable!("PRS has no reads"),
        }
    }
}

/// An envelope of version `v` with `org`'s RequestUserMetadata and this body content.
fn envelope(v: Soap, org: Org, body: &str) -> String {
    envelope_with(
        v,
        &[("dfdg", DFDG), ("prs", PRS), ("pss", PSS), ("phs", PHS)],
        &metadata_user(org.0, org.1, "reads-e2e"),
        body,
    )
}

// ---------------------------------------------------------------------------------------
// SOAP answers
// ---------------------------------------------------------------------------------------

/// One item of a collection: its child elements' (local name, text), in document order.
type Item = Vec<(String, String)>;

/// A read's answer: the echoed CPR and the two collections' items.
#[derive(Debug)]
struct ReadAnswer {
    cpr: String,
    kg: Vec<Item>,
    pc: Vec<Item>,
}

fn field<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The item without the named fields.
fn without(item: &Item, names: &[&str]) -> Item {
    item.iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn ids(items: &[Item], id: &str) -> Vec<Uuid> {
    items
        .iter()
        .map(|i| field(i, id).unwrap().parse().unwrap())
        .collect()
}

impl Reply {
    /// A successful PRS answer of `op`; returns its identifier `id`.
    fn prs_ok(&self, op: &str, id: &str) -> Uuid {
        assert_eq!(self.status, StatusCode::OK, "{op}: {}", self.text);
        let (doc, el) = self.body_child(Soap::V11);
        assert_eq!(doc.els[el].name, format!("{op}Response"), "{}", self.text);
        let id_el = doc
            .child(el, PRS, id)
            .unwrap_or_else(|| panic!("no {id} in {}", self.text));
        doc.els[id_el].text.trim().parse().unwrap()
    }

    /// A successful read of `svc`: HTTP 200, the version's content type, `<Op>Response`
    /// with its wrapper holding exactly the CPR and the two collections, in that order.
    fn read(&self, v: Soap, svc: Svc) -> ReadAnswer {
        let [op, wrapper, kg, kg_item, pc, pc_item] = svc.read_names();
        let (doc, el) = self.response(v, svc.ns(), op);
        let children = doc.children(el);
        assert_eq!(children.len(), 1, "{}", self.text);
        let w = children[0];
        assert_eq!(
            (doc.els[w].ns.as_str(), doc.els[w].name.as_str()),
            (svc.ns(), wrapper)
        );
        let parts = doc.children(w);
        let names: Vec<(&str, &str)> = parts
            .iter()
            .map(|p| (doc.els[*p].ns.as_str(), doc.els[*p].name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (svc.ns(), "PersonCivilRegistrationIdentifier"),
                (svc.ns(), kg),
                (svc.ns(), pc)
            ],
            "the collections are present, in order, and nothing else: {}",
            self.text
        );
        let items = |coll: usize, item: &str| -> Vec<Item> {
            doc.children(coll)
                .into_iter()
                .map(|i| {
                    assert_eq!(
                        (doc.els[i].ns.as_str(), doc.els[i].name.as_str()),
                        (svc.ns(), item),
                        "{}",
                        self.text
                    );
                    doc.children(i)
                        .into_iter()
                        .map(|f| {
                            assert_eq!(doc.els[f].ns, svc.ns(), "{}", self.text);
                            (doc.els[f].name.clone(), doc.els[f].text.clone())
                        })
                        .collect()
                })
                .collect()
        };
        ReadAnswer {
            cpr: doc.els[parts[0]].text.clone(),
            kg: items(parts[1], kg_item),
            pc: items(parts[2], pc_item),
        }
    }

    /// Asserts a fault of version `v` from `side` with the version's usual HTTP status and
    /// first error `code`; returns the errors.
    fn expect_fault(&self, v: Soap, side: Side, code: u32) -> Vec<(u32, String)> {
        let f = self.fault(v);
        assert_eq!(f.code, v.fault_code(side), "{}", self.text);
        assert_eq!(f.errors[0].0, code, "{}", self.text);
        assert_eq!(self.status, v.fault_status(side), "{}", self.text);
        f.errors
    }
}

// ---------------------------------------------------------------------------------------
// Expected items
// ---------------------------------------------------------------------------------------

fn item(pairs: &[(&str, Option<String>)]) -> Item {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
        .collect()
}

/// A ContactGroup / ContactGroupHistory (without RegistrationTime) as the converter
/// writes it, in the XSD's order.
fn kg_item(id: Uuid, ty: u32, start: &str, end: Option<&str>, event: &str, by: Org) -> Item {
    item(&[
        ("ContactGroupIdentifier", Some(id.to_string())),
        ("ContactGroupTypeIdentifier", Some(ty.to_string())),
        ("ContactGroupStartTime", Some(start.to_owned())),
        ("ContactGroupEndTime", end.map(str::to_owned)),
        ("ContactGroupEventTime", Some(event.to_owned())),
        ("RegisteredByOrganisationType", Some(by.0.to_owned())),
        ("RegisteredByOrganisationCode", Some(by.1.to_owned())),
    ])
}

fn pc_item(id: Uuid, ty: u32, start: &str, end: Option<&str>, event: &str, by: Org) -> Item {
    item(&[
        ("PersonCategoryIdentifier", Some(id.to_string())),
        ("PersonCategoryTypeIdentifier", Some(ty.to_string())),
        ("PersonCategoryStartTime", Some(start.to_owned())),
        ("PersonCategoryEndTime", end.map(str::to_owned)),
        ("PersonCategoryEventTime", Some(event.to_owned())),
        ("RegisteredByOrganisationType", Some(by.0.to_owned())),
        ("RegisteredByOrganisationCode", Some(by.1.to_owned())),
    ])
}

/// The items of a history collection without RegistrationTime, after checking that every
/// item has one as its last field, that it is an xs:dateTime with an offset, and that they
/// do not decrease (oldest first).
fn history_items(items: &[Item]) -> Vec<Item> {
    let mut last: Option<Timestamp> = None;
    for i in items {
        let (name, text) = i.last().unwrap();
        assert_eq!(name, "RegistrationTime", "{i:?}");
        let t: Timestamp = text
            .parse()
            .unwrap_or_else(|_| panic!("RegistrationTime {text:?} has no offset"));
        assert!(last.is_none_or(|l| l <= t), "not oldest first: {items:?}");
        last = Some(t);
    }
    items
        .iter()
        .map(|i| without(i, &["RegistrationTime"]))
        .collect()
}

/// The items as the converter writes them into a legacy collection (with `prefix`).
fn xml_items(prefix: Option<&str>, item: &str, items: &[Item]) -> String {
    let p = prefix.map(|p| format!("{p}:")).unwrap_or_default();
    let mut out = String::new();
    for fields in items {
        out.push_str(&format!("<{p}{item}>"));
        for (k, v) in fields {
            out.push_str(&format!("<{p}{k}>{v}</{p}{k}>"));
        }
        out.push_str(&format!("</{p}{item}>"));
    }
    out
}

// ---------------------------------------------------------------------------------------
// A stub legacy SOAP service
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mode {
    /// Answer every request with these bytes.
    Answer {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Accept, read the request, never answer.
    Silent,
}

/// What the stub received: lower-case header names with values, and the body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct LegacyStub {
    /// `http://127.0.0.1:PORT/pss`.
    url: String,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LegacyStub {
    async fn start(mode: Mode) -> LegacyStub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/pss", listener.local_addr().unwrap());
        let mode = Arc::new(Mutex::new(mode));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (m, r) = (mode.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(stub_connection(conn, m.clone(), r.clone()));
            }
        });
        LegacyStub {
            url,
            mode,
            received,
            task,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for LegacyStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(status: u16, content_type: &str, body: &str) -> Mode {
    Mode::Answer {
        status,
        content_type: content_type.to_owned(),
        body: body.to_owned(),
    }
}

/// HTTP/1.1 with keep-alive: requests with a Content-Length, one after the other.
async fn stub_connection(
    mut conn: tokio::net::TcpStream,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let start = head_end + 4;
        while buf.len() < start + len {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[start..start + len].to_vec();
        buf.drain(..start + len);
        received.lock().unwrap().push(Received { headers, body });
        let mode = mode.lock().unwrap().clone();
        match mode {
            Mode::Silent => std::future::pending::<()>().await,
            Mode::Answer {
                status,
                content_type,
                body,
            } => {
                let reason = if status == 200 { "OK" } else { "Error" };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).await.is_err()
                    || conn.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The legacy GetVariablePersonStatus answer, in pieces around the inner content of the
/// two collections the converter owns: unusual prefixes (`SOAP-ENV:`, `ns7:`), a default
/// namespace on one collection, comments, whitespace, an attribute on a collection, a
/// collection of its own with children in two namespaces, and an element of another
/// namespace that has the same local name as a KG collection (not ours: kept).
const LEGACY_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- legacy PersonStatusService v20, node pss-03 -->
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <SOAP-ENV:Header/>
  <SOAP-ENV:Body>
    <ns7:GetVariablePersonStatusResponse xmlns:ns7="urn:dk:star:dfdg:PersonStatusService:20"
        xmlns:x="urn:example:legacy:extra">
      <ns7:PersonStatus>
        <ns7:PersonCivilRegistrationIdentifier>0101701111</ns7:PersonCivilRegistrationIdentifier>
        <!-- KG and PC are VisiteringOgStatus' now -->
        <ns7:ContactGroupCollection count="1">"#;

const LEGACY_MIDDLE: &str = r#"</ns7:ContactGroupCollection>
	<PersonCategoryCollection xmlns="urn:dk:star:dfdg:PersonStatusService:20" >"#;

const LEGACY_TAIL: &str = r#"</PersonCategoryCollection>
        <ns7:AbsenceCollection>
          <ns7:Absence>
            <ns7:AbsenceTypeIdentifier>3</ns7:AbsenceTypeIdentifier>
            <x:Note xml:lang="da">ferie &amp; fridage &#230;</x:Note>
          </ns7:Absence>
          <!-- more absences on request -->
        </ns7:AbsenceCollection>
        <x:ContactGroupCollection><x:ContactGroup>another namespace: kept</x:ContactGroup></x:ContactGroupCollection>
        <x:Flags xsi:nil="true"/>
      </ns7:PersonStatus>
    </ns7:GetVariablePersonStatusResponse>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#;

/// Stale legacy items (an old contact group nobody has any more).
const LEGACY_STALE_KG: &str = r#"
          <ns7:ContactGroup>
            <ns7:ContactGroupIdentifier>0d5f3c1e-8a2b-4c6d-9e7f-102938475610</ns7:ContactGroupIdentifier>
            <ns7:ContactGroupTypeIdentifier>8</ns7:ContactGroupTypeIdentifier>
            <ns7:ContactGroupStartTime>2019-05-01T00:00:00+02:00</ns7:ContactGroupStartTime>
            <ns7:ContactGroupEventTime>2019-05-01T08:00:00+02:00</ns7:ContactGroupEventTime>
            <ns7:RegisteredByOrganisationType>1</ns7:RegisteredByOrganisationType>
            <ns7:RegisteredByOrganisationCode>101</ns7:RegisteredByOrganisationCode>
          </ns7:ContactGroup>
        "#;

const LEGACY_STALE_PC: &str = "<PersonCategory><PersonCategoryIdentifier>5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9</PersonCategoryIdentifier>\
<PersonCategoryTypeIdentifier>3</PersonCategoryTypeIdentifier><PersonCategoryStartTime>2019-05-01T00:00:00+02:00</PersonCategoryStartTime>\
<PersonCategoryEventTime>2019-05-01T08:00:00+02:00</PersonCategoryEventTime><RegisteredByOrganisationType>1</RegisteredByOrganisationType>\
<RegisteredByOrganisationCode>101</RegisteredByOrganisationCode></PersonCategory>";

fn legacy_body(kg_inner: &str, pc_inner: &str) -> String {
    format!("{LEGACY_HEAD}{kg_inner}{LEGACY_MIDDLE}{pc_inner}{LEGACY_TAIL}")
}

/// The content type the stub answers with (passed through as it is).
const LEGACY_CT: &str = "text/xml;charset=UTF-8";

const LEGACY_FAULT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body><SOAP-ENV:Fault>\
<faultcode>SOAP-ENV:Server</faultcode><faultstring xml:lang=\"da\">Legacy: intern fejl &#230; </faultstring>\
<detail><legacy:Fejl xmlns:legacy=\"urn:example:legacy\">42</legacy:Fejl></detail></SOAP-ENV:Fault></SOAP-ENV:Body>\
</SOAP-ENV:Envelope>";

// ---------------------------------------------------------------------------------------
// 1. Before the cutover: the reads return what PRS registered
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn before_the_cutover_the_reads_return_what_prs_registered() {
    let mut s = Serve::start_with(&["--cutover", "2099-01-01"], "debug");
    let jc = JOBCENTER_101;
    let today = xs_day(danish_today());

    // Person A: contact group a1 (type 1), then a2 (type 2) closes it the day before
    // (rule 5); a2 is ended today. A person category, created and then updated.
    let (a1_start, a1_event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let (a2_start, a2_event) = ("2024-06-01T00:00:00+02:00", "2024-06-01T09:00:00+02:00");
    let a1 = s.create_cg(jc, CPR_101, 1, a1_start, None, a1_event).await;
    let a2 = s.create_cg(jc, CPR_101, 2, a2_start, None, a2_event).await;
    s.update_cg(jc, CPR_101, a2, 2, a2_start, Some(&today), a2_event)
        .await;
    let (p_start, p_event) = ("2024-02-01T00:00:00+01:00", "2024-02-01T08:00:00+01:00");
    let p_end = "2030-12-31T00:00:00+01:00";
    let p1 = s.create_pc(jc, CPR_101, 1, p_start, None, p_event).await;
    s.update_pc(jc, CPR_101, p1, 2, p_start, Some(p_end), p_event)
        .await;

    for v in [Soap::V11, Soap::V12] {
        // Current registrations only: a1 ended before today, a2 ends today.
        let r = s.status(v, jc, CPR_101).await.read(v, Svc::Pss);
        assert_eq!(r.cpr, CPR_101);
        assert_eq!(
            r.kg,
            vec![kg_item(a2, 2, a2_start, Some(&today), a2_event, jc)]
        );
        assert_eq!(
            r.pc,
            vec![pc_item(p1, 2, p_start, Some(p_end), p_event, jc)]
        );

        // Every version, oldest first.
        let h = s
            .history(v, jc, CPR_101, None, None)
            .await
            .read(v, Svc::Phs);
        assert_eq!(h.cpr, CPR_101);
        assert_eq!(
            history_items(&h.kg),
            vec![
                kg_item(a1, 1, a1_start, None, a1_event, jc),
                kg_item(
                    a1,
                    1,
                    a1_start,
                    Some("2024-05-31T00:00:00+02:00"),
                    a1_event,
                    jc
                ),
                kg_item(a2, 2, a2_start, None, a2_event, jc),
                kg_item(a2, 2, a2_start, Some(&today), a2_event, jc),
            ]
        );
        assert_eq!(
            history_items(&h.pc),
            vec![
                pc_item(p1, 1, p_start, None, p_event, jc),
                pc_item(p1, 2, p_start, Some(p_end), p_event, jc),
            ]
        );
    }

    // Person B (enrolled): b1 from 2023-01-02 to 2023-06-30 (registered closed), b2 open
    // from 2024-01-01: the period selects.
    let jc_b = JOBCENTER_101;
    let b1 = s
        .create_cg(
            jc_b,
            CPR_101_ENROLLED,
            1,
            "2023-01-02T00:00:00+01:00",
            Some("2023-06-30T00:00:00+02:00"),
            "2023-01-02T12:00:00+01:00",
        )
        .await;
    let b2 = s
        .create_cg(
            jc_b,
            CPR_101_ENROLLED,
            1,
            "2024-01-01T00:00:00+01:00",
            None,
            "2024-01-01T12:00:00+01:00",
        )
        .await;
    let periods: [(Option<&str>, Option<&str>, Vec<Uuid>); 5] = [
        (None, None, vec![b1, b2]),
        (Some("2024-01-01"), None, vec![b2]),
        (None, Some("2023-12-31"), vec![b1]),
        (Some("2023-03-01"), Some("2023-04-01"), vec![b1]),
        (Some("2023-07-01"), Some("2023-12-31"), vec![]),
    ];
    for (i, (from, to, expected)) in periods.iter().enumerate() {
        let v = if i % 2 == 0 { Soap::V11 } else { Soap::V12 };
        let h = s
            .history(v, jc_b, CPR_101_ENROLLED, *from, *to)
            .await
            .read(v, Svc::Phs);
        assert_eq!(
            ids(&h.kg, "ContactGroupIdentifier"),
            *expected,
            "period {from:?}..{to:?}"
        );
        assert!(h.pc.is_empty());
    }
    let log = s.finish(&[]);
    assert!(log.contains("soap call"), "no SOAP call logged:\n{log}");
}

// ---------------------------------------------------------------------------------------
// 2. After the cutover: present, empty, and no REST call
// ---------------------------------------------------------------------------------------

async fn assert_empty_reads(s: &Serve, org: Org, cpr: &str) {
    for v in [Soap::V11, Soap::V12] {
        let r = s.status(v, org, cpr).await;
        let a = r.read(v, Svc::Pss);
        assert!(a.kg.is_empty() && a.pc.is_empty(), "{}", r.text);
        assert!(
            r.text
                .contains("<ContactGroupCollection/><PersonCategoryCollection/>"),
            "{}",
            r.text
        );
        for (from, to) in [(None, None), (Some("2020-01-01"), Some("2030-12-31"))] {
            let r = s.history(v, org, cpr, from, to).await;
            let a = r.read(v, Svc::Phs);
            assert!(a.kg.is_empty() && a.pc.is_empty(), "{}", r.text);
            assert!(
                r.text
                    .contains("<ContactGroupHistoryCollection/><PersonCategoryHistoryCollection/>"),
                "{}",
                r.text
            );
        }
    }
}

#[tokio::test]
async fn after_the_cutover_the_collections_are_empty_and_rest_is_not_called() {
    // Nothing listens at the REST URL: a read that called REST would fault 900520.
    let nowhere = closed_url();
    let mut default_cutover = Serve::start(&["--rest-url", &nowhere, "--identity", "header"]);
    assert_empty_reads(&default_cutover, JOBCENTER_101, CPR_101).await;
    default_cutover.finish(&[]);

    let mut past = Serve::start(&[
        "--rest-url",
        &nowhere,
        "--identity",
        "header",
        "--cutover",
        "2020-01-01",
    ]);
    assert_empty_reads(&past, JOBCENTER_101, CPR_101).await;
    assert_empty_reads(&past, STAR, CPR_147).await;
    past.finish(&[]);

    // The same converter before its cutover does call REST, and cannot reach it.
    let mut before = Serve::start(&[
        "--rest-url",
        &nowhere,
        "--identity",
        "header",
        "--cutover",
        "2099-01-01",
    ]);
    for v in [Soap::V11, Soap::V12] {
        let r = before.status(v, JOBCENTER_101, CPR_101).await;
        r.expect_fault(v, Side::Server, 900520);
        let r = before
            .history(v, JOBCENTER_101, CPR_101, Some("2024-01-01"), None)
            .await;
        r.expect_fault(v, Side::Server, 900520);
    }
    before.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 3. An organisation's own cutover
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_organisation_override_moves_one_caller_alone() {
    let mut s = Serve::start(&[
        "--cutover",
        "2099-01-01",
        "--cutover-override",
        "1:147=2020-01-01",
    ]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    // Writes go on after the cutover: PRS is not affected.
    let k101 = s
        .create_cg(JOBCENTER_101, CPR_101, 1, start, None, event)
        .await;
    let k147 = s
        .create_cg(JOBCENTER_147, CPR_147, 1, start, None, event)
        .await;
    let p147 = s
        .create_pc(JOBCENTER_147, CPR_147, 1, start, None, event)
        .await;

    // Jobcenter 147 is past its own cutover: its citizen's data exists, its reads are empty.
    assert_empty_reads(&s, JOBCENTER_147, CPR_147).await;
    // Not even REST's access check runs for it (no REST call): another municipality's
    // citizen gives empty collections, not 900203.
    assert_empty_reads(&s, JOBCENTER_147, CPR_101).await;

    for v in [Soap::V11, Soap::V12] {
        // Jobcenter 101 is on the default cutover, in 2099.
        let r = s.status(v, JOBCENTER_101, CPR_101).await.read(v, Svc::Pss);
        assert_eq!(
            r.kg,
            vec![kg_item(k101, 1, start, None, event, JOBCENTER_101)]
        );
        let h = s
            .history(v, JOBCENTER_101, CPR_101, None, None)
            .await
            .read(v, Svc::Phs);
        assert_eq!(ids(&h.kg, "ContactGroupIdentifier"), vec![k101]);
        // The override is for organisation type 1 and code 147: Kommune 147 is not moved.
        let r = s.status(v, KOMMUNE_147, CPR_147).await.read(v, Svc::Pss);
        assert_eq!(ids(&r.kg, "ContactGroupIdentifier"), vec![k147]);
        assert_eq!(ids(&r.pc, "PersonCategoryIdentifier"), vec![p147]);
        // Nor is Jobcenter 147's access in REST: Jobcenter 101 about 147's citizen is refused.
        s.status(v, JOBCENTER_101, CPR_147)
            .await
            .expect_fault(v, Side::Client, 900203);
    }
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 4. The a-kasse view (rule 6)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_akasse_sees_its_contact_group_types_and_never_person_categories() {
    let mut s = Serve::start(&["--cutover", "2099-01-01"]);
    let today = danish_today();
    let tomorrow = xs_day(today.checked_add(1.day()).unwrap());
    let today = xs_day(today);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let event12 = "2025-01-06T09:30:00+01:00";
    // STAR registers type 1, then type 12 from tomorrow: type 1 ends today (rule 5), so
    // both are current.
    let k1 = s.create_cg(STAR, CPR_101, 1, start, None, event).await;
    let k12 = s
        .create_cg(STAR, CPR_101, 12, &tomorrow, None, event12)
        .await;
    let p = s.create_pc(STAR, CPR_101, 1, start, None, event).await;

    for v in [Soap::V11, Soap::V12] {
        let star = s.status(v, STAR, CPR_101).await.read(v, Svc::Pss);
        assert_eq!(
            star.kg,
            vec![
                kg_item(k1, 1, start, Some(&today), event, STAR),
                kg_item(k12, 12, &tomorrow, None, event12, STAR),
            ]
        );
        assert_eq!(ids(&star.pc, "PersonCategoryIdentifier"), vec![p]);

        // A-kasse 12, of which the person is a member: type 1 only, no person categories,
        // and no fault for them.
        let r = s.status(v, AKASSE_12, CPR_101).await;
        let ak = r.read(v, Svc::Pss);
        assert_eq!(
            ak.kg,
            vec![kg_item(k1, 1, start, Some(&today), event, STAR)]
        );
        assert!(ak.pc.is_empty(), "{}", r.text);
        assert!(!r.text.contains("<PersonCategory>"), "{}", r.text);

        let h = s
            .history(v, AKASSE_12, CPR_101, None, None)
            .await
            .read(v, Svc::Phs);
        assert_eq!(ids(&h.kg, "ContactGroupIdentifier"), vec![k1, k1]);
        assert!(h.pc.is_empty());
        let h = s
            .history(v, STAR, CPR_101, None, None)
            .await
            .read(v, Svc::Phs);
        assert_eq!(ids(&h.kg, "ContactGroupIdentifier"), vec![k1, k1, k12]);
        assert_eq!(ids(&h.pc, "PersonCategoryIdentifier"), vec![p]);
    }
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 5. Access (rule 7): REST decides
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_jobcenter_asking_about_another_municipalitys_citizen_gets_900203() {
    let mut s = Serve::start(&["--cutover", "2099-01-01"]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    s.create_cg(JOBCENTER_101, CPR_101, 1, start, None, event)
        .await;
    s.create_pc(JOBCENTER_101, CPR_101, 1, start, None, event)
        .await;
    for v in [Soap::V11, Soap::V12] {
        for r in [
            s.status(v, JOBCENTER_147, CPR_101).await,
            s.history(v, JOBCENTER_147, CPR_101, None, None).await,
        ] {
            let errors = r.expect_fault(v, Side::Client, 900203);
            assert_eq!(errors, vec![(900203, TEXT_900203.to_owned())]);
            assert!(
                !r.text.contains(CPR_101) && !r.text.contains("Collection"),
                "a fault carries no data: {}",
                r.text
            );
        }
    }
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 6. The legacy splice
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_legacy_answer_keeps_every_byte_but_the_two_collections() {
    let stale = legacy_body(LEGACY_STALE_KG, LEGACY_STALE_PC);
    let stub = LegacyStub::start(answer(200, LEGACY_CT, &stale)).await;
    let legacy_flag = format!("PersonStatusService={}", stub.url);
    let mut s = Serve::start(&[
        "--cutover",
        "2099-01-01",
        "--identity",
        "header",
        "--legacy-url",
        &legacy_flag,
    ]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let k = s
        .create_cg(JOBCENTER_101, CPR_101, 1, start, None, event)
        .await;
    let p = s
        .create_pc(JOBCENTER_101, CPR_101, 3, start, None, event)
        .await;

    // Before the cutover: the REST items, with the collection's own prefix (`ns7:`) or
    // none (a default namespace).
    let envelope_sent = envelope(Soap::V11, JOBCENTER_101, &status_request(CPR_101));
    let r = s.status(Soap::V11, JOBCENTER_101, CPR_101).await;
    let expected = legacy_body(
        &xml_items(
            Some("ns7"),
            "ContactGroup",
            &[kg_item(k, 1, start, None, event, JOBCENTER_101)],
        ),
        &xml_items(
            None,
            "PersonCategory",
            &[pc_item(p, 3, start, None, event, JOBCENTER_101)],
        ),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, LEGACY_CT);
    assert_eq!(r.text, expected);
    // The legacy service got the request as the client sent it.
    let got = stub.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, envelope_sent.as_bytes());
    assert_eq!(
        got[0].header("soapaction"),
        Some(format!("\"{PSS}/GetVariablePersonStatus\"").as_str())
    );
    assert_eq!(
        got[0].header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    assert!(got[0].header("traceparent").is_some(), "{:?}", got[0]);
    assert!(got[0].header("x-cpr").is_none(), "{:?}", got[0]);

    // Collections the legacy service writes as empty elements are opened to hold the
    // items; the tag keeps its attributes, the rest of the bytes stay.
    let kg_empty = r#"<ns7:ContactGroupCollection count="1"/>"#;
    let pc_empty =
        r#"<PersonCategoryCollection xmlns="urn:dk:star:dfdg:PersonStatusService:20" />"#;
    let self_closing = legacy_body("", "")
        .replace(r#"<ns7:ContactGroupCollection count="1"></ns7:ContactGroupCollection>"#, kg_empty)
        .replace(
            "<PersonCategoryCollection xmlns=\"urn:dk:star:dfdg:PersonStatusService:20\" ></PersonCategoryCollection>",
            pc_empty,
        );
    assert!(self_closing.contains(kg_empty) && self_closing.contains(pc_empty));
    stub.set(answer(200, LEGACY_CT, &self_closing));
    let r = s.status(Soap::V11, JOBCENTER_101, CPR_101).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let expected_opened = expected.replace(
        "<PersonCategoryCollection xmlns=\"urn:dk:star:dfdg:PersonStatusService:20\" >",
        "<PersonCategoryCollection xmlns=\"urn:dk:star:dfdg:PersonStatusService:20\">",
    );
    assert_eq!(r.text, expected_opened);

    // A legacy fault passes through byte for byte.
    stub.set(answer(500, "text/xml; charset=utf-8", LEGACY_FAULT));
    let r = s.status(Soap::V11, JOBCENTER_101, CPR_101).await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.text.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/xml; charset=utf-8",
            LEGACY_FAULT
        )
    );
    s.finish(&[]);

    // A legacy service that never answers: 900521 after the upstream timeout.
    stub.set(Mode::Silent);
    let mut slow = Serve::start(&[
        "--cutover",
        "2099-01-01",
        "--identity",
        "header",
        "--legacy-url",
        &legacy_flag,
        "--upstream-timeout-ms",
        "500",
    ]);
    for v in [Soap::V11, Soap::V12] {
        let r = slow.status(v, JOBCENTER_101, CPR_101).await;
        r.expect_fault(v, Side::Server, 900521);
        assert!(
            r.elapsed > Duration::from_millis(400) && r.elapsed < Duration::from_secs(3),
            "900521 after {:?}",
            r.elapsed
        );
    }
    slow.finish(&[]);

    // A legacy service that cannot be reached: 900520.
    let gone = format!("PersonStatusService={}/pss", closed_url());
    let mut unreachable = Serve::start(&[
        "--cutover",
        "2099-01-01",
        "--identity",
        "header",
        "--legacy-url",
        &gone,
    ]);
    unreachable
        .status(Soap::V11, JOBCENTER_101, CPR_101)
        .await
        .expect_fault(Soap::V11, Side::Server, 900520);
    unreachable.finish(&[]);
}

#[tokio::test]
async fn after_the_cutover_the_legacy_collections_are_emptied_without_rest() {
    let stale = legacy_body(LEGACY_STALE_KG, LEGACY_STALE_PC);
    let stub = LegacyStub::start(answer(200, LEGACY_CT, &stale)).await;
    let legacy_flag = format!("PersonStatusService={}", stub.url);
    // Nothing listens at the REST URL: a REST call would fault 900520.
    let nowhere = closed_url();
    let mut s = Serve::start(&[
        "--rest-url",
        &nowhere,
        "--identity",
        "header",
        "--legacy-url",
        &legacy_flag,
    ]);
    let r = s.status(Soap::V11, JOBCENTER_101, CPR_101).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, LEGACY_CT);
    assert_eq!(r.text, legacy_body("", ""));
    assert_eq!(stub.received().len(), 1);

    // The legacy fault passes through after the cutover too.
    stub.set(answer(500, "text/xml; charset=utf-8", LEGACY_FAULT));
    let r = s.status(Soap::V11, JOBCENTER_101, CPR_101).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text, LEGACY_FAULT);
    s.finish(&[]);

    // PersonHistoryService the same way, in SOAP 1.2.
    let history = |kg: &str, pc: &str| {
        format!(
            "<?xml version=\"1.0\"?>\n<e:Envelope xmlns:e=\"{SOAP12}\"><e:Body>\n  \
             <h:GetPersonHistoryResponse xmlns:h=\"{PHS}\"><h:PersonHistory>\
             <h:PersonCivilRegistrationIdentifier>0101701111</h:PersonCivilRegistrationIdentifier>\n    \
             <h:ContactGroupHistoryCollection>{kg}</h:ContactGroupHistoryCollection>\n    \
             <h:PersonCategoryHistoryCollection>{pc}</h:PersonCategoryHistoryCollection>\n    \
             <h:InterviewHistoryCollection><h:InterviewHistory>kept</h:InterviewHistory></h:InterviewHistoryCollection>\
             </h:PersonHistory></h:GetPersonHistoryResponse>\n</e:Body></e:Envelope>"
        )
    };
    let stale_kg = "<h:ContactGroupHistory><h:ContactGroupIdentifier>0d5f3c1e-8a2b-4c6d-9e7f-102938475610\
                    </h:ContactGroupIdentifier></h:ContactGroupHistory>";
    let phs_ct = "application/soap+xml; charset=utf-8";
    let phs_stub =
        LegacyStub::start(answer(200, phs_ct, &history(stale_kg, "<!-- none -->"))).await;
    let phs_flag = format!("PersonHistoryService={}", phs_stub.url);
    let mut s = Serve::start(&[
        "--rest-url",
        &nowhere,
        "--identity",
        "header",
        "--legacy-url",
        &phs_flag,
    ]);
    let r = s
        .history(Soap::V12, JOBCENTER_101, CPR_101, Some("2020-01-01"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, phs_ct);
    assert_eq!(r.text, history("", ""));
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 7. Shadow compare
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn shadow_compare_counts_differences_and_answers_from_rest() {
    let stub = LegacyStub::start(answer(200, LEGACY_CT, &legacy_body("", ""))).await;
    let legacy_flag = format!("PersonStatusService={}", stub.url);
    let mut s = Serve::start_with(
        &[
            "--cutover",
            "2099-01-01",
            "--cutover-override",
            "1:147=2020-01-01",
            "--identity",
            "header",
            "--legacy-url",
            &legacy_flag,
            "--shadow-compare",
        ],
        "debug",
    );
    let today = danish_today();
    let tomorrow = xs_day(today.checked_add(1.day()).unwrap());
    let today = xs_day(today);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let (p_start, p_event) = ("2024-02-01T00:00:00+01:00", "2024-02-01T08:00:00+01:00");
    // Two current contact groups (the first ends today) and a person category.
    let k1 = s
        .create_cg(JOBCENTER_101, CPR_101, 1, start, None, event)
        .await;
    let k2 = s
        .create_cg(JOBCENTER_101, CPR_101, 2, &tomorrow, None, event)
        .await;
    let p = s
        .create_pc(JOBCENTER_101, CPR_101, 2, p_start, None, p_event)
        .await;

    // Legacy: k1 with another type, k2 missing (2 mismatches); the person category equal
    // to REST's in other words (offset-less local time, UTC, fields in another order):
    // no mismatch.
    let legacy_kg = format!(
        "<ns7:ContactGroup><ns7:ContactGroupIdentifier>{k1}</ns7:ContactGroupIdentifier>\
         <ns7:ContactGroupTypeIdentifier>8</ns7:ContactGroupTypeIdentifier>\
         <ns7:ContactGroupStartTime>{start}</ns7:ContactGroupStartTime>\
         <ns7:ContactGroupEndTime>{today}</ns7:ContactGroupEndTime>\
         <ns7:ContactGroupEventTime>{event}</ns7:ContactGroupEventTime>\
         <ns7:RegisteredByOrganisationType>1</ns7:RegisteredByOrganisationType>\
         <ns7:RegisteredByOrganisationCode>101</ns7:RegisteredByOrganisationCode></ns7:ContactGroup>"
    );
    let legacy_pc = format!(
        "\n          <PersonCategory>\n            <PersonCategoryIdentifier>{p}</PersonCategoryIdentifier>\
         <PersonCategoryTypeIdentifier> 2 </PersonCategoryTypeIdentifier>\
         <PersonCategoryStartTime>2024-02-01T00:00:00</PersonCategoryStartTime>\
         <RegisteredByOrganisationType>1</RegisteredByOrganisationType>\
         <PersonCategoryEventTime>2024-02-01T07:00:00Z</PersonCategoryEventTime>\
         <RegisteredByOrganisationCode>101</RegisteredByOrganisationCode>\n          </PersonCategory>\n        "
    );
    stub.set(answer(200, LEGACY_CT, &legacy_body(&legacy_kg, &legacy_pc)));

    let r = s.status(Soap::V11, JOBCENTER_101, CPR_101).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The caller gets REST's items.
    let expected = legacy_body(
        &xml_items(
            Some("ns7"),
            "ContactGroup",
            &[
                kg_item(k1, 1, start, Some(&today), event, JOBCENTER_101),
                kg_item(k2, 2, &tomorrow, None, event, JOBCENTER_101),
            ],
        ),
        &xml_items(
            None,
            "PersonCategory",
            &[pc_item(p, 2, p_start, None, p_event, JOBCENTER_101)],
        ),
    );
    assert_eq!(r.text, expected);

    // After its cutover (the override) a caller is not compared: nothing to compare with.
    let r = s.status(Soap::V11, JOBCENTER_147, CPR_147).await;
    assert_eq!(r.text, legacy_body("", ""));

    let log = s.finish(&[]);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(SHADOW_LINE)).collect();
    assert_eq!(lines.len(), 1, "one collection differs, once:\n{log}");
    let line = lines[0];
    for part in [
        "mismatches=2",
        "collection=ContactGroupCollection",
        "operation=GetVariablePersonStatus",
        "rest_items=2",
        "legacy_items=1",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    for id in [k1, k2, p] {
        assert!(!line.contains(&id.to_string()), "an identifier in {line}");
    }
}

/// `vos_converter_shadow_mismatches_total` of `operation`'s `collection`, from `/metrics`
/// (0 while it has no sample: a collection's counter appears with its first mismatch).
async fn shadow_mismatches(s: &Serve, operation: &str, collection: &str) -> u64 {
    let res = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let labels = [
        format!("operation=\"{operation}\""),
        format!("collection=\"{collection}\""),
    ];
    let samples: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("vos_converter_shadow_mismatches_total{"))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(samples.len() <= 1, "{operation} {collection}:\n{text}");
    samples.first().copied().unwrap_or(0)
}

/// The shadow counters of `svc`'s read: (KG collection, PC collection).
async fn shadow_counts(s: &Serve, svc: Svc) -> (u64, u64) {
    let [op, _, kg, _, pc, _] = svc.read_names();
    (
        shadow_mismatches(s, op, kg).await,
        shadow_mismatches(s, op, pc).await,
    )
}

/// A legacy answer of `svc`'s read (SOAP 1.1) with the person's identifier and the two
/// collections holding `kg` and `pc` (prefix `l:`), and nothing else.
fn legacy_read(svc: Svc, kg: &[Item], pc: &[Item]) -> String {
    let [op, wrapper, kg_coll, kg_item, pc_coll, pc_item] = svc.read_names();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body>\
         <l:{op}Response xmlns:l=\"{ns}\"><l:{wrapper}>\
         <l:PersonCivilRegistrationIdentifier>{CPR_101}</l:PersonCivilRegistrationIdentifier>\
         <l:{kg_coll}>{kgs}</l:{kg_coll}><l:{pc_coll}>{pcs}</l:{pc_coll}>\
         </l:{wrapper}></l:{op}Response></s:Body></s:Envelope>",
        ns = svc.ns(),
        kgs = xml_items(Some("l"), kg_item, kg),
        pcs = xml_items(Some("l"), pc_item, pc),
    )
}

/// The legacy stand-in answers `svc`'s read with `kg` and `pc`; Jobcenter 101 reads
/// CPR_101 once. Returns how much each shadow counter rose (KG, PC) and what the caller got.
async fn shadow_step(
    s: &Serve,
    stub: &LegacyStub,
    svc: Svc,
    kg: &[Item],
    pc: &[Item],
) -> ((u64, u64), ReadAnswer) {
    stub.set(answer(200, LEGACY_CT, &legacy_read(svc, kg, pc)));
    let before = shadow_counts(s, svc).await;
    let r = match svc {
        Svc::Pss => s.status(Soap::V11, JOBCENTER_101, CPR_101).await,
        Svc::Phs => {
            s.history(Soap::V11, JOBCENTER_101, CPR_101, None, None)
                .await
        }
        Svc::Prs => unreachable!("PRS has no reads"),
    };
    let a = r.read(Soap::V11, svc);
    let after = shadow_counts(s, svc).await;
    ((after.0 - before.0, after.1 - before.1), a)
}

/// The item with its first field (the identifier) moved to its end.
fn identifier_last(item: &Item) -> Item {
    let mut item = item.clone();
    item.rotate_left(1);
    item
}

/// The shadow compare of `svc`'s read, read off `/metrics`. A contact group and a person
/// category with two versions each (the contact group closed today by the next one, rule 5;
/// the person category updated) and a second contact group: all current, so PSS has three
/// items and PHS five. The legacy stand-in answers with no items (each REST item counts),
/// then with REST's own items (nothing counts), in reverse order, with the identifier last
/// in every item, and with one field of one item changed (one counts: in PHS the second
/// version of the two-version contact group).
async fn shadow_compare_counts_on_metrics(svc: Svc) {
    let service = match svc {
        Svc::Pss => "PersonStatusService",
        Svc::Phs => "PersonHistoryService",
        Svc::Prs => unreachable!("PRS has no reads"),
    };
    let stub = LegacyStub::start(answer(200, LEGACY_CT, &legacy_read(svc, &[], &[]))).await;
    let legacy_flag = format!("{service}={}", stub.url);
    let mut s = Serve::start(&[
        "--cutover",
        "2099-01-01",
        "--identity",
        "header",
        "--legacy-url",
        &legacy_flag,
        "--shadow-compare",
    ]);
    let tomorrow = xs_day(danish_today().checked_add(1.day()).unwrap());
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let (p_start, p_event) = ("2024-02-01T00:00:00+01:00", "2024-02-01T08:00:00+01:00");
    let jc = JOBCENTER_101;
    let k1 = s.create_cg(jc, CPR_101, 1, start, None, event).await;
    let k2 = s.create_cg(jc, CPR_101, 2, &tomorrow, None, event).await;
    let p = s.create_pc(jc, CPR_101, 1, p_start, None, p_event).await;
    s.update_pc(
        jc,
        CPR_101,
        p,
        2,
        p_start,
        Some("2030-12-31T00:00:00+01:00"),
        p_event,
    )
    .await;

    // No legacy items: every REST item is one mismatch. REST's items, as the caller got
    // them, are what the legacy stand-in answers from here on.
    let (counted, rest) = shadow_step(&s, &stub, svc, &[], &[]).await;
    let (kg, pc) = (rest.kg, rest.pc);
    let expected = match svc {
        Svc::Pss => (2, 1),
        _ => (3, 2),
    };
    assert_eq!(
        (kg.len() as u64, pc.len() as u64),
        expected,
        "{kg:?} {pc:?}"
    );
    assert_eq!(counted, expected, "{service}: no legacy items");
    let kg_ids = ids(&kg, "ContactGroupIdentifier");
    if svc == Svc::Phs {
        // Two versions of k1, then k2; two of p.
        assert_eq!(kg_ids, vec![k1, k1, k2]);
        assert_eq!(ids(&pc, "PersonCategoryIdentifier"), vec![p, p]);
        assert_ne!(kg[0], kg[1]);
    } else {
        assert_eq!(kg_ids, vec![k1, k2]);
    }

    // The same items: nothing (PHS: the two-version histories included).
    let (counted, got) = shadow_step(&s, &stub, svc, &kg, &pc).await;
    assert_eq!(counted, (0, 0), "{service}: identical answers");
    assert_eq!((got.kg, got.pc), (kg.clone(), pc.clone()), "REST's items");

    // In reverse order: nothing.
    let reversed = |items: &[Item]| items.iter().rev().cloned().collect::<Vec<Item>>();
    let (counted, _) = shadow_step(&s, &stub, svc, &reversed(&kg), &reversed(&pc)).await;
    assert_eq!(counted, (0, 0), "{service}: items in reverse order");

    // The identifier last in every legacy item: nothing.
    let moved = |items: &[Item]| items.iter().map(identifier_last).collect::<Vec<Item>>();
    let (kg_moved, pc_moved) = (moved(&kg), moved(&pc));
    assert_eq!(
        kg_moved[0].last().unwrap().0,
        "ContactGroupIdentifier",
        "{kg_moved:?}"
    );
    let (counted, _) = shadow_step(&s, &stub, svc, &kg_moved, &pc_moved).await;
    assert_eq!(counted, (0, 0), "{service}: the identifier not first");

    // One field of the second contact group item changed (PHS: k1's second version): one.
    let mut changed = kg_moved.clone();
    let ty = changed[1]
        .iter_mut()
        .find(|(k, _)| k == "ContactGroupTypeIdentifier")
        .unwrap();
    ty.1 = "8".to_owned();
    let (counted, got) = shadow_step(&s, &stub, svc, &changed, &pc_moved).await;
    assert_eq!(counted, (1, 0), "{service}: one changed field");
    assert_eq!(got.kg, kg, "the caller gets REST's items");

    let log = s.finish(&[CPR_101]);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(SHADOW_LINE)).collect();
    // The first step's two collections and the last step's one.
    assert_eq!(lines.len(), 3, "{log}");
    for line in lines {
        for id in [k1, k2, p] {
            assert!(!line.contains(&id.to_string()), "an identifier in {line}");
        }
    }
}

#[tokio::test]
async fn shadow_compare_metric_counts_person_status_by_identifier_not_order_or_position() {
    shadow_compare_counts_on_metrics(Svc::Pss).await;
}

#[tokio::test]
async fn shadow_compare_metric_counts_an_identical_two_version_history_as_equal() {
    shadow_compare_counts_on_metrics(Svc::Phs).await;
}

// ---------------------------------------------------------------------------------------
// The CPR change (issue 15): PSS and PHS by the new number show the moved data
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn after_a_cpr_change_the_reads_by_the_new_number_show_the_moved_data() {
    let mut s = Serve::start_with(&["--cutover", "2099-01-01"], "info");
    let jc = JOBCENTER_101;
    let new_cpr = "0505705555";
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let kg = s.create_cg(jc, CPR_101, 1, start, None, event).await;
    let pc = s.create_pc(jc, CPR_101, 1, start, None, event).await;
    let before = s
        .history(Soap::V11, jc, CPR_101, None, None)
        .await
        .read(Soap::V11, Svc::Phs);

    // CreateCprSkift at the embedded REST service, as STAR.
    let moved = s
        .client
        .post(format!("{}/personvisitering/v1/personnummerskift", s.rest))
        .header("X-Organisation-Type", STAR.0)
        .header("X-Organisation-Code", STAR.1)
        .json(&serde_json::json!({"gammeltCpr": CPR_101, "nytCpr": new_cpr}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);

    for v in [Soap::V11, Soap::V12] {
        let r = s.status(v, jc, new_cpr).await.read(v, Svc::Pss);
        assert_eq!(r.cpr, new_cpr);
        assert_eq!(ids(&r.kg, "ContactGroupIdentifier"), vec![kg]);
        assert_eq!(ids(&r.pc, "PersonCategoryIdentifier"), vec![pc]);
        let h = s
            .history(v, jc, new_cpr, None, None)
            .await
            .read(v, Svc::Phs);
        assert_eq!(
            (h.kg.clone(), h.pc.clone()),
            (before.kg.clone(), before.pc.clone())
        );
        // The old number is nobody's now: the jobcentre is refused (rule 7), STAR finds
        // nothing there.
        s.status(v, jc, CPR_101)
            .await
            .expect_fault(v, Side::Client, 900203);
        let star = s.history(v, STAR, CPR_101, None, None).await;
        assert!(!star.text.contains(&kg.to_string()), "{}", star.text);
    }
    s.finish(&[new_cpr]);
}
