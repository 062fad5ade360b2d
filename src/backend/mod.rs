//! The reference VisiteringOgStatus REST service (PersonVisiteringService v1): the rules of
//! rules.md over a SQLite store, served with actix-web, documented with utoipa.
//!
//! - `handlers`: one per operationId; decode → `rules` in one store transaction → encode.
//! - `rules`: the business rules; `access`: caller identity and the access rules.
//! - `store`: SQLite (WAL, durable commits, migrations).
//! - `error`: the one error type and its problem+json answer.
//!
//! The converter never calls into this module: it reaches the service over HTTP only.

pub mod access;
pub mod error;
pub mod handlers;
pub mod rules;
pub mod store;
pub mod wsb;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, error::JsonPayloadError, web};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::catalog::{Catalog, CatalogError, Fejl};
use crate::dktime::Clock;
use crate::vos::{self, *};
use error::{ApiError, problem};
use handlers::*;
use store::{Store, StoreError};

/// Largest JSON body accepted. The largest valid request is well under 1 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// Where the human API page and the OpenAPI document are served.
pub const API_PAGE: &str = "/api-docs/";
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The backend's Prometheus metrics (WSB delivery).
pub const METRICS_PATH: &str = "/metrics";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "VisiteringOgStatus PersonVisiteringService",
        version = "1",
        description = "Reference implementation of STAR's REST service for contact groups \
            (kontaktgrupper) and person categories (personkategorier), epic 1005.17.28. \
            Every operation takes the caller's identity in X-Organisation-Type, \
            X-Organisation-Code and X-User-Id. A CPR number travels in the body or in the \
            X-Cpr header, never in the URL. Errors are application/problem+json with \
            fejlkode and fejltekst (mappings/errors.toml). SetPersonRegister exists only \
            when the service runs with --dev. Changes are announced to WSB subscribers \
            (tag WSB): each event is POSTed as JSON to the subscriber's endpoint, in \
            sekvens order, at least once."
    ),
    paths(
        create_kontaktgruppe,
        create_kontaktgruppe_med_identifier,
        update_kontaktgruppe,
        get_kontaktgrupper,
        get_kontaktgruppe,
        get_kontaktgruppe_historik,
        create_personkategori,
        create_personkategori_med_identifier,
        update_personkategori,
        get_personkategorier,
        get_personkategori,
        get_personkategori_historik,
        get_status,
        get_kontaktgruppetyper,
        get_personkategorityper,
        set_person_register,
        wsb::api::create_wsb_abonnement,
        wsb::api::get_wsb_abonnementer,
        wsb::api::delete_wsb_abonnement,
        wsb::api::get_wsb_parkerede,
        wsb::api::create_wsb_genlevering,
        wsb::api::create_cpr_skift,
    ),
    components(schemas(Problem)),
    modifiers(&CommonParts),
)]
pub struct ApiDoc;

/// The caller's identity, on every operation (added by `CommonParts`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Identitet {
    /// Organisation type: 1 Jobcenter, 2 A-kasse, 3 Kommune, 4 Anden aktør, 5 STAR.
    #[param(rename = "X-Organisation-Type", minimum = 1, maximum = 255)]
    organisation_type: u8,
    /// Municipality number, a-kasse number or CVR: printable ASCII, 1-64 characters.
    #[param(
        rename = "X-Organisation-Code",
        min_length = 1,
        max_length = 64,
        pattern = "^[!-~]([ -~]*[!-~])?$"
    )]
    organisation_code: String,
    /// The user acting, when known: printable ASCII, 1-64 characters.
    #[param(
        rename = "X-User-Id",
        required = false,
        min_length = 1,
        max_length = 64,
        pattern = "^[!-~]([ -~]*[!-~])?$"
    )]
    user_id: String,
}

/// Adds what every operation has: the identity headers, and the problem+json answers.
struct CommonParts;

impl Modify for CommonParts {
    fn modify(&self, doc: &mut OpenApiDoc) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                add_common(op);
            }
        }
    }
}

fn add_common(op: &mut Operation) {
    let mut params: Vec<_> = Identitet::into_params(|| Some(ParameterIn::Header))
        .into_iter()
        .map(Into::into)
        .collect();
    params.extend(op.parameters.take().unwrap_or_default());
    op.parameters = Some(params);
    let mut statuses = vec![
        (400, "Invalid request"),
        (401, "No caller identity"),
        (403, "Access denied"),
        (404, "Unknown person, record or resource"),
        (500, "Internal failure; nothing was recorded"),
    ];
    if op.request_body.is_some() {
        statuses.extend([
            (409, "Conflict"),
            (413, "Body too large"),
            (415, "Body is not application/json"),
            (422, "Refused by a business rule"),
        ]);
    }
    for (status, description) in statuses {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .insert(status.to_string(), response.into());
    }
}

