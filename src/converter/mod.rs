//! One SOAP call's path through the converter, as named phases:
//!
//! `decode_envelope → Call::new → map_request → call_upstream → map_response → encode`
//!
//! The facts of a call are found once, at the front ([`Arrival`]) and when the envelope is
//! read ([`Call`]), and handed to every phase. The phases themselves are the sans-IO
//! [`core`] (plain functions over the call and the plan); this module is its driver: it
//! makes the REST calls and the legacy forward the core asks for, under one deadline, and
//! records the call ([`record`]). Errors become faults in exactly one place,
//! [`fault::fault_for`].
//!
//! - `call`: [`Arrival`] and [`Call`];
//! - `request`: REST requests from a call's inputs (and the id derived from a MessageID);
//! - `answer`: REST answers to SOAP parts;
//! - `core`: the steps of a registration and of a read, and the bytes of the answer;
//! - `downstream`: where the answer goes: whole, or (a large read) streamed in chunks;
//! - `shadow`: the shadow compare of legacy and REST collections;
//! - `fault`: `Failure` and `fault_for`;
//! - `record`: the log line, the metrics and the migration usage of a call.

pub mod answer;
pub mod call;
pub mod core;
pub mod downstream;
pub mod fault;
pub mod record;
pub mod request;
pub mod shadow;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::cutover::Cutover;
use crate::door::Door;
use crate::mapping::{Behaviour, CallPlan, Plan, ReadPlan};
use crate::observe::metrics::Metrics;
use crate::observe::usage::Usage;
use crate::soap::envelope::{Limits, decode_envelope};
use crate::upstream::{
    Identity, Opened, RestAnswer, RestBody, RestRequest, Trace, Upstream, UpstreamError,
};

pub use self::call::{Arrival, Call};
pub use self::core::{Answer, Outcome, StreamEnd};
pub use self::downstream::{Downstream, Gone, Head, Piece};
pub use self::fault::Failure;
pub use self::request::derived_id;

/// How reads treat the legacy services.
#[derive(Debug, Clone, Default)]
pub struct Legacy {
    /// Service name (e.g. `PersonStatusService`) → URL of the legacy SOAP endpoint.
    pub urls: HashMap<String, String>,
    /// Before the cutover, compare the legacy collections with the REST-derived ones.
    pub shadow_compare: bool,
}

/// The converter's shared state: the compiled plan, the upstream client, the cutover and
/// the legacy services.
#[derive(Clone)]
pub struct Converter {
    pub plan: Arc<Plan>,
    pub upstream: Upstream,
    pub limits: Limits,
    pub cutover: Arc<Cutover>,
    pub legacy: Arc<Legacy>,
    pub metrics: Arc<Metrics>,
    pub usage: Arc<Usage>,
    /// Who may call for whom: the identity mode and the agreements.
    pub door: Arc<Door>,
}

impl Converter {
    /// A converter whose callers `door` decides, with the default cutover
    /// (`config::DEFAULT_CUTOVER`), no legacy services and usage kept in memory only.
    /// `app::app` is the one place that builds it from a configuration.
    pub fn new(plan: Arc<Plan>, upstream: Upstream, limits: Limits, door: Arc<Door>) -> Converter {
        let metrics = Arc::new(Metrics::new());
        Converter {
            plan,
            upstream: upstream.with_metrics(metrics.clone()),
            limits,
            metrics,
            usage: Arc::new(Usage::in_memory()),
            cutover: Arc::new(Cutover::new(crate::config::default_cutover())),
            legacy: Arc::new(Legacy::default()),
            door,
        }
    }

    pub fn with_cutover(mut self, cutover: Cutover) -> Converter {
        self.cutover = Arc::new(cutover);
        self
    }

    pub fn with_legacy(mut self, legacy: Legacy) -> Converter {
        self.legacy = Arc::new(legacy);
        self
    }

