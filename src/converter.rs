//! One SOAP call's path through the converter, as named phases:
//!
//! `decode_envelope → map_request → call_upstream → map_response → encode_envelope`
//!
//! with the checks a mapping can ask for (code lists; the read-and-compare of rule 4)
//! between the first two. Reads (PSS, PHS) make one REST call per collection, concurrently,
//! or none after the caller's cutover, and can splice their collections into the legacy
//! service's response. The phases are functions whose names are their steps, so a profile
//! and a log line read the same way. Errors become faults in exactly one place, `fault_for`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::catalog::Fejl;
use crate::cutover::Cutover;
use crate::door::{Door, Presented};
use crate::json::Json;
use crate::mapping::{
    Behaviour, CallPlan, Canon, CollectionPlan, OpPlan, OutField, OutSource, Plan, ReadPart,
    ReadPlan, RestCall, ServicePlan, Source, Target,
};
use crate::observe::metrics::{CallRecord, Metrics};
use crate::observe::usage::{Usage, UsageCall};
use crate::soap::envelope::{Envelope, Limits, decode_envelope};
use crate::soap::splice::{Replacement, splice};
use crate::soap::write::{self, Fields, Out, Side, WsaReply};
use crate::soap::{SoapError, SoapVersion, version_and_action};
use crate::upstream::{
    Identity, LegacyAnswer, RestAnswer, RestRequest, Trace, Upstream, UpstreamError,
};

/// The namespace of the ids derived from (caller, operation, MessageID): fixed forever, or
/// a retry after an upgrade would create a second record.
const MESSAGE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a4e_8b3d_4c59_a7e0_5d2b_9c81_f346);

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

/// The answer to one SOAP request, with what the log and metrics need to know of it.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub operation: Option<String>,
    /// The fault's first error code, if the answer is a fault.
    pub fault_code: Option<u32>,
    /// The request's trace id: returned as `X-Request-Id`, sent upstream in `traceparent`.
    pub request_id: String,
}

/// Why a call did not produce a response: a fault to send, in terms of codes and side.
#[derive(Debug)]
enum Failure {
    Soap(SoapError),
    /// REST refused, with its own code and text (rule 3: passed on byte for byte).
    Rest {
        status: u16,
        fejlkode: u32,
        fejltekst: String,
    },
    Upstream(UpstreamError),
    /// A refusal the converter makes itself after decoding, with detail for the fault string.
    Own(Fejl, Option<String>),
}

/// What an exchange produced: parts to write, or a legacy answer to send as it is.
enum Answer<'p> {
    Parts(Vec<Out<'p>>),
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

/// The SOAP request as received, for forwarding to a legacy service.
struct Raw<'r> {
    content_type: &'r str,
    soap_action: Option<&'r str>,
    body: bytes::Bytes,
}

/// Who the caller is: the door's decision over what the connection presented and what
/// RequestUserMetadata claims (`door::Door::decide`, the one place it is decided).
fn identity(door: &Door, presented: &Presented, env: &Envelope<'_>) -> Result<Identity, Failure> {
    let m = env
        .metadata
        .as_ref()
        .ok_or(Failure::Own(Fejl::MetadataMangler, None))?;
    door.decide(presented, &m.claim())
        .map_err(|r| Failure::Own(r.fejl, r.detail))
}

