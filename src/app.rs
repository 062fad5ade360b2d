//! The one builder. [`app`] turns a [`Config`] (and the REST service's address) into
//! everything the converter runs: the door, the REST client, the converter with its plan,
//! cutover, legacy services and usage, and the SOAP front's state. `serve` binds it to a
//! listener, `tests/golden.rs` binds it to a test listener with a fake REST service behind
//! it, and `benches/convert.rs` drives its converter's core directly; so none of them can
//! assemble the parts differently (axum's testing example, `fn app()`, is the model).
//!
//! What is not here is IO that outlives a call: the listener, the embedded reference
//! backend, the usage file's timer, the SIGHUP reload. Those belong to `cli::run_serve`.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::cli::CliError;
use crate::config::Config;
use crate::converter::{Converter, Legacy};
use crate::door::{Door, DoorConfig, Mode};
use crate::mapping::{self, Plan};
use crate::observe::usage::Usage;
use crate::soap::envelope::Limits;
use crate::soap::front::{self, FrontConfig, SoapState};
use crate::tls::{ClientTrust, Reloadable};
use crate::upstream::{Upstream, UpstreamConfig};

/// The converter's parts, built from the configuration.
pub struct App {
    /// The mappings, compiled and checked against their contracts.
    pub plan: Arc<Plan>,
    /// The SOAP front's state; it owns the converter.
    pub state: Arc<SoapState>,
    /// Who may call for whom.
    pub door: Arc<Door>,
    /// How callers are identified.
    pub mode: Mode,
    /// The HTTPS listener's certificate and client CAs (SIGHUP reloads them); `None`: HTTP.
    pub listener_tls: Option<Arc<Reloadable>>,
    /// What forwarded client certificates are verified against: the listener's client CAs,
    /// or in proxy mode without a listener certificate, the client CAs alone.
    pub forwarded_trust: Option<Arc<Reloadable>>,
    /// With WSRM subscribers: the client that makes the converter's WSB subscription at
    /// REST (with the REST hop's TLS).
    pub wsb_client: Option<reqwest::Client>,
}

impl App {
    /// The converter every SOAP call goes through.
    pub fn converter(&self) -> &Converter {
        &self.state.converter
    }

    /// The listener's scheme.
    pub fn scheme(&self) -> &'static str {
        if self.listener_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The routes of the SOAP endpoints, their WSDLs, the dashboard, the metrics and the
    /// health checks, for `App::new().configure(..)` on every worker.
    pub fn routes(&self) -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static {
        front::configure(self.state.clone())
    }

    /// The TLS material SIGHUP reloads, named for the log.
    pub fn reloadable(&self) -> Vec<(&'static str, Arc<Reloadable>)> {
        [
            ("listener TLS", self.listener_tls.clone()),
            ("forwarded-certificate trust", self.forwarded_trust.clone()),
        ]
        .into_iter()
        .filter_map(|(what, t)| Some((what, t?)))
        .collect()
    }
}

