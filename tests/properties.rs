#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests (issue 14, point 8): whatever bytes arrive, the converter's sans-IO core
//! answers with a success or a fault carrying a catalogue code, and never panics. Seeds are
//! the golden requests (every operation, both SOAP versions), mutated the way networks and
//! clients break them (bytes flipped, cut, doubled; markup and references inserted); and
//! plain random bytes. REST answers get the same treatment: any bytes from REST are a
//! coded fault or an answer.
//!
//! The splice gets the same: a legacy answer (a real-looking one mutated, or random bytes)
//! arriving in chunks of any size, REST's answers broken as above, the shadow compare on or
//! off: a spliced answer or a coded fault, never a panic or a loop that does not end.
//!
//! `PROPTEST_CASES` raises the count (default here: 1,500 per property).

use std::path::Path;

use proptest::prelude::*;
use vos_converter::catalog::Catalog;
use vos_converter::converter::core::{
    self, Answer, Read, ReadAnswer, Registration, Splice, SplicedAnswer,
};
use vos_converter::converter::{Arrival, Call, Converter, Failure, Outcome};
use vos_converter::door::Presented;
use vos_converter::mapping::Behaviour;

struct Seed {
    endpoint: String,
    content_type: String,
    soap_action: Option<String>,
    body: Vec<u8>,
}

/// Every golden case's request, as a client sent it.
fn seeds() -> Vec<Seed> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out = Vec::new();
    for service in std::fs::read_dir(&root).unwrap() {
        let service = service.unwrap().path();
        let name = service.file_name().unwrap().to_string_lossy().into_owned();
        let Some((svc, version)) = name.rsplit_once('-') else {
            continue;
        };
        let endpoint = format!("/{svc}/{version}");
        for case in std::fs::read_dir(&service).unwrap() {
            let case = case.unwrap().path();
            let Ok(body) = std::fs::read(case.join("request.xml")) else {
                continue;
            };
            let meta: toml::Table =
                toml::from_str(&std::fs::read_to_string(case.join("request.toml")).unwrap())
                    .unwrap();
            out.push(Seed {
                endpoint: endpoint.clone(),
                content_type: meta["content_type"].as_str().unwrap().to_owned(),
                soap_action: meta
                    .get("soap_action")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                body,
            });
        }
    }
    out.sort_by(|a, b| a.body.cmp(&b.body));
    assert!(out.len() > 30, "golden requests: {}", out.len());
    out
}

/// The converter as `serve` builds it (dev mode), before the cutover: reads call REST.
fn app() -> (tempfile::TempDir, vos_converter::app::App) {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = vos_converter::config::Config::defaults().unwrap();
    cfg.data_dir = data.path().to_owned();
    cfg.cutover = "2099-01-01T00:00:00Z".parse().unwrap();
    let app = vos_converter::app::app(&cfg, "http://127.0.0.1:9").unwrap();
    (data, app)
}

/// A fault is coded: a catalogue code, a 4xx/5xx status, a body.
fn assert_coded(outcome: &Outcome) {
    let catalog = Catalog::load().unwrap();
    if outcome.status == 200 {
        assert!(outcome.fault_code.is_none());
        return;
    }
    let code = outcome
        .fault_code
        .unwrap_or_else(|| panic!("a {} without a fault code", outcome.status));
    assert!(
        catalog.error_list.iter().any(|e| e.code == code),
        "fault code {code} is not in the catalogue"
    );
    assert!((400..600).contains(&outcome.status), "{}", outcome.status);
    assert!(!outcome.body.is_empty());
}

/// A failure from the core is encoded as a coded fault.
fn assert_coded_failure(call: &Call<'_>, failure: Failure) {
    assert_coded(&core::encode(call, Err(failure)));
}

/// The core of a decoded call, fed `rest` as every REST answer: requests are built, the
/// answer is a success or a coded fault.
fn drive(call: &Call<'_>, rest: &[u8]) {
    let Ok(who) = call.who() else {
        return;
    };
    match &call.op.behaviour {
        Behaviour::Call(plan) => match Registration::new(call, plan, who) {
            Err(f) => assert_coded_failure(call, f),
            Ok(reg) => {
                let _ = reg.request();
                let _ = reg.unchanged_request();
                match reg.response(rest) {
                    Ok(answer) => assert_coded(&core::encode(call, Ok(answer))),
                    Err(f) => assert_coded_failure(call, f),
                }
            }
        },
        Behaviour::Read(plan) => match Read::new(call, plan) {
            Err(f) => assert_coded_failure(call, f),
            Ok(read) => {
                let _ = read.requests();
                let mut out = String::new();
                let mut answer = ReadAnswer::start(call, &read, &mut out);
                let result = (|| {
                    while answer.next_collection(&mut out)?.is_some() {
                        // Cut in two, as the network may.
                        let (a, b) = rest.split_at(rest.len() / 2);
                        answer.feed(a, &mut out)?;
                        answer.feed(b, &mut out)?;
                        answer.end_collection(&mut out, true)?;
                    }
                    Ok(())
                })();
                match result {
                    Ok(()) => {
                        answer.finish(&mut out);
                        let outcome = core::encode(call, Ok(Answer::Bytes(out.into_bytes())));
                        assert_eq!(outcome.status, 200);
                    }
                    Err(f) => assert_coded_failure(call, f),
                }
            }
        },
        // Answered from the converter's own queue store: no REST answer to feed.
        Behaviour::Retired { .. } | Behaviour::Queue(_) => {}
    }
}