/// Every input in canonical form; a missing required element or a value of the wrong type
/// is refused, naming the element.
fn typed_inputs(op: &OpPlan, values: &[Option<String>]) -> Result<Vec<Option<Canon>>, Failure> {
    op.inputs
        .iter()
        .zip(values)
        .map(|(input, v)| match v {
            Some(text) => input.ty.from_soap(text).map(Some).map_err(|e| {
                Failure::Own(Fejl::UgyldigVaerdi, Some(format!("{}: {e}", input.path)))
            }),
            None if input.optional => Ok(None),
            None => Err(Failure::Own(
                Fejl::UgyldigVaerdi,
                Some(format!("{} mangler", input.path)),
            )),
        })
        .collect()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn arg_value<'a>(source: &'a Source, inputs: &'a [Option<Canon>]) -> Option<&'a Canon> {
    match source {
        Source::Input(i) => inputs[*i].as_ref(),
        Source::Const(c) => Some(c),
    }
}

/// The REST request of a call: path parameters filled, headers, query and JSON body.
fn map_request(
    call: &RestCall,
    inputs: &[Option<Canon>],
    extra: Option<(&Target, &Canon)>,
) -> RestRequest {
    let mut path = call.path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut body: Vec<(&str, &Canon)> = Vec::new();
    let args = call
        .args
        .iter()
        .filter_map(|a| arg_value(&a.source, inputs).map(|v| (&a.target, v)));
    for (target, value) in args.chain(extra) {
        match target {
            // A field set twice keeps the later value (the id derived from a MessageID).
            Target::Body(f) => match body.iter_mut().find(|(k, _)| *k == f.as_str()) {
                Some(member) => member.1 = value,
                None => body.push((f, value)),
            },
            Target::Path(p) => {
                path = path.replace(&format!("{{{p}}}"), &percent_encode(&value.to_text()))
            }
            Target::Header(h) => headers.push((h.clone(), value.to_text())),
            Target::Query(q) => query.push(format!(
                "{}={}",
                percent_encode(q),
                percent_encode(&value.to_text())
            )),
        }
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let body = (call.method != http::Method::GET).then(|| {
        let mut out = Vec::with_capacity(64 * body.len() + 2);
        out.push(b'{');
        for (i, (k, v)) in body.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // A key is a mapping's field name; writing a str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, k);
            out.push(b':');
            v.write_json(&mut out);
        }
        out.push(b'}');
        bytes::Bytes::from(out)
    });
    RestRequest {
        operation_id: call.operation_id.clone(),
        method: call.method.clone(),
        path,
        headers,
        body,
    }
}

/// SOAP fields from a JSON object (the REST answer, or one item of a collection) and the
/// request's inputs. Also returns each field's canonical value, for the shadow compare.
fn map_fields<'p>(
    fields: &'p [OutField],
    json: &Json<'_>,
    inputs: &[Option<Canon>],
) -> Result<Vec<(&'p [String], String)>, Failure> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let value = match &f.source {
            OutSource::Json(path) => match json.at(path) {
                Some(v) => Some(f.ty.from_json(v).map_err(|_| {
                    Failure::Upstream(UpstreamError::Invalid(format!(
                        "{} is not a {:?}",
                        path.join("."),
                        f.ty
                    )))
                })?),
                None => None,
            },
            OutSource::Input(i) => inputs[*i].clone(),
        };
        match value {
            Some(c) => out.push((f.soap.as_slice(), c.to_soap())),
            None if f.optional => {}
            None => {
                return Err(Failure::Upstream(UpstreamError::Invalid(format!(
                    "no value for {}",
                    f.soap.join("/")
                ))));
            }
        }
    }
    Ok(out)
}

/// The SOAP response fields of a call from REST's JSON answer.
fn map_response<'p>(
    fields: &'p [OutField],
    answer: &Json<'_>,
    inputs: &[Option<Canon>],
) -> Result<Vec<Out<'p>>, Failure> {
    Ok(map_fields(fields, answer, inputs)?
        .into_iter()
        .map(|(p, t)| Out::Leaf(p, t))
        .collect())
}

/// A 2xx answer's JSON, read in place; not JSON is an invalid answer (and counted as one,
/// with `metrics`).
fn parse_answer<'a>(
    metrics: Option<&Metrics>,
    operation_id: &str,
    body: &'a [u8],
) -> Result<Json<'a>, Failure> {
    RestAnswer::json(operation_id, body).map_err(|e| {
        if let Some(m) = metrics {
            m.count_upstream_error(operation_id, e.kind());
        }
        Failure::Upstream(e)
    })
}

