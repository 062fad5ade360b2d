//! The converter's configuration. Every setting is declared once, in the table of
//! `settings!` below: its name, its type, its default and a doc comment. The table yields
//! the typed `Config`, the file's keys, the flags and their `VOS_*` variables (`Overrides`,
//! built on clap's builder from `SETTINGS`), the defaults, the `--help` texts and README.md's
//! configuration table (`readme_table`; a test keeps README equal, `UPDATE_README=1`
//! rewrites it).
//!
//! A value is taken raw from the highest layer that has it: a flag, else its variable (clap
//! reads both), else the file (`--config`, TOML), else the default; then parsed into its type
//! once, by the setting's parser, whose error names the setting (and the file, when the value
//! came from there). `validate` checks only what involves more than one setting.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use http::header::HeaderName;
use ipnet::IpNet;
use jiff::Timestamp;
use serde::Deserialize;
use toml::Value;

use crate::cutover::Cutover;
use crate::dktime;
use crate::door::Mode;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverOverride {
    pub organisation_type: u8,
    pub organisation_code: String,
    pub cutover: Timestamp,
}

/// An http(s) URL: parsed, and shown as it was written (`Uri` would add a `/` to a URL
/// without a path, and scripts match the start banner's `REST upstream: URL` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    uri: Uri,
    text: String,
}

impl HttpUrl {
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// How a setting is given and how its layers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value with a default; the highest layer that has it wins. An empty flag or
    /// variable counts as not given.
    One,
    /// One value or none (no default); the highest layer that has it wins. An empty flag or
    /// variable unsets it.
    Optional,
    /// On or off: a flag without a value (its variable: `true`/`false`); on in the file or
    /// as a flag is on.
    Switch,
    /// A list: an array in the file, comma-separated in the variable, the flag repeatable.
    /// The highest layer that has any replaces the lower ones.
    List,
    /// Entries that add up: the file's, then the flags' (a later entry for the same key wins).
    Entries,
}

/// One row of the table: what the flags, the variables, the file and README are built from.
#[derive(Debug)]
pub struct Setting {
    /// The name in the file; the flag and the variable are made from it.
    pub name: &'static str,
    /// The flag (without `--`) when it is not the name in kebab case.
    flag: Option<&'static str>,
    pub kind: Kind,
    /// `Kind::One`: the default, as it would be written after the flag.
    default: Option<&'static str>,
    /// The other kinds: what no value means, for README and `--help`.
    unset: &'static str,
    /// The doc comment, one entry per line.
    doc: &'static [&'static str],
}

impl Setting {
    pub fn flag(&self) -> String {
        self.flag
            .map_or_else(|| self.name.replace('_', "-"), str::to_owned)
    }

    pub fn env(&self) -> String {
        format!("VOS_{}", self.name.to_ascii_uppercase())
    }

    /// The doc comment as one paragraph (for a list, how one is written).
    pub fn doc(&self) -> String {
        let mut doc = self
            .doc
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        if self.kind == Kind::List {
            doc.push_str(
                " Comma-separated in the variable, the flag repeatable, an array in the file.",
            );
        }
        doc
    }

    /// The default column of README's table.
    fn default_doc(&self) -> String {
        match self.default {
            Some(d) => format!("`{d}`"),
            None => self.unset.to_owned(),
        }
    }

    /// The flag, reading its variable too.
    fn arg(&self) -> clap::Arg {
        use clap::ArgAction;
        let doc = self.doc();
        let default = match self.default {
            Some(d) => format!(" [default: {d}]"),
            None if self.unset == "(none)" => String::new(),
            None => format!(" [default: {}]", self.unset),
        };
        // `-h`: the first sentence (not cut at "e.g. "); `--help`: all of it.
        let first = doc
            .match_indices(". ")
            .find(|(i, _)| doc[i + 2..].starts_with(|c: char| c.is_ascii_uppercase()))
            .map_or(doc.as_str(), |(i, _)| &doc[..=i]);
        let arg = clap::Arg::new(self.name)
            .long(self.flag())
            .env(self.env())
            .help(format!("{first}{default}"))
            .long_help(format!("{doc}{default}"));
        let text = || clap::value_parser!(String);
        match self.kind {
            Kind::One | Kind::Optional => arg
                .action(ArgAction::Set)
                .value_name(self.name.to_ascii_uppercase())
                .value_parser(text()),
            Kind::Switch => arg
                .action(ArgAction::SetTrue)
                .value_parser(clap::value_parser!(bool)),
            Kind::List | Kind::Entries => arg
                .action(ArgAction::Append)
                .value_delimiter(',')
                .value_name(self.name.to_ascii_uppercase())
                .value_parser(text()),
        }
    }
}

/// README.md's configuration table, made from `SETTINGS`.
pub fn readme_table() -> String {
    let mut t = String::from(
        "| setting | flag | environment | default | meaning |\n|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let _ = writeln!(
            t,
            "| `{}` | `--{}` | `{}` | {} | {} |",
            s.name,
            s.flag(),
            s.env(),
            s.default_doc(),
            s.doc()
        );
    }
    t
}

