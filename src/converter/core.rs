//! The converter's sans-IO core: `Envelope → REST requests → REST answers → SOAP bytes` as
//! plain functions over the [`Call`] and the plan. No sockets, no clocks: the driver in
//! `converter` (and the golden tests and benches, through the same types) makes the calls
//! these steps ask for and hands their answers back.
//!
//! A registration (PRS) is [`Registration`]: its code lists, the read of rule 4, the write,
//! one after the other. A read (PSS, PHS) is [`Read`]: one REST call per collection (none
//! after the caller's cutover), then the answer written alone ([`ReadAnswer`]) or spliced
//! into the legacy service's ([`SplicedAnswer`]), both as the answers arrive, by the same
//! [`Transcoder`]. [`encode`] turns either's result into the bytes the caller gets.

use std::borrow::Cow;

use super::answer::{field_paths, map_fields, map_response, parse_answer, plucked_values};
use super::call::Call;
use super::fault::{Failure, fault_for};
use super::request::{arg_value, choose_call, map_request, typed_inputs};
use super::shadow::{self, Difference};
use crate::catalog::Fejl;
use crate::json::{Json, Paths};
use crate::json_stream::{ItemSplitter, SplitError};
use crate::mapping::{
    CallPlan, Canon, CollectionPlan, ReadPart, ReadPlan, RestCall, SoapValue, Target,
};
use crate::soap::splice::{Splicer, Step};
use crate::soap::write::{self, Fields, Out, ResponseWriter, WsaReply, write_item_values};
use crate::soap::{SoapError, SoapVersion};
use crate::upstream::{Identity, RestRequest, UpstreamError};

/// What a call produced: parts to write, the answer written, a legacy answer to send as it
/// is, or an answer that already went downstream in chunks.
pub enum Answer<'p> {
    Parts(Vec<Out<'p>>),
    /// The SOAP response, written (a read that did not need to stream).
    Bytes(Vec<u8>),
    Streamed(StreamEnd<Failure>),
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

/// How a streamed answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd<F> {
    Complete,
    /// A failure after the head left: the answer was cut off.
    Aborted(F),
    /// The caller went away.
    Gone,
}

impl<F> StreamEnd<F> {
    pub fn map<G>(self, f: impl FnOnce(F) -> G) -> StreamEnd<G> {
        match self {
            StreamEnd::Complete => StreamEnd::Complete,
            StreamEnd::Aborted(x) => StreamEnd::Aborted(f(x)),
            StreamEnd::Gone => StreamEnd::Gone,
        }
    }
}

/// The answer to one SOAP request.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub content_type: Cow<'static, str>,
    pub body: Vec<u8>,
    /// The fault's first error code, if the answer is a fault.
    pub fault_code: Option<u32>,
}

/// A registration's steps over its typed inputs and the REST call it makes.
pub struct Registration<'p> {
    plan: &'p CallPlan,
    inputs: Vec<Option<Canon>>,
    /// The call (with a MessageID, the one that takes the derived id) and that id.
    call: &'p RestCall,
    id: Option<(&'p Target, Canon)>,
}

/// A code an argument sends that must belong to a REST code list.
pub struct CodeCheck<'p> {
    /// The code list's operationId.
    pub list: &'p str,
    /// The request that reads the list (the driver caches its answer).
    pub request: RestRequest,
    pub value: i64,
    error: Fejl,
}

impl CodeCheck<'_> {
    /// The call is refused when the list does not have the code.
    pub fn judge(&self, known: &[i64]) -> Result<(), Failure> {
        if known.contains(&self.value) {
            Ok(())
        } else {
            Err(Failure::Own(self.error, None))
        }
    }
}

impl<'p> Registration<'p> {
    /// The registration `call` makes for `who` (the door's decision).
    pub fn new(call: &Call<'p>, plan: &'p CallPlan, who: &Identity) -> Result<Self, Failure> {
        let inputs = typed_inputs(call.op, &call.values)?;
        let (rest, id) = choose_call(
            plan,
            &call.op.name,
            call.message_id.as_deref(),
            who,
            &inputs,
        );
        Ok(Registration {
            plan,
            inputs,
            call: rest,
            id,
        })
    }

