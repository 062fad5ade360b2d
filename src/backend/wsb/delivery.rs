//! WSB delivery: one task per subscription, POSTing the events it may see in `sekvens`
//! order.
//!
//! - **At least once.** An event counts as delivered only when the receiver answers 2xx. The
//!   subscription's cursor moves past it only after that. A crash between the two sends it
//!   again.
//! - **Retries.** Anything else is retried after a delay:
//!   - what counts: another status, a timeout (`timeout`), a refused or broken connection;
//!   - the delay: exponential from `retry_initial`, capped at `retry_max`, with equal jitter.
//! - **Order.** While a subscription retries, its later events wait. Other subscriptions are
//!   other tasks and do not.
//! - **Parking.** An event still refused when it is older than `max_age` is parked
//!   (dead-lettered) and the cursor moves on. STAR lists parked events and can ask for a
//!   redelivery, which goes before the cursor's next event.
//! - **Waking.** Workers wake when a write commits events (the store's `on_commit`), and at
//!   the latest every second.
//! - **TLS.** Over HTTPS the backend presents its own certificate as a client certificate
//!   (mutual TLS, as WSB does) when it has one.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use uuid::Uuid;

use super::{Entitet, Next, StoredEvent, now_ms};
use crate::backend::store::{Store, StoreError};
use crate::catalog::Catalog;
use crate::dktime::Clock;

/// How delivery behaves; the defaults are the `backend` flags' defaults.
#[derive(Debug, Clone)]
pub struct WsbSettings {
    /// One delivery attempt, connection included.
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// An event not acknowledged after this long is parked.
    pub max_age: Duration,
    /// The client TLS for `https://` endpoints (with the backend's certificate); absent: the
    /// platform's trust and no client certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for WsbSettings {
    fn default() -> Self {
        WsbSettings {
            timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
            tls: None,
        }
    }
}

/// Exponential backoff with equal jitter: attempt `n` (1 = the first retry) waits between
/// half and all of `initial * 2^(n-1)`, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry `attempt`, with `jitter` in [0, 1).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let full = self.initial.saturating_mul(exp).min(self.max);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// A number in [0, 1) from the standard library's per-process random keys (no generator
/// crate for a jitter).
fn jitter() -> f64 {
    let h = std::collections::hash_map::RandomState::new().hash_one(now_ms());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntitetLabel {
    entitet: String,
}

/// Subscriptions are few and made by organisations through an authenticated operation;
/// their ids are the label (not personal data).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubLabel {
    subscription: String,
}

/// The WSB metrics, on the backend's `/metrics`.
pub struct WsbMetrics {
    registry: Registry,
    written: Family<EntitetLabel, Counter>,
    delivered: Family<SubLabel, Counter>,
    retried: Family<SubLabel, Counter>,
    dead_lettered: Family<SubLabel, Counter>,
    lag: Family<SubLabel, Gauge<f64, AtomicU64>>,
    latency: Histogram,
}

impl std::fmt::Debug for WsbMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsbMetrics")
    }
}

