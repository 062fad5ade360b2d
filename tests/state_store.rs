#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The state store's contract (issue 17, src/state): what every [`StateStore`] must do, run
//! on both implementations.
//!
//! - `local::*`: [`LocalState`] on a temporary folder, always.
//! - `pg::*`: [`PgState`] when `VOS_TEST_PG_URL` names a PostgreSQL database
//!   (`postgres://user:password@host:port/db`, `?sslmode=require` for TLS, with
//!   `VOS_TEST_PG_CA` the CA's PEM file). Its role must be allowed to CREATE DATABASE: each
//!   test makes a scratch database of its own (`vos_test_<uuid>`) and drops it at the end,
//!   so the tests run in parallel against one server, each on a fresh schema. (Unique
//!   subscribers and keys would not be enough: `expire`, `stats`, `keep_usage` and the
//!   release of timed-out sequences act on the whole store.) Without the variable each
//!   `pg::` test says on stderr that it was skipped, and passes; with it, a database that
//!   cannot be reached fails the test. A `pg::` test that ran to its end prints
//!   `state_store: ran on PostgreSQL: pg::NAME` on stderr: scripts/ha.sh runs this file
//!   against its own PostgreSQL with `--nocapture` and checks that every `pg::` test said so.
//!
//! The queue contract is src/wsrm/store.rs's unit tests, on both stores. PostgreSQL only:
//! replicas migrating together, reserving from one queue concurrently (every message in
//! exactly one sequence), finishing each other's sequences, adding usage concurrently (no
//! lost increment), a batch all or nothing with its spool marks, a database newer than the
//! binary refused at once, and a start that gives up after its patience (~30 s).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::{Date, date};
use uuid::Uuid;
use vos_converter::observe::usage::Count;
use vos_converter::state::postgres::PgState;
use vos_converter::state::{
    LocalState, StateStore, StateUrl, UsageAggregates, UsageBatch, UsageStore,
};
use vos_converter::wsrm::MessageKind;
use vos_converter::wsrm::route::message_identifier;
use vos_converter::wsrm::store::{NewMessage, QueueError, QueueStats, QueueStore, StoredMessage};

const V5: MessageKind = MessageKind::GetContactGroupVersion5;
const V4: MessageKind = MessageKind::GetContactGroupVersion4;
/// The sequence timeout of the queue tests, in milliseconds.
const T: i64 = 600_000;
const JC: &str = "1:101";
const AK: &str = "2:12";

// ---------------------------------------------------------------------------------------
// The two stores
// ---------------------------------------------------------------------------------------

/// Fresh storage of one kind; each `store()` is a store on it, as a process (re)starting
/// or another replica opens it.
trait Storage: Sync {
    fn store(&self) -> Box<dyn StateStore>;
}

/// [`LocalState`] in a temporary folder (queue file and usage file).
struct LocalDir(tempfile::TempDir);

impl LocalDir {
    fn new() -> LocalDir {
        LocalDir(tempfile::tempdir().unwrap())
    }
}

impl Storage for LocalDir {
    fn store(&self) -> Box<dyn StateStore> {
        Box::new(LocalState::open(self.0.path(), true).unwrap())
    }
}

/// Where the `pg::` tests run: `VOS_TEST_PG_URL` and `VOS_TEST_PG_CA`.
struct PgEnv {
    url: String,
    ca: Option<PathBuf>,
}

impl PgEnv {
    fn from_env() -> Option<PgEnv> {
        let url = std::env::var("VOS_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let ca = std::env::var_os("VOS_TEST_PG_CA")
            .filter(|c| !c.is_empty())
            .map(PathBuf::from);
        Some(PgEnv { url, ca })
    }
}

/// Runs a `pg::` test on the configured server, or says why it is skipped.
fn on_pg(test: &str, f: impl FnOnce(&PgEnv)) {
    let Some(pg) = PgEnv::from_env() else {
        eprintln!(
            "state_store: SKIPPED {test}: VOS_TEST_PG_URL is not set, so PgState is not \
             tested here (set it to postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=require], \
             a role that may CREATE DATABASE, and VOS_TEST_PG_CA to the CA's PEM for TLS; \
             scripts/ha.sh runs these tests against its own PostgreSQL)"
        );
        return;
    };
    f(&pg);
    eprintln!("state_store: ran on PostgreSQL: {test}");
}

/// A direct connection (tokio-postgres, no pool), for what the store does not offer:
/// making and dropping databases, reading and forging `vos_schema`.
struct Sql {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Sql {
    fn connect(url: &str, ca: Option<&Path>) -> Result<Sql, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("not a URL: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let client = rt.block_on(async {
            match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Require => {
                    let tls = vos_converter::tls::client_config(None, ca)
                        .map_err(|e| format!("VOS_TEST_PG_CA: {e}"))?;
                    let (client, conn) = config
                        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                        .await
                        .map_err(|e| e.to_string())?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok::<_, String>(client)
                }
                _ => {
                    let (client, conn) = config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| e.to_string())?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(client)
                }
            }
        })?;
        Ok(Sql { rt, client })
    }

    fn batch(&self, sql: &str) -> Result<(), String> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| format!("{sql}: {e}"))
    }

    /// A query's first column, as text.
    fn column(&self, sql: &str) -> Vec<String> {
        self.rt
            .block_on(self.client.simple_query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect()
    }
}

