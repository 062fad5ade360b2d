//! Who a certificate names: the CVR number and the certificate's own id, read from both
//! OCES generations (`../shared/domain/identity-and-certificates.md`):
//!
//! | generation | CVR | the certificate's own id |
//! |---|---|---|
//! | OCES2 | subject `serialNumber` `CVR:<cvr>-FID:<n>` (or `-UID:`, `-RID:`), often in one multi-valued RDN with the CN | `FID:<n>` (`UID:..`, `RID:..`) |
//! | OCES3 | subject `organizationIdentifier` `NTRDK-<cvr>` | subject `serialNumber` `UI:DK-O:G:<uuid>` |
//!
//! The DER is read by x509-parser; every RDN is walked, so an attribute inside a
//! multi-valued RDN is found like any other.

use x509_parser::der_parser::oid::Oid;
use x509_parser::oid_registry::OID_X509_SERIALNUMBER;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The certificate generation a subject was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Oces2,
    Oces3,
}

/// What a client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The CVR number, 8 digits.
    pub cvr: String,
    /// The certificate's own id: `FID:<n>` (OCES2 function certificate; `UID:`/`RID:` for
    /// the other OCES2 kinds) or `UI:DK-O:G:<uuid>` (OCES3).
    pub id: String,
    pub layout: Layout,
    /// The subject's CN, for logs (never a person's CPR: function certificates name systems).
    pub common_name: Option<String>,
}

/// Why a certificate names nobody the converter can match to an agreement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate is not X.509 DER: {0}")]
    Der(String),
    #[error(
        "the certificate's subject names no CVR (neither OCES3 organizationIdentifier NTRDK-<cvr> nor OCES2 serialNumber CVR:<cvr>-FID:<n>)"
    )]
    NoCvr,
    #[error("the certificate's subject has {0} CVR attributes; exactly one is expected")]
    Ambiguous(usize),
    #[error("the certificate's CVR is not 8 digits")]
    BadCvr,
    #[error("the OCES3 certificate has no serialNumber UI:DK-O:G:<uuid>")]
    NoOces3Id,
}

