//! SOAP as the tests speak it: the namespaces, the versions and services, envelopes and
//! request bodies written by hand, the POST a generated client sends, and the answer's
//! envelope and fault read back.
#![allow(dead_code)]

use std::fmt::Display;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use super::header;
use super::xml::{Doc, parse_xml};

pub const PRS: &str = "urn:dk:star:dfdg:PersonRegistrationService:9";
pub const PSS: &str = "urn:dk:star:dfdg:PersonStatusService:20";
pub const PHS: &str = "urn:dk:star:dfdg:PersonHistoryService:4";
pub const DFDG: &str = "urn:dk:star:dfdg:common:1";
pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

// ---------------------------------------------------------------------------------------
// Versions and services
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Soap {
    V11,
    V12,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Soap {
    pub fn ns(self) -> &'static str {
        match self {
            Soap::V11 => SOAP11,
            Soap::V12 => SOAP12,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Soap::V11 => "text/xml",
            Soap::V12 => "application/soap+xml",
        }
    }

    /// The `soap_version` label.
    pub fn label(self) -> &'static str {
        match self {
            Soap::V11 => "1.1",
            Soap::V12 => "1.2",
        }
    }

    /// The fault code's local name for a side.
    pub fn fault_code(self, side: Side) -> &'static str {
        match (self, side) {
            (Soap::V11, Side::Client) => "Client",
            (Soap::V11, Side::Server) => "Server",
            (Soap::V12, Side::Client) => "Sender",
            (Soap::V12, Side::Server) => "Receiver",
        }
    }

    /// The HTTP status of a fault (src/converter.rs fault_for): SOAP 1.1 always 500; SOAP
    /// 1.2 400 for Sender, 500 for Receiver.
    pub fn fault_status(self, side: Side) -> StatusCode {
        match (self, side) {
            (Soap::V12, Side::Client) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Prs,
    Pss,
    Phs,
}

impl Service {
    pub fn ns(self) -> &'static str {
        match self {
            Service::Prs => PRS,
            Service::Pss => PSS,
            Service::Phs => PHS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Prs => "PersonRegistrationService",
            Service::Pss => "PersonStatusService",
            Service::Phs => "PersonHistoryService",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Service::Prs => "/PersonRegistrationService/9",
            Service::Pss => "/PersonStatusService/20",
            Service::Phs => "/PersonHistoryService/4",
        }
    }

    /// The SOAP action of `op`.
    pub fn action(self, op: &str) -> String {
        format!("{}/{op}", self.ns())
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// An envelope of version `v` declaring the (prefix, namespace) pairs of `xmlns` after
/// `env`, with these header blocks and this body content.
pub fn envelope_with(v: Soap, xmlns: &[(&str, &str)], header: &str, body: &str) -> String {
    let declared: String = xmlns
        .iter()
        .map(|(prefix, ns)| format!(" xmlns:{prefix}=\"{ns}\""))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="{}"{declared}><env:Header>{header}</env:Header><env:Body>{body}</env:Body></env:Envelope>"#,
        v.ns()
    )
}

/// A dfdg:RequestUserMetadata header block.
pub fn metadata_user(org_type: &str, org_code: &str, user: &str) -> String {
    format!(
        "<dfdg:RequestUserMetadata><dfdg:OrganisationType>{org_type}</dfdg:OrganisationType>\
         <dfdg:OrganisationCode>{org_code}</dfdg:OrganisationCode>\
         <dfdg:UserIdentifier>{user}</dfdg:UserIdentifier></dfdg:RequestUserMetadata>"
    )
}

/// An optional `prs:` element.
pub fn opt(name: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!("<prs:{name}>{v}</prs:{name}>"))
        .unwrap_or_default()
}

/// A `verb` (Create, Update) request of `what` (ContactGroup, PersonCategory): the
/// record's identifier (`id`, on an update), type, start, optional end and event time.
#[allow(clippy::too_many_arguments)]
fn registration(
    verb: &str,
    what: &str,
    cpr: &str,
    id: Option<String>,
    ty: impl Display,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    let id = id
        .map(|id| format!("<prs:{what}Identifier>{id}</prs:{what}Identifier>"))
        .unwrap_or_default();
    format!(
        "<prs:{verb}{what}Request>\
         <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\
         <prs:{what}>{id}<prs:{what}TypeIdentifier>{ty}</prs:{what}TypeIdentifier>\
         <prs:{what}StartTime>{start}</prs:{what}StartTime>{}\
         <prs:{what}EventTime>{event}</prs:{what}EventTime>\
         </prs:{what}></prs:{verb}{what}Request>",
        opt(&format!("{what}EndTime"), end)
    )
}

