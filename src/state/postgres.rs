//! [`PgState`]: the state shared by replicas, in one PostgreSQL database (`state_url`).
//!
//! The driver is tokio-postgres with a deadpool pool (`state_pool_size` connections at
//! most), on a small runtime of its own (one worker thread): its connection tasks run there
//! whatever the caller's runtime, and the blocking [`StateStore`] methods wait for their
//! query on a channel, at most [`OP_TIMEOUT`], so a store that is down is an error in
//! bounded time and never a hang. A store that comes back needs no restart: the pool drops
//! closed connections and opens new ones.
//!
//! - **Migrations** at start: `vos_schema` records the versions applied; each start takes
//!   `pg_advisory_xact_lock(MIGRATION_LOCK)` in the migrating transaction, so replicas
//!   starting together apply each version once; a database newer than the binary is
//!   refused.
//! - **Queues**: a sequence reserves its messages with `FOR UPDATE SKIP LOCKED`, so two
//!   replicas reserving for the same subscriber never take the same message.
//! - **Usage**: `INSERT ... ON CONFLICT DO UPDATE SET kald = kald + EXCLUDED.kald`, one
//!   statement per table per flush, in the transaction that moves the spool marks: replicas
//!   never lose each other's increments, and a batch is never added twice.
//!
//! Deadlocks and serialisation failures are retried (a few times) as PostgreSQL advises.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use jiff::{Timestamp, civil::Date};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{StateError, StateStore, StateUrl, UsageAggregates, UsageBatch, UsageStore};
use crate::observe::usage::Count;
use crate::wsrm::MessageKind;
use crate::wsrm::store::{NewMessage, QueueError, QueueStats, QueueStore, StoredMessage};

/// The longest any one operation may take, waiting for a connection included.
pub const OP_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a readiness result is reused.
const READY_FOR: Duration = Duration::from_secs(1);
/// The advisory lock key of schema migrations ("vosmigr").
const MIGRATION_LOCK: i64 = 0x0076_6f73_6d69_6772;
/// How long a start waits for the database before it gives up.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// How long one try at the schema migrations may take (waiting for another replica's
/// included).
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(300);

/// The schema, one entry per version; never edit an entry that shipped, add one.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE wsrm_besked (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        abonnent TEXT NOT NULL,
        art TEXT NOT NULL,
        besked_id UUID NOT NULL,
        message_identifier UUID NOT NULL,
        felter TEXT NOT NULL,
        modtaget_ms BIGINT NOT NULL,
        sekvens UUID,
        UNIQUE (abonnent, art, besked_id)
    );
    CREATE INDEX wsrm_besked_fri ON wsrm_besked (abonnent, id) WHERE sekvens IS NULL;
    CREATE INDEX wsrm_besked_sekvens ON wsrm_besked (sekvens, art, id) WHERE sekvens IS NOT NULL;
    CREATE INDEX wsrm_besked_modtaget ON wsrm_besked (modtaget_ms);
    CREATE TABLE wsrm_sekvens (
        id UUID PRIMARY KEY,
        abonnent TEXT NOT NULL,
        oprettet_ms BIGINT NOT NULL
    );
    CREATE INDEX wsrm_sekvens_oprettet ON wsrm_sekvens (oprettet_ms);
    -- udfald: -1 answered without a fault, else the call's (bounded) fault code.
    CREATE TABLE usage_dag (
        dag DATE NOT NULL,
        org_type TEXT NOT NULL,
        org_code TEXT NOT NULL,
        service TEXT NOT NULL,
        operation TEXT NOT NULL,
        udfald INTEGER NOT NULL,
        kald BIGINT NOT NULL,
        PRIMARY KEY (dag, org_type, org_code, service, operation, udfald)
    );
    CREATE TABLE usage_sidst (
        org_type TEXT NOT NULL,
        org_code TEXT NOT NULL,
        service TEXT NOT NULL,
        operation TEXT NOT NULL,
        sidst_ms BIGINT NOT NULL,
        PRIMARY KEY (org_type, org_code, service, operation)
    );
    CREATE TABLE usage_spool (
        fil TEXT PRIMARY KEY,
        bytes BIGINT NOT NULL
    );
    -- The usage batches added (UsageBatch::id), so that one sent again is added once;
    -- forgotten after a week (keep_usage).
    CREATE TABLE usage_parti (
        id UUID PRIMARY KEY,
        ms BIGINT NOT NULL
    );
    CREATE INDEX usage_parti_ms ON usage_parti (ms);"];