    /// Migration usage kept (and persisted) by `usage`.
    pub fn with_usage(mut self, usage: Usage) -> Converter {
        self.usage = Arc::new(usage);
        self
    }
}

/// How a call was answered.
#[derive(Debug)]
pub enum Reply {
    /// Not sent yet: the whole answer.
    Whole(Outcome),
    /// Sent to the `Downstream` as it was written (a large read).
    Streamed(core::StreamEnd<u32>),
}

/// Why a streamed read stopped.
enum Stop {
    Failed(Failure),
    /// The caller went away.
    Gone,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Failed(f)
    }
}

impl From<Gone> for Stop {
    fn from(_: Gone) -> Stop {
        Stop::Gone
    }
}

impl Converter {
    /// A new call's upstream context: its trace (the caller's `traceparent`, if valid) and
    /// its deadline, `upstream_timeout_ms` from now.
    pub fn trace(&self, traceparent: Option<&str>) -> Trace {
        Trace::new(traceparent, self.upstream.budget())
    }

    /// Converts one SOAP request into its answer, and records it. A large read streams its
    /// answer to `down`; every other answer is returned whole.
    pub async fn convert(
        &self,
        arrival: &Arrival<'_>,
        body: Bytes,
        down: &mut Downstream,
    ) -> Reply {
        match self.begin(arrival, &body, jiff::Timestamp::now()) {
            Ok(call) => {
                let mut pending = record::Pending::new(self, arrival, Some(&call));
                let reply = self.answer(&call, body, down).await;
                pending.done(&reply);
                reply
            }
            Err(refused) => {
                self.record(arrival, None, refused.status, refused.fault_code);
                Reply::Whole(refused)
            }
        }
    }

