//! Test certificates, for trying the HTTPS door on one machine (`vos-converter dev-certs
//! DIR`) and for the tests: a CA, a server certificate for localhost, client function
//! certificates in both OCES layouts, and an agreements file that matches them. Made with
//! rcgen; nothing here is fit for production (the CA's key is written next to it).
//!
//! rcgen writes one attribute per RDN, so the OCES2 certificates made here have CN and
//! serialNumber as separate RDNs; the multi-valued RDN of real OCES2 certificates is
//! covered by a committed DER fixture (`tests/fixtures/oces2-multivalued-rdn.der`).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// The organizationIdentifier attribute (OCES3's CVR).
const ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];

#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The subject of a client function certificate.
#[derive(Debug, Clone)]
pub enum Subject {
    /// `organizationIdentifier=NTRDK-<cvr>`, `serialNumber=UI:DK-O:G:<uuid>`.
    Oces3 {
        cvr: String,
        uuid: uuid::Uuid,
        cn: String,
        o: String,
    },
    /// `serialNumber=CVR:<cvr>-FID:<fid>`, `O=<o> // CVR:<cvr>`.
    Oces2 {
        cvr: String,
        fid: String,
        cn: String,
        o: String,
    },
}

impl Subject {
    /// The certificate's own id as an agreement names it.
    pub fn certificate_id(&self) -> String {
        match self {
            Subject::Oces3 { uuid, .. } => format!("UI:DK-O:G:{uuid}"),
            Subject::Oces2 { fid, .. } => format!("FID:{fid}"),
        }
    }

    fn dn(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DK");
        match self {
            Subject::Oces3 { cvr, uuid, cn, o } => {
                dn.push(
                    DnType::CustomDnType(ORGANIZATION_IDENTIFIER.to_vec()),
                    format!("NTRDK-{cvr}"),
                );
                dn.push(DnType::OrganizationName, o.as_str());
                dn.push(
                    DnType::CustomDnType(vec![2, 5, 4, 5]),
                    format!("UI:DK-O:G:{uuid}"),
                );
                dn.push(DnType::CommonName, cn.as_str());
            }
            Subject::Oces2 { cvr, fid, cn, o } => {
                dn.push(DnType::OrganizationName, format!("{o} // CVR:{cvr}"));
                dn.push(DnType::CommonName, cn.as_str());
                dn.push(
                    DnType::CustomDnType(vec![2, 5, 4, 5]),
                    format!("CVR:{cvr}-FID:{fid}"),
                );
            }
        }
        dn
    }
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub serial: SerialNumber,
}

/// A test CA.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
}

fn serial() -> SerialNumber {
    let mut b = *uuid::Uuid::new_v4().as_bytes();
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Ca {
    pub fn new(cn: &str) -> Result<Ca, DevCertsError> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DK");
        dn.push(
            DnType::OrganizationName,
            "vos-converter dev (not for production)",
        );
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.not_before = now() - Duration::days(1);
        params.not_after = now() + Duration::days(3650);
        params.serial_number = Some(serial());
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            params,
            key,
            cert_pem: cert.pem(),
        })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn issue(&self, mut params: CertificateParams) -> Result<Issued, DevCertsError> {
        let key = KeyPair::generate()?;
        let s = serial();
        params.serial_number = Some(s.clone());
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            serial: s,
        })
    }

    /// A server certificate for these DNS names and IP addresses.
    pub fn server(&self, names: &[&str]) -> Result<Issued, DevCertsError> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now() - Duration::days(1);
        params.not_after = now() + Duration::days(825);
        self.issue(params)
    }

    /// A client function certificate, valid from yesterday for `days` days (negative
    /// `from_days` makes one that has expired).
    pub fn client_valid(
        &self,
        subject: &Subject,
        from_days: i64,
        days: i64,
    ) -> Result<Issued, DevCertsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject.dn();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now() + Duration::days(from_days);
        params.not_after = now() + Duration::days(from_days + days);
        self.issue(params)
    }

    pub fn client(&self, subject: &Subject) -> Result<Issued, DevCertsError> {
        self.client_valid(subject, -1, 825)
    }

    /// A CRL revoking these certificates, PEM.
    pub fn crl(&self, revoked: &[&Issued]) -> Result<String, DevCertsError> {
        let params = CertificateRevocationListParams {
            this_update: now() - Duration::minutes(5),
            next_update: now() + Duration::days(30),
            crl_number: serial(),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|c| RevokedCertParams {
                    serial_number: c.serial.clone(),
                    revocation_time: now() - Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&self.params, &self.key);
        Ok(params.signed_by(&issuer)?.pem()?)
    }
}