/// The runtime the pool's connections live on; shut down without waiting when dropped (it
/// may be dropped on an async thread, where waiting is not allowed).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub struct PgState {
    rt: OwnRuntime,
    handle: tokio::runtime::Handle,
    pool: Pool,
    described: String,
    ready: Mutex<Option<(Instant, Result<(), StateError>)>>,
}

fn db(e: tokio_postgres::Error) -> StateError {
    // The driver's message, never the URL; a database error's detail could quote a key,
    // and keys here are subscriber and usage labels, never a CPR number.
    StateError(format!("PostgreSQL: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StateError {
    StateError(format!("PostgreSQL unreachable: {e}"))
}

/// An error waiting will not mend: the login refused (class 28), no such database
/// (3D000), no permission (42501).
fn refused(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        c.code().starts_with("28")
            || *c == SqlState::INVALID_CATALOG_NAME
            || *c == SqlState::INSUFFICIENT_PRIVILEGE
    })
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

impl PgState {
    /// Connects, migrates the schema (waiting up to 30 s for the database), and answers
    /// the store. `ca`: the CA the server's certificate must chain to (`sslmode=require`).
    pub fn open(url: &StateUrl, ca: Option<&Path>, pool_size: usize) -> Result<PgState, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vos-state")
            .enable_all()
            .build()
            .map_err(|e| format!("the state store's runtime: {e}"))?;
        let handle = rt.handle().clone();
        let mut config = url.config().clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        config.application_name("vos-converter");
        // A connection the network lost silently (a partition, a moved address) is found
        // dead in seconds, not after the kernel's two hours, so the pool replaces it: sent
        // data unacknowledged for 5 s, or 5 s idle and three probes a second apart unanswered.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(5));
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        // No statement may outlive the operation that waits for it.
        let options = match config.get_options() {
            Some(o) => format!("{o} -c statement_timeout={}", OP_TIMEOUT.as_millis()),
            None => format!("-c statement_timeout={}", OP_TIMEOUT.as_millis()),
        };
        config.options(&options);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                let tls =
                    crate::tls::client_config(None, ca).map_err(|e| format!("state_ca: {e}"))?;
                Manager::from_config(
                    config,
                    tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                    manager_config,
                )
            }
            _ => {
                if ca.is_some() {
                    return Err(
                        "state_ca is given but state_url does not ask for TLS: add ?sslmode=require"
                            .into(),
                    );
                }
                Manager::from_config(config, tokio_postgres::NoTls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .timeouts(Timeouts {
                wait: Some(Duration::from_secs(3)),
                create: Some(Duration::from_secs(3)),
                recycle: Some(Duration::from_secs(2)),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("the state store's pool: {e}"))?;
        let state = PgState {
            rt: OwnRuntime(Some(rt)),
            handle,
            pool,
            described: format!("PostgreSQL {} (shared by replicas)", url.redacted()),
            ready: Mutex::new(None),
        };
        if !url.tls() && !url.local() {
            tracing::warn!(
                store = %state.described,
                "the state store is reached WITHOUT TLS over the network: add ?sslmode=require (or verify-full) to state_url"
            );
        }
        let started = Instant::now();
        loop {
            let pool = state.pool.clone();
            match state.block_for(MIGRATE_TIMEOUT, async move { migrate(&pool).await }) {
                Ok(version) => {
                    tracing::info!(store = %state.described, schema = version, "state store ready");
                    return Ok(state);
                }
                // A newer schema, a refused login, no such database: waiting will not help.
                Err(e) if e.0.starts_with("schema:") || e.0.starts_with("refused:") => {
                    return Err(format!("the state store {}: {}", url.redacted(), e.0));
                }
                Err(e) if started.elapsed() < START_PATIENCE => {
                    tracing::warn!(error = %e, store = %state.described, "state store not reachable yet; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(format!(
                        "the state store {} did not answer for {} s: {e}",
                        url.redacted(),
                        START_PATIENCE.as_secs()
                    ));
                }
            }
        }
    }

    /// Runs `op` on the store's runtime and waits for it, at most [`OP_TIMEOUT`].
    fn block<T: Send + 'static, E: From<StateError> + Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, E> {
        self.block_for(OP_TIMEOUT, op)
    }

    /// Runs `op` on the store's runtime and waits for it, at most `limit`.
    fn block_for<T: Send + 'static, E: From<StateError> + Send + 'static>(
        &self,
        limit: Duration,
        op: impl Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, E> {
        let _ = &self.rt;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let out = match tokio::time::timeout(limit, op).await {
                Ok(r) => r,
                Err(_) => Err(StateError(format!(
                    "PostgreSQL did not answer within {} s",
                    limit.as_secs()
                ))
                .into()),
            };
            let _ = tx.send(out);
        });
        rx.recv_timeout(limit + Duration::from_secs(1))
            .unwrap_or_else(|_| Err(StateError("PostgreSQL did not answer".into()).into()))
    }

    /// Runs `f` in one transaction (read committed), again when PostgreSQL reports a
    /// deadlock or a serialisation failure.
    fn tx<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: for<'t> Fn(
                &'t deadpool_postgres::Transaction<'t>,
            )
                -> std::pin::Pin<Box<dyn Future<Output = Result<T, PgError>> + Send + 't>>
            + Send
            + Sync
            + 'static,
    {
        let pool = self.pool.clone();
        self.block(async move {
            let mut client = pool.get().await.map_err(pool_err)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let tx = client.transaction().await.map_err(db)?;
                let out = f(&tx).await;
                let out = match out {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(PgError::Db),
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                };
                match out {
                    Ok(v) => return Ok(v),
                    Err(PgError::Db(e)) if retryable(&e) && attempt < 4 => continue,
                    Err(PgError::Db(e)) => return Err(db(e).into()),
                    Err(PgError::State(e)) => return Err(e.into()),
                    Err(PgError::UnknownSequence) => return Err(Failure::UnknownSequence),
                }
            }
        })
    }
}

