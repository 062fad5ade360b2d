//! The command line. `main.rs` parses and calls [`run`]; every command is a function here.
//! Each flag can also be set from the environment (`VOS_*`).

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer};
use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::backend::{self, API_PAGE, BackendConfig, BackendError, OPENAPI_PATH};
use crate::catalog::Catalog;
use crate::config::{Config, ConfigError, Overrides};
use crate::converter::{Converter, Legacy};
use crate::dktime::Clock;
use crate::mapping::{self, MappingError};
use crate::observe::usage::Usage;
use crate::soap::envelope::Limits;
use crate::soap::front::{self, SoapState};
use crate::upstream::{Upstream, UpstreamConfig};
use crate::{embedded, vos};

#[derive(Debug, Parser)]
#[command(
    name = "vos-converter",
    version,
    about = "SOAP-to-REST converter for STAR's VisiteringOgStatus, with its reference REST service"
)]
pub struct Cli {
    /// Without a command: `serve` with its defaults (the quick start).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log lines as human-readable text or JSON (RUST_LOG filters them).
    #[arg(long, global = true, env = "VOS_LOG_FORMAT", value_enum, default_value_t = crate::observe::LogFormat::Text)]
    pub log_format: crate::observe::LogFormat,
}

// `Serve`'s flags make it the large variant; the enum is built once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the converter: the legacy SOAP endpoints, calling VisiteringOgStatus REST
    /// (by default the embedded reference backend).
    Serve(Overrides),
    /// Verify every mapping against wsdl/ and openapi/; exit 1 on the first problem found.
    Check,
    /// Run the reference VisiteringOgStatus REST service (PersonVisiteringService v1).
    Backend(BackendArgs),
    /// Print the REST service's OpenAPI document (the one committed in openapi/).
    Openapi,
}

#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "VOS_BACKEND_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// SQLite database file; created, with its schema, if missing.
    #[arg(long, env = "VOS_BACKEND_DB", default_value = "data/vos-backend.db")]
    pub db: PathBuf,
    /// Development mode: serves SetPersonRegister, the admin API that feeds the access rules.
    #[arg(long, env = "VOS_BACKEND_DEV")]
    pub dev: bool,
    /// Development mode only: answer every request this many milliseconds later, a stand-in
    /// for the network and load of STAR's production REST service (scripts/bench.sh).
    #[arg(
        long,
        env = "VOS_BACKEND_DEV_LATENCY_MS",
        requires = "dev",
        default_value_t = 0
    )]
    pub dev_latency_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create the folder of {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("the mappings do not fit their contracts:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Mapping(Vec<MappingError>),
    #[error("{0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("{0}")]
    Client(#[from] crate::upstream::SetupError),
    #[error("seeding the embedded backend: {0}")]
    Seed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot render the OpenAPI document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => run_serve(Overrides::default()).await,
        Some(Command::Serve(o)) => run_serve(o).await,
        Some(Command::Check) => run_check(),
        Some(Command::Backend(args)) => run_backend(args).await,
        Some(Command::Openapi) => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", openapi_json()?)?;
            Ok(())
        }
    }
}

/// The full OpenAPI document (with the dev-only operation), as committed in openapi/.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&backend::openapi(true))
}

fn run_check() -> Result<(), CliError> {
    Catalog::load()?;
    let plan = mapping::compile().map_err(CliError::Mapping)?;
    let mut out = std::io::stdout().lock();
    for s in &plan.services {
        writeln!(
            out,
            "ok  {} v{} ({}, {}): {} operations",
            s.name,
            s.version,
            s.endpoint,
            s.wsdl_file,
            s.operations.len()
        )?;
        for op in &s.operations {
            let what = match &op.behaviour {
                mapping::Behaviour::Call(c) => match &c.with_message_id {
                    Some((w, _)) => format!(
                        "{} (with wsa:MessageID: {})",
                        c.call.operation_id, w.operation_id
                    ),
                    None => c.call.operation_id.clone(),
                },
                mapping::Behaviour::Retired { replacement } => {
                    format!("retired, use {replacement}")
                }
                mapping::Behaviour::Read(r) => {
                    let calls: Vec<&str> = r
                        .collections
                        .iter()
                        .map(|c| c.call.operation_id.as_str())
                        .collect();
                    format!(
                        "{} (concurrently; none after the cutover)",
                        calls.join(" + ")
                    )
                }
            };
            writeln!(out, "      {} -> {what}", op.name)?;
        }
    }
    Ok(())
}