/// Declares the settings. Each row:
///
/// ```text
/// /// doc comment (README's meaning column, the flag's help, the field's doc)
/// field [as "name"]: Type = kind(default or what unset means) [, flag "name"] => parser;
/// ```
///
/// `field` is the `Config` field; the setting's name (file key; flag and variable are made
/// from it) is `field` unless `as` gives it (`upstream_timeout as "upstream_timeout_ms"`:
/// the unit is the raw value's, the field is a `Duration`). The kinds (`Kind`) decide the
/// field's type from `Type`: `one` and `switch` hold a `Type`, `optional` an
/// `Option<Type>`, `list` a `Vec<Type>`, `entries` a `Type` that extends. The parser turns
/// one raw value (a TOML value; a flag's text is a string, a repeated flag's an array of
/// strings) into `Type`; for `list`, one element.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident $(as $name:literal)? : $ty:ty = $kind:ident ( $($default:expr)? )
            $(, flag $flag:literal)? => $parse:expr;
    )+) => {
        /// The settings of `serve`, parsed (see the table in `config.rs` for each one's
        /// meaning; README.md has the same).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $field: settings!(@type $kind $ty), )+
        }

        /// Every setting, in README's order.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                name: settings!(@name $field $($name)?),
                flag: settings!(@some $($flag)?),
                kind: settings!(@kind $kind),
                default: settings!(@default $kind $($default)?),
                unset: settings!(@unset $kind $($default)?),
                doc: &[$($doc),+],
            },
        )+];

        impl Config {
            fn from_layers(l: &Layers<'_>) -> Result<Config, ConfigError> {
                Ok(Config {$(
                    $field: settings!(
                        @load l $kind (settings!(@name $field $($name)?)) ($parse) $($default)?
                    )?,
                )+})
            }
        }
    };
    (@type one $t:ty) => { $t };
    (@type switch $t:ty) => { $t };
    (@type optional $t:ty) => { Option<$t> };
    (@type list $t:ty) => { Vec<$t> };
    (@type entries $t:ty) => { $t };
    (@kind one) => { Kind::One };
    (@kind switch) => { Kind::Switch };
    (@kind optional) => { Kind::Optional };
    (@kind list) => { Kind::List };
    (@kind entries) => { Kind::Entries };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $name:literal) => { $name };
    (@some) => { None };
    (@some $e:expr) => { Some($e) };
    (@default one $e:expr) => { Some($e) };
    (@default $kind:ident $($e:expr)?) => { None };
    (@unset one $e:expr) => { "" };
    (@unset switch) => { "off" };
    (@unset $kind:ident) => { "(none)" };
    (@unset $kind:ident $e:expr) => { $e };
    (@load $l:ident one ($name:expr) ($parse:expr) $default:expr) => {
        $l.one($name, $default, $parse)
    };
    (@load $l:ident $kind:ident ($name:expr) ($parse:expr) $($default:expr)?) => {
        $l.$kind($name, $parse)
    };
}

