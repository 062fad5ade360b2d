//! Migration usage: who still calls which legacy operation, per day, with which faults, and
//! the converter's own overhead. Kept as daily aggregates (no CPR, no identifiers; the
//! organisation labels are the metrics' bounded ones) in the state store
//! ([`crate::state::StateStore`]: the data dir's JSON file for one process, PostgreSQL for
//! replicas), so they survive a restart, and served as JSON at `/api/migration` for the
//! dashboard and other tools.
//!
//! Calls never wait for a snapshot or a write: a call adds to `recent` (one map update
//! under its lock; with a shared store also one line appended to this process's spool file);
//! `/api/migration` and `persist` first swap `recent`'s increments out (a short swap) and
//! `flush` them into the store as one batch, which only they lock. With a shared store a
//! batch names the spool position it covers, recorded in the same transaction (the spool is
//! replayed from there after a kill), and carries an id, so that one sent again after its
//! commit went unanswered is added once. The local file is written durably (temp file, fsync, rename, fsync of the folder),
//! and a file that cannot be read at start is moved aside, never overwritten.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::{Timestamp, civil::Date};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::cutover::Cutover;
use crate::dktime;
use crate::state::{LocalState, StateError, StateStore, UsageAggregates, UsageBatch};

/// Days of aggregates kept on disk; the dashboard shows the last `SHOWN_DAYS`.
const KEPT_DAYS: i32 = 35;
pub const SHOWN_DAYS: i32 = 14;
/// Own-time samples kept for the overhead percentiles.
const OWN_SAMPLES: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub calls: u64,
    pub faults: BTreeMap<u32, u64>,
}

/// What the usage file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// "date|type|code|service|operation" → counts of that day.
    days: BTreeMap<String, Count>,
    /// "type|code|service|operation" → last call.
    last_seen: BTreeMap<String, Timestamp>,
}

/// The migration usage of this process's calls, kept in a [`StateStore`]: calls add to
/// `recent`; `flush` moves what they added into the store.
pub struct Usage {
    store: Arc<dyn StateStore>,
    /// What calls touch.
    recent: Mutex<Recent>,
    /// One flush at a time, and what a failed one left.
    flush: Mutex<Flush>,
}

#[derive(Default)]
struct Flush {
    /// A batch whose add failed. With a shared store its outcome may be unknown (the
    /// connection broke at the commit): it is sent again with its id, which the store adds
    /// once.
    pending: Option<UsageBatch>,
    /// Spool files every byte of which is in a batch taken: deleted once that batch is in.
    retired: Vec<Retired>,
}

/// A spool file to delete once its counts are in, and its lock, held until then so that
/// no other process replays it meanwhile.
struct Retired {
    path: PathBuf,
    _lock: std::fs::File,
}

/// The calls since the last flush.
struct Recent {
    /// Increments by "date|type|code|service|operation".
    days: BTreeMap<String, Count>,
    /// Last calls by "type|code|service|operation".
    last_seen: BTreeMap<String, Timestamp>,
    own_micros: VecDeque<u64>,
    /// The Danish day of the last call, so that a call on the same day need not work it out.
    day: Option<Day>,
    /// The key being looked up ("date|type|code|service|operation"), reused between calls.
    key: String,
    /// With a shared store: every call also appended here before its answer leaves.
    spool: Option<Spool>,
}

/// A file of this process's counted calls, one line each (`key TAB fault TAB unix-ms`),
/// appended before the call's answer is sent. The process can be killed at any moment and
/// the kernel still has the lines: at the next start they are replayed from the position the
/// shared store has for the file ([`UsageStore::spool_mark`]), which moves in the same
/// transaction as the counts. So a call answered is counted once, killed or not.
struct Spool {
    dir: PathBuf,
    name: String,
    file: std::fs::File,
    len: u64,
    /// `len` when a batch last took a mark: no new mark (and no batch) while nothing came.
    marked: u64,
    line: String,
}

/// A spool file is replaced by a new one past this size (at a flush).
const SPOOL_ROTATE_BYTES: u64 = 4 << 20;

impl Spool {
    fn create(dir: &Path) -> std::io::Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let name = format!("{}.spool", uuid::Uuid::new_v4());
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(&name))?;
        // Held while the file is this process's: another process on the same data dir (a
        // mistake: one per replica) does not replay a live spool.
        file.try_lock()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Spool {
            dir: dir.to_owned(),
            name,
            file,
            len: 0,
            marked: 0,
            line: String::new(),
        })
    }

    fn append(&mut self, key: &str, fault: Option<u32>, now: Timestamp) {
        self.line.clear();
        self.line.push_str(key);
        self.line.push('\t');
        if let Some(f) = fault {
            let _ = write!(self.line, "{f}");
        }
        let _ = writeln!(self.line, "\t{}", now.as_millisecond());
        match self.file.write_all(self.line.as_bytes()) {
            Ok(()) => self.len += self.line.len() as u64,
            Err(e) => {
                // The count is still in memory; only a kill before the next flush loses it.
                // A part of the line that was written is cut off again, so that the marks
                // stay positions of whole lines.
                let _ = self.file.set_len(self.len);
                tracing::error!(error = %e, "cannot append to the usage spool");
            }
        }
    }
}

/// Creates `dir` (owner only) if it does not exist.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads the complete lines of a spool file's bytes into `batch`; answers how many bytes
/// they are (a line cut by a power loss is left out). A line that is not one this process
/// writes (a fragment, bytes a crash left) is skipped and counted in `skipped`.
fn replay(bytes: &[u8], batch: &mut UsageBatch, skipped: &mut usize) -> usize {
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    for line in bytes[..end].split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match spool_line(line) {
            Some((key, fault, at)) => {
                let day_len = key.find('|').unwrap_or(0);
                let c = batch.days.entry(key.to_owned()).or_default();
                c.calls += 1;
                if let Some(f) = fault {
                    *c.faults.entry(f).or_default() += 1;
                }
                let seen = batch
                    .last_seen
                    .entry(key[day_len + 1..].to_owned())
                    .or_insert(at);
                *seen = (*seen).max(at);
            }
            None => *skipped += 1,
        }
    }
    end
}

