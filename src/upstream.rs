//! The converter's client of VisiteringOgStatus REST (and of the legacy SOAP services):
//! hyper-util's pooled HTTP/1.1 client, one per worker thread, with connect and call
//! timeouts and a bound on the calls in flight; the caller's identity as headers, a W3C
//! `traceparent` on every call, and the REST code lists cached for a configured time.
//! Nothing is retried here: a write sent twice could register twice (hyper resends only a
//! request that never left, on a pooled connection the server had closed; see
//! `Upstream::client` for what that covers and what it cannot). Every answer is bounded by
//! `max_upstream_bytes` (one held whole to be parsed, also by [`MAX_WHOLE_ANSWER_BYTES`]),
//! counted as it is read, and refused at its head when its Content-Length says more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thread_local::ThreadLocal;
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::json::Json;
use crate::observe::metrics::Metrics;
use crate::vos;

/// The caller, forwarded to REST as the identity headers (rule 8: the originator is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub organisation_type: String,
    pub organisation_code: String,
    pub user: Option<String>,
}

/// A REST request, built by the mapping phase.
#[derive(Debug, Clone)]
pub struct RestRequest {
    pub operation_id: String,
    pub method: http::Method,
    /// Path and query, e.g. `/personvisitering/v1/kontaktgrupper/<id>`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The JSON body, as sent.
    pub body: Option<Bytes>,
}

/// What REST answered.
#[derive(Debug, Clone, PartialEq)]
pub enum RestAnswer {
    /// 2xx, with the body as it came (JSON, or empty); `crate::json::Json` reads it in
    /// place.
    Ok(Bytes),
    /// A problem+json with the catalogue's members.
    Problem {
        status: u16,
        fejlkode: u32,
        fejltekst: String,
    },
}

impl RestAnswer {
    /// A 2xx answer's JSON (`Null` when the body is empty), read in place.
    pub fn json<'a>(operation_id: &str, body: &'a [u8]) -> Result<Json<'a>, UpstreamError> {
        Json::parse(body).map_err(|_| {
            UpstreamError::Invalid(format!("{operation_id} answered with invalid JSON"))
        })
    }
}

/// A REST answer's head: a 2xx body still to be read, or a problem.
pub enum Opened<'t> {
    Body(RestBody<'t>),
    /// Always `RestAnswer::Problem`.
    Problem(RestAnswer),
}

/// A 2xx REST answer's body (or a legacy service's answer), read chunk by chunk as it
/// arrives, within the call's deadline and `limit` (`max_upstream_bytes`; read whole, at
/// most [`MAX_WHOLE_ANSWER_BYTES`] of it). It holds its call's permit and upstream wait: the
/// wait ends, and is recorded, when the body has been read to its end, fails, or is dropped.
pub struct RestBody<'t> {
    body: hyper::body::Incoming,
    read: usize,
    /// The most bytes read before the answer is refused.
    limit: usize,
    /// The length its head's Content-Length gives (0 without one). Over `limit`, the body
    /// is refused without reading a byte of it (`within_limit`, or the first `chunk`).
    declared: u64,
    deadline: Instant,
    done: bool,
    _permit: tokio::sync::SemaphorePermit<'t>,
    wait: Option<Wait<'t>>,
}