    /// The codes to check against REST's code lists (`code_lists`: the plan's), in the
    /// order of the call's arguments.
    pub fn code_checks(&self, code_lists: &'p [RestCall]) -> Vec<CodeCheck<'p>> {
        let mut out = Vec::new();
        for arg in &self.call.args {
            let (Some(codes), Some(Canon::Int(value))) =
                (&arg.codes, arg_value(&arg.source, &self.inputs))
            else {
                continue;
            };
            if let Some(list) = code_lists.iter().find(|l| l.operation_id == codes.list) {
                out.push(CodeCheck {
                    list: &codes.list,
                    request: map_request(list, &[], None),
                    value: *value,
                    error: codes.error,
                });
            }
        }
        out
    }

    /// Rule 4 and its kin: the read of the current record, if the mapping asks for one.
    pub fn unchanged_request(&self) -> Option<RestRequest> {
        let u = self.plan.unchanged.as_ref()?;
        Some(map_request(&u.read, &self.inputs, None))
    }

    /// Refuses a change to what cannot change, from the current record's answer.
    pub fn check_unchanged(&self, current: &[u8]) -> Result<(), Failure> {
        let Some(u) = &self.plan.unchanged else {
            return Ok(());
        };
        let current = parse_answer(&u.read.operation_id, current)?;
        for (input, json, ty) in &u.compare {
            let Some(sent) = &self.inputs[*input] else {
                continue;
            };
            let now = current.at(json).and_then(|v| ty.from_json(v).ok());
            if now.as_ref() != Some(sent) {
                return Err(Failure::Own(u.error, None));
            }
        }
        Ok(())
    }

    /// The write.
    pub fn request(&self) -> RestRequest {
        let extra = self.id.as_ref().map(|(t, c)| (*t, c));
        map_request(self.call, &self.inputs, extra)
    }

    /// The SOAP response from the write's 2xx answer.
    pub fn response(&self, answer: &[u8]) -> Result<Answer<'p>, Failure> {
        let json = parse_answer(&self.call.operation_id, answer)?;
        Ok(Answer::Parts(map_response(
            &self.plan.response,
            &json,
            &self.inputs,
        )?))
    }
}

/// A read's steps over its typed inputs.
pub struct Read<'p> {
    plan: &'p ReadPlan,
    inputs: Vec<Option<Canon>>,
    /// Before the caller's cutover: the collections come from REST.
    rest: bool,
}

impl<'p> Read<'p> {
    pub fn new(call: &Call<'p>, plan: &'p ReadPlan) -> Result<Self, Failure> {
        Ok(Read {
            plan,
            inputs: typed_inputs(call.op, &call.values)?,
            rest: call.reads_rest(),
        })
    }

    /// One REST request per collection, to be made concurrently; none after the cutover.
    pub fn requests(&self) -> Vec<RestRequest> {
        if !self.rest {
            return Vec::new();
        }
        self.plan
            .collections
            .iter()
            .map(|c| map_request(&c.call, &self.inputs, None))
            .collect()
    }

    pub fn collection(&self, i: usize) -> &'p CollectionPlan {
        &self.plan.collections[i]
    }
}

/// A read's answer written as its collections arrive (sans-IO): the driver asks for the
/// next collection that needs its REST answer, feeds that answer's bytes as they come, and
/// ends the collection; echoed inputs and the envelope are written in between.
///
/// ```text
/// let mut a = ReadAnswer::start(call, &read, out);
/// while let Some(i) = a.next_collection(out)? {
///     for chunk in answer_of(i) { a.feed(&chunk, out)? }   // only when i has an answer
///     a.end_collection(out)?;
/// }
/// a.finish(out);
/// ```
pub struct ReadAnswer<'r, 'p> {
    read: &'r Read<'p>,
    w: ResponseWriter<'p>,
    /// The next part of `plan.order` to write.
    part: usize,
    current: Option<Transcoder<'r, 'p>>,
}

impl<'r, 'p> ReadAnswer<'r, 'p> {
    /// Writes the envelope's start and the response element.
    pub fn start(call: &Call<'p>, read: &'r Read<'p>, out: &mut String) -> ReadAnswer<'r, 'p> {
        let wsa = wsa_reply(call, true);
        let w = ResponseWriter::start(
            out,
            call.version,
            &call.service().namespace,
            &call.op.response_element,
            wsa.as_ref(),
        );
        ReadAnswer {
            read,
            w,
            part: 0,
            current: None,
        }
    }

