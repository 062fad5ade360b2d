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
use crate::dktime::Clock;
use crate::mapping::{self, MappingError};
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
    /// Verify every mapping against wsdl/ and openapi/ (and an agreements file, if given);
    /// exit 1 on the first problem found.
    Check(CheckArgs),
    /// Run the reference VisiteringOgStatus REST service (PersonVisiteringService v1).
    Backend(BackendArgs),
    /// Print the REST service's OpenAPI document (the one committed in openapi/).
    Openapi,
    /// Write test certificates (a CA, a localhost server certificate, OCES2 and OCES3
    /// client certificates, the converter's own) and a matching agreements file into DIR.
    /// For trying the HTTPS door; never for production.
    DevCerts(DevCertsArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A connection agreements file to validate too.
    #[arg(long, env = "VOS_AGREEMENTS")]
    pub agreements: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DevCertsArgs {
    /// The folder to write into (created if missing; files in it are replaced).
    pub dir: PathBuf,
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
    /// HTTPS with client certificates: the server's certificate chain (PEM).
    #[arg(long, env = "VOS_BACKEND_TLS_CERT", requires_all = ["tls_key", "client_ca", "trusted_client_cvr"])]
    pub tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, env = "VOS_BACKEND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle(s) client certificates must chain to (comma-separated).
    #[arg(
        long,
        env = "VOS_BACKEND_CLIENT_CA",
        value_delimiter = ',',
        requires = "tls_cert"
    )]
    pub client_ca: Vec<PathBuf>,
    /// CVRs whose certificates may set the identity headers (the converter's); other
    /// callers get 900205 (comma-separated; required with --tls-cert).
    #[arg(
        long,
        env = "VOS_BACKEND_TRUSTED_CLIENT_CVR",
        value_delimiter = ',',
        requires = "tls_cert"
    )]
    pub trusted_client_cvr: Vec<String>,
    /// WSB: one delivery attempt's time limit, connection included (ms).
    #[arg(long, env = "VOS_BACKEND_WSB_TIMEOUT_MS", default_value_t = 5000)]
    pub wsb_timeout_ms: u64,
    /// WSB: the first retry's delay (ms); each next one doubles, with jitter.
    #[arg(long, env = "VOS_BACKEND_WSB_RETRY_INITIAL_MS", default_value_t = 500)]
    pub wsb_retry_initial_ms: u64,
    /// WSB: the longest delay between retries (ms).
    #[arg(long, env = "VOS_BACKEND_WSB_RETRY_MAX_MS", default_value_t = 60_000)]
    pub wsb_retry_max_ms: u64,
    /// WSB: an event not acknowledged after this many seconds is parked (dead-lettered).
    #[arg(long, env = "VOS_BACKEND_WSB_MAX_AGE_SECS", default_value_t = 86_400)]
    pub wsb_max_age_secs: u64,
    /// WSB: CA bundle the subscribers' server certificates must chain to (default: the
    /// platform's roots).
    #[arg(long, env = "VOS_BACKEND_WSB_CA")]
    pub wsb_ca: Option<PathBuf>,
    /// WSB: the client certificate presented to subscribers (mutual TLS, as WSB does; it
    /// needs the clientAuth key usage). Default: --tls-cert, when given.
    #[arg(long, env = "VOS_BACKEND_WSB_CLIENT_CERT", requires = "wsb_client_key")]
    pub wsb_client_cert: Option<PathBuf>,
    /// The key of --wsb-client-cert (PEM).
    #[arg(long, env = "VOS_BACKEND_WSB_CLIENT_KEY", requires = "wsb_client_cert")]
    pub wsb_client_key: Option<PathBuf>,
}

