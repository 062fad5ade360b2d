//! The converter's configuration: one typed `Config`, read from a TOML file (`--config`),
//! then from `VOS_*` environment variables and flags (clap reads both; a flag wins over its
//! variable, both win over the file). Validated once, at start. README.md's configuration
//! table lists every field; a test keeps the two equal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::dktime;

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
    /// group and person category collections empty (rule 9; read from issue 5 on). A date
    /// means Danish midnight; an xs:dateTime without offset is Danish local time.
    pub cutover: Option<String>,
    /// How long a REST call may take before the caller gets a Server fault (900521).
    pub upstream_timeout_ms: u64,
    /// How long connecting to REST may take (900520 after).
    pub connect_timeout_ms: u64,
    /// How long a REST code list is reused before it is fetched again.
    pub codelist_ttl_secs: u64,
    /// Largest SOAP request accepted (900503 above it).
    pub max_body_bytes: usize,
    /// Deepest element nesting accepted in a SOAP request.
    pub max_depth: usize,
    /// Most elements accepted in a SOAP request.
    pub max_elements: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            rest_url: None,
            data_dir: "data".into(),
            cutover: None,
            upstream_timeout_ms: 5000,
            connect_timeout_ms: 1000,
            codelist_ttl_secs: 300,
            max_body_bytes: 1024 * 1024,
            max_depth: 32,
            max_elements: 2000,
        }
    }
}

/// The field names, for the README check.
pub const FIELDS: [&str; 10] = [
    "listen",
    "rest_url",
    "data_dir",
    "cutover",
    "upstream_timeout_ms",
    "connect_timeout_ms",
    "codelist_ttl_secs",
    "max_body_bytes",
    "max_depth",
    "max_elements",
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
    /// The cutover instant of PSS/PHS collections (a date, or an xs:dateTime).
    #[arg(long, env = "VOS_CUTOVER")]
    pub cutover: Option<String>,
    /// REST request timeout in milliseconds [default: 5000].
    #[arg(long, env = "VOS_UPSTREAM_TIMEOUT_MS")]
    pub upstream_timeout_ms: Option<u64>,
    /// REST connect timeout in milliseconds [default: 1000].
    #[arg(long, env = "VOS_CONNECT_TIMEOUT_MS")]
    pub connect_timeout_ms: Option<u64>,
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
        if let Some(v) = &o.cutover {
            c.cutover = Some(v.clone()).filter(|v| !v.is_empty());
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { c.$f = v; } )* };
        }
        take!(
            upstream_timeout_ms,
            connect_timeout_ms,
            codelist_ttl_secs,
            max_body_bytes,
            max_depth,
            max_elements
        );
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.into(),
            })
        };
        if let Some(url) = &self.rest_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("rest_url", "must start with http:// or https://");
        }
        self.cutover_instant()?;
        if self.upstream_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return invalid("upstream_timeout_ms", "timeouts must be above 0");
        }
        if self.max_body_bytes < 1024 || self.max_depth < 8 || self.max_elements < 16 {
            return invalid(
                "max_body_bytes",
                "limits this small refuse every valid request",
            );
        }
        Ok(())
    }

    /// The cutover as an instant.
    pub fn cutover_instant(&self) -> Result<Option<Timestamp>, ConfigError> {
        let Some(s) = &self.cutover else {
            return Ok(None);
        };
        let bad = || ConfigError::Invalid {
            field: "cutover",
            message: format!("{s} is neither a date nor an xs:dateTime"),
        };
        if s.contains('T') {
            dktime::parse_xs_datetime(s).map(Some).map_err(|_| bad())
        } else {
            let d: jiff::civil::Date = s.parse().map_err(|_| bad())?;
            d.to_zoned(dktime::copenhagen().clone())
                .map(|z| Some(z.timestamp()))
                .map_err(|_| bad())
        }
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
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vos.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nupstream_timeout_ms = 2000\ncutover = \"2025-01-06\"\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(path),
            upstream_timeout_ms: Some(750),
            ..Overrides::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!(
            (c.listen.as_str(), c.upstream_timeout_ms, c.max_depth),
            ("0.0.0.0:9000", 750, 32)
        );
        assert_eq!(
            c.cutover_instant().unwrap().unwrap().to_string(),
            "2025-01-05T23:00:00Z"
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
        let e = Config::load(&Overrides {
            cutover: Some("soon".into()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cutover:"), "{e}");
        let e = Config::load(&Overrides {
            rest_url: Some("vos.example".into()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("rest_url:"), "{e}");
    }

    #[test]
    fn fields_lists_every_setting() {
        let full = Config {
            rest_url: Some("http://x".into()),
            cutover: Some("2025-01-01".into()),
            ..Config::default()
        };
        let v = toml::Value::try_from(&full).unwrap();
        let mut keys: Vec<&str> = v.as_table().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut fields = FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }
}
