//! The load generator of `scripts/bench.sh tls`: wrk's job for HTTPS with a client
//! certificate, which wrk cannot present.
//!
//! ```sh
//! cargo run --release --example tls_load -- --url https://127.0.0.1:PORT \
//!     --ca ca.pem --cert star.pem --key star-key.pem --kind soap_read \
//!     --connections 32 --duration 10 2901801001 3003802002
//! ```
//!
//! It sends the requests of `scripts/bench/wrk.lua` (the same kinds, bodies, headers and
//! CPR numbers; the organisation is given with `--org-type`/`--org-code`, so that it is one a
//! certificate's agreement covers) on `--connections` connections, each its own task that
//! sends one request after the other, for `--duration` seconds, and prints one line
//!
//! ```text
//! BENCHJSON {"requests":..,"duration_us":..,"non2xx":..,"errors":..,"p50_us":.., ...}
//! ```
//!
//! with wrk.lua's fields (what `scripts/bench.sh` and `summarize.py` read) and the
//! connections it opened: how many, how many TLS handshakes were resumed, and the TCP connect
//! and TLS handshake times.
//!
//! Two ways to use a connection:
//!
//! - keep-alive (`--requests-per-connection 0`, the default): every task opens its
//!   connection (and sends `--warmup-requests` untimed requests on it) before the clock
//!   starts, then reuses it; what wrk does;
//! - reconnects (`--requests-per-connection N`): every N requests a task drops its connection
//!   and opens a new one, inside the timed request that needs it, so a request's latency
//!   includes the TCP connect and the TLS handshake. With `--resumption on` (rustls' default:
//!   an in-memory store of the server's TLS 1.3 tickets, shared by all tasks) a reconnect
//!   resumes the session (no certificates sent or verified, no signatures); with
//!   `--resumption off` (`Resumption::disabled()`) every reconnect is a full handshake.
//!   Whether a handshake was resumed is read from rustls (`handshake_kind()`), not assumed.
//!
//! Latency is measured from the request's start to the end of its answer's body, as wrk does
//! (no coordinated-omission correction). A status outside 2xx is counted (`non2xx`, the first
//! three bodies printed on stderr); a failed connect, a broken connection and a request taking
//! more than `--timeout` seconds are errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::Resumption;
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "HTTPS load with a client certificate: wrk.lua's requests, as BENCHJSON")]
struct Args {
    /// https://HOST:PORT of the converter (SOAP kinds) or the REST backend (REST kinds).
    #[arg(long)]
    url: String,
    /// The CA the server's certificate chains to (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// The client certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Its key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// One of wrk.lua's kinds: soap_read, rest_kontaktgrupper, rest_personkategorier,
    /// rest_status, soap_create, rest_create.
    #[arg(long)]
    kind: String,
    /// Connections, one task each.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Runtime threads (wrk's -t).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A request taking longer than this many seconds is a timeout error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// 0: keep-alive; N: a new connection every N requests.
    #[arg(long, default_value_t = 0)]
    requests_per_connection: u64,
    /// TLS session resumption (on: rustls' in-memory ticket store; off: every handshake full).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    resumption: String,
    /// Untimed requests per task before the clock starts (with reconnects the last one leaves
    /// a ticket in the store).
    #[arg(long, default_value_t = 2)]
    warmup_requests: u64,
    /// The creates' block of fictitious CPR numbers (wrk.lua's SLOT, 0..83).
    #[arg(long, default_value_t = 0)]
    slot: u64,
    /// RequestUserMetadata's OrganisationType / X-Organisation-Type.
    #[arg(long, default_value = "5")]
    org_type: String,
    /// RequestUserMetadata's OrganisationCode / X-Organisation-Code.
    #[arg(long, default_value = "12345678")]
    org_code: String,
    /// UserIdentifier / X-User-Id.
    #[arg(long, default_value = "bench")]
    user: String,
    /// The CPR numbers the reads cycle over (seeded persons).
    cprs: Vec<String>,
}

const API: &str = "/personvisitering/v1";
/// CPR numbers per (slot, wrk thread) in wrk.lua; this client takes wrk's 15 thread blocks
/// of a slot as one range (block 15 is client.py's).
const BLOCK: u64 = 250_000;

// ---------------------------------------------------------------------------------------
// The requests (scripts/bench/wrk.lua)

