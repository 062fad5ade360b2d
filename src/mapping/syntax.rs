//! The mapping language as written: what `mappings/<Service>-<version>.toml` deserialises
//! into, with the spans `check` points its errors at. Nothing here is checked; `check`
//! turns these into a `Plan` or says what is wrong.

use serde::Deserialize;
use toml::Spanned;

use super::Transform;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceFile {
    pub(super) service: Spanned<ServiceDecl>,
    #[serde(rename = "operation", default)]
    pub(super) operations: Vec<Spanned<OperationDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceDecl {
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) namespace: String,
    pub(super) endpoint: String,
    pub(super) wsdl: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OperationDecl {
    pub(super) name: String,
    pub(super) call: Option<String>,
    pub(super) call_with_message_id: Option<WithIdDecl>,
    #[serde(default)]
    pub(super) request: Vec<Spanned<FieldDecl>>,
    #[serde(default)]
    pub(super) response: Vec<Spanned<FieldDecl>>,
    pub(super) unchanged: Option<UnchangedDecl>,
    pub(super) retired: Option<RetiredDecl>,
    /// A legacy WSRM queue operation, answered by the converter itself (issue 16).
    pub(super) queue: Option<QueueDecl>,
    #[serde(default, rename = "collection")]
    pub(super) collections: Vec<Spanned<CollectionDecl>>,
}

/// A repeated collection of a read's response, filled from one REST call's JSON array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CollectionDecl {
    /// SOAP path of the collection element below `<Op>Response`.
    pub(super) element: String,
    /// The repeated child's local name.
    pub(super) item: String,
    pub(super) call: String,
    #[serde(default)]
    pub(super) request: Vec<Spanned<FieldDecl>>,
    /// The JSON array of the answer that holds the items.
    pub(super) items: String,
    /// Item fields: from = JSON field of an array item, to = SOAP path below the item.
    pub(super) fields: Vec<Spanned<FieldDecl>>,
    /// REST codes that mean "this caller sees none of these": the collection is empty.
    #[serde(default)]
    pub(super) empty_on: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WithIdDecl {
    pub(super) call: String,
    pub(super) id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FieldDecl {
    /// A SOAP path (request), a JSON field (response), absent with `value` or `input`.
    #[serde(default)]
    pub(super) from: String,
    /// A constant instead of `from` (request).
    pub(super) value: Option<String>,
    /// A request element echoed into the response instead of `from` (response).
    pub(super) input: Option<String>,
    pub(super) to: String,
    #[serde(rename = "type")]
    pub(super) ty: Transform,
    #[serde(default)]
    pub(super) optional: bool,
    pub(super) codes: Option<CodesDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CodesDecl {
    pub(super) list: String,
    pub(super) error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnchangedDecl {
    pub(super) call: String,
    pub(super) request: Vec<Spanned<FieldDecl>>,
    pub(super) compare: Vec<Spanned<FieldDecl>>,
    pub(super) error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetiredDecl {
    pub(super) replacement: String,
}

/// `queue = { step = "...", sequence = "SequenceIdentifier" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueDecl {
    /// `create_sequence`, `terminate_sequence`, `close_sequence` or `messages` (the
    /// operation's name is the message kind).
    pub(super) step: String,
    /// The request element with the SequenceIdentifier (every step but create_sequence).
    pub(super) sequence: Option<String>,
}
