//! The state the converter keeps across calls, behind one interface (issue 17).
//!
//! [`StateStore`] is everything a call, a poll or `/api/migration` may need from storage:
//! the WSRM queues and sequences ([`QueueStore`]) and the migration usage
//! ([`UsageStore`]). Two implementations:
//!
//! - [`LocalState`] (the default): files in the data dir, for one process. The queues in
//!   SQLite (`wsrm.db`, [`SqliteQueue`]), the usage aggregates in a JSON file written
//!   durably (`migration-usage.json`, [`crate::observe::usage::FileUsage`]).
//! - [`postgres::PgState`] (`state_url = "postgres://..."`): one PostgreSQL database shared by
//!   every replica. Schema migrations at start (versioned, under an advisory lock, so
//!   replicas starting together migrate once), a bounded pool, `FOR UPDATE SKIP LOCKED` when
//!   a sequence reserves messages, usage added with atomic upserts.
//!
//! Every method is blocking and bounded in time: callers are on a blocking pool (the WSRM
//! operations, `/wsb`, the usage flush) or in `web::block`.

pub mod postgres;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jiff::{Timestamp, civil::Date};

use crate::observe::usage::{Count, FileUsage};
use crate::wsrm::MessageKind;
use crate::wsrm::store::{
    NewMessage, QueueError, QueueStats, QueueStore, SqliteQueue, StoredMessage,
};

/// The state store failed: unreachable, refused, or broken.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

impl From<StateError> for QueueError {
    fn from(e: StateError) -> Self {
        QueueError::Store(e.0)
    }
}

/// Usage increments to add: counts by "date|type|code|service|operation", last calls by
/// "type|code|service|operation", and the spool positions they cover (`marks`: a spool
/// file's name and how many of its bytes are in this batch and every earlier one), which
/// a shared store keeps in the same transaction, so that what a spool file holds is replayed
/// from where the store's counts end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageBatch {
    /// Set by a shared store's user: a batch sent again with the same id (its first add's
    /// outcome was unknown) is added once.
    pub id: Option<uuid::Uuid>,
    pub days: BTreeMap<String, Count>,
    pub last_seen: BTreeMap<String, Timestamp>,
    pub marks: Vec<(String, u64)>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.last_seen.is_empty() && self.marks.is_empty()
    }
}

/// The usage aggregates as stored (the same keys as [`UsageBatch`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageAggregates {
    pub days: BTreeMap<String, Count>,
    pub last_seen: BTreeMap<String, Timestamp>,
}

/// Where the migration usage is kept.
pub trait UsageStore: Send + Sync {
    /// Adds a batch, all or nothing; a shared store records `marks` in the same transaction.
    fn add_usage(&self, batch: &UsageBatch) -> Result<(), StateError>;
    /// The days on or after `oldest`, and every last call.
    fn usage(&self, oldest: Date) -> Result<UsageAggregates, StateError>;
    /// Makes what was added durable where that is not already so (the file is written if
    /// it changed), forgetting days before `oldest` and last calls before `forget_before`.
    fn keep_usage(&self, oldest: Date, forget_before: Date) -> Result<(), StateError>;
    /// How many bytes of spool file `file` are added (0: none, or no spool kept).
    fn spool_mark(&self, file: &str) -> Result<u64, StateError>;
    /// Forgets spool files' marks (the files are gone).
    fn forget_spool(&self, files: &[String]) -> Result<(), StateError>;
}

/// The one storage interface: the WSRM queues and the migration usage.
pub trait StateStore: QueueStore + UsageStore {
    /// Shared by replicas: usage is spooled locally and read back from the store, and
    /// readiness depends on it.
    fn shared(&self) -> bool;
    /// What it is, for the start-up lines and `/readyz` (never a password).
    fn describe(&self) -> String;
    /// Whether it answers now (`Err` says why). Cached briefly by shared stores.
    fn ready(&self) -> Result<(), StateError>;
}

/// A PostgreSQL URL (`state_url`). Shown without its password.
#[derive(Clone)]
pub struct StateUrl {
    text: String,
    config: tokio_postgres::Config,
}

impl StateUrl {
    pub fn parse(text: &str) -> Result<StateUrl, String> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err("must start with postgres:// or postgresql://".into());
        }
        // libpq's verified modes are what `require` does here (the chain and the host name
        // are always verified, against state_ca); tokio-postgres knows only `require`.
        let parsed = match text.split_once('?') {
            Some((base, query)) => {
                let query: Vec<&str> = query
                    .split('&')
                    .map(|p| match p {
                        "sslmode=verify-full" | "sslmode=verify-ca" => "sslmode=require",
                        p => p,
                    })
                    .collect();
                format!("{base}?{}", query.join("&"))
            }
            None => text.to_owned(),
        };
        // tokio-postgres's own parser, so that every libpq URL parameter it knows is read
        // the way it reads it; its error never quotes the URL.
        let config: tokio_postgres::Config = parsed
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        if config.get_hosts().is_empty() {
            return Err("names no host".into());
        }
        Ok(StateUrl {
            text: text.to_owned(),
            config,
        })
    }

    /// Whether the connection is TLS (`sslmode=require`, or libpq's `verify-ca` and
    /// `verify-full`, which mean the same here).
    pub fn tls(&self) -> bool {
        self.config.get_ssl_mode() == tokio_postgres::config::SslMode::Require
    }

    /// Whether every host is on this machine (loopback or a Unix socket).
    pub fn local(&self) -> bool {
        self.config.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => {
                h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
            }
            tokio_postgres::config::Host::Unix(_) => true,
        })
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// `postgres://user@host:port/db` with no password and no parameters.
    pub fn redacted(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgres://{}@{host}:{port}/{}{}",
            self.config.get_user().unwrap_or(""),
            self.config.get_dbname().unwrap_or(""),
            match self.config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Require => " (TLS)",
                _ => "",
            }
        )
    }
}

