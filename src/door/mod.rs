//! The door: who is calling. **The one place identity is decided** ([`Door::decide`]):
//! the certificate the connection presented (TLS, or a trusted proxy's forwarded header),
//! the connection agreements, and the claim of the request's `RequestUserMetadata`.
//!
//! Three modes (`identity` in the config):
//!
//! - `certificate`: the converter terminates TLS and requires a client certificate; the
//!   certificate's CVR (and id) must have an agreement covering the claimed organisation.
//! - `proxy`: a TLS-terminating proxy at a trusted address forwards the client certificate
//!   in a header (nginx's `$ssl_client_escaped_cert`); the same agreements decide. From any
//!   other address the header is ignored.
//! - `header`: `RequestUserMetadata` is trusted as sent (dev mode's default; outside dev
//!   mode only when asked for explicitly, and then said at start and by `/readyz`).
//!
//! A refused claim is a Client fault (900511, 900512) before anything is called upstream;
//! its text names the organisation refused, never those the certificate may act for.

pub mod agreements;
pub mod cert;
pub mod devcerts;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use self::agreements::{AgreementError, Agreements};
use self::cert::{CertIdentity, identify};
use crate::catalog::Fejl;
use crate::tls::{PeerCert, Reloadable};
use crate::upstream::Identity;

/// How the caller is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Certificate,
    Proxy,
    Header,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Certificate => "certificate",
            Mode::Proxy => "proxy",
            Mode::Header => "header",
        }
    }
}

/// The claim of a request: RequestUserMetadata, its type already normalised by the
/// envelope reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub organisation_type: Option<u8>,
    pub organisation_code: Option<String>,
    pub user: Option<String>,
}

/// What the connection (or its trusted proxy) presented, decided from the transport before
/// the envelope is read.
#[derive(Debug, Clone)]
pub enum Presented {
    /// A verified certificate naming this holder.
    Certificate(Arc<CertIdentity>),
    /// `header` mode: nothing is verified.
    Unverified,
    /// A certificate was needed and none usable came; the reason is for the log only.
    Missing(String),
    /// A certificate that verified but names no CVR.
    Unnamed(String),
}

/// A refusal of the door, as the catalogue code and the fault string's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub fejl: Fejl,
    pub detail: Option<String>,
}

fn refusal(fejl: Fejl, detail: impl Into<String>) -> Refusal {
    Refusal {
        fejl,
        detail: Some(detail.into()),
    }
}

/// The door's settings, from `Config`.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    pub mode: Mode,
    pub agreements: Option<PathBuf>,
    pub trusted_proxies: Vec<IpNet>,
    /// The header a trusted proxy puts the URL-escaped PEM certificate in (lower case).
    pub client_cert_header: Option<String>,
    /// CAs and CRLs to verify forwarded certificates with (proxy mode).
    pub trust: Option<Arc<Reloadable>>,
}

pub struct Door {
    mode: Mode,
    agreements_path: Option<PathBuf>,
    agreements: RwLock<Arc<Agreements>>,
    proxies: Vec<IpNet>,
    cert_header: Option<String>,
    trust: Option<Arc<Reloadable>>,
    /// Forwarded certificates already verified and read, by the header's value: the proxy
    /// sends the same PEM on every request of a client. Emptied on reload, and an entry of
    /// an older trust generation is a miss (an insert may race the emptying).
    forwarded: moka::sync::Cache<String, Forwarded>,
}

/// A forwarded certificate's outcome, and what it holds for.
#[derive(Debug, Clone)]
struct Forwarded {
    generation: u64,
    not_after: i64,
    outcome: Result<Arc<CertIdentity>, String>,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("mode", &self.mode)
            .field("agreements", &self.agreements_path)
            .field("proxies", &self.proxies)
            .finish_non_exhaustive()
    }
}

