//! The converter's own work per call, phase by phase, for every operation: envelope parse,
//! mapping (SOAP → REST request), response write (REST answer bytes → JSON → SOAP), fault
//! write. No IO: upstream waits are what `scripts/bench.sh` measures against the direct REST calls.
//! `.ci/run` runs these in a quick mode only to prove they build and run; numbers are read
//! by people, not asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use vos_converter::converter::core::{self, Answer, Read, ReadAnswer, Registration};
use vos_converter::converter::{Arrival, Call, Failure, Outcome};
use vos_converter::door::Presented;
use vos_converter::mapping::Behaviour;
use vos_converter::observe::metrics::{CallRecord, Metrics};
use vos_converter::observe::usage::{Usage, UsageCall};
use vos_converter::upstream::RestRequest;

const HEADER: &str = r#"<s:Header><d:RequestUserMetadata xmlns:d="urn:dk:star:dfdg:common:1"><d:OrganisationType>1</d:OrganisationType><d:OrganisationCode>101</d:OrganisationCode><d:UserIdentifier>ab12</d:UserIdentifier></d:RequestUserMetadata><a:MessageID xmlns:a="http://www.w3.org/2005/08/addressing">urn:uuid:0b7e9c2a-5d1f-4c3e-8a6b-1f2e3d4c5b6a</a:MessageID></s:Header>"#;

/// The converter as `serve` builds it in dev mode (`app::app` from the default settings),
/// before the cutover (no call reaches its upstream here), its data dir in `data`.
fn app(data: &std::path::Path) -> vos_converter::app::App {
    let mut cfg = vos_converter::config::Config::defaults().unwrap();
    cfg.data_dir = data.to_owned();
    // Before the cutover: reads call REST.
    cfg.cutover = "2099-01-01T00:00:00Z".parse().unwrap();
    vos_converter::app::app(&cfg, "http://127.0.0.1:9").unwrap()
}

struct Case {
    endpoint: &'static str,
    name: &'static str,
    action: &'static str,
    body: String,
    answers: Vec<serde_json::Value>,
}

fn kg(id: &str) -> serde_json::Value {
    json!({"id": id, "kontaktgruppetype": 1, "startdato": "2024-03-31", "slutdato": null,
           "haendelsestidspunkt": "2024-03-31T08:00:00Z", "version": 1,
           "oprettetAf": {"organisationstype": 1, "organisationskode": "101", "brugerId": "ab12"},
           "registreretAf": {"organisationstype": 1, "organisationskode": "101", "brugerId": "ab12"},
           "registreringstidspunkt": "2024-03-31T08:00:01Z"})
}

fn pc(id: &str) -> serde_json::Value {
    let mut v = kg(id);
    let o = v.as_object_mut().unwrap();
    let t = o.remove("kontaktgruppetype").unwrap();
    o.insert("personkategoritype".into(), t);
    v
}