/// One spool line (`date|type|code|service|operation TAB fault TAB unix-ms`), checked: a
/// date, five key parts without control characters, a fault code or nothing, a time.
fn spool_line(line: &[u8]) -> Option<(&str, Option<u32>, Timestamp)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split('\t');
    let (key, fault, ms) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || key.chars().any(char::is_control) {
        return None;
    }
    let mut fields = key.split('|');
    fields.next()?.parse::<Date>().ok()?;
    if fields.by_ref().take(4).filter(|f| !f.is_empty()).count() != 4 || fields.next().is_some() {
        return None;
    }
    let fault = match fault {
        "" => None,
        f => Some(f.parse::<u32>().ok()?),
    };
    let at = Timestamp::from_millisecond(ms.parse().ok()?).ok()?;
    Some((key, fault, at))
}

/// A Danish day: its date as text, and the instants it starts and ends.
struct Day {
    text: String,
    start: Timestamp,
    end: Timestamp,
}

impl Day {
    /// The Danish day `now` falls on (`None` only at the ends of jiff's range, where the
    /// caller works the date out for the one call).
    fn of(now: Timestamp) -> Option<Day> {
        let zoned = now.to_zoned(dktime::copenhagen().clone());
        let start = zoned.start_of_day().ok()?.timestamp();
        let end = zoned.tomorrow().ok()?.start_of_day().ok()?.timestamp();
        Some(Day {
            text: zoned.date().to_string(),
            start,
            end,
        })
    }

    fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// One call, as usage counts it. The organisation values are the metrics' bounded labels.
#[derive(Debug, Clone, Copy)]
pub struct UsageCall<'a> {
    pub organisation_type: &'a str,
    pub organisation_code: &'a str,
    pub service: &'a str,
    pub operation: &'a str,
    pub fault: Option<u32>,
    pub own_micros: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationUsage {
    pub service: String,
    pub operation: String,
    /// Calls on each of `Migration::days`.
    pub calls_per_day: Vec<u64>,
    pub total: u64,
    pub last_seen: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCount {
    pub code: u32,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganisationUsage {
    pub organisation_type: String,
    pub organisation_type_name: String,
    pub organisation_code: String,
    pub cutover: Timestamp,
    pub past_cutover: bool,
    /// Days from today to the cutover's Danish date: negative when past.
    pub days_to_cutover: i64,
    pub calls: u64,
    pub faults: u64,
    pub fault_rate: f64,
    pub faults_by_code: Vec<FaultCount>,
    pub operations: Vec<OperationUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overhead {
    /// Calls the percentiles are taken over (the most recent, since start).
    pub samples: u64,
    pub p50_micros: u64,
    pub p99_micros: u64,
}

/// `/api/migration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub generated_at: Timestamp,
    pub days: Vec<Date>,
    pub default_cutover: Timestamp,
    pub overhead: Overhead,
    pub organisations: Vec<OrganisationUsage>,
    /// The legacy WSRM queues, one per configured subscriber (empty without WSRM); the
    /// `/api/migration` handler fills them in from the queue store.
    #[serde(default)]
    pub wsrm: Vec<WsrmQueue>,
}

/// One configured WSRM subscriber's queue: who still polls WSRM, and how far behind. When it
/// last polled is its `CreateSequence` in `organisations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsrmQueue {
    /// `TYPE:CODE`, as the metrics' `subscriber` label.
    pub subscriber: String,
    pub organisation_type: String,
    pub organisation_type_name: String,
    pub organisation_code: String,
    /// Messages waiting (reserved by an open sequence or not); `null` when the queue store
    /// could not be read.
    pub depth: Option<u64>,
    /// Age of the oldest waiting message (0 when none); `null` as `depth`.
    pub oldest_age_secs: Option<f64>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Usage {
    /// Usage kept in memory only.
    pub fn in_memory() -> Usage {
        Usage::with_store(Arc::new(LocalState::in_memory()), None)
    }

    /// Usage kept in the file `path` (one process; [`FileUsage::load`]).
    pub fn load(path: PathBuf) -> Result<Usage, UsageError> {
        Ok(Usage::with_store(
            Arc::new(LocalState::with_usage(FileUsage::load(path)?)),
            None,
        ))
    }

    /// Usage in `store`. A shared store gets a spool in `data_dir/usage-spool`: what an
    /// earlier run of this process counted and did not flush is replayed from it first.
    pub fn open(store: Arc<dyn StateStore>, data_dir: &Path) -> Result<Usage, String> {
        if !store.shared() {
            return Ok(Usage::with_store(store, None));
        }
        let dir = data_dir.join("usage-spool");
        create_private_dir(&dir).map_err(|e| format!("the usage spool {}: {e}", dir.display()))?;
        let mut batch = UsageBatch {
            id: Some(uuid::Uuid::new_v4()),
            ..UsageBatch::default()
        };
        let mut retired = Vec::new();
        let mut skipped = 0;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("the usage spool {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if !name.ends_with(".spool") {
                continue;
            }
            let mut file = std::fs::File::open(&path)
                .map_err(|e| format!("the usage spool {}: {e}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    tracing::warn!(
                        file = %path.display(),
                        "usage: a spool another running process holds is left to it (is the data dir shared? give each replica its own)"
                    );
                    continue;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("the usage spool {}: {e}", path.display()));
                }
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes)
                .map_err(|e| format!("the usage spool {}: {e}", path.display()))?;
            let mark = store.spool_mark(&name).map_err(|e| e.0)?;
            let from = usize::try_from(mark).unwrap_or(usize::MAX).min(bytes.len());
            let used = replay(&bytes[from..], &mut batch, &mut skipped);
            batch.marks.push((name, (from + used) as u64));
            retired.push(Retired { path, _lock: file });
        }
        if skipped > 0 {
            tracing::warn!(
                lines = skipped,
                "usage: spool lines that are not counts were skipped"
            );
        }
        if !batch.days.is_empty() {
            let calls: u64 = batch.days.values().map(|c| c.calls).sum();
            tracing::info!(
                calls,
                "usage: calls counted before the last stop are added now"
            );
        }
        let spool =
            Spool::create(&dir).map_err(|e| format!("the usage spool {}: {e}", dir.display()))?;
        let usage = Usage::with_store(store, Some(spool));
        if let Ok(mut f) = usage.flush.lock() {
            f.pending = (!batch.marks.is_empty()).then_some(batch);
            f.retired = retired;
        }
        Ok(usage)
    }