    /// Writes the parts up to the next collection and starts it: its index, or `None`
    /// when every part is written.
    pub fn next_collection(&mut self, out: &mut String) -> Result<Option<usize>, Failure> {
        let plan = self.read.plan;
        while let Some(part) = plan.order.get(self.part) {
            self.part += 1;
            match *part {
                ReadPart::Echo(i) => {
                    let fields = map_fields(
                        std::slice::from_ref(&plan.echo[i]),
                        &Json::Null,
                        &self.read.inputs,
                    )?;
                    for (path, text) in fields {
                        self.w.leaf(out, path, &text);
                    }
                }
                ReadPart::Collection(i) => {
                    self.w.start_collection(out, &plan.collections[i].element);
                    self.current = Some(Transcoder::new(self.read, i));
                    return Ok(Some(i));
                }
            }
        }
        Ok(None)
    }

    /// The next bytes of the current collection's REST answer.
    pub fn feed(&mut self, chunk: &[u8], out: &mut String) -> Result<(), Failure> {
        let w = &mut self.w;
        match &mut self.current {
            Some(t) => t.feed(chunk, |item, values| w.item_values(out, item, values)),
            None => Ok(()),
        }
    }

    /// The current collection ends; `answered` says whether it had a REST answer (fed
    /// whole), or is empty without one (after the cutover, or a problem in `empty_on`).
    pub fn end_collection(&mut self, out: &mut String, answered: bool) -> Result<(), Failure> {
        if let Some(t) = self.current.take()
            && answered
        {
            t.finish()?;
        }
        self.w.end_collection(out);
        Ok(())
    }

    /// Closes the answer.
    pub fn finish(self, out: &mut String) {
        self.w.finish(out);
    }
}

/// The longest item of a collection's answer (one contact group version is ~0.5 KiB).
const MAX_ITEM_BYTES: usize = 1 << 20;

/// One collection's items, transcoded from its REST answer as the answer arrives: each
/// element of the answer's array (`json_stream::ItemSplitter`) has the fields the mapping
/// reads plucked (`json::Paths`) and is written as an item of the SOAP collection at once.
/// What a call holds is one item and the SOAP written since the last chunk left, however
/// long the answer.
struct Transcoder<'r, 'p> {
    read: &'r Read<'p>,
    collection: &'p CollectionPlan,
    split: ItemSplitter,
    paths: Paths,
    /// Per item, the plucked values and the fields' values, which borrow from that item's
    /// bytes: kept empty between items only for their allocations.
    slots: Vec<Option<Json<'static>>>,
    values: Vec<(&'p [String], SoapValue<'static>)>,
}