settings! {
    /// Address of the SOAP endpoints. Port 0 picks a free port (printed at start).
    listen: String = one("127.0.0.1:8080") => text;
    /// Base URL of VisiteringOgStatus REST, e.g. `https://vos.example/`. Unset: the
    /// embedded reference backend on a loopback port, in dev mode, seeded with fictitious
    /// citizens.
    rest_url: HttpUrl = optional("(embedded backend)") => http_url;
    /// Run the embedded reference backend (dev mode) on purpose although a production
    /// setting is given (`tls_cert`, `trusted_proxies`, `agreements` or a config file):
    /// without it such a start with no `rest_url` refuses, so that nobody ends up in dev
    /// mode by forgetting `rest_url`. Not with `rest_url`.
    dev: bool = switch() => boolean;
    /// Folder of the embedded backend's SQLite file (`vos-backend.db`) and, without
    /// `state_url`, of the migration usage (`migration-usage.json`) and the WSRM queues
    /// (`wsrm.db`); with `state_url`, of this process's usage spool (`usage-spool/`). One per
    /// replica.
    data_dir: PathBuf = one("data") => path;
    /// From this instant PersonStatusService and PersonHistoryService return the contact
    /// group and person category (KG/PC) collections empty and call no REST for them
    /// (rule 9). A date means Danish midnight; an xs:dateTime without offset is Danish
    /// local time.
    cutover: Timestamp = one(DEFAULT_CUTOVER) => instant;
    /// An organisation's own cutover: `TYPE:CODE=DATE` as a flag (repeatable;
    /// comma-separated in the variable), a `[[cutover_override]]` table (`organisation_type`,
    /// `organisation_code`, `cutover`) in the file. The flags' add to the file's.
    cutover_override: Vec<CutoverOverride> = entries() => cutover_overrides;
    /// A legacy SOAP endpoint per service: `SERVICE=URL` as a flag (repeatable;
    /// comma-separated in the variable), a `[legacy_url]` table in the file. Reads are
    /// forwarded there and the KG/PC collections spliced into its answer. The flags' add to
    /// the file's.
    legacy_url: BTreeMap<String, HttpUrl> = entries() => legacy_urls;
    /// Before the cutover, compare the legacy collections with the REST-derived ones and
    /// count and log the differences (needs `legacy_url`).
    shadow_compare: bool = switch() => boolean;
    /// Legacy WSRM subscribers (issue 16): `TYPE:CODE` as a flag (repeatable;
    /// comma-separated in the variable), `TYPE:CODE=KIND+KIND` to narrow the message kinds;
    /// `[[wsrm_subscriber]]` tables (`type`, `code`, optional `messages`) in the file. Only
    /// these have a queue at /WsrmService/3 and /WsrmMessageService/10; with any, the
    /// converter subscribes to the REST service's WSB events and receives them at `POST
    /// /wsb`.
    wsrm_subscriber: Vec<crate::wsrm::Subscriber> = entries() => wsrm_subscribers;
    /// The converter's WSB receiver as the REST service reaches it
    /// (`https://converter.example/wsb`). In dev mode derived from the listen address;
    /// outside dev mode needed with `wsrm_subscriber`.
    wsb_receiver_url: HttpUrl = optional("(dev mode: the listen address)") => http_url;
    /// CVRs of the REST service's certificates whose WSB deliveries `POST /wsb` takes;
    /// outside dev mode needed with `wsrm_subscriber` (in dev mode loopback is enough).
    wsb_sender_cvr: String = list() => cvr;
    /// The organisation code (STAR, organisation type 5) the converter subscribes to WSB as.
    wsb_subscriber_code: String = one("55570117") => text;
    /// Seconds after which a WSRM sequence neither terminated nor closed is released: its
    /// messages come again in the next.
    wsrm_sequence_timeout as "wsrm_sequence_timeout_secs": Duration = one("600") => seconds;
    /// Days a WSRM message is kept for a subscriber who does not poll; older ones are
    /// dropped (and counted).
    wsrm_retention as "wsrm_retention_days": Duration = one("30") => days;
    /// A SOAP call whose REST (and legacy) work takes longer than this many milliseconds in
    /// all is a Server fault 900521 (900523 for a write already sent: its outcome is unknown).
    upstream_timeout as "upstream_timeout_ms": Duration = one("5000") => millis;
    /// Connecting to REST (DNS, TCP and TLS) slower than this many milliseconds is a Server
    /// fault 900521; a refused connection is 900520.
    connect_timeout as "connect_timeout_ms": Duration = one("1000") => millis;
    /// Most REST calls in flight at once (forwards to legacy services have as many of their
    /// own); a call beyond it waits within its timeout. Each worker thread keeps up to this
    /// many idle connections per host. The converter connects directly: `HTTP(S)_PROXY` are
    /// not used (a warning says so at start).
    rest_max_connections: usize = one("64") => between(1, 65_535);
    /// Largest answer in bytes read from REST or a legacy service; more is an unexpected
    /// answer (900522; to a write, 900523: its 2xx could not be read). An answer whose
    /// Content-Length says more is refused at its head, unread. Reads stream their answers
    /// and hold a chunk at a time; an answer held whole to be parsed (a write's, a problem, a
    /// code list, a legacy fault) is also bounded by 256 KiB, so that the calls in flight
    /// together hold little.
    max_upstream_bytes: usize = one("4194304") => at_least(1024);
    /// Milliseconds an idle connection to REST or a legacy service is kept for reuse. Keep it
    /// below the services' keep-alive timeout (5 s for actix servers), so that the converter
    /// drops a connection before the service closes it: a request sent on a connection the
    /// service is closing at that moment cannot be resent safely.
    upstream_idle_timeout as "upstream_idle_timeout_ms": Duration = one("4000") => millis;
    /// Seconds a REST code list is reused before it is fetched again.
    codelist_ttl as "codelist_ttl_secs": Duration = one("300") => seconds;
    /// Largest SOAP request in bytes (900503 above it).
    max_body_bytes: usize = one("1048576") => at_least(1024);
    /// Deepest element nesting accepted in a SOAP request.
    max_depth: usize = one("32") => at_least(8);
    /// Most elements accepted in a SOAP request.
    max_elements: usize = one("2000") => at_least(16);
    /// Milliseconds a request body may take to arrive, from the end of its headers; slower
    /// is 408 with fault 900513 and the connection is closed, so a body trickled byte by
    /// byte cannot hold a connection.
    body_timeout as "body_timeout_ms": Duration = one("10000") => millis;
    /// Most open client connections of the SOAP listener (actix bounds them per worker
    /// thread: this divided by the threads); more wait in the listen backlog. The open-file
    /// limit is raised at start toward twice this, and the figure logged.
    max_connections: usize = one("10000") => at_least(1);
    /// How callers are identified: `certificate` (TLS client certificate + agreements),
    /// `proxy` (a trusted proxy's forwarded certificate + agreements) or `header`
    /// (RequestUserMetadata trusted as sent); see [Who is
    /// calling](#who-is-calling-https-certificates-and-connection-agreements). Unset:
    /// `certificate` with `tls_cert`, `proxy` with `trusted_proxies`, `header` in dev mode;
    /// otherwise `serve` refuses to start.
    identity: Mode = optional("(derived)") => mode;
    /// The SOAP listener's certificate chain (PEM): with it the listener is HTTPS and
    /// requires a client certificate.
    tls_cert: PathBuf = optional() => path;
    /// The key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    tls_key: PathBuf = optional() => path;
    /// CA bundle(s), PEM, that client certificates must chain to (TLS, and forwarded
    /// certificates in proxy mode).
    client_ca: PathBuf = list() => path;
    /// CRL file(s), PEM or DER: a revoked certificate fails the handshake (or, forwarded, is
    /// 900512); with CRLs given, a client certificate that none of them covers fails too
    /// (fail closed).
    client_crl: PathBuf = list() => path;
    /// The connection agreements (TOML): which organisations each certificate may act for.
    /// Needed in `certificate` and `proxy` mode.
    agreements: PathBuf = optional() => path;
    /// Addresses or CIDR networks of TLS-terminating proxies; only their certificate header
    /// and `X-Forwarded-Host`/`-Proto` are honoured, from anyone else those headers are
    /// ignored.
    trusted_proxies: IpNet = list(), flag "trusted-proxy" => network;
    /// The header a trusted proxy forwards the client certificate in: URL-escaped PEM, as
    /// nginx's `$ssl_client_escaped_cert` (HAProxy builds it as `deploy/haproxy/haproxy.cfg`
    /// shows).
    client_cert_header: HeaderName = optional() => header_name;
    /// The address the served WSDLs name (`https://soap.example`); unset, they name the
    /// address the client used and are sent with `Cache-Control: no-store`.
    public_url: HttpUrl = optional() => origin;
    /// The converter's own function certificate (PEM) for mutual TLS to REST and the legacy
    /// services.
    rest_client_cert: PathBuf = optional() => path;
    /// The key of `rest_client_cert` (PEM).
    rest_client_key: PathBuf = optional() => path;
    /// CA bundle (PEM) the REST and legacy servers' certificates must chain to.
    rest_ca: PathBuf = optional("(platform roots)") => path;
    /// Where the state shared across calls lives (the migration usage, the WSRM queues):
    /// `postgres://user:password@host:port/db` for several replicas on one PostgreSQL
    /// (schema migrated at start; `?sslmode=require` for TLS, verified against `state_ca`,
    /// host name included; libpq's `verify-full` and `verify-ca` mean the same). Unset:
    /// SQLite and JSON files in `data_dir`, for one process. Never printed whole: pass it
    /// in the file or the variable, where `ps` does not show it.
    state_url: crate::state::StateUrl = optional("(files in data_dir)") => state_url;
    /// CA bundle (PEM) the PostgreSQL server's certificate must chain to with
    /// `sslmode=require` (the host name is checked too).
    state_ca: PathBuf = optional("(platform roots)") => path;
    /// Most connections to the state store's PostgreSQL, per process.
    state_pool_size: usize = one("8") => between(1, 256);
}

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

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// The flags and variables that are set, raw (a flag's text as a TOML string, a repeated
/// flag's as an array of strings), by setting name; and the file to read first.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// TOML file with any of the settings.
    pub config: Option<PathBuf>,
    values: toml::Table,
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut o = Overrides::default();
        o.update_from_arg_matches(m)?;
        Ok(o)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(p) = m.get_one::<PathBuf>("config") {
            self.config = Some(p.clone());
        }
        for s in SETTINGS {
            let value = match s.kind {
                Kind::One | Kind::Optional => m.get_one::<String>(s.name).cloned().map(Value::from),
                Kind::Switch => m.get_flag(s.name).then_some(Value::Boolean(true)),
                Kind::List | Kind::Entries => {
                    let items: Vec<Value> = m
                        .get_many::<String>(s.name)
                        .into_iter()
                        .flatten()
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| Value::from(v.as_str()))
                        .collect();
                    (!items.is_empty()).then_some(Value::Array(items))
                }
            };
            if let Some(v) = value {
                self.values.insert(s.name.to_owned(), v);
            }
        }
        Ok(())
    }
}