async fn call_upstream(
    conv: &Converter,
    req: &RestRequest,
    who: &Identity,
    trace: &Trace,
) -> Result<Bytes, Failure> {
    match conv.upstream.call(req, who, trace).await {
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

/// Codes that must belong to a REST code list (cached). If the list cannot be had, the
/// REST service judges the code itself.
async fn check_codes(
    conv: &Converter,
    call: &RestCall,
    inputs: &[Option<Canon>],
    who: &Identity,
    trace: &Trace,
) -> Result<(), Failure> {
    for arg in &call.args {
        let (Some(codes), Some(Canon::Int(value))) = (&arg.codes, arg_value(&arg.source, inputs))
        else {
            continue;
        };
        let Some(list) = conv
            .plan
            .code_lists
            .iter()
            .find(|l| l.operation_id == codes.list)
        else {
            continue;
        };
        match conv
            .upstream
            .code_list(&map_request(list, &[], None), who, trace)
            .await
        {
            Ok(known) if !known.contains(value) => return Err(Failure::Own(codes.error, None)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(list = %codes.list, error = %e, "code list unavailable; REST will judge the code")
            }
        }
    }
    Ok(())
}

/// Rule 4 and its kin: read the current record and refuse a change to what cannot change.
async fn check_unchanged(
    conv: &Converter,
    plan: &CallPlan,
    inputs: &[Option<Canon>],
    who: &Identity,
    trace: &Trace,
) -> Result<(), Failure> {
    let Some(u) = &plan.unchanged else {
        return Ok(());
    };
    let current = call_upstream(conv, &map_request(&u.read, inputs, None), who, trace).await?;
    let current = parse_answer(Some(&conv.metrics), &u.read.operation_id, &current)?;
    for (input, json, ty) in &u.compare {
        let Some(sent) = &inputs[*input] else {
            continue;
        };
        let now = current.at(json).and_then(|v| ty.from_json(v).ok());
        if now.as_ref() != Some(sent) {
            return Err(Failure::Own(u.error, None));
        }
    }
    Ok(())
}

/// The id a create with a MessageID gets: the same caller, operation and MessageID always
/// give the same id, so a retried message creates one record.
pub fn derived_id(who: &Identity, operation: &str, message_id: &str) -> uuid::Uuid {
    let name = format!(
        "{}\n{}\n{operation}\n{message_id}",
        who.organisation_type, who.organisation_code
    );
    uuid::Uuid::new_v5(&MESSAGE_ID_NAMESPACE, name.as_bytes())
}

/// The call a registration makes: with a MessageID and a `call_with_message_id`, that call
/// with the id derived from the caller and the MessageID; else the plain call.
fn choose_call<'p>(
    plan: &'p CallPlan,
    env: &Envelope<'_>,
    who: &Identity,
) -> (&'p RestCall, Option<(&'p Target, Canon)>) {
    match (&plan.with_message_id, &env.message_id) {
        (Some((call, target)), Some(mid)) => (
            call,
            Some((target, Canon::Uuid(derived_id(who, &env.op.name, mid)))),
        ),
        _ => (&plan.call, None),
    }
}

async fn call_exchange<'p>(
    conv: &Converter,
    env: &Envelope<'p>,
    who: &Identity,
    plan: &'p CallPlan,
    trace: &Trace,
) -> Result<Answer<'p>, Failure> {
    let inputs = typed_inputs(env.op, &env.values)?;
    let (call, id) = choose_call(plan, env, who);
    let extra = id.as_ref().map(|(t, c)| (*t, c));
    check_codes(conv, call, &inputs, who, trace).await?;
    check_unchanged(conv, plan, &inputs, who, trace).await?;
    let answer = call_upstream(conv, &map_request(call, &inputs, extra), who, trace).await?;
    Ok(Answer::Parts(map_response(
        &plan.response,
        &parse_answer(Some(&conv.metrics), &call.operation_id, &answer)?,
        &inputs,
    )?))
}