impl<'t> RestBody<'t> {
    fn new(
        res: http::Response<hyper::body::Incoming>,
        limit: usize,
        deadline: Instant,
        permit: tokio::sync::SemaphorePermit<'t>,
        wait: Wait<'t>,
    ) -> RestBody<'t> {
        RestBody {
            declared: declared(&res),
            body: res.into_body(),
            read: 0,
            limit,
            deadline,
            done: false,
            _permit: permit,
            wait: Some(wait),
        }
    }

    /// The body, unless its head declared more than the ceiling: then the wait ends with
    /// that failure and the body is dropped unread (its connection closes).
    pub fn within_limit(mut self) -> Result<RestBody<'t>, UpstreamError> {
        if self.declared > self.limit as u64 {
            return self.end(Err(too_large(self.limit)));
        }
        Ok(self)
    }

    /// The whole body in one piece, for an answer that is parsed whole: at most
    /// [`MAX_WHOLE_ANSWER_BYTES`] (or the ceiling, if lower).
    pub async fn read_whole(mut self) -> Result<Bytes, UpstreamError> {
        self.limit = self.limit.min(MAX_WHOLE_ANSWER_BYTES);
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if all.is_empty() {
                if self.done {
                    // The usual small answer: one chunk, no copy.
                    return Ok(chunk);
                }
                // More to come: room for all of it when the head said how much (within the
                // limit: the first chunk checked).
                all.reserve(self.declared.max(chunk.len() as u64) as usize);
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.into())
    }

    /// The next chunk of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        if self.done {
            return Ok(None);
        }
        if self.declared > self.limit as u64 {
            return self.end(Err(too_large(self.limit)));
        }
        let next = tokio::time::timeout_at(self.deadline.into(), self.next_data()).await;
        let result = match next {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout { sent: true }),
        };
        match result {
            Ok(Some(chunk)) => {
                self.read += chunk.len();
                if self.read > self.limit {
                    return self.end(Err(too_large(self.limit)));
                }
                if http_body::Body::is_end_stream(&self.body) {
                    self.end(Ok(()))?;
                }
                Ok(Some(chunk))
            }
            Ok(None) => self.end(Ok(())).map(|()| None),
            Err(e) => self.end(Err(e)),
        }
    }

    /// The answer is not needed (another call of the same SOAP call failed): the wait
    /// ends as answered, the body unread (its connection is not reused).
    pub fn discard(mut self) {
        let _ = self.end(Ok(()));
    }

    /// Whether the body has been read to its end.
    pub fn done(&self) -> bool {
        self.done
    }

    async fn next_data(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(classify_body(&e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The body ended with `result`: the wait is recorded once.
    fn end<T>(&mut self, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        self.done = true;
        match self.wait.take() {
            Some(w) => w.finish(result),
            None => result,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot set up TLS for the REST client: {0}")]
    Tls(String),
    #[error("the REST base URL is not a URL: {0}")]
    Url(String),
}

/// What a legacy SOAP service answered: its head, and its body as it arrives.
pub struct LegacyAnswer<'t> {
    pub status: u16,
    pub content_type: String,
    pub body: RestBody<'t>,
}

impl UpstreamError {
    /// The metric label of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Unreachable(_) | UpstreamError::Broken(_) => "unreachable",
            UpstreamError::Invalid(_) | UpstreamError::Status(..) => "invalid",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The request did not leave: no connection could be made, or the client is shut down.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The connection failed after the request was handed to it (reset, closed before or
    /// during the answer): the service may have received it and acted on it.
    #[error("connection broken: {0}")]
    Broken(String),
    /// No answer by the deadline. `sent`: the request had been handed to a connection by
    /// then, so the service may have received it.
    #[error("no answer within the timeout")]
    Timeout { sent: bool },
    /// A status other than 2xx without the problem+json the contract gives every refusal
    /// (a proxy's or gateway's page, say). A 5xx of that kind may come after the service
    /// acted on the request (a gateway that timed out waiting for it).
    #[error("unexpected answer: {1}")]
    Status(u16, String),
    #[error("unexpected answer: {0}")]
    Invalid(String),
}

/// One SOAP request's upstream context: its W3C trace (kept from the caller's
/// `traceparent`, or new; a new span id for each upstream call), the instant by which all of
/// its upstream work must be done (the deadline), and the wall time it spent waiting for
/// upstream (the union of its calls' intervals: concurrent calls count once), which the
/// converter's own time is measured without. Each wait is a [`Wait`] guard, so a wait that
/// ends because its future was dropped (the deadline, a client that went away) is counted
/// too.
#[derive(Debug)]
pub struct Trace {
    trace_id: u128,
    start: Instant,
    deadline: Instant,
    in_flight: AtomicU32,
    /// The call's write has been started (`Trace::write_started`).
    write_sent: AtomicBool,
    busy_since_micros: AtomicU64,
    waited_micros: AtomicU64,
}

impl Trace {
    /// Continues the caller's trace if its `traceparent` is valid, or starts one; its
    /// upstream work must be done within `budget` from now.
    pub fn new(traceparent: Option<&str>, budget: Duration) -> Trace {
        // W3C trace context, level 1: version 2 hex (not ff), trace id 32 and parent id 16
        // lower-case hex, neither all zeros, flags 2 hex. Anything else starts a new trace.
        let lower_hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let parsed = traceparent.and_then(|h| {
            let mut it = h.trim().split('-');
            let (version, trace, parent, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
            let valid = lower_hex(version, 2)
                && version != "ff"
                && lower_hex(trace, 32)
                && lower_hex(parent, 16)
                && lower_hex(flags, 2)
                && parent.bytes().any(|b| b != b'0')
                && (version != "00" || it.next().is_none());
            let id = u128::from_str_radix(trace, 16)
                .ok()
                .filter(|id| valid && *id != 0)?;
            Some(id)
        });
        let start = Instant::now();
        Trace {
            trace_id: parsed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u128()),
            start,
            deadline: start + budget,
            in_flight: AtomicU32::new(0),
            write_sent: AtomicBool::new(false),
            busy_since_micros: AtomicU64::new(0),
            waited_micros: AtomicU64::new(0),
        }
    }

    fn now_micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// When the call arrived.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// The call's write is about to be sent: a deadline that passes from now on may leave
    /// its outcome unknown.
    pub fn write_started(&self) {
        self.write_sent.store(true, Ordering::Relaxed);
    }

    /// Whether [`Trace::write_started`] was called.
    pub fn write_sent(&self) -> bool {
        self.write_sent.load(Ordering::Relaxed)
    }

    /// By when all of the call's upstream work must be done.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// An upstream wait starts; it ends when the guard is finished or dropped.
    fn wait<'t>(&'t self, metrics: Option<&'t Metrics>, operation: &'t str) -> Wait<'t> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.busy_since_micros
                .store(self.now_micros(), Ordering::Release);
        }
        Wait {
            trace: self,
            metrics,
            operation,
            start: Instant::now(),
            ended: None,
        }
    }

    /// Wall time spent waiting for upstream so far.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_micros.load(Ordering::Acquire))
    }

    /// The `traceparent` of one upstream call.
    pub fn child(&self) -> String {
        let span = (uuid::Uuid::new_v4().as_u128() as u64).max(1);
        format!("00-{:032x}-{span:016x}-01", self.trace_id)
    }

    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// One upstream wait, owned by a guard (mini-redis's `DbDropGuard` habit): however the
/// future that holds it ends, the wait is added to the trace's upstream time and recorded in
/// the metrics. Finished with a result, it records that result; dropped unfinished, it
/// records `timeout` when the call's deadline has passed (the deadline dropped it) and
/// `cancelled` otherwise (the caller went away, or a sibling call failed first).
struct Wait<'t> {
    trace: &'t Trace,
    metrics: Option<&'t Metrics>,
    operation: &'t str,
    start: Instant,
    /// `Some(kind)` once finished: `None` for success, else the failure's kind.
    ended: Option<Option<&'static str>>,
}

impl Wait<'_> {
    /// The wait ended with `result`; hands it back.
    fn finish<T>(mut self, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        self.ended = Some(result.as_ref().err().map(UpstreamError::kind));
        result
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let trace = self.trace;
        if trace.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let since = trace.busy_since_micros.load(Ordering::Acquire);
            trace
                .waited_micros
                .fetch_add(trace.now_micros().saturating_sub(since), Ordering::AcqRel);
        }
        let kind = match self.ended {
            Some(kind) => kind,
            None if Instant::now() >= trace.deadline => Some("timeout"),
            None => Some("cancelled"),
        };
        if let Some(m) = self.metrics {
            m.record_upstream(self.operation, self.start.elapsed(), kind);
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub base_url: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub codelist_ttl: Duration,
    /// Most calls in flight (so connections open) at once, REST and legacy together; also
    /// the idle connections kept per host and worker thread.
    pub max_connections: usize,
    /// The largest answer read from REST or a legacy service (`max_upstream_bytes`).
    pub max_answer_bytes: usize,
    /// How long an idle connection is kept for reuse (`upstream_idle_timeout_ms`): below the
    /// services' keep-alive timeout.
    pub idle_timeout: Duration,
    /// The TLS client config for https (the converter's own certificate, the CAs it
    /// trusts); absent: no client certificate and the platform's roots.
    pub tls: Option<rustls::ClientConfig>,
}