/// One client of the dev set: its file stem, subject, and the organisations it acts for.
pub type DevClient = (&'static str, Subject, Vec<(u8, &'static str)>);

/// The dev set's clients.
pub fn dev_clients() -> Vec<DevClient> {
    vec![
        (
            "jobcenter-101",
            Subject::Oces3 {
                cvr: "11111111".into(),
                uuid: uuid::Uuid::new_v4(),
                cn: "KSS Jobcenter 101 (dev)".into(),
                o: "Leverandør A (dev)".into(),
            },
            vec![(1, "101"), (3, "101")],
        ),
        (
            "akasse-12",
            Subject::Oces2 {
                cvr: "22222222".into(),
                fid: "1000012".into(),
                cn: "A-kasse 12 system (dev)".into(),
                o: "A-kasse 12 (dev)".into(),
            },
            vec![(2, "12")],
        ),
        (
            "star",
            Subject::Oces3 {
                cvr: super::agreements::STAR_CVR.into(),
                uuid: uuid::Uuid::new_v4(),
                cn: "STAR (dev)".into(),
                o: "Styrelsen for Arbejdsmarked og Rekruttering (dev)".into(),
            },
            vec![(5, super::agreements::STAR_CVR)],
        ),
    ]
}

/// Writes a file; private keys readable by their owner only.
fn write(path: PathBuf, text: &str) -> Result<PathBuf, DevCertsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let private = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("-key.pem"));
    let err = |source| DevCertsError::Write {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    Ok(path)
}

/// Writes the dev set into `dir`: `ca.pem` (+ `ca-key.pem`), `server.pem` (localhost,
/// 127.0.0.1, ::1), one `<name>.pem` + `<name>-key.pem` per client of [`dev_clients`],
/// `converter.pem` (the converter's own certificate for the hop to REST), an empty
/// `crl.pem`, and `agreements.toml`. Returns the files written.
pub fn write_dev_set(dir: &Path) -> Result<Vec<PathBuf>, DevCertsError> {
    std::fs::create_dir_all(dir).map_err(|source| DevCertsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    // A name of its own per set: a certificate of another set is then an unknown CA to
    // TLS, not a signature that fails under the same name.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let ca = Ca::new(&format!("vos-converter dev CA {}", &tag[..8]))?;
    written.push(write(dir.join("ca.pem"), &ca.cert_pem)?);
    written.push(write(dir.join("ca-key.pem"), &ca.key_pem())?);
    let server = ca.server(&["localhost", "127.0.0.1", "::1"])?;
    written.push(write(dir.join("server.pem"), &server.cert_pem)?);
    written.push(write(dir.join("server-key.pem"), &server.key_pem)?);
    let mut agreements = String::from(
        "# Connection agreements for the dev certificates (vos-converter dev-certs).\n\
         # Each [[agreement]]: which organisations a certificate of `cvr` may act for.\n",
    );
    for (stem, subject, acts) in dev_clients() {
        let c = ca.client(&subject)?;
        written.push(write(dir.join(format!("{stem}.pem")), &c.cert_pem)?);
        written.push(write(dir.join(format!("{stem}-key.pem")), &c.key_pem)?);
        let (cvr, name) = match &subject {
            Subject::Oces3 { cvr, cn, .. } | Subject::Oces2 { cvr, cn, .. } => (cvr, cn),
        };
        let acts: Vec<String> = acts
            .iter()
            .map(|(t, c)| format!("{{ type = {t}, code = \"{c}\" }}"))
            .collect();
        // The jobcenter's agreement names its one certificate, and STAR's too (the
        // converter's own certificate has STAR's CVR and must not act as STAR at the door);
        // the a-kasse's agreement covers any function certificate of its CVR.
        let certificate = if stem == "jobcenter-101" || stem == "star" {
            format!("certificate = \"{}\"\n", subject.certificate_id())
        } else {
            String::new()
        };
        agreements.push_str(&format!(
            "\n[[agreement]]\nname = \"{name} ({stem}.pem)\"\ncvr = \"{cvr}\"\n{certificate}acts_for = [ {} ]\n",
            acts.join(", ")
        ));
    }
    let converter = ca.client(&Subject::Oces3 {
        cvr: super::agreements::STAR_CVR.into(),
        uuid: uuid::Uuid::new_v4(),
        cn: "vos-converter (dev)".into(),
        o: "Styrelsen for Arbejdsmarked og Rekruttering (dev)".into(),
    })?;
    written.push(write(dir.join("converter.pem"), &converter.cert_pem)?);
    written.push(write(dir.join("converter-key.pem"), &converter.key_pem)?);
    written.push(write(dir.join("crl.pem"), &ca.crl(&[])?)?);
    written.push(write(dir.join("agreements.toml"), &agreements)?);
    Ok(written)
}