impl<'r, 'p> Transcoder<'r, 'p> {
    fn new(read: &'r Read<'p>, collection: usize) -> Transcoder<'r, 'p> {
        let c = read.collection(collection);
        Transcoder {
            read,
            collection: c,
            split: ItemSplitter::new(&c.items, MAX_ITEM_BYTES),
            paths: field_paths(&c.fields),
            slots: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The next bytes of the answer; each item completed by them goes to `emit` (the item
    /// element's name and its fields).
    fn feed(
        &mut self,
        chunk: &[u8],
        mut emit: impl FnMut(&'p str, &[(&'p [String], SoapValue<'_>)]),
    ) -> Result<(), Failure> {
        let (c, paths, inputs) = (self.collection, &self.paths, &self.read.inputs);
        let (kept_slots, kept_values) = (&mut self.slots, &mut self.values);
        self.split
            .feed(chunk, |item| {
                let mut slots = recycle_slots(std::mem::take(kept_slots));
                paths
                    .pluck(item, &mut slots)
                    .map_err(|_| invalid(c, "an item is not JSON"))?;
                let mut values = recycle_values(std::mem::take(kept_values));
                plucked_values(&c.fields, &slots, inputs, &mut values)?;
                emit(&c.item, &values);
                *kept_values = recycle_values(values);
                *kept_slots = recycle_slots(slots);
                Ok(())
            })
            .map_err(|e| match e {
                SplitError::Fault(f) => invalid(c, &f.to_string()),
                SplitError::Callback(failure) => failure,
            })
    }

    /// The answer ended: it must have been one object with the collection's array.
    fn finish(self) -> Result<(), Failure> {
        self.split
            .finish()
            .map(|_| ())
            .map_err(|f| invalid(self.collection, &f.to_string()))
    }
}

/// `v` emptied, for values of another lifetime (the allocation is reused: same layout).
fn recycle_slots<'b>(mut v: Vec<Option<Json<'_>>>) -> Vec<Option<Json<'b>>> {
    v.clear();
    v.into_iter().map(|_| None).collect()
}

/// `v` emptied, for values of another lifetime (the allocation is reused: same layout).
fn recycle_values<'p, 'b>(
    mut v: Vec<(&'p [String], SoapValue<'_>)>,
) -> Vec<(&'p [String], SoapValue<'b>)> {
    v.clear();
    v.into_iter()
        .map(|(p, _)| (p, SoapValue::Text("")))
        .collect()
}

/// The most items of one collection kept, per side, for the shadow compare; a call with
/// more is not compared (the driver says so in the log).
pub const SHADOW_MAX_ITEMS: usize = 10_000;

/// What the driver of a [`SplicedAnswer`] does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Splice {
    /// Feed the next bytes of the legacy answer, or end it.
    More,
    /// Collection `i` is open in the legacy answer: feed its REST answer (if it has one),
    /// then end the collection.
    Collection(usize),
    /// The legacy answer is written to its end.
    Done,
}

/// A read's answer spliced into the legacy service's as both arrive (sans-IO): the legacy
/// bytes are copied through (`soap::splice::Splicer`) up to where a collection goes; there
/// the collection's REST answer is transcoded in by the plain read's [`Transcoder`], each
/// item written with the legacy collection's prefix. With the shadow compare (before the
/// cutover), both sides' items are kept, at most [`SHADOW_MAX_ITEMS`] per collection.
///
/// ```text
/// let mut a = SplicedAnswer::new(call, &read, compare);
/// loop { match a.next(out)? {
///     Splice::More => match legacy.next() { Some(c) => a.feed_legacy(&c)?, None => a.end_legacy() },
///     Splice::Collection(i) => { for chunk in answer_of(i) { a.feed(&chunk, out)? }; a.end_collection(answered)? }
///     Splice::Done => break,
/// }}
/// for i in answers the legacy answer had no place for { a.check(i); feed; end_collection }
/// let differences = a.finish();
/// ```
pub struct SplicedAnswer<'r, 'p> {
    read: &'r Read<'p>,
    splicer: Splicer<'p>,
    /// The collection being transcoded, and its items' prefix: `None` for a REST answer
    /// that is only checked (the legacy answer had no place for it).
    current: Option<(usize, Transcoder<'r, 'p>, Option<Option<String>>)>,
    compare: bool,
    rest_items: Vec<Vec<Fields<'p>>>,
    overflow: bool,
}

impl<'r, 'p> SplicedAnswer<'r, 'p> {
    /// `compare`: the shadow compare is on (it runs only before the caller's cutover).
    pub fn new(call: &Call<'p>, read: &'r Read<'p>, compare: bool) -> SplicedAnswer<'r, 'p> {
        let compare = compare && read.rest;
        let collections = read
            .plan
            .collections
            .iter()
            .map(|c| c.element.last().map_or("", String::as_str))
            .collect();
        SplicedAnswer {
            read,
            splicer: Splicer::new(
                &call.service().namespace,
                collections,
                compare.then_some(SHADOW_MAX_ITEMS),
            ),
            current: None,
            compare,
            rest_items: vec![Vec::new(); read.plan.collections.len()],
            overflow: false,
        }
    }

    /// The next bytes of the legacy answer.
    pub fn feed_legacy(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        self.splicer.feed(chunk).map_err(legacy_invalid)
    }

    /// The legacy answer ended.
    pub fn end_legacy(&mut self) {
        self.splicer.end();
    }

    /// Writes the legacy answer on, up to the next collection.
    pub fn next(&mut self, out: &mut String) -> Result<Splice, Failure> {
        match self.splicer.next(out).map_err(legacy_invalid)? {
            Step::More => Ok(Splice::More),
            Step::Done => Ok(Splice::Done),
            Step::Collection { index, prefix } => {
                self.current = Some((index, Transcoder::new(self.read, index), Some(prefix)));
                Ok(Splice::Collection(index))
            }
        }
    }

    /// Collection `i`'s REST answer is read and checked, not written (the legacy answer
    /// had no place for it).
    pub fn check(&mut self, i: usize) {
        self.current = Some((i, Transcoder::new(self.read, i), None));
    }

    /// The next bytes of the current collection's REST answer.
    pub fn feed(&mut self, chunk: &[u8], out: &mut String) -> Result<(), Failure> {
        let Some((i, t, prefix)) = &mut self.current else {
            return Ok(());
        };
        let (compare, kept, overflow) =
            (self.compare, &mut self.rest_items[*i], &mut self.overflow);
        let prefix = &*prefix;
        t.feed(chunk, |item, values| {
            if let Some(prefix) = prefix {
                write_item_values(out, prefix.as_deref(), item, values);
            }
            if compare {
                if kept.len() < SHADOW_MAX_ITEMS {
                    kept.push(values.iter().map(|(p, v)| (*p, v.to_soap())).collect());
                } else {
                    *overflow = true;
                }
            }
        })
    }