/// The most of an answer that is held whole to be parsed (a write's answer, a problem, a code
/// list, the record rule 4 reads, a legacy fault, the `/readyz` probe's), when
/// `max_upstream_bytes` is higher. Such answers are a few KiB by the contract. The ceiling
/// alone let each call in flight hold up to 4 MiB: 50 concurrent writes whose 2xx went on
/// streaming peaked at 240 MiB RSS (`tests/upstream_bounds.rs`). This keeps
/// `rest_max_connections` (64) of them under 32 MiB, even as their buffers double. Streamed
/// answers (a read's collections, the legacy answer a read splices) hold a chunk at a time
/// and are bounded by `max_upstream_bytes` alone.
pub const MAX_WHOLE_ANSWER_BYTES: usize = 256 * 1024;

/// An answer over the ceiling: unexpected, as any answer the mapping cannot read (900522;
/// to a write, an unreadable 2xx: 900523).
fn too_large(limit: usize) -> UpstreamError {
    UpstreamError::Invalid(format!("an answer over {limit} bytes"))
}

/// The length an answer's head gives its body (Content-Length), or 0.
fn declared(res: &http::Response<hyper::body::Incoming>) -> u64 {
    http_body::Body::size_hint(res.body()).lower()
}

/// How long a `/readyz` probe's result is reused: a flood of `/readyz` makes at most one
/// probe (one REST connection at most) per this interval.
const READY_FOR: Duration = Duration::from_secs(1);

// The identity and CPR headers as `HeaderName`s built at compile time (a name parsed per
// call cost 5,000 instructions per read). `header_names_match_the_contract` ties them to
// `vos::HDR_*`.
const ORG_TYPE: HeaderName = HeaderName::from_static("x-organisation-type");
const ORG_CODE: HeaderName = HeaderName::from_static("x-organisation-code");
const USER: HeaderName = HeaderName::from_static("x-user-id");
const CPR: HeaderName = HeaderName::from_static("x-cpr");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const SOAP_ACTION: HeaderName = HeaderName::from_static("soapaction");

/// The most a REST or legacy connection buffers per read (hyper's `http1_max_buf_size`).
const READ_BUFFER_BYTES: usize = 16 * 1024;

type HttpClient = Client<TimedConnector, Full<Bytes>>;

/// The connector with one timeout over all of connecting: DNS, TCP and the TLS handshake
/// (hyper-util's own connect timeout covers the TCP connect only). Running out is an I/O
/// `TimedOut`, which `classify` turns into a timeout.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    <HttpsConnector<HttpConnector> as Service<Uri>>::Response,
                    Box<dyn std::error::Error + Send + Sync>,
                >,
            > + Send,
    >,
>;

impl Service<Uri> for TimedConnector {
    type Response = <HttpsConnector<HttpConnector> as Service<Uri>>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting took longer than the connect timeout",
                )
                .into()),
            }
        })
    }
}

/// The REST base URL, split once at start: a call only appends its path and query.
#[derive(Debug)]
struct Base {
    scheme: Scheme,
    authority: Authority,
    /// The base's path without its trailing `/` (often empty).
    prefix: String,
}

/// The converter's HTTP client of REST and the legacy services: hyper-util's pooled client
/// (HTTP/1.1 keep-alive, rustls with the platform's verifier for https), one per worker
/// thread so that a connection's I/O runs on the thread that waits for it.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
    codes: moka::future::Cache<String, Arc<Vec<i64>>>,
    metrics: Option<Arc<Metrics>>,
}

