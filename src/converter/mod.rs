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
//! - `shadow`: the shadow compare of legacy and REST collections;
//! - `fault`: `Failure` and `fault_for`;
//! - `record`: the log line, the metrics and the migration usage of a call.

pub mod answer;
pub mod call;
pub mod core;
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
use crate::upstream::{Identity, RestAnswer, RestRequest, Trace, Upstream, UpstreamError};

pub use self::call::{Arrival, Call};
pub use self::core::{Answer, Outcome};
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
    /// A converter with the default cutover (`config::DEFAULT_CUTOVER`) and no legacy services.
    pub fn new(plan: Arc<Plan>, upstream: Upstream, limits: Limits) -> Converter {
        let metrics = Arc::new(Metrics::new());
        Converter {
            plan,
            upstream: upstream.with_metrics(metrics.clone()),
            limits,
            metrics,
            usage: Arc::new(Usage::load(None)),
            cutover: Arc::new(Cutover::new(crate::config::default_cutover())),
            legacy: Arc::new(Legacy::default()),
            door: Arc::new(Door::header_mode()),
        }
    }

    pub fn with_door(mut self, door: Arc<Door>) -> Converter {
        self.door = door;
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

impl Converter {
    /// A new call's upstream context: its trace (the caller's `traceparent`, if valid) and
    /// its deadline, `upstream_timeout_ms` from now.
    pub fn trace(&self, traceparent: Option<&str>) -> Trace {
        Trace::new(traceparent, self.upstream.budget())
    }

    /// Converts one SOAP request into its answer, and records it.
    pub async fn convert(&self, arrival: &Arrival<'_>, body: Bytes) -> Outcome {
        match self.begin(arrival, &body, jiff::Timestamp::now()) {
            Ok(call) => {
                let outcome = self.answer(&call, body).await;
                self.record(arrival, Some(&call), &outcome);
                outcome
            }
            Err(refused) => {
                self.record(arrival, None, &refused);
                refused
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
        self.record(arrival, None, &outcome);
        outcome
    }

    /// The answer to a decoded call: its exchange under the call's deadline, encoded.
    async fn answer(&self, call: &Call<'_>, body: Bytes) -> Outcome {
        let exchange = async {
            match &call.op.behaviour {
                // Answered whoever asks: it calls nothing and tells what to use instead.
                Behaviour::Retired { replacement } => Err(Failure::Own(
                    crate::catalog::Fejl::MetodeUdgaaet,
                    Some(replacement.clone()),
                )),
                Behaviour::Call(plan) => self.register(call, plan).await,
                Behaviour::Read(plan) => self.read(call, plan, body).await,
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
        core::encode(call, result)
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

    /// A read: one REST call per collection (none after the cutover), all concurrently, and
    /// with a legacy URL the forward of the request at the same time; then the answer
    /// alone, or spliced into the legacy one.
    async fn read<'p>(
        &self,
        call: &Call<'p>,
        plan: &'p ReadPlan,
        body: Bytes,
    ) -> Result<Answer<'p>, Failure> {
        let who = call.who()?;
        let trace = call.trace();
        let read = core::Read::new(call, plan)?;
        let service = call.service();
        let legacy_url = self.legacy.urls.get(&service.name);
        let requests = read.requests();
        let rest = join_all(
            requests
                .iter()
                .map(|req| self.call_upstream(req, who, trace)),
        );
        let legacy = async {
            match legacy_url {
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