/// One collection's items from its REST answer; a code in `empty_on` means none.
fn collection_items<'p>(
    c: &'p CollectionPlan,
    answer: Result<Bytes, Failure>,
    inputs: &[Option<Canon>],
    metrics: Option<&Metrics>,
) -> Result<Vec<Fields<'p>>, Failure> {
    let bytes = match answer {
        Ok(v) => v,
        Err(Failure::Rest { fejlkode, .. }) if c.empty_on.contains(&fejlkode) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let json = parse_answer(metrics, &c.call.operation_id, &bytes)?;
    let items = json.get(&c.items).and_then(Json::as_array).ok_or_else(|| {
        Failure::Upstream(UpstreamError::Invalid(format!(
            "{} lacks {}",
            c.call.operation_id, c.items
        )))
    })?;
    items
        .iter()
        .map(|item| map_fields(&c.fields, item, inputs))
        .collect()
}

/// A read's response parts in the WSDL's order: echoed inputs and the collections.
fn read_parts<'p>(
    plan: &'p ReadPlan,
    mut items: Vec<Vec<Fields<'p>>>,
    inputs: &[Option<Canon>],
) -> Result<Vec<Out<'p>>, Failure> {
    let mut parts = Vec::with_capacity(plan.order.len());
    for part in &plan.order {
        match *part {
            ReadPart::Echo(i) => parts.extend(
                map_fields(std::slice::from_ref(&plan.echo[i]), &Json::Null, inputs)?
                    .into_iter()
                    .map(|(p, t)| Out::Leaf(p, t)),
            ),
            ReadPart::Collection(i) => {
                let c = &plan.collections[i];
                parts.push(Out::Collection {
                    path: &c.element,
                    item: &c.item,
                    items: std::mem::take(&mut items[i]),
                });
            }
        }
    }
    Ok(parts)
}

#[allow(clippy::too_many_arguments)] // issue 13 gathers these into one Call
async fn read_exchange<'p>(
    conv: &Converter,
    env: &Envelope<'p>,
    who: &Identity,
    service: &ServicePlan,
    plan: &'p ReadPlan,
    raw: &Raw<'_>,
    trace: &Trace,
    passed: bool,
) -> Result<Answer<'p>, Failure> {
    let inputs = typed_inputs(env.op, &env.values)?;
    let legacy_url = conv.legacy.urls.get(&service.name);

    // REST for each collection (none after the cutover) and the legacy service, concurrently.
    let rest = async {
        if passed {
            return Vec::new();
        }
        join_all(plan.collections.iter().map(|c| async {
            call_upstream(conv, &map_request(&c.call, &inputs, None), who, trace).await
        }))
        .await
    };
    let legacy = async {
        match legacy_url {
            Some(url) => Some(
                conv.upstream
                    .forward_soap(
                        url,
                        raw.content_type,
                        raw.soap_action,
                        raw.body.clone(),
                        trace,
                    )
                    .await,
            ),
            None => None,
        }
    };
    let (answers, legacy) = futures_util::join!(rest, legacy);

    let mut items: Vec<Vec<Fields<'p>>> = vec![Vec::new(); plan.collections.len()];
    for (i, (c, a)) in plan.collections.iter().zip(answers).enumerate() {
        items[i] = collection_items(c, a, &inputs, Some(&conv.metrics))?;
    }

    match legacy {
        None => Ok(Answer::Parts(read_parts(plan, items, &inputs)?)),
        Some(Err(e)) => Err(Failure::Upstream(e)),
        Some(Ok(LegacyAnswer {
            status,
            content_type,
            body,
        })) => {
            // A legacy fault (or any non-2xx answer) passes through unchanged.
            if !(200..300).contains(&status) {
                return Ok(Answer::Raw {
                    status,
                    content_type,
                    body: body.to_vec(),
                });
            }
            let text = std::str::from_utf8(&body).map_err(|_| {
                Failure::Upstream(UpstreamError::Invalid(
                    "the legacy response is not UTF-8".into(),
                ))
            })?;
            let replacements: Vec<Replacement<'_>> = plan
                .collections
                .iter()
                .zip(&items)
                .map(|(c, its)| Replacement {
                    local: c.element.last().map_or("", String::as_str),
                    item: &c.item,
                    items: its,
                })
                .collect();
            let spliced = splice(text, &service.namespace, &replacements)
                .map_err(|e| Failure::Upstream(UpstreamError::Invalid(e)))?;
            if conv.legacy.shadow_compare && !passed {
                shadow_compare(conv, env.op, plan, &items, &spliced.legacy_items);
            }
            Ok(Answer::Raw {
                status,
                content_type,
                body: spliced.body,
            })
        }
    }
}