fn is_cvr(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `CVR:<cvr>-FID:<n>` (or UID/RID) → (cvr, "FID:<n>").
fn oces2_serial(s: &str) -> Option<Result<(String, String), CertError>> {
    let rest = s.strip_prefix("CVR:")?;
    let (cvr, id) = rest.split_once('-')?;
    let kind_ok = ["FID:", "UID:", "RID:"]
        .iter()
        .any(|k| id.strip_prefix(k).is_some_and(|n| !n.is_empty()));
    if !kind_ok {
        return None;
    }
    Some(if is_cvr(cvr) {
        Ok((cvr.to_owned(), id.to_owned()))
    } else {
        Err(CertError::BadCvr)
    })
}

/// `UI:DK-O:G:<uuid>`, with a UUID that parses.
fn oces3_id(s: &str) -> bool {
    s.strip_prefix("UI:DK-O:G:")
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
}

/// Reads the holder of a DER certificate (the end-entity certificate of a chain).
pub fn identify(der: &[u8]) -> Result<CertIdentity, CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
    let subject = cert.subject();
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str().ok().map(|s| s.trim().to_owned())
    };
    let serials: Vec<String> = subject
        .iter_by_oid(&OID_X509_SERIALNUMBER)
        .filter_map(text)
        .collect();
    // organizationIdentifier (2.5.4.97) has no constant in the OID registry.
    let org_id_oid = Oid::from(&[2, 5, 4, 97]).map_err(|_| CertError::NoCvr)?;
    let org_ids: Vec<String> = subject
        .iter_by_oid(&org_id_oid)
        .filter_map(text)
        .filter(|s| s.starts_with("NTRDK-"))
        .collect();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);

    if !org_ids.is_empty() {
        if org_ids.len() > 1 {
            return Err(CertError::Ambiguous(org_ids.len()));
        }
        let cvr = &org_ids[0]["NTRDK-".len()..];
        if !is_cvr(cvr) {
            return Err(CertError::BadCvr);
        }
        let ids: Vec<&String> = serials.iter().filter(|s| oces3_id(s)).collect();
        let [id] = ids.as_slice() else {
            return Err(if ids.is_empty() {
                CertError::NoOces3Id
            } else {
                CertError::Ambiguous(ids.len())
            });
        };
        return Ok(CertIdentity {
            cvr: cvr.to_owned(),
            id: (*id).clone(),
            layout: Layout::Oces3,
            common_name,
        });
    }
    let found: Vec<Result<(String, String), CertError>> =
        serials.iter().filter_map(|s| oces2_serial(s)).collect();
    match found.as_slice() {
        [] => Err(CertError::NoCvr),
        [one] => {
            let (cvr, id) = one.clone()?;
            Ok(CertIdentity {
                cvr,
                id,
                layout: Layout::Oces2,
                common_name,
            })
        }
        many => Err(CertError::Ambiguous(many.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oces2_serial_numbers() {
        assert_eq!(
            oces2_serial("CVR:29189846-FID:1263281782"),
            Some(Ok(("29189846".into(), "FID:1263281782".into())))
        );
        assert_eq!(
            oces2_serial("CVR:29189846-UID:abc"),
            Some(Ok(("29189846".into(), "UID:abc".into())))
        );
        assert_eq!(
            oces2_serial("CVR:2918984-FID:1"),
            Some(Err(CertError::BadCvr))
        );
        assert_eq!(oces2_serial("CVR:29189846-XID:1"), None);
        assert_eq!(oces2_serial("CVR:29189846-FID:"), None);
        assert_eq!(
            oces2_serial("UI:DK-O:G:5e50b9bb-0000-4000-8000-000000000000"),
            None
        );
    }

    #[test]
    fn oces3_ids() {
        assert!(oces3_id("UI:DK-O:G:5e50b9bb-0e8a-4b7e-9f1c-3d2a1b0c9e8f"));
        assert!(!oces3_id("UI:DK-O:G:not-a-uuid"));
        assert!(!oces3_id("CVR:29189846-FID:1"));
    }

    const OCES2_MULTI: &[u8] = include_bytes!("../../tests/fixtures/oces2-multivalued-rdn.der");
    const OCES3: &[u8] = include_bytes!("../../tests/fixtures/oces3.der");
    const NO_CVR: &[u8] = include_bytes!("../../tests/fixtures/no-cvr.der");

    #[test]
    fn oces2_with_a_multi_valued_rdn() {
        let id = identify(OCES2_MULTI).unwrap();
        assert_eq!(
            (id.cvr.as_str(), id.id.as_str(), id.layout),
            ("29189846", "FID:1263281782", Layout::Oces2)
        );
        assert_eq!(id.common_name.as_deref(), Some("KSS Prod"));
    }

    #[test]
    fn oces3_layout() {
        let id = identify(OCES3).unwrap();
        assert_eq!(
            (id.cvr.as_str(), id.id.as_str(), id.layout),
            (
                "19552101",
                "UI:DK-O:G:5e50b9bb-0e8a-4b7e-9f1c-3d2a1b0c9e8f",
                Layout::Oces3
            )
        );
    }

    #[test]
    fn a_certificate_without_a_cvr() {
        assert_eq!(identify(NO_CVR), Err(CertError::NoCvr));
    }

    #[test]
    fn the_dev_certificates_in_both_layouts() {
        use crate::door::devcerts::{Ca, Subject};
        let ca = Ca::new("test CA").unwrap();
        let uuid = uuid::Uuid::new_v4();
        let c = ca
            .client(&Subject::Oces3 {
                cvr: "11111111".into(),
                uuid,
                cn: "KSS".into(),
                o: "Leverandør A".into(),
            })
            .unwrap();
        let id = identify(&c.der).unwrap();
        assert_eq!(id.cvr, "11111111");
        assert_eq!(id.id, format!("UI:DK-O:G:{uuid}"));
        let c = ca
            .client(&Subject::Oces2 {
                cvr: "22222222".into(),
                fid: "42".into(),
                cn: "A-kasse".into(),
                o: "A-kasse 12".into(),
            })
            .unwrap();
        let id = identify(&c.der).unwrap();
        assert_eq!(
            (id.cvr.as_str(), id.id.as_str(), id.layout),
            ("22222222", "FID:42", Layout::Oces2)
        );
    }

    #[test]
    fn not_der_is_an_error() {
        assert!(matches!(identify(b"hello"), Err(CertError::Der(_))));
    }
}
