//! Prometheus metrics (OpenMetrics text at `/metrics`, from the `prometheus-client` crate).
//! Label values are bounded: services, operations and REST operationIds come from the
//! plan, fault codes from the catalogue, organisation types from mappings/; organisation
//! codes are kept for the first `MAX_ORGANISATIONS` organisations seen (plain codes of at most
//! `MAX_CODE_LEN` characters) and fold into `other` after that. No label ever holds a CPR number or an id.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::catalog::{Catalog, Fejl};

/// How many distinct calling organisations get their own label value.
pub const MAX_ORGANISATIONS: usize = 1000;

/// The longest organisation code kept as a label: municipality and a-kasse numbers are a
/// few digits, a CVR is 8. Anything longer (a CPR number sent by mistake is 10) is `other`.
pub const MAX_CODE_LEN: usize = 8;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub operation: String,
    pub soap_version: String,
    pub organisation_type: String,
    pub organisation_code: String,
    pub outcome: String,
    pub fault_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub operation_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub operation_id: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectionLabels {
    pub operation: String,
    pub collection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabels {
    pub organisation_type: String,
    pub organisation_code: String,
}

/// The fault code that stands for every code not in the catalogue.
pub const OTHER_FAULT: u32 = 0;

/// The catalogue's fault codes, sorted (the catalogue is read once per process, so the
/// codes do not change while it runs).
static FAULT_CODES: LazyLock<Vec<u32>> = LazyLock::new(|| {
    let mut codes: Vec<u32> = Fejl::ALL.iter().map(|f| f.entry().code).collect();
    codes.sort_unstable();
    codes
});

/// A fault code as metrics and usage keep it: a catalogue code, or `OTHER_FAULT`.
pub fn bounded_fault(code: Option<u32>) -> Option<u32> {
    code.map(|c| {
        if FAULT_CODES.binary_search(&c).is_ok() {
            c
        } else {
            OTHER_FAULT
        }
    })
}

fn op_labels(r: &CallRecord<'_>) -> OpLabels {
    OpLabels {
        service: r.service.to_owned(),
        operation: r.operation.to_owned(),
    }
}

/// Latency buckets: 50 µs to about 6.5 s.
#[derive(Clone, Copy)]
pub struct Buckets;

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
    }
}

/// One SOAP call, as the metrics and the dashboard see it.
#[derive(Debug, Clone)]
pub struct CallRecord<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub soap_version: &'a str,
    /// The organisation's label values, bounded by `Metrics::organisation`.
    pub organisation_type: &'a str,
    pub organisation_code: &'a str,
    pub fault_code: Option<u32>,
    pub total: Duration,
    pub upstream: Duration,
    pub past_cutover: Option<bool>,
}

/// The label values of one `soap_calls` series, borrowed (the fault code bounded).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CallKey<'a> {
    service: &'a str,
    operation: &'a str,
    soap_version: &'a str,
    organisation_type: &'a str,
    organisation_code: &'a str,
    fault: Option<u32>,
}

/// `CallKey`, owned: the key of the handle cache.
struct OwnedCallKey {
    service: Box<str>,
    operation: Box<str>,
    soap_version: Box<str>,
    organisation_type: Box<str>,
    organisation_code: Box<str>,
    fault: Option<u32>,
}

/// What the cache is looked up by: a borrowed `CallKey` finds an `OwnedCallKey` without
/// allocating (both hash and compare as their `CallKey`).
trait AsCallKey {
    fn key(&self) -> CallKey<'_>;
}

impl AsCallKey for CallKey<'_> {
    fn key(&self) -> CallKey<'_> {
        *self
    }
}

impl AsCallKey for OwnedCallKey {
    fn key(&self) -> CallKey<'_> {
        CallKey {
            service: &self.service,
            operation: &self.operation,
            soap_version: &self.soap_version,
            organisation_type: &self.organisation_type,
            organisation_code: &self.organisation_code,
            fault: self.fault,
        }
    }
}

impl<'a> Borrow<dyn AsCallKey + 'a> for OwnedCallKey {
    fn borrow(&self) -> &(dyn AsCallKey + 'a) {
        self
    }
}

impl Hash for dyn AsCallKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn AsCallKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn AsCallKey + '_ {}

impl Hash for OwnedCallKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for OwnedCallKey {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for OwnedCallKey {}

/// The metric handles one call touches, taken from the families once per label set
/// (handles are shared: a clone counts into the family's series).
struct CallHandles {
    calls: Counter,
    total: Histogram,
    own: Histogram,
    /// The organisation's cutover gauge, made on the first call that knows the state (as
    /// the family made it before: a series appears only once it has a value).
    past_cutover: OnceLock<Gauge>,
}

/// The organisations with their own label values: codes by type.
#[derive(Default)]
struct Organisations {
    by_type: HashMap<String, HashSet<String>>,
    len: usize,
}

impl Organisations {
    fn contains(&self, ty: &str, code: &str) -> bool {
        self.by_type
            .get(ty)
            .is_some_and(|codes| codes.contains(code))
    }

