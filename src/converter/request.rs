//! Building REST requests from a call's inputs: the inputs in canonical form, path
//! parameters, query, headers and the JSON body, and the id a create gets from its
//! `wsa:MessageID` or, without one, from its content. No IO.

use crate::catalog::Fejl;
use crate::mapping::{CallPlan, Canon, OpPlan, RestCall, Source, Target};
use crate::upstream::{Identity, RestRequest};

use super::fault::Failure;

/// The namespace of the ids derived from (caller, operation, MessageID): fixed forever, or
/// a retry after an upgrade would create a second record.
const MESSAGE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a4e_8b3d_4c59_a7e0_5d2b_9c81_f346);

/// The namespace of the ids derived from (caller, operation, content), for creates without
/// a MessageID: fixed forever, like `MESSAGE_ID_NAMESPACE`, and another one, so that a
/// content can never give the id of some MessageID.
const CONTENT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x2b9e_7d10_c4a3_4f6e_9a58_e1d7_03c6_b2f4);

/// Every input in canonical form; a missing required element or a value of the wrong type
/// is refused, naming the element.
pub fn typed_inputs(op: &OpPlan, values: &[Option<String>]) -> Result<Vec<Option<Canon>>, Failure> {
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

/// The value an argument takes: an input's (if present) or a constant.
pub fn arg_value<'a>(source: &'a Source, inputs: &'a [Option<Canon>]) -> Option<&'a Canon> {
    match source {
        Source::Input(i) => inputs[*i].as_ref(),
        Source::Const(c) => Some(c),
    }
}

/// The REST request of a call: path parameters filled, headers, query and JSON body;
/// `extra` sets one more target (the id derived from a MessageID).
pub fn map_request(
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
    let body = (call.method != http::Method::GET).then(|| json_object(&body));
    RestRequest {
        operation_id: call.operation_id.clone(),
        method: call.method.clone(),
        path,
        headers,
        body,
    }
}

/// A JSON object of the members, written straight to bytes.
fn json_object(members: &[(&str, &Canon)]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(64 * members.len() + 2);
    out.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
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

/// The id a create without a MessageID gets: the same caller, operation and content (every
/// input of the operation in canonical form: for a create the CPR number, the type, the
/// start, the end and the event time) always give the same id, so a retry of the same
/// content creates one record. Its one consequence: two creates with the same content
/// (the event time is to the second) are one registration.
pub fn content_id(who: &Identity, operation: &str, inputs: &[Option<Canon>]) -> uuid::Uuid {
    let mut name = format!(
        "{}\n{}\n{operation}",
        who.organisation_type, who.organisation_code
    );
    for input in inputs {
        name.push('\n');
        match input {
            Some(v) => name.push_str(&v.to_text()),
            // Absent differs from every text (no input's text holds a NUL).
            None => name.push('\0'),
        }
    }
    uuid::Uuid::new_v5(&CONTENT_NAMESPACE, name.as_bytes())
}

/// The call a registration makes: with a `call_with_message_id` (a create), that call with
/// the id derived from the caller and the MessageID, or without a MessageID from the
/// caller and the content; else the plain call.
pub fn choose_call<'p>(
    plan: &'p CallPlan,
    operation: &str,
    message_id: Option<&str>,
    who: &Identity,
    inputs: &[Option<Canon>],
) -> (&'p RestCall, Option<(&'p Target, Canon)>) {
    match (&plan.with_message_id, message_id) {
        (Some((call, target)), Some(mid)) => (
            call,
            Some((target, Canon::Uuid(derived_id(who, operation, mid)))),
        ),
        (Some((call, target)), None) => (
            call,
            Some((target, Canon::Uuid(content_id(who, operation, inputs)))),
        ),
        (None, _) => (&plan.call, None),
    }
}
