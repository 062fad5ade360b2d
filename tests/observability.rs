#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What an operator sees of `vos-converter serve`, run as a child process and called over
//! real sockets: the Prometheus metrics and the migration usage (`/metrics`,
//! `/api/migration`) after a known sequence of calls, `/healthz` and `/readyz`,
//! `X-Request-Id` and the W3C trace that goes upstream (checked against a fake REST
//! service that records what it is sent), usage that survives a graceful restart, JSON log
//! lines, and the CPR redaction guarantee at TRACE.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::child::{CPR_101, CPR_101_ENROLLED, CPR_147, CPR_751, SEED_CPRS, Serve, closed_port};
use common::soap::Service::{self, Phs, Prs, Pss};
use common::soap::Soap::{self, V11, V12};
use common::soap::{
    DFDG, PHS, PRS, PSS, Reply, create_contact_group, create_person_category,
    create_person_category_and_interview, envelope_with, history_request, metadata_user,
    status_request as person_status, update_contact_group,
};
use common::{copenhagen, danish_today, date, xs_day};

const REST_BASE: &str = "/personvisitering/v1";

/// The days `/api/migration` shows (observe::usage::SHOWN_DAYS).
const SHOWN_DAYS: usize = 14;

// ---------------------------------------------------------------------------------------
// The child process (tests/common/child.rs), and what an operator reads of it
// ---------------------------------------------------------------------------------------

impl Serve {
    async fn call(&self, service: Service, v: Soap, op: &str, envelope: &str) -> Reply {
        self.call_traced(service, v, op, envelope, None).await
    }

    /// A SOAP call of `op` with an envelope of these header blocks and this body content.
    async fn soap(&self, service: Service, v: Soap, op: &str, header: &str, body: &str) -> Reply {
        self.call(service, v, op, &envelope(v, header, body)).await
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// `/metrics`: the text and its samples.
    async fn metrics(&self) -> (String, Vec<Sample>) {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            ct.starts_with("application/openmetrics-text"),
            "content type {ct}"
        );
        let text = res.text().await.unwrap();
        assert!(
            text.trim_end().ends_with("# EOF"),
            "OpenMetrics text ends with # EOF:\n{text}"
        );
        let samples = parse_metrics(&text);
        (text, samples)
    }

    /// `/api/migration`: the text and its JSON.
    async fn migration(&self) -> (String, Value) {
        let (status, text) = self.get("/api/migration").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (text, json)
    }
}

// ---------------------------------------------------------------------------------------
// SOAP requests and answers (tests/common/soap.rs)
// ---------------------------------------------------------------------------------------

/// An envelope of version `v` with these header blocks and this body content; the
/// prefixes `prs`, `pss`, `phs` and `dfdg` are declared.
fn envelope(v: Soap, header: &str, body: &str) -> String {
    envelope_with(
        v,
        &[("dfdg", DFDG), ("prs", PRS), ("pss", PSS), ("phs", PHS)],
        header,
        body,
    )
}

fn metadata(org_type: &str, org_code: &str) -> String {
    metadata_user(org_type, org_code, "sb-observability")
}

/// The retired operation: fault 900510 without any REST call.
fn retired(cpr: &str) -> String {
    create_person_category_and_interview(
        cpr,
        2,
        "2024-07-01T00:00:00+02:00",
        "2024-07-01T13:45:00+02:00",
        "2024-07-08T10:00:00+02:00",
    )
}

/// GetPersonHistory about `cpr`, with an optional period.
fn person_history(cpr: &str, period: Option<(&str, &str)>) -> String {
    history_request(cpr, period.map(|p| p.0), period.map(|p| p.1))
}

const START_1: &str = "2024-01-01T00:00:00+01:00";
const EVENT_1: &str = "2024-01-01T10:00:00+01:00";
const START_2: &str = "2024-06-01T00:00:00+02:00";
const EVENT_2: &str = "2024-06-01T10:00:00+02:00";

impl Reply {
    /// The first dfdg:ErrorCode of a fault.
    fn error_code(&self) -> Option<u32> {
        let i = self.text.find("ErrorCode>")?;
        let rest = &self.text[i + "ErrorCode>".len()..];
        rest[..rest.find('<')?].trim().parse().ok()
    }

    fn expect_ok(&self, what: &str) -> &Reply {
        assert!(
            self.status == StatusCode::OK && self.error_code().is_none(),
            "{what}: expected a response, got {}:\n{}",
            self.status,
            self.text
        );
        self
    }

    fn expect_fault(&self, code: u32, what: &str) -> &Reply {
        assert_eq!(
            self.error_code(),
            Some(code),
            "{what}: expected fault {code}, got {}:\n{}",
            self.status,
            self.text
        );
        self
    }

    /// The text of the first element named `local` (any prefix).
    fn element(&self, local: &str) -> String {
        let open = format!("{local}>");
        let i = self
            .text
            .find(&open)
            .unwrap_or_else(|| panic!("no {local} in:\n{}", self.text));
        let rest = &self.text[i + open.len()..];
        rest[..rest.find('<').unwrap()].trim().to_owned()
    }

    /// The `X-Request-Id`, asserted to be a W3C trace id.
    fn request_id(&self, what: &str) -> String {
        let id = self
            .request_id
            .clone()
            .unwrap_or_else(|| panic!("{what}: no X-Request-Id ({}):\n{}", self.status, self.text));
        assert!(
            is_trace_id(&id),
            "{what}: X-Request-Id {id:?} is not 32 lower-case hex digits (not all zero)"
        );
        id
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

fn is_trace_id(s: &str) -> bool {
    is_hex(s, 32)
}

/// A W3C `traceparent` split into (trace id, span id), after checking its form.
fn traceparent_parts(t: &str) -> (String, String) {
    let parts: Vec<&str> = t.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {t:?}");
    assert_eq!(parts[0], "00", "traceparent version: {t:?}");
    assert!(is_hex(parts[1], 32), "traceparent trace id: {t:?}");
    assert!(is_hex(parts[2], 16), "traceparent span id: {t:?}");
    assert_eq!(parts[3].len(), 2, "traceparent flags: {t:?}");
    (parts[1].to_owned(), parts[2].to_owned())
}

// ---------------------------------------------------------------------------------------
// Danish dates
// ---------------------------------------------------------------------------------------

/// Danish midnight starting `d`, the instant `--cutover <d>` means.
fn danish_midnight(d: Date) -> Timestamp {
    d.to_zoned(copenhagen()).unwrap().timestamp()
}

/// Waits, if the Danish date changes within a minute, until it has changed: the tests
/// that count today's calls need one "today" from their first call to their last.
fn clear_of_midnight() {
    let now = Timestamp::now();
    let midnight = danish_midnight(now.to_zoned(copenhagen()).date().tomorrow().unwrap());
    let left = midnight.as_millisecond() - now.as_millisecond();
    if left < 60_000 {
        std::thread::sleep(Duration::from_millis(left.unsigned_abs() + 1_000));
    }
}

fn days_between(from: Date, to: Date) -> i64 {
    from.until(to).unwrap().get_days().into()
}

// ---------------------------------------------------------------------------------------
// OpenMetrics text
// ---------------------------------------------------------------------------------------

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The samples of an OpenMetrics exposition: `name{k="v",...} value` lines (comments and
/// `# EOF` skipped, label values unescaped).
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => panic!("a sample without a value: {line:?}"),
        };
        let mut map = Labels::new();
        let rest = if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    break after;
                }
                let eq = r.find('=').unwrap_or_else(|| panic!("label in {line:?}"));
                let key = r[..eq].trim_start_matches(',').trim().to_owned();
                let mut chars = r[eq + 1..].char_indices();
                assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line:?}");
                let mut value = String::new();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|c| c.1) {
                            Some('n') => value.push('\n'),
                            Some(o) => value.push(o),
                            None => break,
                        },
                        '"' => {
                            end = Some(eq + 1 + i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.unwrap_or_else(|| panic!("unterminated label in {line:?}"));
                map.insert(key, value);
                r = r[end..].trim_start_matches(',');
            }
        } else {
            rest
        };
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value {v:?} in {line:?}")),
        };
        out.push(Sample {
            name: name.to_owned(),
            labels: map,
            value,
        });
    }
    out
}