    fn with_store(store: Arc<dyn StateStore>, spool: Option<Spool>) -> Usage {
        Usage {
            store,
            recent: Mutex::new(Recent {
                days: BTreeMap::new(),
                last_seen: BTreeMap::new(),
                own_micros: VecDeque::with_capacity(OWN_SAMPLES),
                day: None,
                key: String::new(),
                spool,
            }),
            flush: Mutex::new(Flush::default()),
        }
    }

    /// The store usage is kept in.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Counts one call.
    pub fn record(&self, call: &UsageCall<'_>, now: Timestamp) {
        let UsageCall {
            organisation_type: ty,
            organisation_code: code,
            service,
            operation,
            fault,
            own_micros,
        } = *call;
        let Ok(mut g) = self.recent.lock() else {
            return;
        };
        let g = &mut *g;
        if !g.day.as_ref().is_some_and(|d| d.contains(now)) {
            g.day = Day::of(now);
        }
        let key = &mut g.key;
        key.clear();
        match &g.day {
            Some(d) => key.push_str(&d.text),
            None => {
                let day = now.to_zoned(dktime::copenhagen().clone()).date();
                let _ = write!(key, "{day}");
            }
        }
        key.push('|');
        let day_len = key.len();
        for part in [ty, code, service] {
            key.push_str(part);
            key.push('|');
        }
        key.push_str(operation);
        // The same bounded codes as the metrics (0: not in the catalogue).
        let fault = crate::observe::metrics::bounded_fault(fault);
        let count = |c: &mut Count| {
            c.calls += 1;
            if let Some(f) = fault {
                *c.faults.entry(f).or_default() += 1;
            }
        };
        match g.days.get_mut(key.as_str()) {
            Some(c) => count(c),
            None => count(g.days.entry(key.clone()).or_default()),
        }
        match g.last_seen.get_mut(&key[day_len..]) {
            Some(t) => *t = (*t).max(now),
            None => {
                g.last_seen.insert(key[day_len..].to_owned(), now);
            }
        }
        if let Some(spool) = &mut g.spool {
            spool.append(key, fault, now);
        }
        if g.own_micros.len() == OWN_SAMPLES {
            g.own_micros.pop_front();
        }
        g.own_micros.push_back(own_micros);
    }

