//! The compiled plan: what the request path looks up, per endpoint and per operation (the
//! inputs to read, the REST calls to make, where each answer's fields go). Built once by
//! `check` from the mapping files; nothing in it is re-derived on the request path.

use std::collections::HashMap;

use super::transform::{Canon, Transform};
use crate::catalog::Fejl;

/// Where a request value goes in the REST call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Body(String),
    Path(String),
    Header(String),
    Query(String),
}

impl Target {
    /// `body.<field>`, `path.<param>`, `header.<name>` or `query.<param>`, as in a mapping.
    pub(super) fn parse(s: &str) -> Option<Target> {
        let (place, name) = s.split_once('.')?;
        let name = name.to_owned();
        match place {
            "body" => Some(Target::Body(name)),
            "path" => Some(Target::Path(name)),
            "header" => Some(Target::Header(name)),
            "query" => Some(Target::Query(name)),
            _ => None,
        }
    }
}

/// A SOAP element the converter reads from a request.
#[derive(Debug, Clone)]
pub struct Input {
    /// Local names below `<Op>Request`, joined with "/".
    pub path: String,
    pub ty: Transform,
    pub optional: bool,
}

/// A code list an input must belong to.
#[derive(Debug, Clone)]
pub struct Codes {
    /// The REST code list operationId.
    pub list: String,
    pub error: Fejl,
}

/// Where an argument's value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One of the operation's inputs.
    Input(usize),
    /// A constant of the mapping.
    Const(Canon),
}

/// One value of a REST call: where it comes from, where it goes, the code list it must be in.
#[derive(Debug, Clone)]
pub struct Arg {
    pub source: Source,
    pub target: Target,
    pub codes: Option<Codes>,
}

/// One REST call, resolved against the contract.
#[derive(Debug, Clone)]
pub struct RestCall {
    pub operation_id: String,
    pub method: http::Method,
    /// Path template, `{name}` for path parameters.
    pub path: String,
    pub args: Vec<Arg>,
}

/// Where a response element's value comes from.
#[derive(Debug, Clone)]
pub enum OutSource {
    /// A field (dot path) of the REST answer, or of one item of a collection.
    Json(Vec<String>),
    /// A request input, echoed.
    Input(usize),
}

/// A SOAP response element filled from the REST answer.
#[derive(Debug, Clone)]
pub struct OutField {
    pub source: OutSource,
    pub soap: Vec<String>,
    pub ty: Transform,
    pub optional: bool,
}

/// Rule 4: the read made before a call, and the request values that must equal its answer.
#[derive(Debug, Clone)]
pub struct Unchanged {
    pub read: RestCall,
    /// (input, JSON path in the read's answer, type).
    pub compare: Vec<(usize, Vec<String>, Transform)>,
    pub error: Fejl,
}

/// A write (or a single read): one REST call, its answer mapped into the SOAP response.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub call: RestCall,
    /// With wsa:MessageID: this call, with the target set to the derived id.
    pub with_message_id: Option<(RestCall, Target)>,
    pub unchanged: Option<Unchanged>,
    pub response: Vec<OutField>,
}

/// A collection of a read: one REST call's array, item by item.
#[derive(Debug, Clone)]
pub struct CollectionPlan {
    /// SOAP path of the collection element below `<Op>Response`.
    pub element: Vec<String>,
    pub item: String,
    pub call: RestCall,
    pub items: String,
    /// Paths relative to the item element.
    pub fields: Vec<OutField>,
    pub empty_on: Vec<u32>,
    /// The field that names an item: the one read from the REST item's `id`
    /// ([`IDENTITY_FIELD`]), e.g. ContactGroupIdentifier. The shadow compare matches legacy
    /// and REST items by it, wherever it stands in the item.
    pub identity: Option<usize>,
    /// The field that numbers an item's versions (the REST item's `version`,
    /// [`VERSION_FIELD`]), if the contract has an element for it. With it the shadow compare
    /// matches history items by identity and version.
    pub version: Option<usize>,
}

/// The JSON field of a REST item that is its identity.
pub const IDENTITY_FIELD: &str = "id";
/// The JSON field of a REST item that numbers its versions.
pub const VERSION_FIELD: &str = "version";

impl CollectionPlan {
    /// The field read from the item's top-level JSON field `name`, if one is.
    pub(super) fn field_from(fields: &[OutField], name: &str) -> Option<usize> {
        fields
            .iter()
            .position(|f| matches!(&f.source, OutSource::Json(p) if p.len() == 1 && p[0] == name))
    }
}

/// One part of a read's response, in the WSDL's order.
#[derive(Debug, Clone, Copy)]
pub enum ReadPart {
    Echo(usize),
    Collection(usize),
}

/// A read assembled from several REST calls (made concurrently), each filling a
/// collection; after the caller's cutover the collections are empty and nothing is called.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub echo: Vec<OutField>,
    pub collections: Vec<CollectionPlan>,
    pub order: Vec<ReadPart>,
}

/// What an operation does.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Call(Box<CallPlan>),
    Read(Box<ReadPlan>),
    Retired {
        replacement: String,
    },
    /// A legacy WSRM operation, answered from the converter's own queues.
    Queue(QueuePlan),
}

/// A WSRM operation: its step, and the input holding the SequenceIdentifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    pub step: QueueStep,
    pub sequence: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStep {
    CreateSequence,
    TerminateSequence,
    CloseSequence,
    /// One of WsrmMessageService's operations: the sequence's messages of this kind.
    Messages(crate::wsrm::MessageKind),
}

/// One SOAP operation of a service.
#[derive(Debug, Clone)]
pub struct OpPlan {
    pub name: String,
    /// `<namespace>/<name>`: SOAPAction (1.1) and action (1.2).
    pub action: String,
    pub response_action: String,
    pub request_element: String,
    pub response_element: String,
    pub inputs: Vec<Input>,
    /// `Input::path` → index in `inputs`.
    pub(super) input_index: HashMap<String, usize>,
    pub behaviour: Behaviour,
}

impl OpPlan {
    /// The input read from the element at `path` (below `<Op>Request`), if any.
    pub fn input(&self, path: &str) -> Option<usize> {
        self.input_index.get(path).copied()
    }
}

/// One SOAP service (one endpoint, one WSDL).
#[derive(Debug)]
pub struct ServicePlan {
    pub name: String,
    pub version: u32,
    pub namespace: String,
    /// The converter's path for the service, e.g. `/PersonRegistrationService/9`.
    pub endpoint: String,
    pub wsdl_file: String,
    /// The WSDL as written, served at `?wsdl`; 'static because the plan lives as long as
    /// the process (the embedded file, or a text the caller of `compile_from` leaked).
    pub wsdl_text: &'static str,
    pub operations: Vec<OpPlan>,
    /// Request element local name → index in `operations`.
    pub(super) by_element: HashMap<String, usize>,
    /// SOAPAction / action → index in `operations`.
    pub(super) by_action: HashMap<String, usize>,
}

impl ServicePlan {
    pub fn by_action(&self, action: &str) -> Option<&OpPlan> {
        self.by_action.get(action).map(|&i| &self.operations[i])
    }
    pub fn by_request_element(&self, local: &str) -> Option<&OpPlan> {
        self.by_element.get(local).map(|&i| &self.operations[i])
    }
}

/// Every service the converter serves.
#[derive(Debug)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    /// The REST code lists some input is checked against (operationIds).
    pub code_lists: Vec<RestCall>,
}

impl Plan {
    pub fn service(&self, endpoint: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.endpoint == endpoint)
    }
}
