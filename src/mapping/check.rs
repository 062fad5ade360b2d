//! The checker: the mapping files (`syntax`), their WSDLs and the OpenAPI
//! document in, a [`Plan`] or every [`MappingError`] found out. Every path, type, sequence
//! order and required field is checked here, once, at start, so the request path only looks
//! things up.
//!
//! The texts come in a [`Sources`]: [`compile`] takes the files embedded in the binary,
//! [`compile_from`] any others (the tests' fixtures under `tests/mapping_errors/`).
//!
//! The work is split by scope rather than by long parameter lists: a `Compiler` per
//! mapping file (where errors point, what it is checked against), an `OpScope` per
//! operation (its WSDL, its elements, the inputs read so far), an `OutScope` per list of
//! response fields (below which element, read from which JSON schema, in which order) and a
//! `Read` per request element a field reads.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde_json::Value;
use toml::Spanned;

use super::openapi::{Contract, FieldType, RestOperation};
use super::plan::{
    Arg, Behaviour, CallPlan, Codes, CollectionPlan, IDENTITY_FIELD, Input, OpPlan, OutField,
    OutSource, Plan, QueuePlan, QueueStep, ReadPart, ReadPlan, RestCall, ServicePlan, Source,
    Target, Unchanged, VERSION_FIELD,
};
use super::syntax::{
    CodesDecl, CollectionDecl, FieldDecl, OperationDecl, QueueDecl, RetiredDecl, ServiceDecl,
    ServiceFile, UnchangedDecl, WithIdDecl,
};
use super::transform::Transform;
use super::wsdl::{Particle, Wsdl};
use crate::catalog::Fejl;
use crate::embedded;
use crate::vos;

/// The REST contract the mappings are checked against.
pub const OPENAPI_FILE: &str = "openapi/personvisitering-v1.json";

/// The identity headers the converter fills from RequestUserMetadata (not mapped per field).
const IDENTITY_HEADERS: [&str; 3] = [vos::HDR_ORG_TYPE, vos::HDR_ORG_CODE, vos::HDR_USER];

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

/// The texts a plan is compiled from. Paths are only names here: they are what errors say.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    /// The service mapping files: (path, text), e.g. `mappings/PersonRegistrationService-9.toml`.
    pub mappings: Vec<(&'a str, &'a str)>,
    /// The WSDL texts by file name, as a mapping's `[service] wsdl` names them (e.g.
    /// `PersonRegistrationService-9.wsdl`; errors say `wsdl/<name>`). 'static because the
    /// plan keeps the text to serve it at `?wsdl` (`ServicePlan::wsdl_text`).
    pub wsdls: Vec<(&'a str, &'static str)>,
    /// The OpenAPI document: (path, text).
    pub openapi: (&'a str, &'a str),
}

impl Sources<'static> {
    /// The files compiled into the binary: every `mappings/*.toml` with a `[service]`, every
    /// file of `wsdl/`, and [`OPENAPI_FILE`].
    pub fn embedded() -> Result<Sources<'static>, MappingError> {
        let openapi = embedded::file(OPENAPI_FILE).ok_or_else(|| MappingError {
            file: OPENAPI_FILE.into(),
            line: 0,
            message: "is missing".into(),
        })?;
        Ok(Sources {
            mappings: embedded::folder("mappings")
                .filter(|(p, t)| p.ends_with(".toml") && t.contains("[service]"))
                .collect(),
            wsdls: embedded::folder("wsdl")
                .filter_map(|(p, t)| Some((p.strip_prefix("wsdl/")?, t)))
                .collect(),
            openapi: (OPENAPI_FILE, openapi),
        })
    }
}

/// Compiles every embedded `mappings/*-<version>.toml` service file against `wsdl/` and
/// `openapi/`.
pub fn compile() -> Result<Plan, Vec<MappingError>> {
    compile_from(&Sources::embedded().map_err(|e| vec![e])?)
}

