#![allow(clippy::unwrap_used, clippy::expect_used)]
//! WSB end to end: the reference service POSTs its events to real HTTP receivers on
//! loopback (raw HTTP on a tokio listener, so that they can fail, hang and recover as a
//! subscriber's endpoint does). Creates, updates, rule 5's automatic close and the CPR
//! change produce the right events in order for each subscriber; a receiver that fails is
//! retried, one that hangs times out, one that never recovers gets its events parked and
//! redelivered on STAR's request; one subscription down does not hold up another; and the
//! backend killed with SIGKILL before delivering sends every acknowledged change's event
//! after its restart.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use common::child::{ChildGuard, assert_not_logged, closed_url};
use common::http::read_request_with_body;
use common::*;
use vos_converter::backend::wsb::delivery::WsbSettings;
use vos_converter::dktime::Clock;

const CPR: &str = "0101800001";
const NEW_CPR: &str = "0202800002";
const OTHER_CPR: &str = "0303800003";

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

/// What a receiver does with the n-th request (0-based) it gets.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

type Policy = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// A subscriber's endpoint: records every request it gets (the event, and whether it was
/// acknowledged) and answers by its policy, which a test may change.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(Instant, Value, bool)>>>,
    policy: Arc<Mutex<Policy>>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start(policy: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wsb", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            got: Arc::default(),
            policy: Arc::new(Mutex::new(Arc::new(policy))),
            heads: Arc::default(),
        };
        let me = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some((head, body)) = read_request_with_body(&mut conn, &mut buf).await
                    {
                        let n = me.got.lock().unwrap().len();
                        let policy = me.policy.lock().unwrap().clone();
                        let reply = policy(n);
                        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let ok = matches!(reply, Reply::Status(s) if (200..300).contains(&s));
                        me.got.lock().unwrap().push((Instant::now(), event, ok));
                        me.heads.lock().unwrap().push(head);
                        match reply {
                            Reply::Status(s) => {
                                let answer = format!("HTTP/1.1 {s} X\r\ncontent-length: 0\r\n\r\n");
                                if conn.write_all(answer.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Reply::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                        }
                    }
                });
            }
        });
        r
    }

    fn set(&self, policy: impl Fn(usize) -> Reply + Send + Sync + 'static) {
        *self.policy.lock().unwrap() = Arc::new(policy);
    }

    /// The events acknowledged so far, in the order they arrived.
    fn acked(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, ok)| *ok)
            .map(|(_, e, _)| e.clone())
            .collect()
    }

    fn attempts(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e, _)| e.clone())
            .collect()
    }

    /// Waits (up to 30 s) until `n` events were acknowledged; returns them.
    async fn wait_acked(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let acked = self.acked();
            if acked.len() >= n {
                return acked;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} events, got {}: {acked:#?}",
                acked.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn fast() -> WsbSettings {
    WsbSettings {
        timeout: Duration::from_millis(2000),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        ..WsbSettings::default()
    }
}

async fn subscribe(b: &Backend, org: Org, endpoint: &str, entiteter: &[&str]) -> String {
    let a = b
        .post(
            "/wsb/abonnementer",
            org,
            json!({"endpoint": endpoint, "entiteter": entiteter}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    a.body["id"].as_str().unwrap().to_owned()
}

async fn metrics(b: &Backend) -> String {
    b.client
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a metric line that starts with `prefix` (0 when absent).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn summary(events: &[Value]) -> Vec<(String, u64, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["entitet"].as_str().unwrap().to_owned(),
                e["aendringstype"].as_u64().unwrap(),
                e["data"]["version"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn sekvenser(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["sekvens"].as_i64().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Events, routing, the CPR change
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn changes_reach_each_subscriber_it_may_see_in_order() {
    let b = start_with_wsb(Clock::System, fast());
    b.person(CPR, "101", Some("12"), false).await;
    b.person(OTHER_CPR, "147", Some("34"), false).await;
    let star = Receiver::start(|_| Reply::Status(200)).await;
    let jobcentre = Receiver::start(|_| Reply::Status(204)).await;
    let akasse = Receiver::start(|_| Reply::Status(202)).await;
    subscribe(
        &b,
        STAR,
        &star.url,
        &["Kontaktgruppe", "Personkategori", "CprSkift"],
    )
    .await;
    subscribe(
        &b,
        JOBCENTER_101,
        &jobcentre.url,
        &["Kontaktgruppe", "Personkategori"],
    )
    .await;
    subscribe(&b, AKASSE_12, &akasse.url, &["Kontaktgruppe", "CprSkift"]).await;

    // Type 13 (jobafklaring), then type 25 closes it (rule 5: an `updated` of its own),
    // then type 25 gets an end date; a person category; another municipality's citizen.
    let kg13 = b
        .create_kg(JOBCENTER_101, CPR, 13, "2025-01-01", None)
        .await;
    assert_eq!(kg13.status, StatusCode::CREATED, "{kg13:?}");
    let kg25 = b
        .create_kg(JOBCENTER_101, CPR, 25, "2025-03-01", None)
        .await;
    assert_eq!(kg25.status, StatusCode::CREATED, "{kg25:?}");
    let kg25_id = kg25.body["id"].as_str().unwrap().to_owned();
    let end = b
        .patch(
            &format!("/kontaktgrupper/{kg25_id}"),
            JOBCENTER_101,
            json!({"cpr": CPR, "slutdato": "2025-06-30"}),
        )
        .await;
    assert_eq!(end.status, StatusCode::OK, "{end:?}");
    let pc = b.create_pc(JOBCENTER_101, CPR, 3, "2025-01-01").await;
    assert_eq!(pc.status, StatusCode::CREATED, "{pc:?}");
    let other = b.create_kg(STAR, OTHER_CPR, 1, "2025-01-01", None).await;
    assert_eq!(other.status, StatusCode::CREATED, "{other:?}");
    // A refused change writes no event.
    let refused = b
        .create_kg(JOBCENTER_101, CPR, 1, "2025-07-01", Some("2099-01-01"))
        .await;
    assert_eq!(refused.fejlkode(), 100028);
    // The CPR change, as STAR; repeated: a no-op, with the same id.
    let change = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": CPR, "nytCpr": NEW_CPR}),
        )
        .await;
    assert_eq!(change.status, StatusCode::OK, "{change:?}");
    let again = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": CPR, "nytCpr": NEW_CPR}),
        )
        .await;
    assert_eq!(again.body["id"], change.body["id"]);

    let star_got = star.wait_acked(7).await;
    let kg = |t: u64, v: u64| ("Kontaktgruppe".to_owned(), t, v);
    assert_eq!(
        summary(&star_got),
        vec![
            kg(1, 1),
            kg(2, 2), // 13 closed by 25
            kg(1, 1),
            kg(2, 2), // 25's end date
            ("Personkategori".into(), 1, 1),
            kg(1, 1), // the other municipality's citizen
            ("CprSkift".into(), 1, 0),
        ]
    );
    // STAR sees every event: sekvens without gaps.
    let s = sekvenser(&star_got);
    assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "{s:?}");

    let jc = jobcentre.wait_acked(5).await;
    assert_eq!(summary(&jc), summary(&star_got[..5]));
    let ak = akasse.wait_acked(5).await;
    assert_eq!(
        summary(&ak),
        vec![
            kg(1, 1),
            kg(2, 2),
            kg(1, 1),
            kg(2, 2),
            ("CprSkift".into(), 1, 0)
        ]
    );
    // Nothing more arrives for them (the other citizen, the person category).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(jobcentre.acked().len(), 5);
    assert_eq!(akasse.acked().len(), 5);

    // The contract fields.
    let first = &star_got[0];
    assert_eq!(first["entitetId"], 100008);
    assert_eq!(first["cpr"], CPR);
    assert_eq!(first["noegle"]["kontaktgruppeId"], kg13.body["id"]);
    assert_eq!(first["data"], kg13.body);
    assert_eq!(first["registreretAf"]["organisationstype"], 1);
    assert_eq!(first["registreretAf"]["organisationskode"], "101");
    assert_eq!(first["registreretAf"]["brugerId"], "test");
    assert!(first["tidspunkt"].as_str().unwrap().ends_with(":00"));
    assert_eq!(star_got[1]["noegle"]["kontaktgruppeId"], kg13.body["id"]);
    assert_eq!(star_got[1]["data"]["slutdato"], "2025-02-28");
    assert_eq!(star_got[4]["entitetId"], 100009);
    assert_eq!(star_got[4]["noegle"]["personkategoriId"], pc.body["id"]);
    let cpr_event = &star_got[6];
    assert_eq!(cpr_event["entitetId"], 100010);
    assert_eq!(cpr_event["cpr"], NEW_CPR);
    assert_eq!(cpr_event["noegle"]["cprSkiftId"], change.body["id"]);
    assert_eq!(
        cpr_event["data"],
        json!({"gammeltCpr": CPR, "nytCpr": NEW_CPR})
    );
    assert_eq!(cpr_event["registreretAf"]["organisationstype"], 5);
    // STAR, who sees everyone, is told where the citizen belongs (a router needs it); the
    // others are not.
    assert_eq!(
        first["borger"],
        json!({"kommunekode": "101", "akasse": "12"})
    );
    assert_eq!(
        star_got[5]["borger"],
        json!({"kommunekode": "147", "akasse": "34"})
    );
    assert!(jc[0].get("borger").is_none() && ak[0].get("borger").is_none());
    let ids: std::collections::HashSet<_> =
        star_got.iter().map(|e| e["beskedId"].clone()).collect();
    assert_eq!(ids.len(), 7);
    // The CPR travels in the body, never in the URL.
    for head in star.heads.lock().unwrap().iter() {
        assert!(!head.contains(CPR) && !head.contains(NEW_CPR), "{head}");
        assert!(head.starts_with("post /wsb http/1.1"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
    }

    let m = metrics(&b).await;
    assert_eq!(
        metric(&m, "wsb_events_written_total{entitet=\"Kontaktgruppe\"}"),
        5.0
    );
    assert_eq!(
        metric(&m, "wsb_events_written_total{entitet=\"Personkategori\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "wsb_events_written_total{entitet=\"CprSkift\"}"),
        1.0
    );
    assert!(m.contains("wsb_delivery_latency_seconds_count 17"), "{m}");
    assert_not_logged(
        "the backend",
        &String::from_utf8_lossy(&logs().lock().unwrap()),
        &[CPR, NEW_CPR],
    );
}

#[tokio::test]
async fn the_cpr_change_moves_everything_and_is_refused_where_it_must_be() {
    let b = start_with_wsb(Clock::System, fast());
    b.person(CPR, "101", Some("12"), true).await;
    b.person(OTHER_CPR, "101", None, false).await;
    let kg = b.create_kg(JOBCENTER_101, CPR, 1, "2025-01-01", None).await;
    b.create_kg(JOBCENTER_101, CPR, 1, "2025-02-01", None).await;
    b.create_pc(JOBCENTER_101, CPR, 3, "2025-01-01").await;
    b.create_kg(JOBCENTER_101, OTHER_CPR, 1, "2025-01-01", None)
        .await;

    // Only STAR; not to the same number; not to a number with registrations.
    let by_jc = b
        .post(
            "/personnummerskift",
            JOBCENTER_101,
            json!({"gammeltCpr": CPR, "nytCpr": NEW_CPR}),
        )
        .await;
    assert_eq!(by_jc.fejlkode(), 900204);
    let same = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": CPR, "nytCpr": CPR}),
        )
        .await;
    assert_eq!(same.fejlkode(), 900108);
    let taken = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": CPR, "nytCpr": OTHER_CPR}),
        )
        .await;
    assert_eq!(taken.fejlkode(), 900308);
    let unknown = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": "0404800004", "nytCpr": "0505800005"}),
        )
        .await;
    assert_eq!(unknown.fejlkode(), 900303);
    let bad = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": "123", "nytCpr": NEW_CPR}),
        )
        .await;
    assert_eq!(bad.fejlkode(), 900102);

    let before_hist = b
        .get("/kontaktgruppehistorik", JOBCENTER_101, CPR)
        .await
        .ok();
    let before_pk = b.get("/personkategorier", JOBCENTER_101, CPR).await.ok();
    let ok = b
        .post(
            "/personnummerskift",
            STAR,
            json!({"gammeltCpr": CPR, "nytCpr": NEW_CPR}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");

    // The old number: as an unknown person (and not the jobcentre's any more).
    let old = b.get("/kontaktgrupper", STAR, CPR).await;
    assert_eq!(old.fejlkode(), 900303);
    let old_jc = b.get("/kontaktgrupper", JOBCENTER_101, CPR).await;
    assert_eq!(old_jc.status, StatusCode::FORBIDDEN);
    // The new number: the same history, the same person categories, the register entry
    // (rule 2 still applies: enrolled).
    let hist = b
        .get("/kontaktgruppehistorik", JOBCENTER_101, NEW_CPR)
        .await
        .ok();
    assert_eq!(hist, before_hist);
    let pk = b
        .get("/personkategorier", JOBCENTER_101, NEW_CPR)
        .await
        .ok();
    assert_eq!(pk, before_pk);
    let one = b
        .get(
            &format!("/kontaktgrupper/{}", kg.body["id"].as_str().unwrap()),
            JOBCENTER_101,
            NEW_CPR,
        )
        .await
        .ok();
    assert_eq!(one["id"], kg.body["id"]);
    let switch = b
        .create_kg(JOBCENTER_101, NEW_CPR, 2, "2025-06-01", None)
        .await;
    assert_eq!(switch.fejlkode(), 100029);
    // Registering on the old number again is the unregistered person's: STAR only.
    let again_old = b.create_kg(JOBCENTER_101, CPR, 1, "2025-06-01", None).await;
    assert_eq!(again_old.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn subscriptions_are_checked_and_each_organisation_sees_its_own() {
    let b = start_with_wsb(Clock::System, fast());
    let ok = "http://127.0.0.1:9/wsb";
    for (endpoint, code) in [
        ("ftp://127.0.0.1/wsb", 900109),
        ("http://example.com/wsb", 900109),
        ("https://user:pw@example.com/wsb", 900109),
        ("https://example.com/wsb#x", 900109),
        ("not a url", 900109),
    ] {
        let a = b
            .post(
                "/wsb/abonnementer",
                JOBCENTER_101,
                json!({"endpoint": endpoint, "entiteter": ["Kontaktgruppe"]}),
            )
            .await;
        assert_eq!(a.fejlkode(), code, "{endpoint}");
    }
    for (org, entiteter) in [
        (JOBCENTER_101, json!([])),
        (JOBCENTER_101, json!(["Borger"])),
        (JOBCENTER_101, json!(["Kontaktgruppe", "Kontaktgruppe"])),
        (AKASSE_12, json!(["Personkategori"])),
        (ANDEN_AKTOER, json!(["CprSkift"])),
    ] {
        let a = b
            .post(
                "/wsb/abonnementer",
                org,
                json!({"endpoint": ok, "entiteter": entiteter}),
            )
            .await;
        assert_eq!(a.fejlkode(), 900110, "{org:?} {entiteter}");
    }
    let https = subscribe(
        &b,
        JOBCENTER_101,
        "https://kss.example.dk/wsb",
        &["Kontaktgruppe"],
    )
    .await;
    let own = subscribe(&b, JOBCENTER_101, ok, &["CprSkift"]).await;
    let theirs = subscribe(&b, AKASSE_12, ok, &["Kontaktgruppe"]).await;

    let mine = b
        .send(
            Method::GET,
            "/wsb/abonnementer",
            Some(JOBCENTER_101),
            None,
            None,
        )
        .await;
    let ids: Vec<_> = mine.body["abonnementer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![https.clone(), own.clone()]);
    let all = b
        .send(
            Method::GET,
            "/wsb/abonnementer?alle=true",
            Some(STAR),
            None,
            None,
        )
        .await;
    assert_eq!(all.body["abonnementer"].as_array().unwrap().len(), 3);
    let not_star = b
        .send(
            Method::GET,
            "/wsb/abonnementer?alle=true",
            Some(JOBCENTER_101),
            None,
            None,
        )
        .await;
    assert_eq!(not_star.fejlkode(), 900204);
    let parked = b
        .send(Method::GET, "/wsb/parkerede", Some(AKASSE_12), None, None)
        .await;
    assert_eq!(parked.fejlkode(), 900204);

    // Another organisation's subscription cannot be ended; one's own can, once.
    let other = b
        .send(
            Method::DELETE,
            &format!("/wsb/abonnementer/{theirs}"),
            Some(JOBCENTER_101),
            None,
            None,
        )
        .await;
    assert_eq!(other.fejlkode(), 900307);
    let mine = b
        .send(
            Method::DELETE,
            &format!("/wsb/abonnementer/{own}"),
            Some(JOBCENTER_101),
            None,
            None,
        )
        .await;
    assert_eq!(mine.status, StatusCode::NO_CONTENT);
    let twice = b
        .send(
            Method::DELETE,
            &format!("/wsb/abonnementer/{own}"),
            Some(JOBCENTER_101),
            None,
            None,
        )
        .await;
    assert_eq!(twice.fejlkode(), 900307);

    // Outside dev mode: https only.
    let prod = start_with(Clock::System, false);
    let a = prod
        .post(
            "/wsb/abonnementer",
            JOBCENTER_101,
            json!({"endpoint": ok, "entiteter": ["Kontaktgruppe"]}),
        )
        .await;
    assert_eq!(a.fejlkode(), 900109);
    subscribe(
        &prod,
        JOBCENTER_101,
        "https://kss.example.dk/wsb",
        &["Kontaktgruppe"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Failing receivers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_receiver_that_fails_three_times_then_accepts_gets_every_event_in_order() {
    let b = start_with_wsb(Clock::System, fast());
    b.person(CPR, "101", None, false).await;
    let r = Receiver::start(|n| {
        if n < 3 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    subscribe(&b, STAR, &r.url, &["Kontaktgruppe"]).await;
    b.create_kg(STAR, CPR, 1, "2025-01-01", None).await;
    b.create_kg(STAR, CPR, 2, "2025-02-01", None).await;
    let got = r.wait_acked(3).await;
    // The first event four times (three refusals, then the 2xx), then the rest in order.
    let attempts = r.attempts();
    let first_id = &got[0]["beskedId"];
    assert_eq!(
        attempts
            .iter()
            .take(4)
            .filter(|e| &e["beskedId"] == first_id)
            .count(),
        4
    );
    assert_eq!(sekvenser(&got), vec![1, 2, 3]);
    let m = metrics(&b).await;
    assert!(metric(&m, "wsb_delivery_retries_total{") >= 3.0, "{m}");
    assert!(metric(&m, "wsb_events_delivered_total{") >= 3.0, "{m}");
    assert!(m.contains("wsb_subscription_lag_seconds{"), "{m}");
}

#[tokio::test]
async fn a_receiver_that_hangs_is_timed_out_and_retried() {
    let b = start_with_wsb(
        Clock::System,
        WsbSettings {
            timeout: Duration::from_millis(300),
            ..fast()
        },
    );
    b.person(CPR, "101", None, false).await;
    let r = Receiver::start(|n| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    subscribe(&b, STAR, &r.url, &["Kontaktgruppe"]).await;
    b.create_kg(STAR, CPR, 1, "2025-01-01", None).await;
    let got = r.wait_acked(1).await;
    assert_eq!(
        r.attempts().len(),
        2,
        "the hung attempt, then the answered one"
    );
    assert_eq!(got[0]["sekvens"], 1);
    let m = metrics(&b).await;
    assert_eq!(metric(&m, "wsb_delivery_retries_total{"), 1.0, "{m}");
}

#[tokio::test]
async fn events_refused_past_the_age_are_parked_and_redelivered_on_request() {
    let b = start_with_wsb(
        Clock::System,
        WsbSettings {
            max_age: Duration::from_millis(400),
            ..fast()
        },
    );
    b.person(CPR, "101", None, false).await;
    let r = Receiver::start(|_| Reply::Status(503)).await;
    let sub = subscribe(&b, STAR, &r.url, &["Kontaktgruppe"]).await;
    b.create_kg(STAR, CPR, 1, "2025-01-01", None).await;
    b.create_kg(STAR, CPR, 2, "2025-02-01", None).await;

    // All three events (create, the automatic close, create) end up parked.
    let deadline = Instant::now() + Duration::from_secs(30);
    let parked = loop {
        let p = b
            .send(Method::GET, "/wsb/parkerede", Some(STAR), None, None)
            .await;
        let list = p.body["parkerede"].as_array().unwrap().clone();
        if list.len() == 3 {
            break list;
        }
        assert!(Instant::now() < deadline, "{p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        parked
            .iter()
            .all(|p| p["abonnementId"] == sub.as_str() && p["fejl"] == "HTTP 503")
    );
    assert!(parked.iter().all(|p| p["forsoeg"].as_u64().unwrap() >= 1));
    let m = metrics(&b).await;
    assert_eq!(metric(&m, "wsb_events_dead_lettered_total{"), 3.0, "{m}");
    assert!(r.acked().is_empty());

    // The receiver is back; STAR redelivers two of them, then the rest.
    r.set(|_| Reply::Status(200));
    let again = b
        .post(
            "/wsb/genleveringer",
            STAR,
            json!({"abonnementId": sub, "sekvenser": [1, 3]}),
        )
        .await;
    assert_eq!(again.body["markeret"], 2, "{again:?}");
    assert_eq!(sekvenser(&r.wait_acked(2).await), vec![1, 3]);
    let rest = b
        .post("/wsb/genleveringer", STAR, json!({"abonnementId": sub}))
        .await;
    assert_eq!(rest.body["markeret"], 1);
    assert_eq!(sekvenser(&r.wait_acked(3).await), vec![1, 3, 2]);
    // The receiver has answered; the backend unparks once it has read that answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = b
            .send(Method::GET, "/wsb/parkerede", Some(STAR), None, None)
            .await;
        if p.body["parkerede"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "still parked: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New events flow again.
    b.create_kg(STAR, CPR, 1, "2025-03-01", Some("2025-03-31"))
        .await;
    assert_eq!(sekvenser(&r.wait_acked(5).await), vec![1, 3, 2, 4, 5]);
    let unknown = b
        .post(
            "/wsb/genleveringer",
            STAR,
            json!({"abonnementId": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(unknown.fejlkode(), 900307);
    let by_jc = b
        .post(
            "/wsb/genleveringer",
            JOBCENTER_101,
            json!({"abonnementId": sub}),
        )
        .await;
    assert_eq!(by_jc.fejlkode(), 900204);
}

#[tokio::test]
async fn a_subscription_that_is_down_does_not_hold_up_another() {
    let b = start_with_wsb(Clock::System, fast());
    b.person(CPR, "101", None, false).await;
    let up = Receiver::start(|_| Reply::Status(200)).await;
    let down = closed_url();
    subscribe(&b, STAR, &format!("{down}/wsb"), &["Kontaktgruppe"]).await;
    subscribe(&b, STAR, &up.url, &["Kontaktgruppe"]).await;
    let mut starts = Vec::new();
    for i in 0..20 {
        starts.push(Instant::now());
        let a = b
            .create_kg(STAR, CPR, 1, &format!("2025-01-{:02}", i + 1), None)
            .await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    // 20 creates, 19 automatic closes.
    let got = up.wait_acked(39).await;
    assert_eq!(sekvenser(&got), (1..=39).collect::<Vec<_>>());
    let m = metrics(&b).await;
    // The other one is still retrying its first event.
    assert!(metric(&m, "wsb_delivery_retries_total{") >= 1.0, "{m}");
    let delivered: Vec<f64> = m
        .lines()
        .filter(|l| l.starts_with("wsb_events_delivered_total{"))
        .map(|l| metric(l, "wsb"))
        .collect();
    assert_eq!(delivered, vec![39.0], "{m}");
}

// ---------------------------------------------------------------------------------------
// SIGKILL between commit and delivery
// ---------------------------------------------------------------------------------------

struct Child {
    guard: ChildGuard,
    base: String,
}

fn start_binary(db: &std::path::Path) -> Child {
    let mut guard = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_vos-converter"))
            .args(["backend", "--listen", "127.0.0.1:0", "--dev"])
            .arg("--db")
            .arg(db)
            .args(["--wsb-retry-initial-ms", "20", "--wsb-retry-max-ms", "100"])
            .env("RUST_LOG", "info")
            .env_remove("VOS_BACKEND_LISTEN")
            .env_remove("VOS_BACKEND_DB"),
    );
    let mut base = String::new();
    guard.wait_for("the backend", |line| {
        let addr = line.strip_prefix("listening on ");
        if let Some(a) = addr {
            base = a.trim().to_owned();
        }
        addr.is_some()
    });
    Child { guard, base }
}

#[tokio::test]
async fn every_acknowledged_change_is_delivered_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vos.db");
    let mut child = start_binary(&db);
    let client = reqwest::Client::new();
    let as_star = |m: Method, path: &str, base: &str| {
        client
            .request(m, format!("{base}{BASE}{path}"))
            .header("X-Organisation-Type", "5")
            .header("X-Organisation-Code", "12345678")
    };
    // While the backend runs the first time the receiver takes ten events, then refuses.
    let r = Receiver::start(|n| Reply::Status(if n < 10 { 200 } else { 503 })).await;
    let sub = answer(
        as_star(Method::POST, "/wsb/abonnementer", &child.base).json(&json!({
            "endpoint": r.url, "entiteter": ["Kontaktgruppe"]
        })),
    )
    .await;
    assert_eq!(sub.status, StatusCode::CREATED);
    let mut acknowledged = Vec::new();
    for i in 0..25 {
        let a = answer(
            as_star(Method::POST, "/kontaktgrupper", &child.base).json(&json!({
                "cpr": CPR, "kontaktgruppetype": 1, "startdato": format!("2025-01-{:02}", i + 1),
                "haendelsestidspunkt": "2025-01-01T10:00:00+01:00"
            })),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        acknowledged.push(a.body["id"].as_str().unwrap().to_owned());
    }
    r.wait_acked(10).await;
    let log = child.guard.kill();
    let before = r.acked().len();

    // Restarted on the same database, with the receiver back. 25 creates and 24 automatic
    // closes: every one arrives, in order, with no gap; one delivered just before the kill
    // may come twice (at least once), and is counted.
    r.set(|_| Reply::Status(200));
    let mut child = start_binary(&db);
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = r.acked();
        if got.last().is_some_and(|e| e["sekvens"] == 49) {
            break got;
        }
        assert!(Instant::now() < deadline, "{:?}", sekvenser(&got));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let s = sekvenser(&got);
    let mut unique = s.clone();
    unique.dedup();
    assert_eq!(
        unique,
        (1..=49).collect::<Vec<_>>(),
        "in order, no gap: {s:?}"
    );
    let duplicates = s.len() - unique.len();
    eprintln!("{before} delivered before the kill, {duplicates} delivered twice");
    assert!(duplicates <= 1, "{s:?}");
    let mut created: Vec<_> = got
        .iter()
        .filter(|e| e["aendringstype"] == 1)
        .map(|e| e["noegle"]["kontaktgruppeId"].as_str().unwrap().to_owned())
        .collect();
    created.dedup();
    assert_eq!(created, acknowledged);
    let log2 = child.guard.kill();
    assert_not_logged("the backend", &(log + &log2), &[CPR]);
}

// ---------------------------------------------------------------------------------------
// Mutual TLS
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn over_https_the_backend_presents_its_client_certificate() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use vos_converter::door::devcerts::{Ca, Subject};

    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("WSB test CA").unwrap();
    let server = ca.server(&["localhost"]).unwrap();
    let backend_cert = ca
        .client(&Subject::Oces3 {
            cvr: "55570117".into(),
            uuid: uuid::Uuid::new_v4(),
            cn: "VisiteringOgStatus".into(),
            o: "STAR".into(),
        })
        .unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_pem = write("ca.pem", &ca.cert_pem);
    let cert = write("backend.pem", &backend_cert.cert_pem);
    let key = write("backend.key", &backend_cert.key_pem);

    // The subscriber: HTTPS that requires a client certificate of the CA.
    let provider = vos_converter::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // (the client certificate the connection presented, the event)
    type Seen = Arc<Mutex<Vec<(Vec<u8>, Value)>>>;
    let got: Seen = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
                .unwrap_or_default();
            let mut buf = Vec::new();
            while let Some((_, body)) = read_request_with_body(&mut tls, &mut buf).await {
                seen.lock()
                    .unwrap()
                    .push((peer.clone(), serde_json::from_slice(&body).unwrap()));
                let ok = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                if tls.write_all(ok).await.is_err() {
                    break;
                }
            }
        }
    });

    let tls = vos_converter::tls::client_config(Some((&cert, &key)), Some(&ca_pem)).unwrap();
    let b = start_with_wsb(
        Clock::System,
        WsbSettings {
            tls: Some(Arc::new(tls)),
            ..fast()
        },
    );
    b.person(CPR, "101", None, false).await;
    subscribe(
        &b,
        STAR,
        &format!("https://localhost:{port}/wsb"),
        &["Kontaktgruppe"],
    )
    .await;
    let kg = b.create_kg(STAR, CPR, 1, "2025-01-01", None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing delivered over HTTPS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (peer, event) = got.lock().unwrap()[0].clone();
    assert_eq!(peer, backend_cert.der, "the backend's client certificate");
    assert_eq!(event["noegle"]["kontaktgruppeId"], kg.body["id"]);
}

/// The converter's own WSB subscription (as STAR) to `receiver`, at backend `b`.
fn converter_subscription(
    b: &Backend,
    receiver: &str,
) -> vos_converter::wsrm::subscribe::Subscription {
    vos_converter::wsrm::subscribe::Subscription {
        rest_url: b.base.clone(),
        receiver_url: receiver.into(),
        code: STAR.1.into(),
        prune_loopback: false,
    }
}

/// Replicas of the converter started together each look for their WSB subscription, find
/// none and make one: `Subscription::ensure` then keeps one (the least id, the same on every
/// replica) and ends the others, so that no event is delivered twice. One made before is
/// kept, and duplicates an earlier start left are ended too.
#[tokio::test]
async fn replicas_started_together_keep_one_wsb_subscription() {
    let b = start_with_wsb(Clock::System, fast());
    let receiver = "https://converter.example/wsb";
    let sub = converter_subscription(&b, receiver);
    let ours = |b: &Backend| {
        let client = b.client.clone();
        let url = format!("{}{}/wsb/abonnementer", b.base, vos_converter::vos::BASE);
        async move {
            let list: Value = client
                .get(url)
                .header(vos_converter::vos::HDR_ORG_TYPE, "5")
                .header(vos_converter::vos::HDR_ORG_CODE, STAR.1)
                .header(vos_converter::vos::HDR_USER, "test")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut ids: Vec<String> = list["abonnementer"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["endpoint"] == receiver)
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let client = reqwest::Client::new();
    // A replica that listed before another made its own may answer its own id, which the
    // other then ends if it is not the least: only what is left counts.
    futures_util::future::join_all((0..4).map(|_| {
        let (sub, client) = (sub.clone(), client.clone());
        async move { sub.ensure(&client).await.unwrap() }
    }))
    .await;
    let left = ours(&b).await;
    assert_eq!(left.len(), 1, "one subscription left: {left:?}");
    // Again: kept, nothing made.
    assert_eq!(sub.ensure(&client).await.unwrap(), left[0]);
    assert_eq!(ours(&b).await, left);
    // Duplicates left by an earlier start (made here directly) are ended at the next.
    let all = ["Kontaktgruppe", "Personkategori", "CprSkift"];
    subscribe(&b, STAR, receiver, &all).await;
    subscribe(&b, STAR, receiver, &all).await;
    assert_eq!(ours(&b).await.len(), 3);
    let least = ours(&b).await[0].clone();
    assert_eq!(sub.ensure(&client).await.unwrap(), least);
    assert_eq!(ours(&b).await, vec![least]);
}

/// `systemctl reload vos-backend` sends SIGHUP: without TLS there is nothing to reload, and
/// the backend says so and goes on (it used to end: no handler).
#[tokio::test]
async fn the_backend_without_tls_survives_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_binary(&dir.path().join("vos.db"));
    let sent = Command::new("kill")
        .args(["-HUP", &child.guard.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !child
        .guard
        .stderr_text()
        .contains("SIGHUP: nothing to reload")
    {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP line: {}",
            child.guard.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still answering (any answer: the backend has no health route of its own).
    reqwest::get(format!("{}/healthz", child.base))
        .await
        .expect("the backend answers after SIGHUP");
    let (status, _) = child.guard.stop();
    assert!(status.success(), "{status:?}");
}

/// The converter keeps its WSB subscription: one deleted at REST (or lost with a restored
/// database) is made again at the next check, without a restart.
#[tokio::test]
async fn a_deleted_wsb_subscription_is_made_again() {
    let b = start_with_wsb(Clock::System, fast());
    let receiver = "https://converter.example/wsb";
    let sub = converter_subscription(&b, receiver);
    let ours = || async {
        let list = b
            .send(Method::GET, "/wsb/abonnementer", Some(STAR), None, None)
            .await;
        list.body["abonnementer"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["endpoint"] == receiver)
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let wait_for_one = || async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids = ours().await;
            if ids.len() == 1 {
                return ids[0].clone();
            }
            assert!(Instant::now() < deadline, "subscriptions: {ids:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let keeper = tokio::spawn(sub.keep(reqwest::Client::new(), None, Duration::from_millis(100)));
    let first = wait_for_one().await;
    let gone = b
        .send(
            Method::DELETE,
            &format!("/wsb/abonnementer/{first}"),
            Some(STAR),
            None,
            None,
        )
        .await;
    assert!(gone.status.is_success(), "{gone:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let id = wait_for_one().await;
        if id != first {
            break id;
        }
        assert!(Instant::now() < deadline, "not made again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(again, first);
    keeper.abort();
}