/// `url` naming database `db` instead (the path; user, password, host and parameters kept).
fn with_database(url: &str, db: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (before_query, query) = match url[scheme_end..].find('?') {
        Some(i) => url.split_at(scheme_end + i),
        None => (url, ""),
    };
    let authority_end = before_query[scheme_end..]
        .find('/')
        .map_or(before_query.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &before_query[..authority_end])
}

/// A database of its own on the configured server, dropped (connections and all) at the end.
struct Scratch {
    admin_url: String,
    url: String,
    ca: Option<PathBuf>,
    name: String,
}

impl Scratch {
    fn new(pg: &PgEnv) -> Scratch {
        let name = format!("vos_test_{}", Uuid::new_v4().simple());
        let admin = Sql::connect(&pg.url, pg.ca.as_deref()).unwrap_or_else(|e| {
            panic!("VOS_TEST_PG_URL is set but PostgreSQL cannot be reached: {e}")
        });
        admin
            .batch(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("the test role must be allowed to CREATE DATABASE: {e}"));
        Scratch {
            admin_url: pg.url.clone(),
            url: with_database(&pg.url, &name),
            ca: pg.ca.clone(),
            name,
        }
    }

    fn state_url(&self) -> StateUrl {
        StateUrl::parse(&self.url).unwrap()
    }

    fn try_open(&self, pool_size: usize) -> Result<PgState, String> {
        PgState::open(&self.state_url(), self.ca.as_deref(), pool_size)
    }

    fn open(&self, pool_size: usize) -> PgState {
        self.try_open(pool_size)
            .unwrap_or_else(|e| panic!("PgState::open on {}: {e}", self.state_url()))
    }

    /// A direct connection to this database.
    fn sql(&self) -> Sql {
        Sql::connect(&self.url, self.ca.as_deref()).unwrap()
    }

    /// `vos_schema`'s versions, in order.
    fn versions(&self) -> Vec<String> {
        self.sql()
            .column("SELECT version FROM vos_schema ORDER BY version")
    }
}