/// Compiles the service files of `sources` against its WSDLs and OpenAPI document.
pub fn compile_from(sources: &Sources<'_>) -> Result<Plan, Vec<MappingError>> {
    let (openapi_file, openapi_text) = sources.openapi;
    let contract = Contract::parse(openapi_text).map_err(|message| {
        vec![MappingError {
            file: openapi_file.into(),
            line: 0,
            message,
        }]
    })?;
    let mut errors = Vec::new();
    let mut services = Vec::new();
    let mut code_lists: Vec<RestCall> = Vec::new();
    for &(file, text) in &sources.mappings {
        let mut c = Compiler {
            file,
            text,
            wsdls: &sources.wsdls,
            contract: &contract,
            openapi_file,
            errors: &mut errors,
            code_lists: &mut code_lists,
        };
        services.extend(c.service());
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

/// The checker of one mapping file: where its errors point and what it is checked against.
struct Compiler<'a> {
    file: &'a str,
    text: &'a str,
    wsdls: &'a [(&'a str, &'static str)],
    contract: &'a Contract,
    openapi_file: &'a str,
    errors: &'a mut Vec<MappingError>,
    /// The code lists of every file so far (one entry per list).
    code_lists: &'a mut Vec<RestCall>,
}

/// One operation while it is compiled.
struct OpScope<'w> {
    wsdl: &'w Wsdl,
    /// The `[[operation]]`'s span, for errors about the operation as a whole.
    span: Range<usize>,
    /// `<Op>Request`: request paths are below it.
    request: String,
    /// `<Op>Response`: response paths are below it.
    response: String,
    inputs: Inputs,
}

/// The inputs of one operation while it is compiled.
#[derive(Default)]
struct Inputs {
    list: Vec<Input>,
    index: HashMap<String, usize>,
}

/// One list of response fields while it is compiled.
struct OutScope<'s> {
    /// Below `<Op>Response`: "" for the response's own fields, `element/item` for the
    /// fields of a collection's item.
    prefix: String,
    /// The JSON object the fields are read from (None: nothing to read, only echoes).
    schema: Option<&'s Value>,
    /// The WSDL position of the previous field, for the sequence order.
    last: Option<Vec<usize>>,
}

/// A request element a mapping entry reads.
struct Read<'d> {
    span: Range<usize>,
    /// Below `<Op>Request`.
    path: &'d str,
    ty: Transform,
    optional: bool,
}

impl<'d> Read<'d> {
    fn of(d: &'d Spanned<FieldDecl>, path: &'d str) -> Read<'d> {
        Read {
            span: d.span(),
            path,
            ty: d.get_ref().ty,
            optional: d.get_ref().optional,
        }
    }
}