pub fn create_contact_group(
    cpr: &str,
    ty: impl Display,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    registration("Create", "ContactGroup", cpr, None, ty, start, end, event)
}

pub fn update_contact_group(
    cpr: &str,
    id: impl Display,
    ty: impl Display,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    let id = Some(id.to_string());
    registration("Update", "ContactGroup", cpr, id, ty, start, end, event)
}

pub fn create_person_category(
    cpr: &str,
    ty: impl Display,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    registration("Create", "PersonCategory", cpr, None, ty, start, end, event)
}

pub fn update_person_category(
    cpr: &str,
    id: impl Display,
    ty: impl Display,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    let id = Some(id.to_string());
    registration("Update", "PersonCategory", cpr, id, ty, start, end, event)
}

/// The retired CreatePersonCategoryAndInterview: a person category of type `ty` from
/// `start` and an interview (type 1) at `interview`.
pub fn create_person_category_and_interview(
    cpr: &str,
    ty: impl Display,
    start: &str,
    event: &str,
    interview: &str,
) -> String {
    format!(
        "<prs:CreatePersonCategoryAndInterviewRequest>\
         <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\
         <prs:PersonCategory>\
         <prs:PersonCategoryTypeIdentifier>{ty}</prs:PersonCategoryTypeIdentifier>\
         <prs:PersonCategoryStartTime>{start}</prs:PersonCategoryStartTime>\
         <prs:PersonCategoryEventTime>{event}</prs:PersonCategoryEventTime>\
         </prs:PersonCategory>\
         <prs:Interview><prs:InterviewTime>{interview}</prs:InterviewTime>\
         <prs:InterviewTypeIdentifier>1</prs:InterviewTypeIdentifier></prs:Interview>\
         </prs:CreatePersonCategoryAndInterviewRequest>"
    )
}

/// GetVariablePersonStatus about `cpr`.
pub fn status_request(cpr: &str) -> String {
    format!(
        "<pss:GetVariablePersonStatusRequest>\
         <pss:PersonCivilRegistrationIdentifier>{cpr}</pss:PersonCivilRegistrationIdentifier>\
         </pss:GetVariablePersonStatusRequest>"
    )
}

/// GetPersonHistory about `cpr`, with an optional period (xs:date).
pub fn history_request(cpr: &str, start: Option<&str>, end: Option<&str>) -> String {
    let s = start
        .map(|d| format!("<phs:PeriodStartDate>{d}</phs:PeriodStartDate>"))
        .unwrap_or_default();
    let e = end
        .map(|d| format!("<phs:PeriodEndDate>{d}</phs:PeriodEndDate>"))
        .unwrap_or_default();
    format!(
        "<phs:GetPersonHistoryRequest>\
         <phs:PersonCivilRegistrationIdentifier>{cpr}</phs:PersonCivilRegistrationIdentifier>\
         {s}{e}</phs:GetPersonHistoryRequest>"
    )
}

/// The Content-Type and SOAPAction a generated client sends for `action`: SOAP 1.1 names
/// it in SOAPAction, SOAP 1.2 in the content type.
pub fn soap_headers(v: Soap, action: &str) -> (String, Option<String>) {
    match v {
        Soap::V11 => (
            "text/xml; charset=utf-8".to_owned(),
            Some(format!("\"{action}\"")),
        ),
        Soap::V12 => (
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
            None,
        ),
    }
}

/// A SOAP call of `action` to `url` with the headers a generated client sends.
pub async fn post_soap(client: &Client, url: &str, v: Soap, action: &str, envelope: &str) -> Reply {
    let (content_type, soap_action) = soap_headers(v, action);
    post_raw(
        client,
        url,
        &content_type,
        soap_action.as_deref(),
        envelope.as_bytes().to_vec(),
        None,
    )
    .await
}

/// A POST with exactly these headers and bytes (and `traceparent`, if any).
pub async fn post_raw(
    client: &Client,
    url: &str,
    content_type: &str,
    soap_action: Option<&str>,
    body: Vec<u8>,
    traceparent: Option<&str>,
) -> Reply {
    let mut req = client
        .post(url)
        .header("Content-Type", content_type)
        .body(body);
    if let Some(a) = soap_action {
        req = req.header("SOAPAction", a);
    }
    if let Some(t) = traceparent {
        req = req.header("traceparent", t);
    }
    let start = Instant::now();
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} ({content_type}): {e}"));
    let status = res.status();
    let content_type = header(&res, "content-type").unwrap_or_default();
    let request_id = header(&res, "x-request-id");
    let bytes = res.bytes().await.unwrap();
    let elapsed = start.elapsed();
    let text = String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|_| panic!("the answer is not UTF-8: {bytes:?}"));
    Reply {
        status,
        content_type,
        request_id,
        text,
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    /// The `X-Request-Id` header.
    pub request_id: Option<String>,
    pub text: String,
    pub elapsed: Duration,
}