impl Default for WsbMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WsbMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = WsbMetrics {
            written: Family::default(),
            delivered: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            lag: Family::default(),
            // 1 ms to ~65 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            registry: Registry::default(),
        };
        registry.register(
            "wsb_events_written",
            "WSB events written to the outbox (committed with their change)",
            m.written.clone(),
        );
        registry.register(
            "wsb_events_delivered",
            "WSB events a subscriber acknowledged with 2xx",
            m.delivered.clone(),
        );
        registry.register(
            "wsb_delivery_retries",
            "WSB delivery attempts that failed and will be retried",
            m.retried.clone(),
        );
        registry.register(
            "wsb_events_dead_lettered",
            "WSB events parked after the delivery age without a 2xx",
            m.dead_lettered.clone(),
        );
        registry.register(
            "wsb_subscription_lag_seconds",
            "Age of the oldest event a subscription has not acknowledged yet (0 when caught up)",
            m.lag.clone(),
        );
        registry.register(
            "wsb_delivery_latency_seconds",
            "From an event's commit to its subscriber's 2xx",
            m.latency.clone(),
        );
        WsbMetrics { registry, ..m }
    }

    pub fn written(&self, events: &[Entitet]) {
        for e in events {
            self.written
                .get_or_create(&EntitetLabel {
                    entitet: e.as_str().to_owned(),
                })
                .inc();
        }
    }

    fn sub(id: Uuid) -> SubLabel {
        SubLabel {
            subscription: id.to_string(),
        }
    }

    fn forget(&self, id: Uuid) {
        let l = Self::sub(id);
        self.delivered.remove(&l);
        self.retried.remove(&l);
        self.dead_lettered.remove(&l);
        self.lag.remove(&l);
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// What the dispatcher shares with the handlers: the wake-ups and the metrics.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Bumped after every commit that wrote events.
    pub events: Arc<watch::Sender<u64>>,
    /// Bumped when a subscription is created or deleted.
    pub subscriptions: Arc<watch::Sender<u64>>,
    pub metrics: Arc<WsbMetrics>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            events: Arc::new(watch::channel(0).0),
            subscriptions: Arc::new(watch::channel(0).0),
            metrics: Arc::new(WsbMetrics::new()),
        }
    }
}

impl Signals {
    /// The store's commit hook: counts the events and wakes the workers.
    pub fn hook(&self) -> crate::backend::store::OnCommit {
        let me = self.clone();
        Arc::new(move |events: &[Entitet]| {
            if !events.is_empty() {
                me.metrics.written(events);
                me.events.send_modify(|n| *n = n.wrapping_add(1));
            }
        })
    }

    pub fn subscriptions_changed(&self) {
        self.subscriptions.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How often a worker writes its cursor while it delivers. Between two writes a crash
/// sends the acknowledged events again (at least once); writing after every event made
/// SQLite's one write lock a queue beside the registrations' commits.
const CURSOR_FLUSH: Duration = Duration::from_millis(250);

/// A worker's delivery cursor: acknowledged in memory, written every `CURSOR_FLUSH` and
/// whenever the worker goes idle.
struct Cursor {
    /// Every event before this is acknowledged, parked or not for the subscription.
    done: Option<i64>,
    /// `done`, when not written yet.
    pending: Option<i64>,
    flushed: std::time::Instant,
}

impl Cursor {
    fn moved(&mut self, next: i64) {
        if self.done.is_none_or(|d| next > d) {
            self.done = Some(next);
            self.pending = Some(next);
        }
    }
}

/// How one event's delivery ended.
enum Delivered {
    Acked,
    Parked,
    /// The subscription was ended meanwhile.
    Gone,
}

struct Dispatcher {
    store: Store,
    catalog: &'static Catalog,
    clock: Clock,
    settings: WsbSettings,
    signals: Signals,
    client: reqwest::Client,
}

/// Starts delivery on the current runtime: a supervisor that keeps one worker per
/// subscription. Runs until the runtime stops.
pub fn start(
    store: Store,
    catalog: &'static Catalog,
    clock: Clock,
    settings: WsbSettings,
    signals: Signals,
) -> Result<(), reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // As the converter's REST client: no proxy from the environment.
        .no_proxy()
        .tcp_nodelay(true)
        .user_agent(concat!("vos-backend-wsb/", env!("CARGO_PKG_VERSION")));
    if let Some(tls) = &settings.tls {
        builder = builder.tls_backend_preconfigured((**tls).clone());
    }
    let d = Arc::new(Dispatcher {
        store,
        catalog,
        clock,
        settings,
        signals,
        client: builder.build()?,
    });
    tokio::spawn(d.supervise());
    Ok(())
}

/// Runs a blocking store call off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("store task: {e}"))))
}