    fn insert(&mut self, ty: &str, code: &str) {
        let codes = match self.by_type.get_mut(ty) {
            Some(codes) => codes,
            None => self.by_type.entry(ty.to_owned()).or_default(),
        };
        if codes.insert(code.to_owned()) {
            self.len += 1;
        }
    }
}

/// The legacy WSRM queues (issue 16). The subscriber label is `TYPE:CODE` of a configured
/// subscriber: bounded by the configuration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriberLabels {
    pub subscriber: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

struct WsrmMetrics {
    received: Family<OutcomeLabels, Counter>,
    queued: Counter,
    delivered: Family<SubscriberLabels, Counter>,
    expired: Counter,
    depth: Family<SubscriberLabels, Gauge>,
    oldest: Family<SubscriberLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl WsrmMetrics {
    fn register(registry: &mut Registry) -> WsrmMetrics {
        let m = WsrmMetrics {
            received: Family::default(),
            queued: Counter::default(),
            delivered: Family::default(),
            expired: Counter::default(),
            depth: Family::default(),
            oldest: Family::default(),
        };
        registry.register(
            "wsrm_events_received",
            "WSB events the WSRM receiver took, by outcome (queued, not_routed: for no subscriber, invalid)",
            m.received.clone(),
        );
        registry.register(
            "wsrm_messages_queued",
            "Legacy WSRM messages queued (a redelivered event's are counted once)",
            m.queued.clone(),
        );
        registry.register(
            "wsrm_messages_delivered",
            "Legacy WSRM messages acknowledged by TerminateSequence, by subscriber",
            m.delivered.clone(),
        );
        registry.register(
            "wsrm_messages_expired",
            "Legacy WSRM messages dropped after wsrm_retention_days",
            m.expired.clone(),
        );
        registry.register(
            "wsrm_queue_depth",
            "Legacy WSRM messages waiting per subscriber (reserved or not)",
            m.depth.clone(),
        );
        registry.register(
            "wsrm_oldest_message_age_seconds",
            "Age of a subscriber's oldest waiting WSRM message (0 when none): how far behind it polls",
            m.oldest.clone(),
        );
        m
    }
}

pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    total: Family<OpLabels, Histogram, Buckets>,
    own: Family<OpLabels, Histogram, Buckets>,
    upstream: Family<UpstreamLabels, Histogram, Buckets>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    shadow: Family<CollectionLabels, Counter>,
    past_cutover: Family<OrgLabels, Gauge>,
    dev_mode: Gauge,
    wsrm: WsrmMetrics,
    organisations: Mutex<Organisations>,
    /// Handles of the series calls have used, so that a call whose labels were seen before
    /// builds no label strings.
    handles: RwLock<HashMap<OwnedCallKey, CallHandles>>,
    catalog: Option<&'static Catalog>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn wsrm_received(&self, outcome: &str) {
        self.wsrm
            .received
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn wsrm_queued(&self, n: usize) {
        self.wsrm.queued.inc_by(n as u64);
    }

    pub fn wsrm_delivered(&self, subscriber: &str, n: usize) {
        self.wsrm
            .delivered
            .get_or_create(&SubscriberLabels {
                subscriber: subscriber.to_owned(),
            })
            .inc_by(n as u64);
    }

    pub fn wsrm_expired(&self, n: usize) {
        self.wsrm.expired.inc_by(n as u64);
    }