fn cases() -> Vec<Case> {
    let prs = "urn:dk:star:dfdg:PersonRegistrationService:9";
    let id = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    let wrap = |op: &str, inner: &str| {
        let xml = format!(
            r#"<p:{op}Request xmlns:p="{prs}"><p:PersonCivilRegistrationIdentifier>0101701111</p:PersonCivilRegistrationIdentifier>{inner}</p:{op}Request>"#
        );
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">{HEADER}<s:Body>{xml}</s:Body></s:Envelope>"#
        )
    };
    let kg_create = r#"<p:ContactGroup><p:ContactGroupTypeIdentifier>1</p:ContactGroupTypeIdentifier><p:ContactGroupStartTime>2024-03-31T00:00:00+01:00</p:ContactGroupStartTime><p:ContactGroupEventTime>2024-03-31T10:00:00</p:ContactGroupEventTime></p:ContactGroup>"#;
    let kg_update = format!(
        r#"<p:ContactGroup><p:ContactGroupIdentifier>{id}</p:ContactGroupIdentifier><p:ContactGroupTypeIdentifier>1</p:ContactGroupTypeIdentifier><p:ContactGroupStartTime>2024-03-31T00:00:00+01:00</p:ContactGroupStartTime><p:ContactGroupEndTime>2024-06-30T00:00:00+02:00</p:ContactGroupEndTime><p:ContactGroupEventTime>2024-03-31T10:00:00</p:ContactGroupEventTime></p:ContactGroup>"#
    );
    let pc_create = kg_create.replace("ContactGroup", "PersonCategory");
    let pc_update = kg_update.replace("ContactGroup", "PersonCategory");
    let read = |ns: &str, op: &str| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">{HEADER}<s:Body><p:{op}Request xmlns:p="{ns}"><p:PersonCivilRegistrationIdentifier>0101701111</p:PersonCivilRegistrationIdentifier></p:{op}Request></s:Body></s:Envelope>"#
        )
    };
    vec![
        Case {
            endpoint: "/PersonRegistrationService/9",
            name: "CreateContactGroup",
            action: "urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup",
            body: wrap("CreateContactGroup", kg_create),
            answers: vec![kg(id)],
        },
        Case {
            endpoint: "/PersonRegistrationService/9",
            name: "UpdateContactGroup",
            action: "urn:dk:star:dfdg:PersonRegistrationService:9/UpdateContactGroup",
            body: wrap("UpdateContactGroup", &kg_update),
            answers: vec![kg(id)],
        },
        Case {
            endpoint: "/PersonRegistrationService/9",
            name: "CreatePersonCategory",
            action: "urn:dk:star:dfdg:PersonRegistrationService:9/CreatePersonCategory",
            body: wrap("CreatePersonCategory", &pc_create),
            answers: vec![pc(id)],
        },
        Case {
            endpoint: "/PersonRegistrationService/9",
            name: "UpdatePersonCategory",
            action: "urn:dk:star:dfdg:PersonRegistrationService:9/UpdatePersonCategory",
            body: wrap("UpdatePersonCategory", &pc_update),
            answers: vec![pc(id)],
        },
        Case {
            endpoint: "/PersonStatusService/20",
            name: "GetVariablePersonStatus",
            action: "urn:dk:star:dfdg:PersonStatusService:20/GetVariablePersonStatus",
            body: read(
                "urn:dk:star:dfdg:PersonStatusService:20",
                "GetVariablePersonStatus",
            ),
            answers: vec![
                json!({"kontaktgrupper": [kg(id), kg(id)]}),
                json!({"personkategorier": [pc(id)]}),
            ],
        },
        Case {
            endpoint: "/PersonHistoryService/4",
            name: "GetPersonHistory",
            action: "urn:dk:star:dfdg:PersonHistoryService:4/GetPersonHistory",
            body: read(
                "urn:dk:star:dfdg:PersonHistoryService:4",
                "GetPersonHistory",
            ),
            answers: vec![
                json!({"versioner": [kg(id), kg(id), kg(id)]}),
                json!({"versioner": [pc(id), pc(id)]}),
            ],
        },
    ]
}

/// The sans-IO core of one call from its decoded `Call`: the REST requests it makes, and the
/// answer from REST's `answers` (a registration's write answer; a read's collections').
fn requests(call: &Call<'_>) -> Vec<RestRequest> {
    let who = call.who().unwrap();
    match &call.op.behaviour {
        Behaviour::Call(plan) => vec![Registration::new(call, plan, who).unwrap().request()],
        Behaviour::Read(plan) => Read::new(call, plan).unwrap().requests(),
        Behaviour::Retired { .. } | Behaviour::Queue(_) => Vec::new(),
    }
}

fn respond(call: &Call<'_>, answers: &[bytes::Bytes]) -> Outcome {
    let who = call.who().unwrap();
    let answer = match &call.op.behaviour {
        Behaviour::Call(plan) => Registration::new(call, plan, who)
            .unwrap()
            .response(&answers[0]),
        Behaviour::Read(plan) => {
            // As `serve` writes a read: each collection's answer fed as it arrives (here in
            // one chunk), items transcoded one by one.
            let read = Read::new(call, plan).unwrap();
            let mut out = String::with_capacity(4096);
            let mut answer = ReadAnswer::start(call, &read, &mut out);
            while let Some(i) = answer.next_collection(&mut out).unwrap() {
                answer.feed(&answers[i], &mut out).unwrap();
                answer.end_collection(&mut out, true).unwrap();
            }
            answer.finish(&mut out);
            Ok(Answer::Bytes(out.into_bytes()))
        }
        Behaviour::Retired { .. } | Behaviour::Queue(_) => unreachable!(),
    };
    let outcome = core::encode(call, answer);
    assert_eq!(outcome.status, 200);
    outcome
}