/// Every sample named `name`, by its labels.
fn family(samples: &[Sample], name: &str) -> BTreeMap<Labels, f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

/// The samples named `name` as (first label's value → value), for single-label families.
fn by_one(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            assert_eq!(s.labels.len(), 1, "{s:?}");
            (s.labels[label].clone(), s.value)
        })
        .collect()
}

fn op_labels(service: Service, operation: &str) -> Labels {
    labels(&[("service", service.name()), ("operation", operation)])
}

// ---------------------------------------------------------------------------------------
// /api/migration
// ---------------------------------------------------------------------------------------

struct ExpectedOrg<'a> {
    org_type: &'a str,
    code: &'a str,
    name: &'a str,
    calls: u64,
    faults: &'a [(u32, u64)],
    cutover: Date,
    /// (service, operation, calls today)
    operations: &'a [(Service, &'a str, u64)],
}

fn find_org<'m>(m: &'m Value, org_type: &str, code: &str) -> &'m Value {
    m["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["organisationType"] == org_type && o["organisationCode"] == code)
        .unwrap_or_else(|| panic!("no organisation {org_type}:{code} in {m:#}"))
}

/// Checks one organisation of `/api/migration` against what was called today, between
/// `from` and `to`.
fn check_org(m: &Value, e: &ExpectedOrg<'_>, today: Date, from: Timestamp, to: Timestamp) {
    let o = find_org(m, e.org_type, e.code);
    let who = format!("{}:{}", e.org_type, e.code);
    assert_eq!(o["organisationTypeName"], e.name, "{who}: {o:#}");
    assert_eq!(o["calls"], e.calls, "{who} calls: {o:#}");
    let faults: u64 = e.faults.iter().map(|f| f.1).sum();
    assert_eq!(o["faults"], faults, "{who} faults: {o:#}");
    let rate = o["faultRate"].as_f64().unwrap();
    let want = if e.calls == 0 {
        0.0
    } else {
        faults as f64 / e.calls as f64
    };
    assert!((rate - want).abs() < 1e-9, "{who} faultRate {rate}: {o:#}");
    let by_code: Vec<Value> = e
        .faults
        .iter()
        .map(|(code, count)| json!({ "code": code, "count": count }))
        .collect();
    assert_eq!(o["faultsByCode"], Value::Array(by_code), "{who}: {o:#}");
    let cutover: Timestamp = o["cutover"].as_str().unwrap().parse().unwrap();
    assert_eq!(cutover, danish_midnight(e.cutover), "{who} cutover: {o:#}");
    let past = Timestamp::now() >= cutover;
    assert_eq!(o["pastCutover"], past, "{who} pastCutover: {o:#}");
    assert_eq!(
        o["daysToCutover"],
        days_between(today, e.cutover),
        "{who} daysToCutover (today {today}, cutover {}): {o:#}",
        e.cutover
    );
    let ops = o["operations"].as_array().unwrap();
    let got: Vec<(String, String, u64)> = ops
        .iter()
        .map(|op| {
            (
                op["service"].as_str().unwrap().to_owned(),
                op["operation"].as_str().unwrap().to_owned(),
                op["total"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> = e
        .operations
        .iter()
        .map(|(s, op, n)| (s.name().to_owned(), (*op).to_owned(), *n))
        .collect();
    assert_eq!(got, want, "{who} operations: {o:#}");
    for op in ops {
        let per_day: Vec<u64> = op["callsPerDay"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        let mut want = vec![0; SHOWN_DAYS];
        want[SHOWN_DAYS - 1] = op["total"].as_u64().unwrap();
        assert_eq!(per_day, want, "{who}: every call was today: {op:#}");
        let last: Timestamp = op["lastSeen"]
            .as_str()
            .unwrap_or_else(|| panic!("{who}: no lastSeen: {op:#}"))
            .parse()
            .unwrap();
        assert!(
            from <= last && last <= to,
            "{who}: lastSeen {last} not within the test ({from} .. {to}): {op:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// A fake REST service that records what it is sent
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    traceparent: Option<String>,
}

struct Fake {
    base: String,
    seen: web::Data<Mutex<Vec<Recorded>>>,
    handle: Option<ServerHandle>,
}

fn problem(status: u16, fejlkode: u32, fejltekst: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/problem+json")
        .body(
            json!({
                "type": "about:blank",
                "title": fejltekst,
                "status": status,
                "fejlkode": fejlkode,
                "fejltekst": fejltekst,
            })
            .to_string(),
        )
}

/// Answers the REST calls these tests make: the contact group code list, a create (422
/// 100028 when it has an end date), the two status reads; 404 problem for anything else
/// (also `/`, which the readiness probe reads: below 500 means "answers").
async fn fake_rest(
    req: HttpRequest,
    body: web::Bytes,
    seen: web::Data<Mutex<Vec<Recorded>>>,
) -> HttpResponse {
    seen.lock().unwrap().push(Recorded {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        traceparent: req
            .headers()
            .get("traceparent")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    });
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = req.path().strip_prefix(REST_BASE).unwrap_or("");
    let ok = |status: u16, v: Value| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/json")
            .body(v.to_string())
    };
    match (req.method().as_str(), path) {
        ("GET", "/kodelister/kontaktgruppetyper") => ok(
            200,
            json!({ "koder": [
                { "kode": 1, "navn": "Dagpengemodtager", "gyldigFra": "1990-01-01", "gyldigTil": null, "navngivetIKilden": true },
                { "kode": 2, "navn": "Kontanthjælpsmodtager", "gyldigFra": "1990-01-01", "gyldigTil": null, "navngivetIKilden": true },
            ]}),
        ),
        // A create: with an id derived from the MessageID or the content (PUT .../{id}).
        ("PUT", p) if p.starts_with("/kontaktgrupper/") && !body["slutdato"].is_null() => {
            problem(422, 100028, "Slutdato kan ikke være fremtidig")
        }
        ("PUT", p) if p.starts_with("/kontaktgrupper/") => ok(
            201,
            json!({
                "id": p.trim_start_matches("/kontaktgrupper/"),
                "kontaktgruppetype": body["kontaktgruppetype"],
                "startdato": body["startdato"],
                "slutdato": null,
                "haendelsestidspunkt": body["haendelsestidspunkt"],
                "version": 1,
            }),
        ),
        ("GET", "/kontaktgrupper") => ok(200, json!({ "kontaktgrupper": [] })),
        ("GET", "/personkategorier") => ok(200, json!({ "personkategorier": [] })),
        _ => problem(404, 900401, "Ressourcen findes ikke"),
    }
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = web::Data::new(Mutex::new(Vec::new()));
        let data = seen.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(fake_rest))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            })
        });
        let handle = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Fake {
            base,
            seen,
            handle: Some(handle),
        }
    }

    /// The calls recorded since the last `take`.
    fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// Stops the server now (open connections are dropped) and waits until it has.
    fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(h.stop(false));
            })
            .join();
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// 1. /metrics and /api/migration after a known sequence of calls
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_and_migration_usage_count_every_call_by_caller_operation_and_outcome() {
    clear_of_midnight();
    let from = Timestamp::now();
    let today = danish_today();
    let default_cutover = today.checked_add(30.days()).unwrap();
    let akasse_cutover = today.checked_add(10.days()).unwrap();
    let moved_early = date("2024-01-01");
    let (cut, ak_cut) = (
        default_cutover.to_string(),
        format!("2:12={akasse_cutover}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start_in(
        dir.path(),
        &[
            "--cutover",
            &cut,
            "--cutover-override",
            &ak_cut,
            // An organisation that has moved already and never calls.
            "--cutover-override",
            "4:87654321=2024-01-01",
        ],
        "info",
    );

    // Jobcenter 101 (SOAP 1.1): two contact groups for its citizen. The code list is read
    // for the first and cached for the second.
    let jc = metadata("1", "101");
    s.soap(
        Prs,
        V11,
        "CreateContactGroup",
        &jc,
        &create_contact_group(CPR_101, "1", START_1, None, EVENT_1),
    )
    .await
    .expect_ok("first CreateContactGroup");
    let id = s
        .soap(
            Prs,
            V11,
            "CreateContactGroup",
            &jc,
            &create_contact_group(CPR_101, "2", START_2, None, EVENT_2),
        )
        .await
        .expect_ok("second CreateContactGroup")
        .element("ContactGroupIdentifier");
    // ... and (SOAP 1.2) an end date after today: GetKontaktgruppe (rule 4), then REST's
    // UpdateKontaktgruppe refuses with 100028.
    let tomorrow = xs_day(today.checked_add(1.day()).unwrap());
    s.soap(
        Prs,
        V12,
        "UpdateContactGroup",
        &jc,
        &update_contact_group(CPR_101, &id, "2", START_2, Some(&tomorrow), EVENT_2),
    )
    .await
    .expect_fault(100028, "UpdateContactGroup with a future end date");

    // A-kasse 12 reads its member three times (twice SOAP 1.1, once 1.2): GetKontaktgrupper
    // and GetPersonkategorier each time (the second refused with 900204: an empty
    // collection, not a fault).
    for v in [V11, V11, V12] {
        s.soap(
            Pss,
            v,
            "GetVariablePersonStatus",
            &metadata("2", "12"),
            &person_status(CPR_101),
        )
        .await
        .expect_ok("GetVariablePersonStatus by A-kasse 12");
    }

    // Kommune 147: its own citizen's history, then another municipality's citizen (900203).
    let kommune = metadata("3", "147");
    s.soap(
        Phs,
        V11,
        "GetPersonHistory",
        &kommune,
        &person_history(CPR_147, Some(("2020-01-01", "2030-12-31"))),
    )
    .await
    .expect_ok("GetPersonHistory by Kommune 147");
    s.soap(
        Pss,
        V11,
        "GetVariablePersonStatus",
        &kommune,
        &person_status(CPR_101),
    )
    .await
    .expect_fault(900203, "Kommune 147 reads a citizen of 101");

    // Callers whose organisation cannot be a label: a code longer than 16 characters, codes
    // with a space or a non-ASCII letter, an unknown organisation type. The retired operation
    // answers 900510 without calling REST.
    let weird = [
        ("1", "12345678901234567"),
        ("1", "Jobcenter Aarhus"),
        ("1", "København"),
        ("77", "101"),
    ];
    for (ty, code) in weird {
        s.soap(
            Prs,
            V11,
            "CreatePersonCategoryAndInterview",
            &metadata(ty, code),
            &retired(CPR_101),
        )
        .await
        .expect_fault(900510, "the retired operation");
    }
    let to = Timestamp::now();

    // ---- /metrics
    let (text, samples) = s.metrics().await;
    let call = |service: Service, op: &str, v: Soap, ty: &str, code: &str, fault: Option<u32>| {
        let fault_code = fault.map(|f| f.to_string()).unwrap_or_default();
        labels(&[
            ("service", service.name()),
            ("operation", op),
            ("soap_version", v.label()),
            ("organisation_type", ty),
            ("organisation_code", code),
            ("outcome", if fault.is_some() { "fault" } else { "ok" }),
            ("fault_code", &fault_code),
        ])
    };
    let expected_calls: BTreeMap<Labels, f64> = [
        (call(Prs, "CreateContactGroup", V11, "1", "101", None), 2.0),
        (
            call(Prs, "UpdateContactGroup", V12, "1", "101", Some(100028)),
            1.0,
        ),
        (
            call(Pss, "GetVariablePersonStatus", V11, "2", "12", None),
            2.0,
        ),
        (
            call(Pss, "GetVariablePersonStatus", V12, "2", "12", None),
            1.0,
        ),
        (call(Phs, "GetPersonHistory", V11, "3", "147", None), 1.0),
        (
            call(
                Pss,
                "GetVariablePersonStatus",
                V11,
                "3",
                "147",
                Some(900203),
            ),
            1.0,
        ),
        (
            call(
                Prs,
                "CreatePersonCategoryAndInterview",
                V11,
                "other",
                "other",
                Some(900510),
            ),
            4.0,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        family(&samples, "vos_converter_soap_calls_total"),
        expected_calls,
        "vos_converter_soap_calls_total:\n{text}"
    );

    // One observation per SOAP call in both per-operation histograms.
    let per_op: BTreeMap<Labels, f64> = [
        (op_labels(Prs, "CreateContactGroup"), 2.0),
        (op_labels(Prs, "UpdateContactGroup"), 1.0),
        (op_labels(Pss, "GetVariablePersonStatus"), 4.0),
        (op_labels(Phs, "GetPersonHistory"), 1.0),
        (op_labels(Prs, "CreatePersonCategoryAndInterview"), 4.0),
    ]
    .into_iter()
    .collect();
    for h in [
        "vos_converter_soap_call_seconds",
        "vos_converter_converter_own_seconds",
    ] {
        assert_eq!(
            family(&samples, &format!("{h}_count")),
            per_op,
            "{h}_count:\n{text}"
        );
        for (l, n) in &per_op {
            let mut inf = l.clone();
            inf.insert("le".into(), "+Inf".into());
            assert_eq!(
                family(&samples, &format!("{h}_bucket")).get(&inf),
                Some(n),
                "{h}_bucket{{le=\"+Inf\"}} of {l:?}:\n{text}"
            );
        }
    }
    // The converter's own time is the total without the upstream wait: less for every
    // operation that called REST, all of it for the one that did not.
    let total_sum = family(&samples, "vos_converter_soap_call_seconds_sum");
    let own_sum = family(&samples, "vos_converter_converter_own_seconds_sum");
    for l in per_op.keys() {
        let (total, own) = (total_sum[l], own_sum[l]);
        assert!(total > 0.0, "{l:?}: total {total}");
        if l["operation"] == "CreatePersonCategoryAndInterview" {
            assert!(
                (own - total).abs() < 1e-9,
                "{l:?}: own {own}, total {total}"
            );
        } else {
            assert!(own < total, "{l:?}: own {own} not below total {total}");
        }
    }

    // One observation per REST call: the code list once (cached), the rule-4 read, and two
    // concurrent reads per PSS/PHS call (the refused ones included).
    let upstream: BTreeMap<String, f64> = [
        ("GetKontaktgruppetyper", 1.0),
        ("CreateKontaktgruppeMedIdentifier", 2.0),
        ("GetKontaktgruppe", 1.0),
        ("UpdateKontaktgruppe", 1.0),
        ("GetKontaktgrupper", 4.0),
        ("GetPersonkategorier", 4.0),
        ("GetKontaktgruppeHistorik", 1.0),
        ("GetPersonkategoriHistorik", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        by_one(
            &samples,
            "vos_converter_upstream_seconds_count",
            "operation_id"
        ),
        upstream,
        "vos_converter_upstream_seconds_count:\n{text}"
    );
    // REST's refusals are answers, not upstream errors.
    let errors: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "vos_converter_upstream_errors_total" && s.value != 0.0)
        .collect();
    assert!(errors.is_empty(), "upstream errors: {errors:?}\n{text}");
    // The cutover state of every organisation with its own cutover, and of every caller.
    let past: BTreeMap<Labels, f64> = [
        ("1", "101", 0.0),
        ("2", "12", 0.0),
        ("3", "147", 0.0),
        ("4", "87654321", 1.0),
    ]
    .into_iter()
    .map(|(t, c, v)| {
        (
            labels(&[("organisation_type", t), ("organisation_code", c)]),
            v,
        )
    })
    .collect();
    assert_eq!(
        family(&samples, "vos_converter_past_cutover"),
        past,
        "vos_converter_past_cutover:\n{text}"
    );
    // Type 77 with a plain code, the others with a known type and an unusable code.
    for (ty, code) in weird {
        let label = if ty == "77" {
            format!("organisation_type=\"{ty}\"")
        } else {
            format!("organisation_code=\"{code}\"")
        };
        assert!(!text.contains(&label), "{label} is a label:\n{text}");
    }

    // ---- /api/migration
    let (mtext, m) = s.migration().await;
    let days: Vec<&str> = m["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(days.len(), SHOWN_DAYS, "{m:#}");
    assert_eq!(days[SHOWN_DAYS - 1], today.to_string(), "{m:#}");
    assert_eq!(
        days[0],
        today.checked_sub(13.days()).unwrap().to_string(),
        "{m:#}"
    );
    let default_at: Timestamp = m["defaultCutover"].as_str().unwrap().parse().unwrap();
    assert_eq!(default_at, danish_midnight(default_cutover), "{m:#}");
    assert_eq!(m["overhead"]["samples"], 12, "one sample per call: {m:#}");
    assert!(
        m["overhead"]["p50Micros"].is_u64() && m["overhead"]["p99Micros"].is_u64(),
        "{m:#}"
    );
    // Most calls first; equal counts by type and code. The organisation with its own
    // cutover and no calls is listed too.
    let order: Vec<(String, String, u64)> = m["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["organisationType"].as_str().unwrap().to_owned(),
                o["organisationCode"].as_str().unwrap().to_owned(),
                o["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> = [
        ("other", "other", 4),
        ("1", "101", 3),
        ("2", "12", 3),
        ("3", "147", 2),
        ("4", "87654321", 0),
    ]
    .into_iter()
    .map(|(t, c, n)| (t.to_owned(), c.to_owned(), n))
    .collect();
    assert_eq!(order, want, "{m:#}");
    let expected = [
        ExpectedOrg {
            org_type: "1",
            code: "101",
            name: "Jobcenter",
            calls: 3,
            faults: &[(100028, 1)],
            cutover: default_cutover,
            operations: &[
                (Prs, "CreateContactGroup", 2),
                (Prs, "UpdateContactGroup", 1),
            ],
        },
        ExpectedOrg {
            org_type: "2",
            code: "12",
            name: "A-kasse",
            calls: 3,
            faults: &[],
            cutover: akasse_cutover,
            operations: &[(Pss, "GetVariablePersonStatus", 3)],
        },
        ExpectedOrg {
            org_type: "3",
            code: "147",
            name: "Kommune",
            calls: 2,
            faults: &[(900203, 1)],
            cutover: default_cutover,
            operations: &[
                (Phs, "GetPersonHistory", 1),
                (Pss, "GetVariablePersonStatus", 1),
            ],
        },
        ExpectedOrg {
            org_type: "other",
            code: "other",
            name: "ukendt",
            calls: 4,
            faults: &[(900510, 4)],
            cutover: default_cutover,
            operations: &[(Prs, "CreatePersonCategoryAndInterview", 4)],
        },
        ExpectedOrg {
            org_type: "4",
            code: "87654321",
            name: "Anden aktør",
            calls: 0,
            faults: &[],
            cutover: moved_early,
            operations: &[],
        },
    ];
    for e in &expected {
        check_org(&m, e, today, from, to);
    }
    let early = find_org(&m, "4", "87654321");
    assert_eq!(early["pastCutover"], true, "{early:#}");
    assert!(early["daysToCutover"].as_i64().unwrap() < 0, "{early:#}");
    for (ty, code) in weird {
        let field = if ty == "77" {
            format!("\"organisationType\":\"{ty}\"")
        } else {
            format!("\"organisationCode\":\"{code}\"")
        };
        assert!(!mtext.contains(&field), "{field} in /api/migration:\n{m:#}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. /healthz and /readyz
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_answers_and_readyz_follows_the_rest_service() {
    // The embedded backend: alive and ready.
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start_in(dir.path(), &[], "info");
    let (status, body) = s.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "/healthz: {body}");
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "/readyz, embedded backend: {body}");
    drop(s);

    // A REST URL nobody listens on: alive, not ready.
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("http://127.0.0.1:{}", closed_port());
    let s = Serve::start_in(
        dir.path(),
        &["--rest-url", &nobody, "--identity", "header"],
        "info",
    );
    let (status, body) = s.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "/healthz, REST down: {body}");
    let (status, body) = s.get("/readyz").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz with --rest-url {nobody}: {body}"
    );
    drop(s);

    // A REST service that goes away: ready while it answers, then not.
    let mut fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start_in(
        dir.path(),
        &["--rest-url", &fake.base, "--identity", "header"],
        "info",
    );
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "/readyz, REST answers 404: {body}");
    fake.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = s.get("/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} 5 s after REST stopped: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = s.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 3. X-Request-Id and traceparent
// ---------------------------------------------------------------------------------------

/// Asserts every recorded REST call carries a traceparent of `trace`, each with its own
/// span id (none the caller's `parent`); returns the (method, path) of each, in the order
/// they arrived.
fn same_trace(seen: &[Recorded], trace: &str, parent: Option<&str>) -> Vec<(String, String)> {
    let mut spans = Vec::new();
    for r in seen {
        let t = r
            .traceparent
            .as_deref()
            .unwrap_or_else(|| panic!("REST call without traceparent: {r:?}"));
        let (id, span) = traceparent_parts(t);
        assert_eq!(id, trace, "REST call in another trace: {r:?}");
        assert_ne!(
            Some(span.as_str()),
            parent,
            "the caller's span reused: {r:?}"
        );
        assert!(!spans.contains(&span), "span id used twice: {seen:?}");
        spans.push(span);
    }
    // A create's path ends in the id derived for it: `{id}` here.
    seen.iter()
        .map(|r| {
            let path = match r.path.rsplit_once('/') {
                Some((head, id)) if uuid::Uuid::parse_str(id).is_ok() => format!("{head}/{{id}}"),
                _ => r.path.clone(),
            };
            (r.method.clone(), path)
        })
        .collect()
}

fn rest(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), format!("{REST_BASE}{path}"))
}

#[tokio::test]
async fn every_soap_answer_has_a_request_id_that_is_the_trace_sent_upstream() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start_in(
        dir.path(),
        &[
            "--rest-url",
            &fake.base,
            "--identity",
            "header",
            "--cutover",
            "2099-01-01",
            "--max-body-bytes",
            "4096",
        ],
        "info",
    );
    let jc = metadata("1", "101");
    let create = envelope(
        V11,
        &jc,
        &create_contact_group(CPR_101, "1", START_1, None, EVENT_1),
    );

    // The caller's trace is continued: the answer's X-Request-Id is its trace id, and both
    // REST calls (the code list, then the create) are in it, each with a span of its own.
    let (t1, p1) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = s
        .call_traced(
            Prs,
            V11,
            "CreateContactGroup",
            &create,
            Some(&format!("00-{t1}-{p1}-01")),
        )
        .await;
    r.expect_ok("CreateContactGroup");
    assert_eq!(r.request_id("CreateContactGroup"), t1);
    assert_eq!(
        same_trace(&fake.take(), t1, Some(p1)),
        vec![
            rest("GET", "/kodelister/kontaktgruppetyper"),
            rest("PUT", "/kontaktgrupper/{id}"),
        ]
    );

    // A fault from REST (SOAP 1.2): the code list is cached, the create is in the trace.
    let (t2, p2) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let body = create_contact_group(CPR_101, "1", START_1, Some("2099-01-01"), EVENT_1);
    let r = s
        .call_traced(
            Prs,
            V12,
            "CreateContactGroup",
            &envelope(V12, &jc, &body),
            Some(&format!("00-{t2}-{p2}-01")),
        )
        .await;
    r.expect_fault(100028, "CreateContactGroup refused by REST");
    assert_eq!(r.request_id("REST's fault"), t2);
    assert_eq!(
        same_trace(&fake.take(), t2, Some(p2)),
        vec![rest("PUT", "/kontaktgrupper/{id}")]
    );

    // Without a traceparent the converter starts a trace; REST sees that one.
    let r = s.call(Prs, V11, "CreateContactGroup", &create).await;
    r.expect_ok("CreateContactGroup without traceparent");
    let fresh = r.request_id("CreateContactGroup without traceparent");
    assert_eq!(
        same_trace(&fake.take(), &fresh, None),
        vec![rest("PUT", "/kontaktgrupper/{id}")]
    );
    let again = s
        .call(Prs, V11, "CreateContactGroup", &create)
        .await
        .request_id("another call without traceparent");
    fake.take();
    assert_ne!(fresh, again, "two calls got the same request id");

    // A read: both concurrent REST calls in the caller's trace.
    let (t3, p3) = ("a3ce929d0e0e47364bf92f3577b34da6", "0123456789abcdef");
    let r = s
        .call_traced(
            Pss,
            V12,
            "GetVariablePersonStatus",
            &envelope(V12, &jc, &person_status(CPR_101)),
            Some(&format!("00-{t3}-{p3}-01")),
        )
        .await;
    r.expect_ok("GetVariablePersonStatus");
    assert_eq!(r.request_id("GetVariablePersonStatus"), t3);
    // Concurrent: in either order.
    let mut reads = same_trace(&fake.take(), t3, Some(p3));
    reads.sort();
    assert_eq!(
        reads,
        vec![
            rest("GET", "/kontaktgrupper"),
            rest("GET", "/personkategorier")
        ]
    );

    // A traceparent that is not valid W3C Trace Context (version 00: lower-case hex, trace
    // and parent id not all zero, version ff forbidden) is ignored: a new trace starts.
    let mut continued = Vec::new();
    for (bad, why) in [
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "all-zero trace id",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "31-digit trace id",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "15-digit parent id",
        ),
        ("garbage", "not a traceparent"),
        ("", "empty"),
        (
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "a sign in the trace id",
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "upper-case trace id",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-zzzzzzzzzzzzzzzz-01",
            "parent id not hex",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "all-zero parent id",
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "version ff",
        ),
    ] {
        let r = s
            .call_traced(
                Pss,
                V11,
                "GetVariablePersonStatus",
                &envelope(V11, &jc, &person_status(CPR_101)),
                Some(bad),
            )
            .await;
        r.expect_ok("GetVariablePersonStatus with a bad traceparent");
        let id = r.request_id(&format!("traceparent {bad:?}"));
        same_trace(&fake.take(), &id, None);
        if id.contains("f92f3577b34da6a3ce929d0e0e473") {
            continued.push(format!(
                "traceparent {bad:?} ({why}) was continued: X-Request-Id {id}"
            ));
        }
    }

    // Faults the converter makes itself, before or without REST: each has a request id
    // (the caller's trace where one was sent), and REST saw nothing.
    let t4 = "11112222333344445555666677778888";
    let tp4 = format!("00-{t4}-1111222233334444-01");
    let mut answers: Vec<(&str, Reply)> = Vec::new();
    let cut = create.replace("</env:Body>", "");
    answers.push((
        "malformed XML (900501)",
        s.call_traced(Prs, V11, "CreateContactGroup", &cut, Some(&tp4))
            .await,
    ));
    answers.push((
        "retired operation (900510)",
        s.soap(
            Prs,
            V12,
            "CreatePersonCategoryAndInterview",
            &jc,
            &retired(CPR_101),
        )
        .await,
    ));
    answers.push((
        "no RequestUserMetadata (900507)",
        s.soap(
            Prs,
            V11,
            "CreateContactGroup",
            "",
            &create_contact_group(CPR_101, "1", START_1, None, EVENT_1),
        )
        .await,
    ));
    answers.push((
        "a date that is not a date (900508)",
        s.soap(
            Prs,
            V11,
            "CreateContactGroup",
            &jc,
            &create_contact_group(CPR_101, "1", "yesterday", None, EVENT_1),
        )
        .await,
    ));
    answers.push((
        "an unknown type code (900103, from the cached code list)",
        s.soap(
            Prs,
            V11,
            "CreateContactGroup",
            &jc,
            &create_contact_group(CPR_101, "99", START_1, None, EVENT_1),
        )
        .await,
    ));
    answers.push((
        "an unknown operation (900504)",
        s.call(Prs, V11, "NoSuchOperation", &create).await,
    ));
    answers.push((
        "a content type that is not SOAP (415, 900505)",
        s.send(Prs, "text/plain", None, create.clone().into_bytes(), None)
            .await,
    ));
    let mut big = create.clone();
    big.insert_str(
        big.find("<env:Body>").unwrap(),
        &format!("<!--{}-->", "x".repeat(8000)),
    );
    answers.push((
        "a body over --max-body-bytes (413, 900503)",
        s.call(Prs, V11, "CreateContactGroup", &big).await,
    ));

    let expected_codes = [
        900501, 900510, 900507, 900508, 900103, 900504, 900505, 900503,
    ];
    let mut missing = Vec::new();
    for ((what, r), code) in answers.iter().zip(expected_codes) {
        r.expect_fault(code, what);
        match &r.request_id {
            Some(id) if is_trace_id(id) => {}
            other => missing.push(format!(
                "{what}: HTTP {} with X-Request-Id {other:?}",
                r.status
            )),
        }
    }
    assert_eq!(
        answers[0].1.request_id.as_deref(),
        Some(t4),
        "a fault before decoding keeps the caller's trace"
    );
    assert_eq!(
        answers[6].1.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        answers[6].1.text
    );
    assert_eq!(
        answers[7].1.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answers[7].1.text
    );
    let seen = fake.take();
    assert!(seen.is_empty(), "REST was called: {seen:?}");
    assert!(
        missing.is_empty() && continued.is_empty(),
        "SOAP answers without a valid X-Request-Id:\n{}\n\
         invalid traceparents taken as the caller's trace:\n{}",
        missing.join("\n"),
        continued.join("\n")
    );
}

/// A code list is read once per `codelist_ttl_secs` and again after it expires.
#[tokio::test]
async fn a_code_list_is_read_again_after_its_ttl() {
    let fake = Fake::start();
    let s = Serve::start(&[
        "--rest-url",
        &fake.base,
        "--identity",
        "header",
        "--codelist-ttl-secs",
        "1",
    ]);
    let create = envelope(
        V11,
        &metadata("1", "101"),
        &create_contact_group(CPR_101, "1", START_1, None, EVENT_1),
    );
    let code_list_reads = |seen: Vec<Recorded>| {
        seen.iter()
            .filter(|r| r.path.ends_with("/kodelister/kontaktgruppetyper"))
            .count()
    };
    for _ in 0..3 {
        s.call(Prs, V11, "CreateContactGroup", &create)
            .await
            .expect_ok("CreateContactGroup within the TTL");
    }
    assert_eq!(
        code_list_reads(fake.take()),
        1,
        "three creates within the TTL"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.call(Prs, V11, "CreateContactGroup", &create)
        .await
        .expect_ok("CreateContactGroup after the TTL");
    assert_eq!(
        code_list_reads(fake.take()),
        1,
        "the expired list is read again"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Usage survives a restart
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn migration_usage_survives_a_graceful_restart() {
    clear_of_midnight();
    let dir = tempfile::tempdir().unwrap();
    let today = danish_today();
    let mut s = Serve::start_in(dir.path(), &[], "info");
    let jc = metadata("1", "101");
    let id = s
        .soap(
            Prs,
            V11,
            "CreateContactGroup",
            &jc,
            &create_contact_group(CPR_101, "1", START_1, None, EVENT_1),
        )
        .await
        .expect_ok("CreateContactGroup")
        .element("ContactGroupIdentifier");
    let tomorrow = xs_day(today.checked_add(1.day()).unwrap());
    s.soap(
        Prs,
        V11,
        "UpdateContactGroup",
        &jc,
        &update_contact_group(CPR_101, &id, "1", START_1, Some(&tomorrow), EVENT_1),
    )
    .await
    .expect_fault(100028, "UpdateContactGroup with a future end date");
    for _ in 0..2 {
        s.soap(
            Pss,
            V11,
            "GetVariablePersonStatus",
            &metadata("2", "12"),
            &person_status(CPR_101),
        )
        .await
        .expect_ok("GetVariablePersonStatus");
    }
    let (_, before) = s.migration().await;
    assert_eq!(before["overhead"]["samples"], 4, "{before:#}");

    // SIGTERM: the server drains, the usage is written, the process exits 0. No 10 s tick
    // has passed, so the file is the shutdown's.
    let (status, log) = s.stop();
    assert!(
        status.success(),
        "serve exited with {status} on SIGTERM:\n{log}"
    );
    let file = dir.path().join("migration-usage.json");
    let stored =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}\n{log}", file.display()));
    for cpr in SEED_CPRS {
        assert!(!stored.contains(cpr), "{cpr} in the usage file: {stored}");
    }
    assert!(
        !stored.contains(&id),
        "an identifier in the usage file: {stored}"
    );

    // A new process on the same data dir tells the same story (own times are not kept).
    let mut s = Serve::start_in(dir.path(), &[], "info");
    let (_, after) = s.migration().await;
    assert_eq!(
        after["organisations"], before["organisations"],
        "before the restart:\n{before:#}\nafter:\n{after:#}"
    );
    assert_eq!(after["overhead"]["samples"], 0, "{after:#}");
    let jc101 = find_org(&after, "1", "101");
    assert_eq!(
        (jc101["calls"].as_u64(), jc101["faults"].as_u64()),
        (Some(2), Some(1))
    );
    // The metrics are the new process's own.
    let (text, samples) = s.metrics().await;
    assert!(
        family(&samples, "vos_converter_soap_calls_total").is_empty(),
        "{text}"
    );

    // Counting goes on from the stored numbers.
    s.soap(
        Pss,
        V12,
        "GetVariablePersonStatus",
        &metadata("2", "12"),
        &person_status(CPR_101),
    )
    .await
    .expect_ok("GetVariablePersonStatus after the restart");
    let (_, later) = s.migration().await;
    let ak = find_org(&later, "2", "12");
    assert_eq!(ak["calls"], 3, "{ak:#}");
    let per_day = ak["operations"][0]["callsPerDay"].as_array().unwrap();
    assert_eq!(per_day[SHOWN_DAYS - 1], 3, "{ak:#}");
    let (status, log) = s.stop();
    assert!(status.success(), "second run exited with {status}:\n{log}");
}

/// SIGKILL gives no chance to write: what the periodic write (every 10 s) put on disk is
/// what the next process finds, complete, and a damaged file is kept aside, not replaced.
#[tokio::test]
async fn migration_usage_written_before_a_sigkill_is_found_after_it() {
    clear_of_midnight();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("migration-usage.json");
    let mut s = Serve::start_in(dir.path(), &[], "info");
    for _ in 0..3 {
        s.soap(
            Pss,
            V11,
            "GetVariablePersonStatus",
            &metadata("2", "12"),
            &person_status(CPR_101),
        )
        .await
        .expect_ok("GetVariablePersonStatus");
    }
    // A tick writes the three calls (one may have written only some of them).
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("GetVariablePersonStatus") && text.contains("\"calls\":3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no usage file 25 s after the calls:\n{}",
            s.kill()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    s.kill();
    assert!(
        !dir.path().join("migration-usage.json.tmp").exists(),
        "a temporary file is left over"
    );

    let mut s = Serve::start_in(dir.path(), &[], "info");
    let (_, after) = s.migration().await;
    assert_eq!(find_org(&after, "2", "12")["calls"], 3, "{after:#}");
    s.kill();

    // A damaged file: the next start keeps it aside, logs it, and starts empty.
    std::fs::write(&file, "{\"days\": {").unwrap();
    let mut s = Serve::start_in(dir.path(), &[], "info");
    let (_, empty) = s.migration().await;
    assert_eq!(empty["organisations"], json!([]), "{empty:#}");
    let (status, log) = s.stop();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        log.contains("migration usage file unreadable; moved aside"),
        "{log}"
    );
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("migration-usage.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&kept[0])).unwrap(),
        "{\"days\": {"
    );
}

// ---------------------------------------------------------------------------------------
// 5. --log-format json
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn json_log_lines_carry_the_soap_call_fields() {
    clear_of_midnight();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start_in(
        dir.path(),
        &["--log-format", "json", "--cutover", "2099-01-01"],
        "info",
    );
    let today = danish_today();
    let jc = metadata("1", "101");
    // (request id, service, operation, SOAP version, organisation, fault, calls REST)
    let mut expected: Vec<(String, Service, &str, &str, &str, u32, bool)> = Vec::new();

    let r = s
        .soap(
            Prs,
            V11,
            "CreateContactGroup",
            &jc,
            &create_contact_group(CPR_101, "1", START_1, None, EVENT_1),
        )
        .await;
    let id = r
        .expect_ok("CreateContactGroup")
        .element("ContactGroupIdentifier");
    expected.push((
        r.request_id("create"),
        Prs,
        "CreateContactGroup",
        "1.1",
        "1:101",
        0,
        true,
    ));
    let tomorrow = xs_day(today.checked_add(1.day()).unwrap());
    let r = s
        .soap(
            Prs,
            V12,
            "UpdateContactGroup",
            &jc,
            &update_contact_group(CPR_101, &id, "1", START_1, Some(&tomorrow), EVENT_1),
        )
        .await;
    r.expect_fault(100028, "UpdateContactGroup");
    expected.push((
        r.request_id("update"),
        Prs,
        "UpdateContactGroup",
        "1.2",
        "1:101",
        100028,
        true,
    ));
    let r = s
        .soap(
            Pss,
            V11,
            "GetVariablePersonStatus",
            &metadata("2", "12"),
            &person_status(CPR_101),
        )
        .await;
    r.expect_ok("GetVariablePersonStatus");
    expected.push((
        r.request_id("read"),
        Pss,
        "GetVariablePersonStatus",
        "1.1",
        "2:12",
        0,
        true,
    ));
    let r = s
        .soap(
            Phs,
            V12,
            "GetPersonHistory",
            &metadata("3", "147"),
            &person_history(CPR_147, None),
        )
        .await;
    r.expect_ok("GetPersonHistory");
    expected.push((
        r.request_id("history"),
        Phs,
        "GetPersonHistory",
        "1.2",
        "3:147",
        0,
        true,
    ));
    let cut = envelope(V11, &jc, &person_status(CPR_101)).replace("</env:Body>", "");
    let r = s.call(Pss, V11, "GetVariablePersonStatus", &cut).await;
    r.expect_fault(900501, "malformed XML");
    expected.push((
        r.request_id("malformed"),
        Pss,
        "-",
        "1.1",
        "other:other",
        900501,
        false,
    ));
    let r = s
        .send(Prs, "text/plain", None, b"hello".to_vec(), None)
        .await;
    r.expect_fault(900505, "not SOAP");
    expected.push((
        r.request_id("not SOAP"),
        Prs,
        "-",
        "-",
        "other:other",
        900505,
        false,
    ));

    let (status, log) = s.stop();
    assert!(status.success(), "exit {status}:\n{log}");

    let mut not_json = Vec::new();
    let mut soap_calls: Vec<Value> = Vec::new();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => {
                for key in ["timestamp", "level"] {
                    if v.get(key).is_none() {
                        not_json.push(format!("no {key}: {line}"));
                    }
                }
                // tracing-subscriber nests an event's fields under "fields" unless flattened.
                let fields = v.get("fields").cloned().unwrap_or_else(|| v.clone());
                if fields["message"] == "soap call" {
                    soap_calls.push(fields);
                }
            }
            _ => not_json.push(line.to_owned()),
        }
    }
    assert!(lines > expected.len(), "too few log lines:\n{log}");
    assert!(
        not_json.is_empty(),
        "stderr lines that are not JSON objects:\n{}",
        not_json.join("\n")
    );
    assert_eq!(
        soap_calls.len(),
        expected.len(),
        "one soap call line per SOAP call:\n{log}"
    );
    for (request_id, service, op, version, org, fault, upstream) in &expected {
        let f = soap_calls
            .iter()
            .find(|f| f["request_id"] == request_id.as_str())
            .unwrap_or_else(|| panic!("no soap call line with request_id {request_id}:\n{log}"));
        let want = json!({
            "service": service.name(),
            "operation": op,
            "soap_version": version,
            "organisation": org,
            "outcome": if *fault == 0 { "ok" } else { "fault" },
            "fault": fault,
        });
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&f[k], v, "{k} of {op} ({request_id}): {f}");
        }
        let total = f["total_micros"]
            .as_u64()
            .unwrap_or_else(|| panic!("total_micros: {f}"));
        let up = f["upstream_micros"]
            .as_u64()
            .unwrap_or_else(|| panic!("upstream_micros: {f}"));
        assert!(up <= total, "upstream above total: {f}");
        assert_eq!(up > 0, *upstream, "upstream_micros of {op}: {f}");
    }
}