impl Storage for Scratch {
    fn store(&self) -> Box<dyn StateStore> {
        Box::new(self.open(2))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dropped = Sql::connect(&self.admin_url, self.ca.as_deref()).and_then(|admin| {
            admin.batch(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!(
                "state_store: could not drop the scratch database {}: {e}",
                self.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// Message `n` of a subscriber's queue: fields `ChangeType = m<n>`.
fn msg(subscriber: &str, kind: MessageKind, n: u128, at: i64) -> NewMessage {
    let besked_id = Uuid::from_u128(n);
    NewMessage {
        subscriber: subscriber.into(),
        kind,
        besked_id,
        message_identifier: message_identifier(besked_id, subscriber, kind),
        fields: vec![("ChangeType".into(), format!("m{n}"))],
        received_ms: at,
    }
}

fn texts(m: &[StoredMessage]) -> Vec<String> {
    m.iter().map(|m| m.fields[0].1.clone()).collect()
}

fn count(calls: u64, faults: &[(u32, u64)]) -> Count {
    Count {
        calls,
        faults: faults.iter().copied().collect(),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn batch(days: &[(&str, Count)], last_seen: &[(&str, Timestamp)]) -> UsageBatch {
    UsageBatch {
        days: days
            .iter()
            .map(|(k, c)| ((*k).to_owned(), c.clone()))
            .collect(),
        last_seen: last_seen
            .iter()
            .map(|(k, t)| ((*k).to_owned(), *t))
            .collect(),
        marks: Vec::new(),
        id: None,
    }
}

fn aggregates(days: &[(&str, Count)], last_seen: &[(&str, Timestamp)]) -> UsageAggregates {
    let b = batch(days, last_seen);
    UsageAggregates {
        days: b.days,
        last_seen: b.last_seen,
    }
}

/// A date before anything the tests add: every stored day.
const ALL: Date = date(2000, 1, 1);

// ---------------------------------------------------------------------------------------
// The contract, on both stores
// ---------------------------------------------------------------------------------------

fn a_sequence_reserves_the_oldest_and_terminate_acknowledges_them(storage: &dyn Storage) {
    let q = storage.store();
    let batch: Vec<_> = (1..=3)
        .flat_map(|n| [msg(JC, V5, n, 0), msg(JC, V4, n, 0)])
        .chain([msg(AK, V5, 9, 0)])
        .collect();
    assert_eq!(q.enqueue(&batch).unwrap(), 7);
    // A redelivered event is kept once.
    assert_eq!(q.enqueue(&batch[..2]).unwrap(), 0);

    let (seq, inventory) = q.create_sequence(JC, 1, T, 500).unwrap();
    assert_eq!(inventory, vec![(V5, 3), (V4, 3)]);
    assert_eq!(
        texts(&q.messages(JC, seq, V5, 2, T).unwrap()),
        ["m1", "m2", "m3"]
    );
    assert_eq!(
        texts(&q.messages(JC, seq, V4, 2, T).unwrap()),
        ["m1", "m2", "m3"]
    );
    // Another organisation's sequence is unknown to it, and so is one never made.
    assert!(matches!(
        q.messages(AK, seq, V5, 2, T),
        Err(QueueError::UnknownSequence)
    ));
    assert!(matches!(
        q.terminate(AK, seq, 2, T),
        Err(QueueError::UnknownSequence)
    ));
    assert!(matches!(
        q.close(AK, seq, 2, T),
        Err(QueueError::UnknownSequence)
    ));
    assert!(matches!(
        q.messages(JC, Uuid::new_v4(), V5, 2, T),
        Err(QueueError::UnknownSequence)
    ));
    // Reserved messages are in no other sequence.
    let (other, empty) = q.create_sequence(JC, 3, T, 500).unwrap();
    assert!(empty.is_empty());
    assert_eq!(q.terminate(JC, other, 4, T).unwrap(), 0);
    assert_eq!(q.terminate(JC, seq, 4, T).unwrap(), 6);
    // Terminated: gone, and the sequence with them.
    assert!(matches!(
        q.messages(JC, seq, V5, 5, T),
        Err(QueueError::UnknownSequence)
    ));
    assert!(matches!(
        q.terminate(JC, seq, 5, T),
        Err(QueueError::UnknownSequence)
    ));
    let (_, after) = q.create_sequence(JC, 6, T, 500).unwrap();
    assert!(after.is_empty());
    let (theirs, inv) = q.create_sequence(AK, 6, T, 500).unwrap();
    assert_eq!(inv, vec![(V5, 1)]);
    assert_eq!(texts(&q.messages(AK, theirs, V5, 6, T).unwrap()), ["m9"]);
}

fn close_and_timeout_release_and_the_message_identifier_is_stable(storage: &dyn Storage) {
    let q = storage.store();
    q.enqueue(&[msg(JC, V5, 1, 0), msg(JC, V5, 2, 0)]).unwrap();
    let (seq, _) = q.create_sequence(JC, 0, T, 1).unwrap();
    let first = q.messages(JC, seq, V5, 0, T).unwrap();
    assert_eq!(texts(&first), ["m1"]);
    assert_eq!(
        first[0].message_identifier,
        message_identifier(Uuid::from_u128(1), JC, V5)
    );
    assert_eq!(q.close(JC, seq, 1, T).unwrap(), 1);
    assert!(matches!(
        q.close(JC, seq, 1, T),
        Err(QueueError::UnknownSequence)
    ));
    // Closed: the message comes again, with the same identifier.
    let (seq2, inv) = q.create_sequence(JC, 2, T, 500).unwrap();
    assert_eq!(inv, vec![(V5, 2)]);
    let again = q.messages(JC, seq2, V5, 2, T).unwrap();
    assert_eq!(texts(&again), ["m1", "m2"]);
    assert_eq!(again[0], first[0]);
    // Just before the timeout it is still reserved...
    let (early, none) = q.create_sequence(JC, T + 1, T, 500).unwrap();
    assert!(none.is_empty());
    q.terminate(JC, early, T + 1, T).unwrap();
    // ...neither terminated nor closed, it is released after the timeout.
    let (seq3, inv3) = q.create_sequence(JC, T + 3, T, 500).unwrap();
    assert_eq!(inv3, vec![(V5, 2)]);
    assert!(matches!(
        q.terminate(JC, seq2, T + 3, T),
        Err(QueueError::UnknownSequence)
    ));
    assert_eq!(q.messages(JC, seq3, V5, T + 3, T).unwrap(), again);
    assert_eq!(q.terminate(JC, seq3, T + 4, T).unwrap(), 2);
}

fn at_most_max_per_sequence_oldest_first_and_old_messages_expire(storage: &dyn Storage) {
    let q = storage.store();
    let batch: Vec<_> = (1..=7).map(|n| msg(JC, V5, n, n as i64 * 1000)).collect();
    q.enqueue(&batch).unwrap();
    q.enqueue(&[msg(AK, V4, 20, 4500)]).unwrap();
    let (seq, inv) = q.create_sequence(JC, 8000, T, 5).unwrap();
    assert_eq!(inv, vec![(V5, 5)]);
    assert_eq!(
        texts(&q.messages(JC, seq, V5, 8000, T).unwrap()),
        ["m1", "m2", "m3", "m4", "m5"]
    );
    let (rest, inv) = q.create_sequence(JC, 8000, T, 5).unwrap();
    assert_eq!(inv, vec![(V5, 2)]);
    assert_eq!(
        texts(&q.messages(JC, rest, V5, 8000, T).unwrap()),
        ["m6", "m7"]
    );
    assert_eq!(
        q.stats(8000).unwrap(),
        vec![
            QueueStats {
                subscriber: JC.into(),
                depth: 7,
                oldest_age_secs: 7.0
            },
            QueueStats {
                subscriber: AK.into(),
                depth: 1,
                oldest_age_secs: 3.5
            },
        ]
    );
    // Received before 3000: dropped, reserved or not.
    assert_eq!(q.expire(8000, 5000).unwrap(), 2);
    let stats = q.stats(8000).unwrap();
    assert_eq!(stats[0].depth, 5);
    assert_eq!(stats[0].oldest_age_secs, 5.0);
    assert_eq!(
        texts(&q.messages(JC, seq, V5, 8000, T).unwrap()),
        ["m3", "m4", "m5"]
    );
    // Everything gone: no queue in the stats.
    assert_eq!(q.expire(100_000, 0).unwrap(), 6);
    assert_eq!(q.stats(100_000).unwrap(), vec![]);
}

fn usage_is_added_up_per_day_and_fault_code(storage: &dyn Storage) {
    let s = storage.store();
    let create_26 = "2026-11-26|1|101|PersonRegistrationService|CreateContactGroup";
    let create_27 = "2026-11-27|1|101|PersonRegistrationService|CreateContactGroup";
    let status_27 = "2026-11-27|2|12|PersonStatusService|GetVariablePersonStatus";
    let jc = "1|101|PersonRegistrationService|CreateContactGroup";
    let ak = "2|12|PersonStatusService|GetVariablePersonStatus";
    s.add_usage(&batch(
        &[
            (create_26, count(2, &[])),
            (create_27, count(3, &[(100028, 1)])),
        ],
        &[(jc, ts("2026-11-27T10:00:00Z"))],
    ))
    .unwrap();
    s.add_usage(&batch(
        &[
            (create_27, count(4, &[(100028, 2), (900523, 1)])),
            (status_27, count(1, &[])),
        ],
        // An earlier last call than the stored one changes nothing.
        &[
            (jc, ts("2026-11-27T09:00:00Z")),
            (ak, ts("2026-11-27T11:00:00.123Z")),
        ],
    ))
    .unwrap();
    let expected = aggregates(
        &[
            (create_27, count(7, &[(100028, 3), (900523, 1)])),
            (status_27, count(1, &[])),
        ],
        &[
            (jc, ts("2026-11-27T10:00:00Z")),
            (ak, ts("2026-11-27T11:00:00.123Z")),
        ],
    );
    assert_eq!(s.usage(date(2026, 11, 27)).unwrap(), expected);
    // Days before `oldest` are not shown, but kept.
    let all = s.usage(ALL).unwrap();
    assert_eq!(all.days.len(), 3);
    assert_eq!(all.days[create_26], count(2, &[]));
    // An empty batch changes nothing; a later last call moves it.
    s.add_usage(&UsageBatch::default()).unwrap();
    assert_eq!(s.usage(date(2026, 11, 27)).unwrap(), expected);
    s.add_usage(&batch(&[], &[(jc, ts("2026-11-28T08:00:00Z"))]))
        .unwrap();
    assert_eq!(
        s.usage(ALL).unwrap().last_seen[jc],
        ts("2026-11-28T08:00:00Z")
    );
}

/// `keep_usage(oldest, forget_before)`: days before `oldest` are forgotten (the day itself
/// kept), last calls made before `forget_before` began in Copenhagen are forgotten; and what
/// is kept is durable: another store on the same storage sees it.
fn keep_usage_forgets_old_days_and_old_callers(storage: &dyn Storage) {
    let key = |day: &str| format!("{day}|1|101|PersonRegistrationService|ReadContactGroup");
    let (d25, d26, d27) = (key("2026-11-25"), key("2026-11-26"), key("2026-11-27"));
    // 23:30 on the 26th in Copenhagen (CET, UTC+1): forgotten.
    let late_26 = ("1|101|A|a", ts("2026-11-26T22:30:00Z"));
    // 00:30 on the 27th in Copenhagen, still the 26th in UTC: kept.
    let early_27 = ("1|102|A|a", ts("2026-11-26T23:30:00Z"));
    let later = ("1|103|A|a", ts("2026-11-28T12:00:00Z"));
    let kept = {
        let s = storage.store();
        s.add_usage(&batch(
            &[
                (&d25, count(1, &[])),
                (&d26, count(2, &[(100028, 1)])),
                (&d27, count(3, &[])),
            ],
            &[late_26, early_27, later],
        ))
        .unwrap();
        s.keep_usage(date(2026, 11, 26), date(2026, 11, 27))
            .unwrap();
        let kept = s.usage(ALL).unwrap();
        assert_eq!(
            kept,
            aggregates(
                &[(&d26, count(2, &[(100028, 1)])), (&d27, count(3, &[]))],
                &[early_27, later],
            )
        );
        // Again: nothing more to forget.
        s.keep_usage(date(2026, 11, 26), date(2026, 11, 27))
            .unwrap();
        assert_eq!(s.usage(ALL).unwrap(), kept);
        kept
    };
    assert_eq!(storage.store().usage(ALL).unwrap(), kept);
}

macro_rules! on_local {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            super::$name(&super::LocalDir::new());
        }
    )*};
}

macro_rules! on_pg {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            super::on_pg(concat!("pg::", stringify!($name)), |pg| {
                super::$name(&super::Scratch::new(pg))
            });
        }
    )*};
}

mod local {
    use super::*;

    on_local!(
        a_sequence_reserves_the_oldest_and_terminate_acknowledges_them,
        close_and_timeout_release_and_the_message_identifier_is_stable,
        at_most_max_per_sequence_oldest_first_and_old_messages_expire,
        usage_is_added_up_per_day_and_fault_code,
        keep_usage_forgets_old_days_and_old_callers,
    );

    /// One process: no spool is kept, so every mark is 0, and the store is always ready.
    #[test]
    fn no_spool_marks_and_always_ready() {
        let dir = LocalDir::new();
        let s = dir.store();
        let mut b = batch(
            &[(
                "2026-11-27|1|101|PersonRegistrationService|ReadContactGroup",
                count(1, &[]),
            )],
            &[],
        );
        b.marks = vec![("usage-1.spool".into(), 4096)];
        s.add_usage(&b).unwrap();
        assert_eq!(s.spool_mark("usage-1.spool").unwrap(), 0);
        s.forget_spool(&["usage-1.spool".into()]).unwrap();
        assert_eq!(s.spool_mark("usage-1.spool").unwrap(), 0);
        assert_eq!(s.usage(ALL).unwrap().days.len(), 1);
        assert!(!s.shared());
        assert!(s.ready().is_ok());
        assert!(s.describe().contains(&dir.0.path().display().to_string()));
    }
}

/// Needs no server: the CA is for TLS, and a URL without it is a mistake said at once.
#[test]
fn pg_state_refuses_a_ca_without_tls() {
    let url = StateUrl::parse("postgres://vos@127.0.0.1:1/vos").unwrap();
    let err = PgState::open(&url, Some(Path::new("/nonexistent/ca.pem")), 1)
        .err()
        .expect("a CA without sslmode=require must be refused");
    assert!(err.contains("sslmode=require"), "{err}");
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/vos?sslmode=require", "x"),
        "postgres://u:p@h:5432/x?sslmode=require"
    );
    assert_eq!(with_database("postgresql://h/vos", "x"), "postgresql://h/x");
    assert_eq!(
        with_database("postgres://u@h:1?sslmode=disable", "x"),
        "postgres://u@h:1/x?sslmode=disable"
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: the contract, and what only a shared store must do
// ---------------------------------------------------------------------------------------

mod pg {
    use super::*;

    on_pg!(
        a_sequence_reserves_the_oldest_and_terminate_acknowledges_them,
        close_and_timeout_release_and_the_message_identifier_is_stable,
        at_most_max_per_sequence_oldest_first_and_old_messages_expire,
        usage_is_added_up_per_day_and_fault_code,
        keep_usage_forgets_old_days_and_old_callers,
    );

    /// Opens `n` stores on `db` at once from `n` threads.
    fn open_together(db: &Scratch, n: usize, pool_size: usize) -> Vec<PgState> {
        let start = Barrier::new(n);
        thread::scope(|s| {
            let opening: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        db.open(pool_size)
                    })
                })
                .collect();
            opening.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Replicas starting together on a fresh database: one migrates, the others wait for its
    /// lock and find the schema in place; a later start changes nothing.
    #[test]
    fn migrations_run_once_when_replicas_start_together() {
        on_pg(
            "pg::migrations_run_once_when_replicas_start_together",
            |pg| {
                let db = Scratch::new(pg);
                let stores = open_together(&db, 4, 1);
                assert_eq!(db.versions(), ["1"]);
                let tables = db.sql().column(
                    "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = current_schema() ORDER BY table_name",
                );
                assert_eq!(
                    tables,
                    [
                        "usage_dag",
                        "usage_parti",
                        "usage_sidst",
                        "usage_spool",
                        "vos_schema",
                        "wsrm_besked",
                        "wsrm_sekvens"
                    ]
                );
                drop(stores);
                drop(db.open(1));
                assert_eq!(db.versions(), ["1"]);
            },
        );
    }

    /// Two replicas on one queue: many threads across both reserving concurrently put every
    /// message in exactly one sequence; either replica finishes the other's sequences; a
    /// terminate and a close of one sequence from both at once: exactly one wins.
    #[test]
    fn replicas_reserve_each_message_once_and_finish_each_others_sequences() {
        on_pg(
            "pg::replicas_reserve_each_message_once_and_finish_each_others_sequences",
            |pg| {
                const N: u128 = 150;
                const MAX: usize = 7;
                const THREADS: usize = 6;
                const NOW: i64 = 10_000_000;
                let db = Scratch::new(pg);
                let replicas = open_together(&db, 2, 4);
                assert_eq!(db.versions(), ["1"]);

                // Every event delivered to both replicas at once (a WSB retry): kept once.
                let events: Vec<_> = (1..=N)
                    .flat_map(|n| [msg(JC, V5, n, NOW - 1000), msg(JC, V4, n, NOW - 1000)])
                    .chain((1..=5).map(|n| msg(AK, V5, 1000 + n, NOW - 1000)))
                    .collect();
                let start = Barrier::new(2);
                let new: usize = thread::scope(|s| {
                    let h: Vec<_> = replicas
                        .iter()
                        .map(|r| {
                            s.spawn(|| {
                                start.wait();
                                r.enqueue(&events).unwrap()
                            })
                        })
                        .collect();
                    h.into_iter().map(|h| h.join().unwrap()).sum()
                });
                assert_eq!(new, events.len());

                // THREADS per replica reserve until they find nothing free.
                let start = Barrier::new(2 * THREADS);
                let reserve = |replica: usize| {
                    let r = &replicas[replica];
                    let mut taken = Vec::new();
                    loop {
                        let (seq, inv) = r.create_sequence(JC, NOW, T, MAX).unwrap();
                        if inv.is_empty() {
                            assert_eq!(r.terminate(JC, seq, NOW, T).unwrap(), 0);
                            return taken;
                        }
                        let size: usize = inv.iter().map(|(_, n)| n).sum();
                        assert!(size <= MAX, "{size} messages in one sequence");
                        let mut ids = Vec::new();
                        for (kind, n) in &inv {
                            let m = r.messages(JC, seq, *kind, NOW, T).unwrap();
                            assert_eq!(m.len(), *n, "the inventory counts {kind:?}");
                            ids.extend(m.iter().map(|m| m.message_identifier));
                        }
                        taken.push((replica, seq, ids));
                    }
                };
                let mut sequences: Vec<(usize, Uuid, Vec<Uuid>)> = thread::scope(|s| {
                    let h: Vec<_> = (0..2 * THREADS)
                        .map(|t| {
                            let start = &start;
                            let reserve = &reserve;
                            s.spawn(move || {
                                start.wait();
                                reserve(t % 2)
                            })
                        })
                        .collect();
                    h.into_iter().flat_map(|h| h.join().unwrap()).collect()
                });
                // A thread stops at its first empty sequence, which SKIP LOCKED can give it
                // while others still hold rows they are about to take or give back: what
                // is left, once they are done, is taken here.
                let late = reserve(0);
                eprintln!(
                    "state_store: {} sequences by replica 0, {} by replica 1, {} after the threads",
                    sequences.iter().filter(|s| s.0 == 0).count(),
                    sequences.iter().filter(|s| s.0 == 1).count(),
                    late.len()
                );
                sequences.extend(late);
                let all: Vec<Uuid> = sequences.iter().flat_map(|s| s.2.clone()).collect();
                let unique: BTreeSet<Uuid> = all.iter().copied().collect();
                assert_eq!(all.len(), unique.len(), "a message in two sequences");
                let expected: BTreeSet<Uuid> = events
                    .iter()
                    .filter(|m| m.subscriber == JC)
                    .map(|m| m.message_identifier)
                    .collect();
                assert_eq!(unique, expected);
                // The other subscriber's queue was not touched.
                let (theirs, inv) = replicas[1].create_sequence(AK, NOW, T, 500).unwrap();
                assert_eq!(inv, vec![(V5, 5)]);
                assert_eq!(replicas[0].terminate(AK, theirs, NOW, T).unwrap(), 5);

                // A terminate on one replica and a close on the other, at once: one wins,
                // the other finds the sequence gone.
                let mut freed = 0;
                for (_, seq, ids) in sequences.drain(..4) {
                    let start = Barrier::new(2);
                    let (terminated, closed) = thread::scope(|s| {
                        let t = s.spawn(|| {
                            start.wait();
                            replicas[0].terminate(JC, seq, NOW, T)
                        });
                        let c = s.spawn(|| {
                            start.wait();
                            replicas[1].close(JC, seq, NOW, T)
                        });
                        (t.join().unwrap(), c.join().unwrap())
                    });
                    match (terminated, closed) {
                        (Ok(n), Err(QueueError::UnknownSequence)) => assert_eq!(n, ids.len()),
                        (Err(QueueError::UnknownSequence), Ok(n)) => {
                            assert_eq!(n, ids.len());
                            freed += n;
                        }
                        other => panic!("terminate and close at once: {other:?}"),
                    }
                }
                // What was closed comes again.
                let (again, inv) = replicas[1].create_sequence(JC, NOW, T, 10_000).unwrap();
                assert_eq!(inv.iter().map(|(_, n)| n).sum::<usize>(), freed);
                assert_eq!(replicas[0].terminate(JC, again, NOW, T).unwrap(), freed);

                // The rest: terminated by the replica that did not make the sequence.
                for (made_by, seq, ids) in &sequences {
                    let other = &replicas[1 - made_by];
                    assert_eq!(other.terminate(JC, *seq, NOW, T).unwrap(), ids.len());
                    assert!(matches!(
                        replicas[*made_by].messages(JC, *seq, V5, NOW, T),
                        Err(QueueError::UnknownSequence)
                    ));
                }
                assert_eq!(replicas[0].stats(NOW).unwrap(), vec![]);
                assert_eq!(replicas[1].stats(NOW).unwrap(), vec![]);
            },
        );
    }

    /// Two replicas × several threads adding to the same keys: no increment lost, faults
    /// counted per code, the latest last call kept, each spool mark the furthest.
    #[test]
    fn concurrent_usage_from_two_replicas_loses_nothing() {
        on_pg(
            "pg::concurrent_usage_from_two_replicas_loses_nothing",
            |pg| {
                const THREADS: u64 = 4;
                const ROUNDS: u64 = 25;
                let create = "2026-11-27|1|101|PersonRegistrationService|CreateContactGroup";
                let read = "2026-11-27|1|101|PersonRegistrationService|ReadContactGroup";
                let seen = "1|101|PersonRegistrationService|CreateContactGroup";
                let base = ts("2026-11-27T10:00:00Z");
                let db = Scratch::new(pg);
                let replicas = [db.open(THREADS as usize), db.open(THREADS as usize)];
                let start = Barrier::new(2 * THREADS as usize);
                thread::scope(|s| {
                    for g in 0..2 * THREADS {
                        let (r, start) = (&replicas[(g % 2) as usize], &start);
                        s.spawn(move || {
                            start.wait();
                            for round in 0..ROUNDS {
                                let at = base + Duration::from_millis(g * ROUNDS + round);
                                let mut b = batch(
                                    &[
                                        (create, count(3, &[(100028, 1)])),
                                        (read, count(2, &[(100028, 1), (900523, 1)])),
                                    ],
                                    &[(seen, at)],
                                );
                                let own =
                                    format!("1|{g}|PersonStatusService|GetVariablePersonStatus");
                                b.last_seen.insert(own, at);
                                b.marks = vec![
                                    (format!("usage-{g}.spool"), (round + 1) * 100),
                                    ("shared.spool".into(), g * 1000 + round),
                                ];
                                r.add_usage(&b).unwrap();
                            }
                        });
                    }
                });
                let adds = 2 * THREADS * ROUNDS;
                let mut expected = aggregates(
                    &[
                        (create, count(3 * adds, &[(100028, adds)])),
                        (read, count(2 * adds, &[(100028, adds), (900523, adds)])),
                    ],
                    &[(seen, base + Duration::from_millis(2 * THREADS * ROUNDS - 1))],
                );
                for g in 0..2 * THREADS {
                    expected.last_seen.insert(
                        format!("1|{g}|PersonStatusService|GetVariablePersonStatus"),
                        base + Duration::from_millis(g * ROUNDS + ROUNDS - 1),
                    );
                }
                for r in &replicas {
                    assert_eq!(r.usage(date(2026, 11, 27)).unwrap(), expected);
                    for g in 0..2 * THREADS {
                        assert_eq!(
                            r.spool_mark(&format!("usage-{g}.spool")).unwrap(),
                            ROUNDS * 100
                        );
                    }
                    assert_eq!(
                        r.spool_mark("shared.spool").unwrap(),
                        (2 * THREADS - 1) * 1000 + ROUNDS - 1
                    );
                }
            },
        );
    }

    /// Spool marks are kept with the batch, never go back, and are forgotten on demand; a
    /// batch the database refuses adds nothing, its marks included.
    #[test]
    fn spool_marks_go_with_their_batch() {
        on_pg("pg::spool_marks_go_with_their_batch", |pg| {
            let db = Scratch::new(pg);
            let s = db.open(2);
            let day = "2026-11-27|1|101|PersonRegistrationService|ReadContactGroup";
            assert_eq!(s.spool_mark("usage-a.spool").unwrap(), 0);
            let mut b = batch(&[(day, count(1, &[]))], &[]);
            b.marks = vec![("usage-a.spool".into(), 4096), ("usage-b.spool".into(), 10)];
            s.add_usage(&b).unwrap();
            assert_eq!(s.spool_mark("usage-a.spool").unwrap(), 4096);
            assert_eq!(s.spool_mark("usage-b.spool").unwrap(), 10);
            // A mark never goes back; marks alone are a batch.
            let marks_only = UsageBatch {
                marks: vec![("usage-a.spool".into(), 100), ("usage-b.spool".into(), 20)],
                ..UsageBatch::default()
            };
            s.add_usage(&marks_only).unwrap();
            assert_eq!(s.spool_mark("usage-a.spool").unwrap(), 4096);
            assert_eq!(s.spool_mark("usage-b.spool").unwrap(), 20);
            // Another replica sees them.
            assert_eq!(db.open(1).spool_mark("usage-a.spool").unwrap(), 4096);

            // A day that is not a date (no 30 February) is left out; the rest of its batch,
            // marks included, is added (PostgreSQL would refuse the whole batch, at every try).
            let mut bad = batch(
                &[
                    (
                        "2026-02-30|1|101|PersonRegistrationService|ReadContactGroup",
                        count(1, &[]),
                    ),
                    (day, count(5, &[])),
                ],
                &[],
            );
            bad.marks = vec![("usage-a.spool".into(), 9999), ("usage-c.spool".into(), 1)];
            s.add_usage(&bad).unwrap();
            assert_eq!(s.spool_mark("usage-a.spool").unwrap(), 9999);
            assert_eq!(s.spool_mark("usage-c.spool").unwrap(), 1);
            assert_eq!(
                s.usage(ALL).unwrap(),
                aggregates(&[(day, count(6, &[]))], &[])
            );

            s.forget_spool(&["usage-a.spool".into(), "usage-x.spool".into()])
                .unwrap();
            s.forget_spool(&[]).unwrap();
            assert_eq!(s.spool_mark("usage-a.spool").unwrap(), 0);
            assert_eq!(s.spool_mark("usage-b.spool").unwrap(), 20);
        });
    }

    /// What waiting will not mend (here: no such database) is refused at once, not after
    /// the start-up patience.
    #[test]
    fn a_missing_database_is_refused_at_once() {
        on_pg("pg::a_missing_database_is_refused_at_once", |pg| {
            let url = with_database(&pg.url, &format!("vos_missing_{}", Uuid::new_v4().simple()));
            let started = Instant::now();
            let err = PgState::open(&StateUrl::parse(&url).unwrap(), pg.ca.as_deref(), 1)
                .err()
                .expect("no such database");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{:?}",
                started.elapsed()
            );
            assert!(err.contains("refused:"), "{err}");
            let config: tokio_postgres::Config = pg.url.parse().unwrap();
            if let Some(password) = config.get_password() {
                let password = String::from_utf8_lossy(password);
                assert!(!err.contains(password.as_ref()), "no password in: {err}");
            }
        });
    }

    /// A batch sent again with its id (its first add's answer was lost) is added once,
    /// also when both tries run at the same time on two replicas' stores; a batch without
    /// an id is added each time.
    #[test]
    fn a_batch_sent_again_with_its_id_is_added_once() {
        on_pg("pg::a_batch_sent_again_with_its_id_is_added_once", |pg| {
            let db = Scratch::new(pg);
            let day = "2026-11-27|1|101|PersonRegistrationService|CreateContactGroup";
            let stores = open_together(&db, 2, 2);
            let mut b = batch(&[(day, count(3, &[(100028, 1)]))], &[]);
            b.id = Some(Uuid::new_v4());
            stores[0].add_usage(&b).unwrap();
            stores[1].add_usage(&b).unwrap();
            assert_eq!(
                stores[0].usage(ALL).unwrap(),
                aggregates(&[(day, count(3, &[(100028, 1)]))], &[])
            );
            for _ in 0..20 {
                let mut again = batch(&[(day, count(1, &[]))], &[]);
                again.id = Some(Uuid::new_v4());
                std::thread::scope(|scope| {
                    for s in &stores {
                        let again = again.clone();
                        scope.spawn(move || s.add_usage(&again).unwrap());
                    }
                });
            }
            assert_eq!(
                stores[1].usage(ALL).unwrap(),
                aggregates(&[(day, count(23, &[(100028, 1)]))], &[])
            );
            let plain = batch(&[(day, count(1, &[]))], &[]);
            stores[0].add_usage(&plain).unwrap();
            stores[0].add_usage(&plain).unwrap();
            assert_eq!(stores[0].usage(ALL).unwrap().days[day].calls, 25);
        });
    }

    /// Usage keys come back as written whatever the server's DateStyle (`dag::text` would
    /// follow it: `27/11/2026` under `SQL, DMY`).
    #[test]
    fn usage_keys_do_not_depend_on_the_servers_datestyle() {
        on_pg(
            "pg::usage_keys_do_not_depend_on_the_servers_datestyle",
            |pg| {
                let db = Scratch::new(pg);
                db.sql()
                    .batch(&format!(
                        "ALTER DATABASE {} SET datestyle = 'SQL, DMY'",
                        db.name
                    ))
                    .unwrap();
                let s = db.open(1);
                let key = "2026-11-27|1|101|PersonRegistrationService|CreateContactGroup";
                s.add_usage(&batch(&[(key, count(1, &[]))], &[])).unwrap();
                let u = s.usage(jiff::civil::date(2026, 11, 27)).unwrap();
                assert_eq!(u.days.keys().collect::<Vec<_>>(), [key]);
            },
        );
    }

    /// A database migrated by a newer binary is refused at once (no waiting for the
    /// database to come up), with the versions said, and left as it is.
    #[test]
    fn a_newer_schema_is_refused_at_once() {
        on_pg("pg::a_newer_schema_is_refused_at_once", |pg| {
            let db = Scratch::new(pg);
            drop(db.open(1));
            db.sql()
                .batch("INSERT INTO vos_schema (version) VALUES (2)")
                .unwrap();
            let started = Instant::now();
            let err = db
                .try_open(1)
                .err()
                .expect("a database at version 2 must be refused by a binary that knows 1");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(10), "refused after {took:?}");
            assert!(
                err.contains("schema: the state database is at version 2"),
                "{err}"
            );
            assert!(
                err.contains("version 2") && err.contains("this binary's 1"),
                "{err}"
            );
            assert_eq!(db.versions(), ["1", "2"]);
        });
    }