fn bench(c: &mut Criterion) {
    let data = tempfile::tempdir().unwrap();
    let app = app(data.path());
    let (plan, converter) = (&app.plan, app.converter());
    let now = jiff::Timestamp::now();
    for case in cases() {
        let service = plan.service(case.endpoint).unwrap();
        let body = case.body.as_bytes();
        // The REST answers as they come over the wire: `write` reads them in place.
        let answers: Vec<bytes::Bytes> = case
            .answers
            .iter()
            .map(|a| serde_json::to_vec(a).unwrap().into())
            .collect();
        let arrival = || {
            Arrival::new(
                service,
                "text/xml; charset=utf-8",
                Some(case.action),
                converter.trace(None),
                Presented::Unverified,
            )
        };
        let first = arrival();
        let call = converter.begin(&first, body, now).unwrap();
        assert_eq!(call.op.name, case.name);
        assert!(!requests(&call).is_empty());
        respond(&call, &answers);

        let mut g = c.benchmark_group(case.name);
        g.bench_function("parse", |b| {
            b.iter(|| {
                let a = arrival();
                converter.begin(&a, black_box(body), now).is_ok()
            })
        });
        g.bench_function("map", |b| b.iter(|| requests(black_box(&call))));
        g.bench_function("write", |b| b.iter(|| respond(black_box(&call), &answers)));
        g.bench_function("fault", |b| {
            b.iter(|| {
                let failure = Failure::Rest {
                    status: 422,
                    fejlkode: 100028,
                    fejltekst: "Slutdato kan ikke være fremtidig".to_owned(),
                };
                core::encode(black_box(&call), Err(failure))
            })
        });
        g.bench_function("all", |b| {
            b.iter(|| {
                let a = arrival();
                let call = converter.begin(&a, black_box(body), now).unwrap();
                let bodies: Vec<bytes::Bytes> =
                    requests(&call).into_iter().filter_map(|r| r.body).collect();
                (respond(&call, &answers).body, bodies)
            })
        });
        g.finish();
    }
}

/// A person's PersonHistoryService answer at scale: N contact group versions (and one
/// person category), from REST's answers to the SOAP bytes (the `write` phase), per N. The
/// per-item cost is the slope; `scripts/bench.sh scale` measures the same N over sockets.
fn scale(c: &mut Criterion) {
    let data = tempfile::tempdir().unwrap();
    let app = app(data.path());
    let (plan, converter) = (&app.plan, app.converter());
    let case = cases()
        .into_iter()
        .find(|c| c.name == "GetPersonHistory")
        .unwrap();
    let service = plan.service(case.endpoint).unwrap();
    let arrival = Arrival::new(
        service,
        "text/xml; charset=utf-8",
        Some(case.action),
        converter.trace(None),
        Presented::Unverified,
    );
    let call = converter
        .begin(&arrival, case.body.as_bytes(), jiff::Timestamp::now())
        .unwrap();
    let mut g = c.benchmark_group("scale");
    for n in [1usize, 50, 400, 2000] {
        let versions: Vec<serde_json::Value> = (0..n)
            .map(|i| kg(&format!("7d444840-9dc0-11d1-b245-{i:012x}")))
            .collect();
        let answers: Vec<bytes::Bytes> = [
            json!({ "versioner": versions }),
            json!({ "versioner": [pc("7d444840-9dc0-11d1-b245-5ffdce74fad2")] }),
        ]
        .iter()
        .map(|a| serde_json::to_vec(a).unwrap().into())
        .collect();
        g.throughput(criterion::Throughput::Elements(n as u64));
        g.bench_function(format!("write/{n}"), |b| {
            b.iter(|| respond(black_box(&call), &answers))
        });
    }
    g.finish();
}

/// What `Converter::record` does per call besides the log line: the organisation's labels,
/// the call's metrics and its usage (an organisation and operation seen before, as most
/// calls are).
fn record(c: &mut Criterion) {
    let metrics = Metrics::new();
    let usage = Usage::in_memory();
    let now = jiff::Timestamp::now();
    let mut g = c.benchmark_group("record");
    for (name, fault_code) in [("ok", None), ("fault", Some(100028))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (t, c) = metrics.organisation(black_box(Some((1, "101"))));
                metrics.record_call(&CallRecord {
                    service: black_box("PersonRegistrationService"),
                    operation: black_box("CreateContactGroup"),
                    soap_version: "1.1",
                    organisation_type: t,
                    organisation_code: c,
                    fault_code,
                    total: std::time::Duration::from_micros(900),
                    upstream: std::time::Duration::from_micros(700),
                    past_cutover: Some(false),
                });
                usage.record(
                    &UsageCall {
                        organisation_type: t,
                        organisation_code: c,
                        service: black_box("PersonRegistrationService"),
                        operation: black_box("CreateContactGroup"),
                        fault: fault_code,
                        own_micros: 200,
                    },
                    now,
                );
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, record, scale);
criterion_main!(benches);