impl Dispatcher {
    async fn supervise(self: Arc<Self>) {
        let mut changed = self.signals.subscriptions.subscribe();
        let mut workers: HashMap<Uuid, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            changed.borrow_and_update();
            let store = self.store.clone();
            match blocking(move || store.read(|tx| tx.subscriptions(None))).await {
                Ok(subs) => {
                    let metrics = &self.signals.metrics;
                    workers.retain(|id, w| {
                        let listed = subs.iter().any(|s| s.id == *id);
                        let keep = !w.is_finished() && listed;
                        if !keep {
                            w.abort();
                        }
                        if !listed {
                            // Ended: its series go with it (a stale lag would keep alerting).
                            metrics.forget(*id);
                        }
                        keep
                    });
                    for s in subs {
                        workers
                            .entry(s.id)
                            .or_insert_with(|| tokio::spawn(self.clone().work(s.id)));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "WSB: cannot list subscriptions"),
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Writes the worker's cursor (`Cursor::pending`), if it moved.
    async fn flush(&self, sub: Uuid, cursor: &mut Cursor) {
        if let Some(next) = cursor.pending.take() {
            let store = self.store.clone();
            if let Err(e) = blocking(move || store.write_relaxed(|tx| tx.advance(sub, next))).await
            {
                // Not recorded: those events go again after a restart (at least once).
                tracing::warn!(error = %e, abonnement = %sub, "WSB: cannot record deliveries");
            }
        }
        cursor.flushed = std::time::Instant::now();
    }

    async fn work(self: Arc<Self>, sub: Uuid) {
        let mut wake = self.signals.events.subscribe();
        let mut cursor = Cursor {
            done: None,
            pending: None,
            flushed: std::time::Instant::now(),
        };
        // Whether the outbox has nothing more for us as of the last read (no commit since).
        let mut caught_up = false;
        loop {
            if caught_up {
                // Idle: wait for a commit; meanwhile write the cursor once it is due, not
                // after every event (at a low rate that was a write per event).
                self.lag(sub, None);
                let due = cursor
                    .pending
                    .map(|_| cursor.flushed + CURSOR_FLUSH)
                    .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    _ = wake.changed() => caught_up = false,
                    _ = tokio::time::sleep_until(due.into()) => {
                        if cursor.pending.is_some() {
                            self.flush(sub, &mut cursor).await;
                        } else {
                            // Now and then read anyway (a subscription ended meanwhile).
                            caught_up = false;
                        }
                    }
                }
                continue;
            }
            // Marked seen before the store is read: a commit after the read wakes us.
            wake.borrow_and_update();
            let (store, catalog, today) = (self.store.clone(), self.catalog, self.clock.today());
            let done = cursor.done;
            let next =
                blocking(move || store.read(|tx| tx.next_for(catalog, sub, today, done))).await;
            match next {
                Ok(Next::Gone) => {
                    self.signals.metrics.forget(sub);
                    return;
                }
                Ok(Next::Idle { scanned_to }) => {
                    if let Some(last) = scanned_to {
                        cursor.moved(last + 1);
                    }
                    caught_up = true;
                }
                Ok(Next::Deliver(d)) => {
                    let all = self
                        .catalog
                        .orgtype(d.sub.organisationstype)
                        .is_some_and(|o| o.adgang == crate::catalog::Scope::Alle);
                    let (scanned_all, redelivery) = (!d.more, d.redelivery);
                    let mut gone = false;
                    for event in d.events {
                        let body = if all {
                            event.message_with_person()
                        } else {
                            event.message()
                        };
                        let sekvens = event.sekvens;
                        match self
                            .deliver(&d.sub.endpoint, sub, event, body, d.redelivery, &mut cursor)
                            .await
                        {
                            Delivered::Acked if d.redelivery.is_none() => {
                                cursor.moved(sekvens + 1);
                                if cursor.flushed.elapsed() >= CURSOR_FLUSH {
                                    self.flush(sub, &mut cursor).await;
                                }
                            }
                            Delivered::Acked => {}
                            // Parking wrote the cursor past the event itself.
                            Delivered::Parked => cursor.moved(sekvens + 1),
                            Delivered::Gone => {
                                gone = true;
                                break;
                            }
                        }
                    }
                    // A short batch was all there was when it was read: without a commit
                    // since, there is nothing to read again.
                    caught_up = !gone
                        && redelivery.is_none()
                        && scanned_all
                        && !wake.has_changed().unwrap_or(true);
                }
                Err(e) => {
                    tracing::warn!(error = %e, abonnement = %sub, "WSB: cannot read the outbox");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn lag(&self, sub: Uuid, event: Option<&StoredEvent>) {
        let age = event.map_or(0.0, |e| (now_ms() - e.skrevet_ms).max(0) as f64 / 1000.0);
        self.signals
            .metrics
            .lag
            .get_or_create(&WsbMetrics::sub(sub))
            .set(age);
    }

    /// Delivers one event until it is acknowledged or parked; false when the subscription is
    /// gone meanwhile.
    async fn deliver(
        &self,
        endpoint: &str,
        sub: Uuid,
        event: StoredEvent,
        body: String,
        redelivery: Option<i64>,
        cursor: &mut Cursor,
    ) -> Delivered {
        let backoff = Backoff {
            initial: self.settings.retry_initial,
            max: self.settings.retry_max,
        };
        let since = redelivery.unwrap_or(event.skrevet_ms);
        let max_age = i64::try_from(self.settings.max_age.as_millis()).unwrap_or(i64::MAX);
        let metrics = &self.signals.metrics;
        let label = WsbMetrics::sub(sub);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.lag(sub, Some(&event));
            let sent = self
                .client
                .post(endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
                Err(e) if e.is_timeout() => Some("timeout".to_owned()),
                Err(e) if e.is_connect() => Some("connection refused or failed".to_owned()),
                Err(_) => Some("transport error".to_owned()),
            };
            let sekvens = event.sekvens;
            let store = self.store.clone();
            let Some(failure) = failure else {
                // The latency is the receiver's 2xx, before the bookkeeping.
                metrics
                    .latency
                    .observe((now_ms() - event.skrevet_ms).max(0) as f64 / 1000.0);
                // A redelivery is no longer parked; a new event's cursor is the worker's.
                if redelivery.is_some() {
                    let unparked =
                        blocking(move || store.write_relaxed(|tx| tx.unpark(sub, sekvens))).await;
                    if let Err(e) = unparked {
                        // It stays marked and goes again: not at once, the store is failing.
                        tracing::warn!(error = %e, abonnement = %sub, "WSB: cannot record a redelivery");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                metrics.delivered.get_or_create(&label).inc();
                self.lag(sub, None);
                return Delivered::Acked;
            };
            if now_ms() - since >= max_age {
                tracing::warn!(abonnement = %sub, sekvens, attempts = attempt, failure, "WSB: event parked");
                let f = failure.clone();
                let parked =
                    blocking(move || store.write_relaxed(|tx| tx.park(sub, sekvens, attempt, &f)))
                        .await;
                match parked {
                    Ok(()) => {
                        metrics.dead_lettered.get_or_create(&label).inc();
                        return Delivered::Parked;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, abonnement = %sub, "WSB: cannot park an event")
                    }
                }
            }
            // What was acknowledged before is written before any wait.
            self.flush(sub, cursor).await;
            metrics.retried.get_or_create(&label).inc();
            tracing::debug!(abonnement = %sub, sekvens, attempt, failure, "WSB: delivery failed, will retry");
            tokio::time::sleep(backoff.delay(attempt, jitter())).await;
            // Ended meanwhile? Then stop trying.
            let store = self.store.clone();
            if let Ok(None) = blocking(move || store.read(|tx| tx.subscription(sub))).await {
                return Delivered::Gone;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        };
        // No jitter: half the exponential step; full jitter: the whole step.
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(250));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(500));
        assert_eq!(b.delay(2, 1.0), Duration::from_millis(1000));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(1500));
        // Capped: 500 ms * 2^7 = 64 s > 60 s.
        assert_eq!(b.delay(8, 1.0), Duration::from_secs(60));
        assert_eq!(b.delay(8, 0.0), Duration::from_secs(30));
        // Huge attempt numbers neither overflow nor pass the cap.
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_secs(60));
        // Out-of-range jitter is clamped.
        assert_eq!(b.delay(1, 7.0), Duration::from_millis(500));
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }
}
