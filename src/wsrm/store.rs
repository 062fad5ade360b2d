//! The WSRM queues behind one interface, [`QueueStore`], so that a shared database can take
//! the place of the default SQLite file when several replicas run (issue 17).
//!
//! [`SqliteQueue`]: one file in the data dir (`wsrm.db`), WAL, `synchronous=FULL`, its schema
//! versioned (`PRAGMA user_version`). An
//! enqueue is durable before the receiver answers 2xx. Every operation is one immediate
//! transaction on one connection, so two calls cannot reserve the same message.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use super::MessageKind;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No such sequence for this subscriber (unknown, another's, finished or released).
    #[error("unknown sequence")]
    UnknownSequence,
    #[error("{0}")]
    Store(String),
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Store(e.to_string())
    }
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub subscriber: String,
    pub kind: MessageKind,
    pub besked_id: Uuid,
    pub message_identifier: Uuid,
    /// The legacy message's fields (`route::Fields`).
    pub fields: Vec<(String, String)>,
    pub received_ms: i64,
}

/// A queued message, as a sequence hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub message_identifier: Uuid,
    pub fields: Vec<(String, String)>,
}

/// One subscriber's queue, for the gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    pub subscriber: String,
    pub depth: usize,
    pub oldest_age_secs: f64,
}

