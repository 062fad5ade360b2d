//! TLS for both programs: the server side (rustls through actix-web), with a client
//! certificate required and verified against configured CA bundles and CRLs, all of it
//! reloadable without dropping a connection; the client side of the hop to REST (the
//! converter's own function certificate); and the peer's certificate, read once per
//! connection into the connection's extensions.
//!
//! Reloading: the `ServerConfig` handed to actix is built once; its certificate resolver,
//! client verifier, session store and ticketer are all one [`Reloadable`], which swaps what
//! it delegates to. A reload that fails keeps the old set. A reload also drops the session
//! cache and the ticket keys, so a session resumed after it was verified against the new
//! CAs and CRLs, not resumed from before.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};

use crate::door::cert::{CertError, CertIdentity, identify};

/// The crypto provider every TLS config here is built with (aws-lc-rs, as the REST client
/// already used): named explicitly, so that no process-wide default has to be chosen.
/// Built once: every handshake asks for its signature schemes.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::LazyLock<Arc<CryptoProvider>> =
        std::sync::LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    PROVIDER.clone()
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

fn file_err(path: &Path, message: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Every certificate in a PEM file (a bundle or a chain); none is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

/// The CRLs of a file: PEM (`X509 CRL` blocks) or one DER CRL.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    if bytes.starts_with(b"-----BEGIN") {
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(path, e))?;
        if crls.is_empty() {
            return Err(file_err(path, "no PEM X509 CRL in the file"));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// The certificate and key a server presents.
pub fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .map(Arc::new)
        .map_err(|e| file_err(key, format!("does not fit {}: {e}", cert.display())))
}

/// Who may present a client certificate: CA bundles and CRLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTrust {
    pub ca: Vec<PathBuf>,
    pub crl: Vec<PathBuf>,
}

impl ClientTrust {
    /// The verifier: a chain to one of the CAs, within its validity, for client
    /// authentication, and (with CRLs) the end-entity certificate not revoked. With CRLs
    /// configured, a certificate whose issuer has no CRL among them has an unknown
    /// revocation status, and that fails the handshake (fail closed).
    pub fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let mut roots = RootCertStore::empty();
        for path in &self.ca {
            for cert in load_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| file_err(path, format!("not a CA certificate: {e}")))?;
            }
        }
        let mut crls = Vec::new();
        for path in &self.crl {
            let loaded = load_crls(path)?;
            warn_if_stale(path, &loaded);
            crls.extend(loaded);
        }
        let with_crls = !crls.is_empty();
        let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .with_crls(crls);
        if with_crls {
            // Intermediates are not checked (OCES publishes the issuing CA's CRL); the
            // end-entity certificate must be covered by a CRL given.
            b = b.only_check_end_entity_revocation();
        }
        b.build()
            .map_err(|e| TlsError::Config(format!("client CA / CRL: {e}")))
    }
}

/// A CRL past its nextUpdate is still used (rustls does not enforce it), but said loudly
/// at every load: refresh the file and send SIGHUP.
fn warn_if_stale(path: &Path, crls: &[CertificateRevocationListDer<'_>]) {
    let now = UnixTime::now().as_secs() as i64;
    for crl in crls {
        let next = x509_parser::parse_x509_crl(crl)
            .ok()
            .and_then(|(_, c)| c.next_update())
            .map(|t| t.timestamp());
        if next.is_some_and(|n| n < now) {
            tracing::warn!(
                file = %path.display(),
                "a CRL is past its nextUpdate: revocations since are not known; refresh it and send SIGHUP"
            );
        }
    }
}

/// The files a TLS listener is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust: ClientTrust,
}

struct Current {
    key: Option<Arc<CertifiedKey>>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    sessions: Arc<ServerSessionMemoryCache>,
    tickets: Arc<dyn ProducesTickets>,
}