/// AC 1005.17.28.15: legacy and REST should agree. Items are matched by their first field
/// (the identifier); a missing item on either side or a differing field is a mismatch.
/// Counted and logged without CPR numbers or identifiers.
fn shadow_compare(
    conv: &Converter,
    op: &OpPlan,
    plan: &ReadPlan,
    rest: &[Vec<Fields<'_>>],
    legacy: &[Vec<Vec<(String, String)>>],
) {
    for ((c, rest_items), legacy_items) in plan.collections.iter().zip(rest).zip(legacy) {
        let key = |fields: &[(String, String)]| fields.first().map(|(_, v)| v.clone());
        let canon = |path: &str, text: &str| {
            c.fields
                .iter()
                .find(|f| f.soap.join("/") == path)
                .and_then(|f| f.ty.from_soap(text).ok())
                .unwrap_or_else(|| Canon::Text(text.to_owned()))
        };
        let as_map = |fields: &[(String, String)]| -> Vec<(String, Canon)> {
            fields
                .iter()
                .map(|(p, t)| (p.clone(), canon(p, t)))
                .collect()
        };
        let rest_owned: Vec<Vec<(String, String)>> = rest_items
            .iter()
            .map(|it| it.iter().map(|(p, t)| (p.join("/"), t.clone())).collect())
            .collect();
        let mut mismatches = 0u64;
        for r in &rest_owned {
            match legacy_items.iter().find(|l| key(l) == key(r)) {
                None => mismatches += 1,
                Some(l) => {
                    let (mut a, mut b) = (as_map(r), as_map(l));
                    a.sort_by(|x, y| x.0.cmp(&y.0));
                    b.sort_by(|x, y| x.0.cmp(&y.0));
                    if a != b {
                        mismatches += 1;
                    }
                }
            }
        }
        mismatches += legacy_items
            .iter()
            .filter(|l| !rest_owned.iter().any(|r| key(r) == key(l)))
            .count() as u64;
        if mismatches > 0 {
            conv.metrics.record_shadow(
                &op.name,
                c.element.last().map_or("", String::as_str),
                mismatches,
            );
            tracing::warn!(
                operation = %op.name,
                collection = %c.element.last().map_or("", String::as_str),
                mismatches,
                rest_items = rest_owned.len(),
                legacy_items = legacy_items.len(),
                "shadow compare: legacy and REST differ"
            );
        }
    }
}

/// The one place a failure becomes a fault: its codes, its side and its HTTP status.
fn fault_for(
    version: SoapVersion,
    failure: &Failure,
    wsa: Option<&WsaReply<'_>>,
) -> (u16, u32, Vec<u8>) {
    let own = |fejl: Fejl| {
        let e = fejl.entry();
        (
            e.code,
            e.text.as_str(),
            if e.status >= 500 {
                Side::Server
            } else {
                Side::Client
            },
        )
    };
    let (code, text, side, suffix): (u32, &str, Side, Option<&str>) = match failure {
        Failure::Soap(e) => {
            let (c, t, s) = own(e.fejl);
            (c, t, s, e.detail.as_deref())
        }
        Failure::Own(f, detail) => {
            let (c, t, s) = own(*f);
            (c, t, s, detail.as_deref())
        }
        Failure::Rest {
            status,
            fejlkode,
            fejltekst,
        } => (
            *fejlkode,
            fejltekst.as_str(),
            if *status >= 500 {
                Side::Server
            } else {
                Side::Client
            },
            None,
        ),
        Failure::Upstream(e) => {
            let f = match e {
                UpstreamError::Timeout => Fejl::UpstreamTimeout,
                UpstreamError::Unreachable(_) => Fejl::UpstreamUtilgaengelig,
                UpstreamError::Invalid(_) => Fejl::UpstreamUgyldigtSvar,
            };
            let (c, t, s) = own(f);
            (c, t, s, None)
        }
    };
    // SOAP 1.1: every fault is HTTP 500. SOAP 1.2: 400 for Sender, 500 for Receiver.
    let status = match (version, side) {
        (SoapVersion::V12, Side::Client) => 400,
        _ => 500,
    };
    // The fault string is the first error's text (the contract); a converter fault with a
    // detail carries it in both, after the catalogue text.
    let text = match suffix {
        Some(s) => format!("{text}: {s}"),
        None => text.to_owned(),
    };
    (
        status,
        code,
        write::fault(version, side, &[(code, &text)], wsa),
    )
}

/// The answer to a request refused before its envelope was read: a Client fault with a
/// catalogue code, in `version`, with its own HTTP status (413, 415, ...).
fn refusal(version: SoapVersion, status: u16, fejl: Fejl, detail: Option<String>) -> Outcome {
    let (_, code, body) = fault_for(
        version,
        &Failure::Soap(SoapError {
            version,
            fejl,
            detail,
        }),
        None,
    );
    Outcome {
        status,
        content_type: version.content_type().to_owned(),
        body,
        operation: None,
        fault_code: Some(code),
        request_id: String::new(),
    }
}

/// What convert_envelope learned about the call, besides its answer.
#[derive(Default)]
struct Seen {
    operation: Option<String>,
    /// The organisation the door decided the call is made for (type normalised); none for
    /// a refused or incomplete claim. Bounded by the agreements (a decided claim is one an
    /// agreement covers) or, in header mode, by the metrics' own cap.
    organisation: Option<(u8, String)>,
    past_cutover: Option<bool>,
}

impl Converter {
    /// Converts one SOAP request to `service` into its answer, and records it.
    #[allow(clippy::too_many_arguments)] // issue 13 gathers these into one Call
    pub async fn convert(
        &self,
        service: &ServicePlan,
        presented: &Presented,
        content_type: &str,
        soap_action: Option<&str>,
        body: bytes::Bytes,
        traceparent: Option<&str>,
    ) -> Outcome {
        let start = Instant::now();
        let trace = Trace::from_header(traceparent);
        let mut seen = Seen::default();
        let (version, outcome) = match version_and_action(content_type, soap_action) {
            Err(fejl) => (None, refusal(SoapVersion::V11, 415, fejl, None)),
            Ok((version, action)) => {
                let raw = Raw {
                    content_type,
                    soap_action,
                    body,
                };
                (
                    Some(version),
                    self.convert_envelope(
                        service, presented, version, action, &raw, &trace, &mut seen,
                    )
                    .await,
                )
            }
        };
        self.record(service, version, seen, outcome, &trace, start)
    }

    /// A request refused before it could be read (its body over the limit, or cut off):
    /// answered, logged and counted like every other.
    pub fn refuse(
        &self,
        service: &ServicePlan,
        version: SoapVersion,
        status: u16,
        fejl: Fejl,
        detail: Option<String>,
        traceparent: Option<&str>,
    ) -> Outcome {
        let start = Instant::now();
        let trace = Trace::from_header(traceparent);
        self.record(
            service,
            Some(version),
            Seen::default(),
            refusal(version, status, fejl, detail),
            &trace,
            start,
        )
    }

    /// One log line, the metrics and the migration usage of a call; the answer gets its
    /// request id.
    fn record(
        &self,
        service: &ServicePlan,
        version: Option<SoapVersion>,
        seen: Seen,
        outcome: Outcome,
        trace: &Trace,
        start: Instant,
    ) -> Outcome {
        // "-" when the content type named no SOAP version.
        let version = match version {
            Some(SoapVersion::V11) => "1.1",
            Some(SoapVersion::V12) => "1.2",
            None => "-",
        };
        let total = start.elapsed();
        let upstream = trace.waited();
        let request_id = trace.trace_id();
        let org = seen.organisation.as_ref().map(|(t, c)| (*t, c.as_str()));
        let (org_type, org_code) = self.metrics.organisation(org);
        let operation = seen.operation.as_deref().unwrap_or("-");
        self.metrics.record_call(&CallRecord {
            service: &service.name,
            operation,
            soap_version: version,
            organisation_type: org_type,
            organisation_code: org_code,
            fault_code: outcome.fault_code,
            total,
            upstream,
            past_cutover: seen.past_cutover,
        });
        let own = total.saturating_sub(upstream);
        self.usage.record(
            &UsageCall {
                organisation_type: org_type,
                organisation_code: org_code,
                service: &service.name,
                operation,
                fault: outcome.fault_code,
                own_micros: own.as_micros() as u64,
            },
            jiff::Timestamp::now(),
        );
        tracing::info!(
            service = %service.name,
            operation,
            soap_version = version,
            organisation = %format_args!("{org_type}:{org_code}"),
            outcome = if outcome.fault_code.is_some() { "fault" } else { "ok" },
            fault = outcome.fault_code.unwrap_or(0),
            status = outcome.status,
            total_micros = total.as_micros() as u64,
            upstream_micros = upstream.as_micros() as u64,
            request_id = %request_id,
            "soap call"
        );
        Outcome {
            request_id,
            operation: seen.operation,
            ..outcome
        }
    }

    #[allow(clippy::too_many_arguments)] // issue 13 gathers these into one Call
    async fn convert_envelope(
        &self,
        service: &ServicePlan,
        presented: &Presented,
        version: SoapVersion,
        action: Option<&str>,
        raw: &Raw<'_>,
        trace: &Trace,
        seen: &mut Seen,
    ) -> Outcome {
        let outcome = |status, content_type: String, body, fault_code| Outcome {
            status,
            content_type,
            body,
            operation: None,
            fault_code,
            request_id: String::new(),
        };
        let env = match decode_envelope(&raw.body, version, action, service, self.limits) {
            Ok(env) => env,
            Err(e) => {
                let (status, code, body) = fault_for(version, &Failure::Soap(e), None);
                return outcome(status, version.content_type().to_owned(), body, Some(code));
            }
        };
        seen.operation = Some(env.op.name.clone());
        // The door decides first; only a decided organisation is counted as the caller (a
        // refused claim is not anybody's call on the dashboard).
        let decided = identity(&self.door, presented, &env);
        let passed = decided.as_ref().ok().map(|who| {
            seen.organisation = env
                .metadata
                .as_ref()
                .and_then(|m| m.organisation_type)
                .map(|t| (t, who.organisation_code.clone()));
            self.cutover.passed(
                &who.organisation_type,
                &who.organisation_code,
                jiff::Timestamp::now(),
            )
        });
        // Every caller's cutover state, whatever it calls: the dashboard and the gauge show who
        // is past it and still calling.
        seen.past_cutover = passed;
        let exchange = async {
            match &env.op.behaviour {
                // Answered whoever asks: it calls nothing and tells what to use instead.
                Behaviour::Retired { replacement } => {
                    Err(Failure::Own(Fejl::MetodeUdgaaet, Some(replacement.clone())))
                }
                Behaviour::Call(plan) => call_exchange(self, &env, &decided?, plan, trace).await,
                Behaviour::Read(plan) => {
                    let who = decided?;
                    read_exchange(
                        self,
                        &env,
                        &who,
                        service,
                        plan,
                        raw,
                        trace,
                        passed.unwrap_or(false),
                    )
                    .await
                }
            }
        };
        // One deadline for all of the call's upstream work (code list, reads, write, legacy),
        // so the caller gets its fault within upstream_timeout_ms, not a multiple of it.
        let result = match tokio::time::timeout(self.upstream.deadline(), exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Upstream(UpstreamError::Timeout)),
        };
        let wsa = env.message_id.as_deref().map(|mid| WsaReply {
            relates_to: mid,
            // A fault the WSDL declares has the action of its wsdl:fault (WS-Addressing
            // metadata's default form), not the generic SOAP fault action.
            action: if result.is_ok() {
                env.op.response_action.clone()
            } else {
                format!("{}/Fault/ServiceFault", env.op.action)
            },
            message_id: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        });
        match result {
            Ok(Answer::Parts(parts)) => {
                let body = write::response(
                    version,
                    &service.namespace,
                    &env.op.response_element,
                    &parts,
                    wsa.as_ref(),
                );
                outcome(200, version.content_type().to_owned(), body, None)
            }
            Ok(Answer::Raw {
                status,
                content_type,
                body,
            }) => outcome(status, content_type, body, None),
            Err(failure) => {
                if let Failure::Upstream(e) = &failure {
                    tracing::warn!(operation = %env.op.name, error = %e, "upstream failure");
                }
                let (status, code, body) = fault_for(version, &failure, wsa.as_ref());
                outcome(status, version.content_type().to_owned(), body, Some(code))
            }
        }
    }
}

