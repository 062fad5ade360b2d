#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reference backend as it runs: the real binary as a child process, each test with its
//! own database file. What a 2xx acknowledged survives kill -9; concurrent writers cannot
//! break rule 5; migrations run once; no CPR number reaches the log.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Span;
use jiff::civil::Date;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use common::child::{ChildGuard, assert_not_logged};
use common::{BASE, answer};

/// STAR: may register and read both kinds for every person, and feed the person register.
const STAR_TYPE: &str = "5";
const STAR_CODE: &str = "12345678";

// ---------------------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------------------

/// A running `vos-converter backend --dev`. Dropping it kills the child (SIGKILL), so a
/// failing test leaves no server behind.
struct Backend {
    child: ChildGuard,
    /// `http://127.0.0.1:PORT`, from the child's "listening on" line.
    base: String,
}

impl Backend {
    /// Starts the binary on `db` with `RUST_LOG=rust_log` and waits (up to 30 s) for the
    /// address it listens on.
    fn start(db: &Path, rust_log: &str) -> Backend {
        let mut child = ChildGuard::spawn(
            Command::new(env!("CARGO_BIN_EXE_vos-converter"))
                .arg("backend")
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--db")
                .arg(db)
                .arg("--dev")
                .env("RUST_LOG", rust_log)
                .env_remove("VOS_BACKEND_LISTEN")
                .env_remove("VOS_BACKEND_DB")
                .env_remove("VOS_BACKEND_DEV"),
        );
        let mut base = String::new();
        child.wait_for("the backend", |line| {
            let addr = line.strip_prefix("listening on ");
            if let Some(addr) = addr {
                base = addr.trim().to_owned();
            }
            addr.is_some()
        });
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "unexpected address {base:?}"
        );
        Backend { child, base }
    }

    /// SIGKILL (`Child::kill` on Unix), reap, and return all the child wrote to stderr.
    fn kill(&mut self) -> String {
        self.child.kill()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{BASE}{path}", self.base)
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A request as STAR.
fn star(client: &Client, method: Method, url: String) -> RequestBuilder {
    client
        .request(method, url)
        .header("X-Organisation-Type", STAR_TYPE)
        .header("X-Organisation-Code", STAR_CODE)
}

/// SetPersonRegister as STAR: the person lives in municipality 101.
async fn register(client: &Client, b: &Backend, cpr: &str, tilmeldt: bool) {
    let a = answer(
        star(client, Method::PUT, b.url("/personregister")).json(&json!({
            "cpr": cpr, "kommunekode": "101", "akasse": null, "tilmeldt": tilmeldt
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
}

fn kontaktgruppe_body(cpr: &str, ty: u32, start: Date) -> Value {
    json!({
        "cpr": cpr,
        "kontaktgruppetype": ty,
        "startdato": start.to_string(),
        "haendelsestidspunkt": format!("{start}T10:00:00+01:00"),
    })
}

fn personkategori_body(cpr: &str, ty: u32, start: Date) -> Value {
    json!({
        "cpr": cpr,
        "personkategoritype": ty,
        "startdato": start.to_string(),
        "haendelsestidspunkt": format!("{start}T10:00:00+01:00"),
    })
}

async fn create_kontaktgruppe(client: &Client, b: &Backend, cpr: &str, start: Date) -> Value {
    let a = answer(
        star(client, Method::POST, b.url("/kontaktgrupper"))
            .json(&kontaktgruppe_body(cpr, 1, start)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    a.body
}

/// A read as STAR about `cpr` (X-Cpr header), asserting 200.
async fn read(client: &Client, b: &Backend, path: &str, cpr: &str) -> Value {
    let a = answer(star(client, Method::GET, b.url(path)).header("X-Cpr", cpr)).await;
    assert_eq!(a.status, StatusCode::OK, "GET {path}: {a:?}");
    a.body
}

fn day(start: Date, n: i64) -> Date {
    start.checked_add(Span::new().days(n)).unwrap()
}

fn date_of(v: &Value, field: &str) -> Option<Date> {
    match &v[field] {
        Value::Null => None,
        Value::String(s) => Some(s.parse().unwrap()),
        other => panic!("{field} is not a date: {other}"),
    }
}

fn id_of(v: &Value) -> Uuid {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .parse()
        .unwrap()
}

/// Rule 10: no CPR number in the backend's log, in any line.
fn assert_no_cpr(log: &str, cprs: &[&str]) {
    assert_not_logged("the backend", log, cprs);
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// What a 2xx acknowledged was durable: SIGKILL in the middle of a stream of concurrent
/// writes loses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn acknowledged_writes_survive_kill_9() {
    const PERSONS: usize = 8;
    const WRITE_FOR: Duration = Duration::from_millis(2000);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vos.db");
    let mut backend = Backend::start(&db, "info");
    let client = client();

    // One person per writer: rule 5 wants each create to start after the open one.
    let persons: Vec<String> = (1..=PERSONS).map(|i| format!("01019000{i:02}")).collect();
    let mut kontaktgrupper = Vec::new();
    for cpr in &persons {
        register(&client, &backend, cpr, false).await;
        let kg = create_kontaktgruppe(&client, &backend, cpr, Date::constant(2024, 1, 1)).await;
        kontaktgrupper.push((cpr.clone(), id_of(&kg)));
    }

    let killing = Arc::new(AtomicBool::new(false));
    let in_flight_at_kill = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<(String, Uuid, Date)>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let url = backend.url("/personkategorier");
    let mut writers = tokio::task::JoinSet::new();
    for cpr in persons.clone() {
        let (client, url) = (client.clone(), url.clone());
        let (killing, in_flight, acked, unexpected) = (
            killing.clone(),
            in_flight_at_kill.clone(),
            acked.clone(),
            unexpected.clone(),
        );
        writers.spawn(async move {
            let first = Date::constant(2000, 1, 1);
            // Runs until the kill makes a request fail.
            for i in 0i64.. {
                let id = Uuid::new_v4();
                let start = day(first, i);
                let ty = 1 + (i % 4) as u32;
                let res = star(&client, Method::PUT, format!("{url}/{id}"))
                    .json(&personkategori_body(&cpr, ty, start))
                    .send()
                    .await;
                match res {
                    // Acknowledged: the status line is the acknowledgement, body or not.
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().push((cpr.clone(), id, start));
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        unexpected
                            .lock()
                            .unwrap()
                            .push(format!("write #{i}: {status} {body}"));
                        break;
                    }
                    Err(e) => {
                        if killing.load(Ordering::SeqCst) {
                            in_flight.fetch_add(1, Ordering::SeqCst);
                        } else {
                            unexpected
                                .lock()
                                .unwrap()
                                .push(format!("write #{i} before the kill: {e}"));
                        }
                        break;
                    }
                }
            }
        });
    }

    tokio::time::sleep(WRITE_FOR).await;
    // kill -9 with the writers still writing: some requests are in flight.
    killing.store(true, Ordering::SeqCst);
    let first_log = backend.kill();
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "writes failed before the kill: {unexpected:#?}"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= PERSONS * 5,
        "too few acknowledged writes to mean anything: {}",
        acked.len()
    );
    eprintln!(
        "{} acknowledged writes; {} writers cut off by the kill",
        acked.len(),
        in_flight_at_kill.load(Ordering::SeqCst)
    );

    // Restart on the same file: every acknowledged id is there.
    let backend = Backend::start(&db, "info");
    let backend = Arc::new(backend);
    for (cpr, id) in &kontaktgrupper {
        let kg = read(&client, &backend, &format!("/kontaktgrupper/{id}"), cpr).await;
        assert_eq!(id_of(&kg), *id);
    }
    let mut by_person: BTreeMap<String, Vec<(Uuid, Date)>> = BTreeMap::new();
    for (cpr, id, start) in &acked {
        by_person
            .entry(cpr.clone())
            .or_default()
            .push((*id, *start));
    }
    let mut readers = tokio::task::JoinSet::new();
    for (cpr, writes) in by_person {
        let (client, backend) = (client.clone(), backend.clone());
        readers.spawn(async move {
            for (id, start) in &writes {
                let pk = read(&client, &backend, &format!("/personkategorier/{id}"), &cpr).await;
                assert_eq!(id_of(&pk), *id, "{pk}");
                assert_eq!(date_of(&pk, "startdato"), Some(*start), "{pk}");
            }
            let history = read(&client, &backend, "/personkategorihistorik", &cpr).await;
            let in_history: HashSet<Uuid> = history["versioner"]
                .as_array()
                .unwrap()
                .iter()
                .map(id_of)
                .collect();
            let missing: Vec<&Uuid> = writes
                .iter()
                .map(|(id, _)| id)
                .filter(|id| !in_history.contains(id))
                .collect();
            assert!(
                missing.is_empty(),
                "acknowledged but not in the history after kill -9: {missing:?}"
            );
            let list = read(&client, &backend, "/personkategorier", &cpr).await;
            let open = list["personkategorier"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["slutdato"].is_null())
                .count();
            assert_eq!(open, 1, "rule 5 after the restart: {list}");
        });
    }
    while let Some(r) = readers.join_next().await {
        r.unwrap();
    }

    let mut backend = Arc::try_unwrap(backend).ok().unwrap();
    let second_log = backend.kill();
    let cprs: Vec<&str> = persons.iter().map(String::as_str).collect();
    assert_no_cpr(&first_log, &cprs);
    assert_no_cpr(&second_log, &cprs);
}

/// Rule 5 under concurrency: 30 simultaneous creates for one person leave at most one open
/// contact group and no overlapping periods, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_writers_keep_one_open_registration() {
    const WRITERS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(&dir.path().join("vos.db"), "info");
    let client = client();
    let cpr = "0202900001";
    register(&client, &backend, cpr, false).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let url = backend.url("/kontaktgrupper");
    let mut writers = tokio::task::JoinSet::new();
    for k in 0..WRITERS {
        // Distinct start dates in a scrambled order (11 is prime to 30), all in the past.
        let start = day(Date::constant(2024, 1, 1), ((k * 11) % WRITERS) as i64 * 5);
        let ty = [1, 2, 4, 5, 7, 8][k % 6];
        let (client, url, barrier) = (client.clone(), url.clone(), barrier.clone());
        writers.spawn(async move {
            barrier.wait().await;
            let req = star(&client, Method::POST, url).json(&kontaktgruppe_body(cpr, ty, start));
            (start, answer(req).await)
        });
    }
    let mut created: BTreeMap<Uuid, Date> = BTreeMap::new();
    let mut refused = 0;
    while let Some(r) = writers.join_next().await {
        let (start, a) = r.unwrap();
        match a.status {
            StatusCode::CREATED => {
                let id = id_of(&a.body);
                assert_eq!(date_of(&a.body, "startdato"), Some(start), "{a:?}");
                assert_eq!(
                    a.location.as_deref(),
                    Some(format!("{BASE}/kontaktgrupper/{id}").as_str()),
                    "{a:?}"
                );
                created.insert(id, start);
            }
            // Rule 5: a start not after the open one's start is refused.
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(a.code(), 900305, "{a:?}");
                refused += 1;
            }
            _ => panic!("unexpected answer to a concurrent create: {a:?}"),
        }
    }
    assert!(!created.is_empty(), "no create succeeded");
    assert_eq!(created.len() + refused, WRITERS);

    let list = read(&client, &backend, "/kontaktgrupper", cpr).await;
    let mut groups: Vec<(Uuid, Date, Option<Date>)> = list["kontaktgrupper"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                id_of(g),
                date_of(g, "startdato").unwrap(),
                date_of(g, "slutdato"),
            )
        })
        .collect();
    groups.sort_by_key(|g| g.1);

    let listed: BTreeMap<Uuid, Date> = groups.iter().map(|g| (g.0, g.1)).collect();
    for (id, start) in &created {
        assert_eq!(
            listed.get(id),
            Some(start),
            "acknowledged contact group {id} missing: {list}"
        );
    }
    assert_eq!(
        listed.len(),
        created.len(),
        "a refused create was recorded: {list}"
    );

    let open = groups.iter().filter(|g| g.2.is_none()).count();
    assert!(open <= 1, "{open} open contact groups: {list}");
    for (i, a) in groups.iter().enumerate() {
        if let Some(end) = a.2 {
            assert!(end >= a.1, "ends before it starts: {list}");
        }
        for b in &groups[i + 1..] {
            let a_end =
                a.2.unwrap_or_else(|| panic!("an open group before a later one: {list}"));
            assert!(a_end < b.1, "periods overlap: {a:?} and {b:?}");
        }
    }
    // Each closed one ends the day before the next starts (rule 5), the last is open.
    for w in groups.windows(2) {
        assert_eq!(w[0].2, Some(w[1].1.yesterday().unwrap()), "{list}");
    }
    assert_eq!(groups.last().unwrap().2, None, "{list}");

    // Each create is one version, each close one more: nothing recorded twice or lost.
    let history = read(&client, &backend, "/kontaktgruppehistorik", cpr).await;
    let versions = history["versioner"].as_array().unwrap().len();
    assert_eq!(versions, 2 * created.len() - 1, "{history}");

    let log = backend.kill();
    assert_no_cpr(&log, &[cpr]);
}

/// The schema migrations run on the first start only; a restart after kill -9 reads what
/// was written, writes again, and logs nothing about migrations, warnings or errors.
#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_and_restart_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vos.db");
    let client = client();
    let cpr = "0303900001";

    let mut first = Backend::start(&db, "info");
    register(&client, &first, cpr, false).await;
    let kg = create_kontaktgruppe(&client, &first, cpr, Date::constant(2024, 1, 1)).await;
    let pk = answer(
        star(&client, Method::POST, first.url("/personkategorier")).json(&personkategori_body(
            cpr,
            2,
            Date::constant(2024, 2, 1),
        )),
    )
    .await;
    assert_eq!(pk.status, StatusCode::CREATED, "{pk:?}");
    let first_log = first.kill();
    assert!(
        first_log.contains("applied schema migration"),
        "the first start applied no migration:\n{first_log}"
    );

    let mut second = Backend::start(&db, "info");
    let kg_id = id_of(&kg);
    let pk_id = id_of(&pk.body);
    assert_eq!(
        read(&client, &second, &format!("/kontaktgrupper/{kg_id}"), cpr).await,
        kg
    );
    assert_eq!(
        read(&client, &second, &format!("/personkategorier/{pk_id}"), cpr).await,
        pk.body
    );
    // Still writable, and rule 5 sees the registration made before the restart.
    let later =
        answer(
            star(&client, Method::POST, second.url("/personkategorier"))
                .json(&personkategori_body(cpr, 3, Date::constant(2024, 3, 1))),
        )
        .await;
    assert_eq!(later.status, StatusCode::CREATED, "{later:?}");
    let closed = read(&client, &second, &format!("/personkategorier/{pk_id}"), cpr).await;
    assert_eq!(closed["slutdato"], "2024-02-29", "{closed}");

    let second_log = second.kill();
    assert!(
        !second_log.contains("applied schema migration"),
        "the restart applied a migration again:\n{second_log}"
    );
    let noisy: Vec<&str> = second_log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(
        noisy.is_empty(),
        "the restart logged:\n{}",
        noisy.join("\n")
    );
    assert_no_cpr(&first_log, &[cpr]);
    assert_no_cpr(&second_log, &[cpr]);
}

