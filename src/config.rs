//! The converter's configuration: one typed `Config`, read from a TOML file (`--config`),
//! then from `VOS_*` environment variables and flags (clap reads both; a flag wins over its
//! variable, both win over the file). Validated once, at start. README.md's configuration
//! table lists every field; a test keeps the two equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cutover::Cutover;
use crate::dktime;

/// Release 2025-1, from which PSS and PHS no longer serve the KG/PC collections (AC
/// 1005.17.28.8/.9). The epic names the release, not a day: the project takes its first
/// day as 2025-03-01, Danish midnight. Change it with `cutover` when STAR's release
/// calendar says otherwise.
pub const DEFAULT_CUTOVER: &str = "2025-03-01";

/// `DEFAULT_CUTOVER` as an instant.
pub fn default_cutover() -> Timestamp {
    parse_instant(DEFAULT_CUTOVER).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A date (Danish midnight) or an xs:dateTime (no offset: Danish local time).
pub fn parse_instant(s: &str) -> Option<Timestamp> {
    if s.contains('T') {
        dktime::parse_xs_datetime(s).ok()
    } else {
        let d: jiff::civil::Date = s.parse().ok()?;
        d.to_zoned(dktime::copenhagen().clone())
            .ok()
            .map(|z| z.timestamp())
    }
}

/// One organisation's own cutover (the "skiftespor").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverOverride {
    pub organisation_type: u8,
    pub organisation_code: String,
    pub cutover: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the SOAP endpoints. Port 0 picks a free port (printed at start).
    pub listen: String,
    /// Base URL of VisiteringOgStatus REST, e.g. `https://vos.example/`. Unset: the embedded
    /// reference backend on a loopback port, in dev mode, seeded with fictitious citizens.
    pub rest_url: Option<String>,
    /// Where the embedded backend keeps its SQLite file (`vos-backend.db`).
    pub data_dir: PathBuf,
    /// From this instant PersonStatusService and PersonHistoryService return the contact
    /// group and person category collections empty and call no REST for them (rule 9).
    /// A date means Danish midnight; an xs:dateTime without offset is Danish local time.
    pub cutover: String,
    /// Organisations with a cutover of their own (type + code → instant).
    pub cutover_override: Vec<CutoverOverride>,
    /// Legacy SOAP endpoint per service name (e.g. `PersonStatusService`): reads are
    /// forwarded there and the KG/PC collections spliced into its answer.
    pub legacy_url: BTreeMap<String, String>,
    /// Before the cutover, compare the legacy collections with the REST-derived ones and
    /// count and log the differences (needs a legacy URL).
    pub shadow_compare: bool,
    /// How long a REST (or legacy) call may take before the caller gets a Server fault (900521).
    pub upstream_timeout_ms: u64,
    /// How long connecting to REST may take, DNS and TLS included (900521 after; a refused
    /// connection is 900520).
    pub connect_timeout_ms: u64,
    /// Most REST calls in flight at once (and, apart, most forwards to legacy services); a
    /// call beyond it waits, within its timeout. Also the idle connections each worker
    /// thread keeps per host.
    pub rest_max_connections: usize,
    /// How long a REST code list is reused before it is fetched again.
    pub codelist_ttl_secs: u64,
    /// Largest SOAP request accepted (900503 above it).
    pub max_body_bytes: usize,
    /// Deepest element nesting accepted in a SOAP request.
    pub max_depth: usize,
    /// Most elements accepted in a SOAP request.
    pub max_elements: usize,
    /// How long a request body may take to arrive, from the end of its headers; slower is
    /// 408 with a SOAP fault (900513), so a body trickled byte by byte cannot hold a
    /// connection.
    pub body_timeout_ms: u64,
    /// Most client connections the SOAP listener keeps open at once (over all worker
    /// threads); more wait in the listen backlog. The open-file limit is raised at start.
    pub max_connections: usize,
    /// How callers are identified: `certificate` (TLS client certificate + agreements),
    /// `proxy` (a trusted proxy's forwarded certificate + agreements) or `header`
    /// (RequestUserMetadata trusted as sent). Unset: `certificate` with `tls_cert`, `proxy`
    /// with `trusted_proxies`, `header` in dev mode; anything else refuses to start.
    pub identity: Option<crate::door::Mode>,
    /// The SOAP listener's certificate chain (PEM): with it, the listener is HTTPS and
    /// requires a client certificate.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA bundles (PEM) a client certificate must chain to (TLS, and forwarded certificates
    /// in proxy mode).
    pub client_ca: Vec<PathBuf>,
    /// CRLs (PEM or DER): a revoked client certificate fails the handshake (or, forwarded,
    /// is 900512). With CRLs, a certificate no CRL covers fails too.
    pub client_crl: Vec<PathBuf>,
    /// Connection agreements (TOML): which organisations each certificate may act for.
    pub agreements: Option<PathBuf>,
    /// Addresses (CIDR) of TLS-terminating proxies whose forwarded certificate header and
    /// X-Forwarded-Host/-Proto are honoured; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy forwards the client certificate in (URL-escaped PEM, as
    /// nginx's `$ssl_client_escaped_cert`).
    pub client_cert_header: Option<String>,
    /// The address the served WSDLs name (`https://soap.example`); unset, they name the
    /// address the client used, and are sent with `Cache-Control: no-store`.
    pub public_url: Option<String>,
    /// The converter's own function certificate (PEM) for the hop to REST and legacy
    /// services (mutual TLS).
    pub rest_client_cert: Option<PathBuf>,
    /// The key of `rest_client_cert`.
    pub rest_client_key: Option<PathBuf>,
    /// CA bundle (PEM) the REST (and legacy) servers' certificates must chain to; unset:
    /// the platform's roots.
    pub rest_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            rest_url: None,
            data_dir: "data".into(),
            cutover: DEFAULT_CUTOVER.into(),
            cutover_override: Vec::new(),
            legacy_url: BTreeMap::new(),
            shadow_compare: false,
            upstream_timeout_ms: 5000,
            connect_timeout_ms: 1000,
            rest_max_connections: 64,
            codelist_ttl_secs: 300,
            max_body_bytes: 1024 * 1024,
            max_depth: 32,
            max_elements: 2000,
            body_timeout_ms: 10_000,
            max_connections: 10_000,
            identity: None,
            tls_cert: None,
            tls_key: None,
            client_ca: Vec::new(),
            client_crl: Vec::new(),
            agreements: None,
            trusted_proxies: Vec::new(),
            client_cert_header: None,
            public_url: None,
            rest_client_cert: None,
            rest_client_key: None,
            rest_ca: None,
        }
    }
}