    /// The calls recorded since the last take, with the spool's position; a spool past
    /// its size is replaced (the old file is answered, to delete once the batch is in).
    fn take(&self) -> (UsageBatch, Option<Retired>) {
        let Ok(mut r) = self.recent.lock() else {
            return (UsageBatch::default(), None);
        };
        let r = &mut *r;
        let mut batch = UsageBatch {
            days: std::mem::take(&mut r.days),
            last_seen: std::mem::take(&mut r.last_seen),
            marks: Vec::new(),
            id: None,
        };
        let mut retired = None;
        if let Some(spool) = &mut r.spool {
            if spool.len > spool.marked {
                batch.marks.push((spool.name.clone(), spool.len));
                spool.marked = spool.len;
            }
            if spool.len > SPOOL_ROTATE_BYTES {
                match Spool::create(&spool.dir) {
                    Ok(next) => {
                        let old = std::mem::replace(spool, next);
                        retired = Some(Retired {
                            path: old.dir.join(&old.name),
                            _lock: old.file,
                        });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start a new usage spool"),
                }
            }
        }
        (batch, retired)
    }

    /// Moves every call recorded so far into the store. A batch whose add fails stays
    /// pending, and is sent again (alone, with its id: added once, whatever became of the
    /// first try) before anything newer.
    pub fn flush(&self) -> Result<(), StateError> {
        let mut f = self
            .flush
            .lock()
            .map_err(|_| StateError("the usage flush lock was poisoned".into()))?;
        if let Some(pending) = f.pending.take() {
            if let Err(e) = self.store.add_usage(&pending) {
                f.pending = Some(pending);
                return Err(e);
            }
            self.retire(&mut f);
        }
        let (mut batch, retired) = self.take();
        f.retired.extend(retired);
        if batch.is_empty() {
            return Ok(());
        }
        if self.store.shared() {
            batch.id = Some(uuid::Uuid::new_v4());
        }
        match self.store.add_usage(&batch) {
            Ok(()) => {
                self.retire(&mut f);
                Ok(())
            }
            Err(e) => {
                f.pending = Some(batch);
                Err(e)
            }
        }
    }

    /// Deletes the spool files every byte of which is in the store (nothing is pending),
    /// makes that durable (the folder synced: a file that came back after a power loss
    /// would be replayed from 0), then forgets their marks.
    fn retire(&self, f: &mut Flush) {
        if f.retired.is_empty() || f.pending.is_some() {
            return;
        }
        let mut gone = Vec::new();
        let mut dir = None;
        for Retired { path, _lock } in std::mem::take(&mut f.retired) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, file = %path.display(), "cannot delete a used usage spool");
                    continue;
                }
            }
            dir = path.parent().map(Path::to_owned);
            if let Some(n) = path.file_name().and_then(|n| n.to_str()) {
                gone.push(n.to_owned());
            }
        }
        let synced = dir.is_some_and(|d| std::fs::File::open(d).and_then(|d| d.sync_all()).is_ok());
        if synced {
            // Its mark is only kept to replay the file; the file is gone.
            let _ = self.store.forget_spool(&gone);
        }
    }

    /// Flushes, then has the store keep the aggregates (the file: written durably if they
    /// changed), dropping days older than `KEPT_DAYS` and last calls older than a year.
    /// Until a write succeeds the next call tries again: nothing taken is dropped.
    pub fn persist(&self, today: Date) -> Result<(), StateError> {
        let flushed = self.flush();
        let oldest = today.saturating_sub(jiff::Span::new().days(KEPT_DAYS));
        let year_ago = today.saturating_sub(jiff::Span::new().days(365));
        let kept = self.store.keep_usage(oldest, year_ago);
        if let Err(e) = flushed.as_ref().and(kept.as_ref()) {
            tracing::error!(error = %e, "cannot keep the migration usage; will retry");
        }
        flushed.and(kept)
    }

    /// `/api/migration`: this process's calls flushed, then the store's aggregates (every
    /// replica's, with a shared store). Fails when the store cannot be read.
    pub fn snapshot(
        &self,
        cutover: &Cutover,
        catalog: Option<&Catalog>,
        now: Timestamp,
    ) -> Result<Migration, StateError> {
        let today = now.to_zoned(dktime::copenhagen().clone()).date();
        let days: Vec<Date> = (0..SHOWN_DAYS)
            .rev()
            .map(|d| today.saturating_sub(jiff::Span::new().days(d)))
            .collect();
        let own_micros: Vec<u64> = self
            .recent
            .lock()
            .map(|r| r.own_micros.iter().copied().collect())
            .unwrap_or_default();
        // This process's latest calls are left out when they cannot be added now (they
        // stay pending); the store's totals are still shown if it answers.
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "usage: this process's latest calls are not added yet");
        }
        let stored = self.store.usage(days.first().copied().unwrap_or(today))?;
        let g = Some(&stored);
        let mut orgs: BTreeMap<(String, String), OrganisationUsage> = BTreeMap::new();
        let new_org = |ty: &str, code: &str| {
            let at = cutover.instant_for(ty, code);
            let cut_day = at.to_zoned(dktime::copenhagen().clone()).date();
            let name = ty
                .parse::<u8>()
                .ok()
                .and_then(|k| catalog.and_then(|c| c.orgtype(k)))
                .map_or_else(|| "ukendt".to_owned(), |o| o.navn.clone());
            OrganisationUsage {
                organisation_type: ty.to_owned(),
                organisation_type_name: name,
                organisation_code: code.to_owned(),
                cutover: at,
                past_cutover: now >= at,
                days_to_cutover: (cut_day - today).get_days().into(),
                calls: 0,
                faults: 0,
                fault_rate: 0.0,
                faults_by_code: Vec::new(),
                operations: Vec::new(),
            }
        };
        for (ty, code, _) in cutover.overrides() {
            orgs.entry((ty.to_owned(), code.to_owned()))
                .or_insert_with(|| new_org(ty, code));
        }
        let mut faults: BTreeMap<(String, String), BTreeMap<u32, u64>> = BTreeMap::new();
        // Organisations that called once and then stopped stay listed (with no calls in the
        // window): that they moved is what the dashboard is for.
        if let Some(g) = &g {
            for (key, seen) in &g.last_seen {
                let parts: Vec<&str> = key.split('|').collect();
                let [ty, code, service, operation] = parts[..] else {
                    continue;
                };
                let org = orgs
                    .entry((ty.to_owned(), code.to_owned()))
                    .or_insert_with(|| new_org(ty, code));
                if !org
                    .operations
                    .iter()
                    .any(|o| o.service == service && o.operation == operation)
                {
                    org.operations.push(OperationUsage {
                        service: service.to_owned(),
                        operation: operation.to_owned(),
                        calls_per_day: vec![0; days.len()],
                        total: 0,
                        last_seen: Some(*seen),
                    });
                }
            }
        }
        if let Some(g) = &g {
            for (key, count) in &g.days {
                let parts: Vec<&str> = key.split('|').collect();
                let [day, ty, code, service, operation] = parts[..] else {
                    continue;
                };
                let Some(i) = days.iter().position(|d| d.to_string() == day) else {
                    continue;
                };
                let org = orgs
                    .entry((ty.to_owned(), code.to_owned()))
                    .or_insert_with(|| new_org(ty, code));
                let op = match org
                    .operations
                    .iter()
                    .position(|o| o.service == service && o.operation == operation)
                {
                    Some(p) => &mut org.operations[p],
                    None => {
                        let last_seen = g
                            .last_seen
                            .get(&format!("{ty}|{code}|{service}|{operation}"))
                            .copied();
                        org.operations.push(OperationUsage {
                            service: service.to_owned(),
                            operation: operation.to_owned(),
                            calls_per_day: vec![0; days.len()],
                            total: 0,
                            last_seen,
                        });
                        let last = org.operations.len() - 1;
                        &mut org.operations[last]
                    }
                };
                op.calls_per_day[i] += count.calls;
                op.total += count.calls;
                org.calls += count.calls;
                let f = faults.entry((ty.to_owned(), code.to_owned())).or_default();
                for (code, n) in &count.faults {
                    *f.entry(*code).or_default() += n;
                    org.faults += n;
                }
            }
        }
        let mut organisations: Vec<OrganisationUsage> = orgs
            .into_iter()
            .map(|(k, mut o)| {
                o.fault_rate = if o.calls == 0 {
                    0.0
                } else {
                    o.faults as f64 / o.calls as f64
                };
                o.faults_by_code = faults
                    .remove(&k)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(code, count)| FaultCount { code, count })
                    .collect();
                o.operations
                    .sort_by(|a, b| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)));
                o
            })
            .collect();
        organisations.sort_by(|a, b| {
            b.calls.cmp(&a.calls).then_with(|| {
                (&a.organisation_type, &a.organisation_code)
                    .cmp(&(&b.organisation_type, &b.organisation_code))
            })
        });
        let mut s = own_micros;
        s.sort_unstable();
        let overhead = Overhead {
            samples: s.len() as u64,
            p50_micros: percentile(&s, 0.5),
            p99_micros: percentile(&s, 0.99),
        };
        Ok(Migration {
            generated_at: now,
            days,
            default_cutover: cutover.default_instant(),
            overhead,
            organisations,
            wsrm: Vec::new(),
        })
    }
}