    /// A subscriber's queue depth and its oldest message's age.
    pub fn wsrm_queue(&self, subscriber: &str, depth: usize, oldest_age_secs: f64) {
        let l = SubscriberLabels {
            subscriber: subscriber.to_owned(),
        };
        self.wsrm.depth.get_or_create(&l).set(depth as i64);
        self.wsrm.oldest.get_or_create(&l).set(oldest_age_secs);
    }

    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vos_converter");
        let calls = Family::<CallLabels, Counter>::default();
        let total = Family::<OpLabels, Histogram, Buckets>::new_with_constructor(Buckets);
        let own = Family::<OpLabels, Histogram, Buckets>::new_with_constructor(Buckets);
        let upstream = Family::<UpstreamLabels, Histogram, Buckets>::new_with_constructor(Buckets);
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let shadow = Family::<CollectionLabels, Counter>::default();
        let past_cutover = Family::<OrgLabels, Gauge>::default();
        registry.register(
            "soap_calls",
            "SOAP calls by service, operation, SOAP version, caller and outcome",
            calls.clone(),
        );
        registry.register(
            "soap_call_seconds",
            "Total time of a SOAP call, as the caller waits",
            total.clone(),
        );
        registry.register(
            "converter_own_seconds",
            "Time of a SOAP call spent in the converter (total without the upstream wait)",
            own.clone(),
        );
        registry.register(
            "upstream_seconds",
            "Time of a REST call by operationId",
            upstream.clone(),
        );
        registry.register(
            "upstream_errors",
            "REST calls that failed, by operationId and kind (timeout, unreachable, invalid, cancelled)",
            upstream_errors.clone(),
        );
        registry.register(
            "shadow_mismatches",
            "Items that differed between the legacy and the REST-derived collections",
            shadow.clone(),
        );
        registry.register(
            "past_cutover",
            "1 when the calling organisation is past its cutover (PSS/PHS collections empty)",
            past_cutover.clone(),
        );
        let dev_mode = Gauge::default();
        registry.register(
            "dev_mode",
            "1 when the converter runs the embedded reference backend (dev mode: fictitious data, not STAR's service)",
            dev_mode.clone(),
        );
        let wsrm = WsrmMetrics::register(&mut registry);
        Metrics {
            registry,
            wsrm,
            calls,
            total,
            own,
            upstream,
            upstream_errors,
            shadow,
            past_cutover,
            dev_mode,
            organisations: Mutex::new(Organisations::default()),
            handles: RwLock::new(HashMap::new()),
            catalog: Catalog::load().ok(),
        }
    }