/// The OpenAPI document as served: without SetPersonRegister unless in dev mode.
pub fn openapi(dev: bool) -> OpenApiDoc {
    let mut doc = ApiDoc::openapi();
    if !dev {
        doc.paths
            .paths
            .shift_remove(&format!("{}/personregister", vos::BASE));
    }
    doc
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The SQLite file; created with its schema if missing.
    pub db: PathBuf,
    /// Serve SetPersonRegister (the admin API that feeds the access rules).
    pub dev: bool,
    /// Where "now" comes from; tests pin it.
    pub clock: Clock,
    /// Dev mode only: every answer leaves this much later (a stand-in for the network and
    /// load between a client and STAR's production REST service, for benchmarks).
    pub latency: Duration,
    /// HTTPS with required client certificates; absent: plain HTTP (the embedded dev
    /// backend on loopback).
    pub tls: Option<BackendTls>,
    /// Stops on SIGTERM/SIGINT itself. The backend embedded in `serve` does not: `serve`
    /// stops it after its own calls have drained, which may still need it.
    pub signals: bool,
    /// WSB delivery: timeouts, retries, the parking age, the client TLS.
    pub wsb: wsb::delivery::WsbSettings,
}

/// The backend's TLS: what it presents and trusts, and whose certificates may set the
/// identity headers.
#[derive(Debug, Clone)]
pub struct BackendTls {
    pub reloadable: std::sync::Arc<crate::tls::Reloadable>,
    /// CVRs of the certificates that may set `X-Organisation-*` (the converter's).
    pub trusted_cvrs: Vec<String>,
}

/// Whose certificates may set the identity headers, when the backend runs TLS, and the
/// trust their connections' certificates are re-verified under after a reload.
#[derive(Debug, Clone)]
pub struct TrustedCallers {
    pub cvrs: Vec<String>,
    pub tls: std::sync::Arc<crate::tls::Reloadable>,
}

/// Answers for what actix's extractors refuse, in the catalogue's terms.
fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::ContentType => ApiError::from(Fejl::UgyldigMedietype),
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            Fejl::ForStor.into()
        }
        JsonPayloadError::Deserialize(de) => {
            ApiError::with_detail(Fejl::UgyldigJson, json_detail(de))
        }
        _ => Fejl::UgyldigJson.into(),
    };
    e.into()
}

/// What to tell the caller about a JSON error without echoing values (serde's messages for
/// type errors quote the value, which can be a CPR number).
fn json_detail(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let names_only = msg.starts_with("missing field")
        || msg.starts_with("unknown field")
        || msg.starts_with("duplicate field");
    let what = match e.classify() {
        _ if names_only => msg.split(" at line").next().unwrap_or("").to_owned(),
        serde_json::error::Category::Syntax => "ugyldig JSON-syntaks".to_owned(),
        serde_json::error::Category::Eof => "JSON slutter for tidligt".to_owned(),
        serde_json::error::Category::Data => "et felt har forkert type eller værdi".to_owned(),
        serde_json::error::Category::Io => "kunne ikke læses".to_owned(),
    };
    format!("{what} (linje {}, kolonne {})", e.line(), e.column())
}

async fn not_found() -> HttpResponse {
    problem(Fejl::UkendtRessource, None)
}

async fn method_not_allowed() -> HttpResponse {
    problem(Fejl::MetodeIkkeTilladt, None)
}

/// One log line per request: method, route pattern (never a CPR: it is never in the URL),
/// status and time. Headers and bodies are never logged.
async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "(no route)".to_owned());
    let res = next.call(req).await?;
    tracing::info!(%method, route, status = res.status().as_u16(), micros = start.elapsed().as_micros() as u64, "request");
    Ok(res)
}