/// What a TLS listener presents and trusts, swapped as a whole by [`Reloadable::reload`].
pub struct Reloadable {
    cert: Option<(PathBuf, PathBuf)>,
    trust: ClientTrust,
    current: RwLock<Arc<Current>>,
    /// Counts successful reloads: a connection verified under an older set has its
    /// certificate verified again before its next call is served (`PeerCert::holder`).
    generation: AtomicU64,
}

impl fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloadable")
            .field("cert", &self.cert)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// Sessions kept for resumption per listener (a full handshake after).
const SESSION_CACHE: usize = 4096;

impl Reloadable {
    /// `cert`: the server's certificate and key (absent: only the client trust, for the
    /// proxy mode's forwarded certificates). `trust` without CAs verifies nobody.
    pub fn new(
        cert: Option<(PathBuf, PathBuf)>,
        trust: ClientTrust,
    ) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(Arc::new(Reloadable::load(&cert, &trust)?));
        Ok(Arc::new(Reloadable {
            cert,
            trust,
            current,
            generation: AtomicU64::new(0),
        }))
    }

    fn load(cert: &Option<(PathBuf, PathBuf)>, trust: &ClientTrust) -> Result<Current, TlsError> {
        let key = match cert {
            Some((c, k)) => Some(certified_key(c, k)?),
            None => None,
        };
        let verifier = if trust.ca.is_empty() {
            None
        } else {
            Some(trust.verifier()?)
        };
        Ok(Current {
            key,
            verifier,
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE),
            tickets: rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| TlsError::Config(e.to_string()))?,
        })
    }

    /// Reads every file again; on any error the old set stays and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(Reloadable::load(&self.cert, &self.trust)?);
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = fresh;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The number of the current set (see `generation`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn now(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verifies a certificate that arrived another way (a trusted proxy's header) as the
    /// handshake would have: chain, validity, usage, CRLs.
    pub fn verify(&self, end_entity: &CertificateDer<'_>) -> Result<(), String> {
        self.verify_chain(std::slice::from_ref(end_entity))
    }

    /// The same for a chain (the end-entity certificate first), with the current set.
    pub fn verify_chain(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let Some(v) = self.now().verifier.clone() else {
            return Err("no client CA is configured".into());
        };
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or_else(|| "no certificate".to_owned())?;
        v.verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The verifier of the current set, for the handshake.
    fn delegate(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.now()
            .verifier
            .clone()
            .ok_or_else(|| rustls::Error::General("no client CA configured".into()))
    }

    pub fn has_trust(&self) -> bool {
        self.now().verifier.is_some()
    }

    /// The listener's rustls config: client certificate required, HTTP/1.1, sessions
    /// resumable (stateful cache and TLS 1.3 tickets).
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        if self.cert.is_none() || self.trust.ca.is_empty() {
            return Err(TlsError::Config(
                "a TLS listener needs a certificate, its key and at least one client CA".into(),
            ));
        }
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(self.clone())
            .with_cert_resolver(self.clone());
        cfg.session_storage = self.clone();
        cfg.ticketer = self.clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.now().key.clone()
    }
}

impl ClientCertVerifier for Reloadable {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names are sent in the CertificateRequest: they change on reload and rustls
    /// asks for a borrowed list. Clients with one function certificate send it anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.delegate()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.delegate()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.delegate()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl StoresServerSessions for Reloadable {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.now().sessions.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.now().sessions.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.now().sessions.take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

impl ProducesTickets for Reloadable {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        self.now().tickets.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.now().tickets.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.now().tickets.decrypt(cipher)
    }
}

/// The client certificate of a TLS connection, read once when it is accepted; in the
/// connection's extensions (`req.conn_data::<PeerCert>()`). A keep-alive connection can
/// outlive its certificate and the trust it was verified under: [`PeerCert::holder`] says
/// who is calling *now*.
#[derive(Debug)]
pub struct PeerCert {
    /// Shared, so a call's `door::Presented` needs no copy of it.
    holder: Result<Arc<CertIdentity>, CertError>,
    /// The chain as presented, the peer's own certificate first.
    chain: Vec<CertificateDer<'static>>,
    /// The end of the certificate's validity (Unix seconds).
    not_after: i64,
    /// The generation of the trust the handshake verified it under; `u64::MAX` for a
    /// resumed session (verified under a set that may be gone).
    verified_under: u64,
    /// The last re-verification: (generation, outcome).
    rechecked: std::sync::Mutex<Option<(u64, Result<(), String>)>>,
}

impl PeerCert {
    /// The holder of a certificate whose trust is current: expired since the handshake, or
    /// no longer verifying after a reload (revoked, its CA removed), it is an error.
    pub fn holder(&self, tls: Option<&Reloadable>) -> Result<&Arc<CertIdentity>, String> {
        if UnixTime::now().as_secs() as i64 > self.not_after {
            return Err("the client certificate has expired since the connection was made".into());
        }
        if let Some(tls) = tls {
            let generation = tls.generation();
            if generation != self.verified_under {
                let mut last = self.rechecked.lock().unwrap_or_else(|p| p.into_inner());
                let outcome = match &*last {
                    Some((g, outcome)) if *g == generation => outcome.clone(),
                    _ => {
                        let outcome = tls.verify_chain(&self.chain);
                        *last = Some((generation, outcome.clone()));
                        outcome
                    }
                };
                outcome
                    .map_err(|e| format!("the connection's certificate no longer verifies: {e}"))?;
            }
        }
        self.holder.as_ref().map_err(|e| e.to_string())
    }

    /// Whether the certificate names a holder at all (a verified certificate without a CVR
    /// is not the same refusal as no certificate).
    pub fn names_holder(&self) -> bool {
        self.holder.is_ok()
    }
}

/// For `HttpServer::on_connect`: stores the peer's certificate. rustls lists the peer's own
/// certificate first (`peer_certificates()[0]`); the rest is its chain. `tls` is the
/// listener's trust (its generation now).
pub fn on_connect(
    tls: Option<Arc<Reloadable>>,
) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + Clone + 'static {
    move |conn, ext| {
        use actix_tls::accept::rustls_0_23::TlsStream;
        let Some(stream) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() else {
            return;
        };
        let (_, session) = stream.get_ref();
        let Some(chain) = session.peer_certificates().filter(|c| !c.is_empty()) else {
            return;
        };
        let chain: Vec<CertificateDer<'static>> =
            chain.iter().map(|c| c.clone().into_owned()).collect();
        let not_after = x509_parser::parse_x509_certificate(&chain[0])
            .map(|(_, c)| c.validity().not_after.timestamp())
            .unwrap_or(i64::MIN);
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let verified_under = match (&tls, resumed) {
            (Some(t), false) => t.generation(),
            _ => u64::MAX,
        };
        ext.insert(PeerCert {
            holder: identify(&chain[0]).map(Arc::new),
            chain,
            not_after,
            verified_under,
            rechecked: std::sync::Mutex::new(None),
        });
    }
}

/// The client side: the converter's own certificate for the hop to REST (and legacy), and
/// the CAs it trusts there (absent: the platform's).
pub fn client_config(
    identity: Option<(&Path, &Path)>,
    ca: Option<&Path>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| file_err(path, format!("not a CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| TlsError::Config(e.to_string()))?
        }
    };
    match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| file_err(key, format!("does not fit {}: {e}", cert.display()))),
        None => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::door::devcerts::{Ca, Subject};

    fn subject() -> Subject {
        Subject::Oces3 {
            cvr: "11111111".into(),
            uuid: uuid::Uuid::new_v4(),
            cn: "KSS".into(),
            o: "A".into(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn several_ca_bundles_crls_and_fail_closed_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Ca::new("A").unwrap(), Ca::new("B").unwrap());
        let ca_a = write(dir.path(), "a.pem", &a.cert_pem);
        let ca_b = write(dir.path(), "b.pem", &b.cert_pem);
        let from_a = a.client(&subject()).unwrap();
        let revoked = a.client(&subject()).unwrap();
        let from_b = b.client(&subject()).unwrap();
        let der = |i: &crate::door::devcerts::Issued| CertificateDer::from(i.der.clone());

        // Two bundles: certificates of both CAs verify; a third CA's do not.
        let both = Reloadable::new(
            None,
            ClientTrust {
                ca: vec![ca_a.clone(), ca_b.clone()],
                crl: vec![],
            },
        )
        .unwrap();
        assert!(both.verify(&der(&from_a)).is_ok());
        assert!(both.verify(&der(&from_b)).is_ok());
        let stranger = Ca::new("C").unwrap().client(&subject()).unwrap();
        assert!(both.verify(&der(&stranger)).is_err());

        // A's CRL revokes one of A's; B has no CRL given, so B's certificates have an
        // unknown revocation status and are refused (fail closed).
        let crl = write(dir.path(), "a.crl", &a.crl(&[&revoked]).unwrap());
        let with_crl = Reloadable::new(
            None,
            ClientTrust {
                ca: vec![ca_a, ca_b],
                crl: vec![crl],
            },
        )
        .unwrap();
        assert!(with_crl.verify(&der(&from_a)).is_ok());
        let e = with_crl.verify(&der(&revoked)).unwrap_err();
        assert!(e.to_lowercase().contains("revoked"), "{e}");
        assert!(with_crl.verify(&der(&from_b)).is_err());

        // Expired, and not yet valid.
        let old = a.client_valid(&subject(), -30, 10).unwrap();
        assert!(both.verify(&der(&old)).is_err());
        let future = a.client_valid(&subject(), 10, 10).unwrap();
        assert!(both.verify(&der(&future)).is_err());
    }

    #[test]
    fn a_reload_that_fails_keeps_the_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("A").unwrap();
        let ca_path = write(dir.path(), "ca.pem", &ca.cert_pem);
        let server = ca.server(&["localhost"]).unwrap();
        let cert = write(dir.path(), "s.pem", &server.cert_pem);
        let key = write(dir.path(), "s-key.pem", &server.key_pem);
        let r = Reloadable::new(
            Some((cert.clone(), key.clone())),
            ClientTrust {
                ca: vec![ca_path.clone()],
                crl: vec![],
            },
        )
        .unwrap();
        assert!(r.server_config().is_ok());
        let client = ca.client(&subject()).unwrap();
        assert!(r.verify(&CertificateDer::from(client.der.clone())).is_ok());
        // A key that does not fit the certificate, then a CA file that is not PEM.
        let other = ca.server(&["localhost"]).unwrap();
        std::fs::write(&key, &other.key_pem).unwrap();
        assert!(r.reload().unwrap_err().to_string().contains("does not fit"));
        std::fs::write(&key, &server.key_pem).unwrap();
        std::fs::write(&ca_path, "garbage").unwrap();
        assert!(r.reload().is_err());
        // The old set still verifies.
        assert!(r.verify(&CertificateDer::from(client.der.clone())).is_ok());
        // And a good reload takes a new CA.
        let ca2 = Ca::new("A2").unwrap();
        std::fs::write(&ca_path, &ca2.cert_pem).unwrap();
        r.reload().unwrap();
        assert!(r.verify(&CertificateDer::from(client.der)).is_err());
    }

    #[test]
    fn files_that_are_not_what_they_should_be() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty.pem", "");
        assert!(
            load_certs(&empty)
                .unwrap_err()
                .to_string()
                .contains("no PEM certificate")
        );
        assert!(load_key(&empty).is_err());
        assert!(load_certs(&dir.path().join("missing.pem")).is_err());
        let ca = Ca::new("A").unwrap();
        let crl_pem = write(dir.path(), "c.pem", &ca.crl(&[]).unwrap());
        assert_eq!(load_crls(&crl_pem).unwrap().len(), 1);
        // A listener needs a certificate and a client CA.
        let r = Reloadable::new(None, ClientTrust::default()).unwrap();
        assert!(r.server_config().is_err());
        assert!(!r.has_trust());
    }
}