impl PgState {
    /// Ends the subscriber's open sequence: `messages` (with the sequence id as `$1`) does
    /// to its messages what terminate (delete) or close (free) does; answers how many.
    fn end_sequence(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
        messages: &'static str,
    ) -> Result<usize, QueueError> {
        let subscriber = subscriber.to_owned();
        self.tx(move |tx| {
            let subscriber = subscriber.clone();
            Box::pin(async move {
                release_expired(tx, now, timeout).await?;
                owned(tx, &subscriber, sequence).await?;
                let n = tx.execute(messages, &[&sequence]).await?;
                tx.execute("DELETE FROM wsrm_sekvens WHERE id = $1", &[&sequence])
                    .await?;
                Ok(n as usize)
            })
        })
        .map_err(QueueError::from)
    }
}

/// What an operation in a transaction can fail with.
#[derive(Debug)]
pub enum PgError {
    Db(tokio_postgres::Error),
    State(StateError),
    /// No such sequence for this subscriber: a [`QueueError::UnknownSequence`].
    UnknownSequence,
}

/// What a transaction ended with when it did not succeed.
#[derive(Debug)]
pub enum Failure {
    State(StateError),
    UnknownSequence,
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::State(e)
    }
}

impl From<Failure> for QueueError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::State(e) => QueueError::Store(e.0),
            Failure::UnknownSequence => QueueError::UnknownSequence,
        }
    }
}

impl From<Failure> for StateError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::State(e) => e,
            Failure::UnknownSequence => StateError("unknown sequence".into()),
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Db(e)
    }
}

/// A migration's error: [`db`], or `refused:` when waiting will not mend it.
fn migrate_err(e: tokio_postgres::Error) -> StateError {
    if refused(&e) {
        StateError(format!("refused: {e}"))
    } else {
        db(e)
    }
}