fn ensure_parent(path: &std::path::Path) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| CliError::DataDir {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

fn bind(addr: &str) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr).map_err(|source| CliError::Listen {
        addr: addr.to_owned(),
        source,
    })
}

async fn run_backend(args: BackendArgs) -> Result<(), CliError> {
    ensure_parent(&args.db)?;
    let listener = bind(&args.listen)?;
    let addr = listener.local_addr()?;
    let cfg = BackendConfig {
        db: args.db.clone(),
        dev: args.dev,
        clock: Clock::System,
        latency: std::time::Duration::from_millis(args.dev_latency_ms),
    };
    let server = backend::server(listener, &cfg)?;
    let base = format!("http://{addr}");
    let mode = if args.dev {
        "dev mode: SetPersonRegister is on"
    } else {
        "production mode"
    };
    // stdout, one line each, so scripts and tests can read the address.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "VisiteringOgStatus reference backend ({mode}), database {}",
        args.db.display()
    )?;
    writeln!(out, "listening on {base}")?;
    writeln!(out, "  REST API:     {base}{}", vos::BASE)?;
    writeln!(out, "  API page:     {base}{API_PAGE}")?;
    writeln!(out, "  OpenAPI:      {base}{OPENAPI_PATH}")?;
    out.flush()?;
    drop(out);
    server.await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    person: Vec<vos::PersonRegister>,
}

