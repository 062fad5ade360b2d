//! The SOAP side: versions and content types, reading requests (`envelope`), writing
//! responses and faults (`write`), the WSDL as served (`wsdl`), and the HTTP front
//! (`front`), and the one rule for references in XML text (`resolve_reference`). Only this
//! module reads or writes XML on the request path.

pub mod envelope;
pub mod front;
pub mod splice;
pub mod write;
pub mod wsdl;

use quick_xml::events::BytesRef;

use crate::catalog::Fejl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn envelope_ns(self) -> &'static str {
        match self {
            SoapVersion::V11 => "http://schemas.xmlsoap.org/soap/envelope/",
            SoapVersion::V12 => "http://www.w3.org/2003/05/soap-envelope",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

/// A refusal on the SOAP side, before or instead of a REST call: answered as a fault with
/// the catalogue's code, in the caller's SOAP version.
#[derive(Debug, Clone)]
pub struct SoapError {
    pub version: SoapVersion,
    pub fejl: Fejl,
    /// Appended to the fault string: which element, which limit. Never personal data.
    pub detail: Option<String>,
}

/// The SOAP version and the action a request's headers give: `text/xml` with `SOAPAction`
/// is SOAP 1.1, `application/soap+xml` with an optional `action` parameter is SOAP 1.2.
/// An empty action means "let the body decide". Anything else is not a SOAP request.
pub fn version_and_action<'h>(
    content_type: &'h str,
    soap_action: Option<&'h str>,
) -> Result<(SoapVersion, Option<&'h str>), Fejl> {
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    let unquote = |s: &'h str| {
        let s = s.trim();
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        Some(s).filter(|s| !s.is_empty())
    };
    if mime.eq_ignore_ascii_case("text/xml") {
        Ok((SoapVersion::V11, soap_action.and_then(unquote)))
    } else if mime.eq_ignore_ascii_case("application/soap+xml") {
        let action = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("action"))
            .and_then(|(_, v)| unquote(v));
        // Some clients send SOAPAction with SOAP 1.2 too.
        Ok((
            SoapVersion::V12,
            action.or_else(|| soap_action.and_then(unquote)),
        ))
    } else {
        Err(Fejl::UgyldigSoapMedietype)
    }
}

/// A reference in XML text that stands for no character.
#[derive(Debug)]
pub enum BadReference<'r> {
    /// `&#…;` that is not a number, is `&#0;`, or names no Unicode scalar value (a
    /// surrogate, or beyond U+10FFFF); quick-xml's error says which.
    CharRef(quick_xml::Error),
    /// A named entity other than the five predefined ones. Both readers refuse a DOCTYPE,
    /// so nothing can have declared it: the document is not well-formed XML.
    UnknownEntity(&'r str),
}

impl std::fmt::Display for BadReference<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadReference::CharRef(e) => write!(f, "{e}"),
            BadReference::UnknownEntity(name) => write!(f, "unknown entity &{name};"),
        }
    }
}

/// The character an entity or character reference in text stands for (`r` is what stands
/// between `&` and `;`). The one rule of both XML readers, the request's (`envelope`) and
/// the legacy answer's (`splice`): the five predefined entities and character references,
/// nothing else.
pub fn resolve_reference<'r>(r: &'r BytesRef<'_>) -> Result<char, BadReference<'r>> {
    if let Some(c) = r.resolve_char_ref().map_err(BadReference::CharRef)? {
        return Ok(c);
    }
    match &**r {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        name => Err(BadReference::UnknownEntity(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_give_version_and_action() {
        assert_eq!(
            version_and_action("text/xml; charset=utf-8", Some("\"urn:a/Op\"")),
            Ok((SoapVersion::V11, Some("urn:a/Op")))
        );
        assert_eq!(
            version_and_action("text/xml", Some("\"\"")),
            Ok((SoapVersion::V11, None))
        );
        assert_eq!(
            version_and_action("TEXT/XML", None),
            Ok((SoapVersion::V11, None))
        );
        assert_eq!(
            version_and_action(
                "application/soap+xml; charset=utf-8; action=\"urn:a/Op\"",
                None
            ),
            Ok((SoapVersion::V12, Some("urn:a/Op")))
        );
        assert_eq!(
            version_and_action("application/soap+xml", None),
            Ok((SoapVersion::V12, None))
        );
        assert_eq!(
            version_and_action("application/json", None),
            Err(Fejl::UgyldigSoapMedietype)
        );
    }

    fn resolve(name: &str) -> Result<char, String> {
        resolve_reference(&BytesRef::new(name)).map_err(|e| e.to_string())
    }

    #[test]
    fn references_are_the_predefined_entities_and_characters() {
        for (name, c) in [
            ("lt", '<'),
            ("gt", '>'),
            ("amp", '&'),
            ("apos", '\''),
            ("quot", '"'),
        ] {
            assert_eq!(resolve(name), Ok(c));
        }
        for (name, c) in [
            ("#230", 'æ'),
            ("#xE6", 'æ'),
            ("#xe6", 'æ'),
            ("#10", '\n'),
            ("#x1F600", '😀'),
            ("#x10FFFF", '\u{10FFFF}'),
        ] {
            assert_eq!(resolve(name), Ok(c), "&{name};");
        }
        // Not a character: NUL, surrogates, beyond Unicode, signs, no digits, `X`.
        for name in [
            "#0", "#x0", "#xD800", "#xDFFF", "#55296", "#x110000", "#+65", "#-65", "#x", "#",
            "#X41", "#x4G",
        ] {
            let r = BytesRef::new(name);
            let e = resolve_reference(&r).unwrap_err();
            assert!(matches!(e, BadReference::CharRef(_)), "&{name}; gave {e:?}");
        }
        // Only the five entities: HTML's names, case variants and undeclared ones are not.
        for name in ["nbsp", "aelig", "LT", "Amp", "a", ""] {
            let r = BytesRef::new(name);
            let e = resolve_reference(&r).unwrap_err();
            assert!(
                matches!(e, BadReference::UnknownEntity(n) if n == name),
                "{e:?}"
            );
        }
        assert_eq!(resolve("nbsp"), Err("unknown entity &nbsp;".to_owned()));
    }
}