/// The converter's own work, phase by phase, without IO: what the benches measure (and
/// what a profile of `convert` shows between the upstream waits).
pub mod phases {
    use super::*;

    /// Content type and action, then the envelope.
    pub fn decode<'p>(
        service: &'p ServicePlan,
        limits: Limits,
        content_type: &str,
        soap_action: Option<&str>,
        body: &[u8],
    ) -> Result<Envelope<'p>, SoapError> {
        let (version, action) =
            version_and_action(content_type, soap_action).map_err(|fejl| SoapError {
                version: SoapVersion::V11,
                fejl,
                detail: None,
            })?;
        decode_envelope(body, version, action, service, limits)
    }

    /// The REST requests a decoded envelope leads to (the main call of a registration, with
    /// the id derived from a MessageID; the collections' calls of a read).
    pub fn requests(env: &Envelope<'_>) -> Result<Vec<RestRequest>, String> {
        let inputs = typed_inputs(env.op, &env.values).map_err(|f| format!("{f:?}"))?;
        match &env.op.behaviour {
            Behaviour::Call(plan) => {
                let who = identity(&Door::header_mode(), &Presented::Unverified, env)
                    .map_err(|f| format!("{f:?}"))?;
                let (call, id) = choose_call(plan, env, &who);
                Ok(vec![map_request(
                    call,
                    &inputs,
                    id.as_ref().map(|(t, c)| (*t, c)),
                )])
            }
            Behaviour::Read(plan) => Ok(plan
                .collections
                .iter()
                .map(|c| map_request(&c.call, &inputs, None))
                .collect()),
            Behaviour::Retired { .. } => Ok(Vec::new()),
        }
    }

    /// The SOAP response to a registration from REST's answer, or to a read from its
    /// collections' answers (in the order of `requests`).
    pub fn response(
        service: &ServicePlan,
        env: &Envelope<'_>,
        answers: &[Bytes],
    ) -> Result<Vec<u8>, String> {
        let inputs = typed_inputs(env.op, &env.values).map_err(|f| format!("{f:?}"))?;
        let parts = match &env.op.behaviour {
            Behaviour::Call(plan) => {
                let answer = answers.first().map_or(&b""[..], |a| &a[..]);
                let json = parse_answer(None, &plan.call.operation_id, answer)
                    .map_err(|f| format!("{f:?}"))?;
                map_response(&plan.response, &json, &inputs).map_err(|f| format!("{f:?}"))?
            }
            Behaviour::Read(plan) => {
                let mut items = Vec::new();
                for (c, a) in plan.collections.iter().zip(answers) {
                    items.push(
                        collection_items(c, Ok(a.clone()), &inputs, None)
                            .map_err(|f| format!("{f:?}"))?,
                    );
                }
                read_parts(plan, items, &inputs).map_err(|f| format!("{f:?}"))?
            }
            Behaviour::Retired { .. } => Vec::new(),
        };
        Ok(write::response(
            env.version,
            &service.namespace,
            &env.op.response_element,
            &parts,
            None,
        ))
    }

    /// The fault for a REST problem (100028 and the like), in the envelope's version.
    pub fn rest_fault(env: &Envelope<'_>, status: u16, fejlkode: u32, fejltekst: &str) -> Vec<u8> {
        fault_for(
            env.version,
            &Failure::Rest {
                status,
                fejlkode,
                fejltekst: fejltekst.to_owned(),
            },
            None,
        )
        .2
    }
}