/// Feeds the embedded backend's person register, as STAR, over HTTP.
async fn seed(base: &str) -> Result<usize, CliError> {
    let text = embedded::file("mappings/dev-seed.toml")
        .ok_or_else(|| CliError::Seed("mappings/dev-seed.toml is missing".into()))?;
    let seed: Seed =
        toml::from_str(text).map_err(|e| CliError::Seed(format!("mappings/dev-seed.toml: {e}")))?;
    let client = reqwest::Client::new();
    for p in &seed.person {
        let res = client
            .put(format!("{base}{}/personregister", vos::BASE))
            .header(vos::HDR_ORG_TYPE, "5")
            .header(vos::HDR_ORG_CODE, "vos-converter-seed")
            .json(p)
            .send()
            .await
            .map_err(|e| CliError::Seed(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(CliError::Seed(format!(
                "SetPersonRegister answered {}",
                res.status()
            )));
        }
    }
    Ok(seed.person.len())
}

async fn run_serve(o: Overrides) -> Result<(), CliError> {
    let cfg = Config::load(&o)?;
    Catalog::load()?;
    let plan = Arc::new(mapping::compile().map_err(CliError::Mapping)?);

    // The REST service: the configured one, or the reference backend on a loopback port.
    let mut embedded_backend = None;
    let rest_url = match &cfg.rest_url {
        Some(url) => url.clone(),
        None => {
            let db = cfg.data_dir.join("vos-backend.db");
            ensure_parent(&db)?;
            let listener = bind("127.0.0.1:0")?;
            let url = format!("http://{}", listener.local_addr()?);
            let server = backend::server(
                listener,
                &BackendConfig {
                    db,
                    dev: true,
                    clock: Clock::System,
                    latency: std::time::Duration::ZERO,
                },
            )?;
            embedded_backend = Some(server.handle());
            actix_web::rt::spawn(server);
            seed(&url).await?;
            url
        }
    };

    let upstream = Upstream::new(&UpstreamConfig {
        base_url: rest_url.clone(),
        connect_timeout: cfg.connect_timeout(),
        request_timeout: cfg.upstream_timeout(),
        codelist_ttl: cfg.codelist_ttl(),
        max_connections: cfg.rest_max_connections,
    })?;
    let limits = Limits {
        max_depth: cfg.max_depth,
        max_elements: cfg.max_elements,
    };
    for service in cfg.legacy_url.keys() {
        if !plan.services.iter().any(|s| s.name == *service) {
            return Err(CliError::Other(format!(
                "legacy_url: {service} is not a mapped service"
            )));
        }
    }
    let legacy = Legacy {
        urls: cfg.legacy_url.clone().into_iter().collect(),
        shadow_compare: cfg.shadow_compare,
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| CliError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let usage = Usage::load(Some(cfg.data_dir.join("migration-usage.json")));
    let cutover = cfg.cutover()?;
    let converter = Converter::new(plan.clone(), upstream, limits)
        .with_cutover(cutover.clone())
        .with_legacy(legacy)
        .with_usage(usage);
    let now = jiff::Timestamp::now();
    for (t, c, at) in cutover.overrides() {
        converter.metrics.set_past_cutover(t, c, now >= at);
    }
    // The usage aggregates reach the disk every 10 s and at shutdown.
    let usage = converter.usage.clone();
    let persist = actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            usage.persist(Clock::System.today());
        }
    });
    let usage = converter.usage.clone();
    let state = Arc::new(SoapState::new(converter, cfg.max_body_bytes).map_err(CliError::Other)?);
    let listener = bind(&cfg.listen)?;
    let addr = listener.local_addr()?;
    let routes = front::configure(state);
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .shutdown_timeout(10)
        .listen(listener)?
        .run();

    let base = format!("http://{addr}");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "vos-converter: legacy SOAP in front of VisiteringOgStatus REST"
    )?;
    writeln!(out, "listening on {base}")?;
    for s in &plan.services {
        writeln!(
            out,
            "  SOAP {} v{}: {base}{}   WSDL: {base}{}?wsdl",
            s.name, s.version, s.endpoint, s.endpoint
        )?;
    }
    writeln!(
        out,
        "  migration dashboard: {base}/dashboard   (JSON: {base}/api/migration)"
    )?;
    writeln!(
        out,
        "  metrics: {base}/metrics   health: {base}/healthz   ready: {base}/readyz"
    )?;
    match &cfg.rest_url {
        Some(url) => writeln!(out, "  REST upstream: {url}")?,
        None => {
            writeln!(
                out,
                "  REST upstream: {rest_url} (embedded reference backend, dev mode, database {})",
                cfg.data_dir.join("vos-backend.db").display()
            )?;
            writeln!(out, "  REST API page: {rest_url}{API_PAGE}")?;
            writeln!(out, "  OpenAPI:       {rest_url}{OPENAPI_PATH}")?;
        }
    }
    let cutover = cfg.cutover()?;
    let dk = |t: jiff::Timestamp| crate::dktime::format_xs_datetime(t);
    writeln!(
        out,
        "  cutover (PSS/PHS KG/PC collections empty from): {}",
        dk(cutover.default_instant())
    )?;
    for (t, c, at) in cutover.overrides() {
        writeln!(out, "    organisation {t}:{c}: {}", dk(at))?;
    }
    for (service, url) in &cfg.legacy_url {
        writeln!(
            out,
            "  legacy {service}: {url}{}",
            if cfg.shadow_compare {
                " (shadow compare on)"
            } else {
                ""
            }
        )?;
    }
    out.flush()?;
    drop(out);
    server.await?;
    persist.abort();
    usage.persist(Clock::System.today());
    if let Some(h) = embedded_backend {
        h.stop(true).await;
    }
    Ok(())
}
