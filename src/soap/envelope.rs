//! Reading a SOAP request: a streaming pass with quick-xml's namespace-aware reader over the
//! request bytes; no tree is built. It keeps only what the plan asks for: the operation, the
//! texts of the inputs the operation's mapping reads, RequestUserMetadata and
//! wsa:MessageID. Namespaces are matched by URI, so any prefix (or a default namespace)
//! works. Limits are enforced while reading: no DOCTYPE (and so no entity declarations),
//! only the predefined entities and character references, a maximum nesting depth and a
//! maximum number of elements.
//!
//! `decode_envelope` is the loop over quick-xml's events; `Decoder` holds what the pass has
//! seen so far and has one step per kind of event (`start`, `end`, `text`, `reference`),
//! each checking its event against the envelope's rules, and `finish` for the end of input.

use std::borrow::Cow;

use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};
use quick_xml::name::{NamespaceResolver, ResolveResult};
use quick_xml::reader::NsReader;

use super::{BadReference, SoapError, SoapVersion, resolve_reference};
use crate::catalog::Fejl;
use crate::mapping::{OpPlan, ServicePlan};

pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
pub const DFDG: &str = "urn:dk:star:dfdg:common:1";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Bounds on what a request may make the parser do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_elements: usize,
}

/// RequestUserMetadata, as sent; the organisation type normalised once, here (an integer
/// 0-255 in canonical form: `5`, never `05` or `+5`, which are refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub organisation_type: Option<u8>,
    pub organisation_code: Option<String>,
    pub user: Option<String>,
}

impl Metadata {
    /// The claim the door decides on.
    pub fn claim(&self) -> crate::door::Claim {
        crate::door::Claim {
            organisation_type: self.organisation_type,
            organisation_code: self.organisation_code.clone(),
            user: self.user.clone(),
        }
    }
}

/// A field of RequestUserMetadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaField {
    Type,
    Code,
    User,
}

impl MetaField {
    const ALL: [MetaField; 3] = [MetaField::Type, MetaField::Code, MetaField::User];

    /// The field an element of the DFDG namespace inside RequestUserMetadata is, if any.
    fn from_local(local: &str) -> Option<MetaField> {
        MetaField::ALL.into_iter().find(|f| f.name() == local)
    }
    fn name(self) -> &'static str {
        match self {
            MetaField::Type => "OrganisationType",
            MetaField::Code => "OrganisationCode",
            MetaField::User => "UserIdentifier",
        }
    }
    fn bit(self) -> u8 {
        match self {
            MetaField::Type => 1,
            MetaField::Code => 2,
            MetaField::User => 4,
        }
    }
}

/// The text without XML whitespace around it (space, tab, CR, LF: what xs:int and xs:token
/// collapse), not Unicode's wider set: `5\u{a0}` is not `5`.
fn xml_trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

/// An identity or MessageID text as read: trimmed, and absent when nothing is left.
fn token(text: &str) -> Option<&str> {
    Some(xml_trim(text)).filter(|s| !s.is_empty())
}

/// `OrganisationType`'s text as a number: digits only, no leading zero, at most 255.
pub fn organisation_type(text: &str) -> Option<u8> {
    let canonical = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// A decoded request: which operation, and the texts the mapping needs.
#[derive(Debug)]
pub struct Envelope<'p> {
    pub version: SoapVersion,
    pub op: &'p OpPlan,
    /// Text of each of `op.inputs`, if the element was present (and not xsi:nil).
    pub values: Vec<Option<String>>,
    pub metadata: Option<Metadata>,
    pub message_id: Option<String>,
}

/// What an open element is to the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Envelope,
    Header,
    Body,
    Metadata,
    MetadataField(MetaField),
    MessageId,
    /// The operation's request element, or an element below it; `usize` is the length of
    /// `path` to restore when it ends.
    Op(usize),
    /// Something the converter does not read.
    Skip,
}

