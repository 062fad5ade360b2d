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
    Identity, LegacyAnswer, Opened, RestAnswer, RestBody, RestRequest, Trace, Upstream,
    UpstreamError,
};

pub use self::call::{Arrival, Call};
pub use self::core::{Answer, Outcome, StreamEnd};
pub use self::downstream::{Downstream, Gone, Head, Piece, Start};
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
    /// The legacy WSRM queues (issue 16), when subscribers are configured.
    pub wsrm: Option<Arc<crate::wsrm::Wsrm>>,
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
            wsrm: None,
        }
    }

    /// The legacy WSRM queues.
    pub fn with_wsrm(mut self, wsrm: Arc<crate::wsrm::Wsrm>) -> Converter {
        self.wsrm = Some(wsrm);
        self
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
    /// The legacy answer failed (or cannot be spliced).
    Legacy(Failure),
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
                Behaviour::Queue(plan) => self.queue(call, plan).await,
                Behaviour::Read(plan) => match self.legacy.urls.get(&call.service().name) {
                    Some(url) => self.read_spliced(call, plan, url, body, down).await,
                    None => self.read(call, plan, down).await,
                },
            }
        };
        // One deadline for all of the call's upstream work (code list, reads, write, legacy),
        // so the caller gets its fault within upstream_timeout_ms, not a multiple of it. Each
        // upstream wait records itself (`upstream::Wait`), also when this drops it.
        let deadline = call.trace().deadline();
        let result = match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(r) => r,
            Err(_) => {
                let sent = call.trace().write_sent();
                let timeout = Failure::Upstream(UpstreamError::Timeout { sent });
                Err(if sent { timeout.of_write() } else { timeout })
            }
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
        let counted = match failure {
            Failure::OutcomeUnknown(inner) => inner,
            other => other,
        };
        if let Failure::Answer {
            operation_id,
            error,
        } = counted
        {
            self.metrics
                .count_upstream_error(operation_id, error.kind());
        }
        if let Some(e) = failure.upstream() {
            tracing::warn!(operation = %call.op.name, error = %e, "upstream failure");
        }
    }

    /// A write's REST call, its failures as the caller must know them: one before it left
    /// or a problem stays what it is; a broken connection or a deadline after it was sent
    /// (`Failure::of_write`), or a 2xx whose body cannot be read whole (broken, late, or
    /// longer than an answer is read whole, `upstream::MAX_WHOLE_ANSWER_BYTES`, whether its
    /// Content-Length says so or it is counted), leaves the outcome unknown (900523).
    async fn write_upstream(
        &self,
        req: &RestRequest,
        who: &Identity,
        trace: &Trace,
    ) -> Result<Bytes, Failure> {
        match self.upstream.open(req, who, trace).await {
            // The body's wait has recorded the failure (not `Failure::Answer`: counted once).
            Ok(Opened::Body(body)) => body
                .read_whole()
                .await
                .map_err(|e| Failure::OutcomeUnknown(Box::new(Failure::Upstream(e)))),
            Ok(Opened::Problem(RestAnswer::Problem {
                status,
                fejlkode,
                fejltekst,
            })) => Err(Failure::Rest {
                status,
                fejlkode,
                fejltekst,
            }),
            Ok(Opened::Problem(RestAnswer::Ok(v))) => Ok(v),
            Err(e) => Err(Failure::Upstream(e).of_write()),
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

    /// A WSRM operation on the caller's queue (the store is SQLite: off the worker thread).
    async fn queue<'p>(
        &self,
        call: &Call<'p>,
        plan: &'p crate::mapping::QueuePlan,
    ) -> Result<Answer<'p>, Failure> {
        let who = call.who()?;
        let Some(wsrm) = self.wsrm.clone() else {
            return Err(Failure::Own(crate::catalog::Fejl::WsrmIkkeAbonnent, None));
        };
        let inputs = request::typed_inputs(call.op, &call.values)?;
        let sequence = match plan.sequence.and_then(|i| inputs.get(i).cloned().flatten()) {
            Some(crate::mapping::Canon::Uuid(u)) => Some(u),
            _ => None,
        };
        let organisation_type = crate::soap::envelope::organisation_type(&who.organisation_type)
            .ok_or(Failure::Own(crate::catalog::Fejl::WsrmIkkeAbonnent, None))?;
        let code = who.organisation_code.clone();
        let step = plan.step;
        let run = move || wsrm.run(organisation_type, &code, step, sequence);
        let answer = tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| Failure::Own(crate::catalog::Fejl::WsrmKoeFejl, None))?
            .map_err(|f| Failure::Own(f, None))?;
        let path = self
            .wsrm
            .as_deref()
            .map_or("", |w| w.settings.message_endpoint.as_str());
        // Absolute with `public_url`; else as this client reaches the converter.
        let endpoint = match &call.arrival.base_url {
            Some(base) if path.starts_with('/') => format!("{base}{path}"),
            _ => path.to_owned(),
        };
        Ok(Answer::Bytes(crate::wsrm::write_answer(
            call.version,
            &call.service().namespace,
            &call.op.response_element,
            core::wsa_reply(call, true).as_ref(),
            &endpoint,
            &answer,
        )))
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
        // From here on the outcome of a failure may be unknown (900523): the write can have
        // reached REST although its answer never came back whole.
        trace.write_started();
        let answer = self.write_upstream(&reg.request(), who, trace).await?;
        reg.response(&answer)
            .map_err(|f| Failure::OutcomeUnknown(Box::new(f)))
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
        let bodies = rest_bodies(&read, opened)?;
        let start = Start::soap(call.version);
        let mut out = String::with_capacity(4096);
        let written = write_read(call, &read, bodies, &mut out, down, start).await;
        ended(down, written, start, &mut out, Answer::Bytes).await
    }

    /// A read with a legacy service (`url`): the request forwarded to it and one REST call
    /// per collection (none after the cutover), all opened concurrently; then the legacy
    /// answer copied through as it arrives, each collection's REST answer transcoded into
    /// it where the collection is, streamed to `down` once large. A legacy fault (a
    /// non-2xx XML answer) passes through as it is; another non-2xx answer is 900522.
    async fn read_spliced<'p>(
        &self,
        call: &Call<'p>,
        plan: &'p ReadPlan,
        url: &str,
        body: Bytes,
        down: &mut Downstream,
    ) -> Result<Answer<'p>, Failure> {
        let who = call.who()?;
        let trace = call.trace();
        let read = core::Read::new(call, plan)?;
        let requests = read.requests();
        let rest = join_all(requests.iter().map(|r| self.upstream.open(r, who, trace)));
        let arrival = call.arrival;
        let legacy =
            self.upstream
                .open_soap(url, arrival.content_type, arrival.soap_action, body, trace);
        let (opened, legacy) = futures_util::join!(rest, legacy);
        let mut bodies = match rest_bodies(&read, opened) {
            Ok(b) => b,
            Err(f) => {
                if let Ok(l) = legacy {
                    l.body.discard();
                }
                return Err(f);
            }
        };
        let mut answer = core::SplicedAnswer::new(call, &read, self.legacy.shadow_compare);
        let LegacyAnswer {
            status,
            content_type,
            body: mut legacy,
        } = match legacy {
            Ok(l) if (200..300).contains(&l.status) => l,
            // A legacy fault (small) passes through whole, and a legacy service that cannot
            // answer is a fault; either once REST's answers are checked, since an invalid one
            // is the fault (as when both were read whole first).
            other => {
                check_rest(&mut answer, &mut bodies).await?;
                let l = other.map_err(Failure::Upstream)?;
                if !is_soap(&l.content_type) {
                    // Not the legacy service's fault but a proxy's page (an HTML 502, say):
                    // a SOAP client gets a SOAP fault.
                    let e = UpstreamError::Invalid(format!(
                        "the legacy service answered {} with {}, not a SOAP fault",
                        l.status, l.content_type
                    ));
                    l.body.discard();
                    return Err(Failure::Upstream(e));
                }
                let body = l.body.read_whole().await.map_err(Failure::Upstream)?;
                return Ok(Answer::Raw {
                    status: l.status,
                    content_type: l.content_type,
                    body: body.into(),
                });
            }
        };
        let start = Start {
            status,
            content_type: &content_type,
        };
        let mut out = String::with_capacity(4096);
        let written =
            match write_spliced(&mut answer, &mut legacy, &mut bodies, &mut out, down, start).await
            {
                // Nothing has left yet: REST's failures come first, as when both were read whole.
                Err(Stop::Legacy(f)) if !down.started() => {
                    match check_rest(&mut answer, &mut bodies).await {
                        Err(rest) => Err(Stop::Failed(rest)),
                        Ok(()) => Err(Stop::Failed(f)),
                    }
                }
                Err(Stop::Legacy(f)) => Err(Stop::Failed(f)),
                other => other,
            };
        if written.is_ok() {
            self.note_differences(call, answer.finish());
        }
        let raw = |body| Answer::Raw {
            status,
            content_type: content_type.clone(),
            body,
        };
        ended(down, written, start, &mut out, raw).await
    }

    /// Counts and logs what the shadow compare found (`None`: a collection too large to
    /// compare).
    fn note_differences(&self, call: &Call<'_>, differences: Option<Vec<shadow::Difference>>) {
        let Some(differences) = differences else {
            tracing::warn!(
                operation = %call.op.name,
                max_items = core::SHADOW_MAX_ITEMS,
                "shadow compare skipped: a collection has too many items"
            );
            return;
        };
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
    }
}