    /// The call a request's body makes (no IO; `now` for the cutover), or the fault that
    /// refuses it: a content type that is not SOAP's, an envelope that cannot be read.
    pub fn begin<'a>(
        &self,
        arrival: &'a Arrival<'a>,
        body: &[u8],
        now: jiff::Timestamp,
    ) -> Result<Call<'a>, Outcome> {
        let (version, action) = arrival
            .version
            .map_err(|fejl| core::refusal(arrival.answer_version(), 415, fejl, None))?;
        let env = decode_envelope(body, version, action, arrival.service, self.limits)
            .map_err(|e| core::fault(version, &Failure::Soap(e), None))?;
        Ok(Call::new(arrival, env, &self.door, &self.cutover, now))
    }

    /// A request refused before it could be read (its body over the limit, or cut off):
    /// answered, logged and counted like every other.
    pub fn refuse(
        &self,
        arrival: &Arrival<'_>,
        status: u16,
        fejl: crate::catalog::Fejl,
        detail: Option<String>,
    ) -> Outcome {
        let outcome = core::refusal(arrival.answer_version(), status, fejl, detail);
        self.record(arrival, None, outcome.status, outcome.fault_code);
        outcome
    }

    /// The answer to a decoded call: its exchange under the call's deadline, encoded.
    async fn answer(&self, call: &Call<'_>, body: Bytes, down: &mut Downstream) -> Reply {
        let exchange = async {
            match &call.op.behaviour {
                // Answered whoever asks: it calls nothing and tells what to use instead.
                Behaviour::Retired { replacement } => Err(Failure::Own(
                    crate::catalog::Fejl::MetodeUdgaaet,
                    Some(replacement.clone()),
                )),
                Behaviour::Call(plan) => self.register(call, plan).await,
                Behaviour::Read(plan) if self.legacy.urls.contains_key(&call.service().name) => {
                    self.read_spliced(call, plan, body).await
                }
                Behaviour::Read(plan) => self.read(call, plan, down).await,
            }
        };
        // One deadline for all of the call's upstream work (code list, reads, write, legacy),
        // so the caller gets its fault within upstream_timeout_ms, not a multiple of it. Each
        // upstream wait records itself (`upstream::Wait`), also when this drops it.
        let deadline = call.trace().deadline();
        let result = match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Upstream(UpstreamError::Timeout)),
        };
        if let Err(failure) = &result {
            self.note_failure(call, failure);
        }
        match result {
            Ok(Answer::Streamed(end)) => Reply::Streamed(end.map(|f| {
                self.note_failure(call, &f);
                fault::fault_for(call.version, &f, None).1
            })),
            other => Reply::Whole(core::encode(call, other)),
        }
    }

    /// Counts an invalid REST answer, and logs an upstream failure.
    fn note_failure(&self, call: &Call<'_>, failure: &Failure) {
        if let Failure::Answer {
            operation_id,
            error,
        } = failure
        {
            self.metrics
                .count_upstream_error(operation_id, error.kind());
        }
        if let Some(e) = failure.upstream() {
            tracing::warn!(operation = %call.op.name, error = %e, "upstream failure");
        }
    }

    /// One REST call of `call`, its problem answers as failures.
    async fn call_upstream(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<Bytes, Failure> {
        match self.upstream.call(req, who, trace).await {
            Ok(RestAnswer::Ok(v)) => Ok(v),
            Ok(RestAnswer::Problem {
                status,
                fejlkode,
                fejltekst,
            }) => Err(Failure::Rest {
                status,
                fejlkode,
                fejltekst,
            }),
            Err(e) => Err(Failure::Upstream(e)),
        }
    }

    /// A registration: code lists (cached; if a list cannot be had, REST judges the code
    /// itself), the read of rule 4, then the write, one after the other.
    async fn register<'p>(
        &self,
        call: &Call<'p>,
        plan: &'p CallPlan,
    ) -> Result<Answer<'p>, Failure> {
        let who = call.who()?;
        let trace = call.trace();
        let reg = core::Registration::new(call, plan, who)?;
        for check in reg.code_checks(&self.plan.code_lists) {
            match self.upstream.code_list(&check.request, who, trace).await {
                Ok(known) => check.judge(&known)?,
                Err(e) => {
                    tracing::warn!(list = %check.list, error = %e, "code list unavailable; REST will judge the code")
                }
            }
        }
        if let Some(req) = reg.unchanged_request() {
            let current = self.call_upstream(&req, who, trace).await?;
            reg.check_unchanged(&current)?;
        }
        let answer = self.call_upstream(&reg.request(), who, trace).await?;
        reg.response(&answer)
    }

    /// A read without a legacy service: one REST call per collection (none after the
    /// cutover), all opened concurrently; once every head is in (a problem can still be a
    /// fault), the answer is written collection by collection as REST sends it, and
    /// streams to `down` once it is large.
    async fn read<'p>(
        &self,
        call: &Call<'p>,
        plan: &'p ReadPlan,
        down: &mut Downstream,
    ) -> Result<Answer<'p>, Failure> {
        let who = call.who()?;
        let trace = call.trace();
        let read = core::Read::new(call, plan)?;
        let requests = read.requests();
        let opened = join_all(requests.iter().map(|r| self.upstream.open(r, who, trace))).await;
        let mut bodies = Vec::with_capacity(plan.collections.len());
        let mut failure = None;
        for (i, o) in opened.into_iter().enumerate() {
            let body = match o {
                Ok(Opened::Body(b)) => Some(b),
                Ok(Opened::Problem(RestAnswer::Problem { fejlkode, .. }))
                    if read.collection(i).empty_on.contains(&fejlkode) =>
                {
                    None
                }
                Ok(Opened::Problem(RestAnswer::Problem {
                    status,
                    fejlkode,
                    fejltekst,
                })) => {
                    failure.get_or_insert(Failure::Rest {
                        status,
                        fejlkode,
                        fejltekst,
                    });
                    None
                }
                Ok(Opened::Problem(RestAnswer::Ok(_))) => None,
                Err(e) => {
                    failure.get_or_insert(Failure::Upstream(e));
                    None
                }
            };
            bodies.push(body);
        }
        if let Some(f) = failure {
            // The other calls answered: their waits end as answered, unread.
            bodies.into_iter().flatten().for_each(RestBody::discard);
            return Err(f);
        }
        let content_type = call.version.content_type();
        let mut out = String::with_capacity(4096);
        match self.write_read(call, &read, bodies, &mut out, down).await {
            Ok(()) if !down.started() => Ok(Answer::Bytes(out.into_bytes())),
            Ok(()) => match down.finish(content_type, &mut out).await {
                Ok(()) => Ok(Answer::Streamed(StreamEnd::Complete)),
                Err(Gone) => Ok(Answer::Streamed(StreamEnd::Gone)),
            },
            Err(Stop::Failed(f)) if !down.started() => Err(f),
            Err(Stop::Failed(f)) => {
                down.abort().await;
                Ok(Answer::Streamed(StreamEnd::Aborted(f)))
            }
            Err(Stop::Gone) => Ok(Answer::Streamed(StreamEnd::Gone)),
        }
    }

    /// A read's answer, part by part: collections from their REST bodies as they arrive
    /// (`core::ReadAnswer`), flushed downstream whenever enough is written.
    async fn write_read<'p>(
        &self,
        call: &Call<'p>,
        read: &core::Read<'p>,
        mut bodies: Vec<Option<RestBody<'_>>>,
        out: &mut String,
        down: &mut Downstream,
    ) -> Result<(), Stop> {
        let content_type = call.version.content_type();
        let mut answer = core::ReadAnswer::start(call, read, out);
        while let Some(i) = answer.next_collection(out)? {
            let body = bodies.get_mut(i).and_then(Option::take);
            let answered = body.is_some();
            if let Some(mut body) = body {
                while let Some(chunk) = body.chunk().await.map_err(Failure::Upstream)? {
                    answer.feed(&chunk, out)?;
                    down.flush(content_type, out).await?;
                }
            }
            answer.end_collection(out, answered)?;
            down.flush(content_type, out).await?;
        }
        answer.finish(out);
        Ok(())
    }

    /// A read with a legacy service: one REST call per collection (none after the cutover),
    /// all concurrently, and the forward of the request at the same time; then the
    /// collections spliced into the legacy answer.
    async fn read_spliced<'p>(
        &self,
        call: &Call<'p>,
        plan: &'p ReadPlan,
        body: Bytes,
    ) -> Result<Answer<'p>, Failure> {
        let who = call.who()?;
        let trace = call.trace();
        let read = core::Read::new(call, plan)?;
        let service = call.service();
        let requests = read.requests();
        let rest = join_all(
            requests
                .iter()
                .map(|req| self.call_upstream(req, who, trace)),
        );
        let legacy = async {
            match self.legacy.urls.get(&service.name) {
                Some(url) => Some(
                    self.upstream
                        .forward_soap(
                            url,
                            call.arrival.content_type,
                            call.arrival.soap_action,
                            body,
                            trace,
                        )
                        .await,
                ),
                None => None,
            }
        };
        let (answers, legacy) = futures_util::join!(rest, legacy);
        let items = read.items(answers)?;
        match legacy {
            None => read.alone(items),
            Some(Err(e)) => Err(Failure::Upstream(e)),
            Some(Ok(legacy)) => {
                let (answer, differences) = read.splice(
                    &service.namespace,
                    legacy,
                    &items,
                    self.legacy.shadow_compare,
                )?;
                for d in differences {
                    self.metrics
                        .record_shadow(&call.op.name, d.collection, d.mismatches);
                    tracing::warn!(
                        operation = %call.op.name,
                        collection = %d.collection,
                        mismatches = d.mismatches,
                        rest_items = d.rest_items,
                        legacy_items = d.legacy_items,
                        "shadow compare: legacy and REST differ"
                    );
                }
                Ok(answer)
            }
        }
    }
}