/// Applies the migrations this binary has and the database has not; answers the version.
async fn migrate(pool: &Pool) -> Result<usize, StateError> {
    let mut client = pool.get().await.map_err(|e| match &e {
        deadpool_postgres::PoolError::Backend(be) if refused(be) => {
            StateError(format!("refused: {be}"))
        }
        _ => pool_err(e),
    })?;
    let tx = client.transaction().await.map_err(migrate_err)?;
    // A migration may take longer than an operation (its own limit: MIGRATE_TIMEOUT), and
    // so may the wait for another replica's.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(migrate_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(migrate_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS vos_schema (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(migrate_err)?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM vos_schema", &[])
        .await
        .map_err(migrate_err)?
        .get(0);
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StateError(format!(
            "schema: the state database is at version {current}, newer than this binary's {}; \
             run the newer binary",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await.map_err(migrate_err)?;
        tx.execute(
            "INSERT INTO vos_schema (version) VALUES ($1)",
            &[&((i + 1) as i32)],
        )
        .await
        .map_err(migrate_err)?;
        tracing::info!(version = i + 1, "state store schema migrated");
    }
    tx.commit().await.map_err(migrate_err)?;
    Ok(MIGRATIONS.len())
}

/// Frees the messages of sequences older than `timeout` and forgets those sequences.
async fn release_expired(
    tx: &deadpool_postgres::Transaction<'_>,
    now: i64,
    timeout: i64,
) -> Result<(), PgError> {
    let before = now.saturating_sub(timeout);
    tx.execute(
        "WITH gone AS (DELETE FROM wsrm_sekvens WHERE oprettet_ms < $1 RETURNING id)
         UPDATE wsrm_besked SET sekvens = NULL WHERE sekvens IN (SELECT id FROM gone)",
        &[&before],
    )
    .await?;
    Ok(())
}

/// The sequence is the subscriber's and still open (locked until the transaction ends, so
/// a concurrent terminate and close of one sequence take turns).
async fn owned(
    tx: &deadpool_postgres::Transaction<'_>,
    subscriber: &str,
    sequence: Uuid,
) -> Result<(), PgError> {
    let row = tx
        .query_opt(
            "SELECT abonnent FROM wsrm_sekvens WHERE id = $1 FOR UPDATE",
            &[&sequence],
        )
        .await?;
    match row.map(|r| r.get::<_, String>(0)) {
        Some(s) if s == subscriber => Ok(()),
        _ => Err(PgError::UnknownSequence),
    }
}

fn kind_of(s: &str) -> Result<MessageKind, PgError> {
    MessageKind::parse(s)
        .ok_or_else(|| PgError::State(StateError(format!("unknown kind {s} stored"))))
}

impl QueueStore for PgState {
    fn enqueue(&self, messages: &[NewMessage]) -> Result<usize, QueueError> {
        let mut rows = Vec::with_capacity(messages.len());
        for m in messages {
            let fields =
                serde_json::to_string(&m.fields).map_err(|e| QueueError::Store(e.to_string()))?;
            rows.push((
                m.subscriber.clone(),
                m.kind.as_str().to_owned(),
                m.besked_id,
                m.message_identifier,
                fields,
                m.received_ms,
            ));
        }
        let rows = std::sync::Arc::new(rows);
        self.tx(move |tx| {
            let rows = rows.clone();
            Box::pin(async move {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO wsrm_besked
                             (abonnent, art, besked_id, message_identifier, felter, modtaget_ms)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (abonnent, art, besked_id) DO NOTHING",
                    )
                    .await?;
                let mut n = 0;
                for (s, k, b, m, f, at) in rows.iter() {
                    n += tx.execute(&stmt, &[s, k, b, m, f, at]).await? as usize;
                }
                Ok(n)
            })
        })
        .map_err(QueueError::from)
    }

    fn create_sequence(
        &self,
        subscriber: &str,
        now: i64,
        timeout: i64,
        max: usize,
    ) -> Result<(Uuid, Vec<(MessageKind, usize)>), QueueError> {
        let subscriber = subscriber.to_owned();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.tx(move |tx| {
            let subscriber = subscriber.clone();
            Box::pin(async move {
                release_expired(tx, now, timeout).await?;
                let id = Uuid::new_v4();
                tx.execute(
                    "INSERT INTO wsrm_sekvens (id, abonnent, oprettet_ms) VALUES ($1, $2, $3)",
                    &[&id, &subscriber, &now],
                )
                .await?;
                // SKIP LOCKED: a message another replica is reserving right now is left to
                // it, not waited for and never taken twice.
                let rows = tx
                    .query(
                        "WITH taken AS (
                             UPDATE wsrm_besked SET sekvens = $1 WHERE id IN (
                                 SELECT id FROM wsrm_besked
                                 WHERE abonnent = $2 AND sekvens IS NULL
                                 ORDER BY id LIMIT $3
                                 FOR UPDATE SKIP LOCKED)
                             RETURNING art)
                         SELECT art, COUNT(*) FROM taken GROUP BY art",
                        &[&id, &subscriber, &max],
                    )
                    .await?;
                let mut inventory = Vec::new();
                for r in rows {
                    let kind: String = r.get(0);
                    let n: i64 = r.get(1);
                    inventory.push((kind_of(&kind)?, n as usize));
                }
                inventory.sort();
                Ok((id, inventory))
            })
        })
        .map_err(QueueError::from)
    }

    fn messages(
        &self,
        subscriber: &str,
        sequence: Uuid,
        kind: MessageKind,
        now: i64,
        timeout: i64,
    ) -> Result<Vec<StoredMessage>, QueueError> {
        let subscriber = subscriber.to_owned();
        self.tx(move |tx| {
            let subscriber = subscriber.clone();
            Box::pin(async move {
                release_expired(tx, now, timeout).await?;
                owned(tx, &subscriber, sequence).await?;
                let rows = tx
                    .query(
                        "SELECT message_identifier, felter FROM wsrm_besked
                         WHERE sekvens = $1 AND art = $2 ORDER BY id",
                        &[&sequence, &kind.as_str()],
                    )
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let fields: String = r.get(1);
                    out.push(StoredMessage {
                        message_identifier: r.get(0),
                        fields: serde_json::from_str(&fields).map_err(|e| {
                            // Where, not what: a stored field can be a CPR number.
                            PgError::State(StateError(format!(
                                "stored fields (line {}, column {})",
                                e.line(),
                                e.column()
                            )))
                        })?,
                    });
                }
                Ok(out)
            })
        })
        .map_err(QueueError::from)
    }

    fn terminate(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError> {
        self.end_sequence(
            subscriber,
            sequence,
            now,
            timeout,
            "DELETE FROM wsrm_besked WHERE sekvens = $1",
        )
    }

    fn close(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError> {
        self.end_sequence(
            subscriber,
            sequence,
            now,
            timeout,
            "UPDATE wsrm_besked SET sekvens = NULL WHERE sekvens = $1",
        )
    }

    fn expire(&self, now: i64, retention: i64) -> Result<usize, QueueError> {
        self.tx(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "DELETE FROM wsrm_besked WHERE modtaget_ms < $1",
                        &[&now.saturating_sub(retention)],
                    )
                    .await? as usize)
            })
        })
        .map_err(QueueError::from)
    }

    fn stats(&self, now: i64) -> Result<Vec<QueueStats>, QueueError> {
        self.tx(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT abonnent, COUNT(*), MIN(modtaget_ms) FROM wsrm_besked
                         GROUP BY abonnent ORDER BY abonnent",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| QueueStats {
                        subscriber: r.get(0),
                        depth: r.get::<_, i64>(1) as usize,
                        oldest_age_secs: (now - r.get::<_, i64>(2)).max(0) as f64 / 1000.0,
                    })
                    .collect())
            })
        })
        .map_err(QueueError::from)
    }
}