struct Inner {
    base: Base,
    connector: TimedConnector,
    /// The most one SOAP call may wait for REST in all, however many calls it makes; also
    /// each call's own timeout.
    deadline: Duration,
    max_connections: usize,
    /// The largest answer read (`max_upstream_bytes`).
    max_answer: usize,
    idle_timeout: Duration,
    clients: ThreadLocal<HttpClient>,
    /// REST calls in flight: a call holds a permit until its answer is read; so does the
    /// `/readyz` probe.
    permits: Semaphore,
    /// The last `/readyz` probe: when, and whether REST answered. The lock is held during a
    /// probe, so concurrent `/readyz` wait for its result instead of probing too.
    readiness: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// The same for forwards to legacy services, apart, so that a slow legacy service cannot
    /// take the permits REST calls need.
    legacy_permits: Semaphore,
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig) -> Result<Upstream, SetupError> {
        let bad = |why: &str| SetupError::Url(format!("{}: {why}", cfg.base_url));
        let uri: Uri = cfg.base_url.parse().map_err(|e| bad(&format!("{e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(bad("needs http:// or https:// and a host"));
        };
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad("needs http:// or https://"));
        }
        if uri.query().is_some() {
            return Err(bad("a base URL has no query"));
        }
        if authority.as_str().contains('@') {
            return Err(bad(
                "user and password in the URL are not sent; the REST service is called without them",
            ));
        }
        // reqwest, which this client replaced, honoured the proxy variables; this one
        // connects directly. Names only: a proxy URL can hold a password.
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
                tracing::warn!(
                    variable = var,
                    "proxy variable set but not used: the converter connects to REST and legacy services directly"
                );
            }
        }
        let base = Base {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        // The TLS layer below decides the scheme.
        http.enforce_http(false);
        let builder = match &cfg.tls {
            Some(tls) => HttpsConnectorBuilder::new().with_tls_config(tls.clone()),
            None => HttpsConnectorBuilder::new()
                .try_with_platform_verifier()
                .map_err(|e| SetupError::Tls(e.to_string()))?,
        };
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let connector = TimedConnector {
            inner: connector,
            timeout: cfg.connect_timeout,
        };
        let codes = moka::future::Cache::builder()
            .max_capacity(64)
            .time_to_live(cfg.codelist_ttl)
            .build();
        let max_connections = cfg.max_connections.max(1);
        Ok(Upstream {
            inner: Arc::new(Inner {
                base,
                connector,
                deadline: cfg.request_timeout,
                max_connections,
                max_answer: cfg.max_answer_bytes,
                idle_timeout: cfg.idle_timeout,
                clients: ThreadLocal::new(),
                permits: Semaphore::new(max_connections),
                readiness: tokio::sync::Mutex::new(None),
                legacy_permits: Semaphore::new(max_connections),
            }),
            codes,
            metrics: None,
        })
    }

    /// The time a SOAP call may spend on REST in all (the request timeout): the budget of
    /// each call's [`Trace`].
    pub fn budget(&self) -> Duration {
        self.inner.deadline
    }

    /// This worker thread's client (built on first use; the pool and its connections'
    /// tasks live on this thread's runtime).
    ///
    /// A pooled connection the service may be closing, and what hyper does about it (read in
    /// the source of hyper-util 0.1.21 and hyper 1.12, `client/legacy/{client,pool}.rs` and
    /// `proto/h1/{dispatch,conn}.rs`, `client/dispatch.rs`):
    /// - Checkout skips an idle connection whose task has seen it close (`is_open`: not
    ///   poisoned and `SendRequest::is_ready`) or that has been idle longer than
    ///   `pool_idle_timeout` (checked at checkout, `Idle::pop`, not only by the sweep).
    /// - If the service's FIN is already in the socket when the request is dispatched, the
    ///   connection reads the EOF first and writes nothing (`can_write_head` is false once
    ///   reading is closed); the request comes back unsent (`TrySendError::take_message`)
    ///   and hyper-util sends it on another connection (`retry_canceled_requests`, on by
    ///   default, only for a reused connection). Safe: it never left.
    /// - Once hyper has taken the request to write it, a failure returns no request and is
    ///   not retried: a FIN (or reset) that arrives after the request was written, because the
    ///   service closed the idle connection at the moment it was sent, is `Broken` here, and
    ///   for a write 900523 (send it again; creates are idempotent), although the service most
    ///   likely closed without reading it. hyper cannot tell, so it cannot guarantee that such
    ///   a write is retried as not sent. The mitigation is to not reuse a connection the
    ///   service may be closing: `upstream_idle_timeout_ms` (default 4 s) below the services'
    ///   keep-alive (actix: 5 s). A connection's idle time starts here once its answer has
    ///   been read, a little after the service's keep-alive started counting; the margin
    ///   covers that gap and the network's delay.
    fn client(&self) -> &HttpClient {
        let inner = &*self.inner;
        inner.clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(inner.idle_timeout)
                .pool_max_idle_per_host(inner.max_connections)
                // A connection's read buffer grows to hyper's default of ~400 KiB on a
                // large answer and keeps it; an item is at most MAX_ITEM_BYTES anyway and
                // is reassembled by the splitter, so 16 KiB is enough per read.
                .http1_max_buf_size(READ_BUFFER_BYTES)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(inner.connector.clone())
        })
    }

    /// The URI of a path (with query) on the REST service: the base's scheme and authority
    /// (parsed once, at start), its path prefix, then `path_and_query` as mapped (already
    /// percent-encoded).
    fn uri(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        let base = &self.inner.base;
        let mut pq = String::with_capacity(base.prefix.len() + path_and_query.len());
        pq.push_str(&base.prefix);
        pq.push_str(path_and_query);
        Uri::builder()
            .scheme(base.scheme.clone())
            .authority(base.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| UpstreamError::Invalid(format!("{path_and_query} is not a path")))
    }

    /// Records each call's time and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Upstream {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the REST service answers at all (any status below 500 to its base URL), for
    /// `/readyz`. A probe's result is reused for [`READY_FOR`], and concurrent callers wait for
    /// the one probe in progress, so a flood of `/readyz` makes at most one probe a second.
    /// The probe takes a REST permit (`try_acquire`: it never waits), so it opens no
    /// connection beyond `rest_max_connections`; with every permit in use, the last probe's
    /// result stands (none yet: not ready).
    pub async fn ready(&self) -> bool {
        let mut last = self.inner.readiness.lock().await;
        if let Some((at, ready)) = *last
            && at.elapsed() < READY_FOR
        {
            return ready;
        }
        let Ok(permit) = self.inner.permits.try_acquire() else {
            return last.is_some_and(|(_, ready)| ready);
        };
        let ready = self.probe().await;
        drop(permit);
        *last = Some((Instant::now(), ready));
        ready
    }

    /// One probe of the REST base URL within the call timeout: answered below 500, and the
    /// answer read to its end (held whole: at most [`MAX_WHOLE_ANSWER_BYTES`]) so that the
    /// connection can be reused.
    async fn probe(&self) -> bool {
        let Ok(uri) = self.uri("/") else { return false };
        let Ok(req) = Request::get(uri).body(Full::default()) else {
            return false;
        };
        let limit = self.inner.max_answer.min(MAX_WHOLE_ANSWER_BYTES);
        let work = async {
            let res = self.client().request(req).await.ok()?;
            let status = res.status().as_u16();
            if declared(&res) > limit as u64 {
                return None;
            }
            Limited::new(res.into_body(), limit).collect().await.ok()?;
            Some(status)
        };
        let deadline = Instant::now() + self.inner.deadline;
        matches!(tokio::time::timeout_at(deadline.into(), work).await, Ok(Some(status)) if status < 500)
    }

    /// One REST call, its answer read whole (at most [`MAX_WHOLE_ANSWER_BYTES`]).
    pub async fn call(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<RestAnswer, UpstreamError> {
        match self.open(req, who, trace).await? {
            Opened::Problem(answer) => Ok(answer),
            Opened::Body(body) => body.read_whole().await.map(RestAnswer::Ok),
        }
    }

    /// Sends `request` once a permit of `permits` is free, up to its answer's head, by
    /// `deadline`. Nothing is sent once the deadline has passed (`Timeout { sent: false }`);
    /// a deadline that passes after the request was handed to a connection is
    /// `Timeout { sent: true }` (it may have arrived).
    async fn send<'s>(
        &self,
        request: Request<Full<Bytes>>,
        permits: &'s Semaphore,
        deadline: Instant,
    ) -> Result<
        (
            tokio::sync::SemaphorePermit<'s>,
            http::Response<hyper::body::Incoming>,
        ),
        UpstreamError,
    > {
        if Instant::now() >= deadline {
            return Err(UpstreamError::Timeout { sent: false });
        }
        let sending = AtomicBool::new(false);
        let head = async {
            let permit = permits
                .acquire()
                .await
                .map_err(|_| UpstreamError::Unreachable("the client is shut down".into()))?;
            sending.store(true, Ordering::Relaxed);
            let res = self.client().request(request).await.map_err(classify)?;
            Ok((permit, res))
        };
        match tokio::time::timeout_at(deadline.into(), head).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout {
                sent: sending.load(Ordering::Relaxed),
            }),
        }
    }

    /// One REST call, up to its answer's head: a 2xx answer's body to be read as it arrives
    /// (`RestBody::chunk`), or a problem (read whole; problems are small). The call holds
    /// its permit and its [`Wait`] until the body is read to its end or dropped. An answer
    /// whose Content-Length is over its bound is not read: a problem is refused here, a 2xx
    /// body by `RestBody::within_limit` or its first `chunk` (so that a write can tell an
    /// unreadable 2xx).
    pub async fn open<'t>(
        &'t self,
        req: &'t RestRequest,
        who: &Identity,
        trace: &'t Trace,
    ) -> Result<Opened<'t>, UpstreamError> {
        let wait = trace.wait(self.metrics.as_deref(), &req.operation_id);
        let deadline = trace.deadline();
        let sent = match self.rest_request(req, who, trace) {
            Ok(request) => self.send(request, &self.inner.permits, deadline).await,
            Err(e) => Err(e),
        };
        let (permit, res) = match sent {
            Ok(v) => v,
            Err(e) => return wait.finish(Err(e)),
        };
        let status = res.status().as_u16();
        let problem = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/problem+json"));
        let body = RestBody::new(res, self.inner.max_answer, deadline, permit, wait);
        if (200..300).contains(&status) {
            return Ok(Opened::Body(body));
        }
        let bytes = body.read_whole().await?;
        if problem && let Ok(v) = Json::parse(&bytes) {
            let code = v
                .get("fejlkode")
                .and_then(Json::as_i64)
                .and_then(|c| u32::try_from(c).ok());
            if let (Some(fejlkode), Some(text)) = (code, v.get("fejltekst").and_then(Json::as_str))
            {
                return Ok(Opened::Problem(RestAnswer::Problem {
                    status,
                    fejlkode,
                    fejltekst: text.to_owned(),
                }));
            }
        }
        Err(UpstreamError::Status(
            status,
            format!(
                "{} answered {status} without a problem+json fejlkode",
                req.operation_id
            ),
        ))
    }

    fn rest_request(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<Request<Full<Bytes>>, UpstreamError> {
        let invalid = |what: &str| {
            UpstreamError::Invalid(format!(
                "{}: {what} is not a header value",
                req.operation_id
            ))
        };
        let value = |v: &str, what: &str| HeaderValue::from_str(v).map_err(|_| invalid(what));
        let mut r = Request::builder()
            .method(req.method.clone())
            .uri(self.uri(&req.path)?);
        let headers = r.headers_mut().ok_or_else(|| invalid("the request line"))?;
        headers.insert(ORG_TYPE, value(&who.organisation_type, vos::HDR_ORG_TYPE)?);
        headers.insert(ORG_CODE, value(&who.organisation_code, vos::HDR_ORG_CODE)?);
        if let Some(u) = &who.user {
            headers.insert(USER, value(u, vos::HDR_USER)?);
        }
        headers.insert(TRACEPARENT, value(&trace.child(), "traceparent")?);
        for (k, v) in &req.headers {
            let name = if k.eq_ignore_ascii_case(vos::HDR_CPR) {
                CPR
            } else {
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| invalid(k))?
            };
            let mut v = value(v, k)?;
            // A CPR number is kept out of any debug output of the request.
            v.set_sensitive(name == CPR);
            headers.append(name, v);
        }
        let body = match &req.body {
            Some(json) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Full::new(json.clone())
            }
            None => Full::default(),
        };
        r.body(body).map_err(|_| invalid("the request"))
    }

    /// Forwards a SOAP request unchanged to a legacy service (the splice), with the same
    /// deadline and connection bound, up to its answer's head: the status and content type,
    /// and the body to be read as it arrives (`RestBody::chunk`, within
    /// `max_upstream_bytes`; an answer whose Content-Length says more is refused here).
    /// The forward holds its permit and its [`Wait`] until the body is read to its end or
    /// dropped.
    pub async fn open_soap<'t>(
        &'t self,
        url: &str,
        content_type: &str,
        soap_action: Option<&str>,
        body: bytes::Bytes,
        trace: &'t Trace,
    ) -> Result<LegacyAnswer<'t>, UpstreamError> {
        let wait = trace.wait(self.metrics.as_deref(), "legacy");
        let deadline = trace.deadline();
        let request = legacy_request(url, content_type, soap_action, body, trace);
        let sent = match request {
            Ok(request) => {
                self.send(request, &self.inner.legacy_permits, deadline)
                    .await
            }
            Err(e) => Err(e),
        };
        let (permit, res) = match sent {
            Ok(v) => v,
            Err(e) => return wait.finish(Err(e)),
        };
        if let Some(coding) = res.headers().get(header::CONTENT_ENCODING)
            && !coding.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            // Asked for identity; compressed bytes can be neither spliced nor passed on
            // (the caller would get them without their Content-Encoding).
            return wait.finish(Err(UpstreamError::Invalid(format!(
                "the legacy service answered {} with Content-Encoding {}",
                res.status().as_u16(),
                String::from_utf8_lossy(coding.as_bytes())
            ))));
        }
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/xml; charset=utf-8")
            .to_owned();
        let status = res.status().as_u16();
        let body = RestBody::new(res, self.inner.max_answer, deadline, permit, wait);
        Ok(LegacyAnswer {
            status,
            content_type,
            body: body.within_limit()?,
        })
    }

    /// The codes of a REST code list, cached for `codelist_ttl`.
    pub async fn code_list(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<Arc<Vec<i64>>, UpstreamError> {
        self.codes
            .try_get_with(req.operation_id.clone(), async {
                match self.call(req, who, trace).await? {
                    RestAnswer::Ok(bytes) => {
                        let v = RestAnswer::json(&req.operation_id, &bytes)?;
                        let codes = v.get("koder").and_then(Json::as_array).ok_or_else(|| {
                            UpstreamError::Invalid("code list without koder".into())
                        })?;
                        Ok(Arc::new(
                            codes
                                .iter()
                                .filter_map(|c| c.get("kode").and_then(Json::as_i64))
                                .collect(),
                        ))
                    }
                    RestAnswer::Problem { fejlkode, .. } => Err(UpstreamError::Invalid(format!(
                        "code list refused with {fejlkode}"
                    ))),
                }
            })
            .await
            .map_err(|e: Arc<UpstreamError>| (*e).clone())
    }
}

