//! The mapping language (`mappings/<Service>-<version>.toml`), its compilation into the
//! plan the request path looks things up in, and `check`: every mapping is verified against
//! its WSDL (`wsdl/`: elements exist, types fit, sequence order) and the REST contract
//! (`openapi/`: operations, parameters and fields exist, types fit, every required field has
//! a source). Compilation runs once at start; a wrong mapping stops the process with the
//! file and line. This module does no IO: it reads the embedded files.

pub mod openapi;
pub mod transform;
pub mod wsdl;

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::catalog::Fejl;
use crate::embedded;
use crate::vos;
use openapi::{Contract, RestOperation};
pub use transform::{Canon, Transform};
use wsdl::Wsdl;

/// The REST contract the mappings are checked against.
pub const OPENAPI_FILE: &str = "openapi/personvisitering-v1.json";

/// The identity headers the converter fills from RequestUserMetadata (not mapped per field).
const IDENTITY_HEADERS: [&str; 3] = [vos::HDR_ORG_TYPE, vos::HDR_ORG_CODE, vos::HDR_USER];

// ---- The language, as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    service: Spanned<ServiceDecl>,
    #[serde(rename = "operation", default)]
    operations: Vec<Spanned<OperationDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDecl {
    name: String,
    version: u32,
    namespace: String,
    endpoint: String,
    wsdl: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationDecl {
    name: String,
    call: Option<String>,
    call_with_message_id: Option<WithIdDecl>,
    #[serde(default)]
    request: Vec<Spanned<FieldDecl>>,
    #[serde(default)]
    response: Vec<Spanned<FieldDecl>>,
    unchanged: Option<UnchangedDecl>,
    retired: Option<RetiredDecl>,
    #[serde(default, rename = "collection")]
    collections: Vec<Spanned<CollectionDecl>>,
}

/// A repeated collection of a read's response, filled from one REST call's JSON array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionDecl {
    /// SOAP path of the collection element below `<Op>Response`.
    element: String,
    /// The repeated child's local name.
    item: String,
    call: String,
    #[serde(default)]
    request: Vec<Spanned<FieldDecl>>,
    /// The JSON array of the answer that holds the items.
    items: String,
    /// Item fields: from = JSON field of an array item, to = SOAP path below the item.
    fields: Vec<Spanned<FieldDecl>>,
    /// REST codes that mean "this caller sees none of these": the collection is empty.
    #[serde(default)]
    empty_on: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithIdDecl {
    call: String,
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDecl {
    /// A SOAP path (request), a JSON field (response), absent with `value` or `input`.
    #[serde(default)]
    from: String,
    /// A constant instead of `from` (request).
    value: Option<String>,
    /// A request element echoed into the response instead of `from` (response).
    input: Option<String>,
    to: String,
    #[serde(rename = "type")]
    ty: Transform,
    #[serde(default)]
    optional: bool,
    codes: Option<CodesDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodesDecl {
    list: String,
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnchangedDecl {
    call: String,
    request: Vec<Spanned<FieldDecl>>,
    compare: Vec<Spanned<FieldDecl>>,
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetiredDecl {
    replacement: String,
}

// ---- The compiled plan ----

/// Where a request value goes in the REST call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Body(String),
    Path(String),
    Header(String),
    Query(String),
}

impl Target {
    fn parse(s: &str) -> Option<Target> {
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

#[derive(Debug, Clone)]
pub struct Unchanged {
    pub read: RestCall,
    /// (input, JSON path in the read's answer, type).
    pub compare: Vec<(usize, Vec<String>, Transform)>,
    pub error: Fejl,
}

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

#[derive(Debug, Clone)]
pub enum Behaviour {
    Call(Box<CallPlan>),
    Read(Box<ReadPlan>),
    Retired { replacement: String },
}

#[derive(Debug, Clone)]
pub struct OpPlan {
    pub name: String,
    /// `<namespace>/<name>`: SOAPAction (1.1) and action (1.2).
    pub action: String,
    pub response_action: String,
    pub request_element: String,
    pub response_element: String,
    pub inputs: Vec<Input>,
    input_index: HashMap<String, usize>,
    pub behaviour: Behaviour,
}

impl OpPlan {
    /// The input read from the element at `path` (below `<Op>Request`), if any.
    pub fn input(&self, path: &str) -> Option<usize> {
        self.input_index.get(path).copied()
    }
}

#[derive(Debug)]
pub struct ServicePlan {
    pub name: String,
    pub version: u32,
    pub namespace: String,
    /// The converter's path for the service, e.g. `/PersonRegistrationService/9`.
    pub endpoint: String,
    pub wsdl_file: String,
    pub wsdl_text: &'static str,
    pub operations: Vec<OpPlan>,
    by_element: HashMap<String, usize>,
    by_action: HashMap<String, usize>,
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

/// A mapping that does not fit its contracts: the file, the line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MappingError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Compiles every `mappings/*-<version>.toml` service file against `wsdl/` and `openapi/`.
pub fn compile() -> Result<Plan, Vec<MappingError>> {
    let files: Vec<(&str, &str)> = embedded::folder("mappings")
        .filter(|(p, t)| p.ends_with(".toml") && t.contains("[service]"))
        .collect();
    compile_files(&files)
}

/// Compiles the given service files (path, text); `compile` and the tests use it.
pub fn compile_files(files: &[(&str, &str)]) -> Result<Plan, Vec<MappingError>> {
    let contract_text = embedded::file(OPENAPI_FILE).ok_or_else(|| {
        vec![MappingError {
            file: OPENAPI_FILE.into(),
            line: 0,
            message: "is missing".into(),
        }]
    })?;
    let contract = Contract::parse(contract_text).map_err(|message| {
        vec![MappingError {
            file: OPENAPI_FILE.into(),
            line: 0,
            message,
        }]
    })?;
    let mut errors = Vec::new();
    let mut services = Vec::new();
    let mut code_lists: Vec<RestCall> = Vec::new();
    for (file, text) in files {
        let mut c = Compiler {
            file,
            text,
            contract: &contract,
            errors: Vec::new(),
            code_lists: &mut code_lists,
        };
        if let Some(s) = c.service() {
            services.push(s);
        }
        errors.extend(c.errors);
    }
    for (i, s) in services.iter().enumerate() {
        if services[..i].iter().any(|o| o.endpoint == s.endpoint) {
            errors.push(MappingError {
                file: "mappings/".into(),
                line: 0,
                message: format!("endpoint {} is mapped twice", s.endpoint),
            });
        }
    }
    if errors.is_empty() {
        Ok(Plan {
            services,
            code_lists,
        })
    } else {
        Err(errors)
    }
}

struct Compiler<'a> {
    file: &'a str,
    text: &'a str,
    contract: &'a Contract,
    errors: Vec<MappingError>,
    code_lists: &'a mut Vec<RestCall>,
}

/// The inputs of one operation while it is compiled.
#[derive(Default)]
struct Inputs {
    list: Vec<Input>,
    index: HashMap<String, usize>,
}

impl Compiler<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(MappingError {
            file: self.file.to_owned(),
            line,
            message: message.into(),
        });
    }

    fn service(&mut self) -> Option<ServicePlan> {
        let decl: ServiceFile = match toml::from_str(self.text) {
            Ok(d) => d,
            Err(e) => {
                let line = e.span().map_or(0, |s| self.line(s));
                self.errors.push(MappingError {
                    file: self.file.to_owned(),
                    line,
                    message: e.message().to_owned(),
                });
                return None;
            }
        };
        let span = decl.service.span();
        let svc = decl.service.into_inner();
        let wsdl_path = format!("wsdl/{}", svc.wsdl);
        let Some(wsdl_text) = embedded::file(&wsdl_path) else {
            self.err(span, format!("{wsdl_path} does not exist"));
            return None;
        };
        let wsdl = match Wsdl::parse(wsdl_text) {
            Ok(w) => w,
            Err(e) => {
                self.errors.push(MappingError {
                    file: wsdl_path,
                    line: 0,
                    message: e,
                });
                return None;
            }
        };
        if wsdl.target_namespace != svc.namespace {
            self.err(
                span.clone(),
                format!(
                    "namespace {} is not the WSDL's {}",
                    svc.namespace, wsdl.target_namespace
                ),
            );
        }
        if !svc.endpoint.starts_with('/') {
            self.err(span.clone(), "endpoint must start with /");
        }
        for op in &wsdl.operations {
            if !decl.operations.iter().any(|d| d.get_ref().name == op.name) {
                self.err(
                    span.clone(),
                    format!("WSDL operation {} has no mapping", op.name),
                );
            }
        }
        let mut operations = Vec::new();
        for op in decl.operations {
            let span = op.span();
            if let Some(plan) = self.operation(&svc, &wsdl, span, op.into_inner()) {
                operations.push(plan);
            }
        }
        let by_element = operations
            .iter()
            .enumerate()
            .map(|(i, o)| (o.request_element.clone(), i))
            .collect();
        let by_action = operations
            .iter()
            .enumerate()
            .map(|(i, o)| (o.action.clone(), i))
            .collect();
        Some(ServicePlan {
            name: svc.name,
            version: svc.version,
            namespace: svc.namespace,
            endpoint: svc.endpoint,
            wsdl_file: wsdl_path,
            wsdl_text,
            operations,
            by_element,
            by_action,
        })
    }

    fn operation(
        &mut self,
        svc: &ServiceDecl,
        wsdl: &Wsdl,
        span: std::ops::Range<usize>,
        op: OperationDecl,
    ) -> Option<OpPlan> {
        let action = format!("{}/{}", svc.namespace, op.name);
        let Some(w) = wsdl.operations.iter().find(|w| w.name == op.name) else {
            self.err(
                span,
                format!("operation {} is not in {}", op.name, svc.wsdl),
            );
            return None;
        };
        if w.actions.iter().any(|a| *a != action) {
            self.err(
                span.clone(),
                format!("the WSDL's soapAction for {} is not {action}", op.name),
            );
        }
        let request_element = format!("{}Request", op.name);
        let response_element = format!("{}Response", op.name);
        for el in [&request_element, &response_element] {
            if !wsdl.elements.contains_key(el) {
                self.err(
                    span.clone(),
                    format!("element {el} is not in the WSDL's schema"),
                );
                return None;
            }
        }
        let mut inputs = Inputs::default();
        let kinds = usize::from(op.call.is_some())
            + usize::from(op.retired.is_some())
            + usize::from(!op.collections.is_empty());
        if kinds != 1 {
            self.err(
                span,
                format!(
                    "{}: exactly one of `call`, `retired` and `[[operation.collection]]`",
                    op.name
                ),
            );
            return None;
        }
        let behaviour = match (op.call, op.retired) {
            (Some(_), Some(_)) => return None,
            (None, None) => {
                let plan = self.read(
                    wsdl,
                    &request_element,
                    &response_element,
                    &op.response,
                    op.collections,
                    &mut inputs,
                );
                Behaviour::Read(Box::new(plan))
            }
            (None, Some(r)) => {
                if !self.contract.operations.contains_key(&r.replacement) {
                    self.err(
                        span,
                        format!(
                            "retired.replacement {} is not a REST operationId",
                            r.replacement
                        ),
                    );
                }
                Behaviour::Retired {
                    replacement: r.replacement,
                }
            }
            (Some(call), None) => {
                let rest = self.rest_operation(&span, &call)?;
                let args = self.args(wsdl, &request_element, &op.request, &rest, &mut inputs, &[]);
                let with_message_id = match op.call_with_message_id {
                    Some(w) => {
                        let target = Target::parse(&w.id);
                        let with = self.rest_operation(&span, &w.call);
                        match (target, with) {
                            (Some(target), Some(with)) => {
                                let args = self.args(
                                    wsdl,
                                    &request_element,
                                    &op.request,
                                    &with,
                                    &mut inputs,
                                    std::slice::from_ref(&target),
                                );
                                self.check_target(&span, &with, &target, Transform::Uuid);
                                Some((rest_call(&with, args), target))
                            }
                            (None, _) => {
                                self.err(
                                    span.clone(),
                                    format!("call_with_message_id.id {} is not a target", w.id),
                                );
                                None
                            }
                            _ => None,
                        }
                    }
                    None => None,
                };
                let unchanged = op
                    .unchanged
                    .and_then(|u| self.unchanged(wsdl, &request_element, &span, u, &mut inputs));
                let response = self.response(
                    wsdl,
                    &response_element,
                    &op.response,
                    Some(&rest),
                    &mut inputs,
                    true,
                );
                if let Some((with, _)) = &with_message_id
                    && let Some(with_rest) = self.contract.operations.get(&with.operation_id)
                {
                    let with_rest = with_rest.clone();
                    self.response(
                        wsdl,
                        &response_element,
                        &op.response,
                        Some(&with_rest),
                        &mut inputs,
                        false,
                    );
                }
                Behaviour::Call(Box::new(CallPlan {
                    call: rest_call(&rest, args),
                    with_message_id,
                    unchanged,
                    response,
                }))
            }
        };
        Some(OpPlan {
            name: op.name,
            response_action: format!("{action}Response"),
            action,
            request_element,
            response_element,
            inputs: inputs.list,
            input_index: inputs.index,
            behaviour,
        })
    }

    fn rest_operation(&mut self, span: &std::ops::Range<usize>, id: &str) -> Option<RestOperation> {
        let op = self.contract.operations.get(id).cloned();
        if op.is_none() {
            self.err(
                span.clone(),
                format!("{id} is not an operationId of {OPENAPI_FILE}"),
            );
        }
        op
    }

    /// Checks a SOAP path below `root` and returns its sequence position.
    fn soap_path(
        &mut self,
        span: &std::ops::Range<usize>,
        wsdl: &Wsdl,
        root: &str,
        path: &str,
        ty: Transform,
        optional: bool,
    ) -> Option<Vec<usize>> {
        let Some((p, pos)) = wsdl.resolve(root, path) else {
            self.err(span.clone(), format!("{root} has no element {path}"));
            return None;
        };
        match &p.builtin {
            Some(b) if ty.xsd_types().contains(&b.as_str()) => {}
            Some(b) => self.err(
                span.clone(),
                format!(
                    "{path} is xs:{b}, which cannot carry type \"{}\"",
                    ty_name(ty)
                ),
            ),
            None => self.err(
                span.clone(),
                format!("{path} is a complex element, not a value"),
            ),
        }
        if p.min == 0 && !optional {
            self.err(
                span.clone(),
                format!("{path} has minOccurs=0 in the WSDL: mark it optional = true"),
            );
        }
        Some(pos)
    }

    fn check_order(
        &mut self,
        span: &std::ops::Range<usize>,
        last: &mut Option<Vec<usize>>,
        pos: Vec<usize>,
        what: &str,
    ) {
        if last.as_ref().is_some_and(|l| *l >= pos) {
            self.err(
                span.clone(),
                format!("{what} is out of the WSDL's sequence order"),
            );
        }
        *last = Some(pos);
    }

    fn input(
        &mut self,
        span: &std::ops::Range<usize>,
        inputs: &mut Inputs,
        path: &str,
        ty: Transform,
        optional: bool,
    ) -> usize {
        if let Some(&i) = inputs.index.get(path) {
            if inputs.list[i].ty != ty {
                self.err(
                    span.clone(),
                    format!("{path} is read as two different types"),
                );
            }
            inputs.list[i].optional &= optional;
            return i;
        }
        inputs.list.push(Input {
            path: path.to_owned(),
            ty,
            optional,
        });
        inputs.index.insert(path.to_owned(), inputs.list.len() - 1);
        inputs.list.len() - 1
    }

    /// Checks that a target exists on the REST operation with a type that fits.
    fn check_target(
        &mut self,
        span: &std::ops::Range<usize>,
        rest: &RestOperation,
        target: &Target,
        ty: Transform,
    ) {
        let (want_ty, want_format) = ty.json_type();
        let found = match target {
            Target::Body(f) => rest
                .body
                .as_ref()
                .and_then(|b| self.contract.field(b, f))
                .map(|(t, _)| t),
            Target::Path(n) | Target::Header(n) | Target::Query(n) => {
                let place = match target {
                    Target::Path(_) => "path",
                    Target::Header(_) => "header",
                    _ => "query",
                };
                rest.params
                    .iter()
                    .find(|p| p.place == place && p.name.eq_ignore_ascii_case(n))
                    .map(|p| p.ty.clone())
            }
        };
        match found {
            None => self.err(span.clone(), format!("{} has no {target:?}", rest.id)),
            Some(t)
                if t.ty != want_ty
                    || want_format.is_some_and(|f| t.format.as_deref() != Some(f)) =>
            {
                self.err(
                    span.clone(),
                    format!(
                        "{target:?} of {} is {}{}, which does not fit type \"{}\"",
                        rest.id,
                        t.ty,
                        t.format.map(|f| format!(" ({f})")).unwrap_or_default(),
                        ty_name(ty)
                    ),
                )
            }
            Some(_) => {}
        }
    }

    fn args(
        &mut self,
        wsdl: &Wsdl,
        root: &str,
        decls: &[Spanned<FieldDecl>],
        rest: &RestOperation,
        inputs: &mut Inputs,
        extra: &[Target],
    ) -> Vec<Arg> {
        let mut args = Vec::new();
        let mut last = None;
        for d in decls {
            let span = d.span();
            let d = d.get_ref();
            let source = match &d.value {
                Some(v) => match d.ty.from_soap(v) {
                    Ok(c) => Some(Source::Const(c)),
                    Err(e) => {
                        self.err(span, format!("value {v:?}: {e}"));
                        continue;
                    }
                },
                None => None,
            };
            if source.is_none() {
                let Some(pos) = self.soap_path(&span, wsdl, root, &d.from, d.ty, d.optional) else {
                    continue;
                };
                self.check_order(&span, &mut last, pos, &d.from);
            }
            let Some(target) = Target::parse(&d.to) else {
                self.err(
                    span,
                    format!(
                        "{} is not body.<field>, path.<param>, header.<name> or query.<param>",
                        d.to
                    ),
                );
                continue;
            };
            self.check_target(&span, rest, &target, d.ty);
            let codes = d.codes.as_ref().and_then(|c| self.codes(&span, c, d.ty));
            let source = match source {
                Some(s) => s,
                None => Source::Input(self.input(&span, inputs, &d.from, d.ty, d.optional)),
            };
            args.push(Arg {
                source,
                target,
                codes,
            });
        }
        self.check_sources(decls, rest, &args, extra);
        args
    }

    /// Every required body field and parameter of the call has a source.
    fn check_sources(
        &mut self,
        decls: &[Spanned<FieldDecl>],
        rest: &RestOperation,
        args: &[Arg],
        extra: &[Target],
    ) {
        let span = decls.first().map(Spanned::span).unwrap_or(0..0);
        let has = |t: &Target| args.iter().any(|a| a.target == *t) || extra.contains(t);
        if let Some(body) = &rest.body {
            for field in self.contract.required(body) {
                if !has(&Target::Body(field.clone())) {
                    self.err(
                        span.clone(),
                        format!("{} requires body.{field}, which nothing maps", rest.id),
                    );
                }
            }
        }
        for p in rest.params.iter().filter(|p| p.required) {
            let t = match p.place.as_str() {
                "path" => Target::Path(p.name.clone()),
                "header"
                    if IDENTITY_HEADERS
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(&p.name)) =>
                {
                    continue;
                }
                "header" => Target::Header(p.name.clone()),
                _ => Target::Query(p.name.clone()),
            };
            if !has(&t) {
                self.err(
                    span.clone(),
                    format!("{} requires {t:?}, which nothing maps", rest.id),
                );
            }
        }
    }

    fn codes(
        &mut self,
        span: &std::ops::Range<usize>,
        c: &CodesDecl,
        ty: Transform,
    ) -> Option<Codes> {
        if ty != Transform::Int {
            self.err(span.clone(), "codes apply to type \"int\" only");
        }
        let Some(error) = Fejl::ALL.into_iter().find(|f| f.key() == c.error) else {
            self.err(
                span.clone(),
                format!("{} is not a key of mappings/errors.toml", c.error),
            );
            return None;
        };
        let list = self.rest_operation(span, &c.list)?;
        let fits = list
            .answer
            .as_ref()
            .and_then(|a| self.contract.field(a, "koder"))
            .is_some_and(|(t, _)| t.ty == "array");
        if !fits {
            self.err(
                span.clone(),
                format!("{} does not answer a code list (koder[].kode)", c.list),
            );
        }
        if !self.code_lists.iter().any(|l| l.operation_id == list.id) {
            self.code_lists.push(rest_call(&list, Vec::new()));
        }
        Some(Codes {
            list: c.list.clone(),
            error,
        })
    }

    fn unchanged(
        &mut self,
        wsdl: &Wsdl,
        root: &str,
        span: &std::ops::Range<usize>,
        u: UnchangedDecl,
        inputs: &mut Inputs,
    ) -> Option<Unchanged> {
        let read = self.rest_operation(span, &u.call)?;
        let args = self.args(wsdl, root, &u.request, &read, inputs, &[]);
        let Some(error) = Fejl::ALL.into_iter().find(|f| f.key() == u.error) else {
            self.err(
                span.clone(),
                format!(
                    "unchanged.error {} is not a key of mappings/errors.toml",
                    u.error
                ),
            );
            return None;
        };
        let mut compare = Vec::new();
        let mut last = None;
        for d in &u.compare {
            let span = d.span();
            let d = d.get_ref();
            let Some(pos) = self.soap_path(&span, wsdl, root, &d.from, d.ty, d.optional) else {
                continue;
            };
            self.check_order(&span, &mut last, pos, &d.from);
            self.check_answer_field(&span, &read, &d.to, d.ty);
            let input = self.input(&span, inputs, &d.from, d.ty, d.optional);
            compare.push((input, d.to.split('.').map(str::to_owned).collect(), d.ty));
        }
        Some(Unchanged {
            read: rest_call(&read, args),
            compare,
            error,
        })
    }

    fn check_answer_field(
        &mut self,
        span: &std::ops::Range<usize>,
        rest: &RestOperation,
        path: &str,
        ty: Transform,
    ) -> Option<bool> {
        let Some(answer) = rest.answer.clone() else {
            self.err(span.clone(), format!("{} answers no JSON", rest.id));
            return None;
        };
        self.check_schema_field(span, &answer, path, ty)
    }

    /// Response fields: from the REST answer (`answer`, checked against its schema) or
    /// echoed from the request (`input = ...`). `check_required`: every required top-level
    /// response element has a source.
    fn response(
        &mut self,
        wsdl: &Wsdl,
        root: &str,
        decls: &[Spanned<FieldDecl>],
        answer: Option<&RestOperation>,
        inputs: &mut Inputs,
        check_required: bool,
    ) -> Vec<OutField> {
        let mut out = Vec::new();
        let mut last = None;
        for d in decls {
            let span = d.span();
            let d = d.get_ref();
            let Some(f) = self.out_field(
                &span,
                wsdl,
                root,
                "",
                d,
                answer.and_then(|a| a.answer.clone()).as_ref(),
                &mut last,
                inputs,
            ) else {
                continue;
            };
            out.push(f);
        }
        if check_required {
            let covered: Vec<String> = out.iter().filter_map(|o| o.soap.first().cloned()).collect();
            self.check_required_children(decls, wsdl, root, &covered);
        }
        out
    }

    fn check_required_children(
        &mut self,
        decls: &[Spanned<FieldDecl>],
        wsdl: &Wsdl,
        root: &str,
        covered: &[String],
    ) {
        if let Some(el) = wsdl.elements.get(root) {
            for c in el.children.iter().filter(|c| c.min > 0) {
                if !covered.contains(&c.name) {
                    let span = decls.first().map(Spanned::span).unwrap_or(0..0);
                    self.err(
                        span,
                        format!("{root}/{} is required in SOAP and nothing fills it", c.name),
                    );
                }
            }
        }
    }

    /// One output field below `root`/`prefix`; `schema` is the JSON object it reads from.
    #[allow(clippy::too_many_arguments)]
    fn out_field(
        &mut self,
        span: &std::ops::Range<usize>,
        wsdl: &Wsdl,
        root: &str,
        prefix: &str,
        d: &FieldDecl,
        schema: Option<&serde_json::Value>,
        last: &mut Option<Vec<usize>>,
        inputs: &mut Inputs,
    ) -> Option<OutField> {
        let full = if prefix.is_empty() {
            d.to.clone()
        } else {
            format!("{prefix}/{}", d.to)
        };
        let Some((p, pos)) = wsdl.resolve(root, &full) else {
            self.err(span.clone(), format!("{root} has no element {full}"));
            return None;
        };
        let soap_optional = p.min == 0;
        let builtin = p.builtin.clone();
        if !builtin
            .as_ref()
            .is_some_and(|b| d.ty.xsd_types().contains(&b.as_str()))
        {
            self.err(
                span.clone(),
                format!("{} cannot carry type \"{}\"", d.to, ty_name(d.ty)),
            );
        }
        self.check_order(span, last, pos, &d.to);
        let source = if let Some(input) = &d.input {
            // An echo of a request element: it must be read from the request.
            let req_root = root
                .strip_suffix("Response")
                .map(|r| format!("{r}Request"))
                .unwrap_or_default();
            self.soap_path(span, wsdl, &req_root, input, d.ty, d.optional)?;
            OutSource::Input(self.input(span, inputs, input, d.ty, d.optional))
        } else {
            let Some(schema) = schema else {
                self.err(span.clone(), "nothing to read `from` here: use `input`");
                return None;
            };
            if let Some(always) = self.check_schema_field(span, schema, &d.from, d.ty)
                && !always
                && !soap_optional
            {
                self.err(
                    span.clone(),
                    format!(
                        "{} is required in SOAP but {} may be absent or null in REST",
                        d.to, d.from
                    ),
                );
            }
            OutSource::Json(d.from.split('.').map(str::to_owned).collect())
        };
        Some(OutField {
            source,
            soap: d.to.split('/').map(str::to_owned).collect(),
            ty: d.ty,
            optional: soap_optional,
        })
    }

    /// A field of a JSON schema with a type that fits; Some(whether always present).
    fn check_schema_field(
        &mut self,
        span: &std::ops::Range<usize>,
        schema: &serde_json::Value,
        path: &str,
        ty: Transform,
    ) -> Option<bool> {
        let Some((t, required)) = self.contract.field(schema, path) else {
            self.err(span.clone(), format!("the REST answer has no field {path}"));
            return None;
        };
        let (want_ty, want_format) = ty.json_type();
        if t.ty != want_ty || want_format.is_some_and(|f| t.format.as_deref() != Some(f)) {
            self.err(
                span.clone(),
                format!(
                    "{path} of the REST answer is {}, which does not fit type \"{}\"",
                    t.ty,
                    ty_name(ty)
                ),
            );
        }
        Some(required && !t.nullable)
    }

    fn read(
        &mut self,
        wsdl: &Wsdl,
        request_root: &str,
        root: &str,
        echo_decls: &[Spanned<FieldDecl>],
        decls: Vec<Spanned<CollectionDecl>>,
        inputs: &mut Inputs,
    ) -> ReadPlan {
        let echo = self.response(wsdl, root, echo_decls, None, inputs, false);
        let mut parts: Vec<(Vec<usize>, ReadPart)> = Vec::new();
        for (i, e) in echo.iter().enumerate() {
            if let Some((_, pos)) = wsdl.resolve(root, &e.soap.join("/")) {
                parts.push((pos, ReadPart::Echo(i)));
            }
        }
        let mut collections = Vec::new();
        for c in decls {
            let span = c.span();
            let c = c.into_inner();
            let Some((el, pos)) = wsdl.resolve(root, &c.element) else {
                self.err(span, format!("{root} has no element {}", c.element));
                continue;
            };
            let item_ok = el
                .children
                .iter()
                .any(|k| k.name == c.item && k.max.is_none_or(|m| m > 1));
            if el.builtin.is_some() || !item_ok {
                self.err(
                    span.clone(),
                    format!("{} is not a collection of repeated {}", c.element, c.item),
                );
                continue;
            }
            let Some(rest) = self.rest_operation(&span, &c.call) else {
                continue;
            };
            let args = self.args(wsdl, request_root, &c.request, &rest, inputs, &[]);
            let item_schema = rest
                .answer
                .as_ref()
                .and_then(|a| self.contract.array_items(a, &c.items))
                .cloned();
            if item_schema.is_none() {
                self.err(
                    span.clone(),
                    format!("the answer of {} has no array {}", rest.id, c.items),
                );
            }
            let mut fields = Vec::new();
            let mut last = None;
            let item_path = format!("{}/{}", c.element, c.item);
            for f in &c.fields {
                let fspan = f.span();
                if let Some(of) = self.out_field(
                    &fspan,
                    wsdl,
                    root,
                    &item_path,
                    f.get_ref(),
                    item_schema.as_ref(),
                    &mut last,
                    inputs,
                ) {
                    fields.push(of);
                }
            }
            if let Some((item, _)) = wsdl.resolve(root, &item_path) {
                for k in item.children.iter().filter(|k| k.min > 0) {
                    if !fields.iter().any(|f| f.soap.first() == Some(&k.name)) {
                        self.err(
                            span.clone(),
                            format!(
                                "{item_path}/{} is required in SOAP and nothing fills it",
                                k.name
                            ),
                        );
                    }
                }
            }
            parts.push((pos, ReadPart::Collection(collections.len())));
            collections.push(CollectionPlan {
                element: c.element.split('/').map(str::to_owned).collect(),
                item: c.item,
                call: rest_call(&rest, args),
                items: c.items,
                fields,
                empty_on: c.empty_on,
            });
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let covered: Vec<String> = echo
            .iter()
            .filter_map(|o| o.soap.first().cloned())
            .chain(
                collections
                    .iter()
                    .filter_map(|c| c.element.first().cloned()),
            )
            .collect();
        self.check_required_children(echo_decls, wsdl, root, &covered);
        ReadPlan {
            echo,
            collections,
            order: parts.into_iter().map(|(_, p)| p).collect(),
        }
    }
}

fn rest_call(op: &RestOperation, args: Vec<Arg>) -> RestCall {
    RestCall {
        operation_id: op.id.clone(),
        method: op.method.clone(),
        path: op.path.clone(),
        args,
    }
}

fn ty_name(t: Transform) -> &'static str {
    match t {
        Transform::Cpr => "cpr",
        Transform::Int => "int",
        Transform::Bool => "bool",
        Transform::String => "string",
        Transform::Uuid => "uuid",
        Transform::Date => "date",
        Transform::Datetime => "datetime",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_mappings_compile() {
        let plan = compile().unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let prs = plan.service("/PersonRegistrationService/9").unwrap();
        assert_eq!(prs.operations.len(), 5);
        let op = prs
            .by_action("urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup")
            .unwrap();
        assert_eq!(op.request_element, "CreateContactGroupRequest");
        assert!(op.input("ContactGroup/ContactGroupStartTime").is_some());
    }

    fn errors_of(edit: impl Fn(&str) -> String) -> Vec<String> {
        let text = edit(embedded::file("mappings/PersonRegistrationService-9.toml").unwrap());
        match compile_files(&[("mappings/PersonRegistrationService-9.toml", &text)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn line_of(needle: &str) -> usize {
        let text = embedded::file("mappings/PersonRegistrationService-9.toml").unwrap();
        text[..text.find(needle).unwrap()].matches('\n').count() + 1
    }

    #[test]
    fn an_element_the_wsdl_lacks_is_named_with_file_and_line() {
        let e = errors_of(|t| {
            t.replace(
                "ContactGroup/ContactGroupStartTime\", to = \"body.startdato",
                "ContactGroup/ContactGroupStart\", to = \"body.startdato",
            )
        });
        let line = line_of("ContactGroup/ContactGroupStartTime\", to = \"body.startdato");
        assert!(
            e.iter().any(|m| m.starts_with(&format!(
                "mappings/PersonRegistrationService-9.toml:{line}:"
            )) && m.contains("ContactGroup/ContactGroupStart")),
            "{e:?}"
        );
    }

    #[test]
    fn a_json_field_the_contract_lacks_or_of_another_type_is_refused() {
        let e = errors_of(|t| t.replacen("body.kontaktgruppetype", "body.kontaktgruppeType", 1));
        assert!(e.iter().any(|m| m.contains("kontaktgruppeType")), "{e:?}");
        // ...and then body.kontaktgruppetype, which the contract requires, has no source.
        assert!(
            e.iter()
                .any(|m| m.contains("requires body.kontaktgruppetype")),
            "{e:?}"
        );
        let e = errors_of(|t| {
            t.replacen(
                "to = \"body.startdato\", type = \"date\"",
                "to = \"body.startdato\", type = \"int\"",
                1,
            )
        });
        assert!(
            e.iter().any(|m| m.contains("cannot carry type \"int\"")
                || m.contains("does not fit type \"int\"")),
            "{e:?}"
        );
    }

    #[test]
    fn sequence_order_and_optional_elements_are_checked() {
        // Swap two request entries: out of the WSDL's order.
        let e = errors_of(|t| {
            let a = "    { from = \"ContactGroup/ContactGroupStartTime\", to = \"body.startdato\", type = \"date\" },\n";
            let b = "    { from = \"ContactGroup/ContactGroupTypeIdentifier\"";
            let i = t.find(b).unwrap();
            let t = t.replacen(a, "", 1);
            let mut t = t;
            t.insert_str(i, a);
            t
        });
        assert!(
            e.iter()
                .any(|m| m.contains("out of the WSDL's sequence order")),
            "{e:?}"
        );
        let e = errors_of(|t| {
            t.replacen(
                "to = \"body.slutdato\", type = \"date\", optional = true",
                "to = \"body.slutdato\", type = \"date\"",
                1,
            )
        });
        assert!(e.iter().any(|m| m.contains("minOccurs=0")), "{e:?}");
    }

    #[test]
    fn unknown_operations_and_keys_are_refused() {
        let e = errors_of(|t| {
            t.replacen(
                "call = \"CreateKontaktgruppe\"",
                "call = \"CreateKontaktgruppen\"",
                1,
            )
        });
        assert!(
            e.iter()
                .any(|m| m.contains("CreateKontaktgruppen is not an operationId")),
            "{e:?}"
        );
        let e = errors_of(|t| {
            t.replacen(
                "error = \"felt_kan_ikke_aendres\"",
                "error = \"no_such_key\"",
                1,
            )
        });
        assert!(e.iter().any(|m| m.contains("no_such_key")), "{e:?}");
        let e = errors_of(|t| {
            t.replacen(
                "[[operation]]\nname = \"CreatePersonCategoryAndInterview\"",
                "[[operation]]\nname = \"CreatePersonCategoryAndInterviewX\"",
                1,
            )
        });
        assert!(
            e.iter()
                .any(|m| m
                    .contains("WSDL operation CreatePersonCategoryAndInterview has no mapping")),
            "{e:?}"
        );
        let e = errors_of(|t| t.replacen("type = \"cpr\"", "typ = \"cpr\"", 1));
        assert!(
            e.iter()
                .any(|m| m.contains("mappings/PersonRegistrationService-9.toml:")
                    && m.contains("typ")),
            "{e:?}"
        );
    }
}
