//! Connection agreements ("tilslutningsaftaler") as data: which organisations a
//! certificate may act for. A TOML file of `[[agreement]]` tables:
//!
//! ```toml
//! [[agreement]]
//! name = "Leverandør A, KSS for Aarhus and Odder"   # for people and logs
//! cvr = "11111111"                                  # the certificate's CVR
//! certificate = "UI:DK-O:G:5e50b9bb-..."            # optional: one certificate of the CVR
//! acts_for = [ { type = 1, code = "751" }, { type = 3, code = "751" } ]
//! ```
//!
//! Checked as a whole when loaded (by `serve`, on SIGHUP, and by `vos-converter check`):
//! an organisation type the catalogue does not know, a duplicate agreement or `acts_for`
//! entry, or type 5 (STAR) for any CVR but STAR's own is an error naming the agreement.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::cert::CertIdentity;
use crate::catalog::Catalog;

/// STAR's CVR: the only one whose certificates may act as STAR (organisation type 5).
pub const STAR_CVR: &str = "55570117";
/// STAR's organisation type.
pub const STAR_TYPE: u8 = 5;

/// An organisation a certificate may act for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    #[serde(rename = "type")]
    pub organisation_type: u8,
    pub code: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// For people and logs.
    pub name: String,
    /// The CVR the certificate names.
    pub cvr: String,
    /// One certificate of the CVR only (`UI:DK-O:G:<uuid>`, OCES2 `FID:<n>`); absent: any
    /// certificate of the CVR.
    #[serde(default)]
    pub certificate: Option<String>,
    pub acts_for: Vec<Organisation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    agreement: Vec<Agreement>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: agreement {index} ({name}): {message}")]
    Invalid {
        path: String,
        index: usize,
        name: String,
        message: String,
    },
}

/// The agreements, indexed by CVR.
#[derive(Debug, Default)]
pub struct Agreements {
    by_cvr: HashMap<String, Vec<Agreement>>,
    count: usize,
}