/// The usage rows of a batch, as the arrays `UNNEST` takes.
#[derive(Default)]
struct DayRows {
    day: Vec<String>,
    ty: Vec<String>,
    code: Vec<String>,
    service: Vec<String>,
    operation: Vec<String>,
    outcome: Vec<i32>,
    calls: Vec<i64>,
}

#[derive(Default)]
struct SeenRows {
    ty: Vec<String>,
    code: Vec<String>,
    service: Vec<String>,
    operation: Vec<String>,
    at: Vec<i64>,
}

fn day_rows(days: &std::collections::BTreeMap<String, Count>) -> DayRows {
    let mut rows = DayRows::default();
    for (key, count) in days {
        let parts: Vec<&str> = key.split('|').collect();
        let [day, ty, code, service, operation] = parts[..] else {
            continue;
        };
        // Keys are made by `Usage` from the Danish date; one that is not a date would make
        // PostgreSQL refuse the whole batch, again at every try.
        if day.parse::<Date>().is_err() {
            tracing::warn!("usage: a count whose day is not a date is left out");
            continue;
        }
        let faults: u64 = count.faults.values().sum();
        let mut push = |outcome: i32, n: u64| {
            if n == 0 {
                return;
            }
            rows.day.push(day.to_owned());
            rows.ty.push(ty.to_owned());
            rows.code.push(code.to_owned());
            rows.service.push(service.to_owned());
            rows.operation.push(operation.to_owned());
            rows.outcome.push(outcome);
            rows.calls.push(i64::try_from(n).unwrap_or(i64::MAX));
        };
        push(-1, count.calls.saturating_sub(faults));
        for (code, n) in &count.faults {
            push(i32::try_from(*code).unwrap_or(i32::MAX), *n);
        }
    }
    rows
}