impl std::fmt::Debug for StateUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Display for StateUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PartialEq for StateUrl {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// The default store: files in the data dir, for one process.
pub struct LocalState {
    /// Opened when WSRM subscribers are configured.
    queue: Option<SqliteQueue>,
    usage: FileUsage,
}

impl LocalState {
    /// Usage in memory only, no queue (tests, benches, `Converter::new`).
    pub fn in_memory() -> LocalState {
        LocalState {
            queue: None,
            usage: FileUsage::in_memory(),
        }
    }

    /// Usage in `usage`, no queue.
    pub fn with_usage(usage: FileUsage) -> LocalState {
        LocalState { queue: None, usage }
    }

    /// The usage file `migration-usage.json` in `dir`, and with `queue` the queue file
    /// `wsrm.db`.
    pub fn open(dir: &Path, queue: bool) -> Result<LocalState, String> {
        let usage = FileUsage::load(dir.join("migration-usage.json"))
            .map_err(|e| format!("{e}; it is kept as it is: fix or move it, then start again"))?;
        let queue = if queue {
            Some(
                SqliteQueue::open(&dir.join("wsrm.db"))
                    .map_err(|e| format!("the WSRM queue {}: {e}", dir.display()))?,
            )
        } else {
            None
        };
        Ok(LocalState { queue, usage })
    }

    fn queue(&self) -> Result<&SqliteQueue, QueueError> {
        self.queue
            .as_ref()
            .ok_or_else(|| QueueError::Store("no WSRM queue is configured".into()))
    }
}

impl QueueStore for LocalState {
    fn enqueue(&self, messages: &[NewMessage]) -> Result<usize, QueueError> {
        self.queue()?.enqueue(messages)
    }
    fn create_sequence(
        &self,
        subscriber: &str,
        now: i64,
        timeout: i64,
        max: usize,
    ) -> Result<(uuid::Uuid, Vec<(MessageKind, usize)>), QueueError> {
        self.queue()?.create_sequence(subscriber, now, timeout, max)
    }
    fn messages(
        &self,
        subscriber: &str,
        sequence: uuid::Uuid,
        kind: MessageKind,
        now: i64,
        timeout: i64,
    ) -> Result<Vec<StoredMessage>, QueueError> {
        self.queue()?
            .messages(subscriber, sequence, kind, now, timeout)
    }
    fn terminate(
        &self,
        subscriber: &str,
        sequence: uuid::Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError> {
        self.queue()?.terminate(subscriber, sequence, now, timeout)
    }
    fn close(
        &self,
        subscriber: &str,
        sequence: uuid::Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError> {
        self.queue()?.close(subscriber, sequence, now, timeout)
    }
    fn expire(&self, now: i64, retention: i64) -> Result<usize, QueueError> {
        self.queue()?.expire(now, retention)
    }
    fn stats(&self, now: i64) -> Result<Vec<QueueStats>, QueueError> {
        self.queue()?.stats(now)
    }
}

impl UsageStore for LocalState {
    fn add_usage(&self, batch: &UsageBatch) -> Result<(), StateError> {
        self.usage.add_usage(batch)
    }
    fn usage(&self, oldest: Date) -> Result<UsageAggregates, StateError> {
        self.usage.usage(oldest)
    }
    fn keep_usage(&self, oldest: Date, forget_before: Date) -> Result<(), StateError> {
        self.usage.keep_usage(oldest, forget_before)
    }
    fn spool_mark(&self, _file: &str) -> Result<u64, StateError> {
        Ok(0)
    }
    fn forget_spool(&self, _files: &[String]) -> Result<(), StateError> {
        Ok(())
    }
}

impl StateStore for LocalState {
    fn shared(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        match self.usage.path() {
            Some(p) => format!(
                "files in {} (one process)",
                p.parent().unwrap_or(Path::new(".")).display()
            ),
            None => "in memory".into(),
        }
    }
    fn ready(&self) -> Result<(), StateError> {
        Ok(())
    }
}

/// Opens the configured store: PostgreSQL with `state_url`, else the data dir's files
/// (`queue`: WSRM subscribers are configured, so the local queue file is opened).
pub fn open(
    url: Option<&StateUrl>,
    ca: Option<&Path>,
    pool_size: usize,
    data_dir: &Path,
    queue: bool,
) -> Result<Arc<dyn StateStore>, String> {
    match url {
        Some(url) => Ok(Arc::new(postgres::PgState::open(url, ca, pool_size)?)),
        None => Ok(Arc::new(LocalState::open(data_dir, queue)?)),
    }
}