fn is_cvr(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Agreements {
    pub fn load(path: &Path) -> Result<Agreements, AgreementError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AgreementError::Read {
            path: shown.clone(),
            source,
        })?;
        Agreements::parse(&shown, &text)
    }

    /// `path` names the text in errors.
    pub fn parse(path: &str, text: &str) -> Result<Agreements, AgreementError> {
        let file: File = toml::from_str(text).map_err(|e| AgreementError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let catalog = Catalog::load().ok();
        let mut out = Agreements::default();
        let mut keys = HashSet::new();
        for (i, a) in file.agreement.into_iter().enumerate() {
            let bad = |message: String| AgreementError::Invalid {
                path: path.to_owned(),
                index: i + 1,
                name: a.name.clone(),
                message,
            };
            if a.name.trim().is_empty() {
                return Err(bad("name is empty".into()));
            }
            if !is_cvr(&a.cvr) {
                return Err(bad(format!("cvr {:?} is not 8 digits", a.cvr)));
            }
            if let Some(c) = &a.certificate
                && !(c.starts_with("UI:DK-O:G:")
                    || c.starts_with("FID:")
                    || c.starts_with("UID:")
                    || c.starts_with("RID:"))
            {
                return Err(bad(format!(
                    "certificate {c:?} is neither UI:DK-O:G:<uuid> (OCES3) nor FID:<n> (OCES2)"
                )));
            }
            if !keys.insert((a.cvr.clone(), a.certificate.clone())) {
                return Err(bad(format!(
                    "a second agreement for cvr {}{}; put its organisations in the first",
                    a.cvr,
                    a.certificate
                        .as_deref()
                        .map(|c| format!(" and certificate {c}"))
                        .unwrap_or_default()
                )));
            }
            if a.acts_for.is_empty() {
                return Err(bad("acts_for is empty".into()));
            }
            let mut seen = HashSet::new();
            for o in &a.acts_for {
                if catalog.is_some_and(|c| c.orgtype(o.organisation_type).is_none()) {
                    return Err(bad(format!(
                        "type {} is not an organisation type (mappings/organisationstyper.toml)",
                        o.organisation_type
                    )));
                }
                let code_ok = (1..=64).contains(&o.code.len())
                    && o.code.bytes().all(|b| b.is_ascii_graphic());
                if !code_ok {
                    return Err(bad(format!(
                        "code {:?} must be 1-64 visible ASCII characters",
                        o.code
                    )));
                }
                if o.organisation_type == STAR_TYPE && a.cvr != STAR_CVR {
                    return Err(bad(format!(
                        "type 5 (STAR) is STAR's own (CVR {STAR_CVR}); cvr {} may not act as STAR",
                        a.cvr
                    )));
                }
                if !seen.insert(o) {
                    return Err(bad(format!(
                        "{{ type = {}, code = {:?} }} is listed twice",
                        o.organisation_type, o.code
                    )));
                }
            }
            out.count += 1;
            out.by_cvr.entry(a.cvr.clone()).or_default().push(a);
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The agreement of `cert` that lets it act for (type, code), if one does.
    pub fn covering(&self, cert: &CertIdentity, ty: u8, code: &str) -> Option<&Agreement> {
        self.by_cvr.get(&cert.cvr)?.iter().find(|a| {
            applies(a, cert)
                && a.acts_for
                    .iter()
                    .any(|o| o.organisation_type == ty && o.code == code)
        })
    }

    /// Whether the certificate has any agreement at all (for the log of a refusal).
    pub fn knows(&self, cert: &CertIdentity) -> bool {
        self.by_cvr
            .get(&cert.cvr)
            .is_some_and(|v| v.iter().any(|a| applies(a, cert)))
    }
}

/// Whether an agreement applies to a certificate of its CVR: the one it names, or, naming
/// none, any *function* certificate of the CVR (OCES3, or OCES2 `FID:`). An OCES2 company
/// (`UID:`) or employee (`RID:`) certificate comes from the same CA and may authenticate
/// clients too; it acts for nobody unless an agreement names it.
fn applies(a: &Agreement, cert: &CertIdentity) -> bool {
    match &a.certificate {
        Some(c) => *c == cert.id,
        None => !(cert.id.starts_with("UID:") || cert.id.starts_with("RID:")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::door::cert::Layout;

    const FILE: &str = r#"
[[agreement]]
name = "Leverandør A, KSS for Aarhus and Odder"
cvr = "11111111"
certificate = "UI:DK-O:G:5e50b9bb-0e8a-4b7e-9f1c-3d2a1b0c9e8f"
acts_for = [ { type = 1, code = "751" }, { type = 3, code = "751" }, { type = 1, code = "727" } ]

[[agreement]]
name = "A-kasse 12, any certificate"
cvr = "22222222"
acts_for = [ { type = 2, code = "12" } ]

[[agreement]]
name = "STAR"
cvr = "55570117"
acts_for = [ { type = 5, code = "STAR" } ]
"#;

    fn cert(cvr: &str, id: &str) -> CertIdentity {
        CertIdentity {
            cvr: cvr.into(),
            id: id.into(),
            layout: Layout::Oces3,
            common_name: None,
        }
    }

    #[test]
    fn matching() {
        let a = Agreements::parse("a.toml", FILE).unwrap();
        assert_eq!(a.len(), 3);
        let vendor = cert("11111111", "UI:DK-O:G:5e50b9bb-0e8a-4b7e-9f1c-3d2a1b0c9e8f");
        assert!(a.covering(&vendor, 1, "751").is_some());
        assert!(a.covering(&vendor, 3, "751").is_some());
        assert!(a.covering(&vendor, 1, "727").is_some());
        assert!(
            a.covering(&vendor, 3, "727").is_none(),
            "type and code together"
        );
        assert!(a.covering(&vendor, 5, "STAR").is_none());
        assert!(a.covering(&vendor, 1, " 751").is_none());
        // Another certificate of the same CVR is not the one named.
        let other = cert("11111111", "UI:DK-O:G:00000000-0000-4000-8000-000000000000");
        assert!(a.covering(&other, 1, "751").is_none());
        assert!(!a.knows(&other));
        // Without `certificate`, every certificate of the CVR.
        assert!(a.covering(&cert("22222222", "FID:1"), 2, "12").is_some());
        assert!(a.covering(&cert("22222222", "FID:2"), 2, "12").is_some());
        assert!(a.covering(&cert("33333333", "FID:1"), 2, "12").is_none());
        // An OCES2 employee or company certificate of the CVR is not a function certificate.
        assert!(
            a.covering(&cert("22222222", "RID:12345"), 2, "12")
                .is_none()
        );
        assert!(
            a.covering(&cert("22222222", "UID:12345"), 2, "12")
                .is_none()
        );
        let named = Agreements::parse(
            "n.toml",
            "[[agreement]]\nname = \"x\"\ncvr = \"22222222\"\ncertificate = \"RID:7\"\nacts_for = [{ type = 2, code = \"12\" }]\n",
        )
        .unwrap();
        assert!(
            named
                .covering(&cert("22222222", "RID:7"), 2, "12")
                .is_some()
        );
        assert!(a.covering(&vendor, 1, "727").is_some() && a.covering(&vendor, 1, "728").is_none());
    }

    #[test]
    fn refusals() {
        let bad = |text: &str| Agreements::parse("a.toml", text).unwrap_err().to_string();
        let one = |acts: &str, cvr: &str| {
            format!("[[agreement]]\nname = \"x\"\ncvr = \"{cvr}\"\nacts_for = [ {acts} ]\n")
        };
        let e = bad(&one("{ type = 9, code = \"1\" }", "11111111"));
        assert!(e.contains("type 9") && e.contains("agreement 1"), "{e}");
        let e = bad(&one("{ type = 5, code = \"STAR\" }", "11111111"));
        assert!(e.contains("STAR"), "{e}");
        let e = bad(&one(
            "{ type = 1, code = \"1\" }, { type = 1, code = \"1\" }",
            "11111111",
        ));
        assert!(e.contains("twice"), "{e}");
        let e = bad(&format!(
            "{}{}",
            one("{ type = 1, code = \"1\" }", "11111111"),
            one("{ type = 1, code = \"2\" }", "11111111")
        ));
        assert!(
            e.contains("agreement 2") && e.contains("second agreement"),
            "{e}"
        );
        assert!(bad(&one("{ type = 1, code = \"1\" }", "1111")).contains("8 digits"));
        assert!(bad(&one("", "11111111")).contains("empty"));
        assert!(bad(&one("{ type = 1, code = \"\" }", "11111111")).contains("code"));
        assert!(bad("[[agreement]]\nname = \"x\"\ncvr = \"11111111\"\ncertificate = \"x\"\nacts_for = [{ type = 1, code = \"1\" }]\n").contains("certificate"));
        assert!(bad("[[agreement]]\nnme = \"x\"\n").contains("a.toml"));
        // Different certificates of one CVR may have agreements of their own.
        let two = "[[agreement]]\nname = \"a\"\ncvr = \"11111111\"\ncertificate = \"FID:1\"\nacts_for = [{ type = 1, code = \"1\" }]\n\
                   [[agreement]]\nname = \"b\"\ncvr = \"11111111\"\ncertificate = \"FID:2\"\nacts_for = [{ type = 1, code = \"2\" }]\n";
        assert_eq!(Agreements::parse("a.toml", two).unwrap().len(), 2);
    }
}
