//! The converter's HTTP front: one actix resource per legacy endpoint (from the mappings),
//! `POST` for SOAP calls, `GET ?wsdl` for the WSDL. The body is read with a size limit before
//! any parsing; everything after that is `converter::Converter::convert`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::wsdl::{WsdlTemplate, client_base};
use crate::catalog::Fejl;
use crate::converter::downstream::Pickup;
use crate::converter::downstream::STREAM_THRESHOLD;
use crate::converter::{Arrival, Converter, Downstream, Head, Piece, Reply};
use crate::mapping::wsdl::Wsdl;
use crate::tls::PeerCert;

/// How the front reads requests.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Largest body accepted (900503 above).
    pub max_body: usize,
    /// How long a body may take to arrive (408 with 900513 after).
    pub body_timeout: Duration,
    /// The WSDLs' fixed address (`public_url`); unset, the client's (no-store).
    pub public_url: Option<String>,
    /// The listener's own scheme: `https` with TLS.
    pub scheme: &'static str,
    /// Dev mode: REST is the embedded reference backend (`/readyz` says so).
    pub dev_mode: bool,
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            public_url: None,
            scheme: "http",
            dev_mode: false,
        }
    }
}

pub struct SoapState {
    pub converter: Converter,
    wsdl: HashMap<String, WsdlTemplate>,
    front: FrontConfig,
}

impl SoapState {
    pub fn new(converter: Converter, front: FrontConfig) -> Result<SoapState, String> {
        let mut wsdl = HashMap::new();
        for s in &converter.plan.services {
            let parsed = Wsdl::parse(s.wsdl_text).map_err(|e| format!("{}: {e}", s.wsdl_file))?;
            wsdl.insert(
                s.endpoint.clone(),
                WsdlTemplate::new(s.wsdl_text, &parsed.addresses),
            );
        }
        Ok(SoapState {
            converter,
            wsdl,
            front,
        })
    }
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Every value of a header, in order.
fn header_values<'r>(req: &'r HttpRequest, name: &str) -> Vec<&'r str> {
    req.headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The last value of a header: the one the nearest (trusted) proxy set.
fn last_header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(name)
        .next_back()
        .and_then(|v| v.to_str().ok())
}