/// The service's routes, for an actix `App` (the server below, or a test).
pub fn configure(state: AppState, dev: bool) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        let b = vos::BASE;
        let resource =
            |path: String| web::resource(path).default_service(web::to(method_not_allowed));
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .content_type_required(true)
                    .error_handler(json_error),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| ApiError::from(Fejl::UgyldigParameter).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|_, _| ApiError::from(Fejl::UgyldigParameter).into()),
            )
            .service(
                resource(format!("{b}/kontaktgrupper"))
                    .post(create_kontaktgruppe)
                    .get(get_kontaktgrupper),
            )
            .service(
                resource(format!("{b}/kontaktgrupper/{{id}}"))
                    .put(create_kontaktgruppe_med_identifier)
                    .patch(update_kontaktgruppe)
                    .get(get_kontaktgruppe),
            )
            .service(resource(format!("{b}/kontaktgruppehistorik")).get(get_kontaktgruppe_historik))
            .service(
                resource(format!("{b}/personkategorier"))
                    .post(create_personkategori)
                    .get(get_personkategorier),
            )
            .service(
                resource(format!("{b}/personkategorier/{{id}}"))
                    .put(create_personkategori_med_identifier)
                    .patch(update_personkategori)
                    .get(get_personkategori),
            )
            .service(
                resource(format!("{b}/personkategorihistorik")).get(get_personkategori_historik),
            )
            .service(resource(format!("{b}/status")).get(get_status))
            .service(
                resource(format!("{b}/kodelister/kontaktgruppetyper")).get(get_kontaktgruppetyper),
            )
            .service(
                resource(format!("{b}/kodelister/personkategorityper"))
                    .get(get_personkategorityper),
            )
            .service(
                resource(format!("{b}/wsb/abonnementer"))
                    .post(wsb::api::create_wsb_abonnement)
                    .get(wsb::api::get_wsb_abonnementer),
            )
            .service(
                resource(format!("{b}/wsb/abonnementer/{{id}}"))
                    .delete(wsb::api::delete_wsb_abonnement),
            )
            .service(resource(format!("{b}/wsb/parkerede")).get(wsb::api::get_wsb_parkerede))
            .service(
                resource(format!("{b}/wsb/genleveringer")).post(wsb::api::create_wsb_genlevering),
            )
            .service(resource(format!("{b}/personnummerskift")).post(wsb::api::create_cpr_skift))
            .service(resource(METRICS_PATH.to_owned()).get(metrics));
        if dev {
            cfg.service(resource(format!("{b}/personregister")).put(set_person_register));
        }
        cfg.service(SwaggerUi::new(format!("{API_PAGE}{{_:.*}}")).url(OPENAPI_PATH, openapi(dev)));
    }
}

/// Opens the store and returns the state the handlers share.
pub fn state(cfg: &BackendConfig) -> Result<AppState, BackendError> {
    let catalog = Catalog::load()?;
    let store = Store::open(&cfg.db)?;
    let signals = wsb::delivery::Signals::default();
    store.on_commit(signals.hook());
    Ok(AppState {
        store,
        clock: cfg.clock,
        catalog,
        dev: cfg.dev,
        wsb: signals,
    })
}

/// The backend's Prometheus metrics (WSB delivery), OpenMetrics text.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.wsb.metrics.encode())
}

/// Starts the service on `listener`. The returned server runs when awaited; it drains
/// in-flight requests for up to 10 s on SIGTERM or SIGINT.
pub fn server(listener: TcpListener, cfg: &BackendConfig) -> Result<Server, BackendError> {
    let state = state(cfg)?;
    wsb::delivery::start(
        state.store.clone(),
        state.catalog,
        state.clock,
        cfg.wsb.clone(),
        state.wsb.clone(),
    )
    .map_err(|e| std::io::Error::other(format!("WSB client: {e}")))?;
    let routes = configure(state, cfg.dev);
    let latency = if cfg.dev { cfg.latency } else { Duration::ZERO };
    let trusted = cfg.tls.as_ref().map(|t| {
        web::Data::new(TrustedCallers {
            cvrs: t.trusted_cvrs.clone(),
            tls: t.reloadable.clone(),
        })
    });
    let server = HttpServer::new(move || {
        let trusted = trusted.clone();
        App::new()
            .configure(move |c| {
                if let Some(t) = trusted {
                    c.app_data(t);
                }
            })
            .wrap(actix_web::middleware::Condition::new(
                !latency.is_zero(),
                actix_web::middleware::from_fn(move |req, next: Next<_>| async move {
                    // Asleep without holding the worker: other requests go on meanwhile.
                    tokio::time::sleep(latency).await;
                    next.call(req).await
                }),
            ))
            .wrap(actix_web::middleware::from_fn(access_log))
            .configure(routes.clone())
            .default_service(web::to(not_found))
    })
    // Small answers leave at once, not after the client's delayed ACK (docs/performance.md).
    .tcp_nodelay(true)
    .on_connect(crate::tls::on_connect(
        cfg.tls.as_ref().map(|t| t.reloadable.clone()),
    ))
    .shutdown_timeout(10);
    let server = if cfg.signals {
        server
    } else {
        server.disable_signals()
    };
    let server = match &cfg.tls {
        Some(t) => server.listen_rustls_0_23(
            listener,
            t.reloadable
                .server_config()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        )?,
        None => server.listen(listener)?,
    }
    .run();
    Ok(server)
}