impl clap::Args for Overrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new("config")
                .long("config")
                .env("VOS_CONFIG")
                .value_name("CONFIG")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML file with any of the settings below (their names, `_` not `-`)."),
        )
        .args(SETTINGS.iter().map(Setting::arg))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The raw layers of one load, highest first: flags and variables, the file. (The
/// defaults are in the table.)
struct Layers<'a> {
    flags: &'a toml::Table,
    file: &'a toml::Table,
    path: Option<&'a Path>,
}

type Parsed<T> = Result<T, String>;

impl Layers<'_> {
    /// Parses a raw value of setting `name`; the error names the setting, and the file
    /// when the value came from there.
    fn parse<T>(
        &self,
        name: &'static str,
        v: &Value,
        from_file: bool,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Result<T, ConfigError> {
        parse(v).map_err(|message| match self.path {
            Some(path) if from_file => ConfigError::Parse {
                path: path.to_owned(),
                message: format!("{name}: {message}"),
            },
            _ => invalid(name, message),
        })
    }

    fn one<T>(
        &self,
        name: &'static str,
        default: &'static str,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Result<T, ConfigError> {
        if let Some(v) = self.flags.get(name).filter(|v| v.as_str() != Some("")) {
            return self.parse(name, v, false, parse);
        }
        match self.file.get(name) {
            Some(v) => self.parse(name, v, true, parse),
            None => self.parse(name, &Value::from(default), false, parse),
        }
    }

    fn optional<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Result<Option<T>, ConfigError> {
        match (self.flags.get(name), self.file.get(name)) {
            (Some(v), _) if v.as_str() == Some("") => Ok(None),
            (Some(v), _) => self.parse(name, v, false, parse).map(Some),
            (None, Some(v)) => self.parse(name, v, true, parse).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn switch(
        &self,
        name: &'static str,
        parse: impl Fn(&Value) -> Parsed<bool>,
    ) -> Result<bool, ConfigError> {
        if self.flags.get(name).is_some() {
            return Ok(true);
        }
        self.file
            .get(name)
            .map_or(Ok(false), |v| self.parse(name, v, true, parse))
    }

    fn list<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Result<Vec<T>, ConfigError> {
        let (v, from_file) = match (self.flags.get(name), self.file.get(name)) {
            (Some(v), _) => (v, false),
            (None, Some(v)) => (v, true),
            (None, None) => return Ok(Vec::new()),
        };
        let each = |v: &Value| match v {
            Value::Array(items) => items.iter().map(&parse).collect(),
            other => Err(format!("{other} is not a list")),
        };
        self.parse(name, v, from_file, each)
    }

    fn entries<T, I>(
        &self,
        name: &'static str,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Result<T, ConfigError>
    where
        T: Default + Extend<I> + IntoIterator<Item = I>,
    {
        let mut all = match self.file.get(name) {
            Some(v) => self.parse(name, v, true, &parse)?,
            None => T::default(),
        };
        if let Some(v) = self.flags.get(name) {
            all.extend(self.parse(name, v, false, &parse)?);
        }
        Ok(all)
    }
}

// The parsers: one raw value (a TOML value; from a flag, a string) into its type.

fn text(v: &Value) -> Parsed<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{v} is not a string"))
}

fn path(v: &Value) -> Parsed<PathBuf> {
    text(v).map(PathBuf::from)
}

fn boolean(v: &Value) -> Parsed<bool> {
    v.as_bool()
        .ok_or_else(|| format!("{v} is neither true nor false"))
}

fn whole(v: &Value) -> Parsed<u64> {
    match v {
        Value::Integer(n) => u64::try_from(*n).ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{v} is not a whole number"))
}

fn millis(v: &Value) -> Parsed<Duration> {
    match whole(v)? {
        0 => Err("must be above 0".into()),
        n => Ok(Duration::from_millis(n)),
    }
}

fn seconds(v: &Value) -> Parsed<Duration> {
    whole(v).map(Duration::from_secs)
}

fn count(v: &Value) -> Parsed<usize> {
    usize::try_from(whole(v)?).map_err(|_| format!("{v} is too large"))
}

fn between(low: usize, high: usize) -> impl Fn(&Value) -> Parsed<usize> {
    move |v| {
        count(v)
            .ok()
            .filter(|n| (low..=high).contains(n))
            .ok_or_else(|| format!("must be {low} to {high}"))
    }
}

/// A limit below which no valid request (or no caller at all) gets through.
fn at_least(low: usize) -> impl Fn(&Value) -> Parsed<usize> {
    move |v| match count(v)? {
        n if n < low => Err(format!(
            "must be at least {low}: less refuses every valid request"
        )),
        n => Ok(n),
    }
}

fn instant(v: &Value) -> Parsed<Timestamp> {
    let s = match v {
        // `cutover = 2025-03-01` unquoted is a TOML date.
        Value::Datetime(d) => d.to_string(),
        other => text(other)?,
    };
    parse_instant(s.trim()).ok_or_else(|| format!("{s} is neither a date nor an xs:dateTime"))
}

/// An http(s) URL without user and password (they would not be sent).
fn state_url(v: &Value) -> Parsed<crate::state::StateUrl> {
    crate::state::StateUrl::parse(text(v)?.trim())
}

fn http_url(v: &Value) -> Parsed<HttpUrl> {
    let s = text(v)?;
    let text = s.trim();
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err("must start with http:// or https://".into());
    }
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("{text} is not a URL: {e}"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("user and password in a URL are not sent; give the URL without them".into());
    }
    Ok(HttpUrl {
        uri,
        text: text.to_owned(),
    })
}

/// scheme://host[:port], nothing after.
fn origin(v: &Value) -> Parsed<HttpUrl> {
    http_url(v)
        .ok()
        .filter(|u| {
            u.uri.authority().is_some()
                && matches!(u.uri.path(), "" | "/")
                && u.uri.query().is_none()
        })
        .ok_or_else(|| "must be scheme://host[:port] (no path), e.g. https://soap.example".into())
}

fn mode(v: &Value) -> Parsed<Mode> {
    let s = text(v)?;
    <Mode as clap::ValueEnum>::from_str(s.trim(), false)
        .map_err(|_| format!("{s} is not certificate, proxy or header"))
}

fn network(v: &Value) -> Parsed<IpNet> {
    let s = text(v)?;
    let p = s.trim();
    p.parse::<IpNet>()
        .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{p} is not an address or CIDR network"))
}

fn header_name(v: &Value) -> Parsed<HeaderName> {
    let s = text(v)?;
    HeaderName::from_bytes(s.trim().as_bytes()).map_err(|_| format!("{s} is not a header name"))
}

/// The items of a file's array or of the flags' values.
fn items(v: &Value) -> Parsed<&[Value]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{v} is not a list"))
}

/// `[[cutover_override]]` tables from the file, `TYPE:CODE=DATE` from flags.
fn cutover_overrides(v: &Value) -> Parsed<Vec<CutoverOverride>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct InFile {
        organisation_type: u8,
        organisation_code: String,
        cutover: Value,
    }
    items(v)?
        .iter()
        .map(|item| {
            let (organisation_type, code, at) = match item {
                Value::String(spec) => spec
                    .split_once('=')
                    .and_then(|(who, at)| {
                        let (t, code) = who.split_once(':')?;
                        Some((
                            t.trim().parse().ok()?,
                            code.to_owned(),
                            Value::from(at.trim()),
                        ))
                    })
                    .ok_or_else(|| format!("{spec} is not TYPE:CODE=DATE"))?,
                table => {
                    let o: InFile = table.clone().try_into().map_err(|e| e.to_string())?;
                    (o.organisation_type, o.organisation_code, o.cutover)
                }
            };
            Ok(CutoverOverride {
                organisation_type,
                organisation_code: code.trim().to_owned(),
                cutover: instant(&at)?,
            })
        })
        .collect()
}