    /// The current collection ends; `answered`: it had a REST answer (fed whole).
    pub fn end_collection(&mut self, answered: bool) -> Result<(), Failure> {
        match self.current.take() {
            Some((_, t, _)) if answered => t.finish(),
            _ => Ok(()),
        }
    }

    /// How the legacy collections differed from REST's (empty without the shadow compare);
    /// `None` when a collection had too many items to compare.
    pub fn finish(self) -> Option<Vec<Difference<'p>>> {
        if !self.compare {
            return Some(Vec::new());
        }
        let (legacy, overflow) = self.splicer.legacy_items();
        if overflow || self.overflow {
            return None;
        }
        Some(shadow::compare(self.read.plan, &self.rest_items, &legacy))
    }
}

/// The legacy answer cannot be spliced: an invalid answer.
fn legacy_invalid(e: String) -> Failure {
    Failure::Upstream(UpstreamError::Invalid(e))
}

/// A collection's answer is not the list it should be: an invalid answer of its operation.
fn invalid(c: &CollectionPlan, what: &str) -> Failure {
    Failure::Answer {
        operation_id: c.call.operation_id.clone(),
        error: UpstreamError::Invalid(format!("{} ({}): {what}", c.call.operation_id, c.items)),
    }
}

/// The bytes the caller gets for `result`: the response, the legacy answer as spliced, or
/// the fault, with WS-Addressing headers when the request had a MessageID.
pub fn encode(call: &Call<'_>, result: Result<Answer<'_>, Failure>) -> Outcome {
    let version = call.version;
    let op = call.op;
    let wsa = wsa_reply(call, result.is_ok());
    match result {
        Ok(Answer::Parts(parts)) => Outcome {
            status: 200,
            content_type: Cow::Borrowed(version.content_type()),
            body: write::response(
                version,
                &call.service().namespace,
                &op.response_element,
                &parts,
                wsa.as_ref(),
            ),
            fault_code: None,
        },
        Ok(Answer::Raw {
            status,
            content_type,
            body,
        }) => Outcome {
            status,
            content_type: Cow::Owned(content_type),
            body,
            fault_code: None,
        },
        Ok(Answer::Bytes(body)) => Outcome {
            status: 200,
            content_type: Cow::Borrowed(version.content_type()),
            body,
            fault_code: None,
        },
        // Its pieces went downstream already; nothing is left to send.
        Ok(Answer::Streamed(_)) => Outcome {
            status: 200,
            content_type: Cow::Borrowed(version.content_type()),
            body: Vec::new(),
            fault_code: None,
        },
        Err(failure) => fault(version, &failure, wsa.as_ref()),
    }
}

/// The WS-Addressing headers of the answer to a request with a MessageID: a response's, or
/// (`ok` false) a fault's.
pub fn wsa_reply<'c>(call: &'c Call<'_>, ok: bool) -> Option<WsaReply<'c>> {
    let op = call.op;
    call.message_id.as_deref().map(|mid| WsaReply {
        relates_to: mid,
        // A fault the WSDL declares has the action of its wsdl:fault (WS-Addressing
        // metadata's default form), not the generic SOAP fault action.
        action: if ok {
            op.response_action.clone()
        } else {
            format!("{}/Fault/ServiceFault", op.action)
        },
        message_id: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
    })
}

/// The fault for `failure`, as an outcome.
pub fn fault(version: SoapVersion, failure: &Failure, wsa: Option<&WsaReply<'_>>) -> Outcome {
    let (status, code, body) = fault_for(version, failure, wsa);
    Outcome {
        status,
        content_type: Cow::Borrowed(version.content_type()),
        body,
        fault_code: Some(code),
    }
}

/// The answer to a request refused before its envelope was read: a Client fault with a
/// catalogue code, in `version`, with its own HTTP status (413, 415, ...).
pub fn refusal(version: SoapVersion, status: u16, fejl: Fejl, detail: Option<String>) -> Outcome {
    let failure = Failure::Soap(SoapError {
        version,
        fejl,
        detail,
    });
    Outcome {
        status,
        ..fault(version, &failure, None)
    }
}
