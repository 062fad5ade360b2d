//! Migration usage: who still calls which legacy operation, per day, with which faults, and
//! the converter's own overhead. Kept as daily aggregates (no CPR, no identifiers; the
//! organisation labels are the metrics' bounded ones), written to the data dir so they
//! survive a restart, and served as JSON at `/api/migration` for the dashboard and other
//! tools.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use jiff::{Timestamp, civil::Date};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::cutover::Cutover;
use crate::dktime;

/// Days of aggregates kept on disk; the dashboard shows the last `SHOWN_DAYS`.
const KEPT_DAYS: i32 = 35;
pub const SHOWN_DAYS: i32 = 14;
/// Own-time samples kept for the overhead percentiles.
const OWN_SAMPLES: usize = 4096;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Count {
    calls: u64,
    faults: BTreeMap<u32, u64>,
}

/// What is persisted.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// "date|type|code|service|operation" → counts of that day.
    days: BTreeMap<String, Count>,
    /// "type|code|service|operation" → last call.
    last_seen: BTreeMap<String, Timestamp>,
}

pub struct Usage {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

struct Inner {
    stored: Stored,
    dirty: bool,
    own_micros: VecDeque<u64>,
    calls_since_start: u64,
    /// The Danish day of the last call, so that a call on the same day need not work it out.
    day: Option<Day>,
    /// The key being looked up ("date|type|code|service|operation"), reused between calls.
    key: String,
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
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Usage {
    /// Usage persisted at `path` (read now if it exists; a damaged file is set aside).
    pub fn load(path: Option<PathBuf>) -> Usage {
        let stored = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| match serde_json::from_str(&t) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "migration usage file unreadable; starting empty");
                    None
                }
            })
            .unwrap_or_default();
        Usage {
            path,
            inner: Mutex::new(Inner {
                stored,
                dirty: false,
                own_micros: VecDeque::with_capacity(OWN_SAMPLES),
                calls_since_start: 0,
                day: None,
                key: String::new(),
            }),
        }
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
        let Ok(mut g) = self.inner.lock() else { return };
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
        let count = |c: &mut Count| {
            c.calls += 1;
            // The same bounded codes as the metrics (0: not in the catalogue).
            if let Some(f) = crate::observe::metrics::bounded_fault(fault) {
                *c.faults.entry(f).or_default() += 1;
            }
        };
        match g.stored.days.get_mut(key.as_str()) {
            Some(c) => count(c),
            None => count(g.stored.days.entry(key.clone()).or_default()),
        }
        match g.stored.last_seen.get_mut(&key[day_len..]) {
            Some(t) => *t = now,
            None => {
                g.stored.last_seen.insert(key[day_len..].to_owned(), now);
            }
        }
        if g.own_micros.len() == OWN_SAMPLES {
            g.own_micros.pop_front();
        }
        g.own_micros.push_back(own_micros);
        g.calls_since_start += 1;
        g.dirty = true;
    }

    /// Writes the aggregates if anything changed (temp file + rename), dropping old days.
    pub fn persist(&self, today: Date) {
        let Some(path) = &self.path else { return };
        let text = {
            let Ok(mut g) = self.inner.lock() else { return };
            if !g.dirty {
                return;
            }
            let oldest = today
                .saturating_sub(jiff::Span::new().days(KEPT_DAYS))
                .to_string();
            g.stored
                .days
                .retain(|k, _| k.split('|').next().is_some_and(|d| d >= oldest.as_str()));
            // Who called is remembered for a year, then forgotten.
            let year_ago = today.saturating_sub(jiff::Span::new().days(365));
            g.stored
                .last_seen
                .retain(|_, t| t.to_zoned(dktime::copenhagen().clone()).date() >= year_ago);
            g.dirty = false;
            serde_json::to_string(&g.stored)
        };
        let Ok(text) = text else { return };
        let tmp = path.with_extension("json.tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot write the migration usage file");
        }
    }

    pub fn snapshot(
        &self,
        cutover: &Cutover,
        catalog: Option<&Catalog>,
        now: Timestamp,
    ) -> Migration {
        let today = now.to_zoned(dktime::copenhagen().clone()).date();
        let days: Vec<Date> = (0..SHOWN_DAYS)
            .rev()
            .map(|d| today.saturating_sub(jiff::Span::new().days(d)))
            .collect();
        let g = self.inner.lock().ok();
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
            for (key, seen) in &g.stored.last_seen {
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
            for (key, count) in &g.stored.days {
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
                            .stored
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
        let overhead = match &g {
            Some(g) => {
                let mut s: Vec<u64> = g.own_micros.iter().copied().collect();
                s.sort_unstable();
                Overhead {
                    samples: s.len() as u64,
                    p50_micros: percentile(&s, 0.5),
                    p99_micros: percentile(&s, 0.99),
                }
            }
            None => Overhead {
                samples: 0,
                p50_micros: 0,
                p99_micros: 0,
            },
        };
        Migration {
            generated_at: now,
            days,
            default_cutover: cutover.default_instant(),
            overhead,
            organisations,
        }
    }
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
        let u = Usage::load(Some(path.clone()));
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
        u.persist(now.to_zoned(dktime::copenhagen().clone()).date());

        let again = Usage::load(Some(path));
        let m = again.snapshot(&cut, Catalog::load().ok(), now);
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
        let u = Usage::load(None);
        let call = UsageCall {
            organisation_type: "3",
            organisation_code: "147",
            service: "PersonStatusService",
            operation: "GetVariablePersonStatus",
            fault: Some(4242),
            own_micros: 10,
        };
        u.record(&call, long_ago);
        let m = u.snapshot(&Cutover::new(now), None, now);
        let o = &m.organisations[0];
        assert_eq!((o.organisation_code.as_str(), o.calls), ("147", 0));
        assert_eq!(o.operations[0].last_seen, Some(long_ago));
        assert_eq!(o.operations[0].total, 0);
        let recent = u.snapshot(&Cutover::new(now), None, long_ago);
        assert_eq!(
            recent.organisations[0].faults_by_code,
            vec![FaultCount { code: 0, count: 1 }],
            "codes outside the catalogue count as 0 (other)"
        );
    }
}