/// One request through `begin` and, when it decodes, the core; whether it decoded.
fn check(converter: &Converter, seed: &Seed, body: &[u8], rest: &[u8]) -> bool {
    let service = converter.plan.service(&seed.endpoint).unwrap();
    let arrival = Arrival::new(
        service,
        &seed.content_type,
        seed.soap_action.as_deref(),
        converter.trace(None),
        Presented::Unverified,
    );
    match converter.begin(&arrival, body, jiff::Timestamp::now()) {
        Ok(call) => {
            drive(&call, rest);
            true
        }
        Err(outcome) => {
            assert_coded(&outcome);
            false
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize, usize),
    Insert(usize, Vec<u8>),
    Double(usize, usize),
    Truncate(usize),
}

/// Fragments that reach the reader's corners.
const FRAGMENTS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "&",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x1F600;",
    "&#xD800;",
    "&unknown;",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    "<?xml version=\"1.0\"?>",
    "<!-- -->",
    "xmlns=\"\"",
    "xmlns:s=\"urn:x\"",
    "\u{feff}",
    "\u{0}",
    "\u{fffd}",
    "  ",
    "0101701111",
    "2024-02-30T25:61:00+14:00",
    "-9223372036854775809",
    "<x/>",
    "</s:Body>",
    "</soap:Envelope>",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragment = prop_oneof![
        proptest::sample::select(FRAGMENTS).prop_map(|f| f.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Cut(i, n)),
        (any::<usize>(), fragment).prop_map(|(i, f)| Mutation::Insert(i, f)),
        (any::<usize>(), 1usize..200).prop_map(|(i, n)| Mutation::Double(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(body: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = body.to_vec();
    for m in mutations {
        let len = b.len().max(1);
        match m {
            Mutation::Flip(i, x) if !b.is_empty() => {
                let i = i % b.len();
                b[i] ^= x | 1;
            }
            Mutation::Cut(i, n) if !b.is_empty() => {
                let i = i % b.len();
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Mutation::Insert(i, f) => {
                let i = i % len.min(b.len() + 1).max(1);
                let i = i.min(b.len());
                b.splice(i..i, f.iter().copied());
            }
            Mutation::Double(i, n) if !b.is_empty() => {
                let i = i % b.len();
                let end = (i + n).min(b.len());
                let part = b[i..end].to_vec();
                b.splice(end..end, part);
            }
            Mutation::Truncate(i) => {
                let keep = i % len;
                b.truncate(keep);
            }
            _ => {}
        }
    }
    b
}

/// REST answers: valid shapes (from the seeds' world) broken, and random bytes.
fn rest_answer() -> impl Strategy<Value = Vec<u8>> {
    let shapes = [
        r#"{"id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","kontaktgruppetype":1,"startdato":"2024-03-31","slutdato":null,"haendelsestidspunkt":"2024-03-31T08:00:00Z","version":1}"#,
        r#"{"kontaktgrupper":[{"id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","kontaktgruppetype":1,"startdato":"2024-03-31","slutdato":null,"haendelsestidspunkt":"2024-03-31T08:00:00Z","version":1}]}"#,
        r#"{"personkategorier":[],"versioner":[{"id":"x","version":"1"}]}"#,
        r#"{"versioner":[{"id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","kontaktgruppetype":1,"startdato":"2024-03-31","slutdato":"2024-04-01","haendelsestidspunkt":"2024-03-31T08:00:00Z","version":2,"registreretAf":{"organisationstype":1,"organisationskode":"101","brugerId":"ab12"},"registreringstidspunkt":"2024-03-31T08:00:01Z"}]}"#,
    ];
    prop_oneof![
        3 => (proptest::sample::select(shapes.to_vec()), proptest::collection::vec(mutation(), 0..4))
            .prop_map(|(s, m)| apply(s.as_bytes(), &m)),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_500),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn any_mutation_of_a_real_request_is_answered_or_refused_with_a_code() {
    let (_data, app) = app();
    let seeds = seeds();
    let tally = std::cell::Cell::new((0u32, 0u32));
    proptest!(config(), |(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 0..6),
        rest in rest_answer(),
    )| {
        let seed = which.get(&seeds);
        let body = apply(&seed.body, &mutations);
        let (ok, refused) = tally.get();
        tally.set(if check(app.converter(), seed, &body, &rest) {
            (ok + 1, refused)
        } else {
            (ok, refused + 1)
        });
    });
    // Both sides are exercised: mutated requests that still decode reach the core.
    let (ok, refused) = tally.get();
    assert!(ok > 50 && refused > 50, "decoded {ok}, refused {refused}");
}

#[test]
fn any_bytes_are_refused_with_a_code() {
    let (_data, app) = app();
    let seeds = seeds();
    proptest!(config(), |(
        which in any::<prop::sample::Index>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    )| {
        let seed = which.get(&seeds);
        let _ = check(app.converter(), seed, &body, b"{}");
    });
}

#[test]
fn the_unmutated_seeds_decode() {
    let (_data, app) = app();
    let mut decoded = 0;
    for seed in seeds() {
        let service = app.converter().plan.service(&seed.endpoint).unwrap();
        let arrival = Arrival::new(
            service,
            &seed.content_type,
            seed.soap_action.as_deref(),
            app.converter().trace(None),
            Presented::Unverified,
        );
        if app
            .converter()
            .begin(&arrival, &seed.body, jiff::Timestamp::now())
            .is_ok()
        {
            decoded += 1;
        }
    }
    // Most golden requests are valid calls (some are deliberately broken ones).
    assert!(decoded >= 20, "only {decoded} seeds decode");
}

/// Legacy answers of the two read services, with the collections the converter fills (one
/// self-closed, one holding a stale item), in the prefixes and layouts legacy stacks use.
const LEGACY_ANSWERS: &[&str] = &[
    r#"<?xml version="1.0" encoding="UTF-8"?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
<p:GetVariablePersonStatusResponse xmlns:p="urn:dk:star:dfdg:PersonStatusService:20"><p:PersonStatus>
<p:ContactGroupCollection count="1"><p:ContactGroup><p:ContactGroupIdentifier>0d5f3c1e-8a2b-4c6d-9e7f-102938475610</p:ContactGroupIdentifier>
<p:ContactGroupTypeIdentifier>8</p:ContactGroupTypeIdentifier></p:ContactGroup></p:ContactGroupCollection>
<PersonCategoryCollection xmlns="urn:dk:star:dfdg:PersonStatusService:20"/><!-- c --><p:Note>&amp;&#230;</p:Note>
</p:PersonStatus></p:GetVariablePersonStatusResponse></S:Body></S:Envelope>"#,
    r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>
<h:GetPersonHistoryResponse xmlns:h="urn:dk:star:dfdg:PersonHistoryService:4"><h:PersonHistory>
<h:ContactGroupHistoryCollection/><h:PersonCategoryHistoryCollection><h:PersonCategoryHistory>
<h:RegisteredByOrganisationCode>101</h:RegisteredByOrganisationCode><h:PersonCategoryIdentifier>5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9</h:PersonCategoryIdentifier>
</h:PersonCategoryHistory></h:PersonCategoryHistoryCollection>
</h:PersonHistory></h:GetPersonHistoryResponse></env:Body></env:Envelope>"#,
];

/// The 2xx REST answers of the golden cases, by request path (without the query).
fn golden_rest_answers() -> std::collections::HashMap<String, Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out = std::collections::HashMap::new();
    for service in std::fs::read_dir(&root).unwrap() {
        for case in std::fs::read_dir(service.unwrap().path()).unwrap() {
            let Ok(text) = std::fs::read_to_string(case.unwrap().path().join("upstream.json"))
            else {
                continue;
            };
            let exchanges: serde_json::Value = serde_json::from_str(&text).unwrap();
            for e in exchanges.as_array().into_iter().flatten() {
                let path = e["request"]["path"].as_str().unwrap_or("");
                let path = path.split('?').next().unwrap_or("").to_owned();
                let status = e["response"]["status"].as_u64().unwrap_or(0);
                if (200..300).contains(&status) && e["response"]["body"].is_object() {
                    out.entry(path)
                        .or_insert_with(|| e["response"]["body"].to_string().into_bytes());
                }
            }
        }
    }
    out
}

/// A decoded read's splice, the legacy answer fed in `chunk`-byte pieces and each
/// collection's REST answer from `rest_for` (its request's path; fed cut in two): a spliced
/// answer or a coded fault, and it ends. Whether it spliced.
fn drive_splice(
    call: &Call<'_>,
    legacy: &[u8],
    chunk: usize,
    rest_for: &dyn Fn(&str) -> Vec<u8>,
    compare: bool,
) -> bool {
    let Behaviour::Read(plan) = &call.op.behaviour else {
        return false;
    };
    let read = match Read::new(call, plan) {
        Ok(r) => r,
        Err(f) => {
            assert_coded_failure(call, f);
            return false;
        }
    };
    let mut answer = SplicedAnswer::new(call, &read, compare);
    let mut pieces = legacy.chunks(chunk.max(1));
    let mut out = String::new();
    let mut answered = vec![false; plan.collections.len()];
    let rests: Vec<Vec<u8>> = read.requests().iter().map(|r| rest_for(&r.path)).collect();
    // No REST request (after the caller's cutover): the collection ends unanswered.
    let feed_rest = |i: usize, answer: &mut SplicedAnswer<'_, '_>, out: &mut String| {
        let Some(rest) = rests.get(i) else {
            return answer.end_collection(false);
        };
        let (a, b) = rest.split_at(rest.len() / 2);
        answer.feed(a, out)?;
        answer.feed(b, out)?;
        answer.end_collection(true)
    };
    let result = (|| {
        // Every step consumes a piece, a collection or ends: more steps than that is a loop.
        let most = legacy.len() + 4 * answered.len() + 16;
        for _ in 0..most {
            match answer.next(&mut out)? {
                Splice::More => match pieces.next() {
                    Some(p) => answer.feed_legacy(p)?,
                    None => answer.end_legacy(),
                },
                Splice::Collection(i) => {
                    answered[i] = true;
                    feed_rest(i, &mut answer, &mut out)?;
                }
                Splice::Done => {
                    for (i, done) in answered.iter().enumerate() {
                        if !done {
                            answer.check(i);
                            feed_rest(i, &mut answer, &mut out)?;
                        }
                    }
                    return Ok(true);
                }
            }
        }
        Ok(false)
    })();
    match result {
        Ok(ended) => {
            assert!(ended, "the splice did not end");
            let _ = answer.finish();
            true
        }
        Err(f) => {
            assert_coded_failure(call, f);
            false
        }
    }
}

#[test]
fn any_legacy_answer_is_spliced_or_refused_with_a_code() {
    let (_data, app) = app();
    let converter = app.converter();
    let reads: Vec<Seed> = seeds()
        .into_iter()
        .filter(|seed| {
            let service = converter.plan.service(&seed.endpoint).unwrap();
            let arrival = Arrival::new(
                service,
                &seed.content_type,
                seed.soap_action.as_deref(),
                converter.trace(None),
                Presented::Unverified,
            );
            converter
                .begin(&arrival, &seed.body, jiff::Timestamp::now())
                .is_ok_and(|call| {
                    matches!(call.op.behaviour, Behaviour::Read(_)) && call.who().is_ok()
                })
        })
        .collect();
    assert!(reads.len() >= 4, "read seeds: {}", reads.len());
    let legacy = prop_oneof![
        3 => proptest::sample::select(LEGACY_ANSWERS).prop_map(|s| s.as_bytes().to_vec()),
        3 => (proptest::sample::select(LEGACY_ANSWERS), proptest::collection::vec(mutation(), 1..5))
            .prop_map(|(s, m)| apply(s.as_bytes(), &m)),
        1 => proptest::collection::vec(any::<u8>(), 0..1024),
    ];
    let golden = golden_rest_answers();
    assert!(
        golden.len() >= 4,
        "golden REST answers: {:?}",
        golden.keys()
    );
    let tally = std::cell::Cell::new((0u32, 0u32));
    proptest!(config(), |(
        which in any::<prop::sample::Index>(),
        legacy in legacy,
        chunk in 1usize..64,
        rest in rest_answer(),
        rest_mutations in proptest::collection::vec(mutation(), 0..3),
        // 0: the golden answer of the collection's path; 1: it mutated; 2: `rest`.
        rest_kind in prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        compare in any::<bool>(),
    )| {
        let rest_for = |path: &str| match (rest_kind, golden.get(path.split('?').next().unwrap_or(""))) {
            (0, Some(g)) => g.clone(),
            (1, Some(g)) => apply(g, &rest_mutations),
            _ => rest.clone(),
        };
        let seed = which.get(&reads);
        let service = converter.plan.service(&seed.endpoint).unwrap();
        let arrival = Arrival::new(
            service,
            &seed.content_type,
            seed.soap_action.as_deref(),
            converter.trace(None),
            Presented::Unverified,
        );
        let call = converter
            .begin(&arrival, &seed.body, jiff::Timestamp::now())
            .unwrap();
        let (spliced, refused) = tally.get();
        tally.set(if drive_splice(&call, &legacy, chunk, &rest_for, compare) {
            (spliced + 1, refused)
        } else {
            (spliced, refused + 1)
        });
    });
    // Both sides are reached: answers that still splice, and refusals.
    let (spliced, refused) = tally.get();
    assert!(
        spliced > 50 && refused > 50,
        "spliced {spliced}, refused {refused}"
    );
}