impl<'a> Compiler<'a> {
    fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
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
                let line = e.span().map_or(0, |s| self.line(&s));
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
        let (wsdl_file, wsdl_text, wsdl) = self.wsdl(&span, &svc)?;
        self.check_service(&span, &svc, &wsdl, &decl.operations);
        let operations: Vec<OpPlan> = decl
            .operations
            .into_iter()
            .filter_map(|op| self.operation(&svc, &wsdl, op))
            .collect();
        Some(ServicePlan {
            by_element: index(&operations, |o| &o.request_element),
            by_action: index(&operations, |o| &o.action),
            name: svc.name,
            version: svc.version,
            namespace: svc.namespace,
            endpoint: svc.endpoint,
            wsdl_file,
            wsdl_text,
            operations,
        })
    }

    /// The service's WSDL: its path, its text, parsed.
    fn wsdl(
        &mut self,
        span: &Range<usize>,
        svc: &ServiceDecl,
    ) -> Option<(String, &'static str, Wsdl)> {
        let path = format!("wsdl/{}", svc.wsdl);
        let Some(&(_, text)) = self.wsdls.iter().find(|(name, _)| *name == svc.wsdl) else {
            self.err(span, format!("{path} does not exist"));
            return None;
        };
        match Wsdl::parse(text) {
            Ok(w) => Some((path, text, w)),
            Err(message) => {
                self.errors.push(MappingError {
                    file: path,
                    line: 0,
                    message,
                });
                None
            }
        }
    }

    /// The `[service]` fits its WSDL, and every WSDL operation is mapped.
    fn check_service(
        &mut self,
        span: &Range<usize>,
        svc: &ServiceDecl,
        wsdl: &Wsdl,
        decls: &[Spanned<OperationDecl>],
    ) {
        if wsdl.target_namespace != svc.namespace {
            self.err(
                span,
                format!(
                    "namespace {} is not the WSDL's {}",
                    svc.namespace, wsdl.target_namespace
                ),
            );
        }
        if !svc.endpoint.starts_with('/') {
            self.err(span, "endpoint must start with /");
        }
        for op in &wsdl.operations {
            if !decls.iter().any(|d| d.get_ref().name == op.name) {
                self.err(span, format!("WSDL operation {} has no mapping", op.name));
            }
        }
    }

    fn operation(
        &mut self,
        svc: &ServiceDecl,
        wsdl: &Wsdl,
        op: Spanned<OperationDecl>,
    ) -> Option<OpPlan> {
        let span = op.span();
        let op = op.into_inner();
        let action = format!("{}/{}", svc.namespace, op.name);
        let mut scope = self.op_scope(svc, wsdl, span, (&op.name, &action))?;
        let name = op.name.clone();
        let behaviour = self.behaviour(&mut scope, op)?;
        Some(OpPlan {
            name,
            response_action: format!("{action}Response"),
            action,
            request_element: scope.request,
            response_element: scope.response,
            inputs: scope.inputs.list,
            input_index: scope.inputs.index,
            behaviour,
        })
    }

    /// The operation is in the WSDL with this action and both its elements.
    fn op_scope<'w>(
        &mut self,
        svc: &ServiceDecl,
        wsdl: &'w Wsdl,
        span: Range<usize>,
        (name, action): (&str, &str),
    ) -> Option<OpScope<'w>> {
        let Some(w) = wsdl.operations.iter().find(|w| w.name == name) else {
            self.err(&span, format!("operation {name} is not in {}", svc.wsdl));
            return None;
        };
        if w.actions.iter().any(|a| *a != action) {
            self.err(
                &span,
                format!("the WSDL's soapAction for {name} is not {action}"),
            );
        }
        let request = format!("{name}Request");
        let response = format!("{name}Response");
        for el in [&request, &response] {
            if !wsdl.elements.contains_key(el) {
                self.err(&span, format!("element {el} is not in the WSDL's schema"));
                return None;
            }
        }
        Some(OpScope {
            wsdl,
            span,
            request,
            response,
            inputs: Inputs::default(),
        })
    }

    /// Exactly one of a call, a retirement, a read's collections and a queue step.
    fn behaviour(&mut self, scope: &mut OpScope<'_>, mut op: OperationDecl) -> Option<Behaviour> {
        let kinds = usize::from(op.call.is_some())
            + usize::from(op.retired.is_some())
            + usize::from(!op.collections.is_empty())
            + usize::from(op.queue.is_some());
        if kinds != 1 {
            self.err(
                &scope.span,
                format!(
                    "{}: exactly one of `call`, `retired`, `queue` and `[[operation.collection]]`",
                    op.name
                ),
            );
            return None;
        }
        if let Some(q) = op.queue.take() {
            return self.queue(scope, &op.name, q);
        }
        match (op.call.take(), op.retired.take()) {
            (Some(_), Some(_)) => None,
            (None, None) => {
                let plan = self.read(scope, &op.response, op.collections);
                Some(Behaviour::Read(Box::new(plan)))
            }
            (None, Some(r)) => Some(self.retired(&scope.span, r)),
            (Some(call), None) => {
                let plan = self.call(scope, &call, op)?;
                Some(Behaviour::Call(Box::new(plan)))
            }
        }
    }

    /// A WSRM step: a known step (`messages` only for an operation named as a message kind),
    /// and the SequenceIdentifier element, a UUID of the request, for every step that takes
    /// one.
    fn queue(&mut self, scope: &mut OpScope<'_>, name: &str, q: QueueDecl) -> Option<Behaviour> {
        let step = match q.step.as_str() {
            "create_sequence" => QueueStep::CreateSequence,
            "terminate_sequence" => QueueStep::TerminateSequence,
            "close_sequence" => QueueStep::CloseSequence,
            "messages" => match crate::wsrm::MessageKind::parse(name) {
                Some(kind) => QueueStep::Messages(kind),
                None => {
                    self.err(&scope.span, format!("{name} is not a WSRM message kind"));
                    return None;
                }
            },
            other => {
                self.err(
                    &scope.span,
                    format!("queue.step {other} is not a WSRM step"),
                );
                return None;
            }
        };
        let sequence = match (&q.sequence, step) {
            (None, QueueStep::CreateSequence) => None,
            (Some(_), QueueStep::CreateSequence) => {
                self.err(&scope.span, "create_sequence takes no sequence".to_owned());
                return None;
            }
            (None, _) => {
                self.err(&scope.span, format!("{name}: queue.sequence is missing"));
                return None;
            }
            (Some(path), _) => {
                let read = Read {
                    span: scope.span.clone(),
                    path,
                    ty: Transform::Uuid,
                    optional: false,
                };
                self.request_path(scope, &read)?;
                Some(self.input(scope, &read))
            }
        };
        Some(Behaviour::Queue(QueuePlan { step, sequence }))
    }

    fn retired(&mut self, span: &Range<usize>, r: RetiredDecl) -> Behaviour {
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

    /// A call: its arguments, the variant with a message id, the rule-4 read, the response.
    fn call(&mut self, scope: &mut OpScope<'_>, call: &str, op: OperationDecl) -> Option<CallPlan> {
        let rest = self.rest_operation(&scope.span, call)?;
        let args = self.args(scope, &op.request, rest, &[]);
        let with_message_id = op
            .call_with_message_id
            .as_ref()
            .and_then(|w| self.with_message_id(scope, w, &op.request));
        let unchanged = op.unchanged.and_then(|u| self.unchanged(scope, u));
        let response = self.response(scope, &op.response, Some(rest), true);
        // The answer of the call with a message id must fill the same response.
        if let Some((with, _)) = &with_message_id
            && let Some(with_rest) = self.contract.operations.get(&with.operation_id)
        {
            self.response(scope, &op.response, Some(with_rest), false);
        }
        Some(CallPlan {
            call: rest_call(rest, args),
            with_message_id,
            unchanged,
            response,
        })
    }

    fn with_message_id(
        &mut self,
        scope: &mut OpScope<'_>,
        w: &WithIdDecl,
        request: &[Spanned<FieldDecl>],
    ) -> Option<(RestCall, Target)> {
        let target = Target::parse(&w.id);
        let with = self.rest_operation(&scope.span, &w.call);
        match (target, with) {
            (Some(target), Some(with)) => {
                let args = self.args(scope, request, with, std::slice::from_ref(&target));
                self.check_target(&scope.span, with, &target, Transform::Uuid);
                Some((rest_call(with, args), target))
            }
            (None, _) => {
                self.err(
                    &scope.span,
                    format!("call_with_message_id.id {} is not a target", w.id),
                );
                None
            }
            _ => None,
        }
    }

    fn rest_operation(&mut self, span: &Range<usize>, id: &str) -> Option<&'a RestOperation> {
        let op = self.contract.operations.get(id);
        if op.is_none() {
            let message = format!("{id} is not an operationId of {}", self.openapi_file);
            self.err(span, message);
        }
        op
    }

    /// Checks a request element below `<Op>Request` and returns its sequence position.
    fn request_path(&mut self, scope: &OpScope<'_>, r: &Read<'_>) -> Option<Vec<usize>> {
        let (root, path) = (&scope.request, r.path);
        let Some((p, pos)) = scope.wsdl.resolve(root, path) else {
            self.err(&r.span, format!("{root} has no element {path}"));
            return None;
        };
        if !carries(p, r.ty) {
            let message = match &p.builtin {
                Some(b) => format!(
                    "{path} is xs:{b}, which cannot carry type \"{}\"",
                    ty_name(r.ty)
                ),
                None => format!("{path} is a complex element, not a value"),
            };
            self.err(&r.span, message);
        }
        if p.min == 0 && !r.optional {
            self.err(
                &r.span,
                format!("{path} has minOccurs=0 in the WSDL: mark it optional = true"),
            );
        }
        Some(pos)
    }

    fn check_order(
        &mut self,
        span: &Range<usize>,
        last: &mut Option<Vec<usize>>,
        pos: Vec<usize>,
        what: &str,
    ) {
        if last.as_ref().is_some_and(|l| *l >= pos) {
            self.err(span, format!("{what} is out of the WSDL's sequence order"));
        }
        *last = Some(pos);
    }

    /// The operation's input for a request element, added on first use.
    fn input(&mut self, scope: &mut OpScope<'_>, r: &Read<'_>) -> usize {
        let inputs = &mut scope.inputs;
        if let Some(&i) = inputs.index.get(r.path) {
            if inputs.list[i].ty != r.ty {
                self.err(
                    &r.span,
                    format!("{} is read as two different types", r.path),
                );
            }
            inputs.list[i].optional &= r.optional;
            return i;
        }
        inputs.list.push(Input {
            path: r.path.to_owned(),
            ty: r.ty,
            optional: r.optional,
        });
        inputs
            .index
            .insert(r.path.to_owned(), inputs.list.len() - 1);
        inputs.list.len() - 1
    }

    /// Checks that a target exists on the REST operation with a type that fits.
    fn check_target(
        &mut self,
        span: &Range<usize>,
        rest: &RestOperation,
        target: &Target,
        ty: Transform,
    ) {
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
            None => self.err(span, format!("{} has no {target:?}", rest.id)),
            Some(t) if !fits(&t, ty) => self.err(
                span,
                format!(
                    "{target:?} of {} is {}{}, which does not fit type \"{}\"",
                    rest.id,
                    t.ty,
                    t.format.map(|f| format!(" ({f})")).unwrap_or_default(),
                    ty_name(ty)
                ),
            ),
            Some(_) => {}
        }
    }

    /// The arguments of a REST call; `extra`: targets filled otherwise (the message id).
    fn args(
        &mut self,
        scope: &mut OpScope<'_>,
        decls: &[Spanned<FieldDecl>],
        rest: &RestOperation,
        extra: &[Target],
    ) -> Vec<Arg> {
        let mut last = None;
        let args: Vec<Arg> = decls
            .iter()
            .filter_map(|d| self.arg(scope, d, rest, &mut last))
            .collect();
        self.check_sources(decls, rest, &args, extra);
        args
    }

    fn arg(
        &mut self,
        scope: &mut OpScope<'_>,
        decl: &Spanned<FieldDecl>,
        rest: &RestOperation,
        last: &mut Option<Vec<usize>>,
    ) -> Option<Arg> {
        let (span, d) = (decl.span(), decl.get_ref());
        let read = Read::of(decl, &d.from);
        let constant = match &d.value {
            Some(v) => match d.ty.from_soap(v) {
                Ok(c) => Some(Source::Const(c)),
                Err(e) => {
                    self.err(&span, format!("value {v:?}: {e}"));
                    return None;
                }
            },
            None => None,
        };
        if constant.is_none() {
            let pos = self.request_path(scope, &read)?;
            self.check_order(&span, last, pos, &d.from);
        }
        let Some(target) = Target::parse(&d.to) else {
            self.err(
                &span,
                format!(
                    "{} is not body.<field>, path.<param>, header.<name> or query.<param>",
                    d.to
                ),
            );
            return None;
        };
        self.check_target(&span, rest, &target, d.ty);
        let codes = d.codes.as_ref().and_then(|c| self.codes(&span, c, d.ty));
        let source = constant.unwrap_or_else(|| Source::Input(self.input(scope, &read)));
        Some(Arg {
            source,
            target,
            codes,
        })
    }

    /// Every required body field and parameter of the call has a source.
    fn check_sources(
        &mut self,
        decls: &[Spanned<FieldDecl>],
        rest: &RestOperation,
        args: &[Arg],
        extra: &[Target],
    ) {
        let span = first_span(decls);
        let has = |t: &Target| args.iter().any(|a| a.target == *t) || extra.contains(t);
        if let Some(body) = &rest.body {
            for field in self.contract.required(body) {
                if !has(&Target::Body(field.clone())) {
                    self.err(
                        &span,
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
                    &span,
                    format!("{} requires {t:?}, which nothing maps", rest.id),
                );
            }
        }
    }

    fn codes(&mut self, span: &Range<usize>, c: &CodesDecl, ty: Transform) -> Option<Codes> {
        if ty != Transform::Int {
            self.err(span, "codes apply to type \"int\" only");
        }
        let Some(error) = fejl(&c.error) else {
            self.err(
                span,
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
                span,
                format!("{} does not answer a code list (koder[].kode)", c.list),
            );
        }
        if !self.code_lists.iter().any(|l| l.operation_id == list.id) {
            self.code_lists.push(rest_call(list, Vec::new()));
        }
        Some(Codes {
            list: c.list.clone(),
            error,
        })
    }

    fn unchanged(&mut self, scope: &mut OpScope<'_>, u: UnchangedDecl) -> Option<Unchanged> {
        let read = self.rest_operation(&scope.span, &u.call)?;
        let args = self.args(scope, &u.request, read, &[]);
        let Some(error) = fejl(&u.error) else {
            self.err(
                &scope.span,
                format!(
                    "unchanged.error {} is not a key of mappings/errors.toml",
                    u.error
                ),
            );
            return None;
        };
        let mut compare = Vec::new();
        let mut last = None;
        for decl in &u.compare {
            let d = decl.get_ref();
            let r = Read::of(decl, &d.from);
            let Some(pos) = self.request_path(scope, &r) else {
                continue;
            };
            self.check_order(&r.span, &mut last, pos, &d.from);
            self.check_answer_field(&r.span, read, &d.to, d.ty);
            let input = self.input(scope, &r);
            compare.push((input, d.to.split('.').map(str::to_owned).collect(), d.ty));
        }
        Some(Unchanged {
            read: rest_call(read, args),
            compare,
            error,
        })
    }

    fn check_answer_field(
        &mut self,
        span: &Range<usize>,
        rest: &RestOperation,
        path: &str,
        ty: Transform,
    ) -> Option<bool> {
        let Some(answer) = &rest.answer else {
            self.err(span, format!("{} answers no JSON", rest.id));
            return None;
        };
        self.check_schema_field(span, answer, path, ty)
    }

    /// Response fields: from the REST answer (`answer`, checked against its schema) or
    /// echoed from the request (`input = ...`). `check_required`: every required top-level
    /// response element has a source.
    fn response(
        &mut self,
        scope: &mut OpScope<'_>,
        decls: &[Spanned<FieldDecl>],
        answer: Option<&RestOperation>,
        check_required: bool,
    ) -> Vec<OutField> {
        let mut out = OutScope {
            prefix: String::new(),
            schema: answer.and_then(|a| a.answer.as_ref()),
            last: None,
        };
        let fields: Vec<OutField> = decls
            .iter()
            .filter_map(|d| self.out_field(scope, &mut out, d))
            .collect();
        if check_required {
            let covered: Vec<&str> = firsts(&fields).collect();
            self.check_filled(scope, &first_span(decls), "", &covered);
        }
        fields
    }

    /// Every required child of the element at `path` below `<Op>Response` (the response
    /// itself for "") is among `covered`, the first steps of the fields that fill it.
    fn check_filled(
        &mut self,
        scope: &OpScope<'_>,
        span: &Range<usize>,
        path: &str,
        covered: &[&str],
    ) {
        let (el, shown): (Option<&Particle>, &str) = if path.is_empty() {
            (scope.wsdl.elements.get(&scope.response), &scope.response)
        } else {
            (
                scope.wsdl.resolve(&scope.response, path).map(|(p, _)| p),
                path,
            )
        };
        let Some(el) = el else { return };
        for c in el.children.iter().filter(|c| c.min > 0) {
            if !covered.contains(&c.name.as_str()) {
                self.err(
                    span,
                    format!(
                        "{shown}/{} is required in SOAP and nothing fills it",
                        c.name
                    ),
                );
            }
        }
    }

    /// One output field below `<Op>Response`/`out.prefix`.
    fn out_field(
        &mut self,
        scope: &mut OpScope<'_>,
        out: &mut OutScope<'_>,
        decl: &Spanned<FieldDecl>,
    ) -> Option<OutField> {
        let (span, d) = (decl.span(), decl.get_ref());
        let full = if out.prefix.is_empty() {
            d.to.clone()
        } else {
            format!("{}/{}", out.prefix, d.to)
        };
        let Some((p, pos)) = scope.wsdl.resolve(&scope.response, &full) else {
            let message = format!("{} has no element {full}", scope.response);
            self.err(&span, message);
            return None;
        };
        let soap_optional = p.min == 0;
        if !carries(p, d.ty) {
            self.err(
                &span,
                format!("{} cannot carry type \"{}\"", d.to, ty_name(d.ty)),
            );
        }
        self.check_order(&span, &mut out.last, pos, &d.to);
        let source = match &d.input {
            // An echo of a request element: it must be read from the request.
            Some(input) => {
                let r = Read::of(decl, input);
                self.request_path(scope, &r)?;
                OutSource::Input(self.input(scope, &r))
            }
            None => self.json_source(out, decl, soap_optional)?,
        };
        Some(OutField {
            source,
            soap: d.to.split('/').map(str::to_owned).collect(),
            ty: d.ty,
            optional: soap_optional,
        })
    }

    /// An output field read from the JSON object of `out`: it exists, its type fits, and
    /// it is always there if SOAP requires the element.
    fn json_source(
        &mut self,
        out: &OutScope<'_>,
        decl: &Spanned<FieldDecl>,
        soap_optional: bool,
    ) -> Option<OutSource> {
        let (span, d) = (decl.span(), decl.get_ref());
        let Some(schema) = out.schema else {
            self.err(&span, "nothing to read `from` here: use `input`");
            return None;
        };
        if let Some(always) = self.check_schema_field(&span, schema, &d.from, d.ty)
            && !always
            && !soap_optional
        {
            self.err(
                &span,
                format!(
                    "{} is required in SOAP but {} may be absent or null in REST",
                    d.to, d.from
                ),
            );
        }
        Some(OutSource::Json(
            d.from.split('.').map(str::to_owned).collect(),
        ))
    }

    /// A field of a JSON schema with a type that fits; Some(whether always present).
    fn check_schema_field(
        &mut self,
        span: &Range<usize>,
        schema: &Value,
        path: &str,
        ty: Transform,
    ) -> Option<bool> {
        let Some((t, required)) = self.contract.field(schema, path) else {
            self.err(span, format!("the REST answer has no field {path}"));
            return None;
        };
        if !fits(&t, ty) {
            self.err(
                span,
                format!(
                    "{path} of the REST answer is {}, which does not fit type \"{}\"",
                    t.ty,
                    ty_name(ty)
                ),
            );
        }
        Some(required && !t.nullable)
    }

    /// A read: the echoed fields and the collections, in the WSDL's order.
    fn read(
        &mut self,
        scope: &mut OpScope<'_>,
        echo_decls: &[Spanned<FieldDecl>],
        decls: Vec<Spanned<CollectionDecl>>,
    ) -> ReadPlan {
        let echo = self.response(scope, echo_decls, None, false);
        let mut parts: Vec<(Vec<usize>, ReadPart)> = Vec::new();
        for (i, e) in echo.iter().enumerate() {
            if let Some((_, pos)) = scope.wsdl.resolve(&scope.response, &e.soap.join("/")) {
                parts.push((pos, ReadPart::Echo(i)));
            }
        }
        let mut collections = Vec::new();
        for c in decls {
            if let Some((pos, plan)) = self.collection(scope, c) {
                parts.push((pos, ReadPart::Collection(collections.len())));
                collections.push(plan);
            }
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let covered: Vec<&str> = firsts(&echo)
            .chain(
                collections
                    .iter()
                    .filter_map(|c| c.element.first())
                    .map(String::as_str),
            )
            .collect();
        self.check_filled(scope, &first_span(echo_decls), "", &covered);
        ReadPlan {
            order: parts.into_iter().map(|(_, p)| p).collect(),
            echo,
            collections,
        }
    }

    /// The position of a collection's element in the response, which repeats its item.
    fn collection_element(
        &mut self,
        scope: &OpScope<'_>,
        span: &Range<usize>,
        c: &CollectionDecl,
    ) -> Option<Vec<usize>> {
        let Some((el, pos)) = scope.wsdl.resolve(&scope.response, &c.element) else {
            let message = format!("{} has no element {}", scope.response, c.element);
            self.err(span, message);
            return None;
        };
        let item_ok = el
            .children
            .iter()
            .any(|k| k.name == c.item && k.max.is_none_or(|m| m > 1));
        if el.builtin.is_some() || !item_ok {
            self.err(
                span,
                format!("{} is not a collection of repeated {}", c.element, c.item),
            );
            return None;
        }
        Some(pos)
    }

    /// One collection of a read, with its position in the response.
    fn collection(
        &mut self,
        scope: &mut OpScope<'_>,
        c: Spanned<CollectionDecl>,
    ) -> Option<(Vec<usize>, CollectionPlan)> {
        let span = c.span();
        let c = c.into_inner();
        let pos = self.collection_element(scope, &span, &c)?;
        let rest = self.rest_operation(&span, &c.call)?;
        let args = self.args(scope, &c.request, rest, &[]);
        let contract = self.contract;
        let schema = rest
            .answer
            .as_ref()
            .and_then(|a| contract.array_items(a, &c.items));
        if schema.is_none() {
            self.err(
                &span,
                format!("the answer of {} has no array {}", rest.id, c.items),
            );
        }
        let mut out = OutScope {
            prefix: format!("{}/{}", c.element, c.item),
            schema,
            last: None,
        };
        let fields: Vec<OutField> = c
            .fields
            .iter()
            .filter_map(|f| self.out_field(scope, &mut out, f))
            .collect();
        let covered: Vec<&str> = firsts(&fields).collect();
        self.check_filled(scope, &span, &out.prefix, &covered);
        let identity = CollectionPlan::field_from(&fields, IDENTITY_FIELD);
        let version = CollectionPlan::field_from(&fields, VERSION_FIELD);
        let plan = CollectionPlan {
            element: c.element.split('/').map(str::to_owned).collect(),
            item: c.item,
            call: rest_call(rest, args),
            items: c.items,
            fields,
            empty_on: c.empty_on,
            identity,
            version,
        };
        Some((pos, plan))
    }
}

/// Position by key, for the plan's lookups.
fn index(operations: &[OpPlan], key: impl Fn(&OpPlan) -> &String) -> HashMap<String, usize> {
    operations
        .iter()
        .enumerate()
        .map(|(i, o)| (key(o).clone(), i))
        .collect()
}

/// The span errors about a whole list point at: its first entry's.
fn first_span(decls: &[Spanned<FieldDecl>]) -> Range<usize> {
    decls.first().map(Spanned::span).unwrap_or(0..0)
}

/// The first step of each field's SOAP path: the child of the element the fields fill.
fn firsts(fields: &[OutField]) -> impl Iterator<Item = &str> {
    fields
        .iter()
        .filter_map(|f| f.soap.first())
        .map(String::as_str)
}

/// The error of `mappings/errors.toml` with this key.
fn fejl(key: &str) -> Option<Fejl> {
    Fejl::ALL.into_iter().find(|f| f.key() == key)
}

/// Whether a WSDL element's simple type can carry the transform.
fn carries(p: &Particle, ty: Transform) -> bool {
    p.builtin
        .as_deref()
        .is_some_and(|b| ty.xsd_types().contains(&b))
}

/// Whether a JSON schema type (and format) fits the transform.
fn fits(t: &FieldType, ty: Transform) -> bool {
    let (want_ty, want_format) = ty.json_type();
    t.ty == want_ty && want_format.is_none_or(|f| t.format.as_deref() == Some(f))
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