/// A SOAP call. Its work runs on this worker thread, in the handler while it answers whole
/// (the usual small answer: returned by the work, no channel), or, once a large read's answer
/// starts to stream, in a future the response's body owns (`Answering`), so that its chunks
/// leave while REST is still sending.
async fn post(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Arc<SoapState>>,
) -> HttpResponse {
    if state.converter.plan.service(req.path()).is_none() {
        return HttpResponse::NotFound().finish();
    }
    let pickup = Pickup::default();
    let request_id = Rc::new(Cell::new(None));
    let work = answer(req, payload, state, pickup.clone(), request_id.clone());
    let mut answering = Answering {
        work: Some(Box::pin(work)),
        whole: None,
        pickup,
        rx: None,
    };
    let Some((head, streams)) = std::future::poll_fn(|cx| answering.poll_head(cx)).await else {
        // The work ended without an answer: it cannot (every path answers or sends a head).
        return HttpResponse::InternalServerError().finish();
    };
    let mut res = HttpResponse::build(
        StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    res.content_type(head.content_type.as_ref());
    if let Some(id) = request_id.take() {
        res.insert_header(("X-Request-Id", id));
    }
    if head.status == 408 {
        // The rest of the body is not read: the connection cannot be reused.
        res.force_close();
    }
    match head.whole {
        Some(body) if !streams => res.body(body),
        _ => res.streaming(answering),
    }
}

/// The work of one SOAP call: reads the body and converts it. A whole answer is returned; a
/// streamed one (a large read) goes to the `Downstream` made on `pickup` (a head, then
/// chunks), and nothing is returned.
async fn answer(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Arc<SoapState>>,
    pickup: Pickup,
    request_id: Rc<Cell<Option<String>>>,
) -> Option<Head> {
    let c = &state.converter;
    let service = c.plan.service(req.path())?;
    // What the connection presents (its TLS certificate, or a trusted proxy's header),
    // read before the body; the door decides on it once the claim is read.
    let presented = c.door.presented(
        req.peer_addr().map(|a| a.ip()),
        req.conn_data::<PeerCert>(),
        |name| header_values(&req, name),
    );
    // The call's facts known now, found once: service, version and action, trace, deadline.
    let arrival = Arrival::new(
        service,
        header(&req, "content-type").unwrap_or_default(),
        header(&req, "soapaction"),
        c.trace(header(&req, "traceparent")),
        presented,
    )
    // The WSRM inventory names WsrmMessageService's address as this client reaches it.
    .with_base_url((service.name == "WsrmService").then(|| base_url(&req, &state).0));
    request_id.set(Some(arrival.trace.trace_id()));
    let max_body = state.front.max_body;
    let body = tokio::time::timeout(state.front.body_timeout, payload.to_bytes_limited(max_body));
    let reply = match body.await {
        Err(_) => Reply::Whole(c.refuse(
            &arrival,
            408,
            Fejl::ForespoergselForLangsom,
            Some(format!(
                "indholdet kom ikke inden for {} ms",
                state.front.body_timeout.as_millis()
            )),
        )),
        Ok(Ok(Ok(body))) => {
            let mut down = Downstream::new(pickup, STREAM_THRESHOLD);
            c.convert(&arrival, body, &mut down).await
        }
        Ok(Ok(Err(_))) => Reply::Whole(c.refuse(
            &arrival,
            400,
            Fejl::UgyldigXml,
            Some("forespørgslen blev afbrudt".into()),
        )),
        Ok(Err(_)) => Reply::Whole(c.refuse(
            &arrival,
            413,
            Fejl::DokumentOverGraense,
            Some(format!("mere end {max_body} bytes")),
        )),
    };
    match reply {
        Reply::Whole(outcome) => Some(Head {
            status: outcome.status,
            content_type: outcome.content_type,
            whole: Some(outcome.body),
        }),
        Reply::Streamed(_) => None,
    }
}

/// The call's work and, once its answer streams, the receiver of its pieces. As a response
/// body it drives the work: each poll advances the work (on this worker thread, no task of
/// its own) and hands on what it sent. Dropped (the caller went away), it drops the work,
/// whose guards record how far it came.
struct Answering {
    work: Option<Pin<Box<dyn Future<Output = Option<Head>>>>>,
    /// The whole answer the work returned, until `poll_head` hands it on.
    whole: Option<Head>,
    pickup: Pickup,
    rx: Option<mpsc::Receiver<Piece>>,
}

impl Answering {
    /// Polls the work once, if it still runs. A whole answer it returns is kept in `whole`
    /// whichever poll sees it: `poll_head` and `poll_piece` both advance the work, and a head
    /// dropped by one of them would leave the call without an answer.
    fn advance(&mut self, cx: &mut Context<'_>) {
        if let Some(work) = &mut self.work
            && let Poll::Ready(whole) = work.as_mut().poll(cx)
        {
            // Its sender is dropped with it: the receiver ends after what was sent.
            self.work = None;
            self.whole = whole;
        }
    }

    /// The answer's head: returned whole by the work (`false`), or the first piece of a
    /// streamed answer (`true`); `None` if the work ended with neither.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Head, bool)>> {
        match self.poll_piece(cx) {
            Poll::Ready(Some(Piece::Head(head))) => Poll::Ready(Some((head, true))),
            _ if self.whole.is_some() => Poll::Ready(self.whole.take().map(|h| (h, false))),
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next piece of a streamed answer, advancing the work first.
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Piece>> {
        self.advance(cx);
        if self.rx.is_none() {
            self.rx = self.pickup.borrow_mut().take();
        }
        match &mut self.rx {
            Some(rx) => rx.poll_recv(cx),
            // No piece was sent; with the work still running, one may come.
            None if self.work.is_some() => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

impl Stream for Answering {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_piece(cx) {
            Poll::Ready(Some(Piece::Chunk(b))) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(Some(Piece::Abort)) => Poll::Ready(Some(Err(std::io::Error::other(
                "the answer was cut off: an upstream failure after its head",
            )))),
            // A head comes first and only once.
            Poll::Ready(Some(Piece::Head(_))) | Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn get(req: HttpRequest, state: web::Data<Arc<SoapState>>) -> HttpResponse {
    let wants_wsdl = req
        .query_string()
        .split('&')
        .any(|p| p.eq_ignore_ascii_case("wsdl") || p.to_ascii_lowercase().starts_with("wsdl="));
    let Some(template) = state.wsdl.get(req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    if !wants_wsdl {
        return HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "SOAP endpoint. POST SOAP 1.1 or 1.2 requests here; the WSDL is at {}?wsdl\n",
                req.path()
            ));
    }
    let mut res = HttpResponse::Ok();
    res.content_type("text/xml; charset=utf-8");
    let (base, derived) = base_url(&req, &state);
    if derived {
        // Derived from the request: a cache must not hand it to another client.
        res.insert_header(("Cache-Control", "no-store"));
    }
    res.body(template.render(&base).to_string())
}

/// The converter's address as the client reaches it: `public_url` (fixed), or derived from
/// the request (`true`): its own Host, X-Forwarded-* only from a trusted proxy.
fn base_url(req: &HttpRequest, state: &SoapState) -> (String, bool) {
    match &state.front.public_url {
        // Fixed by config: the same for every client, cacheable.
        Some(url) => (url.trim_end_matches('/').to_owned(), false),
        None => {
            // The request's own Host (not actix's ConnectionInfo, which applies forwarded
            // headers without checking them); X-Forwarded-* only from a trusted proxy.
            let local = req.app_config().host().to_owned();
            let host = header(req, "host").unwrap_or(&local);
            let trusted = state
                .converter
                .door
                .trusts_forwarding(req.peer_addr().map(|a| a.ip()));
            let forwarded = |name| {
                if trusted {
                    last_header(req, name)
                } else {
                    None
                }
            };
            let base = client_base(
                state.front.scheme,
                host,
                forwarded("x-forwarded-proto"),
                forwarded("x-forwarded-host"),
            );
            (base, true)
        }
    }
}

async fn index(state: web::Data<Arc<SoapState>>) -> HttpResponse {
    let mut out = String::from("vos-converter: SOAP endpoints\n");
    for s in &state.converter.plan.services {
        out.push_str(&format!(
            "  {} v{}: {} (WSDL: {}?wsdl)\n",
            s.name, s.version, s.endpoint, s.endpoint
        ));
    }
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(out)
}

async fn metrics(state: web::Data<Arc<SoapState>>) -> HttpResponse {
    if let Some(wsrm) = state.converter.wsrm.clone() {
        let now = jiff::Timestamp::now().as_millisecond();
        let _ = web::block(move || wsrm.refresh_gauges(now)).await;
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body({
            let c = &state.converter;
            c.metrics
                .refresh_cutover(&c.cutover, jiff::Timestamp::now());
            c.metrics.encode()
        })
}

/// `POST /wsb`: a WSB delivery from the REST service (only from it: its certificate, or
/// loopback in dev mode), queued for the legacy WSRM subscribers before the 2xx.
async fn wsb(req: HttpRequest, body: Bytes, state: web::Data<Arc<SoapState>>) -> HttpResponse {
    let c = &state.converter;
    let Some(wsrm) = c.wsrm.clone() else {
        return HttpResponse::NotFound().finish();
    };
    let peer = req.peer_addr().map(|a| a.ip());
    let presented = c.door.presented(peer, req.conn_data::<PeerCert>(), |name| {
        header_values(&req, name)
    });
    if !wsrm.senders.allows(&presented, peer) {
        tracing::warn!(peer = ?peer, "WSB delivery refused: not the REST service");
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("only the REST service delivers WSB events here\n");
    }
    match web::block(move || crate::wsrm::receiver::accept(&wsrm, &body)).await {
        Ok(Ok(_)) => HttpResponse::NoContent().finish(),
        Ok(Err(crate::wsrm::receiver::Refused::Invalid(why))) => {
            tracing::warn!(error = %why, "WSB delivery refused");
            HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(format!("{why}\n"))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "WSB delivery not queued");
            HttpResponse::ServiceUnavailable().finish()
        }
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// Ready when the mappings are loaded (they are, or the process would not run) and the
/// REST service answers (`Upstream::ready`: at most one probe a second, within the bound on
/// REST connections). Says how callers are identified, and loudly when they are not.
async fn readyz(state: web::Data<Arc<SoapState>>) -> HttpResponse {
    let door = &state.converter.door;
    let identity = if door.verifies() {
        format!(
            "identity: {} ({} connection agreements)\n",
            door.mode().as_str(),
            door.agreement_count()
        )
    } else {
        "identity: header: WARNING identities are NOT verified (RequestUserMetadata is trusted as sent)\n".to_owned()
    };
    let identity = if state.front.dev_mode {
        format!(
            "{identity}mode: DEV MODE: REST is the embedded reference backend with fictitious data\n"
        )
    } else {
        identity
    };
    let store = state.converter.usage.store().clone();
    // What kind of store, not where: /readyz is reachable by every caller the load
    // balancer lets in (the start-up lines name the database).
    let stored = if store.shared() {
        "state: PostgreSQL (shared by replicas)\n"
    } else {
        "state: local files (one process)\n"
    };
    // A shared store is a dependency: without it the replica cannot serve WSRM or show the
    // shared usage, so the load balancer should send its calls elsewhere. The probe runs on
    // the blocking pool (at most one a second, `StateStore::ready`).
    let store_ready = if store.shared() {
        web::block(move || store.ready())
            .await
            .map_err(|e| crate::state::StateError(e.to_string()))
            .and_then(|r| r)
    } else {
        Ok(())
    };
    let rest_ready = state.converter.upstream.ready().await;
    let text = |s: &str| {
        HttpResponse::build(if rest_ready && store_ready.is_ok() {
            actix_web::http::StatusCode::OK
        } else {
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        })
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(format!("{s}\n{identity}{stored}"))
    };
    match (rest_ready, &store_ready) {
        (true, Ok(())) => text("ready: mappings loaded, REST answers, the state store answers"),
        (false, Ok(())) => text("not ready: REST does not answer"),
        (true, Err(e)) => text(&format!("not ready: the state store does not answer ({e})")),
        (false, Err(e)) => text(&format!(
            "not ready: REST does not answer; the state store does not answer ({e})"
        )),
    }
}

/// `GET /api/migration`: the usage, and with WSRM every configured subscriber's queue (depth
/// 0 when it has none; `null` when the queue store cannot be read).
async fn migration(state: web::Data<Arc<SoapState>>) -> HttpResponse {
    let c = &state.converter;
    let now = jiff::Timestamp::now();
    let st = state.get_ref().clone();
    let snapshot = web::block(move || {
        let c = &st.converter;
        c.usage
            .snapshot(&c.cutover, crate::catalog::Catalog::load().ok(), now)
    })
    .await
    .map_err(|e| crate::state::StateError(e.to_string()))
    .and_then(|r| r);
    let mut m = match snapshot {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "/api/migration: the state store cannot be read");
            return own_problem(crate::catalog::Fejl::TilstandUtilgaengelig);
        }
    };
    if let Some(wsrm) = &c.wsrm {
        let store = wsrm.store.clone();
        let at = now.as_millisecond();
        let stats = web::block(move || store.stats(at))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .inspect_err(|e| {
                tracing::warn!(error = %e, "WSRM: cannot read the queue depth for /api/migration");
            })
            .ok();
        m.wsrm = wsrm
            .subscribers
            .iter()
            .map(|s| {
                let key = s.key();
                let (depth, oldest_age_secs) = match &stats {
                    Some(stats) => stats
                        .iter()
                        .find(|st| st.subscriber == key)
                        .map_or((Some(0), Some(0.0)), |st| {
                            (Some(st.depth as u64), Some(st.oldest_age_secs))
                        }),
                    None => (None, None),
                };
                crate::observe::usage::WsrmQueue {
                    subscriber: key,
                    organisation_type: s.organisation_type.to_string(),
                    organisation_type_name: wsrm
                        .catalog
                        .orgtype(s.organisation_type)
                        .map_or_else(|| "ukendt".to_owned(), |o| o.navn.clone()),
                    organisation_code: s.organisation_code.clone(),
                    depth,
                    oldest_age_secs,
                }
            })
            .collect();
    }
    HttpResponse::Ok().json(m)
}

/// A catalogue error as problem+json (RFC 9457, the fields REST's problems have), for the
/// converter's own JSON endpoints.
fn own_problem(fejl: crate::catalog::Fejl) -> HttpResponse {
    let e = fejl.entry();
    let status = actix_web::http::StatusCode::from_u16(e.status)
        .unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({
            "type": format!("urn:dk:star:vos:fejl:{}", e.code),
            "title": e.text,
            "status": status.as_u16(),
            "fejlkode": e.code,
            "fejltekst": e.text,
        }))
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(crate::observe::dashboard::PAGE)
}

async fn chart_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(crate::observe::dashboard::CHART_JS)
}

/// The SOAP routes, for an actix `App`.
pub fn configure(state: Arc<SoapState>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.app_data(web::Data::new(state.clone()));
        for s in &state.converter.plan.services {
            cfg.service(
                web::resource(s.endpoint.as_str())
                    .route(web::post().to(post))
                    .route(web::get().to(get))
                    .default_service(web::to(|| async {
                        HttpResponse::MethodNotAllowed()
                            .insert_header(("Allow", "GET, POST"))
                            .finish()
                    })),
            );
        }
        if state.converter.wsrm.is_some() {
            cfg.service(web::resource("/wsb").route(web::post().to(wsb)));
        }
        cfg.service(web::resource("/").route(web::get().to(index)))
            .service(web::resource("/metrics").route(web::get().to(metrics)))
            .service(web::resource("/healthz").route(web::get().to(healthz)))
            .service(web::resource("/readyz").route(web::get().to(readyz)))
            .service(web::resource("/api/migration").route(web::get().to(migration)))
            .service(web::resource("/dashboard").route(web::get().to(dashboard)))
            .service(web::resource("/dashboard/chart.js").route(web::get().to(chart_js)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A work that is not ready at its first poll and is at its second (as WSRM's work on
    /// the blocking pool can finish between two polls).
    fn ready_at_second_poll() -> Pin<Box<dyn Future<Output = Option<Head>>>> {
        let mut polled = false;
        Box::pin(std::future::poll_fn(move |cx| {
            if polled {
                Poll::Ready(Some(Head {
                    status: 200,
                    content_type: "text/xml".into(),
                    whole: Some(b"<answer/>".to_vec()),
                }))
            } else {
                polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }))
    }

    /// `poll_head` and `poll_piece` both advance the work: a whole answer that one of
    /// them sees is the head, whichever it is (it used to be dropped when the second poll,
    /// inside `poll_piece`, saw it: an empty 500 for an answered call).
    #[test]
    fn a_whole_answer_ready_between_two_polls_is_the_head() {
        let mut answering = Answering {
            work: Some(ready_at_second_poll()),
            whole: None,
            pickup: Pickup::default(),
            rx: None,
        };
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut polls = 0;
        let got = loop {
            polls += 1;
            assert!(polls < 5, "no head after {polls} polls");
            if let Poll::Ready(got) = answering.poll_head(&mut cx) {
                break got;
            }
        };
        let (head, streams) = got.expect("the whole answer");
        assert!(!streams);
        assert_eq!(head.status, 200);
        assert_eq!(head.whole.as_deref(), Some(&b"<answer/>"[..]));
    }
}