/// Whether a content type is one a SOAP fault comes in (SOAP 1.1's, SOAP 1.2's, or XML's).
fn is_soap(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    ["text/xml", "application/soap+xml", "application/xml"]
        .iter()
        .any(|m| mime.eq_ignore_ascii_case(m))
}

/// The 2xx bodies of a read's opened REST calls, per collection (`None` for one without: a
/// problem its collection is empty on, or none after the cutover), or the first failure
/// (the other bodies discarded: their waits end as answered, unread).
fn rest_bodies<'t>(
    read: &core::Read<'_>,
    opened: Vec<Result<Opened<'t>, UpstreamError>>,
) -> Result<Vec<Option<RestBody<'t>>>, Failure> {
    let mut bodies = Vec::with_capacity(opened.len());
    let mut failure = None;
    for (i, o) in opened.into_iter().enumerate() {
        let body = match o {
            // Refused before anything is written when its head says it is over the ceiling.
            Ok(Opened::Body(b)) => match b.within_limit() {
                Ok(b) => Some(b),
                Err(e) => {
                    failure.get_or_insert(Failure::Upstream(e));
                    None
                }
            },
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
    match failure {
        Some(f) => {
            bodies.into_iter().flatten().for_each(RestBody::discard);
            Err(f)
        }
        None => Ok(bodies),
    }
}

/// A read's answer, part by part: collections from their REST bodies as they arrive
/// (`core::ReadAnswer`), flushed downstream whenever enough is written.
async fn write_read<'p>(
    call: &Call<'p>,
    read: &core::Read<'p>,
    mut bodies: Vec<Option<RestBody<'_>>>,
    out: &mut String,
    down: &mut Downstream,
    start: Start<'_>,
) -> Result<(), Stop> {
    let mut answer = core::ReadAnswer::start(call, read, out);
    while let Some(i) = answer.next_collection(out)? {
        let body = bodies.get_mut(i).and_then(Option::take);
        let answered = body.is_some();
        pipe(body, out, down, start, |chunk, out| answer.feed(chunk, out)).await?;
        answer.end_collection(out, answered)?;
        down.flush(start, out).await?;
    }
    answer.finish(out);
    Ok(())
}

