//! One SOAP call's path through the converter, as named phases:
//!
//! `decode_envelope → map_request → call_upstream → map_response → encode_envelope`
//!
//! with the checks a mapping can ask for (code lists; the read-and-compare of rule 4)
//! between the first two. The phases are functions whose names are their steps, so a
//! profile and a log line read the same way. Errors become faults in exactly one place,
//! `fault_for`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::catalog::Fejl;
use crate::mapping::{
    Behaviour, CallPlan, Canon, OpPlan, OutField, Plan, RestCall, ServicePlan, Target,
};
use crate::soap::envelope::{Envelope, Limits, decode_envelope};
use crate::soap::write::{self, Side, WsaReply};
use crate::soap::{SoapError, SoapVersion, version_and_action};
use crate::upstream::{Identity, RestAnswer, RestRequest, Trace, Upstream, UpstreamError};

/// The namespace of the ids derived from (caller, operation, MessageID): fixed forever, or
/// a retry after an upgrade would create a second record.
const MESSAGE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a4e_8b3d_4c59_a7e0_5d2b_9c81_f346);

/// The converter's shared state: the compiled plan and the upstream client.
#[derive(Clone)]
pub struct Converter {
    pub plan: Arc<Plan>,
    pub upstream: Upstream,
    pub limits: Limits,
}

/// The answer to one SOAP request, with what the log and metrics need to know of it.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub operation: Option<String>,
    /// The fault's first error code, if the answer is a fault.
    pub fault_code: Option<u32>,
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

/// Who the caller is, from RequestUserMetadata.
fn identity(env: &Envelope<'_>) -> Result<Identity, Failure> {
    let m = env
        .metadata
        .as_ref()
        .ok_or(Failure::Own(Fejl::MetadataMangler, None))?;
    match (&m.organisation_type, &m.organisation_code) {
        (Some(t), Some(c)) => Ok(Identity {
            organisation_type: t.clone(),
            organisation_code: c.clone(),
            user: m.user.clone(),
        }),
        _ => Err(Failure::Own(
            Fejl::MetadataMangler,
            Some("OrganisationType og OrganisationCode skal udfyldes".into()),
        )),
    }
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

/// The REST request of a call: path parameters filled, headers, query and JSON body.
fn map_request(
    call: &RestCall,
    inputs: &[Option<Canon>],
    extra: Option<(&Target, &Canon)>,
) -> RestRequest {
    let mut path = call.path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut body = Map::new();
    let args = call
        .args
        .iter()
        .filter_map(|a| inputs[a.input].as_ref().map(|v| (&a.target, v)));
    for (target, value) in args.chain(extra) {
        match target {
            Target::Body(f) => {
                body.insert(f.clone(), value.to_json());
            }
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
    let body = (call.method != reqwest::Method::GET).then_some(Value::Object(body));
    RestRequest {
        operation_id: call.operation_id.clone(),
        method: call.method.clone(),
        path,
        headers,
        body,
    }
}

fn at<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(v, |v, seg| v.get(seg))
        .filter(|v| !v.is_null())
}

/// The SOAP response fields from REST's JSON answer.
fn map_response<'p>(
    fields: &'p [OutField],
    answer: &Value,
) -> Result<Vec<(&'p [String], String)>, Failure> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        match at(answer, &f.json) {
            Some(v) => {
                let c = f.ty.from_json(v).map_err(|_| {
                    Failure::Upstream(UpstreamError::Invalid(format!(
                        "{} is not a {:?}",
                        f.json.join("."),
                        f.ty
                    )))
                })?;
                out.push((f.soap.as_slice(), c.to_soap()));
            }
            None if f.optional => {}
            None => {
                return Err(Failure::Upstream(UpstreamError::Invalid(format!(
                    "the answer lacks {}",
                    f.json.join(".")
                ))));
            }
        }
    }
    Ok(out)
}