fn days(v: &Value) -> Parsed<Duration> {
    whole(v).map(|d| Duration::from_secs(d.saturating_mul(86_400)))
}

fn cvr(v: &Value) -> Parsed<String> {
    let s = text(v)?;
    let s = s.trim();
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s} is not a CVR (8 digits)"))
    }
}

/// `[[wsrm_subscriber]]` tables from the file, `TYPE:CODE[=KIND+KIND]` from flags.
fn wsrm_subscribers(v: &Value) -> Parsed<Vec<crate::wsrm::Subscriber>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct InFile {
        #[serde(rename = "type")]
        organisation_type: u8,
        code: String,
        #[serde(default)]
        messages: Vec<String>,
    }
    items(v)?
        .iter()
        .map(|item| match item {
            Value::String(spec) => crate::wsrm::Subscriber::parse(spec),
            table => {
                let s: InFile = table.clone().try_into().map_err(|e| e.to_string())?;
                let messages = s
                    .messages
                    .iter()
                    .map(|m| {
                        crate::wsrm::MessageKind::parse(m)
                            .ok_or_else(|| format!("{m} is not a WSRM message"))
                    })
                    .collect::<Result<_, _>>()?;
                crate::wsrm::Subscriber::new(s.organisation_type, s.code.trim(), messages)
            }
        })
        .collect()
}