impl Door {
    pub fn new(cfg: DoorConfig) -> Result<Door, AgreementError> {
        let agreements = match &cfg.agreements {
            Some(p) => Agreements::load(p)?,
            None => Agreements::default(),
        };
        Ok(Door {
            mode: cfg.mode,
            agreements_path: cfg.agreements,
            agreements: RwLock::new(Arc::new(agreements)),
            proxies: cfg.trusted_proxies,
            cert_header: cfg.client_cert_header.map(|h| h.to_ascii_lowercase()),
            trust: cfg.trust,
            forwarded: moka::sync::Cache::builder()
                .max_capacity(1024)
                .time_to_live(Duration::from_secs(300))
                .build(),
        })
    }

    /// `header` mode, for tests and the benches: the claim is trusted.
    pub fn header_mode() -> Door {
        Door {
            mode: Mode::Header,
            agreements_path: None,
            agreements: RwLock::new(Arc::new(Agreements::default())),
            proxies: Vec::new(),
            cert_header: None,
            trust: None,
            forwarded: moka::sync::Cache::new(1),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether identities are verified (every mode but `header`).
    pub fn verifies(&self) -> bool {
        self.mode != Mode::Header
    }

    fn agreements(&self) -> Arc<Agreements> {
        self.agreements
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many agreements are loaded.
    pub fn agreement_count(&self) -> usize {
        self.agreements().len()
    }

    /// Reads the agreements file again (SIGHUP). On error the old agreements stay.
    pub fn reload(&self) -> Result<usize, AgreementError> {
        self.forwarded.invalidate_all();
        let Some(path) = &self.agreements_path else {
            return Ok(0);
        };
        let fresh = Agreements::load(path)?;
        let n = fresh.len();
        *self.agreements.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(n)
    }

    /// Whether a connection from `peer` may set forwarding headers (the certificate header,
    /// `X-Forwarded-Host`, `X-Forwarded-Proto`).
    pub fn trusts_forwarding(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            self.proxies.iter().any(|n| n.contains(&ip))
        })
    }

    /// What the connection presents. `tls` is the TLS peer's certificate (if the listener
    /// is TLS); `headers` gives every value of a request header.
    pub fn presented<'h>(
        &self,
        peer: Option<IpAddr>,
        tls: Option<&PeerCert>,
        headers: impl Fn(&str) -> Vec<&'h str>,
    ) -> Presented {
        match self.mode {
            Mode::Header => Presented::Unverified,
            Mode::Certificate => match tls {
                Some(pc) => match pc.holder(self.trust.as_deref()) {
                    Ok(id) => Presented::Certificate(id.clone()),
                    Err(e) if pc.names_holder() => Presented::Missing(e),
                    Err(e) => Presented::Unnamed(e),
                },
                None => Presented::Missing("no client certificate on the connection".into()),
            },
            Mode::Proxy => {
                if !self.trusts_forwarding(peer) {
                    return Presented::Missing(
                        "the connection is not from a trusted proxy; its certificate header is ignored"
                            .into(),
                    );
                }
                let Some(name) = &self.cert_header else {
                    return Presented::Missing("no client_cert_header is configured".into());
                };
                // Exactly one value: a proxy that appends rather than replaces would leave the
                // client's own header in front of its own (certificates are public).
                match headers(name).as_slice() {
                    [] => Presented::Missing(format!("the proxy sent no {name} header")),
                    [v] if v.contains(',') => Presented::Missing(format!(
                        "{name} holds a list (the proxy must replace it)"
                    )),
                    [v] if v.trim().is_empty() => {
                        Presented::Missing(format!("the proxy sent an empty {name} header"))
                    }
                    [v] => match self.forwarded_cert(v.trim()) {
                        Ok(id) => Presented::Certificate(id),
                        Err(e) => Presented::Missing(e),
                    },
                    _ => Presented::Missing(format!(
                        "{name} was sent more than once (the proxy must replace it)"
                    )),
                }
            }
        }
    }