/// The forward of a SOAP request to a legacy service: its bytes unchanged, with its content
/// type and SOAPAction, a child traceparent, and `Accept-Encoding: identity`.
fn legacy_request(
    url: &str,
    content_type: &str,
    soap_action: Option<&str>,
    body: Bytes,
    trace: &Trace,
) -> Result<Request<Full<Bytes>>, UpstreamError> {
    let invalid = |what: &str| UpstreamError::Invalid(format!("legacy request: {what}"));
    let uri: Uri = url.parse().map_err(|_| invalid("the URL"))?;
    let mut r = Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).map_err(|_| invalid("Content-Type"))?,
        )
        // The splice reads the answer's bytes: none compressed.
        .header(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        )
        .header(
            TRACEPARENT,
            HeaderValue::from_str(&trace.child()).map_err(|_| invalid("traceparent"))?,
        );
    if let Some(a) = soap_action {
        r = r.header(
            SOAP_ACTION,
            HeaderValue::from_str(a).map_err(|_| invalid("SOAPAction"))?,
        );
    }
    r.body(Full::new(body)).map_err(|_| invalid("the request"))
}

/// Whether an error or any of its causes is an I/O timeout (the connect timeout).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error and its causes in one line (none of hyper's errors names the URL).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cur = err.source();
    }
    text
}

