//! The SOAP side: versions and content types, reading requests (`envelope`), writing
//! responses and faults (`write`), the WSDL as served (`wsdl`), and the HTTP front
//! (`front`). Only this module reads or writes XML on the request path.

pub mod envelope;
pub mod front;
pub mod splice;
pub mod write;
pub mod wsdl;

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
}