    /// A forwarded certificate: URL-escaped PEM (or plain PEM), verified against the
    /// client CAs and CRLs, then read. Without a client CA nothing verifies (fail closed;
    /// the config refuses proxy mode without one). The outcome is cached per value, for
    /// the trust generation it was reached under and never past the certificate's expiry.
    fn forwarded_cert(&self, value: &str) -> Result<Arc<CertIdentity>, String> {
        let Some(trust) = self.trust.as_ref().filter(|t| t.has_trust()) else {
            return Err("forwarded certificates cannot be verified: no client_ca".into());
        };
        let generation = trust.generation();
        let now = rustls_pki_types::UnixTime::now().as_secs() as i64;
        if let Some(hit) = self.forwarded.get(value)
            && hit.generation == generation
            && now <= hit.not_after
        {
            return hit.outcome;
        }
        let mut not_after = i64::MAX;
        let outcome = (|| {
            let pem = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| "the forwarded certificate is not UTF-8".to_owned())?;
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| format!("the forwarded certificate is not PEM: {e}"))?;
            trust
                .verify(&der)
                .map_err(|e| format!("the forwarded certificate does not verify: {e}"))?;
            if let Ok((_, c)) = x509_parser::parse_x509_certificate(&der) {
                not_after = c.validity().not_after.timestamp();
            }
            identify(&der).map(Arc::new).map_err(|e| e.to_string())
        })();
        self.forwarded.insert(
            value.to_owned(),
            Forwarded {
                generation,
                not_after,
                outcome: outcome.clone(),
            },
        );
        outcome
    }

    /// **The decision**: the identity a call is made with, or why not. Nothing is called
    /// upstream before this has said yes.
    pub fn decide(&self, presented: &Presented, claim: &Claim) -> Result<Identity, Refusal> {
        // The identity travels to REST as header values: visible ASCII and spaces only.
        let plain = |v: &String| v.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        let texts = [&claim.organisation_code, &claim.user];
        if texts.into_iter().flatten().any(|v| !plain(v)) {
            return Err(refusal(
                Fejl::MetadataMangler,
                "OrganisationCode og UserIdentifier må kun indeholde synlige ASCII-tegn",
            ));
        }
        let (Some(ty), Some(code)) = (claim.organisation_type, claim.organisation_code.as_ref())
        else {
            return Err(refusal(
                Fejl::MetadataMangler,
                "OrganisationType og OrganisationCode skal udfyldes",
            ));
        };
        let identity = || Identity {
            organisation_type: ty.to_string(),
            organisation_code: code.clone(),
            user: claim.user.clone(),
        };
        let refused = || refusal(Fejl::AftaleDaekkerIkke, format!("organisation {ty}:{code}"));
        match presented {
            Presented::Unverified if self.mode == Mode::Header => Ok(identity()),
            Presented::Unverified => Err(refusal(
                Fejl::CertifikatMangler,
                "ingen gyldig klientcertifikat",
            )),
            Presented::Missing(why) => {
                tracing::warn!(reason = %why, "call without a usable client certificate");
                Err(match self.mode {
                    Mode::Proxy => refusal(
                        Fejl::CertifikatMangler,
                        "proxyen videresendte intet gyldigt klientcertifikat",
                    ),
                    _ => refusal(Fejl::CertifikatMangler, "intet gyldigt klientcertifikat"),
                })
            }
            Presented::Unnamed(why) => {
                tracing::warn!(reason = %why, organisation = %format_args!("{ty}:{code}"), "certificate names no CVR; claim refused");
                Err(refused())
            }
            Presented::Certificate(cert) => {
                let agreements = self.agreements();
                match agreements.covering(cert, ty, code) {
                    Some(a) => {
                        tracing::debug!(agreement = %a.name, cvr = %cert.cvr, "claim covered");
                        Ok(identity())
                    }
                    None => {
                        tracing::warn!(
                            cvr = %cert.cvr,
                            certificate = %cert.id,
                            has_agreement = agreements.knows(cert),
                            organisation = %format_args!("{ty}:{code}"),
                            "claim outside the certificate's agreements; refused (900511)"
                        );
                        Err(refused())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::door::devcerts::{Ca, Subject};

    fn claim(t: u8, c: &str) -> Claim {
        Claim {
            organisation_type: Some(t),
            organisation_code: Some(c.into()),
            user: None,
        }
    }

    fn jobcenter() -> Subject {
        Subject::Oces3 {
            cvr: "11111111".into(),
            uuid: uuid::Uuid::new_v4(),
            cn: "KSS".into(),
            o: "Leverandør A".into(),
        }
    }

    fn door(
        mode: Mode,
        dir: &std::path::Path,
        trust: Option<Arc<Reloadable>>,
        proxies: &str,
    ) -> Door {
        let path = dir.join("agreements.toml");
        std::fs::write(
            &path,
            "[[agreement]]\nname = \"A\"\ncvr = \"11111111\"\nacts_for = [ { type = 1, code = \"101\" } ]\n",
        )
        .unwrap();
        Door::new(DoorConfig {
            mode,
            agreements: Some(path),
            trusted_proxies: vec![proxies.parse().unwrap()],
            client_cert_header: Some("X-Client-Cert".into()),
            trust,
        })
        .unwrap()
    }

    #[test]
    fn every_decision() {
        let dir = tempfile::tempdir().unwrap();
        let d = door(Mode::Certificate, dir.path(), None, "10.0.0.0/8");
        let cert = CertIdentity {
            cvr: "11111111".into(),
            id: "UI:DK-O:G:x".into(),
            layout: cert::Layout::Oces3,
            common_name: None,
        };
        let p = Presented::Certificate(Arc::new(cert.clone()));
        let who = d.decide(&p, &claim(1, "101")).unwrap();
        assert_eq!(
            (
                who.organisation_type.as_str(),
                who.organisation_code.as_str()
            ),
            ("1", "101")
        );
        // Outside the agreement: 900511 naming the claim, not what the certificate may do.
        let r = d.decide(&p, &claim(5, "55570117")).unwrap_err();
        assert_eq!(r.fejl, Fejl::AftaleDaekkerIkke);
        let detail = r.detail.unwrap();
        assert!(
            detail.contains("5:55570117") && !detail.contains("101"),
            "{detail}"
        );
        // Another CVR, no certificate, a certificate naming no CVR.
        let other = Presented::Certificate(Arc::new(CertIdentity {
            cvr: "99999999".into(),
            ..cert
        }));
        assert_eq!(
            d.decide(&other, &claim(1, "101")).unwrap_err().fejl,
            Fejl::AftaleDaekkerIkke
        );
        assert_eq!(
            d.decide(&Presented::Missing("x".into()), &claim(1, "101"))
                .unwrap_err()
                .fejl,
            Fejl::CertifikatMangler
        );
        assert_eq!(
            d.decide(&Presented::Unnamed("x".into()), &claim(1, "101"))
                .unwrap_err()
                .fejl,
            Fejl::AftaleDaekkerIkke
        );
        // Unverified is only good enough in header mode.
        assert_eq!(
            d.decide(&Presented::Unverified, &claim(1, "101"))
                .unwrap_err()
                .fejl,
            Fejl::CertifikatMangler
        );
        assert!(
            Door::header_mode()
                .decide(&Presented::Unverified, &claim(5, "x"))
                .is_ok()
        );
        // Incomplete or non-ASCII claims.
        let mut c = claim(1, "101");
        c.organisation_code = None;
        assert_eq!(d.decide(&p, &c).unwrap_err().fejl, Fejl::MetadataMangler);
        assert_eq!(
            d.decide(&p, &claim(1, "1\u{e6}1")).unwrap_err().fejl,
            Fejl::MetadataMangler
        );
        // Labels: only organisations an agreement covers.
        // What a decided claim is labelled with is what an agreement covers (the labels stay
        // bounded by the agreements): another code of the same type is refused.
        assert_eq!(
            d.decide(&p, &claim(1, "102")).unwrap_err().fejl,
            Fejl::AftaleDaekkerIkke
        );
        assert!(
            Door::header_mode()
                .decide(&Presented::Unverified, &claim(1, "102"))
                .is_ok()
        );
    }

    #[test]
    fn forwarded_certificates_from_trusted_proxies_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("CA").unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.cert_pem).unwrap();
        let trust = Reloadable::new(
            None,
            crate::tls::ClientTrust {
                ca: vec![ca_path],
                crl: vec![],
            },
        )
        .unwrap();
        let d = door(Mode::Proxy, dir.path(), Some(trust), "127.0.0.1/32");
        let c = ca.client(&jobcenter()).unwrap();
        let escaped =
            percent_encoding::utf8_percent_encode(&c.cert_pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let far: IpAddr = "192.0.2.1".parse().unwrap();
        let header = |v: &'static str| {
            move |n: &str| {
                if n == "x-client-cert" {
                    vec![v]
                } else {
                    vec![]
                }
            }
        };
        let v: &'static str = Box::leak(escaped.into_boxed_str());
        assert!(
            matches!(d.presented(Some(local), None, header(v)), Presented::Certificate(id) if id.cvr == "11111111")
        );
        // The IPv4-mapped IPv6 form of a trusted address is trusted.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(matches!(
            d.presented(Some(mapped), None, header(v)),
            Presented::Certificate(_)
        ));
        // From elsewhere the header is ignored; no header; garbage; another CA's certificate.
        assert!(matches!(
            d.presented(Some(far), None, header(v)),
            Presented::Missing(_)
        ));
        assert!(matches!(
            d.presented(Some(local), None, |_| vec![]),
            Presented::Missing(_)
        ));
        // Twice (a proxy that appended), or a list in one value: refused.
        assert!(matches!(
            d.presented(Some(local), None, |_| vec![v, v]),
            Presented::Missing(e) if e.contains("more than once")
        ));
        let listed: &'static str = Box::leak(format!("{v},{v}").into_boxed_str());
        assert!(matches!(
            d.presented(Some(local), None, header(listed)),
            Presented::Missing(_)
        ));
        assert!(matches!(
            d.presented(Some(local), None, header("not%20a%20cert")),
            Presented::Missing(_)
        ));
        let stranger = Ca::new("other").unwrap().client(&jobcenter()).unwrap();
        let s: &'static str = Box::leak(
            percent_encoding::utf8_percent_encode(
                &stranger.cert_pem,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string()
            .into_boxed_str(),
        );
        assert!(
            matches!(d.presented(Some(local), None, header(s)), Presented::Missing(e) if e.contains("verify"))
        );
        assert!(
            d.trusts_forwarding(Some(local))
                && !d.trusts_forwarding(Some(far))
                && !d.trusts_forwarding(None)
        );
    }

    #[test]
    fn a_failed_reload_keeps_the_old_agreements() {
        let dir = tempfile::tempdir().unwrap();
        let d = door(Mode::Certificate, dir.path(), None, "10.0.0.0/8");
        assert_eq!(d.agreement_count(), 1);
        std::fs::write(
            dir.path().join("agreements.toml"),
            "[[agreement]]\nname = 1\n",
        )
        .unwrap();
        assert!(d.reload().is_err());
        assert_eq!(d.agreement_count(), 1);
        assert!(
            d.decide(
                &Presented::Certificate(Arc::new(CertIdentity {
                    cvr: "11111111".into(),
                    id: "UI:DK-O:G:x".into(),
                    layout: cert::Layout::Oces3,
                    common_name: None,
                })),
                &claim(1, "101")
            )
            .is_ok()
        );
    }
}