/// The usage aggregates in memory, written whole to a JSON file: the store of one process
/// ([`LocalState`]). The file is replaced durably (`write_durably`); one that cannot be
/// read at start is moved aside, never overwritten.
pub struct FileUsage {
    path: Option<PathBuf>,
    book: Mutex<Book>,
    /// One writer of the file at a time.
    disk: Mutex<()>,
}

/// The aggregates and whether the file has them.
struct Book {
    stored: Stored,
    /// Counts every change of `stored`.
    generation: u64,
    /// The generation the file holds.
    persisted: u64,
}

impl FileUsage {
    pub fn in_memory() -> FileUsage {
        FileUsage::new(None, Stored::default())
    }

    /// The file at `path`, read now if it exists. A file that is not valid usage JSON is
    /// moved aside (`<name>.corrupt-<UTC time>`, logged as an error) and usage starts
    /// empty; a file that cannot be read at all, or cannot be moved aside, is an error: it
    /// is never overwritten.
    pub fn load(path: PathBuf) -> Result<FileUsage, UsageError> {
        let fail = |source| UsageError {
            path: path.clone(),
            source,
        };
        let stored = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(fail(e)),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    let aside = set_aside(&path).map_err(fail)?;
                    tracing::error!(
                        error = %e,
                        kept_as = %aside.display(),
                        "migration usage file unreadable; moved aside, starting empty"
                    );
                    Stored::default()
                }
            },
        };
        Ok(FileUsage::new(Some(path), stored))
    }

    fn new(path: Option<PathBuf>, stored: Stored) -> FileUsage {
        FileUsage {
            path,
            book: Mutex::new(Book {
                stored,
                generation: 0,
                persisted: 0,
            }),
            disk: Mutex::new(()),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn book(&self) -> Result<std::sync::MutexGuard<'_, Book>, StateError> {
        self.book
            .lock()
            .map_err(|_| StateError("the usage book lock was poisoned".into()))
    }

    pub fn add_usage(&self, batch: &UsageBatch) -> Result<(), StateError> {
        if batch.days.is_empty() && batch.last_seen.is_empty() {
            return Ok(());
        }
        let mut book = self.book()?;
        book.generation += 1;
        for (key, c) in &batch.days {
            let into = book.stored.days.entry(key.clone()).or_default();
            into.calls += c.calls;
            for (code, n) in &c.faults {
                *into.faults.entry(*code).or_default() += n;
            }
        }
        for (key, t) in &batch.last_seen {
            let into = book.stored.last_seen.entry(key.clone()).or_insert(*t);
            *into = (*into).max(*t);
        }
        Ok(())
    }

    pub fn usage(&self, oldest: Date) -> Result<UsageAggregates, StateError> {
        let book = self.book()?;
        let oldest = oldest.to_string();
        Ok(UsageAggregates {
            days: book
                .stored
                .days
                .iter()
                .filter(|(k, _)| k.split('|').next().is_some_and(|d| d >= oldest.as_str()))
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect(),
            last_seen: book.stored.last_seen.clone(),
        })
    }

    /// Drops old days and last calls, then writes the file if anything changed since the
    /// last write. Until a write succeeds the changes stay marked as not written.
    pub fn keep_usage(&self, oldest: Date, forget_before: Date) -> Result<(), StateError> {
        let Ok(_disk) = self.disk.lock() else {
            return Ok(());
        };
        let (text, generation) = {
            let mut book = self.book()?;
            let before = (book.stored.days.len(), book.stored.last_seen.len());
            let oldest = oldest.to_string();
            book.stored
                .days
                .retain(|k, _| k.split('|').next().is_some_and(|d| d >= oldest.as_str()));
            // Who called is remembered for a year, then forgotten.
            book.stored
                .last_seen
                .retain(|_, t| t.to_zoned(dktime::copenhagen().clone()).date() >= forget_before);
            if before != (book.stored.days.len(), book.stored.last_seen.len()) {
                book.generation += 1;
            }
            let Some(path) = &self.path else {
                return Ok(());
            };
            if book.generation == book.persisted {
                return Ok(());
            }
            let text = serde_json::to_vec(&book.stored)
                .map_err(|e| StateError(format!("migration usage file {}: {e}", path.display())))?;
            (text, book.generation)
        };
        let Some(path) = &self.path else {
            return Ok(());
        };
        write_durably(path, &text).map_err(|source| {
            StateError(
                UsageError {
                    path: path.clone(),
                    source,
                }
                .to_string(),
            )
        })?;
        let mut book = self.book()?;
        book.persisted = book.persisted.max(generation);
        Ok(())
    }
}