/// The queue operations. `now` and `timeout` are milliseconds: a sequence older than
/// `timeout` is released (its messages free again) before anything else is done.
pub trait QueueStore: Send + Sync {
    /// Queues messages durably; a message already queued (same subscriber, kind and WSB
    /// beskedId) is kept once. Answers how many were new.
    fn enqueue(&self, messages: &[NewMessage]) -> Result<usize, QueueError>;
    /// Reserves up to `max` of the subscriber's oldest free messages into a new sequence;
    /// answers its id and the count per kind.
    fn create_sequence(
        &self,
        subscriber: &str,
        now: i64,
        timeout: i64,
        max: usize,
    ) -> Result<(Uuid, Vec<(MessageKind, usize)>), QueueError>;
    /// The sequence's messages of one kind, oldest first.
    fn messages(
        &self,
        subscriber: &str,
        sequence: Uuid,
        kind: MessageKind,
        now: i64,
        timeout: i64,
    ) -> Result<Vec<StoredMessage>, QueueError>;
    /// Acknowledges the sequence: its messages are gone. Answers how many.
    fn terminate(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError>;
    /// Releases the sequence unacknowledged: its messages come again in the next.
    fn close(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError>;
    /// Drops messages received more than `retention` ago; answers how many.
    fn expire(&self, now: i64, retention: i64) -> Result<usize, QueueError>;
    fn stats(&self, now: i64) -> Result<Vec<QueueStats>, QueueError>;
}

/// The schema's versions, applied in order at open and tracked by `PRAGMA user_version`
/// (as the backend's store does); a file newer than the binary is refused. Version 1 is
/// written with `IF NOT EXISTS` because files made before the versioning (user_version 0)
/// already hold its tables; it also adds the index `expire` reads by.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE IF NOT EXISTS wsrm_besked (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        abonnent TEXT NOT NULL,
        art TEXT NOT NULL,
        besked_id TEXT NOT NULL,
        message_identifier TEXT NOT NULL,
        felter TEXT NOT NULL,
        modtaget_ms INTEGER NOT NULL,
        sekvens TEXT,
        UNIQUE (abonnent, art, besked_id)
    );
    CREATE INDEX IF NOT EXISTS wsrm_besked_fri ON wsrm_besked (abonnent, sekvens, id);
    CREATE INDEX IF NOT EXISTS wsrm_besked_sekvens ON wsrm_besked (sekvens, art, id);
    CREATE TABLE IF NOT EXISTS wsrm_sekvens (
        id TEXT PRIMARY KEY,
        abonnent TEXT NOT NULL,
        oprettet_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS wsrm_besked_modtaget ON wsrm_besked (modtaget_ms);"];

/// Applies the migrations the file has not had, in one immediate transaction.
fn migrate(conn: &mut Connection) -> Result<(), QueueError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(QueueError::Store(format!(
            "the WSRM queue file is at schema version {current}, newer than this binary's {}",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// The default store: SQLite.
pub struct SqliteQueue {
    conn: Mutex<Connection>,
}

impl SqliteQueue {
    /// Opens (creating, readable by its owner only) the queue file.
    pub fn open(path: &Path) -> Result<SqliteQueue, QueueError> {
        crate::backend::store::create_private(path)
            .map_err(|e| QueueError::Store(e.to_string()))?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        Ok(SqliteQueue {
            conn: Mutex::new(conn),
        })
    }

    fn tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| QueueError::Store("the queue connection was poisoned".into()))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Frees the messages of sequences older than `timeout` and forgets those sequences.
fn release_expired(
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    timeout: i64,
) -> Result<(), QueueError> {
    let before = now.saturating_sub(timeout);
    tx.prepare_cached(
        "UPDATE wsrm_besked SET sekvens = NULL
         WHERE sekvens IN (SELECT id FROM wsrm_sekvens WHERE oprettet_ms < ?1)",
    )?
    .execute([before])?;
    tx.prepare_cached("DELETE FROM wsrm_sekvens WHERE oprettet_ms < ?1")?
        .execute([before])?;
    Ok(())
}

/// The sequence is the subscriber's and still open.
fn owned(
    tx: &rusqlite::Transaction<'_>,
    subscriber: &str,
    sequence: Uuid,
) -> Result<(), QueueError> {
    let found: Option<String> = tx
        .prepare_cached("SELECT abonnent FROM wsrm_sekvens WHERE id = ?1")?
        .query_row([sequence.to_string()], |r| r.get(0))
        .optional()?;
    match found {
        Some(s) if s == subscriber => Ok(()),
        _ => Err(QueueError::UnknownSequence),
    }
}

fn kind_of(s: &str) -> Result<MessageKind, QueueError> {
    MessageKind::parse(s).ok_or_else(|| QueueError::Store(format!("unknown kind {s} stored")))
}

impl QueueStore for SqliteQueue {
    fn enqueue(&self, messages: &[NewMessage]) -> Result<usize, QueueError> {
        self.tx(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO wsrm_besked
                     (abonnent, art, besked_id, message_identifier, felter, modtaget_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut n = 0;
            for m in messages {
                let fields = serde_json::to_string(&m.fields)
                    .map_err(|e| QueueError::Store(e.to_string()))?;
                n += stmt.execute(params![
                    m.subscriber,
                    m.kind.as_str(),
                    m.besked_id.to_string(),
                    m.message_identifier.to_string(),
                    fields,
                    m.received_ms,
                ])?;
            }
            Ok(n)
        })
    }

    fn create_sequence(
        &self,
        subscriber: &str,
        now: i64,
        timeout: i64,
        max: usize,
    ) -> Result<(Uuid, Vec<(MessageKind, usize)>), QueueError> {
        self.tx(|tx| {
            release_expired(tx, now, timeout)?;
            let id = Uuid::new_v4();
            tx.prepare_cached(
                "INSERT INTO wsrm_sekvens (id, abonnent, oprettet_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id.to_string(), subscriber, now])?;
            tx.prepare_cached(
                "UPDATE wsrm_besked SET sekvens = ?1 WHERE id IN (
                     SELECT id FROM wsrm_besked WHERE abonnent = ?2 AND sekvens IS NULL
                     ORDER BY id LIMIT ?3)",
            )?
            .execute(params![id.to_string(), subscriber, max as i64])?;
            let mut stmt = tx.prepare_cached(
                "SELECT art, COUNT(*) FROM wsrm_besked WHERE sekvens = ?1 GROUP BY art",
            )?;
            let rows = stmt.query_map([id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut inventory = Vec::new();
            for row in rows {
                let (kind, n) = row?;
                inventory.push((kind_of(&kind)?, n as usize));
            }
            inventory.sort();
            Ok((id, inventory))
        })
    }

    fn messages(
        &self,
        subscriber: &str,
        sequence: Uuid,
        kind: MessageKind,
        now: i64,
        timeout: i64,
    ) -> Result<Vec<StoredMessage>, QueueError> {
        self.tx(|tx| {
            release_expired(tx, now, timeout)?;
            owned(tx, subscriber, sequence)?;
            let mut stmt = tx.prepare_cached(
                "SELECT message_identifier, felter FROM wsrm_besked
                 WHERE sekvens = ?1 AND art = ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![sequence.to_string(), kind.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, fields) = row?;
                out.push(StoredMessage {
                    message_identifier: id
                        .parse()
                        .map_err(|_| QueueError::Store("a stored MessageIdentifier".into()))?,
                    fields: serde_json::from_str(&fields).map_err(|e| {
                        // Where, not what: a stored field can be a CPR number.
                        QueueError::Store(format!(
                            "stored fields (line {}, column {})",
                            e.line(),
                            e.column()
                        ))
                    })?,
                });
            }
            Ok(out)
        })
    }

    fn terminate(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError> {
        self.tx(|tx| {
            release_expired(tx, now, timeout)?;
            owned(tx, subscriber, sequence)?;
            let n = tx
                .prepare_cached("DELETE FROM wsrm_besked WHERE sekvens = ?1")?
                .execute([sequence.to_string()])?;
            tx.prepare_cached("DELETE FROM wsrm_sekvens WHERE id = ?1")?
                .execute([sequence.to_string()])?;
            Ok(n)
        })
    }

    fn close(
        &self,
        subscriber: &str,
        sequence: Uuid,
        now: i64,
        timeout: i64,
    ) -> Result<usize, QueueError> {
        self.tx(|tx| {
            release_expired(tx, now, timeout)?;
            owned(tx, subscriber, sequence)?;
            let n = tx
                .prepare_cached("UPDATE wsrm_besked SET sekvens = NULL WHERE sekvens = ?1")?
                .execute([sequence.to_string()])?;
            tx.prepare_cached("DELETE FROM wsrm_sekvens WHERE id = ?1")?
                .execute([sequence.to_string()])?;
            Ok(n)
        })
    }

    fn expire(&self, now: i64, retention: i64) -> Result<usize, QueueError> {
        self.tx(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM wsrm_besked WHERE modtaget_ms < ?1")?
                .execute([now.saturating_sub(retention)])?)
        })
    }

    fn stats(&self, now: i64) -> Result<Vec<QueueStats>, QueueError> {
        self.tx(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT abonnent, COUNT(*), MIN(modtaget_ms) FROM wsrm_besked GROUP BY abonnent",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(QueueStats {
                    subscriber: r.get(0)?,
                    depth: r.get::<_, i64>(1)? as usize,
                    oldest_age_secs: (now - r.get::<_, i64>(2)?).max(0) as f64 / 1000.0,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg(subscriber: &str, kind: MessageKind, n: u128, at: i64) -> NewMessage {
        let besked_id = Uuid::from_u128(n);
        NewMessage {
            subscriber: subscriber.into(),
            kind,
            besked_id,
            message_identifier: super::super::route::message_identifier(
                besked_id, subscriber, kind,
            ),
            fields: vec![("ChangeType".into(), format!("m{n}"))],
            received_ms: at,
        }
    }

    fn queue() -> (tempfile::TempDir, SqliteQueue) {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("wsrm.db")).unwrap();
        (dir, q)
    }

    const V5: MessageKind = MessageKind::GetContactGroupVersion5;
    const V4: MessageKind = MessageKind::GetContactGroupVersion4;
    const T: i64 = 600_000;

    fn texts(m: &[StoredMessage]) -> Vec<String> {
        m.iter().map(|m| m.fields[0].1.clone()).collect()
    }

    #[test]
    fn a_sequence_reserves_the_oldest_and_terminate_acknowledges_them() {
        let (_d, q) = queue();
        let batch: Vec<_> = (1..=3)
            .flat_map(|n| [msg("1:101", V5, n, 0), msg("1:101", V4, n, 0)])
            .chain([msg("2:12", V5, 9, 0)])
            .collect();
        assert_eq!(q.enqueue(&batch).unwrap(), 7);
        // A redelivered event is kept once.
        assert_eq!(q.enqueue(&batch[..2]).unwrap(), 0);

        let (seq, inventory) = q.create_sequence("1:101", 1, T, 500).unwrap();
        assert_eq!(inventory, vec![(V5, 3), (V4, 3)]);
        assert_eq!(
            texts(&q.messages("1:101", seq, V5, 2, T).unwrap()),
            ["m1", "m2", "m3"]
        );
        // Another organisation's sequence is unknown to it.
        assert!(matches!(
            q.messages("2:12", seq, V5, 2, T),
            Err(QueueError::UnknownSequence)
        ));
        assert!(matches!(
            q.terminate("2:12", seq, 2, T),
            Err(QueueError::UnknownSequence)
        ));
        // Reserved messages are in no other sequence.
        let (other, empty) = q.create_sequence("1:101", 3, T, 500).unwrap();
        assert!(empty.is_empty());
        assert_eq!(q.terminate("1:101", other, 4, T).unwrap(), 0);
        assert_eq!(q.terminate("1:101", seq, 4, T).unwrap(), 6);
        // Terminated: gone, and the sequence with them.
        assert!(matches!(
            q.messages("1:101", seq, V5, 5, T),
            Err(QueueError::UnknownSequence)
        ));
        let (_, after) = q.create_sequence("1:101", 6, T, 500).unwrap();
        assert!(after.is_empty());
        let (_, theirs) = q.create_sequence("2:12", 6, T, 500).unwrap();
        assert_eq!(theirs, vec![(V5, 1)]);
    }

    #[test]
    fn close_and_timeout_release_and_the_message_identifier_is_stable() {
        let (_d, q) = queue();
        q.enqueue(&[msg("1:101", V5, 1, 0), msg("1:101", V5, 2, 0)])
            .unwrap();
        let (seq, _) = q.create_sequence("1:101", 0, T, 1).unwrap();
        let first = q.messages("1:101", seq, V5, 0, T).unwrap();
        assert_eq!(texts(&first), ["m1"]);
        assert_eq!(q.close("1:101", seq, 1, T).unwrap(), 1);
        // Closed: the message comes again, with the same identifier.
        let (seq2, inv) = q.create_sequence("1:101", 2, T, 500).unwrap();
        assert_eq!(inv, vec![(V5, 2)]);
        let again = q.messages("1:101", seq2, V5, 2, T).unwrap();
        assert_eq!(again[0].message_identifier, first[0].message_identifier);
        // Neither terminated nor closed: released after the timeout.
        let (seq3, inv3) = q.create_sequence("1:101", T + 3, T, 500).unwrap();
        assert_eq!(inv3, vec![(V5, 2)]);
        assert!(matches!(
            q.terminate("1:101", seq2, T + 3, T),
            Err(QueueError::UnknownSequence)
        ));
        assert_eq!(q.terminate("1:101", seq3, T + 4, T).unwrap(), 2);
    }

    #[test]
    fn at_most_max_per_sequence_oldest_first_and_old_messages_expire() {
        let (_d, q) = queue();
        let batch: Vec<_> = (1..=7)
            .map(|n| msg("1:101", V5, n, n as i64 * 1000))
            .collect();
        q.enqueue(&batch).unwrap();
        let (seq, inv) = q.create_sequence("1:101", 8000, T, 5).unwrap();
        assert_eq!(inv, vec![(V5, 5)]);
        assert_eq!(
            texts(&q.messages("1:101", seq, V5, 8000, T).unwrap()),
            ["m1", "m2", "m3", "m4", "m5"]
        );
        let stats = q.stats(8000).unwrap();
        assert_eq!(
            stats,
            vec![QueueStats {
                subscriber: "1:101".into(),
                depth: 7,
                oldest_age_secs: 7.0
            }]
        );
        // Received before 3000: dropped, reserved or not.
        assert_eq!(q.expire(8000, 5000).unwrap(), 2);
        assert_eq!(q.stats(8000).unwrap()[0].depth, 5);
    }

    /// A file from before the versioning (its tables, user_version 0) is taken over with
    /// its messages; the version is recorded; a file newer than the binary is refused.
    #[test]
    fn the_schema_is_versioned_and_a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wsrm.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE wsrm_besked (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, abonnent TEXT NOT NULL,
                    art TEXT NOT NULL, besked_id TEXT NOT NULL,
                    message_identifier TEXT NOT NULL, felter TEXT NOT NULL,
                    modtaget_ms INTEGER NOT NULL, sekvens TEXT,
                    UNIQUE (abonnent, art, besked_id));
                 CREATE TABLE wsrm_sekvens (id TEXT PRIMARY KEY, abonnent TEXT NOT NULL,
                    oprettet_ms INTEGER NOT NULL) WITHOUT ROWID;",
            )
            .unwrap();
        }
        let q = SqliteQueue::open(&path).unwrap();
        q.enqueue(&[msg("1:101", V5, 1, 0)]).unwrap();
        drop(q);
        let version = |p: &Path| -> i64 {
            Connection::open(p)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(version(&path), MIGRATIONS.len() as i64);
        let q = SqliteQueue::open(&path).unwrap();
        assert_eq!(q.stats(0).unwrap()[0].depth, 1);
        drop(q);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let Err(QueueError::Store(e)) = SqliteQueue::open(&path) else {
            panic!("a newer file must be refused");
        };
        assert!(e.contains("schema version 99"), "{e}");
    }
}