/// A failed exchange: a failed connect (its timeout included) means the request never
/// left; any other failure came after it was handed to a connection, so it may have
/// arrived (hyper-util retries by itself a request a pooled connection closed before
/// taking it).
fn classify(e: hyper_util::client::legacy::Error) -> UpstreamError {
    if e.is_connect() {
        if timed_out(&e) {
            UpstreamError::Timeout { sent: false }
        } else {
            UpstreamError::Unreachable("connection refused or failed".into())
        }
    } else if timed_out(&e) {
        UpstreamError::Timeout { sent: true }
    } else {
        UpstreamError::Broken(chain(&e))
    }
}

/// A failure reading an answer's body: the request had arrived.
fn classify_body(e: &(dyn std::error::Error + Send + Sync + 'static)) -> UpstreamError {
    if timed_out(e) {
        UpstreamError::Timeout { sent: true }
    } else {
        UpstreamError::Broken(format!("reading the answer: {}", chain(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_the_contract() {
        for (name, contract) in [
            (ORG_TYPE, vos::HDR_ORG_TYPE),
            (ORG_CODE, vos::HDR_ORG_CODE),
            (USER, vos::HDR_USER),
            (CPR, vos::HDR_CPR),
        ] {
            assert_eq!(name, HeaderName::from_bytes(contract.as_bytes()).unwrap());
        }
    }

    fn upstream(base: &str) -> Result<Upstream, SetupError> {
        Upstream::new(&UpstreamConfig {
            base_url: base.into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            codelist_ttl: Duration::from_secs(1),
            max_connections: 4,
            max_answer_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(4),
            tls: None,
        })
    }

    #[test]
    fn the_base_url_is_split_once_and_paths_are_appended() {
        let u = upstream("https://rest.example:8443/vos/").unwrap();
        assert_eq!(
            u.uri("/personvisitering/v1/status?kunAktuelle=true")
                .unwrap()
                .to_string(),
            "https://rest.example:8443/vos/personvisitering/v1/status?kunAktuelle=true"
        );
        let u = upstream("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            u.uri("/personvisitering/v1/kontaktgrupper")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9000/personvisitering/v1/kontaktgrupper"
        );
        assert!(u.uri("/a path with spaces").is_err());
        for bad in ["ftp://host/", "not a url", "/relative", "http://host/?q=1"] {
            assert!(upstream(bad).is_err(), "{bad}");
        }
    }

    /// A REST stand-in that answers every request after `delay` on keep-alive
    /// connections, counting the connections open at once.
    async fn slow_rest(delay: Duration) -> (String, Arc<AtomicU32>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (open, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let seen = most.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (open, most) = (open.clone(), most.clone());
                most.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {
                        tokio::time::sleep(delay).await;
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn calls_beyond_the_connection_bound_wait_for_a_free_connection() {
        let (url, most) = slow_rest(Duration::from_millis(50)).await;
        let u = upstream(&url).unwrap();
        let who = Identity {
            organisation_type: "5".into(),
            organisation_code: "STAR".into(),
            user: None,
        };
        let trace = Trace::new(None, Duration::from_secs(5));
        let req = RestRequest {
            operation_id: "GetStatus".into(),
            method: http::Method::GET,
            path: "/personvisitering/v1/status".into(),
            headers: vec![("X-Cpr".into(), "0101010101".into())],
            body: None,
        };
        let calls = (0..12).map(|_| u.call(&req, &who, &trace));
        for answer in futures_util::future::join_all(calls).await {
            assert_eq!(answer.unwrap(), RestAnswer::Ok(Bytes::from_static(b"{}")));
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=4).contains(&most),
            "{most} connections at once (bound 4)"
        );
    }

    #[tokio::test]
    async fn the_connect_timeout_covers_a_tls_handshake_that_never_ends() {
        // Accepts TCP and never says a word: the TLS handshake hangs.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let u = Upstream::new(&UpstreamConfig {
            base_url: url,
            connect_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_secs(20),
            codelist_ttl: Duration::from_secs(1),
            max_connections: 4,
            max_answer_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(4),
            tls: None,
        })
        .unwrap();
        let who = Identity {
            organisation_type: "5".into(),
            organisation_code: "STAR".into(),
            user: None,
        };
        let req = RestRequest {
            operation_id: "GetStatus".into(),
            method: http::Method::GET,
            path: "/personvisitering/v1/status".into(),
            headers: Vec::new(),
            body: None,
        };
        let start = std::time::Instant::now();
        let answer = u
            .call(&req, &who, &Trace::new(None, Duration::from_secs(5)))
            .await;
        assert!(
            matches!(answer, Err(UpstreamError::Timeout { sent: false })),
            "{answer:?}"
        );
        // The connect timeout (0.2 s), far from the call timeout (20 s).
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        held.abort();
    }

    fn who() -> Identity {
        Identity {
            organisation_type: "5".into(),
            organisation_code: "STAR".into(),
            user: None,
        }
    }

    fn get(path: &str) -> RestRequest {
        RestRequest {
            operation_id: "GetStatus".into(),
            method: http::Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn bounded(base: &str, max_answer_bytes: usize, idle_timeout: Duration) -> Upstream {
        Upstream::new(&UpstreamConfig {
            base_url: base.into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            codelist_ttl: Duration::from_secs(1),
            max_connections: 4,
            max_answer_bytes,
            idle_timeout,
            tls: None,
        })
        .unwrap()
    }

    /// A raw HTTP/1.1 stand-in with keep-alive, counting connections and requests. `/big`
    /// answers 200 with a Content-Length of 100 MB, `/big-problem` the same as a 404
    /// problem, `/endless` 200 chunked without a length; each then writes its 100 MB until
    /// the client goes away (`most_written`: the most body bytes one of them wrote). Anything
    /// else is a small 200. With `idle_close`, a connection idle that long is closed.
    struct StandIn {
        url: String,
        connections: Arc<AtomicU32>,
        requests: Arc<AtomicU32>,
        most_written: Arc<AtomicU64>,
    }

    const HUNDRED_MB: u64 = 100_000_000;

    async fn stand_in(idle_close: Option<Duration>) -> StandIn {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = StandIn {
            url: format!("http://{}", listener.local_addr().unwrap()),
            connections: Arc::new(AtomicU32::new(0)),
            requests: Arc::new(AtomicU32::new(0)),
            most_written: Arc::new(AtomicU64::new(0)),
        };
        let (connections, requests, most) = (
            s.connections.clone(),
            s.requests.clone(),
            s.most_written.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let (requests, most) = (requests.clone(), most.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request: its head, then its Content-Length of body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            let read = conn.read(&mut chunk);
                            let n = match (idle_close, buf.is_empty()) {
                                (Some(idle), true) => {
                                    match tokio::time::timeout(idle, read).await {
                                        Ok(r) => r,
                                        Err(_) => return,
                                    }
                                }
                                _ => read.await,
                            };
                            match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..head_end + length);
                        requests.fetch_add(1, Ordering::SeqCst);
                        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                        let (head, chunked) = match path.as_str() {
                            "/big" => (
                                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {HUNDRED_MB}\r\n\r\n"),
                                false,
                            ),
                            "/big-problem" => (
                                format!("HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: {HUNDRED_MB}\r\n\r\n"),
                                false,
                            ),
                            "/endless" => (
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned(),
                                true,
                            ),
                            _ => {
                                let small = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                                if conn.write_all(small.as_bytes()).await.is_err() {
                                    return;
                                }
                                continue;
                            }
                        };
                        if conn.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let piece = vec![b'a'; 64 * 1024];
                        let framed = [
                            format!("{:x}\r\n", piece.len()).into_bytes(),
                            piece.clone(),
                            b"\r\n".to_vec(),
                        ]
                        .concat();
                        let mut written = 0u64;
                        while written < HUNDRED_MB {
                            let out = if chunked { &framed } else { &piece };
                            if conn.write_all(out).await.is_err() {
                                break;
                            }
                            written += piece.len() as u64;
                            most.fetch_max(written, Ordering::SeqCst);
                        }
                        return;
                    }
                });
            }
        });
        s
    }

    #[tokio::test]
    async fn an_answer_over_the_ceiling_is_refused_at_its_head_or_where_it_passes_it() {
        let s = stand_in(None).await;
        let u = bounded(&s.url, 65_536, Duration::from_secs(4));
        let trace = Trace::new(None, Duration::from_secs(10));
        let over = |r: &Result<RestAnswer, UpstreamError>| matches!(r, Err(UpstreamError::Invalid(m)) if m == "an answer over 65536 bytes");
        for path in ["/big", "/big-problem", "/endless"] {
            let start = Instant::now();
            let r = u.call(&get(path), &who(), &trace).await;
            assert!(over(&r), "{path}: {r:?}");
            assert!(start.elapsed() < Duration::from_secs(5), "{path}");
        }
        // A 2xx said to be too long comes as a body (a write must know it had a 2xx), which
        // is refused before a byte of it is read.
        match u.open(&get("/big"), &who(), &trace).await {
            Ok(Opened::Body(b)) => {
                let r = b.within_limit().map(|_| ());
                assert!(
                    matches!(&r, Err(UpstreamError::Invalid(m)) if m.contains("over 65536")),
                    "{r:?}"
                );
            }
            Ok(Opened::Problem(p)) => panic!("{p:?}"),
            Err(e) => panic!("{e:?}"),
        }
        // A legacy answer said to be too long is refused at its head.
        let legacy = u
            .open_soap(
                &format!("{}/big", s.url),
                "text/xml; charset=utf-8",
                None,
                Bytes::new(),
                &trace,
            )
            .await;
        assert!(
            matches!(&legacy, Err(UpstreamError::Invalid(m)) if m.contains("over 65536")),
            "{:?}",
            legacy.as_ref().map(|l| l.status)
        );
        // Small answers still pass.
        assert_eq!(
            u.call(&get("/small"), &who(), &trace).await.unwrap(),
            RestAnswer::Ok(Bytes::from_static(b"{}"))
        );
        // Nobody read the 100 MB: each answer stopped when the client went away (what one
        // wrote is at most the ceiling plus the sockets' buffers, up to 36 MiB here).
        let most = s.most_written.load(Ordering::SeqCst);
        assert!(most < HUNDRED_MB / 2, "{most} bytes written of one answer");
    }

    #[tokio::test]
    async fn an_answer_held_whole_is_bounded_lower_than_a_streamed_one() {
        let s = stand_in(None).await;
        let ceiling = 4 * 1024 * 1024;
        let u = bounded(&s.url, ceiling, Duration::from_secs(4));
        let trace = Trace::new(None, Duration::from_secs(10));
        let r = u.call(&get("/endless"), &who(), &trace).await;
        assert!(
            matches!(&r, Err(UpstreamError::Invalid(m)) if *m == format!("an answer over {MAX_WHOLE_ANSWER_BYTES} bytes")),
            "{r:?}"
        );
        let endless = get("/endless");
        let Ok(Opened::Body(mut body)) = u.open(&endless, &who(), &trace).await else {
            panic!("no 2xx body");
        };
        let mut read = 0;
        let r = loop {
            match body.chunk().await {
                Ok(Some(c)) => read += c.len(),
                other => break other,
            }
        };
        assert!(
            matches!(&r, Err(UpstreamError::Invalid(m)) if *m == format!("an answer over {ceiling} bytes")),
            "{r:?}"
        );
        assert!(read > MAX_WHOLE_ANSWER_BYTES && read <= ceiling, "{read}");
    }

    #[tokio::test]
    async fn readiness_probes_at_most_once_a_second_and_takes_a_permit() {
        let s = stand_in(None).await;
        let u = bounded(&s.url, 65_536, Duration::from_secs(4));
        // Nothing known yet and every permit in use: not ready, and no connection opened.
        let held = u.inner.permits.acquire_many(4).await.unwrap();
        assert!(!u.ready().await);
        assert_eq!(s.connections.load(Ordering::SeqCst), 0);
        drop(held);
        // A flood: one probe.
        let all = futures_util::future::join_all((0..200).map(|_| u.ready())).await;
        assert!(all.iter().all(|r| *r));
        assert_eq!(s.requests.load(Ordering::SeqCst), 1);
        // Saturated once the result is old: the last probe's result stands, nothing is sent.
        let held = u.inner.permits.acquire_many(4).await.unwrap();
        tokio::time::sleep(READY_FOR + Duration::from_millis(100)).await;
        assert!(u.ready().await);
        assert_eq!(s.requests.load(Ordering::SeqCst), 1);
        drop(held);
        assert!(u.ready().await);
        assert_eq!(s.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_is_not_reused_after_the_idle_timeout() {
        let s = stand_in(None).await;
        let u = bounded(&s.url, 65_536, Duration::from_millis(200));
        let trace = Trace::new(None, Duration::from_secs(10));
        u.call(&get("/small"), &who(), &trace).await.unwrap();
        u.call(&get("/small"), &who(), &trace).await.unwrap();
        assert_eq!(
            s.connections.load(Ordering::SeqCst),
            1,
            "reused while fresh"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        u.call(&get("/small"), &who(), &trace).await.unwrap();
        assert_eq!(
            s.connections.load(Ordering::SeqCst),
            2,
            "a new one once idle"
        );
    }

    /// hyper's side of the race `Upstream::client` describes: the service closed the idle
    /// connection (its FIN has arrived) before the next request; the request goes on a new
    /// connection, once, and succeeds. (The other side, a FIN that arrives after the request
    /// was written, cannot be made safe here; the idle timeout avoids it.)
    #[tokio::test]
    async fn a_connection_the_service_closed_while_idle_is_not_used() {
        let s = stand_in(Some(Duration::from_millis(100))).await;
        let u = bounded(&s.url, 65_536, Duration::from_secs(60));
        let trace = Trace::new(None, Duration::from_secs(10));
        let write = RestRequest {
            operation_id: "CreateKontaktgruppe".into(),
            method: http::Method::POST,
            path: "/small".into(),
            headers: Vec::new(),
            body: Some(Bytes::from_static(b"{\"a\":1}")),
        };
        u.call(&write, &who(), &trace).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        u.call(&write, &who(), &trace).await.unwrap();
        assert_eq!(s.requests.load(Ordering::SeqCst), 2, "each write sent once");
        assert_eq!(s.connections.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn traceparent_keeps_the_callers_trace_and_makes_new_spans() {
        let t = Trace::new(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Duration::from_secs(5),
        );
        let a = t.child();
        assert!(a.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{a}");
        assert_ne!(a, t.child());
        assert_eq!(a.len(), 55);
        for bad in [
            "garbage",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-zzzzzzzzzzzzzzzz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_ne!(
                Trace::new(Some(bad), Duration::from_secs(5)).trace_id(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
        }
        let fresh = Trace::new(Some("garbage"), Duration::from_secs(5));
        assert_eq!(fresh.child().len(), 55);
        assert_ne!(fresh.trace_id(), "00000000000000000000000000000000");
    }
}
