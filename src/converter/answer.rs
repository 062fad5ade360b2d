//! REST answers to SOAP parts: a 2xx answer's JSON read in place, the mapped fields of an
//! answer or of one item of a collection, and a read's parts in the WSDL's order. No IO.

use crate::json::Json;
use crate::mapping::{Canon, OutField, OutSource, SoapValue};
use crate::soap::write::{Fields, Out};
use crate::upstream::{RestAnswer, UpstreamError};

use super::fault::Failure;

/// A 2xx answer's JSON, read in place; not JSON is an invalid answer of `operation_id`.
pub fn parse_answer<'a>(operation_id: &str, body: &'a [u8]) -> Result<Json<'a>, Failure> {
    RestAnswer::json(operation_id, body).map_err(|error| Failure::Answer {
        operation_id: operation_id.to_owned(),
        error,
    })
}

/// SOAP fields from a JSON object (the REST answer, or one item of a collection) and the
/// request's inputs.
pub fn map_fields<'p>(
    fields: &'p [OutField],
    json: &Json<'_>,
    inputs: &[Option<Canon>],
) -> Result<Fields<'p>, Failure> {
    map_with(fields, inputs, |_, path| json.at(path))
}

/// The values of one item's fields (in `out`, emptied first) from the values plucked per
/// field (`json::Paths::pluck` over the fields' paths, in their order) and the request's
/// inputs; texts are borrowed, not copied.
pub fn plucked_values<'p, 'v>(
    fields: &'p [OutField],
    slots: &'v [Option<Json<'_>>],
    inputs: &'v [Option<Canon>],
    out: &mut Vec<(&'p [String], SoapValue<'v>)>,
) -> Result<(), Failure> {
    out.clear();
    values_with(
        fields,
        inputs,
        |i, _| slots.get(i).and_then(Option::as_ref),
        |p, v| out.push((p, v)),
    )
}

/// The paths `plucked_values` reads, one per field (none for a field from an input).
pub fn field_paths(fields: &[OutField]) -> crate::json::Paths {
    let paths: Vec<&[String]> = fields
        .iter()
        .map(|f| match &f.source {
            OutSource::Json(path) => path.as_slice(),
            OutSource::Input(_) => &[],
        })
        .collect();
    crate::json::Paths::new(&paths)
}

fn map_with<'p, 'j, 'a: 'j>(
    fields: &'p [OutField],
    inputs: &'j [Option<Canon>],
    json_at: impl Fn(usize, &[String]) -> Option<&'j Json<'a>>,
) -> Result<Fields<'p>, Failure> {
    let mut out = Vec::with_capacity(fields.len());
    values_with(fields, inputs, json_at, |p, v| out.push((p, v.to_soap())))?;
    Ok(out)
}

/// Each field's value, in the fields' order, handed to `put` with the field's SOAP path;
/// an optional field without a value is left out.
fn values_with<'p, 'j, 'a: 'j>(
    fields: &'p [OutField],
    inputs: &'j [Option<Canon>],
    json_at: impl Fn(usize, &[String]) -> Option<&'j Json<'a>>,
    mut put: impl FnMut(&'p [String], SoapValue<'j>),
) -> Result<(), Failure> {
    for (i, f) in fields.iter().enumerate() {
        let value = match &f.source {
            OutSource::Json(path) => match json_at(i, path) {
                Some(v) => Some(f.ty.from_json_soap(v).map_err(|_| {
                    Failure::Upstream(UpstreamError::Invalid(format!(
                        "{} is not a {:?}",
                        path.join("."),
                        f.ty
                    )))
                })?),
                None => None,
            },
            OutSource::Input(i) => inputs[*i].as_ref().map(Canon::soap_value),
        };
        match value {
            Some(v) => put(f.soap.as_slice(), v),
            None if f.optional => {}
            None => {
                return Err(Failure::Upstream(UpstreamError::Invalid(format!(
                    "no value for {}",
                    f.soap.join("/")
                ))));
            }
        }
    }
    Ok(())
}

/// The SOAP response fields of a registration from REST's JSON answer.
pub fn map_response<'p>(
    fields: &'p [OutField],
    answer: &Json<'_>,
    inputs: &[Option<Canon>],
) -> Result<Vec<Out<'p>>, Failure> {
    Ok(map_fields(fields, answer, inputs)?
        .into_iter()
        .map(|(p, t)| Out::Leaf(p, t))
        .collect())
}