fn refuse(version: SoapVersion, fejl: Fejl, detail: impl Into<String>) -> SoapError {
    SoapError {
        version,
        fejl,
        detail: Some(detail.into()),
    }
}

/// Reads `body` as a request to `service`. `action` is the SOAPAction (1.1) or the action
/// parameter (1.2), if the caller sent a non-empty one.
pub fn decode_envelope<'p>(
    body: &[u8],
    version: SoapVersion,
    action: Option<&str>,
    service: &'p ServicePlan,
    limits: Limits,
) -> Result<Envelope<'p>, SoapError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| refuse(version, Fejl::UgyldigXml, "dokumentet er ikke UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut decoder = Decoder::new(version, action, service, limits)?;

    let mut reader = NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    loop {
        // Namespaces are resolved for start tags only: nothing else here needs one.
        let event = reader
            .read_event()
            .map_err(|e| refuse(version, Fejl::UgyldigXml, e.to_string()))?;
        match event {
            Event::Start(e) => decoder.start(reader.resolver(), &e)?,
            Event::End(_) => decoder.end()?,
            Event::Text(t) => decoder.text(|| t.xml10_content()),
            Event::CData(c) => decoder.text(|| c.into_inner()),
            Event::GeneralRef(r) => decoder.reference(&r)?,
            Event::Decl(d) => decoder.declaration(&d)?,
            Event::DocType(_) => return Err(refuse(version, Fejl::DoctypeAfvist, "DOCTYPE")),
            Event::Eof => return decoder.finish(),
            Event::Empty(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
}

/// A start tag as the decoder judges it: its namespace and local name resolved, and the
/// resolver to read its attributes with.
struct Tag<'a> {
    ns: &'a str,
    local: &'a str,
    start: &'a BytesStart<'a>,
    resolver: &'a NamespaceResolver,
}

impl Tag<'_> {
    /// Whether the element says `xsi:nil="true"` (or `"1"`).
    fn nil(&self) -> bool {
        // Most elements have no attributes: their raw attribute text is empty.
        !self.start.attributes_raw().is_empty()
            && self.start.attributes().flatten().any(|a| {
                a.key.local_name().as_ref() == "nil"
                    && self.resolver.resolve_attribute(a.key).0
                        == ResolveResult::Bound(quick_xml::name::Namespace(XSI))
                    && matches!(&*a.value, "true" | "1")
            })
    }
}

/// One pass over a request: what it has seen so far, and one step per kind of event. `'p` is
/// the plan the envelope will point into, `'t` the request's text, which element text
/// borrows until it must be copied.
struct Decoder<'p, 't> {
    version: SoapVersion,
    service: &'p ServicePlan,
    /// The operation the action names, if the caller sent one: the Body must name the same.
    by_action: Option<&'p OpPlan>,
    limits: Limits,
    /// One per open element: where in the envelope the reader is.
    frames: Vec<Frame>,
    /// Elements started so far, against `limits.max_elements`.
    elements: usize,
    /// The text of the current element: borrowed from the request while it is one piece,
    /// copied only when CDATA or a reference adds to it.
    text: Cow<'t, str>,
    /// Where the current element is below the operation's element: local names joined by
    /// `/` (`\0` for an element of another namespace, which no input can match), the key
    /// `OpPlan::input` looks up. Reused for every element: no allocation per event.
    path: String,
    /// The operation the Body's first element names; `values` has one slot per input.
    op: Option<&'p OpPlan>,
    values: Vec<Option<String>>,
    metadata: Option<Metadata>,
    message_id: Option<String>,
    /// The envelope's structure so far: one root, one Header before one Body.
    seen_root: bool,
    seen_header: bool,
    seen_body: bool,
    /// The RequestUserMetadata fields already read (`MetaField::bit`): each counts once.
    fields_seen: u8,
}