/// The usage file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("migration usage file {}: {source}", path.display())]
pub struct UsageError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// `bytes` as the new content of `path`, all or nothing, on disk before this returns: a
/// temporary file beside it (0600) is written and fsynced, renamed over `path`, and the
/// folder fsynced so that the rename itself survives a power cut.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)?.sync_all()
}

/// Moves `path` to `<path>.corrupt-<UTC time>` (a free name) and answers where it went.
fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    for n in 0u32.. {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".corrupt-{stamp}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let aside = PathBuf::from(name);
        if !aside.exists() {
            std::fs::rename(path, &aside)?;
            return Ok(aside);
        }
    }
    Err(std::io::Error::other("no free name to move the file aside"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_counted_per_day_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let yesterday: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let cut = Cutover::new("2025-03-01T00:00:00+01:00".parse().unwrap()).with_override(
            "1",
            "101",
            "2027-01-01T00:00:00+01:00".parse().unwrap(),
        );
        let u = Usage::load(path.clone()).unwrap();
        let call = |t, c, s, o, fault| UsageCall {
            organisation_type: t,
            organisation_code: c,
            service: s,
            operation: o,
            fault,
            own_micros: 50,
        };
        let create = "CreateContactGroup";
        let prs = "PersonRegistrationService";
        u.record(&call("1", "101", prs, create, None), yesterday);
        u.record(&call("1", "101", prs, create, Some(100028)), now);
        u.record(
            &call(
                "2",
                "12",
                "PersonStatusService",
                "GetVariablePersonStatus",
                None,
            ),
            now,
        );
        u.persist(now.to_zoned(dktime::copenhagen().clone()).date())
            .unwrap();

        let again = Usage::load(path).unwrap();
        let m = again.snapshot(&cut, Catalog::load().ok(), now).unwrap();
        assert_eq!(m.days.len(), SHOWN_DAYS as usize);
        let jc = &m.organisations[0];
        assert_eq!(
            (
                jc.organisation_type.as_str(),
                jc.organisation_code.as_str(),
                jc.calls,
                jc.faults
            ),
            ("1", "101", 2, 1)
        );
        assert_eq!(jc.organisation_type_name, "Jobcenter");
        assert!(!jc.past_cutover);
        assert_eq!(jc.days_to_cutover, 35);
        assert_eq!(
            jc.faults_by_code,
            vec![FaultCount {
                code: 100028,
                count: 1
            }]
        );
        let per_day = &jc.operations[0].calls_per_day;
        assert_eq!(&per_day[per_day.len() - 2..], &[1, 1]);
        let ak = &m.organisations[1];
        assert!(ak.past_cutover && ak.days_to_cutover < 0);
        assert_eq!(m.overhead.samples, 0, "own times are not persisted");
    }

    #[test]
    fn an_organisation_that_stopped_calling_stays_listed() {
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let long_ago: Timestamp = "2026-10-01T12:00:00Z".parse().unwrap();
        let u = Usage::in_memory();
        let call = UsageCall {
            organisation_type: "3",
            organisation_code: "147",
            service: "PersonStatusService",
            operation: "GetVariablePersonStatus",
            fault: Some(4242),
            own_micros: 10,
        };
        u.record(&call, long_ago);
        let m = u.snapshot(&Cutover::new(now), None, now).unwrap();
        let o = &m.organisations[0];
        assert_eq!((o.organisation_code.as_str(), o.calls), ("147", 0));
        assert_eq!(o.operations[0].last_seen, Some(long_ago));
        assert_eq!(o.operations[0].total, 0);
        let recent = u.snapshot(&Cutover::new(now), None, long_ago).unwrap();
        assert_eq!(
            recent.organisations[0].faults_by_code,
            vec![FaultCount { code: 0, count: 1 }],
            "codes outside the catalogue count as 0 (other)"
        );
    }

    fn one_call() -> UsageCall<'static> {
        UsageCall {
            organisation_type: "1",
            organisation_code: "101",
            service: "PersonRegistrationService",
            operation: "CreateContactGroup",
            fault: None,
            own_micros: 10,
        }
    }

    fn total_calls(u: &Usage, now: Timestamp) -> u64 {
        let m = u.snapshot(&Cutover::new(now), None, now).unwrap();
        m.organisations.iter().map(|o| o.calls).sum()
    }

    #[test]
    fn a_damaged_file_is_moved_aside_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migration-usage.json");
        std::fs::write(&path, b"{\"days\": {\"2026-1").unwrap();
        let u = Usage::load(path.clone()).unwrap();
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("migration-usage.json.corrupt-")
            })
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), b"{\"days\": {\"2026-1");
        assert!(!path.exists());
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        u.record(&one_call(), now);
        u.persist(now.to_zoned(dktime::copenhagen().clone()).date())
            .unwrap();
        assert_eq!(total_calls(&Usage::load(path.clone()).unwrap(), now), 1);
        assert_eq!(std::fs::read(&aside[0]).unwrap(), b"{\"days\": {\"2026-1");

        // A second damaged file goes beside the first, not over it.
        std::fs::write(&path, b"not json").unwrap();
        Usage::load(path).unwrap();
        let n = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(n, 2, "both damaged files are kept");
    }

    #[test]
    fn a_file_that_cannot_be_read_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: reading it fails, and nothing may replace it.
        let path = dir.path().join("migration-usage.json");
        std::fs::create_dir(&path).unwrap();
        let e = Usage::load(path.clone()).err().unwrap();
        assert!(e.to_string().contains("migration-usage.json"), "{e}");
        assert!(path.is_dir());
    }

    #[test]
    fn a_failed_write_is_tried_again_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("later");
        let path = folder.join("migration-usage.json");
        let u = Usage::load(path.clone()).unwrap();
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let today = now.to_zoned(dktime::copenhagen().clone()).date();
        u.record(&one_call(), now);
        assert!(u.persist(today).is_err(), "the folder does not exist yet");
        std::fs::create_dir(&folder).unwrap();
        u.persist(today).unwrap();
        assert_eq!(total_calls(&Usage::load(path.clone()).unwrap(), now), 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!folder.join("migration-usage.json.tmp").exists());
    }

    #[test]
    fn snapshots_and_writes_lose_no_call_recorded_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migration-usage.json");
        let u = std::sync::Arc::new(Usage::load(path.clone()).unwrap());
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let today = now.to_zoned(dktime::copenhagen().clone()).date();
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let u = u.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        u.record(&one_call(), now);
                    }
                })
            })
            .collect();
        for _ in 0..20 {
            u.persist(today).unwrap();
            let _ = u.snapshot(&Cutover::new(now), None, now);
        }
        for c in callers {
            c.join().unwrap();
        }
        assert_eq!(total_calls(&u, now), 8_000);
        u.persist(today).unwrap();
        assert_eq!(total_calls(&Usage::load(path).unwrap(), now), 8_000);
    }

    /// A shared store as `PgState` behaves, in memory: the aggregates in a `LocalState`,
    /// spool marks kept (never back), a batch id added once; and an add that can be made to
    /// fail, before its "commit" or after it (the outcome unknown to the caller).
    struct Shared {
        inner: LocalState,
        marks: Mutex<BTreeMap<String, u64>>,
        ids: Mutex<std::collections::HashSet<uuid::Uuid>>,
        /// The next add fails: `Some(true)` after it is applied, `Some(false)` before.
        fail: Mutex<Option<bool>>,
    }

    impl Shared {
        fn new() -> Arc<Shared> {
            Arc::new(Shared {
                inner: LocalState::in_memory(),
                marks: Mutex::default(),
                ids: Mutex::default(),
                fail: Mutex::default(),
            })
        }
        fn fail_next(&self, applied: bool) {
            *self.fail.lock().unwrap() = Some(applied);
        }
    }

    impl crate::wsrm::store::QueueStore for Shared {
        fn enqueue(
            &self,
            m: &[crate::wsrm::store::NewMessage],
        ) -> Result<usize, crate::wsrm::store::QueueError> {
            self.inner.enqueue(m)
        }
        fn create_sequence(
            &self,
            s: &str,
            now: i64,
            t: i64,
            max: usize,
        ) -> Result<
            (uuid::Uuid, Vec<(crate::wsrm::MessageKind, usize)>),
            crate::wsrm::store::QueueError,
        > {
            self.inner.create_sequence(s, now, t, max)
        }
        fn messages(
            &self,
            s: &str,
            q: uuid::Uuid,
            k: crate::wsrm::MessageKind,
            now: i64,
            t: i64,
        ) -> Result<Vec<crate::wsrm::store::StoredMessage>, crate::wsrm::store::QueueError>
        {
            self.inner.messages(s, q, k, now, t)
        }
        fn terminate(
            &self,
            s: &str,
            q: uuid::Uuid,
            now: i64,
            t: i64,
        ) -> Result<usize, crate::wsrm::store::QueueError> {
            self.inner.terminate(s, q, now, t)
        }
        fn close(
            &self,
            s: &str,
            q: uuid::Uuid,
            now: i64,
            t: i64,
        ) -> Result<usize, crate::wsrm::store::QueueError> {
            self.inner.close(s, q, now, t)
        }
        fn expire(&self, now: i64, r: i64) -> Result<usize, crate::wsrm::store::QueueError> {
            self.inner.expire(now, r)
        }
        fn stats(
            &self,
            now: i64,
        ) -> Result<Vec<crate::wsrm::store::QueueStats>, crate::wsrm::store::QueueError> {
            self.inner.stats(now)
        }
    }

    impl crate::state::UsageStore for Shared {
        fn add_usage(&self, batch: &UsageBatch) -> Result<(), StateError> {
            let fail = self.fail.lock().unwrap().take();
            if fail == Some(false) {
                return Err(StateError("down".into()));
            }
            if batch
                .id
                .is_some_and(|id| !self.ids.lock().unwrap().insert(id))
            {
                return Ok(());
            }
            self.inner.add_usage(batch)?;
            let mut marks = self.marks.lock().unwrap();
            for (f, at) in &batch.marks {
                let m = marks.entry(f.clone()).or_default();
                *m = (*m).max(*at);
            }
            match fail {
                Some(true) => Err(StateError("the commit's answer was lost".into())),
                _ => Ok(()),
            }
        }
        fn usage(&self, oldest: Date) -> Result<UsageAggregates, StateError> {
            self.inner.usage(oldest)
        }
        fn keep_usage(&self, oldest: Date, forget_before: Date) -> Result<(), StateError> {
            self.inner.keep_usage(oldest, forget_before)
        }
        fn spool_mark(&self, file: &str) -> Result<u64, StateError> {
            Ok(self.marks.lock().unwrap().get(file).copied().unwrap_or(0))
        }
        fn forget_spool(&self, files: &[String]) -> Result<(), StateError> {
            let mut marks = self.marks.lock().unwrap();
            for f in files {
                marks.remove(f);
            }
            Ok(())
        }
    }

    impl StateStore for Shared {
        fn shared(&self) -> bool {
            true
        }
        fn describe(&self) -> String {
            "test".into()
        }
        fn ready(&self) -> Result<(), StateError> {
            Ok(())
        }
    }

    const NOW: &str = "2026-11-27T12:00:00Z";

    fn calls(u: &Usage, n: usize, fault: Option<u32>) {
        for _ in 0..n {
            u.record(
                &UsageCall {
                    organisation_type: "1",
                    organisation_code: "101",
                    service: "PersonRegistrationService",
                    operation: "CreateContactGroup",
                    fault,
                    own_micros: 10,
                },
                NOW.parse().unwrap(),
            );
        }
    }

    /// Calls and faults the store holds for jobcentre 101.
    fn stored(store: &Shared) -> (u64, u64) {
        let u = store.usage(date(2026, 11, 1)).unwrap();
        let key = "2026-11-27|1|101|PersonRegistrationService|CreateContactGroup";
        u.days
            .get(key)
            .map_or((0, 0), |c| (c.calls, c.faults.values().sum()))
    }

    fn spool_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("usage-spool")).unwrap().count()
    }

    use crate::state::UsageStore as _;
    use jiff::civil::date;

    /// A process killed after its answers and before its flush: the next start adds what
    /// its spool holds past the store's mark, once; a start after that adds nothing.
    #[test]
    fn a_killed_process_counts_its_spooled_calls_once_at_its_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Shared::new();
        let u = Usage::open(store.clone(), dir.path()).unwrap();
        calls(&u, 5, None);
        u.flush().unwrap();
        calls(&u, 3, Some(100028));
        drop(u); // killed: nothing flushed
        assert_eq!(stored(&store), (5, 0));
        let again = Usage::open(store.clone(), dir.path()).unwrap();
        again.flush().unwrap();
        assert_eq!(stored(&store), (8, 3));
        drop(again);
        let third = Usage::open(store.clone(), dir.path()).unwrap();
        calls(&third, 1, None);
        third.flush().unwrap();
        assert_eq!(stored(&store), (9, 3));
        // The replayed files are gone once their counts are in; the live one stays.
        assert_eq!(spool_files(dir.path()), 1);
    }

    /// An add whose outcome is unknown (applied, answer lost) is sent again with its id
    /// and not counted twice; one that failed before applying is counted when it goes
    /// through; calls made meanwhile are counted once, after it.
    #[test]
    fn a_batch_whose_commit_went_unanswered_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Shared::new();
        let u = Usage::open(store.clone(), dir.path()).unwrap();
        calls(&u, 4, None);
        store.fail_next(true);
        assert!(u.flush().is_err());
        assert_eq!(stored(&store), (4, 0));
        calls(&u, 2, None);
        u.flush().unwrap();
        assert_eq!(stored(&store), (6, 0));
        calls(&u, 3, None);
        store.fail_next(false);
        assert!(u.flush().is_err());
        assert_eq!(stored(&store), (6, 0));
        u.flush().unwrap();
        assert_eq!(stored(&store), (9, 0));
        // Killed now and started again: nothing is counted twice.
        drop(u);
        let again = Usage::open(store.clone(), dir.path()).unwrap();
        again.flush().unwrap();
        assert_eq!(stored(&store), (9, 0));
    }

    /// A spool past its size is replaced at a flush and deleted once its counts are in,
    /// not before: a kill in between still counts every call once.
    #[test]
    fn a_full_spool_is_replaced_and_deleted_once_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Shared::new();
        let u = Usage::open(store.clone(), dir.path()).unwrap();
        // ~80 bytes a line: past 4 MiB.
        let n = (SPOOL_ROTATE_BYTES / 60) as usize;
        calls(&u, n, None);
        store.fail_next(false);
        assert!(u.flush().is_err(), "the batch of the full spool fails");
        assert_eq!(spool_files(dir.path()), 2, "replaced, the full one kept");
        calls(&u, 2, None);
        drop(u); // killed before its counts were in
        let again = Usage::open(store.clone(), dir.path()).unwrap();
        again.flush().unwrap();
        assert_eq!(stored(&store), (n as u64 + 2, 0));
        assert_eq!(spool_files(dir.path()), 1);
        assert!(
            store.marks.lock().unwrap().len() <= 1,
            "the gone files' marks are forgotten"
        );
    }

    /// Lines a crash or another writer left that are not counts are skipped at the replay;
    /// the counts around them are kept, and a line cut short at the end waits.
    #[test]
    fn spool_lines_that_are_not_counts_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("usage-spool");
        std::fs::create_dir_all(&spool).unwrap();
        let good = "2026-11-27|1|101|PersonRegistrationService|CreateContactGroup";
        let ms = NOW.parse::<Timestamp>().unwrap().as_millisecond();
        let text = format!(
            "{good}\t\t{ms}\n-11-27|1|101|PersonRegistrationService|CreateContactGroup\t\t{ms}\n\
             {good}\t100028\t{ms}\n2026-02-30|1|101|P|C\t\t{ms}\n{good}\tx\t{ms}\n\
             {good}\u{0}\t\t{ms}\n1|101|P|C\t\t{ms}\n{good}\t\t{ms}"
        );
        std::fs::write(spool.join("old.spool"), text).unwrap();
        let store = Shared::new();
        let u = Usage::open(store.clone(), dir.path()).unwrap();
        u.flush().unwrap();
        assert_eq!(stored(&store), (2, 1));
    }

    /// Two processes on one data dir (a mistake) do not count each other's calls: a live
    /// spool is locked, and a start leaves it to its owner.
    #[test]
    fn a_live_spool_is_not_replayed_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = Shared::new();
        let a = Usage::open(store.clone(), dir.path()).unwrap();
        calls(&a, 3, None);
        let b = Usage::open(store.clone(), dir.path()).unwrap();
        b.flush().unwrap();
        assert_eq!(stored(&store), (0, 0));
        a.flush().unwrap();
        assert_eq!(stored(&store), (3, 0));
        calls(&a, 2, None);
        drop(a); // killed: its lock goes with it
        let c = Usage::open(store.clone(), dir.path()).unwrap();
        c.flush().unwrap();
        b.flush().unwrap();
        assert_eq!(stored(&store), (5, 0));
    }
}
