//! The converter's client of VisiteringOgStatus REST: one pooled reqwest client (keep-alive,
//! connect and request timeouts), the caller's identity as headers, a W3C `traceparent` on
//! every call, and the REST code lists cached for a configured time. Nothing is retried here:
//! a write sent twice could register twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

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
    pub method: reqwest::Method,
    /// Path and query, e.g. `/personvisitering/v1/kontaktgrupper/<id>`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// What REST answered.
#[derive(Debug, Clone, PartialEq)]
pub enum RestAnswer {
    /// 2xx, with the JSON body (Null when there is none).
    Ok(Value),
    /// A problem+json with the catalogue's members.
    Problem {
        status: u16,
        fejlkode: u32,
        fejltekst: String,
    },
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot build the REST client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("the REST base URL is not a URL: {0}")]
    Url(String),
}

/// What a legacy SOAP service answered.
#[derive(Debug, Clone)]
pub struct LegacyAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: bytes::Bytes,
}

impl UpstreamError {
    /// The metric label of the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout => "timeout",
            UpstreamError::Unreachable(_) => "unreachable",
            UpstreamError::Invalid(_) => "invalid",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within the timeout")]
    Timeout,
    #[error("unexpected answer: {0}")]
    Invalid(String),
}

/// One SOAP request's upstream context: its W3C trace (kept from the caller's
/// `traceparent`, or new; a new span id for each upstream call), and the wall time it spent
/// waiting for upstream (the union of its calls' intervals: concurrent calls count once),
/// which the converter's own time is measured without.
#[derive(Debug)]
pub struct Trace {
    trace_id: u128,
    start: std::time::Instant,
    in_flight: AtomicU32,
    busy_since_micros: AtomicU64,
    waited_micros: AtomicU64,
}

impl Trace {
    /// Continues the caller's trace if its `traceparent` is valid, or starts one.
    pub fn from_header(traceparent: Option<&str>) -> Trace {
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
        Trace {
            trace_id: parsed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u128()),
            start: std::time::Instant::now(),
            in_flight: AtomicU32::new(0),
            busy_since_micros: AtomicU64::new(0),
            waited_micros: AtomicU64::new(0),
        }
    }

    fn now_micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// An upstream call starts.
    fn begin(&self) {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.busy_since_micros
                .store(self.now_micros(), Ordering::Release);
        }
    }

    /// An upstream call ends.
    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let since = self.busy_since_micros.load(Ordering::Acquire);
            self.waited_micros
                .fetch_add(self.now_micros().saturating_sub(since), Ordering::AcqRel);
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

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub base_url: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub codelist_ttl: Duration,
}