    #[test]
    fn ready_when_up_and_described_without_password() {
        on_pg("pg::ready_when_up_and_described_without_password", |pg| {
            let db = Scratch::new(pg);
            let s = db.open(1);
            assert!(s.ready().is_ok(), "{:?}", s.ready());
            // Cached for a moment, then asked again.
            thread::sleep(Duration::from_millis(1100));
            assert!(s.ready().is_ok(), "{:?}", s.ready());
            assert!(s.shared());
            let described = s.describe();
            assert!(described.contains("PostgreSQL"), "{described}");
            assert!(described.contains(&db.name), "{described}");
            let config: tokio_postgres::Config = db.url.parse().unwrap();
            if let Some(password) = config.get_password() {
                let password = String::from_utf8_lossy(password);
                assert!(!described.contains(password.as_ref()), "{described}");
            }
        });
    }

    /// Nothing listening: the start retries for its patience (30 s, START_PATIENCE) and
    /// then fails, saying so. Runs only with VOS_TEST_PG_URL, to keep `cargo test` quick.
    #[test]
    fn open_gives_up_after_its_patience_when_nothing_listens() {
        on_pg(
            "pg::open_gives_up_after_its_patience_when_nothing_listens",
            |_| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let url = StateUrl::parse(&format!("postgres://vos@127.0.0.1:{port}/vos")).unwrap();
                let started = Instant::now();
                let err = PgState::open(&url, None, 1)
                    .err()
                    .expect("nothing listens there");
                let took = started.elapsed();
                assert!(
                    took >= Duration::from_secs(29) && took <= Duration::from_secs(36),
                    "gave up after {took:?}: {err}"
                );
                assert!(err.contains("did not answer for 30 s"), "{err}");
            },
        );
    }
}