async fn call_upstream(
    conv: &Converter,
    req: &RestRequest,
    who: &Identity,
    trace: &Trace,
) -> Result<Value, Failure> {
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
        let (Some(codes), Some(Canon::Int(value))) = (&arg.codes, &inputs[arg.input]) else {
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
    for (input, json, ty) in &u.compare {
        let Some(sent) = &inputs[*input] else {
            continue;
        };
        let now = at(&current, json).and_then(|v| ty.from_json(v).ok());
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

async fn exchange<'p>(
    conv: &Converter,
    env: &Envelope<'p>,
    trace: &Trace,
) -> Result<Vec<(&'p [String], String)>, Failure> {
    let op = env.op;
    let plan = match &op.behaviour {
        Behaviour::Retired { replacement } => {
            return Err(Failure::Own(Fejl::MetodeUdgaaet, Some(replacement.clone())));
        }
        Behaviour::Call(plan) => plan,
    };
    let who = identity(env)?;
    let inputs = typed_inputs(op, &env.values)?;
    let id;
    let (call, extra) = match (&plan.with_message_id, &env.message_id) {
        (Some((call, target)), Some(mid)) => {
            id = Canon::Uuid(derived_id(&who, &op.name, mid));
            (call, Some((target, &id)))
        }
        _ => (&plan.call, None),
    };
    check_codes(conv, call, &inputs, &who, trace).await?;
    check_unchanged(conv, plan, &inputs, &who, trace).await?;
    let answer = call_upstream(conv, &map_request(call, &inputs, extra), &who, trace).await?;
    map_response(&plan.response, &answer)
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

impl Converter {
    /// Converts one SOAP request to `service` into its answer.
    pub async fn convert(
        &self,
        service: &ServicePlan,
        content_type: &str,
        soap_action: Option<&str>,
        body: &[u8],
        traceparent: Option<&str>,
    ) -> Outcome {
        let start = Instant::now();
        let trace = Trace::from_header(traceparent);
        let outcome = match version_and_action(content_type, soap_action) {
            Err(fejl) => {
                let failure = Failure::Soap(SoapError {
                    version: SoapVersion::V11,
                    fejl,
                    detail: None,
                });
                let (_, code, body) = fault_for(SoapVersion::V11, &failure, None);
                Outcome {
                    status: 415,
                    content_type: SoapVersion::V11.content_type(),
                    body,
                    operation: None,
                    fault_code: Some(code),
                }
            }
            Ok((version, action)) => {
                self.convert_envelope(service, version, action, body, &trace)
                    .await
            }
        };
        tracing::info!(
            service = %service.name,
            operation = outcome.operation.as_deref().unwrap_or("-"),
            status = outcome.status,
            fault = outcome.fault_code.unwrap_or(0),
            trace = %trace.trace_id(),
            micros = start.elapsed().as_micros() as u64,
            "soap call"
        );
        outcome
    }

    async fn convert_envelope(
        &self,
        service: &ServicePlan,
        version: SoapVersion,
        action: Option<&str>,
        body: &[u8],
        trace: &Trace,
    ) -> Outcome {
        let env = match decode_envelope(body, version, action, service, self.limits) {
            Ok(env) => env,
            Err(e) => {
                let (status, code, body) = fault_for(version, &Failure::Soap(e), None);
                return Outcome {
                    status,
                    content_type: version.content_type(),
                    body,
                    operation: None,
                    fault_code: Some(code),
                };
            }
        };
        // One deadline for all of the call's REST work (code list, read, write), so the
        // caller gets its fault within upstream_timeout_ms, not a multiple of it.
        let result =
            match tokio::time::timeout(self.upstream.deadline(), exchange(self, &env, trace)).await
            {
                Ok(r) => r,
                Err(_) => Err(Failure::Upstream(UpstreamError::Timeout)),
            };
        let message_id = env.message_id.as_deref();
        let wsa = message_id.map(|mid| WsaReply {
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
        let operation = Some(env.op.name.clone());
        match result {
            Ok(fields) => {
                let body = write::response(
                    version,
                    &service.namespace,
                    &env.op.response_element,
                    &fields,
                    wsa.as_ref(),
                );
                Outcome {
                    status: 200,
                    content_type: version.content_type(),
                    body,
                    operation,
                    fault_code: None,
                }
            }
            Err(failure) => {
                if let Failure::Upstream(e) = &failure {
                    tracing::warn!(operation = %env.op.name, error = %e, "upstream failure");
                }
                let (status, code, body) = fault_for(version, &failure, wsa.as_ref());
                Outcome {
                    status,
                    content_type: version.content_type(),
                    body,
                    operation,
                    fault_code: Some(code),
                }
            }
        }
    }
}