#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    base_url: reqwest::Url,
    /// The most one SOAP call may wait for REST in all, however many calls it makes.
    deadline: Duration,
    codes: moka::future::Cache<String, Arc<Vec<i64>>>,
    metrics: Option<Arc<Metrics>>,
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig) -> Result<Upstream, SetupError> {
        let base_url = reqwest::Url::parse(cfg.base_url.trim_end_matches('/'))
            .map_err(|e| SetupError::Url(format!("{}: {e}", cfg.base_url)))?;
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // REST answers; it does not redirect. Without the policy no request is cloned
            // and tracked for a redirect that never comes.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let codes = moka::future::Cache::builder()
            .max_capacity(64)
            .time_to_live(cfg.codelist_ttl)
            .build();
        Ok(Upstream {
            client,
            base_url,
            deadline: cfg.request_timeout,
            codes,
            metrics: None,
        })
    }

    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    /// The time a SOAP call may spend on REST in all (the request timeout).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The URL of a path (with query) on the REST service: the base is parsed once, at start;
    /// a call only sets path and query (no host parsing on the hot path).
    fn url(&self, path_and_query: &str) -> reqwest::Url {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let mut url = self.base_url.clone();
        let prefix = url.path().trim_end_matches('/');
        let full = if prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{prefix}{path}")
        };
        url.set_path(&full);
        url.set_query(query);
        url
    }

    /// Records each call's time and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Upstream {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the REST service answers at all (any status below 500 to its base URL).
    pub async fn probe(&self) -> bool {
        match self.client.get(self.url("/")).send().await {
            Ok(res) => res.status().as_u16() < 500,
            Err(_) => false,
        }
    }

    pub async fn call(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<RestAnswer, UpstreamError> {
        let start = std::time::Instant::now();
        trace.begin();
        let result = self.call_once(req, who, trace).await;
        trace.end();
        if let Some(m) = &self.metrics {
            let kind = result.as_ref().err().map(UpstreamError::kind);
            m.record_upstream(&req.operation_id, start.elapsed(), kind);
        }
        result
    }

    async fn call_once(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<RestAnswer, UpstreamError> {
        let mut r = self
            .client
            .request(req.method.clone(), self.url(&req.path))
            .header(vos::HDR_ORG_TYPE, &who.organisation_type)
            .header(vos::HDR_ORG_CODE, &who.organisation_code)
            .header("traceparent", trace.child());
        if let Some(u) = &who.user {
            r = r.header(vos::HDR_USER, u);
        }
        for (k, v) in &req.headers {
            r = r.header(k, v);
        }
        if let Some(body) = &req.body {
            r = r.json(body);
        }
        let res = r.send().await.map_err(classify)?;
        let status = res.status();
        let problem = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/problem+json"));
        let bytes = res.bytes().await.map_err(classify)?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(RestAnswer::Ok(Value::Null));
            }
            return serde_json::from_slice(&bytes)
                .map(RestAnswer::Ok)
                .map_err(|_| {
                    UpstreamError::Invalid(format!(
                        "{} answered {status} with invalid JSON",
                        req.operation_id
                    ))
                });
        }
        if problem && let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let code = v["fejlkode"].as_u64().and_then(|c| u32::try_from(c).ok());
            if let (Some(fejlkode), Some(text)) = (code, v["fejltekst"].as_str()) {
                return Ok(RestAnswer::Problem {
                    status: status.as_u16(),
                    fejlkode,
                    fejltekst: text.to_owned(),
                });
            }
        }
        Err(UpstreamError::Invalid(format!(
            "{} answered {status} without a problem+json fejlkode",
            req.operation_id
        )))
    }

    /// Forwards a SOAP request unchanged to a legacy service (the splice), with the same
    /// timeouts; the answer comes back as it was.
    pub async fn forward_soap(
        &self,
        url: &str,
        content_type: &str,
        soap_action: Option<&str>,
        body: bytes::Bytes,
        trace: &Trace,
    ) -> Result<LegacyAnswer, UpstreamError> {
        let start = std::time::Instant::now();
        trace.begin();
        let result = async {
            let mut r = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header("traceparent", trace.child());
            if let Some(a) = soap_action {
                r = r.header("SOAPAction", a);
            }
            let res = r.body(body).send().await.map_err(classify)?;
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/xml; charset=utf-8")
                .to_owned();
            let body = res.bytes().await.map_err(classify)?;
            Ok(LegacyAnswer {
                status,
                content_type,
                body,
            })
        }
        .await;
        trace.end();
        if let Some(m) = &self.metrics {
            let kind = result.as_ref().err().map(UpstreamError::kind);
            m.record_upstream("legacy", start.elapsed(), kind);
        }
        result
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
                    RestAnswer::Ok(v) => {
                        let codes = v["koder"].as_array().ok_or_else(|| {
                            UpstreamError::Invalid("code list without koder".into())
                        })?;
                        Ok(Arc::new(
                            codes.iter().filter_map(|c| c["kode"].as_i64()).collect(),
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

fn classify(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else if e.is_connect() {
        UpstreamError::Unreachable("connection refused or failed".into())
    } else {
        // No URL in the message: a URL could carry a query; ours never carry a CPR, but the
        // log should not depend on that.
        UpstreamError::Unreachable(e.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_keeps_the_callers_trace_and_makes_new_spans() {
        let t = Trace::from_header(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
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
                Trace::from_header(Some(bad)).trace_id(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
        }
        let fresh = Trace::from_header(Some("garbage"));
        assert_eq!(fresh.child().len(), 55);
        assert_ne!(fresh.trace_id(), "00000000000000000000000000000000");
    }
}