#[derive(Clone)]
struct Prepared {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

struct Requests {
    authority: String,
    fixed: Vec<Prepared>,
    /// Creates: the next CPR number's index and the end of the range.
    counter: AtomicU64,
    counter_end: u64,
    create: Option<bool>, // Some(true): soap_create, Some(false): rest_create
    args_org: Org,
}

/// RequestUserMetadata: OrganisationType, OrganisationCode, UserIdentifier (and the REST
/// identity headers).
struct Org {
    ty: String,
    code: String,
    user: String,
}

/// One read kind's request for one CPR number.
type BuildRead = fn(&Org, &str) -> Result<Prepared, Error>;

fn header(map: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), Error> {
    map.insert(HeaderName::from_static(name), HeaderValue::from_str(value)?);
    Ok(())
}

fn soap_envelope(org: &Org, ns_decl: &str, body: &str) -> String {
    let Org { ty, code, user } = org;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:dfdg=\"urn:dk:star:dfdg:common:1\" {ns_decl}>\n\
         \x20 <soapenv:Header>\n\
         \x20   <dfdg:RequestUserMetadata>\n\
         \x20     <dfdg:OrganisationType>{ty}</dfdg:OrganisationType>\n\
         \x20     <dfdg:OrganisationCode>{code}</dfdg:OrganisationCode>\n\
         \x20     <dfdg:UserIdentifier>{user}</dfdg:UserIdentifier>\n\
         \x20   </dfdg:RequestUserMetadata>\n\
         \x20 </soapenv:Header>\n\
         \x20 <soapenv:Body>\n{body}  </soapenv:Body>\n\
         </soapenv:Envelope>\n"
    )
}

fn soap_headers(action: &str) -> Result<HeaderMap, Error> {
    let mut h = HeaderMap::new();
    header(&mut h, "content-type", "text/xml; charset=utf-8")?;
    header(&mut h, "soapaction", action)?;
    Ok(h)
}

fn soap_read(org: &Org, cpr: &str) -> Result<Prepared, Error> {
    let body = soap_envelope(
        org,
        "xmlns:pss=\"urn:dk:star:dfdg:PersonStatusService:20\"",
        &format!(
            "    <pss:GetVariablePersonStatusRequest>\n\
             \x20     <pss:PersonCivilRegistrationIdentifier>{cpr}</pss:PersonCivilRegistrationIdentifier>\n\
             \x20   </pss:GetVariablePersonStatusRequest>\n"
        ),
    );
    Ok(Prepared {
        method: Method::POST,
        path: "/PersonStatusService/20".into(),
        headers: soap_headers(
            "\"urn:dk:star:dfdg:PersonStatusService:20/GetVariablePersonStatus\"",
        )?,
        body: Bytes::from(body),
    })
}

fn rest_get(org: &Org, path: &str, cpr: &str) -> Result<Prepared, Error> {
    let Org { ty, code, user } = org;
    let mut h = HeaderMap::new();
    header(&mut h, "x-organisation-type", ty)?;
    header(&mut h, "x-organisation-code", code)?;
    header(&mut h, "x-user-id", user)?;
    header(&mut h, "x-cpr", cpr)?;
    Ok(Prepared {
        method: Method::GET,
        path: path.into(),
        headers: h,
        body: Bytes::new(),
    })
}

fn soap_create(org: &Org, cpr: &str) -> Result<Prepared, Error> {
    let body = soap_envelope(
        org,
        "xmlns:prs=\"urn:dk:star:dfdg:PersonRegistrationService:9\"",
        &format!(
            "    <prs:CreateContactGroupRequest>\n\
             \x20     <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\n\
             \x20     <prs:ContactGroup>\n\
             \x20       <prs:ContactGroupTypeIdentifier>1</prs:ContactGroupTypeIdentifier>\n\
             \x20       <prs:ContactGroupStartTime>2025-01-06T00:00:00+01:00</prs:ContactGroupStartTime>\n\
             \x20       <prs:ContactGroupEventTime>2025-01-06T09:30:00+01:00</prs:ContactGroupEventTime>\n\
             \x20     </prs:ContactGroup>\n\
             \x20   </prs:CreateContactGroupRequest>\n"
        ),
    );
    Ok(Prepared {
        method: Method::POST,
        path: "/PersonRegistrationService/9".into(),
        headers: soap_headers(
            "\"urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup\"",
        )?,
        body: Bytes::from(body),
    })
}