impl BackendArgs {
    /// The WSB delivery settings of these flags.
    fn wsb(&self) -> Result<backend::wsb::delivery::WsbSettings, CliError> {
        use std::time::Duration;
        let identity = match (&self.wsb_client_cert, &self.wsb_client_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => self.tls_cert.as_deref().zip(self.tls_key.as_deref()),
        };
        let tls = if identity.is_some() || self.wsb_ca.is_some() {
            Some(std::sync::Arc::new(crate::tls::client_config(
                identity,
                self.wsb_ca.as_deref(),
            )?))
        } else {
            None
        };
        if self.wsb_timeout_ms == 0 || self.wsb_retry_initial_ms == 0 {
            return Err(CliError::Other(
                "--wsb-timeout-ms and --wsb-retry-initial-ms must be above 0".into(),
            ));
        }
        Ok(backend::wsb::delivery::WsbSettings {
            timeout: Duration::from_millis(self.wsb_timeout_ms),
            retry_initial: Duration::from_millis(self.wsb_retry_initial_ms),
            retry_max: Duration::from_millis(self.wsb_retry_max_ms.max(self.wsb_retry_initial_ms)),
            max_age: Duration::from_secs(self.wsb_max_age_secs),
            tls,
        })
    }
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
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Agreements(#[from] crate::door::agreements::AgreementError),
    #[error("{0}")]
    DevCerts(#[from] crate::door::devcerts::DevCertsError),
    #[error("{0}")]
    Other(String),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => run_serve(Overrides::default()).await,
        Some(Command::Serve(o)) => run_serve(o).await,
        Some(Command::Check(args)) => run_check(args),
        Some(Command::DevCerts(args)) => run_dev_certs(args),
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

fn run_dev_certs(args: DevCertsArgs) -> Result<(), CliError> {
    let files = crate::door::devcerts::write_dev_set(&args.dir)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "dev certificates (NOT for production; the CA's key is beside it) in {}:",
        args.dir.display()
    )?;
    for f in &files {
        writeln!(out, "  {}", f.display())?;
    }
    let d = args.dir.display();
    writeln!(out, "try the HTTPS door:")?;
    writeln!(
        out,
        "  vos-converter serve --dev --tls-cert {d}/server.pem --tls-key {d}/server-key.pem --client-ca {d}/ca.pem --agreements {d}/agreements.toml"
    )?;
    writeln!(
        out,
        "  curl --cacert {d}/ca.pem --cert {d}/jobcenter-101.pem --key {d}/jobcenter-101-key.pem https://localhost:8080/readyz"
    )?;
    Ok(())
}

fn run_check(args: CheckArgs) -> Result<(), CliError> {
    Catalog::load()?;
    let plan = mapping::compile().map_err(CliError::Mapping)?;
    crate::wsrm::route::Routing::load().map_err(CliError::Other)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ok  {}", crate::wsrm::route::ROUTING_FILE)?;
    if let Some(path) = &args.agreements {
        let a = crate::door::agreements::Agreements::load(path)?;
        writeln!(
            out,
            "ok  {}: {} connection agreements",
            path.display(),
            a.len()
        )?;
    }
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
                        "{} (the id from the wsa:MessageID, or without one from the content)",
                        w.operation_id
                    ),
                    None => c.call.operation_id.clone(),
                },
                mapping::Behaviour::Retired { replacement } => {
                    format!("retired, use {replacement}")
                }
                mapping::Behaviour::Queue(q) => {
                    format!("the converter's WSRM queue ({:?})", q.step)
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
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            for cvr in &args.trusted_client_cvr {
                if cvr.len() != 8 || !cvr.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CliError::Other(format!(
                        "--trusted-client-cvr: {cvr} is not a CVR (8 digits)"
                    )));
                }
            }
            let reloadable = crate::tls::Reloadable::new(
                Some((cert.clone(), key.clone())),
                crate::tls::ClientTrust {
                    ca: args.client_ca.clone(),
                    crl: Vec::new(),
                },
            )?;
            Some(backend::BackendTls {
                reloadable,
                trusted_cvrs: args.trusted_client_cvr.clone(),
            })
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let reload = tls.as_ref().map(|t| t.reloadable.clone());
    let cfg = BackendConfig {
        db: args.db.clone(),
        dev: args.dev,
        clock: Clock::System,
        latency: std::time::Duration::from_millis(args.dev_latency_ms),
        tls,
        signals: true,
        wsb: args.wsb()?,
    };
    let server = backend::server(listener, &cfg)?;
    // Without TLS there is nothing to reload, but a SIGHUP (`systemctl reload`) must not
    // end the process, as it would without a handler.
    spawn_reload(
        reload.map(|r| ("backend TLS", r)).into_iter().collect(),
        None,
    )?;
    let base = format!("{scheme}://{addr}");
    let mode = match (args.dev, &args.tls_cert) {
        (true, _) => "DEV MODE: SetPersonRegister is on".to_owned(),
        (false, Some(_)) => format!(
            "production mode, mutual TLS; identity headers from CVR {}",
            args.trusted_client_cvr.join(", ")
        ),
        (false, None) => "production mode, plain HTTP: identity headers trusted as sent".to_owned(),
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

/// Raises the open-file limit toward the hard limit (connections are files); the figure
/// is logged either way.
fn raise_open_files(wanted: usize) {
    // Connections, plus upstream connections, files and the listener's backlog.
    let want = (wanted as u64).saturating_mul(2).saturating_add(256);
    match rlimit::increase_nofile_limit(want) {
        Ok(n) if n < wanted as u64 => tracing::warn!(
            open_files = n,
            max_connections = wanted,
            "the open-file limit is below max_connections; raise the hard limit (ulimit -Hn)"
        ),
        Ok(n) => tracing::info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// On SIGHUP: the TLS listener's certificate, key, CAs and CRLs, the proxy mode's CAs and
/// CRLs, and the agreements, read again. Each that fails keeps its old set and says why;
/// connections and calls in flight go on.
fn spawn_reload(
    tls: Vec<(&'static str, Arc<crate::tls::Reloadable>)>,
    door: Option<Arc<crate::door::Door>>,
) -> std::io::Result<actix_web::rt::task::JoinHandle<()>> {
    // One set can serve twice (in certificate mode the listener's is also the
    // forwarded-certificate trust): reloaded once.
    let mut sets: Vec<(&'static str, Arc<crate::tls::Reloadable>)> = Vec::new();
    for (what, t) in tls {
        if !sets.iter().any(|(_, s)| Arc::ptr_eq(s, &t)) {
            sets.push((what, t));
        }
    }
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(actix_web::rt::spawn(async move {
        while hup.recv().await.is_some() {
            if sets.is_empty() && door.is_none() {
                tracing::info!("SIGHUP: nothing to reload (no TLS)");
            }
            for (what, t) in &sets {
                match t.reload() {
                    Ok(()) => tracing::info!(what, "SIGHUP: reloaded"),
                    Err(e) => {
                        tracing::error!(what, error = %e, "SIGHUP: reload failed; the old set stays")
                    }
                }
            }
            if let Some(door) = &door {
                match door.reload() {
                    Ok(n) => tracing::info!(agreements = n, "SIGHUP: agreements reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: agreements reload failed; the old agreements stay")
                    }
                }
            }
        }
    }))
}

async fn run_serve(o: Overrides) -> Result<(), CliError> {
    let cfg = Config::load(&o)?;
    // Checked before anything starts: a configuration the builder would refuse must not
    // leave a backend listening.
    cfg.identity_mode()?;

    // The REST service: the configured one, or the reference backend on a loopback port.
    let mut embedded_backend = None;
    let rest_url = match &cfg.rest_url {
        Some(url) => url.to_string(),
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
                    tls: None,
                    // Stopped below, after the converter's calls have drained.
                    signals: false,
                    wsb: Default::default(),
                },
            )?;
            embedded_backend = Some(server.handle());
            actix_web::rt::spawn(server);
            seed(&url).await?;
            url
        }
    };
    let app = crate::app::app(&cfg, &rest_url)?;
    let (plan, mode, door) = (app.plan.clone(), app.mode, app.door.clone());

    // The usage aggregates reach the disk every 10 s and at shutdown; a shared store gets
    // this process's calls every second (they are spooled locally meanwhile), so that every
    // replica's /api/migration is at most a second behind the others.
    let usage = app.converter().usage.clone();
    let every = if usage.store().shared() { 1 } else { 10 };
    let persist = actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A failed write is logged and retried at the next tick.
            let u = usage.clone();
            let _ = tokio::task::spawn_blocking(move || u.persist(Clock::System.today())).await;
        }
    });
    let usage = app.converter().usage.clone();
    let scheme = app.scheme();
    let listener = bind(&cfg.listen)?;
    let addr = listener.local_addr()?;
    raise_open_files(cfg.max_connections);
    let routes = app.routes();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // actix bounds connections per worker thread.
    let per_worker = cfg.max_connections.div_ceil(workers).max(1);
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(workers)
        .max_connections(per_worker)
        // An answer's small TLS records must not wait for the client's delayed ACK (~40 ms
        // on a new connection after the session tickets; docs/performance.md, TLS).
        .tcp_nodelay(true)
        .on_connect(crate::tls::on_connect(app.listener_tls.clone()))
        .shutdown_timeout(10);
    let server = match &app.listener_tls {
        Some(t) => server.listen_rustls_0_23(listener, t.server_config()?)?,
        None => server.listen(listener)?,
    }
    .run();
    let reload = spawn_reload(app.reloadable(), Some(door.clone()))?;

    let base = format!("{scheme}://{addr}");
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
    writeln!(
        out,
        "  state (usage, WSRM queues): {}",
        app.converter().usage.store().describe()
    )?;
    match mode {
        crate::door::Mode::Header => writeln!(
            out,
            "  identity: header: WARNING identities are NOT verified; RequestUserMetadata is trusted as sent{}",
            if cfg.dev_mode() { " (dev mode)" } else { "" }
        )?,
        crate::door::Mode::Certificate => writeln!(
            out,
            "  identity: certificate: HTTPS, client certificates from {} CA file(s){}, {} connection agreements; SIGHUP reloads them",
            cfg.client_ca.len(),
            if cfg.client_crl.is_empty() {
                String::new()
            } else {
                format!(" and {} CRL file(s)", cfg.client_crl.len())
            },
            door.agreement_count()
        )?,
        crate::door::Mode::Proxy => writeln!(
            out,
            "  identity: proxy: client certificate from header {} of {}, {} connection agreements; SIGHUP reloads them",
            cfg.client_cert_header.as_ref().map_or("-", |h| h.as_str()),
            cfg.trusted_proxies
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            door.agreement_count()
        )?,
    }
    if let (Some(wsrm), Some(client)) = (app.converter().wsrm.clone(), app.wsb_client.clone()) {
        // In dev mode REST (the embedded backend) delivers to the listen address itself.
        let receiver = match &cfg.wsb_receiver_url {
            Some(u) => u.to_string(),
            None => {
                let mut local = addr;
                if local.ip().is_unspecified() {
                    local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("{scheme}://{local}/wsb")
            }
        };
        let keys: Vec<String> = wsrm.subscribers.iter().map(|s| s.key()).collect();
        writeln!(
            out,
            "  WSRM: queues for {} (WsrmService/3, WsrmMessageService/10); WSB receiver {receiver}",
            keys.join(", ")
        )?;
        let subscription = crate::wsrm::subscribe::Subscription {
            rest_url: rest_url.clone(),
            receiver_url: receiver,
            code: cfg.wsb_subscriber_code.clone(),
            prune_loopback: cfg.dev_mode(),
        };
        // Once before the start is announced, so that (in dev mode above all) no
        // registration made right after the start is written before the subscription
        // exists; if REST does not answer yet, in the background until it does.
        // Then checked every minute, and made again if it went (Subscription::keep).
        let known = match subscription.ensure(&client).await {
            Ok(id) => {
                tracing::info!(abonnement = %id, receiver = %subscription.receiver_url, "WSB subscription for the WSRM queues in place");
                Some(id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "WSB subscription not in place yet; retrying in the background");
                None
            }
        };
        actix_web::rt::spawn(subscription.keep(client, known, std::time::Duration::from_secs(60)));
        // Old messages dropped and the queue gauges refreshed every minute.
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                let w = wsrm.clone();
                let _ = tokio::task::spawn_blocking(move || w.housekeeping()).await;
            }
        });
    }
    match &cfg.rest_url {
        Some(url) => writeln!(
            out,
            "  REST upstream: {url}{}",
            if cfg.rest_client_cert.is_some() {
                " (mutual TLS)"
            } else {
                ""
            }
        )?,
        None => {
            writeln!(
                out,
                "  REST upstream: {rest_url} (embedded reference backend, DEV MODE, database {})",
                cfg.data_dir.join("vos-backend.db").display()
            )?;
            writeln!(out, "  REST API page: {rest_url}{API_PAGE}")?;
            writeln!(out, "  OpenAPI:       {rest_url}{OPENAPI_PATH}")?;
        }
    }
    let cutover = cfg.cutover_rules();
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
    if mode == crate::door::Mode::Header {
        tracing::warn!(
            dev_mode = cfg.dev_mode(),
            "identity mode header: callers are not verified"
        );
    }
    // SIGTERM/SIGINT: the listener stops accepting and the calls in flight finish (each
    // within its deadline; at most shutdown_timeout). Only then does the embedded backend
    // stop (the draining calls may still need it), then the usage is written, then exit 0.
    server.await?;
    reload.abort();
    if let Some(h) = embedded_backend {
        h.stop(true).await;
    }
    persist.abort();
    // Bounded: with the shared store unreachable each step would wait for it; what is not
    // added now is in the spool and added at the next start.
    let u = usage.clone();
    let written = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::task::spawn_blocking(move || u.persist(Clock::System.today())),
    )
    .await;
    match written {
        Ok(Ok(Ok(()))) => tracing::info!("stopped: calls drained, usage written"),
        _ if usage.store().shared() => tracing::warn!(
            "stopped: calls drained; the latest usage could not be added to the state store (it is in the spool, added at the next start)"
        ),
        _ => tracing::error!("stopped: calls drained; the usage could not be written"),
    }
    Ok(())
}