/// Everything the converter runs, from `cfg`, calling the REST service at `rest_url` (the
/// configured `rest_url`, or the embedded backend's loopback address in dev mode). The data
/// dir is created (the usage file lives there); nothing listens yet and no REST call is made.
pub fn app(cfg: &Config, rest_url: &str) -> Result<App, CliError> {
    Catalog::load()?;
    let plan = Arc::new(mapping::compile().map_err(CliError::Mapping)?);
    let mode = cfg.identity_mode()?;

    // The door: TLS material, the agreements, the trusted proxies.
    let trust = ClientTrust {
        ca: cfg.client_ca.clone(),
        crl: cfg.client_crl.clone(),
    };
    let listener_tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(Reloadable::new(
            Some((c.clone(), k.clone())),
            trust.clone(),
        )?),
        _ => None,
    };
    // Forwarded certificates are verified against the client CAs (required in proxy mode).
    let forwarded_trust = match (&listener_tls, mode, trust.ca.is_empty()) {
        (Some(t), _, _) => Some(t.clone()),
        (None, Mode::Proxy, false) => Some(Reloadable::new(None, trust)?),
        _ => None,
    };
    let door = Arc::new(Door::new(DoorConfig {
        mode,
        agreements: cfg.agreements.clone(),
        trusted_proxies: cfg.trusted_proxies.clone(),
        client_cert_header: cfg.client_cert_header.as_ref().map(|h| h.to_string()),
        trust: forwarded_trust.clone(),
    })?);

    let rest_tls = if cfg.rest_client_cert.is_some() || cfg.rest_ca.is_some() {
        let identity = cfg
            .rest_client_cert
            .as_deref()
            .zip(cfg.rest_client_key.as_deref());
        Some(crate::tls::client_config(identity, cfg.rest_ca.as_deref())?)
    } else {
        None
    };
    let rest_tls_for_wsb = rest_tls.clone();
    let upstream = Upstream::new(&UpstreamConfig {
        base_url: rest_url.to_owned(),
        connect_timeout: cfg.connect_timeout,
        request_timeout: cfg.upstream_timeout,
        codelist_ttl: cfg.codelist_ttl,
        max_connections: cfg.rest_max_connections,
        max_answer_bytes: cfg.max_upstream_bytes,
        idle_timeout: cfg.upstream_idle_timeout,
        tls: rest_tls,
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
        urls: cfg
            .legacy_url
            .iter()
            .map(|(s, u)| (s.clone(), u.to_string()))
            .collect(),
        shadow_compare: cfg.shadow_compare,
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| CliError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let store = crate::state::open(
        cfg.state_url.as_ref(),
        cfg.state_ca.as_deref(),
        cfg.state_pool_size,
        &cfg.data_dir,
        !cfg.wsrm_subscriber.is_empty(),
    )
    .map_err(CliError::Other)?;
    let usage = Usage::open(store.clone(), &cfg.data_dir).map_err(CliError::Other)?;
    let cutover = cfg.cutover_rules();
    let mut converter = Converter::new(plan.clone(), upstream, limits, door.clone())
        .with_cutover(cutover.clone())
        .with_legacy(legacy)
        .with_usage(usage);
    let mut wsb_client = None;
    if !cfg.wsrm_subscriber.is_empty() {
        let wsrm = wsrm(cfg, converter.metrics.clone(), store.clone())?;
        converter = converter.with_wsrm(Arc::new(wsrm));
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(tls) = &rest_tls_for_wsb {
            builder = builder.tls_backend_preconfigured(tls.clone());
        }
        wsb_client = Some(
            builder
                .build()
                .map_err(|e| CliError::Other(format!("the WSB subscription's client: {e}")))?,
        );
    }
    converter.metrics.set_dev_mode(cfg.dev_mode());
    let now = jiff::Timestamp::now();
    for (t, c, at) in cutover.overrides() {
        converter.metrics.set_past_cutover(t, c, now >= at);
    }
    let scheme = if listener_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let state = Arc::new(
        SoapState::new(
            converter,
            FrontConfig {
                max_body: cfg.max_body_bytes,
                body_timeout: cfg.body_timeout,
                public_url: cfg.public_url.as_ref().map(|u| u.to_string()),
                scheme,
                dev_mode: cfg.dev_mode(),
            },
        )
        .map_err(CliError::Other)?,
    );
    Ok(App {
        plan,
        state,
        door,
        mode,
        listener_tls,
        forwarded_trust,
        wsb_client,
    })
}

/// The legacy WSRM queues of the configured subscribers. Fails closed: outside dev mode the
/// receiver needs the REST service's certificate CVR to know whom to take events from, and
/// REST needs the receiver's address.
fn wsrm(
    cfg: &Config,
    metrics: Arc<crate::observe::metrics::Metrics>,
    store: Arc<dyn crate::state::StateStore>,
) -> Result<crate::wsrm::Wsrm, CliError> {
    use crate::wsrm::{Wsrm, WsrmSettings, receiver::Senders, route::Routing};
    let catalog = Catalog::load()?;
    for s in &cfg.wsrm_subscriber {
        if catalog.orgtype(s.organisation_type).is_none() {
            return Err(CliError::Other(format!(
                "wsrm_subscriber: {} is not an organisation type of mappings/organisationstyper.toml",
                s.organisation_type
            )));
        }
    }
    if !cfg.dev_mode() && (cfg.wsb_sender_cvr.is_empty() || cfg.wsb_receiver_url.is_none()) {
        return Err(CliError::Other(
            "wsrm_subscriber outside dev mode needs wsb_sender_cvr (the REST service's \
             certificate CVR: only its deliveries are taken) and wsb_receiver_url (where REST \
             delivers)"
                .into(),
        ));
    }
    if !cfg.dev_mode() && !matches!(cfg.identity_mode()?, Mode::Certificate | Mode::Proxy) {
        return Err(CliError::Other(
            "wsrm_subscriber outside dev mode needs identity = \"certificate\" or \"proxy\": \
             /wsb takes only deliveries whose certificate names wsb_sender_cvr"
                .into(),
        ));
    }
    let routing = Routing::load().map_err(CliError::Other)?;
    let base = cfg
        .public_url
        .as_ref()
        .map(|u| u.to_string().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    Ok(Wsrm {
        subscribers: cfg.wsrm_subscriber.clone(),
        routing,
        store,
        settings: WsrmSettings {
            sequence_timeout: cfg.wsrm_sequence_timeout,
            retention: cfg.wsrm_retention,
            message_endpoint: format!("{base}/WsrmMessageService/10"),
        },
        catalog,
        metrics,
        senders: Senders {
            cvrs: cfg.wsb_sender_cvr.clone(),
            dev_loopback: cfg.dev_mode(),
        },
    })
}