// ---------------------------------------------------------------------------------------
// 6. No CPR number at TRACE, in /metrics or in /api/migration
// ---------------------------------------------------------------------------------------

fn lines_with<'l>(text: &'l str, needle: &str) -> Vec<&'l str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test]
async fn no_cpr_number_reaches_the_log_the_metrics_or_the_usage_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start_in(dir.path(), &["--cutover", "2099-01-01"], "trace");
    let not_registered = "0505705555";
    let dashed = "010170-1111";
    let in_user = "1212851234";
    let mut cprs: Vec<&str> = SEED_CPRS.to_vec();
    cprs.extend([not_registered, dashed, in_user]);
    let today = danish_today();
    let jc = metadata("1", "101");

    for v in [V11, V12] {
        // Valid calls and REST's refusals.
        let r = s
            .soap(
                Prs,
                v,
                "CreateContactGroup",
                &jc,
                &create_contact_group(
                    CPR_101,
                    "1",
                    if v == V11 { START_1 } else { START_2 },
                    None,
                    if v == V11 { EVENT_1 } else { EVENT_2 },
                ),
            )
            .await;
        let id = r
            .expect_ok("CreateContactGroup")
            .element("ContactGroupIdentifier");
        let tomorrow = xs_day(today.checked_add(1.day()).unwrap());
        let (start, event) = if v == V11 {
            (START_1, EVENT_1)
        } else {
            (START_2, EVENT_2)
        };
        s.soap(
            Prs,
            v,
            "UpdateContactGroup",
            &jc,
            &update_contact_group(CPR_101, &id, "1", start, Some(&tomorrow), event),
        )
        .await
        .error_code();
        for cpr in [CPR_147, CPR_751, not_registered, dashed] {
            let r = s
                .soap(
                    Prs,
                    v,
                    "CreateContactGroup",
                    &jc,
                    &create_contact_group(cpr, "1", START_1, None, EVENT_1),
                )
                .await;
            assert!(r.error_code().is_some(), "{cpr}: {}", r.text);
        }
        s.soap(
            Prs,
            v,
            "CreatePersonCategory",
            &jc,
            &create_person_category(CPR_101_ENROLLED, "2", START_1, None, EVENT_1),
        )
        .await;
        // Reads: the a-kasse (person categories refused, 900204), a kommune, a jobcenter
        // about another municipality's citizen (900203), a person REST does not know, and a
        // CPR number in UserIdentifier (it becomes X-User-Id).
        for (meta, service, body) in [
            (metadata("2", "12"), Pss, person_status(CPR_101)),
            (metadata("3", "147"), Phs, person_history(CPR_147, None)),
            (
                metadata("3", "147"),
                Phs,
                person_history(CPR_147, Some(("2020-01-01", "2030-12-31"))),
            ),
            (jc.clone(), Pss, person_status(CPR_751)),
            (jc.clone(), Phs, person_history(not_registered, None)),
            (
                metadata_user("1", "101", in_user),
                Pss,
                person_status(CPR_101),
            ),
        ] {
            let op = if service == Pss {
                "GetVariablePersonStatus"
            } else {
                "GetPersonHistory"
            };
            s.soap(service, v, op, &meta, &body).await;
        }
        // A CPR number where a type code, a date, a UUID and an organisation type belong.
        for body in [
            create_contact_group(CPR_101, CPR_147, START_1, None, EVENT_1),
            create_contact_group(CPR_101, "1", CPR_147, None, EVENT_1),
            create_contact_group(CPR_101, "1", START_1, Some(CPR_751), EVENT_1),
            update_contact_group(CPR_101, CPR_751, "1", START_1, None, EVENT_1),
        ] {
            let op = if body.contains("Update") {
                "UpdateContactGroup"
            } else {
                "CreateContactGroup"
            };
            let r = s.soap(Prs, v, op, &jc, &body).await;
            assert!(r.error_code().is_some(), "{op}: {}", r.text);
        }
        s.soap(
            Pss,
            v,
            "GetVariablePersonStatus",
            &metadata(CPR_751, "101"),
            &person_status(CPR_101),
        )
        .await;
        // A CPR number on a line of its own (pretty-printed XML).
        let pretty = person_status(&format!("\n{CPR_147}\n")).replace(
            "</pss:PersonCivilRegistrationIdentifier>",
            "\t</pss:PersonCivilRegistrationIdentifier>",
        );
        s.soap(
            Pss,
            v,
            "GetVariablePersonStatus",
            &metadata("3", "147"),
            &pretty,
        )
        .await
        .expect_ok("a CPR number on a line of its own");
        // Malformed documents with CPR numbers in them.
        let whole = envelope(
            v,
            &jc,
            &create_contact_group(CPR_101_ENROLLED, "1", START_1, None, EVENT_1),
        );
        let doctype = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY c \"{CPR_751}\">]>{}",
            whole.split_once("?>").unwrap().1
        );
        let mut not_utf8 = whole.clone().into_bytes();
        let at = not_utf8.len() / 2;
        not_utf8.insert(at, 0xff);
        for (what, bytes) in [
            ("truncated", whole.replace("</env:Body>", "").into_bytes()),
            (
                "unclosed tag",
                whole.replace("</prs:ContactGroup>", "").into_bytes(),
            ),
            (
                "unknown entity",
                whole
                    .replace(CPR_101_ENROLLED, &format!("&cpr;{CPR_101_ENROLLED}"))
                    .into_bytes(),
            ),
            ("DOCTYPE", doctype.into_bytes()),
            ("not UTF-8", not_utf8),
            (
                "no envelope",
                format!("<cpr>{CPR_101_ENROLLED}</cpr>").into_bytes(),
            ),
        ] {
            let (ct, action) = match v {
                V11 => (
                    "text/xml; charset=utf-8".to_owned(),
                    Some(format!("\"{PRS}/CreateContactGroup\"")),
                ),
                V12 => (
                    format!(
                        "application/soap+xml; charset=utf-8; action=\"{PRS}/CreateContactGroup\""
                    ),
                    None,
                ),
            };
            let r = s.send(Prs, &ct, action.as_deref(), bytes, None).await;
            assert!(r.error_code().is_some(), "{what}: {}", r.text);
        }
        // The retired operation, with a CPR number in its body.
        s.soap(
            Prs,
            v,
            "CreatePersonCategoryAndInterview",
            &jc,
            &retired(CPR_101),
        )
        .await
        .expect_fault(900510, "retired");
    }
    // WSDL fetches, one with a CPR number in the query.
    for service in [Prs, Pss, Phs] {
        let (status, wsdl) = s.get(&format!("{}?wsdl", service.endpoint())).await;
        assert_eq!(status, StatusCode::OK, "{wsdl}");
    }
    s.get(&format!("{}?wsdl&cpr={CPR_101}", Prs.endpoint()))
        .await;
    s.get(&format!("{}?{CPR_147}", Pss.endpoint())).await;

    let (metrics, _) = s.metrics().await;
    let (migration, _) = s.migration().await;
    let (status, log) = s.stop();
    assert!(status.success(), "exit {status}");
    assert!(
        log.contains("TRACE"),
        "RUST_LOG=trace did not reach the child:\n{log}"
    );
    assert!(log.contains("soap call"), "no soap call line:\n{log}");
    let mut leaks = Vec::new();
    for cpr in &cprs {
        for line in lines_with(&log, cpr) {
            leaks.push(format!("stderr: {line}"));
        }
        for line in lines_with(&metrics, cpr) {
            leaks.push(format!("/metrics: {line}"));
        }
        if migration.contains(cpr) {
            leaks.push(format!("/api/migration: {cpr} in {migration}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "CPR numbers reached the log, the metrics or the usage:\n{}",
        leaks.join("\n")
    );
}

/// The metrics doc: "No label ever holds a CPR number"; the invariant: "a CPR number is
/// never in a URL, a log line or a metric label". An organisation code is a municipality
/// number, an a-kasse number or a CVR number (8 digits); a CPR-shaped one must not become a
/// label, nor a code in the usage, which is shown and written to disk.
#[tokio::test]
async fn a_cpr_number_sent_as_organisation_code_is_not_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start_in(dir.path(), &[], "info");
    for (ty, code) in [("1", CPR_101), ("3", CPR_147)] {
        s.soap(
            Prs,
            V11,
            "CreatePersonCategoryAndInterview",
            &metadata(ty, code),
            &retired(CPR_751),
        )
        .await
        .expect_fault(900510, "retired");
    }
    let (metrics, _) = s.metrics().await;
    let (migration, _) = s.migration().await;
    let (status, log) = s.stop();
    assert!(status.success(), "exit {status}");
    let stored = std::fs::read_to_string(dir.path().join("migration-usage.json")).unwrap();
    let mut leaks = Vec::new();
    for cpr in [CPR_101, CPR_147, CPR_751] {
        leaks.extend(
            lines_with(&log, cpr)
                .into_iter()
                .map(|l| format!("stderr: {l}")),
        );
        leaks.extend(
            lines_with(&metrics, cpr)
                .into_iter()
                .map(|l| format!("/metrics: {l}")),
        );
        if migration.contains(cpr) {
            leaks.push(format!("/api/migration: {cpr} in {migration}"));
        }
        if stored.contains(cpr) {
            leaks.push(format!("migration-usage.json: {cpr} in {stored}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "a CPR number sent as OrganisationCode was kept:\n{}",
        leaks.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Upstream waits are counted however they end
// ---------------------------------------------------------------------------------------

/// A REST stand-in that accepts connections and never answers: every call on it ends by the
/// converter's deadline, which drops the call's future. The wait must still be counted as an
/// upstream timeout (`upstream::Wait` records itself when dropped), and the caller gets
/// 900521 within about `upstream_timeout_ms`.
#[tokio::test]
async fn a_rest_service_that_never_answers_is_counted_as_upstream_timeouts() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        // Held open, never read or written: the process's end closes them.
        let mut held = Vec::new();
        for conn in silent.incoming() {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
    });
    let s = Serve::start(&[
        "--rest-url",
        &base,
        "--identity",
        "header",
        "--upstream-timeout-ms",
        "400",
        // Before the cutover: reads call REST.
        "--cutover",
        "2099-01-01",
    ]);
    // A read: two REST calls in flight, both dropped at the deadline.
    let reply = s
        .soap(
            Pss,
            V11,
            "GetVariablePersonStatus",
            &metadata("1", "101"),
            &person_status(CPR_101),
        )
        .await;
    assert!(
        reply.elapsed < Duration::from_secs(3),
        "answered after {:?}",
        reply.elapsed
    );
    reply.expect_fault(900521, "a read while REST never answers");

    let (_, text) = s.get("/metrics").await;
    let samples = parse_metrics(&text);
    let errors = family(&samples, "vos_converter_upstream_errors_total");
    for op in ["GetKontaktgrupper", "GetPersonkategorier"] {
        let n = errors
            .get(&labels(&[("operation_id", op), ("kind", "timeout")]))
            .copied()
            .unwrap_or(0.0);
        assert_eq!(n, 1.0, "{op} timeouts in {errors:?}");
    }
    // Each wait is in the upstream histogram too, and the call's time is upstream time,
    // not the converter's own.
    let waits = family(&samples, "vos_converter_upstream_seconds_count");
    assert_eq!(
        waits.get(&labels(&[("operation_id", "GetKontaktgrupper")])),
        Some(&1.0),
        "{waits:?}"
    );
    let own = family(&samples, "vos_converter_converter_own_seconds_sum");
    let own: f64 = own.values().sum();
    assert!(
        own < 0.2,
        "the wait was counted as the converter's own time: {own} s"
    );
}