fn seen_rows(last_seen: &std::collections::BTreeMap<String, Timestamp>) -> SeenRows {
    let mut rows = SeenRows::default();
    for (key, at) in last_seen {
        let parts: Vec<&str> = key.split('|').collect();
        let [ty, code, service, operation] = parts[..] else {
            continue;
        };
        rows.ty.push(ty.to_owned());
        rows.code.push(code.to_owned());
        rows.service.push(service.to_owned());
        rows.operation.push(operation.to_owned());
        rows.at.push(at.as_millisecond());
    }
    rows
}

impl UsageStore for PgState {
    fn add_usage(&self, batch: &UsageBatch) -> Result<(), StateError> {
        let days = std::sync::Arc::new(day_rows(&batch.days));
        let seen = std::sync::Arc::new(seen_rows(&batch.last_seen));
        let (files, marks): (Vec<String>, Vec<i64>) = batch
            .marks
            .iter()
            .map(|(f, at)| (f.clone(), i64::try_from(*at).unwrap_or(i64::MAX)))
            .unzip();
        let marks = std::sync::Arc::new((files, marks));
        let id = batch.id;
        self.tx(move |tx| {
            let (days, seen, marks) = (days.clone(), seen.clone(), marks.clone());
            Box::pin(async move {
                // Added already? A batch sent again after its commit went unanswered: the
                // first may have committed, or may still be committing (then this insert
                // waits for it to end, and conflicts if it committed).
                if let Some(id) = id
                    && tx
                        .execute(
                            "INSERT INTO usage_parti (id, ms)
                             VALUES ($1, (extract(epoch FROM now()) * 1000)::int8)
                             ON CONFLICT (id) DO NOTHING",
                            &[&id],
                        )
                        .await?
                        == 0
                {
                    return Ok(());
                }
                if !days.day.is_empty() {
                    tx.execute(
                        "INSERT INTO usage_dag
                             (dag, org_type, org_code, service, operation, udfald, kald)
                         SELECT d::date, t, c, s, o, u, k FROM UNNEST(
                             $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::int4[], $7::int8[]) AS x(d, t, c, s, o, u, k)
                         ON CONFLICT (dag, org_type, org_code, service, operation, udfald)
                         DO UPDATE SET kald = usage_dag.kald + EXCLUDED.kald",
                        &[
                            &days.day,
                            &days.ty,
                            &days.code,
                            &days.service,
                            &days.operation,
                            &days.outcome,
                            &days.calls,
                        ],
                    )
                    .await?;
                }
                if !seen.ty.is_empty() {
                    tx.execute(
                        "INSERT INTO usage_sidst (org_type, org_code, service, operation, sidst_ms)
                         SELECT * FROM UNNEST(
                             $1::text[], $2::text[], $3::text[], $4::text[], $5::int8[])
                         ON CONFLICT (org_type, org_code, service, operation)
                         DO UPDATE SET sidst_ms = GREATEST(usage_sidst.sidst_ms, EXCLUDED.sidst_ms)",
                        &[&seen.ty, &seen.code, &seen.service, &seen.operation, &seen.at],
                    )
                    .await?;
                }
                if !marks.0.is_empty() {
                    tx.execute(
                        "INSERT INTO usage_spool (fil, bytes)
                         SELECT * FROM UNNEST($1::text[], $2::int8[])
                         ON CONFLICT (fil) DO UPDATE SET bytes = GREATEST(usage_spool.bytes, EXCLUDED.bytes)",
                        &[&marks.0, &marks.1],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .map_err(StateError::from)
    }

    fn usage(&self, oldest: Date) -> Result<UsageAggregates, StateError> {
        let oldest = oldest.to_string();
        self.tx(move |tx| {
            let oldest = oldest.clone();
            Box::pin(async move {
                let mut out = UsageAggregates::default();
                for r in tx
                    .query(
                        "SELECT to_char(dag, 'YYYY-MM-DD'), org_type, org_code, service, operation, udfald, kald
                         FROM usage_dag WHERE dag >= $1::text::date",
                        &[&oldest],
                    )
                    .await?
                {
                    let key = format!(
                        "{}|{}|{}|{}|{}",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3),
                        r.get::<_, String>(4)
                    );
                    let outcome: i32 = r.get(5);
                    let n = u64::try_from(r.get::<_, i64>(6)).unwrap_or(0);
                    let c = out.days.entry(key).or_default();
                    c.calls += n;
                    if let Ok(code) = u32::try_from(outcome) {
                        *c.faults.entry(code).or_default() += n;
                    }
                }
                for r in tx
                    .query(
                        "SELECT org_type, org_code, service, operation, sidst_ms FROM usage_sidst",
                        &[],
                    )
                    .await?
                {
                    let key = format!(
                        "{}|{}|{}|{}",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3)
                    );
                    if let Ok(t) = Timestamp::from_millisecond(r.get(4)) {
                        out.last_seen.insert(key, t);
                    }
                }
                Ok(out)
            })
        })
        .map_err(StateError::from)
    }

    fn keep_usage(&self, oldest: Date, forget_before: Date) -> Result<(), StateError> {
        let oldest = oldest.to_string();
        let before_ms = forget_before
            .to_zoned(crate::dktime::copenhagen().clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(0);
        self.tx(move |tx| {
            let oldest = oldest.clone();
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM usage_dag WHERE dag < $1::text::date",
                    &[&oldest],
                )
                .await?;
                tx.execute("DELETE FROM usage_sidst WHERE sidst_ms < $1", &[&before_ms])
                    .await?;
                // A batch is sent again within seconds of its first try; a week is plenty.
                tx.execute(
                    "DELETE FROM usage_parti
                     WHERE ms < (extract(epoch FROM now()) * 1000)::int8 - 7 * 86400000",
                    &[],
                )
                .await?;
                Ok(())
            })
        })
        .map_err(StateError::from)
    }

    fn spool_mark(&self, file: &str) -> Result<u64, StateError> {
        let file = file.to_owned();
        self.tx(move |tx| {
            let file = file.clone();
            Box::pin(async move {
                let row = tx
                    .query_opt("SELECT bytes FROM usage_spool WHERE fil = $1", &[&file])
                    .await?;
                Ok(row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
            })
        })
        .map_err(StateError::from)
    }

    fn forget_spool(&self, files: &[String]) -> Result<(), StateError> {
        if files.is_empty() {
            return Ok(());
        }
        let files = files.to_vec();
        self.tx(move |tx| {
            let files = files.clone();
            Box::pin(async move {
                tx.execute("DELETE FROM usage_spool WHERE fil = ANY($1)", &[&files])
                    .await?;
                Ok(())
            })
        })
        .map_err(StateError::from)
    }
}

impl StateStore for PgState {
    fn shared(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    fn ready(&self) -> Result<(), StateError> {
        let Ok(mut last) = self.ready.lock() else {
            return Err(StateError("the readiness lock was poisoned".into()));
        };
        if let Some((at, result)) = &*last
            && at.elapsed() < READY_FOR
        {
            return result.clone();
        }
        let pool = self.pool.clone();
        let result = self.block(async move {
            let client = tokio::time::timeout(Duration::from_secs(2), pool.get())
                .await
                .map_err(|_| StateError("no PostgreSQL connection within 2 s".into()))?
                .map_err(pool_err)?;
            tokio::time::timeout(Duration::from_secs(2), client.simple_query("SELECT 1"))
                .await
                .map_err(|_| StateError("PostgreSQL did not answer within 2 s".into()))?
                .map_err(db)?;
            Ok(())
        });
        *last = Some((Instant::now(), result.clone()));
        result
    }
}