/// The same registration as the REST call the converter makes for soap_create.
fn rest_create(org: &Org, cpr: &str) -> Result<Prepared, Error> {
    let Org { ty, code, user } = org;
    let mut h = HeaderMap::new();
    header(&mut h, "content-type", "application/json")?;
    header(&mut h, "x-organisation-type", ty)?;
    header(&mut h, "x-organisation-code", code)?;
    header(&mut h, "x-user-id", user)?;
    Ok(Prepared {
        method: Method::POST,
        path: format!("{API}/kontaktgrupper"),
        headers: h,
        body: Bytes::from(format!(
            "{{\"cpr\":\"{cpr}\",\"kontaktgruppetype\":1,\"startdato\":\"2025-01-06\",\
             \"haendelsestidspunkt\":\"2025-01-06T08:30:00Z\"}}"
        )),
    })
}

/// The k-th fictitious CPR number: day 01-28, month 01-12, then six digits (wrk.lua's).
fn cpr_of(k: u64) -> String {
    let day = k % 28 + 1;
    let month = (k / 28) % 12 + 1;
    let rest = k / 336;
    format!("{day:02}{month:02}{rest:06}")
}

impl Requests {
    fn new(args: &Args, authority: String) -> Result<Requests, Error> {
        let org = Org {
            ty: args.org_type.clone(),
            code: args.org_code.clone(),
            user: args.user.clone(),
        };
        let read: Option<BuildRead> = match args.kind.as_str() {
            "soap_read" => Some(soap_read),
            "rest_kontaktgrupper" => {
                Some(|o, c| rest_get(o, &format!("{API}/kontaktgrupper?kunAktuelle=true"), c))
            }
            "rest_personkategorier" => {
                Some(|o, c| rest_get(o, &format!("{API}/personkategorier?kunAktuelle=true"), c))
            }
            "rest_status" => Some(|o, c| rest_get(o, &format!("{API}/status"), c)),
            _ => None,
        };
        let create = match args.kind.as_str() {
            "soap_create" => Some(true),
            "rest_create" => Some(false),
            _ => None,
        };
        let mut fixed = Vec::new();
        if let Some(build) = read {
            if args.cprs.is_empty() {
                return Err(format!("{} needs CPR numbers", args.kind).into());
            }
            for c in &args.cprs {
                fixed.push(build(&org, c)?);
            }
        } else if create.is_none() {
            return Err(format!("unknown kind {}", args.kind).into());
        }
        let start = args.slot * 16 * BLOCK;
        let counter_end = start + 15 * BLOCK;
        if counter_end > 336_000_000 {
            return Err(format!("slot {} is past the CPR number space", args.slot).into());
        }
        Ok(Requests {
            authority,
            fixed,
            counter: AtomicU64::new(start),
            counter_end,
            create,
            args_org: org,
        })
    }

    /// The `i`-th request of a task (reads cycle over the CPR numbers, as wrk.lua does per
    /// thread; creates take the next fresh number).
    fn request(&self, i: usize) -> Result<Request<Full<Bytes>>, Error> {
        let p = match self.create {
            Some(soap) => {
                let k = self.counter.fetch_add(1, Ordering::Relaxed);
                if k >= self.counter_end {
                    return Err("used up this slot's CPR numbers; use a shorter run".into());
                }
                let cpr = cpr_of(k);
                if soap {
                    soap_create(&self.args_org, &cpr)?
                } else {
                    rest_create(&self.args_org, &cpr)?
                }
            }
            None => self.fixed[i % self.fixed.len()].clone(),
        };
        let uri: Uri = format!("https://{}{}", self.authority, p.path).parse()?;
        let mut req = Request::builder()
            .method(p.method)
            .uri(uri)
            .body(Full::new(p.body))?;
        *req.headers_mut() = p.headers;
        Ok(req)
    }
}

// ---------------------------------------------------------------------------------------
// The connections: TCP, then rustls with the client certificate; each handshake recorded

#[derive(Debug, Clone, Copy)]
struct Handshake {
    tcp_us: u64,
    tls_us: u64,
    resumed: bool,
}

#[derive(Default)]
struct Connections {
    /// Only handshakes while the clock runs are recorded.
    measuring: AtomicBool,
    recorded: Mutex<Vec<Handshake>>,
    failed: AtomicU64,
}

#[derive(Clone)]
struct Connector {
    addr: SocketAddr,
    name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    connections: Arc<Connections>,
}

