//! The reference REST service over HTTP: every operationId, every rule of rules.md it owns
//! (1, 2, 4, 5, 6, 7, 8), the idempotent creates, and the error catalogue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use vos_converter::dktime::Clock;
use vos_converter::vos;

/// 00:30 on 2026-03-30 in Copenhagen (summer time, UTC+2) is still 2026-03-29 in UTC.
const NIGHT: &str = "2026-03-29T22:30:00Z";
const TODAY: &str = "2026-03-30";
const TOMORROW: &str = "2026-03-31";

#[tokio::test]
async fn every_operation_id_answers() {
    let b = start(at(NIGHT));
    let cpr = "0101800001";
    b.person(cpr, "101", Some("12"), false).await;

    // CreateKontaktgruppe, CreateKontaktgruppeMedIdentifier, UpdateKontaktgruppe
    let kg = b.create_kg(JOBCENTER_101, cpr, 1, "2025-01-01", None).await;
    assert_eq!(kg.status, StatusCode::CREATED);
    let kg_id = kg.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        kg.location.as_deref(),
        Some(format!("{BASE}/kontaktgrupper/{kg_id}").as_str())
    );
    let id2 = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    let kg2 = b
        .put(
            &format!("/kontaktgrupper/{id2}"),
            JOBCENTER_101,
            json!({"cpr": cpr, "kontaktgruppetype": 2, "startdato": "2025-06-01", "haendelsestidspunkt": "2025-06-01T08:00:00Z"}),
        )
        .await;
    assert_eq!(kg2.status, StatusCode::CREATED, "{kg2:?}");
    assert_eq!(kg2.body["id"], id2);
    let upd = b
        .patch(
            &format!("/kontaktgrupper/{id2}"),
            JOBCENTER_101,
            json!({"cpr": cpr, "slutdato": "2026-01-31"}),
        )
        .await;
    assert_eq!(upd.status, StatusCode::OK, "{upd:?}");
    assert_eq!(
        (upd.body["slutdato"].as_str(), upd.body["version"].as_u64()),
        (Some("2026-01-31"), Some(2))
    );

    // GetKontaktgrupper, GetKontaktgruppe, GetKontaktgruppeHistorik
    let all = b.get("/kontaktgrupper", JOBCENTER_101, cpr).await.ok();
    assert_eq!(all["kontaktgrupper"].as_array().unwrap().len(), 2);
    let one = b
        .get(&format!("/kontaktgrupper/{kg_id}"), JOBCENTER_101, cpr)
        .await
        .ok();
    assert_eq!(
        (one["kontaktgruppetype"].as_u64(), one["slutdato"].as_str()),
        (Some(1), Some("2025-05-31"))
    );
    let hist = b
        .get("/kontaktgruppehistorik", JOBCENTER_101, cpr)
        .await
        .ok();
    // kg v1, kg v2 (closed by kg2), kg2 v1, kg2 v2 (end date): oldest first.
    let versions: Vec<(String, u64)> = hist["versioner"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (kg_id.clone(), 1),
            (kg_id.clone(), 2),
            (id2.to_owned(), 1),
            (id2.to_owned(), 2)
        ]
    );

    // CreatePersonkategori, CreatePersonkategoriMedIdentifier, UpdatePersonkategori
    let pc = b.create_pc(JOBCENTER_101, cpr, 1, "2025-01-01").await;
    assert_eq!(pc.status, StatusCode::CREATED, "{pc:?}");
    let pc_id = pc.body["id"].as_str().unwrap().to_owned();
    let pid = "2b1c6f1e-2a1b-4d9a-9c7e-0a1b2c3d4e5f";
    let body = json!({"cpr": cpr, "personkategoritype": 2, "startdato": "2025-09-01", "haendelsestidspunkt": "2025-09-01T08:00:00Z"});
    let pc2 = b
        .put(&format!("/personkategorier/{pid}"), JOBCENTER_101, body)
        .await;
    assert_eq!(pc2.status, StatusCode::CREATED, "{pc2:?}");
    let body = json!({"cpr": cpr, "personkategoritype": 3, "startdato": "2025-09-01", "haendelsestidspunkt": "2025-09-02T08:00:00Z"});
    let upd = b
        .patch(&format!("/personkategorier/{pid}"), JOBCENTER_101, body)
        .await
        .ok();
    assert_eq!(
        (upd["personkategoritype"].as_u64(), upd["version"].as_u64()),
        (Some(3), Some(2))
    );

    // GetPersonkategorier, GetPersonkategori, GetPersonkategoriHistorik
    let all = b.get("/personkategorier", JOBCENTER_101, cpr).await.ok();
    assert_eq!(all["personkategorier"].as_array().unwrap().len(), 2);
    let one = b
        .get(&format!("/personkategorier/{pc_id}"), JOBCENTER_101, cpr)
        .await
        .ok();
    assert_eq!(one["slutdato"], "2025-08-31");
    let hist = b
        .get("/personkategorihistorik", JOBCENTER_101, cpr)
        .await
        .ok();
    assert_eq!(hist["versioner"].as_array().unwrap().len(), 4);

    // GetPersonVisiteringOgStatusStatus: current only (kg ended 2025-05-31, kg2 2026-01-31).
    let status = b.get("/status", JOBCENTER_101, cpr).await.ok();
    assert_eq!(status["kontaktgrupper"].as_array().unwrap().len(), 0);
    assert_eq!(status["personkategorier"].as_array().unwrap().len(), 1);
    assert_eq!(status["personkategorier"][0]["id"], pid);

    // GetKontaktgruppetyper, GetPersonkategorityper
    let kgt = b
        .send(
            Method::GET,
            "/kodelister/kontaktgruppetyper",
            Some(ANDEN_AKTOER),
            None,
            None,
        )
        .await
        .ok();
    let codes: Vec<u64> = kgt["koder"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kode"].as_u64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [1, 2, 4, 5, 7, 8, 10, 12, 13, 21, 22, 23, 24, 25, 26, 28]
    );
    assert_eq!(kgt["koder"][0]["navn"], "Dagpengemodtager");
    assert_eq!(kgt["koder"][0]["gyldigFra"], "1990-01-01");
    assert_eq!(kgt["koder"][7]["navngivetIKilden"], false);
    let pct = b
        .send(
            Method::GET,
            "/kodelister/personkategorityper",
            Some(JOBCENTER_101),
            None,
            None,
        )
        .await
        .ok();
    assert!(
        pct["koder"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["navn"] == "Aktivitetsparat")
    );
}

