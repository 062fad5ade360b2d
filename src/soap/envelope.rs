//! Reading a SOAP request: a streaming pass with quick-xml's namespace-aware reader over the
//! request bytes; no tree is built. It keeps only what the plan asks for: the operation, the
//! texts of the inputs the operation's mapping reads, RequestUserMetadata and
//! wsa:MessageID. Namespaces are matched by URI, so any prefix (or a default namespace)
//! works. Limits are enforced while reading: no DOCTYPE (and so no entity declarations),
//! only the predefined entities and character references, a maximum nesting depth and a
//! maximum number of elements.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{SoapError, SoapVersion};
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
    let by_action =
        match action {
            Some(a) => Some(service.by_action(a).ok_or_else(|| {
                refuse(version, Fejl::UkendtOperation, format!("ukendt action {a}"))
            })?),
            None => None,
        };

    let mut reader = NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;

    let mut frames: Vec<Frame> = Vec::with_capacity(16);
    let mut elements = 0usize;
    // The text of the current element: borrowed from `text` while it is one piece, copied
    // only when CDATA or a reference adds to it.
    let mut text_buf: Cow<'_, str> = Cow::Borrowed("");
    let mut path = String::with_capacity(64);
    let mut op: Option<&OpPlan> = None;
    let mut values: Vec<Option<String>> = Vec::new();
    let mut metadata: Option<Metadata> = None;
    let mut message_id = None;
    let mut seen_body = false;
    let mut seen_header = false;
    let mut seen_root = false;
    // The RequestUserMetadata fields already read (MetaField::bit).
    let mut fields_seen = 0u8;
    let env_ns = version.envelope_ns();
    let nil = |reader: &NsReader<&[u8]>, e: &quick_xml::events::BytesStart<'_>| {
        // Most elements have no attributes: their raw attribute text is empty.
        !e.attributes_raw().is_empty()
            && e.attributes().flatten().any(|a| {
                a.key.local_name().as_ref() == "nil"
                    && reader.resolver().resolve_attribute(a.key).0
                        == ResolveResult::Bound(quick_xml::name::Namespace(XSI))
                    && matches!(&*a.value, "true" | "1")
            })
    };

    loop {
        // Namespaces are resolved for start tags only: nothing else here needs one.
        let event = reader
            .read_event()
            .map_err(|e| refuse(version, Fejl::UgyldigXml, e.to_string()))?;
        match event {
            Event::Start(e) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(refuse(
                        version,
                        Fejl::DokumentOverGraense,
                        format!("mere end {} elementer", limits.max_elements),
                    ));
                }
                if frames.len() >= limits.max_depth {
                    return Err(refuse(
                        version,
                        Fejl::DokumentOverGraense,
                        format!("dybere end {} niveauer", limits.max_depth),
                    ));
                }
                text_buf = Cow::Borrowed("");
                let (ns, local) = reader.resolver().resolve_element(e.name());
                let ns = match ns {
                    ResolveResult::Bound(n) => n.0,
                    ResolveResult::Unbound => "",
                    ResolveResult::Unknown(p) => {
                        return Err(refuse(
                            version,
                            Fejl::UgyldigXml,
                            format!("ukendt præfiks {p}"),
                        ));
                    }
                };
                let local = local.into_inner();
                let frame = match frames.last() {
                    None if seen_root => {
                        return Err(refuse(
                            version,
                            Fejl::IkkeSoap,
                            "dokumentet har mere end ét rodelement",
                        ));
                    }
                    None => {
                        seen_root = true;
                        if local != "Envelope" || ns != env_ns {
                            let other = if ns == SoapVersion::V11.envelope_ns()
                                || ns == SoapVersion::V12.envelope_ns()
                            {
                                "SOAP-versionen passer ikke til Content-Type"
                            } else {
                                "roden er ikke en SOAP Envelope"
                            };
                            return Err(refuse(version, Fejl::IkkeSoap, other));
                        }
                        Frame::Envelope
                    }
                    Some(Frame::Envelope) if ns == env_ns && local == "Header" => {
                        if seen_header || seen_body {
                            return Err(refuse(
                                version,
                                Fejl::IkkeSoap,
                                "Envelope må have højst én Header, og den skal stå før Body",
                            ));
                        }
                        seen_header = true;
                        Frame::Header
                    }
                    Some(Frame::Envelope) if ns == env_ns && local == "Body" => {
                        if seen_body {
                            return Err(refuse(
                                version,
                                Fejl::IkkeSoap,
                                "Envelope har mere end én Body",
                            ));
                        }
                        seen_body = true;
                        Frame::Body
                    }
                    Some(Frame::Header) if ns == DFDG && local == "RequestUserMetadata" => {
                        if metadata.is_some() {
                            return Err(refuse(
                                version,
                                Fejl::MetadataMangler,
                                "RequestUserMetadata forekommer mere end én gang",
                            ));
                        }
                        if nil(&reader, &e) {
                            return Err(refuse(
                                version,
                                Fejl::MetadataMangler,
                                "RequestUserMetadata kan ikke være xsi:nil",
                            ));
                        }
                        metadata = Some(Metadata::default());
                        Frame::Metadata
                    }
                    Some(Frame::Header) if ns == WSA && local == "MessageID" => Frame::MessageId,
                    Some(Frame::Metadata) if ns == DFDG => {
                        let field = match local {
                            "OrganisationType" => MetaField::Type,
                            "OrganisationCode" => MetaField::Code,
                            "UserIdentifier" => MetaField::User,
                            _ => {
                                frames.push(Frame::Skip);
                                continue;
                            }
                        };
                        if fields_seen & field.bit() != 0 {
                            return Err(refuse(
                                version,
                                Fejl::MetadataMangler,
                                format!("{} forekommer mere end én gang", field.name()),
                            ));
                        }
                        fields_seen |= field.bit();
                        // An identity field cannot be blanked with xsi:nil.
                        if nil(&reader, &e) {
                            return Err(refuse(
                                version,
                                Fejl::MetadataMangler,
                                format!("{} kan ikke være xsi:nil", field.name()),
                            ));
                        }
                        Frame::MetadataField(field)
                    }
                    Some(Frame::Body) if op.is_none() => {
                        let found = (ns == service.namespace)
                            .then(|| service.by_request_element(local))
                            .flatten();
                        let Some(found) = found else {
                            return Err(refuse(
                                version,
                                Fejl::UkendtOperation,
                                format!("ukendt element {local} i Body"),
                            ));
                        };
                        if by_action.is_some_and(|a| !std::ptr::eq(a, found)) {
                            return Err(refuse(
                                version,
                                Fejl::UkendtOperation,
                                "action og Body-element angiver forskellige operationer",
                            ));
                        }
                        op = Some(found);
                        values = vec![None; found.inputs.len()];
                        Frame::Op(0)
                    }
                    Some(Frame::Op(_)) => {
                        let restore = path.len();
                        if !path.is_empty() {
                            path.push('/');
                        }
                        // An element of another namespace can never match an input.
                        path.push_str(if ns == service.namespace {
                            local
                        } else {
                            "\u{0}"
                        });
                        if nil(&reader, &e)
                            && let Some(i) = op.and_then(|o| o.input(&path))
                        {
                            values[i] = None;
                            frames.push(Frame::Skip);
                            path.truncate(restore);
                            // The element's end event pops this Skip frame.
                            continue;
                        }
                        Frame::Op(restore)
                    }
                    // An identity field is text: an element inside it could hide part of the
                    // value from this reader and show it to another (the legacy forward).
                    Some(Frame::MetadataField(field)) => {
                        return Err(refuse(
                            version,
                            Fejl::MetadataMangler,
                            format!("{} må kun indeholde tekst", field.name()),
                        ));
                    }
                    _ => Frame::Skip,
                };
                frames.push(frame);
            }
            Event::End(_) => {
                let Some(frame) = frames.pop() else {
                    return Err(refuse(version, Fejl::UgyldigXml, "ubalanceret slutmærke"));
                };
                match frame {
                    Frame::MetadataField(field) => {
                        if let Some(m) = metadata.as_mut() {
                            let v = Some(xml_trim(&text_buf)).filter(|s| !s.is_empty());
                            match field {
                                MetaField::Type => {
                                    m.organisation_type = match v {
                                        None => None,
                                        Some(t) => Some(organisation_type(t).ok_or_else(|| {
                                            refuse(
                                                version,
                                                Fejl::MetadataMangler,
                                                "OrganisationType skal være et heltal 0-255 uden foranstillede nuller",
                                            )
                                        })?),
                                    }
                                }
                                MetaField::Code => m.organisation_code = v.map(str::to_owned),
                                MetaField::User => m.user = v.map(str::to_owned),
                            }
                        }
                    }
                    Frame::MessageId => {
                        message_id = Some(xml_trim(&text_buf))
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                    }
                    Frame::Op(restore) => {
                        if let Some(i) = op.and_then(|o| o.input(&path)) {
                            if values[i].is_some() {
                                return Err(refuse(
                                    version,
                                    Fejl::UgyldigVaerdi,
                                    format!("{path} forekommer to gange"),
                                ));
                            }
                            values[i] = Some(std::mem::take(&mut text_buf).into_owned());
                        }
                        path.truncate(restore);
                    }
                    _ => {}
                }
                text_buf = Cow::Borrowed("");
            }
            Event::Text(t) => {
                if matches!(
                    frames.last(),
                    Some(Frame::Op(_) | Frame::MetadataField(_) | Frame::MessageId)
                ) {
                    text_buf += t.xml10_content();
                }
            }
            Event::CData(c) => {
                if matches!(
                    frames.last(),
                    Some(Frame::Op(_) | Frame::MetadataField(_) | Frame::MessageId)
                ) {
                    text_buf += c.into_inner();
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r
                    .resolve_char_ref()
                    .map_err(|e| refuse(version, Fejl::UgyldigXml, e.to_string()))?
                {
                    Some(c) => c,
                    None => match &*r {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(refuse(
                                version,
                                Fejl::UgyldigXml,
                                format!("ukendt entitet &{other};"),
                            ));
                        }
                    },
                };
                if matches!(
                    frames.last(),
                    Some(Frame::Op(_) | Frame::MetadataField(_) | Frame::MessageId)
                ) {
                    text_buf.to_mut().push(ch);
                }
            }
            Event::DocType(_) => return Err(refuse(version, Fejl::DoctypeAfvist, "DOCTYPE")),
            Event::Eof => break,
            // The bytes were read as UTF-8: a declaration naming another encoding would make
            // another parser (the legacy service) read other markup.
            Event::Decl(d) => {
                let utf8 = match d.encoding() {
                    None => true,
                    Some(Ok(e)) => {
                        e.eq_ignore_ascii_case("utf-8") || e.eq_ignore_ascii_case("utf8")
                    }
                    Some(Err(_)) => false,
                };
                if !utf8 {
                    return Err(refuse(
                        version,
                        Fejl::UgyldigXml,
                        "dokumentet skal være UTF-8 (encoding i XML-erklæringen)",
                    ));
                }
            }
            Event::Empty(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !frames.is_empty() {
        return Err(refuse(
            version,
            Fejl::UgyldigXml,
            "dokumentet slutter for tidligt",
        ));
    }
    if !seen_body {
        return Err(refuse(version, Fejl::IkkeSoap, "Envelope har ingen Body"));
    }
    let op = op.ok_or_else(|| refuse(version, Fejl::UkendtOperation, "Body er tom"))?;
    Ok(Envelope {
        version,
        op,
        values,
        metadata,
        message_id,
    })
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