/// A TLS stream hyper can use (hyper-util's `Connection` is implemented here, not on a
/// foreign type).
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for Tls {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

type ConnectFuture =
    Pin<Box<dyn std::future::Future<Output = std::io::Result<TokioIo<Tls>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Tls>;
    type Error = std::io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let result = async {
                let t0 = Instant::now();
                let tcp = TcpStream::connect(this.addr).await?;
                tcp.set_nodelay(true)?;
                let t1 = Instant::now();
                let tls = this.tls.connect(this.name.clone(), tcp).await?;
                let t2 = Instant::now();
                let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                if this.connections.measuring.load(Ordering::Relaxed) {
                    let h = Handshake {
                        tcp_us: micros(t1 - t0),
                        tls_us: micros(t2 - t1),
                        resumed,
                    };
                    this.connections
                        .recorded
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(h);
                }
                Ok(TokioIo::new(Tls(tls)))
            }
            .await;
            if result.is_err() {
                this.connections.failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn client_config(args: &Args) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(c?)?;
    }
    let chain = CertificateDer::pem_file_iter(&args.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    if args.resumption == "off" {
        cfg.resumption = Resumption::disabled();
    }
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------
// The load

#[derive(Default)]
struct TaskResult {
    latencies_us: Vec<u64>,
    non2xx: u64,
    errors_connect: u64,
    errors_read: u64,
    errors_timeout: u64,
    reported: u64,
}

type Http = Client<Connector, Full<Bytes>>;

fn new_client(connector: &Connector) -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(connector.clone())
}

enum Outcome {
    Ok(u16, Bytes),
    /// The connect or the TLS handshake failed (the error and its causes).
    Connect(String),
    /// The connection broke during the exchange.
    Broken(String),
    Timeout,
}

/// An error and its causes in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn send(client: &Http, req: Request<Full<Bytes>>, timeout: Duration) -> Outcome {
    let call = async {
        match client.request(req).await {
            Ok(res) => {
                let status = res.status().as_u16();
                match res.into_body().collect().await {
                    Ok(body) => Outcome::Ok(status, body.to_bytes()),
                    Err(e) => Outcome::Broken(chain(&e)),
                }
            }
            Err(e) if e.is_connect() => Outcome::Connect(chain(&e)),
            Err(e) => Outcome::Broken(chain(&e)),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Outcome::Timeout)
}

struct Shared {
    requests: Requests,
    connector: Connector,
    per_connection: u64,
    warmup: u64,
    timeout: Duration,
    kind: String,
}

async fn task(
    shared: Arc<Shared>,
    ready: tokio::sync::mpsc::Sender<()>,
    mut go: tokio::sync::watch::Receiver<Option<Instant>>,
) -> Result<TaskResult, Error> {
    let mut out = TaskResult::default();
    let mut client = new_client(&shared.connector);
    let mut i = 0usize;
    // Untimed: the connection (keep-alive) or a ticket in the store (reconnects).
    for _ in 0..shared.warmup {
        match send(&client, shared.requests.request(i)?, shared.timeout).await {
            Outcome::Ok(status, _) if (200..300).contains(&status) => {}
            Outcome::Ok(status, body) => {
                return Err(format!(
                    "{} warm-up answered {status}: {}",
                    shared.kind,
                    String::from_utf8_lossy(&body[..body.len().min(400)])
                )
                .into());
            }
            Outcome::Connect(e) | Outcome::Broken(e) => {
                return Err(format!("{}: warm-up request failed: {e}", shared.kind).into());
            }
            Outcome::Timeout => {
                return Err(format!("{}: warm-up request timed out", shared.kind).into());
            }
        }
        i += 1;
    }
    if shared.per_connection > 0 {
        client = new_client(&shared.connector);
    }
    ready.send(()).await?;
    drop(ready);
    let end = loop {
        if let Some(start) = *go.borrow_and_update() {
            break start;
        }
        go.changed().await?;
    };
    let mut on_this_connection = 0u64;
    while Instant::now() < end {
        if shared.per_connection > 0 && on_this_connection == shared.per_connection {
            client = new_client(&shared.connector);
            on_this_connection = 0;
        }
        let req = shared.requests.request(i)?;
        i += 1;
        on_this_connection += 1;
        let t0 = Instant::now();
        let outcome = send(&client, req, shared.timeout).await;
        let us = micros(t0.elapsed());
        match outcome {
            Outcome::Ok(status, body) => {
                out.latencies_us.push(us);
                if !(200..300).contains(&status) {
                    out.non2xx += 1;
                    let text = String::from_utf8_lossy(&body[..body.len().min(400)]);
                    report(
                        &mut out,
                        &shared.kind,
                        &format!("answered {status}: {text}"),
                    );
                }
            }
            Outcome::Connect(e) => {
                out.errors_connect += 1;
                report(&mut out, &shared.kind, &e);
                client = new_client(&shared.connector);
                on_this_connection = 0;
            }
            Outcome::Broken(e) => {
                out.errors_read += 1;
                report(&mut out, &shared.kind, &e);
                client = new_client(&shared.connector);
                on_this_connection = 0;
            }
            Outcome::Timeout => {
                out.errors_timeout += 1;
                report(&mut out, &shared.kind, "timed out");
                client = new_client(&shared.connector);
                on_this_connection = 0;
            }
        }
    }
    Ok(out)
}

/// The first three problems of a task, on stderr.
fn report(out: &mut TaskResult, kind: &str, what: &str) {
    if out.reported < 3 {
        out.reported += 1;
        eprintln!("tls_load: {kind}: {what}");
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The smallest value with at least q of the values at or below it.
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean_stdev(xs: &[u64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

async fn run(args: Args) -> Result<serde_json::Value, Error> {
    let uri: Uri = args.url.parse()?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{}: an https:// URL is needed", args.url).into());
    }
    let host = uri.host().ok_or("the URL names no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let authority = uri
        .authority()
        .ok_or("the URL names no host")?
        .as_str()
        .to_owned();
    let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await?
        .next()
        .ok_or("the URL's host does not resolve")?;
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
    let connections = Arc::new(Connections::default());
    let connector = Connector {
        addr,
        name,
        tls: tokio_rustls::TlsConnector::from(Arc::new(client_config(&args)?)),
        connections: connections.clone(),
    };
    let shared = Arc::new(Shared {
        requests: Requests::new(&args, authority)?,
        connector,
        per_connection: args.requests_per_connection,
        warmup: args.warmup_requests,
        timeout: Duration::from_secs_f64(args.timeout),
        kind: args.kind.clone(),
    });
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.connections.max(1));
    let (go_tx, go_rx) = tokio::sync::watch::channel(None);
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        tasks.push(tokio::spawn(task(
            shared.clone(),
            ready_tx.clone(),
            go_rx.clone(),
        )));
    }
    drop(ready_tx);
    // Every task connected (and warmed up): the clock starts.
    while ready_rx.recv().await.is_some() {}
    connections.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    go_tx.send(Some(start + Duration::from_secs_f64(args.duration)))?;
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await??);
    }
    let elapsed = start.elapsed();
    connections.measuring.store(false, Ordering::Relaxed);

    let mut lat: Vec<u64> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let (mean, stdev) = mean_stdev(&lat);
    let sum = |f: fn(&TaskResult) -> u64| results.iter().map(f).sum::<u64>();
    let (e_connect, e_read, e_timeout) = (
        sum(|r| r.errors_connect),
        sum(|r| r.errors_read),
        sum(|r| r.errors_timeout),
    );
    let hs = connections
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut tls: Vec<u64> = hs.iter().map(|h| h.tls_us).collect();
    tls.sort_unstable();
    let mut tcp: Vec<u64> = hs.iter().map(|h| h.tcp_us).collect();
    tcp.sort_unstable();
    let resumed = hs.iter().filter(|h| h.resumed).count();
    let (tls_mean, _) = mean_stdev(&tls);
    let (tcp_mean, _) = mean_stdev(&tcp);
    Ok(serde_json::json!({
        "requests": lat.len(),
        "duration_us": micros(elapsed),
        "non2xx": sum(|r| r.non2xx),
        "errors": e_connect + e_read + e_timeout,
        "errors_connect": e_connect,
        "errors_read": e_read,
        "errors_write": 0,
        "errors_timeout": e_timeout,
        "mean_us": (mean * 10.0).round() / 10.0,
        "stdev_us": (stdev * 10.0).round() / 10.0,
        "max_us": lat.last().copied().unwrap_or(0),
        "p50_us": percentile(&lat, 0.50),
        "p90_us": percentile(&lat, 0.90),
        "p99_us": percentile(&lat, 0.99),
        "p999_us": percentile(&lat, 0.999),
        "loadgen": "tls_load",
        "resumption": args.resumption,
        "requests_per_connection": args.requests_per_connection,
        "connections_opened": hs.len(),
        "connections_failed": connections.failed.load(Ordering::Relaxed),
        "handshakes_resumed": resumed,
        "handshakes_full": hs.len() - resumed,
        "tls_handshake_mean_us": (tls_mean * 10.0).round() / 10.0,
        "tls_handshake_p50_us": percentile(&tls, 0.50),
        "tls_handshake_p90_us": percentile(&tls, 0.90),
        "tls_handshake_p99_us": percentile(&tls, 0.99),
        "tcp_connect_mean_us": (tcp_mean * 10.0).round() / 10.0,
        "tcp_connect_p50_us": percentile(&tcp, 0.50),
    }))
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let summary = runtime.block_on(run(args))?;
    println!("BENCHJSON {summary}");
    Ok(())
}