#[tokio::test]
async fn the_dev_latency_delays_every_answer_and_only_in_dev_mode() {
    let late = std::time::Duration::from_millis(1500);
    for (dev, delayed) in [(true, true), (false, false)] {
        let b = common::start_with_latency(Clock::System, dev, late);
        let start = std::time::Instant::now();
        let res = b
            .client
            .get(format!(
                "{}{}/kodelister/kontaktgruppetyper",
                b.base,
                vos::BASE
            ))
            .header(vos::HDR_ORG_TYPE, "5")
            .header(vos::HDR_ORG_CODE, "12345678")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // A lower bound holds on any machine; the upper one only says "not 1.5 s late".
        let took = start.elapsed();
        if delayed {
            assert!(took >= late, "dev mode answered after {took:?}");
        } else {
            assert!(took < late, "production mode answered after {took:?}");
        }
    }
}

#[tokio::test]
async fn rule_1_end_date_today_is_allowed_tomorrow_is_100028_in_danish_time() {
    let b = start(at(NIGHT));
    let cpr = "0202800002";
    b.person(cpr, "101", None, false).await;
    let kg = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-01-01", None)
        .await
        .ok();
    let path = format!("/kontaktgrupper/{}", kg["id"].as_str().unwrap());

    let tomorrow = b
        .patch(
            &path,
            JOBCENTER_101,
            json!({"cpr": cpr, "slutdato": TOMORROW}),
        )
        .await;
    assert_eq!(
        (tomorrow.status, tomorrow.fejlkode()),
        (StatusCode::UNPROCESSABLE_ENTITY, 100028)
    );
    assert_eq!(
        tomorrow.body["fejltekst"],
        "Slutdato kan ikke være fremtidig"
    );
    // Today in Denmark is the 30th although it is still the 29th in UTC.
    let today = b
        .patch(&path, JOBCENTER_101, json!({"cpr": cpr, "slutdato": TODAY}))
        .await
        .ok();
    assert_eq!(today["slutdato"], TODAY);

    // Project: the same for a create that sets an end date.
    let create = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-03-31", Some(TOMORROW))
        .await;
    assert_eq!(create.fejlkode(), 100028);
    // A person category may end in the future: rule 1 is about contact groups.
    let pc = b
        .post("/personkategorier", JOBCENTER_101, json!({"cpr": cpr, "personkategoritype": 1, "startdato": TODAY, "slutdato": "2027-01-01", "haendelsestidspunkt": "2026-03-29T22:30:00Z"}))
        .await;
    assert_eq!(pc.status, StatusCode::CREATED, "{pc:?}");
}