/// A `[legacy_url]` table from the file, `SERVICE=URL` from flags.
fn legacy_urls(v: &Value) -> Parsed<BTreeMap<String, HttpUrl>> {
    let url = |service: &str, u: &Value| {
        http_url(u)
            .map(|u| (service.trim().to_owned(), u))
            .map_err(|e| format!("the URL of {}: {e}", service.trim()))
    };
    match v {
        Value::Table(t) => t.iter().map(|(s, u)| url(s, u)).collect(),
        other => items(other)?
            .iter()
            .map(|spec| {
                let spec = text(spec)?;
                let (service, u) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("{spec} is not SERVICE=URL"))?;
                url(service, &Value::from(u))
            })
            .collect(),
    }
}

impl Config {
    /// Every setting at its default.
    pub fn defaults() -> Result<Config, ConfigError> {
        Config::from_layers(&Layers {
            flags: &toml::Table::new(),
            file: &toml::Table::new(),
            path: None,
        })
    }

    /// The file (if any), then every flag or variable that is set; parsed and validated.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let file = match &o.config {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let c = Config::from_layers(&Layers {
            flags: &o.values,
            file: &file,
            path: o.config.as_deref(),
        })?;
        c.validate()?;
        c.refuse_accidental_dev_mode(o.config.is_some())?;
        Ok(c)
    }

    /// A production setting without `rest_url` would run the embedded dev backend (its
    /// fictitious data, its admin API, identity headers trusted by it): refused unless
    /// `dev` says it is meant.
    fn refuse_accidental_dev_mode(&self, from_file: bool) -> Result<(), ConfigError> {
        if self.rest_url.is_some() || self.dev {
            return Ok(());
        }
        let given: Vec<&str> = [
            (self.tls_cert.is_some(), "tls_cert"),
            (!self.trusted_proxies.is_empty(), "trusted_proxies"),
            (self.agreements.is_some(), "agreements"),
            (from_file, "a config file"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(invalid(
            "rest_url",
            format!(
                "{} given but no rest_url: this start would run the embedded reference backend \
                 (dev mode, fictitious data). Give rest_url, or dev (--dev, VOS_DEV=true) to run \
                 the dev backend on purpose",
                given.join(", ")
            ),
        ))
    }

    /// What involves more than one setting (each one's own value is checked when parsed).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dev && self.rest_url.is_some() {
            return Err(invalid(
                "dev",
                "dev runs the embedded reference backend: not with rest_url",
            ));
        }
        if self.shadow_compare && self.legacy_url.is_empty() {
            return Err(invalid(
                "shadow_compare",
                "needs a legacy_url to compare with",
            ));
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
        if self.state_ca.is_some() && !self.state_url.as_ref().is_some_and(|u| u.tls()) {
            return Err(invalid(
                "state_ca",
                "is for TLS to PostgreSQL: give a state_url with ?sslmode=require",
            ));
        }
        if self.rest_client_cert.is_some() != self.rest_client_key.is_some() {
            return Err(invalid(
                "rest_client_cert",
                "rest_client_cert and rest_client_key go together",
            ));
        }
        // The converter's certificate and the identity headers must not go out in clear.
        let clear = |u: &HttpUrl| u.uri.scheme() == Some(&http::uri::Scheme::HTTP);
        if (self.rest_client_cert.is_some() || self.rest_ca.is_some())
            && (self.rest_url.as_ref().is_some_and(clear) || self.legacy_url.values().any(clear))
        {
            return Err(invalid(
                "rest_client_cert",
                "rest_client_cert and rest_ca are for https: rest_url and legacy_url must be https://",
            ));
        }
        let mode = self.identity_mode()?;
        if matches!(mode, Mode::Certificate | Mode::Proxy) && self.agreements.is_none() {
            return Err(invalid(
                "agreements",
                format!(
                    "identity = \"{}\" decides with connection agreements: give the agreements file",
                    mode.as_str()
                ),
            ));
        }
        match mode {
            Mode::Certificate if self.tls_cert.is_none() => {
                return Err(invalid(
                    "identity",
                    "identity = \"certificate\" needs tls_cert, tls_key and client_ca",
                ));
            }
            Mode::Proxy if self.trusted_proxies.is_empty() || self.client_cert_header.is_none() => {
                return Err(invalid(
                    "identity",
                    "identity = \"proxy\" needs trusted_proxies and client_cert_header",
                ));
            }
            // The forwarded certificate is verified here too (chain, validity, CRLs): a proxy
            // configured to pass certificates it did not verify would otherwise make anyone
            // anybody.
            Mode::Proxy if self.client_ca.is_empty() => {
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
    pub fn identity_mode(&self) -> Result<Mode, ConfigError> {
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

    /// The cutover rules: the default instant and every organisation's own.
    pub fn cutover_rules(&self) -> Cutover {
        self.cutover_override
            .iter()
            .fold(Cutover::new(self.cutover), |c, o| {
                c.with_override(
                    &o.organisation_type.to_string(),
                    &o.organisation_code,
                    o.cutover,
                )
            })
    }
}

/// The file's settings, raw; a name that is not a setting is an error.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let fail = |message: String| ConfigError::Parse {
        path: path.into(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(e.to_string()))?;
    if let Some(k) = table
        .keys()
        .find(|k| !SETTINGS.iter().any(|s| s.name == *k))
    {
        return Err(fail(format!(
            "unknown setting `{k}` (README.md's configuration table lists them)"
        )));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    /// `serve`'s flags as the command line gives them.
    fn flags(args: &[&str]) -> Overrides {
        let cmd = Overrides::augment_args(clap::Command::new("serve").no_binary_name(true));
        Overrides::from_arg_matches(&cmd.try_get_matches_from(args).unwrap()).unwrap()
    }

    fn loaded(args: &[&str]) -> Config {
        Config::load(&flags(args)).unwrap()
    }

    fn refused(args: &[&str]) -> String {
        Config::load(&flags(args)).unwrap_err().to_string()
    }

    fn uri(s: &str) -> HttpUrl {
        http_url(&Value::from(s)).unwrap()
    }

    fn defaults() -> Config {
        Config::defaults().unwrap()
    }

    #[test]
    fn the_flags_are_a_valid_clap_command() {
        Overrides::augment_args(clap::Command::new("serve")).debug_assert();
        assert_eq!(SETTINGS.len(), 40);
    }

    #[test]
    fn the_state_url_is_postgres_and_never_shown_with_its_password() {
        let e = refused(&["--state-url", "mysql://db.example/vos"]);
        assert!(
            e.starts_with("state_url: must start with postgres://"),
            "{e}"
        );
        let e = refused(&[
            "--state-url",
            "postgres://u:pw@db.example/vos?sslmode=bogus",
        ]);
        assert!(e.starts_with("state_url: not a PostgreSQL URL"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        let e = refused(&["--state-ca", "ca.pem"]);
        assert!(e.starts_with("state_ca: is for TLS"), "{e}");
        let e = refused(&[
            "--state-url",
            "postgres://u:pw@db.example/vos",
            "--state-ca",
            "ca.pem",
        ]);
        assert!(e.starts_with("state_ca: is for TLS"), "{e}");
        let url = crate::state::StateUrl::parse(
            "postgresql://vos:s3cret@db.example:6432/vos?sslmode=require",
        )
        .unwrap();
        assert_eq!(url.redacted(), "postgres://vos@db.example:6432/vos (TLS)");
        assert_eq!(format!("{url:?}"), url.redacted());
        assert!(!format!("{url}").contains("s3cret"));
        assert!(url.tls() && !url.local());
        // libpq's verified modes are TLS here (always verified); other parameters stay.
        for mode in ["verify-full", "verify-ca"] {
            let url = crate::state::StateUrl::parse(&format!(
                "postgres://vos@127.0.0.1/vos?application_name=x&sslmode={mode}&connect_timeout=2"
            ))
            .unwrap();
            assert!(url.tls() && url.local(), "{mode}");
            assert_eq!(url.config().get_application_name(), Some("x"));
        }
        let plain = crate::state::StateUrl::parse("postgres://vos@localhost/vos").unwrap();
        assert!(!plain.tls() && plain.local());
    }

    #[test]
    fn urls_with_credentials_and_unbounded_connections_are_refused() {
        let e = refused(&["--rest-url", "http://user:pw@rest.example/"]);
        assert!(e.starts_with("rest_url: user and password"), "{e}");
        let e = refused(&[
            "--rest-url",
            "http://rest.example/",
            "--legacy-url",
            "PersonStatusService=https://u@legacy.example/pss",
        ]);
        assert!(
            e.starts_with("legacy_url:") && e.contains("user and password"),
            "{e}"
        );
        for n in ["0", "65536", &usize::MAX.to_string()] {
            let e = refused(&["--rest-max-connections", n]);
            assert!(e.starts_with("rest_max_connections:"), "{n}: {e}");
        }
        let ok = loaded(&[
            "--rest-url",
            "https://rest.example:8443/vos",
            "--rest-max-connections",
            "1",
            "--identity",
            "header",
        ]);
        assert_eq!(ok.rest_url, Some(uri("https://rest.example:8443/vos")));
        assert_eq!(ok.rest_max_connections, 1);
    }

    #[test]
    fn a_production_start_refuses_unverified_identities_unless_asked() {
        let prod = Config {
            rest_url: Some(uri("https://rest.example/")),
            ..defaults()
        };
        let e = prod.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("identity:") && e.contains("--identity header"),
            "{e}"
        );
        // Dev mode (the embedded backend) defaults to header; not when a legacy service (a
        // real one, as far as the converter knows) is called.
        assert_eq!(defaults().identity_mode().unwrap(), Mode::Header);
        let mut legacy = defaults();
        legacy
            .legacy_url
            .insert("PersonStatusService".into(), uri("https://legacy/pss"));
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
            trusted_proxies: vec![
                "10.0.0.0/8".parse().unwrap(),
                "127.0.0.1/32".parse().unwrap(),
            ],
            client_cert_header: Some(HeaderName::from_static("x-client-cert")),
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
        let e = Config {
            client_cert_header: None,
            ..proxy.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("identity:"), "{e}");

        // Each setting's own value is checked when it is parsed.
        let c = loaded(&[
            "--dev",
            "--trusted-proxy",
            "10.0.0.0/8, 127.0.0.1",
            "--identity",
            "header",
        ]);
        assert_eq!(c.trusted_proxies, proxy.trusted_proxies);
        let e = refused(&["--trusted-proxy", "10.0.0.0/33"]);
        assert!(e.starts_with("trusted_proxies:"), "{e}");
        let e = refused(&["--client-cert-header", "X Cert"]);
        assert!(e.starts_with("client_cert_header:"), "{e}");
        for bad in ["soap.example", "https://soap.example/path", "ftp://x"] {
            let e = refused(&["--public-url", bad]);
            assert!(e.starts_with("public_url:"), "{bad}: {e}");
        }
        let c = loaded(&["--public-url", "https://soap.example:8443"]);
        assert_eq!(c.public_url, Some(uri("https://soap.example:8443")));
        for (flag, name) in [
            ("--body-timeout-ms", "body_timeout_ms"),
            ("--upstream-timeout-ms", "upstream_timeout_ms"),
            ("--connect-timeout-ms", "connect_timeout_ms"),
            ("--upstream-idle-timeout-ms", "upstream_idle_timeout_ms"),
        ] {
            let e = refused(&[flag, "0"]);
            assert_eq!(e, format!("{name}: must be above 0"));
        }
        let e = refused(&["--max-depth", "7"]);
        assert!(e.starts_with("max_depth: must be at least 8"), "{e}");
        let e = refused(&["--max-upstream-bytes", "1023"]);
        assert!(
            e.starts_with("max_upstream_bytes: must be at least 1024"),
            "{e}"
        );
        let e = refused(&["--identity", "trust-me"]);
        assert!(e.starts_with("identity: trust-me is not"), "{e}");
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vos.toml");
        let file = "listen = \"0.0.0.0:9000\"\nupstream_timeout_ms = 2000\nconnect_timeout_ms = 300\n\
                    cutover = \"2025-01-06\"\nidentity = \"header\"\npublic_url = \"https://soap.example\"\n\
                    [[cutover_override]]\norganisation_type = 1\norganisation_code = \"101\"\ncutover = \"2030-01-01\"\n\
                    [legacy_url]\nPersonStatusService = \"http://legacy/pss\"\n";
        std::fs::write(&path, file).unwrap();
        let c = loaded(&[
            "--dev",
            "--config",
            path.to_str().unwrap(),
            "--upstream-timeout-ms",
            "750",
            "--cutover-override",
            "2:12=2031-01-01T12:00:00",
        ]);
        assert_eq!(
            (
                c.listen.as_str(),
                c.upstream_timeout,
                c.connect_timeout,
                c.max_depth
            ),
            (
                "0.0.0.0:9000",
                Duration::from_millis(750),
                Duration::from_millis(300),
                32
            )
        );
        let cut = c.cutover_rules();
        assert_eq!(cut.default_instant().to_string(), "2025-01-05T23:00:00Z");
        assert_eq!(
            cut.instant_for("1", "101").to_string(),
            "2029-12-31T23:00:00Z"
        );
        assert_eq!(
            cut.instant_for("2", "12").to_string(),
            "2031-01-01T11:00:00Z"
        );
        assert_eq!(
            c.legacy_url["PersonStatusService"],
            uri("http://legacy/pss")
        );
        // An empty value: not given (a setting with a default), unset (one without).
        let c = loaded(&[
            "--dev",
            "--config",
            path.to_str().unwrap(),
            "--cutover",
            "",
            "--public-url",
            "",
        ]);
        assert_eq!(c.cutover.to_string(), "2025-01-05T23:00:00Z");
        assert_eq!(c.public_url, None);
    }

    #[test]
    fn the_upstream_bounds_default_below_an_actix_keep_alive_and_to_4_mib() {
        let d = defaults();
        assert_eq!(d.max_upstream_bytes, 4 * 1024 * 1024);
        // actix servers close an idle connection after 5 s.
        assert_eq!(d.upstream_idle_timeout, Duration::from_millis(4000));
        let c = loaded(&[
            "--max-upstream-bytes",
            "65536",
            "--upstream-idle-timeout-ms",
            "1500",
        ]);
        assert_eq!(
            (c.max_upstream_bytes, c.upstream_idle_timeout),
            (65536, Duration::from_millis(1500))
        );
        let names: Vec<(String, String)> = SETTINGS
            .iter()
            .filter(|s| s.name.contains("upstream_"))
            .map(|s| (s.flag(), s.env()))
            .collect();
        for pair in [
            ("max-upstream-bytes", "VOS_MAX_UPSTREAM_BYTES"),
            ("upstream-idle-timeout-ms", "VOS_UPSTREAM_IDLE_TIMEOUT_MS"),
        ] {
            assert!(
                names.contains(&(pair.0.into(), pair.1.into())),
                "{pair:?} in {names:?}"
            );
        }
    }

    #[test]
    fn the_default_cutover_is_release_2025_1() {
        assert_eq!(default_cutover().to_string(), "2025-02-28T23:00:00Z");
        assert_eq!(
            defaults().cutover_rules().default_instant(),
            default_cutover()
        );
    }

    #[test]
    fn a_wrong_file_or_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vos.toml");
        let load_file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            refused(&["--config", path.to_str().unwrap()])
        };
        let e = load_file("listn = \"x\"\n");
        assert!(e.contains("vos.toml") && e.contains("listn"), "{e}");
        // A value from the file names the file and the setting.
        let e = load_file("upstream_timeout_ms = \"soon\"\n");
        assert!(e.contains("vos.toml: upstream_timeout_ms: "), "{e}");
        let e = load_file(
            "[[cutover_override]]\norganisation_type = 1\norganisation_code = \"101\"\ncutover = \"x\"\n",
        );
        assert!(
            e.contains("vos.toml: cutover_override: x is neither"),
            "{e}"
        );
        for (args, name) in [
            (&["--cutover", "soon"][..], "cutover:"),
            (&["--rest-url", "vos.example"], "rest_url:"),
            (
                &["--cutover-override", "101=2030-01-01"],
                "cutover_override:",
            ),
            (&["--legacy-url", "PersonStatusService"], "legacy_url:"),
            (&["--shadow-compare"], "shadow_compare:"),
            (&["--max-elements", "many"], "max_elements:"),
        ] {
            let e = refused(args);
            assert!(e.starts_with(name), "{args:?}: {e}");
        }
    }
}