/// The field names, for the README check.
pub const FIELDS: [&str; 28] = [
    "listen",
    "rest_url",
    "data_dir",
    "cutover",
    "cutover_override",
    "legacy_url",
    "shadow_compare",
    "upstream_timeout_ms",
    "connect_timeout_ms",
    "rest_max_connections",
    "codelist_ttl_secs",
    "max_body_bytes",
    "max_depth",
    "max_elements",
    "body_timeout_ms",
    "max_connections",
    "identity",
    "tls_cert",
    "tls_key",
    "client_ca",
    "client_crl",
    "agreements",
    "trusted_proxies",
    "client_cert_header",
    "public_url",
    "rest_client_cert",
    "rest_client_key",
    "rest_ca",
];

/// Fields that are `None` by default, so not in a serialised default `Config`.
pub const OPTIONAL_FIELDS: [&str; 10] = [
    "rest_url",
    "identity",
    "tls_cert",
    "tls_key",
    "agreements",
    "client_cert_header",
    "public_url",
    "rest_client_cert",
    "rest_client_key",
    "rest_ca",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Flags and environment variables, each overriding the file when set.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// TOML file with any of the settings below.
    #[arg(long, env = "VOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the SOAP endpoints [default: 127.0.0.1:8080].
    #[arg(long, env = "VOS_LISTEN")]
    pub listen: Option<String>,
    /// Base URL of VisiteringOgStatus REST [default: the embedded reference backend].
    #[arg(long, env = "VOS_REST_URL")]
    pub rest_url: Option<String>,
    /// Folder of the embedded backend's database [default: ./data].
    #[arg(long, env = "VOS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The cutover of PSS/PHS collections: a date or an xs:dateTime [default: 2025-03-01].
    #[arg(long, env = "VOS_CUTOVER")]
    pub cutover: Option<String>,
    /// An organisation's own cutover, TYPE:CODE=DATE (repeatable; comma-separated in the variable).
    #[arg(long, env = "VOS_CUTOVER_OVERRIDE", value_delimiter = ',')]
    pub cutover_override: Vec<String>,
    /// A legacy SOAP endpoint, SERVICE=URL (repeatable; comma-separated in the variable).
    #[arg(long, env = "VOS_LEGACY_URL", value_delimiter = ',')]
    pub legacy_url: Vec<String>,
    /// Compare legacy and REST collections before the cutover.
    #[arg(long, env = "VOS_SHADOW_COMPARE")]
    pub shadow_compare: bool,
    /// REST request timeout in milliseconds [default: 5000].
    #[arg(long, env = "VOS_UPSTREAM_TIMEOUT_MS")]
    pub upstream_timeout_ms: Option<u64>,
    /// REST connect timeout in milliseconds [default: 1000].
    #[arg(long, env = "VOS_CONNECT_TIMEOUT_MS")]
    pub connect_timeout_ms: Option<u64>,
    /// Most REST calls in flight at once [default: 64].
    #[arg(long, env = "VOS_REST_MAX_CONNECTIONS")]
    pub rest_max_connections: Option<usize>,
    /// Seconds a REST code list is cached [default: 300].
    #[arg(long, env = "VOS_CODELIST_TTL_SECS")]
    pub codelist_ttl_secs: Option<u64>,
    /// Largest SOAP request in bytes [default: 1048576].
    #[arg(long, env = "VOS_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Deepest element nesting of a SOAP request [default: 32].
    #[arg(long, env = "VOS_MAX_DEPTH")]
    pub max_depth: Option<usize>,
    /// Most elements in a SOAP request [default: 2000].
    #[arg(long, env = "VOS_MAX_ELEMENTS")]
    pub max_elements: Option<usize>,
    /// Milliseconds a request body may take to arrive (408 after) [default: 10000].
    #[arg(long, env = "VOS_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: Option<u64>,
    /// Most open client connections of the SOAP listener [default: 10000].
    #[arg(long, env = "VOS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How callers are identified [default: certificate with --tls-cert, proxy with
    /// --trusted-proxy, header in dev mode].
    #[arg(long, env = "VOS_IDENTITY", value_enum)]
    pub identity: Option<crate::door::Mode>,
    /// HTTPS: the SOAP listener's certificate chain (PEM).
    #[arg(long, env = "VOS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the key of --tls-cert (PEM).
    #[arg(long, env = "VOS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle(s) client certificates must chain to (comma-separated).
    #[arg(long, env = "VOS_CLIENT_CA", value_delimiter = ',')]
    pub client_ca: Vec<PathBuf>,
    /// CRL file(s) of the client CAs (comma-separated; PEM or DER).
    #[arg(long, env = "VOS_CLIENT_CRL", value_delimiter = ',')]
    pub client_crl: Vec<PathBuf>,
    /// Connection agreements (TOML): which organisations each certificate may act for.
    #[arg(long, env = "VOS_AGREEMENTS")]
    pub agreements: Option<PathBuf>,
    /// Trusted TLS-terminating proxies, CIDR (comma-separated).
    #[arg(
        long = "trusted-proxy",
        env = "VOS_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy forwards the client certificate in (URL-escaped PEM).
    #[arg(long, env = "VOS_CLIENT_CERT_HEADER")]
    pub client_cert_header: Option<String>,
    /// The address the served WSDLs name, e.g. https://soap.example [default: the client's].
    #[arg(long, env = "VOS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The converter's own certificate (PEM) for mutual TLS to REST and legacy services.
    #[arg(long, env = "VOS_REST_CLIENT_CERT")]
    pub rest_client_cert: Option<PathBuf>,
    /// The key of --rest-client-cert (PEM).
    #[arg(long, env = "VOS_REST_CLIENT_KEY")]
    pub rest_client_key: Option<PathBuf>,
    /// CA bundle (PEM) for the REST and legacy servers [default: the platform's roots].
    #[arg(long, env = "VOS_REST_CA")]
    pub rest_ca: Option<PathBuf>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// The file (if any), then every override that is set; validated.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let mut c = match &o.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = &o.listen {
            c.listen = v.clone();
        }
        if let Some(v) = &o.rest_url {
            c.rest_url = Some(v.clone()).filter(|v| !v.is_empty());
        }
        if let Some(v) = &o.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = o.cutover.as_ref().filter(|v| !v.is_empty()) {
            c.cutover = v.clone();
        }
        for spec in o.cutover_override.iter().filter(|s| !s.is_empty()) {
            let parsed = spec.split_once('=').and_then(|(who, at)| {
                let (t, code) = who.split_once(':')?;
                Some(CutoverOverride {
                    organisation_type: t.trim().parse().ok()?,
                    organisation_code: code.trim().to_owned(),
                    cutover: at.trim().to_owned(),
                })
            });
            c.cutover_override.push(parsed.ok_or_else(|| {
                invalid("cutover_override", format!("{spec} is not TYPE:CODE=DATE"))
            })?);
        }
        for spec in o.legacy_url.iter().filter(|s| !s.is_empty()) {
            let (service, url) = spec
                .split_once('=')
                .ok_or_else(|| invalid("legacy_url", format!("{spec} is not SERVICE=URL")))?;
            c.legacy_url
                .insert(service.trim().to_owned(), url.trim().to_owned());
        }
        c.shadow_compare |= o.shadow_compare;
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { c.$f = v; } )* };
        }
        take!(
            upstream_timeout_ms,
            connect_timeout_ms,
            rest_max_connections,
            codelist_ttl_secs,
            max_body_bytes,
            max_depth,
            max_elements,
            body_timeout_ms,
            max_connections
        );
        macro_rules! take_some {
            ($($f:ident),*) => { $( if o.$f.is_some() { c.$f = o.$f.clone(); } )* };
        }
        take_some!(
            identity,
            tls_cert,
            tls_key,
            agreements,
            client_cert_header,
            public_url,
            rest_client_cert,
            rest_client_key,
            rest_ca
        );
        macro_rules! take_list {
            ($($f:ident),*) => { $( if !o.$f.is_empty() { c.$f = o.$f.clone(); } )* };
        }
        take_list!(client_ca, client_crl, trusted_proxies);
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if self.rest_url.as_deref().is_some_and(|u| !http(u)) {
            return Err(invalid("rest_url", "must start with http:// or https://"));
        }
        if let Some((s, _)) = self.legacy_url.iter().find(|(_, u)| !http(u)) {
            return Err(invalid(
                "legacy_url",
                format!("the URL of {s} must start with http:// or https://"),
            ));
        }
        if self.shadow_compare && self.legacy_url.is_empty() {
            return Err(invalid(
                "shadow_compare",
                "needs a legacy_url to compare with",
            ));
        }
        self.cutover()?;
        if self.upstream_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(invalid("upstream_timeout_ms", "timeouts must be above 0"));
        }
        if !(1..=65_535).contains(&self.rest_max_connections) {
            return Err(invalid("rest_max_connections", "must be 1 to 65535"));
        }
        let userinfo = |u: &str| {
            u.parse::<http::Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.as_str().contains('@')))
                .unwrap_or(false)
        };
        if self.rest_url.as_deref().is_some_and(userinfo)
            || self.legacy_url.values().any(|u| userinfo(u))
        {
            return Err(invalid(
                "rest_url",
                "user and password in a URL are not sent; give the URL without them",
            ));
        }
        if self.max_body_bytes < 1024 || self.max_depth < 8 || self.max_elements < 16 {
            return Err(invalid(
                "max_body_bytes",
                "limits this small refuse every valid request",
            ));
        }
        if self.body_timeout_ms == 0 {
            return Err(invalid("body_timeout_ms", "must be above 0"));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be above 0"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_cert", "tls_cert and tls_key go together"));
        }
        if self.tls_cert.is_some() && self.client_ca.is_empty() {
            return Err(invalid(
                "client_ca",
                "HTTPS requires client certificates: give the CA bundle(s) they chain to",
            ));
        }
        if !self.client_crl.is_empty() && self.client_ca.is_empty() {
            return Err(invalid("client_crl", "CRLs need client_ca"));
        }
        if self.rest_client_cert.is_some() != self.rest_client_key.is_some() {
            return Err(invalid(
                "rest_client_cert",
                "rest_client_cert and rest_client_key go together",
            ));
        }
        // The converter's certificate and the identity headers must not go out in clear.
        if (self.rest_client_cert.is_some() || self.rest_ca.is_some())
            && (self
                .rest_url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://"))
                || self.legacy_url.values().any(|u| u.starts_with("http://")))
        {
            return Err(invalid(
                "rest_client_cert",
                "rest_client_cert and rest_ca are for https: rest_url and legacy_url must be https://",
            ));
        }
        self.proxies()?;
        if let Some(h) = &self.client_cert_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(invalid(
                "client_cert_header",
                format!("{h} is not a header name"),
            ));
        }
        if let Some(u) = &self.public_url {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.parse::<http::Uri>()
                    .ok()
                    .is_some_and(|p| p.authority().is_some() && matches!(p.path(), "" | "/"));
            if !ok {
                return Err(invalid(
                    "public_url",
                    "must be scheme://host[:port] (no path), e.g. https://soap.example",
                ));
            }
        }
        let mode = self.identity_mode()?;
        if matches!(
            mode,
            crate::door::Mode::Certificate | crate::door::Mode::Proxy
        ) && self.agreements.is_none()
        {
            return Err(invalid(
                "agreements",
                format!(
                    "identity = \"{}\" decides with connection agreements: give the agreements file",
                    mode.as_str()
                ),
            ));
        }
        match mode {
            crate::door::Mode::Certificate if self.tls_cert.is_none() => {
                return Err(invalid(
                    "identity",
                    "identity = \"certificate\" needs tls_cert, tls_key and client_ca",
                ));
            }
            crate::door::Mode::Proxy
                if self.trusted_proxies.is_empty() || self.client_cert_header.is_none() =>
            {
                return Err(invalid(
                    "identity",
                    "identity = \"proxy\" needs trusted_proxies and client_cert_header",
                ));
            }
            // The forwarded certificate is verified here too (chain, validity, CRLs): a proxy
            // configured to pass certificates it did not verify would otherwise make anyone
            // anybody.
            crate::door::Mode::Proxy if self.client_ca.is_empty() => {
                return Err(invalid(
                    "client_ca",
                    "identity = \"proxy\" verifies forwarded certificates: give the CA bundle(s) they chain to",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether this is dev mode: the embedded reference backend (no `rest_url`).
    pub fn dev_mode(&self) -> bool {
        self.rest_url.is_none()
    }

    /// The identity mode: as set, or derived (see `identity`). Outside dev mode, with
    /// neither TLS nor trusted proxies and no explicit `identity = "header"`, an error: a
    /// production start does not trust unverified identities by default.
    pub fn identity_mode(&self) -> Result<crate::door::Mode, ConfigError> {
        use crate::door::Mode;
        if let Some(m) = self.identity {
            return Ok(m);
        }
        if self.tls_cert.is_some() {
            Ok(Mode::Certificate)
        } else if !self.trusted_proxies.is_empty() {
            Ok(Mode::Proxy)
        } else if self.dev_mode() && self.legacy_url.is_empty() && self.rest_client_cert.is_none() {
            // Nothing real is reached: the embedded backend only.
            Ok(Mode::Header)
        } else {
            Err(invalid(
                "identity",
                "with rest_url, legacy_url or rest_client_cert set (not dev mode) callers must be identified: give tls_cert, \
                 tls_key, client_ca and agreements (HTTPS with client certificates), or \
                 trusted_proxies and client_cert_header (behind a TLS proxy); or, to trust \
                 RequestUserMetadata as sent, --identity header explicitly",
            ))
        }
    }

    /// The trusted proxies' networks.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                let p = p.trim();
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "trusted_proxies",
                            format!("{p} is not an address or CIDR network"),
                        )
                    })
            })
            .collect()
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    /// The cutover rules: the default instant and every organisation's own.
    pub fn cutover(&self) -> Result<Cutover, ConfigError> {
        let at = |s: &str| {
            parse_instant(s).ok_or_else(|| {
                invalid(
                    "cutover",
                    format!("{s} is neither a date nor an xs:dateTime"),
                )
            })
        };
        let mut c = Cutover::new(at(&self.cutover)?);
        for o in &self.cutover_override {
            c = c.with_override(
                &o.organisation_type.to_string(),
                &o.organisation_code,
                at(&o.cutover)?,
            );
        }
        Ok(c)
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn codelist_ttl(&self) -> Duration {
        Duration::from_secs(self.codelist_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_and_unbounded_connections_are_refused() {
        for (rest, legacy) in [
            ("http://user:pw@rest.example/", None),
            (
                "http://rest.example/",
                Some("PersonStatusService=https://u@legacy.example/pss"),
            ),
        ] {
            let mut c = Config {
                rest_url: Some(rest.into()),
                ..Config::default()
            };
            if let Some((svc, url)) = legacy.and_then(|l| l.split_once('=')) {
                c.legacy_url.insert(svc.into(), url.into());
            }
            assert!(c.validate().is_err(), "{rest} {legacy:?}");
        }
        for n in [0, 65_536, usize::MAX] {
            let c = Config {
                rest_max_connections: n,
                ..Config::default()
            };
            assert!(c.validate().is_err(), "{n}");
        }
        let ok = Config {
            rest_url: Some("https://rest.example:8443/vos".into()),
            rest_max_connections: 1,
            identity: Some(crate::door::Mode::Header),
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn a_production_start_refuses_unverified_identities_unless_asked() {
        use crate::door::Mode;
        let prod = Config {
            rest_url: Some("https://rest.example/".into()),
            ..Config::default()
        };
        let e = prod.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("identity:") && e.contains("--identity header"),
            "{e}"
        );
        // Dev mode (the embedded backend) defaults to header; not when a legacy service (a
        // real one, as far as the converter knows) is called.
        assert_eq!(Config::default().identity_mode().unwrap(), Mode::Header);
        let mut legacy = Config::default();
        legacy
            .legacy_url
            .insert("PersonStatusService".into(), "https://legacy/pss".into());
        assert!(legacy.identity_mode().is_err());
        let tls = Config {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            client_ca: vec!["ca.pem".into()],
            agreements: Some("a.toml".into()),
            ..prod.clone()
        };
        assert_eq!(tls.identity_mode().unwrap(), Mode::Certificate);
        assert!(tls.validate().is_ok());
        // Certificates without agreements, or without a client CA, refuse.
        let e = Config {
            agreements: None,
            ..tls.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("agreements:"), "{e}");
        let e = Config {
            client_ca: vec![],
            ..tls.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("client_ca:"), "{e}");
        let proxy = Config {
            trusted_proxies: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            client_cert_header: Some("X-Client-Cert".into()),
            agreements: Some("a.toml".into()),
            client_ca: vec!["ca.pem".into()],
            ..prod.clone()
        };
        assert_eq!(proxy.identity_mode().unwrap(), Mode::Proxy);
        let e = Config {
            client_ca: vec![],
            ..proxy.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("client_ca:"), "{e}");
        assert!(proxy.validate().is_ok());
        assert_eq!(proxy.proxies().unwrap().len(), 2);
        let e = Config {
            client_cert_header: None,
            ..proxy.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("identity:"), "{e}");
        let e = Config {
            trusted_proxies: vec!["10.0.0.0/33".into()],
            ..proxy.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("trusted_proxies:"), "{e}");
        for bad in ["soap.example", "https://soap.example/path", "ftp://x"] {
            let e = Config {
                public_url: Some(bad.into()),
                ..proxy.clone()
            }
            .validate()
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("public_url:"), "{bad}: {e}");
        }
        assert!(
            Config {
                public_url: Some("https://soap.example:8443".into()),
                ..proxy.clone()
            }
            .validate()
            .is_ok()
        );
        assert!(
            Config {
                body_timeout_ms: 0,
                ..Config::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vos.toml");
        let file = "listen = \"0.0.0.0:9000\"\nupstream_timeout_ms = 2000\ncutover = \"2025-01-06\"\nidentity = \"header\"\n\
                    [[cutover_override]]\norganisation_type = 1\norganisation_code = \"101\"\ncutover = \"2030-01-01\"\n\
                    [legacy_url]\nPersonStatusService = \"http://legacy/pss\"\n";
        std::fs::write(&path, file).unwrap();
        let o = Overrides {
            config: Some(path),
            upstream_timeout_ms: Some(750),
            cutover_override: vec!["2:12=2031-01-01T12:00:00".into()],
            ..Overrides::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!(
            (c.listen.as_str(), c.upstream_timeout_ms, c.max_depth),
            ("0.0.0.0:9000", 750, 32)
        );
        let cut = c.cutover().unwrap();
        assert_eq!(cut.default_instant().to_string(), "2025-01-05T23:00:00Z");
        assert_eq!(
            cut.instant_for("1", "101").to_string(),
            "2029-12-31T23:00:00Z"
        );
        assert_eq!(
            cut.instant_for("2", "12").to_string(),
            "2031-01-01T11:00:00Z"
        );
        assert_eq!(c.legacy_url["PersonStatusService"], "http://legacy/pss");
    }

    #[test]
    fn the_default_cutover_is_release_2025_1() {
        assert_eq!(default_cutover().to_string(), "2025-02-28T23:00:00Z");
        assert_eq!(
            Config::default().cutover().unwrap().default_instant(),
            default_cutover()
        );
    }

    #[test]
    fn a_wrong_file_or_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vos.toml");
        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        let e = Config::load(&Overrides {
            config: Some(path),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("vos.toml") && e.contains("listn"), "{e}");
        let bad = |o: Overrides| Config::load(&o).unwrap_err().to_string();
        assert!(
            bad(Overrides {
                cutover: Some("soon".into()),
                ..Overrides::default()
            })
            .starts_with("cutover:")
        );
        assert!(
            bad(Overrides {
                rest_url: Some("vos.example".into()),
                ..Overrides::default()
            })
            .starts_with("rest_url:")
        );
        assert!(
            bad(Overrides {
                cutover_override: vec!["101=2030-01-01".into()],
                ..Overrides::default()
            })
            .starts_with("cutover_override:")
        );
        assert!(
            bad(Overrides {
                legacy_url: vec!["PersonStatusService".into()],
                ..Overrides::default()
            })
            .starts_with("legacy_url:")
        );
        assert!(
            bad(Overrides {
                shadow_compare: true,
                ..Overrides::default()
            })
            .starts_with("shadow_compare:")
        );
    }

    #[test]
    fn fields_lists_every_setting() {
        let v = toml::Value::try_from(Config::default()).unwrap();
        let mut keys: Vec<&str> = v.as_table().unwrap().keys().map(String::as_str).collect();
        keys.extend(OPTIONAL_FIELDS); // None is not serialised
        keys.sort_unstable();
        let mut fields = FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }
}