#[derive(Debug)]
pub struct Fault {
    /// The fault code's local name (Client/Server, Sender/Receiver); its namespace was
    /// checked to be the envelope's.
    pub code: String,
    /// faultstring / Reason/Text.
    pub reason: String,
    /// Every dfdg:Error of the detail.
    pub errors: Vec<(u32, String)>,
}

impl Reply {
    pub fn doc(&self) -> Doc {
        parse_xml(&self.text)
            .unwrap_or_else(|e| panic!("the answer is not well-formed XML ({e}):\n{}", self.text))
    }

    /// The Body's single child, after checking the envelope of version `v`.
    pub fn body_child(&self, v: Soap) -> (Doc, usize) {
        let doc = self.doc();
        let root = &doc.els[0];
        assert_eq!(
            (root.ns.as_str(), root.name.as_str()),
            (v.ns(), "Envelope"),
            "{}",
            self.text
        );
        let body = doc
            .child(0, v.ns(), "Body")
            .unwrap_or_else(|| panic!("no Body: {}", self.text));
        let children = doc.children(body);
        assert_eq!(
            children.len(),
            1,
            "the Body should have one child: {}",
            self.text
        );
        let first = children[0];
        (doc, first)
    }

    /// A successful answer of `op` of the service `ns`: HTTP 200, the version's content
    /// type, an envelope of version `v` whose Body holds `<op>Response`; returns it.
    pub fn response(&self, v: Soap, ns: &str, op: &str) -> (Doc, usize) {
        assert_eq!(self.status, StatusCode::OK, "{op}: {}", self.text);
        assert!(
            self.content_type.starts_with(v.mime()),
            "{op}: content type {}",
            self.content_type
        );
        let (doc, el) = self.body_child(v);
        let e = &doc.els[el];
        assert_eq!(
            (e.ns.as_str(), e.name.as_str()),
            (ns, format!("{op}Response").as_str()),
            "{}",
            self.text
        );
        (doc, el)
    }

    /// The fault this answer is: a well-formed envelope of version `v`, the version's
    /// content type, a Fault with code, reason and a dfdg:ServiceFault detail.
    pub fn fault(&self, v: Soap) -> Fault {
        assert!(
            self.content_type.starts_with(v.mime()),
            "content type {} of {}",
            self.content_type,
            self.text
        );
        let (doc, f) = self.body_child(v);
        let fe = &doc.els[f];
        assert_eq!(
            (fe.ns.as_str(), fe.name.as_str()),
            (v.ns(), "Fault"),
            "{}",
            self.text
        );
        let need = |parent: usize, ns: &str, name: &str| {
            doc.child(parent, ns, name)
                .unwrap_or_else(|| panic!("no {name} in the fault: {}", self.text))
        };
        let (code_el, reason_el, detail) = match v {
            Soap::V11 => (
                need(f, "", "faultcode"),
                need(f, "", "faultstring"),
                need(f, "", "detail"),
            ),
            Soap::V12 => {
                let code = need(f, SOAP12, "Code");
                let reason = need(f, SOAP12, "Reason");
                (
                    need(code, SOAP12, "Value"),
                    need(reason, SOAP12, "Text"),
                    need(f, SOAP12, "Detail"),
                )
            }
        };
        let (code_ns, code) = doc.els[code_el]
            .qname
            .clone()
            .unwrap_or_else(|| panic!("the fault code is not a resolvable QName: {}", self.text));
        assert_eq!(code_ns, v.ns(), "the fault code's namespace: {}", self.text);
        let sf = need(detail, DFDG, "ServiceFault");
        let errors: Vec<(u32, String)> = doc
            .children(sf)
            .into_iter()
            .map(|e| {
                assert_eq!(
                    (doc.els[e].ns.as_str(), doc.els[e].name.as_str()),
                    (DFDG, "Error"),
                    "{}",
                    self.text
                );
                let code = doc.els[need(e, DFDG, "ErrorCode")]
                    .text
                    .trim()
                    .parse()
                    .unwrap();
                (code, doc.els[need(e, DFDG, "ErrorText")].text.clone())
            })
            .collect();
        assert!(
            !errors.is_empty(),
            "a ServiceFault without Error: {}",
            self.text
        );
        let reason = doc.els[reason_el].text.clone();
        assert!(
            reason.starts_with(&errors[0].1),
            "the fault string is the first error's text: {}",
            self.text
        );
        Fault {
            code,
            reason,
            errors,
        }
    }
}