/// Rule 10 with RUST_LOG=debug: successes and error paths (invalid JSON, wrong CPR,
/// 100028, conflicts, unknown persons) leave no CPR number in the log.
#[tokio::test(flavor = "multi_thread")]
async fn no_cpr_in_child_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Backend::start(&dir.path().join("vos.db"), "debug");
    let c = client();
    let known = "0404900001";
    let unknown = "0404900002"; // valid, never registered
    let invalid = "3213900003"; // day 32, month 13
    let json_raw = |method: Method, path: &str, body: String| {
        star(&c, method, b.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    };

    register(&c, &b, known, true).await;
    let kg = create_kontaktgruppe(&c, &b, known, Date::constant(2024, 1, 1)).await;
    let kg_id = id_of(&kg);
    read(&c, &b, &format!("/kontaktgrupper/{kg_id}"), known).await;
    read(&c, &b, "/kontaktgrupper", known).await;
    read(&c, &b, "/kontaktgruppehistorik", known).await;
    read(&c, &b, "/status", known).await;
    let pk_id = Uuid::new_v4();
    let pk_body = personkategori_body(known, 1, Date::constant(2024, 1, 1));
    let a = answer(
        star(
            &c,
            Method::PUT,
            b.url(&format!("/personkategorier/{pk_id}")),
        )
        .json(&pk_body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");

    // Malformed JSON that carries a CPR number.
    let a = answer(json_raw(
        Method::POST,
        "/kontaktgrupper",
        format!(r#"{{"cpr": "{known}", "kontaktgruppetype": "#),
    ))
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, 900101),
        "{a:?}"
    );
    // A CPR number where a number belongs: serde's message would quote it.
    let a = answer(json_raw(
        Method::POST,
        "/kontaktgrupper",
        format!(
            r#"{{"cpr": "{known}", "kontaktgruppetype": "{known}", "startdato": "2024-01-01", "haendelsestidspunkt": "2024-01-01T10:00:00+01:00"}}"#
        ),
    ))
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, 900101),
        "{a:?}"
    );
    // A CPR number where a date belongs.
    let a = answer(json_raw(
        Method::POST,
        "/personkategorier",
        format!(
            r#"{{"cpr": "{known}", "personkategoritype": 1, "startdato": "{known}", "haendelsestidspunkt": "2024-01-01T10:00:00+01:00"}}"#
        ),
    ))
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, 900101),
        "{a:?}"
    );
    // The right body with the wrong media type.
    let a = answer(
        star(&c, Method::POST, b.url("/kontaktgrupper"))
            .header(CONTENT_TYPE, "text/plain")
            .body(kontaktgruppe_body(known, 1, Date::constant(2024, 6, 1)).to_string()),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, 900403),
        "{a:?}"
    );
    // Too large, full of CPR numbers.
    let a = answer(json_raw(
        Method::POST,
        "/kontaktgrupper",
        format!(r#"{{"cpr": "{}"}}"#, known.repeat(10_000)),
    ))
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, 900404),
        "{a:?}"
    );

    // Wrong CPR numbers: in the body, in the header, and one the service does not know.
    let a = answer(
        star(&c, Method::POST, b.url("/kontaktgrupper")).json(&kontaktgruppe_body(
            invalid,
            1,
            Date::constant(2024, 1, 1),
        )),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, 900102),
        "{a:?}"
    );
    let a = answer(star(&c, Method::GET, b.url("/kontaktgrupper")).header("X-Cpr", invalid)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, 900102),
        "{a:?}"
    );
    let a = answer(star(&c, Method::GET, b.url("/status")).header("X-Cpr", unknown)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, 900303),
        "{a:?}"
    );
    let a = answer(
        star(&c, Method::GET, b.url(&format!("/kontaktgrupper/{kg_id}"))).header("X-Cpr", unknown),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, 900301),
        "{a:?}"
    );
    // Another organisation's citizen (rule 7).
    let a = answer(
        c.get(b.url("/kontaktgrupper"))
            .header("X-Organisation-Type", "1")
            .header("X-Organisation-Code", "147")
            .header("X-Cpr", known),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, 900203),
        "{a:?}"
    );

    // 100028: an end date in the future.
    let a = answer(
        star(
            &c,
            Method::PATCH,
            b.url(&format!("/kontaktgrupper/{kg_id}")),
        )
        .json(&json!({"cpr": known, "slutdato": "2099-01-01"})),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, 100028),
        "{a:?}"
    );
    // 100029: an enrolled person cannot change contact group type.
    let a = answer(
        star(&c, Method::POST, b.url("/kontaktgrupper")).json(&kontaktgruppe_body(
            known,
            2,
            Date::constant(2024, 2, 1),
        )),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, 100029),
        "{a:?}"
    );
    // 900305: not after the open one's start.
    let a = answer(
        star(&c, Method::POST, b.url("/kontaktgrupper")).json(&kontaktgruppe_body(
            known,
            1,
            Date::constant(2023, 1, 1),
        )),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, 900305),
        "{a:?}"
    );
    // 900304: the same id with other content.
    let a = answer(
        star(
            &c,
            Method::PUT,
            b.url(&format!("/personkategorier/{pk_id}")),
        )
        .json(&personkategori_body(known, 2, Date::constant(2024, 1, 1))),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, 900304),
        "{a:?}"
    );
    // An unknown person category, for the known person.
    let a = answer(
        star(
            &c,
            Method::PATCH,
            b.url(&format!("/personkategorier/{}", Uuid::new_v4())),
        )
        .json(&pk_body),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, 900302),
        "{a:?}"
    );
    // No identity at all, with a CPR number in the body.
    let a = answer(c.post(b.url("/kontaktgrupper")).json(&kontaktgruppe_body(
        known,
        1,
        Date::constant(2024, 1, 1),
    )))
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, 900201),
        "{a:?}"
    );

    let log = b.kill();
    assert!(
        log.contains("DEBUG") && log.contains("refused"),
        "RUST_LOG=debug did not reach the child:\n{log}"
    );
    assert_no_cpr(&log, &[known, unknown, invalid]);
}