/// A collection's REST body (if it has one) fed to `feed` as it arrives, flushed
/// downstream whenever enough is written.
async fn pipe(
    body: Option<RestBody<'_>>,
    out: &mut String,
    down: &mut Downstream,
    start: Start<'_>,
    mut feed: impl FnMut(&[u8], &mut String) -> Result<(), Failure>,
) -> Result<(), Stop> {
    if let Some(mut body) = body {
        while let Some(chunk) = body.chunk().await.map_err(Failure::Upstream)? {
            feed(&chunk, out)?;
            down.flush(start, out).await?;
        }
    }
    Ok(())
}

/// The legacy answer spliced as it arrives (`core::SplicedAnswer`): copied through up to
/// each collection, the collection's REST body transcoded in, flushed downstream whenever
/// enough is written; then the REST bodies the legacy answer had no place for, checked.
/// What the legacy side fails with is `Stop::Legacy`.
async fn write_spliced(
    answer: &mut core::SplicedAnswer<'_, '_>,
    legacy: &mut RestBody<'_>,
    bodies: &mut [Option<RestBody<'_>>],
    out: &mut String,
    down: &mut Downstream,
    start: Start<'_>,
) -> Result<(), Stop> {
    loop {
        match answer.next(out).map_err(Stop::Legacy)? {
            core::Splice::More => {
                let chunk = legacy.chunk().await;
                match chunk.map_err(|e| Stop::Legacy(Failure::Upstream(e)))? {
                    Some(c) => answer.feed_legacy(&c).map_err(Stop::Legacy)?,
                    None => answer.end_legacy(),
                }
            }
            core::Splice::Collection(i) => {
                let body = bodies.get_mut(i).and_then(Option::take);
                let answered = body.is_some();
                pipe(body, out, down, start, |chunk, out| answer.feed(chunk, out)).await?;
                answer.end_collection(answered)?;
            }
            core::Splice::Done => break,
        }
        down.flush(start, out).await?;
    }
    check_rest(answer, bodies).await?;
    Ok(())
}

/// Reads and checks the REST bodies left in `bodies` (for the shadow compare, and because
/// an invalid answer is a fault whether or not it is written), writing nothing.
async fn check_rest(
    answer: &mut core::SplicedAnswer<'_, '_>,
    bodies: &mut [Option<RestBody<'_>>],
) -> Result<(), Failure> {
    let mut unwritten = String::new();
    for (i, body) in bodies.iter_mut().enumerate() {
        if let Some(mut body) = body.take() {
            answer.check(i);
            while let Some(chunk) = body.chunk().await.map_err(Failure::Upstream)? {
                answer.feed(&chunk, &mut unwritten)?;
            }
            answer.end_collection(true)?;
        }
    }
    Ok(())
}

/// A streamed write's end as the call's answer: `whole` of what was written if nothing left
/// yet (a failure is then still a fault), else the rest sent, or the answer cut off.
async fn ended<'p>(
    down: &mut Downstream,
    written: Result<(), Stop>,
    start: Start<'_>,
    out: &mut String,
    whole: impl FnOnce(Vec<u8>) -> Answer<'p>,
) -> Result<Answer<'p>, Failure> {
    match written {
        Ok(()) if !down.started() => Ok(whole(std::mem::take(out).into_bytes())),
        Ok(()) => match down.finish(start, out).await {
            Ok(()) => Ok(Answer::Streamed(StreamEnd::Complete)),
            Err(Gone) => Ok(Answer::Streamed(StreamEnd::Gone)),
        },
        Err(Stop::Failed(f) | Stop::Legacy(f)) if !down.started() => Err(f),
        Err(Stop::Failed(f) | Stop::Legacy(f)) => {
            down.abort().await;
            Ok(Answer::Streamed(StreamEnd::Aborted(f)))
        }
        Err(Stop::Gone) => Ok(Answer::Streamed(StreamEnd::Gone)),
    }
}