    /// The organisation as label values, bounded (see the module doc): the trimmed values
    /// as sent, or `other`.
    pub fn organisation<'a>(&self, org: Option<(u8, &'a str)>) -> (&'a str, &'a str) {
        // The type label is the normalised number's one spelling (`type_label`), whatever
        // the caller wrote.
        let ty = org
            .map(|(t, _)| t)
            .filter(|k| self.catalog.is_none_or(|c| c.orgtype(*k).is_some()))
            .map(type_label);
        let code = org.map(|(_, c)| c.trim()).filter(|c| {
            (1..=MAX_CODE_LEN).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        let (Some(ty), Some(code)) = (ty, code) else {
            return ("other", "other");
        };
        let Ok(mut seen) = self.organisations.lock() else {
            return ("other", "other");
        };
        if seen.contains(ty, code) {
            (ty, code)
        } else if seen.len < MAX_ORGANISATIONS {
            seen.insert(ty, code);
            (ty, code)
        } else {
            (ty, "other")
        }
    }

    fn fault_label(&self, code: Option<u32>) -> String {
        match bounded_fault(code) {
            None => String::new(),
            Some(OTHER_FAULT) => "other".into(),
            Some(c) => c.to_string(),
        }
    }

    /// Counts a call; its organisation labels come from `organisation`.
    pub fn record_call(&self, r: &CallRecord<'_>) {
        let key = CallKey {
            service: r.service,
            operation: r.operation,
            soap_version: r.soap_version,
            organisation_type: r.organisation_type,
            organisation_code: r.organisation_code,
            fault: bounded_fault(r.fault_code),
        };
        {
            let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = handles.get(&key as &dyn AsCallKey) {
                self.observe(h, r, &key);
                return;
            }
        }
        let made = CallHandles {
            calls: self
                .calls
                .get_or_create(&CallLabels {
                    service: r.service.to_owned(),
                    operation: r.operation.to_owned(),
                    soap_version: r.soap_version.to_owned(),
                    organisation_type: r.organisation_type.to_owned(),
                    organisation_code: r.organisation_code.to_owned(),
                    outcome: if r.fault_code.is_some() {
                        "fault".into()
                    } else {
                        "ok".into()
                    },
                    fault_code: self.fault_label(r.fault_code),
                })
                .clone(),
            total: self.total.get_or_create(&op_labels(r)).clone(),
            own: self.own.get_or_create(&op_labels(r)).clone(),
            past_cutover: OnceLock::new(),
        };
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        let h = handles
            .entry(OwnedCallKey {
                service: r.service.into(),
                operation: r.operation.into(),
                soap_version: r.soap_version.into(),
                organisation_type: r.organisation_type.into(),
                organisation_code: r.organisation_code.into(),
                fault: key.fault,
            })
            .or_insert(made);
        self.observe(h, r, &key);
    }

    fn observe(&self, h: &CallHandles, r: &CallRecord<'_>, key: &CallKey<'_>) {
        h.calls.inc();
        h.total.observe(r.total.as_secs_f64());
        h.own
            .observe(r.total.saturating_sub(r.upstream).as_secs_f64());
        // The folded `other` is many organisations: it has no one cutover state.
        if let Some(past) = r.past_cutover.filter(|_| key.organisation_code != "other") {
            h.past_cutover
                .get_or_init(|| {
                    self.past_cutover
                        .get_or_create(&OrgLabels {
                            organisation_type: key.organisation_type.to_owned(),
                            organisation_code: key.organisation_code.to_owned(),
                        })
                        .clone()
                })
                .set(i64::from(past));
        }
    }

    pub fn record_upstream(&self, operation_id: &str, took: Duration, error_kind: Option<&str>) {
        self.upstream
            .get_or_create(&UpstreamLabels {
                operation_id: operation_id.to_owned(),
            })
            .observe(took.as_secs_f64());
        if let Some(kind) = error_kind {
            self.upstream_errors
                .get_or_create(&UpstreamErrorLabels {
                    operation_id: operation_id.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }

    /// An upstream answer found wrong after the call was recorded (a 2xx that is not JSON).
    pub fn count_upstream_error(&self, operation_id: &str, kind: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                operation_id: operation_id.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn record_shadow(&self, operation: &str, collection: &str, mismatches: u64) {
        self.shadow
            .get_or_create(&CollectionLabels {
                operation: operation.to_owned(),
                collection: collection.to_owned(),
            })
            .inc_by(mismatches);
    }

    /// Sets the cutover gauge of every organisation seen (called before each scrape, so an
    /// instant that passes while the converter runs shows without waiting for a call).
    pub fn refresh_cutover(&self, cutover: &crate::cutover::Cutover, now: jiff::Timestamp) {
        let seen: Vec<(String, String)> = match self.organisations.lock() {
            Ok(g) => g
                .by_type
                .iter()
                .flat_map(|(ty, codes)| codes.iter().map(|code| (ty.clone(), code.clone())))
                .collect(),
            Err(_) => return,
        };
        for (organisation_type, organisation_code) in seen {
            let past = cutover.passed(&organisation_type, &organisation_code, now);
            self.past_cutover
                .get_or_create(&OrgLabels {
                    organisation_type,
                    organisation_code,
                })
                .set(i64::from(past));
        }
    }

    /// Marks an organisation's cutover state (for organisations with their own cutover,
    /// known before they call).
    /// Whether this is dev mode (`vos_converter_dev_mode`).
    pub fn set_dev_mode(&self, dev: bool) {
        self.dev_mode.set(i64::from(dev));
    }

    pub fn set_past_cutover(&self, ty: &str, code: &str, past: bool) {
        let org = ty.parse::<u8>().ok().map(|t| (t, code));
        let (organisation_type, organisation_code) = self.organisation(org);
        self.past_cutover
            .get_or_create(&OrgLabels {
                organisation_type: organisation_type.to_owned(),
                organisation_code: organisation_code.to_owned(),
            })
            .set(i64::from(past));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The label of an organisation type: its number in canonical form.
fn type_label(t: u8) -> &'static str {
    static LABELS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..=255u16).map(|t| t.to_string()).collect());
    LABELS.get(t as usize).map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_with_bounded_labels() {
        let m = Metrics::new();
        let (ty, code) = m.organisation(Some((1, "101")));
        let r = CallRecord {
            service: "PersonRegistrationService",
            operation: "CreateContactGroup",
            soap_version: "1.1",
            organisation_type: ty,
            organisation_code: code,
            fault_code: Some(100028),
            total: Duration::from_millis(3),
            upstream: Duration::from_millis(2),
            past_cutover: None,
        };
        m.record_call(&r);
        let (ty, code) = m.organisation(Some((1, "0101701111")));
        m.record_call(&CallRecord {
            organisation_type: ty,
            organisation_code: code,
            fault_code: Some(123456),
            ..r.clone()
        });
        let (ty, code) = m.organisation(Some((77, "101")));
        m.record_call(&CallRecord {
            organisation_type: ty,
            organisation_code: code,
            ..r.clone()
        });
        let text = m.encode();
        assert!(text.contains(r#"vos_converter_soap_calls_total{service="PersonRegistrationService",operation="CreateContactGroup",soap_version="1.1",organisation_type="1",organisation_code="101",outcome="fault",fault_code="100028"} 1"#), "{text}");
        assert!(text.contains(r#"organisation_type="other",organisation_code="other",outcome="fault",fault_code="other"} 1"#), "{text}");
        assert!(!text.contains("0101701111"));
        assert!(text.contains("vos_converter_converter_own_seconds_sum"));
    }

    #[test]
    fn organisations_past_the_cap_fold_into_other() {
        let m = Metrics::new();
        for i in 0..MAX_ORGANISATIONS {
            m.organisation(Some((1, &i.to_string())));
        }
        assert_eq!(m.organisation(Some((1, "5"))).1, "5");
        assert_eq!(m.organisation(Some((1, "new"))).1, "other");
        assert_eq!(m.organisation(Some((9, "5"))), ("other", "other"));
        assert_eq!(m.organisation(None), ("other", "other"));
    }
}