#[tokio::test]
async fn rule_1_uses_the_danish_date_on_the_autumn_change_too() {
    // 23:30 UTC on 2026-10-25 is 00:30 on the 26th in Copenhagen (winter time, UTC+1).
    let b = start(at("2026-10-25T23:30:00Z"));
    let cpr = "0303800003";
    b.person(cpr, "101", None, false).await;
    let kg = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-01-01", None)
        .await
        .ok();
    let path = format!("/kontaktgrupper/{}", kg["id"].as_str().unwrap());
    assert_eq!(
        b.patch(
            &path,
            JOBCENTER_101,
            json!({"cpr": cpr, "slutdato": "2026-10-27"})
        )
        .await
        .fejlkode(),
        100028
    );
    b.patch(
        &path,
        JOBCENTER_101,
        json!({"cpr": cpr, "slutdato": "2026-10-26"}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn rule_2_an_enrolled_person_keeps_the_contact_group_type() {
    let b = start(at(NIGHT));
    let (enrolled, free) = ("0404800004", "0505800005");
    b.person(enrolled, "101", None, true).await;
    b.person(free, "101", None, false).await;
    b.create_kg(JOBCENTER_101, enrolled, 1, "2026-01-01", None)
        .await
        .ok();
    b.create_kg(JOBCENTER_101, free, 1, "2026-01-01", None)
        .await
        .ok();

    let switch = b
        .create_kg(JOBCENTER_101, enrolled, 13, "2026-02-01", None)
        .await;
    assert_eq!(
        (switch.status, switch.fejlkode()),
        (StatusCode::UNPROCESSABLE_ENTITY, 100029)
    );
    assert_eq!(
        switch.body["fejltekst"],
        "Kontaktgruppen kan ikke ændres til anden kontaktgruppe for tilmeldte, opdater i stedet tilmeldingen"
    );
    // Keeping the same type is allowed (and closes the open one, rule 5).
    let same = b
        .create_kg(JOBCENTER_101, enrolled, 1, "2026-02-01", None)
        .await;
    assert_eq!(same.status, StatusCode::CREATED, "{same:?}");
    // A person who is not enrolled may switch.
    assert_eq!(
        b.create_kg(JOBCENTER_101, free, 13, "2026-02-01", None)
            .await
            .status,
        StatusCode::CREATED
    );
    // Nothing was written by the refused call.
    let all = b.get("/kontaktgrupper", JOBCENTER_101, enrolled).await.ok();
    let types: Vec<u64> = all["kontaktgrupper"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kontaktgruppetype"].as_u64().unwrap())
        .collect();
    assert_eq!(types, [1, 1]);
}

#[tokio::test]
async fn rule_4_update_cannot_change_type_start_or_event_time() {
    let b = start(at(NIGHT));
    let cpr = "0606800006";
    b.person(cpr, "101", None, false).await;
    let kg = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-01-01", None)
        .await
        .ok();
    let path = format!("/kontaktgrupper/{}", kg["id"].as_str().unwrap());
    for (field, value) in [
        ("kontaktgruppetype", json!(2)),
        ("startdato", json!("2026-01-02")),
        ("haendelsestidspunkt", json!("2026-01-02T10:00:00Z")),
    ] {
        let mut body = json!({"cpr": cpr, "slutdato": TODAY});
        body[field] = value;
        let a = b.patch(&path, JOBCENTER_101, body).await;
        assert_eq!(
            (a.status, a.fejlkode()),
            (StatusCode::BAD_REQUEST, 900101),
            "{field}"
        );
        assert!(a.body["detail"].as_str().unwrap().contains(field), "{a:?}");
    }
    let now = b.get(&path, JOBCENTER_101, cpr).await.ok();
    assert_eq!(
        (now["version"].as_u64(), now["kontaktgruppetype"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn rule_5_a_new_registration_closes_the_open_one_the_day_before() {
    let b = start(at(NIGHT));
    let cpr = "0707800007";
    b.person(cpr, "101", None, false).await;
    let first = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-01-01", None)
        .await
        .ok();
    let second = b
        .create_kg(JOBCENTER_101, cpr, 8, "2026-03-01", None)
        .await
        .ok();
    let first_now = b
        .get(
            &format!("/kontaktgrupper/{}", first["id"].as_str().unwrap()),
            JOBCENTER_101,
            cpr,
        )
        .await
        .ok();
    // 2026-02-28: the day before 2026-03-01 (no leap day in 2026).
    assert_eq!(
        (
            first_now["slutdato"].as_str(),
            first_now["version"].as_u64()
        ),
        (Some("2026-02-28"), Some(2))
    );
    assert_eq!(second["slutdato"], serde_json::Value::Null);

    // A start not after the open one's start would close it before it began.
    for start in ["2026-03-01", "2026-02-15"] {
        assert_eq!(
            b.create_kg(JOBCENTER_101, cpr, 8, start, None)
                .await
                .fejlkode(),
            900305
        );
    }
    // Reopening the closed one while the second is open is refused.
    let path = format!("/kontaktgrupper/{}", first["id"].as_str().unwrap());
    let reopen = b
        .patch(&path, JOBCENTER_101, json!({"cpr": cpr, "slutdato": null}))
        .await;
    assert_eq!(
        (reopen.status, reopen.fejlkode()),
        (StatusCode::CONFLICT, 900306)
    );

    // Person categories follow the same rule.
    let p1 = b.create_pc(JOBCENTER_101, cpr, 1, "2026-01-01").await.ok();
    b.create_pc(JOBCENTER_101, cpr, 2, "2026-01-10").await.ok();
    let p1_now = b
        .get(
            &format!("/personkategorier/{}", p1["id"].as_str().unwrap()),
            JOBCENTER_101,
            cpr,
        )
        .await
        .ok();
    assert_eq!(p1_now["slutdato"], "2026-01-09");
    let hist = b
        .get("/personkategorihistorik", JOBCENTER_101, cpr)
        .await
        .ok();
    assert_eq!(
        hist["versioner"].as_array().unwrap().len(),
        3,
        "history keeps every version"
    );
}

#[tokio::test]
async fn rule_6_an_akasse_sees_listed_types_back_four_years_and_no_person_categories() {
    let b = start(at(NIGHT)); // today 2026-03-30; four years back is 2022-03-30
    let cpr = "0808800008";
    b.person(cpr, "101", Some("12"), false).await;
    let mk = |ty: u32, start: &'static str, end: Option<&'static str>| {
        let b = &b;
        async move {
            b.create_kg(STAR, cpr, ty, start, end).await.ok()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let old = mk(1, "2010-01-01", Some("2022-03-29")).await; // ended more than 4 years ago
    let edge = mk(2, "2022-03-01", Some("2022-03-30")).await; // ended exactly 4 years ago
    let hidden_type = mk(12, "2023-01-01", Some("2023-12-31")).await; // type outside the list
    let open = mk(13, "2024-01-01", None).await;
    b.create_pc(STAR, cpr, 2, "2024-01-01").await.ok();

    let seen = b.get("/kontaktgrupper", AKASSE_12, cpr).await.ok();
    let ids: Vec<&str> = seen["kontaktgrupper"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [edge.as_str(), open.as_str()]);
    // The same filter on one by id (unknown rather than forbidden: it does not reveal it)...
    for id in [&old, &hidden_type] {
        assert_eq!(
            b.get(&format!("/kontaktgrupper/{id}"), AKASSE_12, cpr)
                .await
                .fejlkode(),
            900301
        );
    }
    // ...on the history...
    let hist = b.get("/kontaktgruppehistorik", AKASSE_12, cpr).await.ok();
    assert!(
        hist["versioner"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"] != old.as_str() && v["id"] != hidden_type.as_str())
    );
    // ...and STAR sees everything.
    assert_eq!(
        b.get("/kontaktgrupper", STAR, cpr).await.ok()["kontaktgrupper"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Never person categories.
    for path in ["/personkategorier", "/personkategorihistorik"] {
        let a = b.get(path, AKASSE_12, cpr).await;
        assert_eq!(
            (a.status, a.fejlkode()),
            (StatusCode::FORBIDDEN, 900204),
            "{path}"
        );
    }
    let status = b.get("/status", AKASSE_12, cpr).await.ok();
    assert_eq!(status["personkategorier"].as_array().unwrap().len(), 0);
    assert_eq!(status["kontaktgrupper"].as_array().unwrap().len(), 1);
    assert_eq!(
        b.get("/status", JOBCENTER_101, cpr).await.ok()["personkategorier"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn rule_7_who_may_call() {
    let b = start(at(NIGHT));
    let (member, other, unregistered) = ("0909800009", "1010800010", "1111800011");
    b.person(member, "101", Some("12"), false).await;
    b.person(other, "147", None, false).await;
    b.create_kg(STAR, unregistered, 1, "2026-01-01", None)
        .await
        .ok();

    // Jobcenter and Kommune: their own citizens.
    assert!(
        b.create_kg(JOBCENTER_101, member, 1, "2026-01-01", None)
            .await
            .status
            .is_success()
    );
    assert_eq!(
        b.create_kg(JOBCENTER_101, other, 1, "2026-01-01", None)
            .await
            .fejlkode(),
        900203
    );
    assert_eq!(
        b.get("/kontaktgrupper", JOBCENTER_147, member)
            .await
            .fejlkode(),
        900203
    );
    assert!(
        b.get("/kontaktgrupper", KOMMUNE_101, member)
            .await
            .status
            .is_success()
    );
    assert!(
        b.create_kg(JOBCENTER_147, other, 1, "2026-01-01", None)
            .await
            .status
            .is_success()
    );

    // A-kasse: its members; it may register contact groups, not person categories.
    assert!(
        b.get("/kontaktgrupper", AKASSE_12, member)
            .await
            .status
            .is_success()
    );
    assert_eq!(
        b.get("/kontaktgrupper", AKASSE_34, member).await.fejlkode(),
        900203
    );
    assert_eq!(
        b.get("/kontaktgrupper", AKASSE_12, other).await.fejlkode(),
        900203
    );
    assert_eq!(
        b.create_kg(AKASSE_12, member, 1, "2026-02-01", None)
            .await
            .status,
        StatusCode::CREATED
    );
    let pc = b.create_pc(AKASSE_12, member, 1, "2026-01-01").await;
    assert_eq!((pc.status, pc.fejlkode()), (StatusCode::FORBIDDEN, 900204));

    // Anden aktør: nothing about persons.
    assert_eq!(
        b.get("/kontaktgrupper", ANDEN_AKTOER, member)
            .await
            .fejlkode(),
        900204
    );

    // A person not in the register: STAR only.
    assert_eq!(
        b.get("/kontaktgrupper", JOBCENTER_101, unregistered)
            .await
            .fejlkode(),
        900203
    );
    assert!(
        b.get("/kontaktgrupper", STAR, unregistered)
            .await
            .status
            .is_success()
    );
    // A person the service knows nothing about.
    let unknown = b.get("/status", STAR, "1212800012").await;
    assert_eq!(
        (unknown.status, unknown.fejlkode()),
        (StatusCode::NOT_FOUND, 900303)
    );

    // The person register: STAR only.
    let body = json!({"cpr": member, "kommunekode": "147", "akasse": null, "tilmeldt": false});
    assert_eq!(
        b.put("/personregister", JOBCENTER_101, body)
            .await
            .fejlkode(),
        900204
    );
}

#[tokio::test]
async fn the_person_register_route_exists_only_in_dev_mode() {
    let b = start_with(Clock::System, false);
    let body =
        json!({"cpr": "0101800001", "kommunekode": "101", "akasse": null, "tilmeldt": false});
    let a = b.put("/personregister", STAR, body).await;
    assert_eq!((a.status, a.fejlkode()), (StatusCode::NOT_FOUND, 900401));
    let doc: serde_json::Value = b
        .client
        .get(format!("{}/openapi.json", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"].get(format!("{BASE}/personregister")).is_none());
    assert!(doc["paths"].get(format!("{BASE}/kontaktgrupper")).is_some());
}

#[tokio::test]
async fn rule_8_every_record_keeps_its_originator() {
    let b = start(at(NIGHT));
    let cpr = "1303800013";
    b.person(cpr, "101", None, false).await;
    let kg = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-01-01", None)
        .await
        .ok();
    let path = format!("/kontaktgrupper/{}", kg["id"].as_str().unwrap());
    let upd = b
        .patch(&path, STAR, json!({"cpr": cpr, "slutdato": "2026-02-01"}))
        .await
        .ok();
    assert_eq!(
        upd["oprettetAf"],
        json!({"organisationstype": 1, "organisationskode": "101", "brugerId": "test"})
    );
    assert_eq!(
        upd["registreretAf"],
        json!({"organisationstype": 5, "organisationskode": "12345678", "brugerId": "test"})
    );
    let hist = b.get("/kontaktgruppehistorik", STAR, cpr).await.ok();
    let by: Vec<u64> = hist["versioner"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["registreretAf"]["organisationstype"].as_u64().unwrap())
        .collect();
    assert_eq!(by, [1, 5]);
}

#[tokio::test]
async fn create_med_identifier_is_idempotent_and_refuses_other_content() {
    let b = start(at(NIGHT));
    let cpr = "1404800014";
    b.person(cpr, "101", None, false).await;
    let id = "0b7e9c2a-5d1f-4c3e-8a6b-1f2e3d4c5b6a";
    let body = json!({"cpr": cpr, "kontaktgruppetype": 1, "startdato": "2026-01-01", "haendelsestidspunkt": "2026-01-01T09:00:00+01:00"});
    let first = b
        .put(
            &format!("/kontaktgrupper/{id}"),
            JOBCENTER_101,
            body.clone(),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // A change in between does not change what the retry answers.
    b.patch(
        &format!("/kontaktgrupper/{id}"),
        JOBCENTER_101,
        json!({"cpr": cpr, "slutdato": "2026-02-01"}),
    )
    .await
    .ok();
    let again = b
        .put(
            &format!("/kontaktgrupper/{id}"),
            JOBCENTER_101,
            body.clone(),
        )
        .await;
    assert_eq!(
        (again.status, &again.body, &again.location),
        (first.status, &first.body, &first.location)
    );
    // The same instant written with another offset is the same content.
    let mut same = body.clone();
    same["haendelsestidspunkt"] = json!("2026-01-01T08:00:00Z");
    assert_eq!(
        b.put(&format!("/kontaktgrupper/{id}"), JOBCENTER_101, same)
            .await
            .body,
        first.body
    );
    assert_eq!(
        b.get("/kontaktgrupper", JOBCENTER_101, cpr).await.ok()["kontaktgrupper"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let mut other = body.clone();
    other["kontaktgruppetype"] = json!(2);
    let conflict = b
        .put(&format!("/kontaktgrupper/{id}"), JOBCENTER_101, other)
        .await;
    assert_eq!(
        (conflict.status, conflict.fejlkode()),
        (StatusCode::CONFLICT, 900304)
    );
    // Same content from another organisation is not a retry of this one.
    assert_eq!(
        b.put(&format!("/kontaktgrupper/{id}"), STAR, body)
            .await
            .fejlkode(),
        900304
    );

    let pid = "5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d";
    let pbody = json!({"cpr": cpr, "personkategoritype": 2, "startdato": "2026-01-01", "haendelsestidspunkt": "2026-01-01T09:00:00Z"});
    let p1 = b
        .put(
            &format!("/personkategorier/{pid}"),
            JOBCENTER_101,
            pbody.clone(),
        )
        .await;
    let p2 = b
        .put(&format!("/personkategorier/{pid}"), JOBCENTER_101, pbody)
        .await;
    assert_eq!((p1.status, &p1.body), (p2.status, &p2.body));
}

#[tokio::test]
async fn every_error_has_a_catalogue_code_and_no_500() {
    let b = start(at(NIGHT));
    let cpr = "1505800015";
    b.person(cpr, "101", None, false).await;
    let kg = |v: serde_json::Value| {
        json!({"cpr": cpr, "kontaktgruppetype": 1, "startdato": "2026-01-01", "haendelsestidspunkt": "2026-01-01T09:00:00Z"}).as_object().unwrap().clone().into_iter().chain(v.as_object().unwrap().clone()).collect::<serde_json::Map<_, _>>()
    };

    let cases: Vec<(&str, common::Answer, StatusCode, u64)> = vec![
        (
            "invalid CPR in body",
            b.post(
                "/kontaktgrupper",
                STAR,
                kg(json!({"cpr": "3213801234"})).into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            900102,
        ),
        (
            "invalid CPR in header",
            b.get("/kontaktgrupper", STAR, "12345").await,
            StatusCode::BAD_REQUEST,
            900102,
        ),
        (
            "missing CPR header",
            b.send(Method::GET, "/kontaktgrupper", Some(STAR), None, None)
                .await,
            StatusCode::BAD_REQUEST,
            900102,
        ),
        (
            "unknown KG type",
            b.post(
                "/kontaktgrupper",
                STAR,
                kg(json!({"kontaktgruppetype": 3})).into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            900103,
        ),
        (
            "unknown PC type",
            b.create_pc(STAR, cpr, 99, "2026-01-01").await,
            StatusCode::BAD_REQUEST,
            900104,
        ),
        (
            "start after end",
            b.post(
                "/kontaktgrupper",
                STAR,
                kg(json!({"slutdato": "2025-12-31"})).into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            900105,
        ),
        (
            "id not a UUID",
            b.get("/kontaktgrupper/nope", STAR, cpr).await,
            StatusCode::BAD_REQUEST,
            900106,
        ),
        (
            "bad query date",
            b.get("/kontaktgruppehistorik?fraDato=2026-13-01", STAR, cpr)
                .await,
            StatusCode::BAD_REQUEST,
            900106,
        ),
        (
            "unknown KG id",
            b.get(
                "/kontaktgrupper/7d444840-9dc0-11d1-b245-5ffdce74fad2",
                STAR,
                cpr,
            )
            .await,
            StatusCode::NOT_FOUND,
            900301,
        ),
        (
            "unknown PC id",
            b.get(
                "/personkategorier/7d444840-9dc0-11d1-b245-5ffdce74fad2",
                STAR,
                cpr,
            )
            .await,
            StatusCode::NOT_FOUND,
            900302,
        ),
        (
            "unknown person",
            b.get("/kontaktgrupper", STAR, "1601800016").await,
            StatusCode::NOT_FOUND,
            900303,
        ),
        (
            "no identity",
            b.send(Method::GET, "/kontaktgrupper", None, Some(cpr), None)
                .await,
            StatusCode::UNAUTHORIZED,
            900201,
        ),
        (
            "unknown organisation type",
            b.get("/kontaktgrupper", (9, "1"), cpr).await,
            StatusCode::FORBIDDEN,
            900202,
        ),
        (
            "missing field",
            b.post("/kontaktgrupper", STAR, json!({"cpr": cpr})).await,
            StatusCode::BAD_REQUEST,
            900101,
        ),
        (
            "wrong type",
            b.post(
                "/kontaktgrupper",
                STAR,
                kg(json!({"kontaktgruppetype": "one"})).into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            900101,
        ),
        (
            "unknown route",
            b.get("/nothing", STAR, cpr).await,
            StatusCode::NOT_FOUND,
            900401,
        ),
        (
            "method not allowed",
            b.send(Method::DELETE, "/kontaktgrupper", Some(STAR), None, None)
                .await,
            StatusCode::METHOD_NOT_ALLOWED,
            900402,
        ),
    ];
    for (what, answer, status, code) in cases {
        assert_eq!(
            (answer.status, answer.fejlkode()),
            (status, code),
            "{what}: {answer:?}"
        );
    }

    let url = format!("{}{BASE}/kontaktgrupper", b.base);
    let raw = |body: &'static str, ct: &'static str| {
        b.client
            .post(&url)
            .header("X-Organisation-Type", "5")
            .header("X-Organisation-Code", "12345678")
            .header("content-type", ct)
            .body(body)
    };
    let cases = [
        (
            "malformed JSON",
            raw("{\"cpr\": ", "application/json"),
            400,
            900101,
        ),
        (
            "not JSON at all",
            raw("<xml/>", "application/json"),
            400,
            900101,
        ),
        ("wrong content type", raw("{}", "text/plain"), 415, 900403),
    ];
    for (what, req, status, code) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{what}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["fejlkode"], code, "{what}");
    }
    let big = "x".repeat(100 * 1024);
    let res = b
        .client
        .post(&url)
        .header("X-Organisation-Type", "5")
        .header("X-Organisation-Code", "12345678")
        .json(&json!({"cpr": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["fejlkode"],
        900404
    );
}

#[tokio::test]
async fn json_errors_never_echo_a_cpr() {
    let b = start(at(NIGHT));
    // A CPR where a number belongs: serde's own message would quote it.
    let a = b
        .post("/kontaktgrupper", STAR, json!({"cpr": "0101800001", "kontaktgruppetype": "0101800001", "startdato": "2026-01-01", "haendelsestidspunkt": "2026-01-01T09:00:00Z"}))
        .await;
    assert_eq!(a.fejlkode(), 900101);
    assert!(!a.body.to_string().contains("0101800001"), "{a:?}");
}

#[tokio::test]
async fn no_cpr_in_any_log_line() {
    let b = start(at(NIGHT));
    let cpr = "1707800017";
    b.person(cpr, "101", Some("12"), true).await;
    let kg = b
        .create_kg(JOBCENTER_101, cpr, 1, "2026-01-01", None)
        .await
        .ok();
    b.create_kg(JOBCENTER_101, cpr, 13, "2026-02-01", None)
        .await; // 100029
    b.patch(
        &format!("/kontaktgrupper/{}", kg["id"].as_str().unwrap()),
        JOBCENTER_101,
        json!({"cpr": cpr, "slutdato": "2099-01-01"}),
    )
    .await;
    b.get("/kontaktgrupper", JOBCENTER_147, cpr).await; // 403
    b.get("/status", AKASSE_12, cpr).await;
    b.get("/kontaktgruppehistorik", STAR, cpr).await;
    b.post(
        "/kontaktgrupper",
        STAR,
        json!({"cpr": cpr, "kontaktgruppetype": cpr}),
    )
    .await;
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request"), "the capture works");
    // Every CPR number any test in this binary uses has the form DDMM80NNNN.
    for line in logs.lines() {
        let digits: Vec<&str> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| s.len() >= 10)
            .collect();
        assert!(
            digits.is_empty(),
            "a log line with a CPR-like number: {line}"
        );
    }
}