impl<'p, 't> Decoder<'p, 't> {
    /// A decoder for a request to `service`; an action that names no operation of it is
    /// refused before any XML is read.
    fn new(
        version: SoapVersion,
        action: Option<&str>,
        service: &'p ServicePlan,
        limits: Limits,
    ) -> Result<Self, SoapError> {
        let by_action = match action {
            Some(a) => Some(service.by_action(a).ok_or_else(|| {
                refuse(version, Fejl::UkendtOperation, format!("ukendt action {a}"))
            })?),
            None => None,
        };
        Ok(Decoder {
            version,
            service,
            by_action,
            limits,
            frames: Vec::with_capacity(16),
            elements: 0,
            text: Cow::Borrowed(""),
            path: String::with_capacity(64),
            op: None,
            values: Vec::new(),
            metadata: None,
            message_id: None,
            seen_root: false,
            seen_header: false,
            seen_body: false,
            fields_seen: 0,
        })
    }

    fn refuse(&self, fejl: Fejl, detail: impl Into<String>) -> SoapError {
        refuse(self.version, fejl, detail)
    }

    /// A start tag: within the limits, then a frame by what its parent is.
    fn start(
        &mut self,
        resolver: &NamespaceResolver,
        start: &BytesStart<'_>,
    ) -> Result<(), SoapError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            let detail = format!("mere end {} elementer", self.limits.max_elements);
            return Err(self.refuse(Fejl::DokumentOverGraense, detail));
        }
        if self.frames.len() >= self.limits.max_depth {
            let detail = format!("dybere end {} niveauer", self.limits.max_depth);
            return Err(self.refuse(Fejl::DokumentOverGraense, detail));
        }
        self.text = Cow::Borrowed("");
        let (ns, local) = resolver.resolve_element(start.name());
        let ns = match ns {
            ResolveResult::Bound(n) => n.0,
            ResolveResult::Unbound => "",
            ResolveResult::Unknown(p) => {
                return Err(self.refuse(Fejl::UgyldigXml, format!("ukendt præfiks {p}")));
            }
        };
        let tag = Tag {
            ns,
            local: local.into_inner(),
            start,
            resolver,
        };
        let frame = match self.frames.last().copied() {
            None => self.root(&tag)?,
            Some(Frame::Envelope) => self.envelope_child(&tag)?,
            Some(Frame::Header) => self.header_child(&tag)?,
            Some(Frame::Metadata) => self.metadata_field(&tag)?,
            Some(Frame::Body) if self.op.is_none() => self.operation(&tag)?,
            Some(Frame::Op(_)) => self.input(&tag),
            // An identity field is text: an element inside it could hide part of the value
            // from this reader and show it to another (the legacy forward).
            Some(Frame::MetadataField(field)) => {
                let detail = format!("{} må kun indeholde tekst", field.name());
                return Err(self.refuse(Fejl::MetadataMangler, detail));
            }
            Some(Frame::Body | Frame::MessageId | Frame::Skip) => Frame::Skip,
        };
        self.frames.push(frame);
        Ok(())
    }

    /// The document's element: one, and the Envelope of the Content-Type's SOAP version.
    fn root(&mut self, tag: &Tag<'_>) -> Result<Frame, SoapError> {
        if self.seen_root {
            let detail = "dokumentet har mere end ét rodelement";
            return Err(self.refuse(Fejl::IkkeSoap, detail));
        }
        self.seen_root = true;
        if tag.local != "Envelope" || tag.ns != self.version.envelope_ns() {
            let other = if tag.ns == SoapVersion::V11.envelope_ns()
                || tag.ns == SoapVersion::V12.envelope_ns()
            {
                "SOAP-versionen passer ikke til Content-Type"
            } else {
                "roden er ikke en SOAP Envelope"
            };
            return Err(self.refuse(Fejl::IkkeSoap, other));
        }
        Ok(Frame::Envelope)
    }

    /// Header (at most one, before Body) and Body (one); anything else is skipped.
    fn envelope_child(&mut self, tag: &Tag<'_>) -> Result<Frame, SoapError> {
        if tag.ns != self.version.envelope_ns() {
            return Ok(Frame::Skip);
        }
        match tag.local {
            "Header" if self.seen_header || self.seen_body => Err(self.refuse(
                Fejl::IkkeSoap,
                "Envelope må have højst én Header, og den skal stå før Body",
            )),
            "Header" => {
                self.seen_header = true;
                Ok(Frame::Header)
            }
            "Body" if self.seen_body => {
                Err(self.refuse(Fejl::IkkeSoap, "Envelope har mere end én Body"))
            }
            "Body" => {
                self.seen_body = true;
                Ok(Frame::Body)
            }
            _ => Ok(Frame::Skip),
        }
    }

    /// wsa:MessageID, and RequestUserMetadata: once, and not xsi:nil.
    fn header_child(&mut self, tag: &Tag<'_>) -> Result<Frame, SoapError> {
        if tag.ns == WSA && tag.local == "MessageID" {
            return Ok(Frame::MessageId);
        }
        if tag.ns != DFDG || tag.local != "RequestUserMetadata" {
            return Ok(Frame::Skip);
        }
        if self.metadata.is_some() {
            let detail = "RequestUserMetadata forekommer mere end én gang";
            return Err(self.refuse(Fejl::MetadataMangler, detail));
        }
        if tag.nil() {
            let detail = "RequestUserMetadata kan ikke være xsi:nil";
            return Err(self.refuse(Fejl::MetadataMangler, detail));
        }
        self.metadata = Some(Metadata::default());
        Ok(Frame::Metadata)
    }

    /// A field of RequestUserMetadata: each at most once, and not xsi:nil (an identity field
    /// cannot be blanked); other elements are skipped.
    fn metadata_field(&mut self, tag: &Tag<'_>) -> Result<Frame, SoapError> {
        let field = (tag.ns == DFDG)
            .then(|| MetaField::from_local(tag.local))
            .flatten();
        let Some(field) = field else {
            return Ok(Frame::Skip);
        };
        if self.fields_seen & field.bit() != 0 {
            let detail = format!("{} forekommer mere end én gang", field.name());
            return Err(self.refuse(Fejl::MetadataMangler, detail));
        }
        self.fields_seen |= field.bit();
        if tag.nil() {
            let detail = format!("{} kan ikke være xsi:nil", field.name());
            return Err(self.refuse(Fejl::MetadataMangler, detail));
        }
        Ok(Frame::MetadataField(field))
    }

    /// The Body's first element: an operation of the service, the one the action names.
    fn operation(&mut self, tag: &Tag<'_>) -> Result<Frame, SoapError> {
        let found = (tag.ns == self.service.namespace)
            .then(|| self.service.by_request_element(tag.local))
            .flatten();
        let Some(found) = found else {
            let detail = format!("ukendt element {} i Body", tag.local);
            return Err(self.refuse(Fejl::UkendtOperation, detail));
        };
        if self.by_action.is_some_and(|a| !std::ptr::eq(a, found)) {
            let detail = "action og Body-element angiver forskellige operationer";
            return Err(self.refuse(Fejl::UkendtOperation, detail));
        }
        self.op = Some(found);
        self.values = vec![None; found.inputs.len()];
        Ok(Frame::Op(0))
    }

    /// An element below the operation's: its path extended; an input that is xsi:nil is
    /// absent (and its content skipped).
    fn input(&mut self, tag: &Tag<'_>) -> Frame {
        let restore = self.path.len();
        if !self.path.is_empty() {
            self.path.push('/');
        }
        // An element of another namespace can never match an input.
        self.path.push_str(if tag.ns == self.service.namespace {
            tag.local
        } else {
            "\u{0}"
        });
        if tag.nil()
            && let Some(i) = self.op.and_then(|o| o.input(&self.path))
        {
            self.values[i] = None;
            self.path.truncate(restore);
            // The element's end event pops this Skip frame.
            return Frame::Skip;
        }
        Frame::Op(restore)
    }

    /// An end tag: the element's text goes where its frame says.
    fn end(&mut self) -> Result<(), SoapError> {
        let Some(frame) = self.frames.pop() else {
            return Err(self.refuse(Fejl::UgyldigXml, "ubalanceret slutmærke"));
        };
        match frame {
            Frame::MetadataField(field) => self.metadata_value(field)?,
            Frame::MessageId => self.message_id = token(&self.text).map(str::to_owned),
            Frame::Op(restore) => self.input_value(restore)?,
            _ => {}
        }
        self.text = Cow::Borrowed("");
        Ok(())
    }

    fn metadata_value(&mut self, field: MetaField) -> Result<(), SoapError> {
        let version = self.version;
        let value = token(&self.text);
        let Some(m) = self.metadata.as_mut() else {
            return Ok(());
        };
        match field {
            MetaField::Type => {
                let parsed = value.map(|t| {
                    organisation_type(t).ok_or_else(|| {
                        refuse(
                            version,
                            Fejl::MetadataMangler,
                            "OrganisationType skal være et heltal 0-255 uden foranstillede nuller",
                        )
                    })
                });
                m.organisation_type = parsed.transpose()?;
            }
            MetaField::Code => m.organisation_code = value.map(str::to_owned),
            MetaField::User => m.user = value.map(str::to_owned),
        }
        Ok(())
    }

    /// The end of an element below the operation's: an input's text, once.
    fn input_value(&mut self, restore: usize) -> Result<(), SoapError> {
        if let Some(i) = self.op.and_then(|o| o.input(&self.path)) {
            if self.values[i].is_some() {
                let detail = format!("{} forekommer to gange", self.path);
                return Err(self.refuse(Fejl::UgyldigVaerdi, detail));
            }
            self.values[i] = Some(std::mem::take(&mut self.text).into_owned());
        }
        self.path.truncate(restore);
        Ok(())
    }

    /// Whether the current element's text is kept (an input, an identity field, MessageID).
    fn reads_text(&self) -> bool {
        matches!(
            self.frames.last(),
            Some(Frame::Op(_) | Frame::MetadataField(_) | Frame::MessageId)
        )
    }

    /// Text or CDATA; `piece` is only asked for (and its line ends normalised) when the
    /// current element's text is kept.
    fn text(&mut self, piece: impl FnOnce() -> Cow<'t, str>) {
        if self.reads_text() {
            self.text += piece();
        }
    }

    /// An entity or character reference: resolved wherever it is (an unknown one makes the
    /// document not XML), kept where text is.
    fn reference(&mut self, r: &BytesRef<'_>) -> Result<(), SoapError> {
        let c = resolve_reference(r).map_err(|e| match e {
            BadReference::CharRef(e) => self.refuse(Fejl::UgyldigXml, e.to_string()),
            BadReference::UnknownEntity(name) => {
                self.refuse(Fejl::UgyldigXml, format!("ukendt entitet &{name};"))
            }
        })?;
        if self.reads_text() {
            self.text.to_mut().push(c);
        }
        Ok(())
    }

    /// The XML declaration. The bytes were read as UTF-8: a declaration naming another
    /// encoding would make another parser (the legacy service) read other markup.
    fn declaration(&self, d: &BytesDecl<'_>) -> Result<(), SoapError> {
        let utf8 = match d.encoding() {
            None => true,
            Some(Ok(e)) => e.eq_ignore_ascii_case("utf-8") || e.eq_ignore_ascii_case("utf8"),
            Some(Err(_)) => false,
        };
        if !utf8 {
            let detail = "dokumentet skal være UTF-8 (encoding i XML-erklæringen)";
            return Err(self.refuse(Fejl::UgyldigXml, detail));
        }
        Ok(())
    }

    /// The end of the input: every element closed, a Body, an operation in it.
    fn finish(self) -> Result<Envelope<'p>, SoapError> {
        if !self.frames.is_empty() {
            return Err(self.refuse(Fejl::UgyldigXml, "dokumentet slutter for tidligt"));
        }
        if !self.seen_body {
            return Err(self.refuse(Fejl::IkkeSoap, "Envelope har ingen Body"));
        }
        let Some(op) = self.op else {
            return Err(self.refuse(Fejl::UkendtOperation, "Body er tom"));
        };
        Ok(Envelope {
            version: self.version,
            op,
            values: self.values,
            metadata: self.metadata,
            message_id: self.message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{Plan, compile};
    use std::sync::OnceLock;

    fn plan() -> &'static Plan {
        static PLAN: OnceLock<Plan> = OnceLock::new();
        PLAN.get_or_init(|| compile().unwrap())
    }

    const LIMITS: Limits = Limits {
        max_depth: 32,
        max_elements: 2000,
    };

    fn decode(
        xml: &str,
        version: SoapVersion,
        action: Option<&str>,
    ) -> Result<Envelope<'static>, SoapError> {
        decode_envelope(
            xml.as_bytes(),
            version,
            action,
            plan().service("/PersonRegistrationService/9").unwrap(),
            LIMITS,
        )
    }

    fn value<'a>(env: &'a Envelope<'_>, path: &str) -> Option<&'a str> {
        env.values[env.op.input(path).unwrap()].as_deref()
    }

    const CREATE: &str = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/">
      <e:Header><m:RequestUserMetadata xmlns:m="urn:dk:star:dfdg:common:1"><m:OrganisationType> 1 </m:OrganisationType>
        <m:OrganisationCode>101</m:OrganisationCode></m:RequestUserMetadata>
        <MessageID xmlns="http://www.w3.org/2005/08/addressing">urn:uuid:1</MessageID></e:Header>
      <e:Body><p:CreateContactGroupRequest xmlns:p="urn:dk:star:dfdg:PersonRegistrationService:9">
        <p:PersonCivilRegistrationIdentifier>0101701111</p:PersonCivilRegistrationIdentifier>
        <p:ContactGroup><p:ContactGroupTypeIdentifier>1</p:ContactGroupTypeIdentifier>
          <p:ContactGroupStartTime><![CDATA[2024-03-31]]>T00:00:00</p:ContactGroupStartTime>
          <p:ContactGroupEndTime xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>
          <p:ContactGroupEventTime>2024&#x2D;03-31T10:00:00</p:ContactGroupEventTime></p:ContactGroup>
      </p:CreateContactGroupRequest></e:Body></e:Envelope>"#;

    #[test]
    fn any_prefix_default_namespaces_cdata_references_and_nil() {
        let env = decode(
            CREATE,
            SoapVersion::V11,
            Some("urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup"),
        )
        .unwrap();
        assert_eq!(env.op.name, "CreateContactGroup");
        assert_eq!(
            value(&env, "PersonCivilRegistrationIdentifier"),
            Some("0101701111")
        );
        assert_eq!(
            value(&env, "ContactGroup/ContactGroupStartTime"),
            Some("2024-03-31T00:00:00")
        );
        assert_eq!(
            value(&env, "ContactGroup/ContactGroupEventTime"),
            Some("2024-03-31T10:00:00")
        );
        assert_eq!(value(&env, "ContactGroup/ContactGroupEndTime"), None);
        let m = env.metadata.unwrap();
        assert_eq!(
            (m.organisation_type, m.organisation_code.as_deref(), m.user),
            (Some(1), Some("101"), None)
        );
        assert_eq!(env.message_id.as_deref(), Some("urn:uuid:1"));
    }

    #[test]
    fn routing_by_action_and_by_body_must_agree() {
        assert!(decode(CREATE, SoapVersion::V11, None).is_ok());
        let e = decode(
            CREATE,
            SoapVersion::V11,
            Some("urn:dk:star:dfdg:PersonRegistrationService:9/UpdateContactGroup"),
        )
        .unwrap_err();
        assert_eq!(e.fejl, Fejl::UkendtOperation);
        let e = decode(CREATE, SoapVersion::V11, Some("urn:x/Nothing")).unwrap_err();
        assert_eq!(e.fejl, Fejl::UkendtOperation);
        // The body of another namespace is no operation of this service.
        let e = decode(
            &CREATE.replace(
                "PersonRegistrationService:9\">",
                "PersonRegistrationService:8\">",
            ),
            SoapVersion::V11,
            None,
        )
        .unwrap_err();
        assert_eq!(e.fejl, Fejl::UkendtOperation);
    }

    #[test]
    fn the_envelope_version_must_match_the_content_type() {
        assert_eq!(
            decode(CREATE, SoapVersion::V12, None).unwrap_err().fejl,
            Fejl::IkkeSoap
        );
        let v12 = CREATE.replace(
            "http://schemas.xmlsoap.org/soap/envelope/",
            "http://www.w3.org/2003/05/soap-envelope",
        );
        assert!(decode(&v12, SoapVersion::V12, None).is_ok());
        assert_eq!(
            decode("<a/>", SoapVersion::V11, None).unwrap_err().fejl,
            Fejl::IkkeSoap
        );
    }

    #[test]
    fn hostile_and_broken_documents_are_refused() {
        let cases: Vec<(String, Fejl)> = vec![
            (format!("<!DOCTYPE x [<!ENTITY a \"aaaa\">]>{CREATE}"), Fejl::DoctypeAfvist),
            (CREATE.replace("0101701111", "&a;"), Fejl::UgyldigXml),
            (CREATE.replace("</e:Body>", ""), Fejl::UgyldigXml),
            (CREATE.replace("<e:Header>", &("<e:Header>".to_owned() + &"<x>".repeat(40))), Fejl::DokumentOverGraense),
            (CREATE.replace("<e:Header>", &("<e:Header>".to_owned() + &"<x/>".repeat(2100))), Fejl::DokumentOverGraense),
            (CREATE.replace("<p:ContactGroup>", "<p:PersonCivilRegistrationIdentifier>1</p:PersonCivilRegistrationIdentifier><p:ContactGroup>"), Fejl::UgyldigVaerdi),
            (CREATE.replace("<e:Body>", "<e:Body/><e:Foo>").replace("</e:Body>", "</e:Foo>"), Fejl::UkendtOperation),
            (CREATE.replace("xmlns:p=", "xmlns:q="), Fejl::UgyldigXml),
        ];
        for (xml, fejl) in cases {
            let e = decode(&xml, SoapVersion::V11, None).unwrap_err();
            assert_eq!(
                e.fejl,
                fejl,
                "{:?} for {}",
                e.detail,
                &xml[..xml.len().min(120)]
            );
        }
        let e = decode_envelope(
            b"<a>\xff</a>",
            SoapVersion::V11,
            None,
            plan().service("/PersonRegistrationService/9").unwrap(),
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(e.fejl, Fejl::UgyldigXml);
    }

    #[test]
    fn references_resolve_by_the_shared_rule_and_unknown_ones_are_refused_anywhere() {
        // In an input, and in a part nobody reads (the Header's unknown element).
        for xml in [
            CREATE.replace("0101701111", "&nbsp;"),
            CREATE.replace("<e:Header>", "<e:Header><x>&nbsp;</x>"),
        ] {
            let e = decode(&xml, SoapVersion::V11, None).unwrap_err();
            assert_eq!(
                (e.fejl, e.detail.as_deref()),
                (Fejl::UgyldigXml, Some("ukendt entitet &nbsp;"))
            );
        }
        for bad in ["&#0;", "&#xD800;", "&#x110000;"] {
            let xml = CREATE.replace("0101701111", bad);
            let e = decode(&xml, SoapVersion::V11, None).unwrap_err();
            assert_eq!(e.fejl, Fejl::UgyldigXml, "{bad}");
        }
        let xml = CREATE.replace("0101701111", "&lt;&#48;&#x31;&amp;&quot;&apos;&gt;");
        let env = decode(&xml, SoapVersion::V11, None).unwrap();
        assert_eq!(
            value(&env, "PersonCivilRegistrationIdentifier"),
            Some("<01&\"'>")
        );
    }

    #[test]
    fn the_envelope_is_strict() {
        let meta = "<m:RequestUserMetadata xmlns:m=\"urn:dk:star:dfdg:common:1\"><m:OrganisationType> 1 </m:OrganisationType>\n        <m:OrganisationCode>101</m:OrganisationCode></m:RequestUserMetadata>";
        let header = |inner: &str| CREATE.replace(meta, inner);
        let cases: Vec<(String, Fejl)> = vec![
            // A second root after the first Envelope.
            (format!("{CREATE}{CREATE}"), Fejl::IkkeSoap),
            (format!("{CREATE}<x/>"), Fejl::IkkeSoap),
            // Two Headers, a Header after Body, two Bodies.
            (CREATE.replace("<e:Body>", "<e:Header/><e:Body>"), Fejl::IkkeSoap),
            (CREATE.replace("</e:Envelope>", "<e:Header/></e:Envelope>"), Fejl::IkkeSoap),
            (CREATE.replace("</e:Envelope>", "<e:Body/></e:Envelope>"), Fejl::IkkeSoap),
            // Two RequestUserMetadata, a field twice, a nil field or block.
            (header(&format!("{meta}{meta}")), Fejl::MetadataMangler),
            (
                header(&meta.replace("<m:OrganisationCode>101", "<m:OrganisationCode>5</m:OrganisationCode><m:OrganisationCode>101")),
                Fejl::MetadataMangler,
            ),
            (
                header(&meta.replace("<m:OrganisationCode>101</m:OrganisationCode>", "<m:OrganisationCode>101</m:OrganisationCode><m:OrganisationType>5</m:OrganisationType>")),
                Fejl::MetadataMangler,
            ),
            (
                header(&meta.replace("<m:OrganisationCode>101</m:OrganisationCode>", "<m:OrganisationCode xsi:nil=\"true\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"/>")),
                Fejl::MetadataMangler,
            ),
            // Non-canonical organisation types.
            (header(&meta.replace("> 1 <", ">05<")), Fejl::MetadataMangler),
            (header(&meta.replace("> 1 <", ">+5<")), Fejl::MetadataMangler),
            (header(&meta.replace("> 1 <", ">256<")), Fejl::MetadataMangler),
            (header(&meta.replace("> 1 <", ">٥<")), Fejl::MetadataMangler),
            // An element inside an identity field; another encoding declared.
            (
                header(&meta.replace("<m:OrganisationCode>101", "<m:OrganisationCode>55570117<m:x/>101")),
                Fejl::MetadataMangler,
            ),
            (format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{CREATE}"), Fejl::UgyldigXml),
        ];
        for (xml, fejl) in cases {
            let e = decode(&xml, SoapVersion::V11, None).unwrap_err();
            assert_eq!(e.fejl, fejl, "{:?} for {xml}", e.detail);
        }
        // Whitespace around a canonical type is fine; 0 and 255 are integers 0-255.
        for (t, n) in [(" 5 ", 5), ("0", 0), ("255", 255)] {
            let env = decode(
                &header(&meta.replace("> 1 <", &format!(">{t}<"))),
                SoapVersion::V11,
                None,
            )
            .unwrap();
            assert_eq!(env.metadata.unwrap().organisation_type, Some(n));
        }
        assert!(
            decode(
                &format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{CREATE}"),
                SoapVersion::V11,
                None
            )
            .is_ok()
        );
        assert_eq!(organisation_type("005"), None);
        assert_eq!(organisation_type(""), None);
        assert_eq!(organisation_type("12"), Some(12));
    }
}
