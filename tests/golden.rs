#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden-file tests of the converter, data-driven in the style of rust-analyzer: one
//! `check()` runs every case under `tests/golden/<Service>-<version>/<case>/`, and
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expectations.
//!
//! A case is a folder:
//!
//! - `request.xml`: the SOAP request as a client sends it, byte for byte;
//! - `request.toml`: `content_type`, optional `soap_action` (the SOAPAction header as sent,
//!   quotes included), optional `traceparent` (sent to the converter; the upstream calls must
//!   continue its trace), optional `cutover` (the converter's cutover, a date or an
//!   xs:dateTime as in the `cutover` setting; without it the setting's default,
//!   2025-03-01, which is past: reads call no REST), optional
//!   `description`;
//! - `upstream.json`: the REST exchanges the converter is expected to make. Each `response`
//!   is an INPUT: what the fake REST service answers. Each `request` is an EXPECTATION: what
//!   the converter sent (method, path with query, the headers of `RECORDED_HEADERS`, the
//!   JSON body or null). A `null` request is "not recorded yet". The fake answers a call
//!   with the first unused exchange whose request has the call's method and path (query
//!   included), else with the first unused exchange whose request is `null`, else with a
//!   501. The number of exchanges is an expectation too: a call more (a retry, a read nobody
//!   asked for) or a call less fails the case. The order of the file is the order of the
//!   calls for operations that make their calls one after the other (PRS: code list, read,
//!   write); a read (PSS, PHS) makes one call per collection concurrently, so for its
//!   operations the order is not checked, only that every exchange was called once (write
//!   a read case's requests with their method and path: `null` ones are taken in the order
//!   the calls arrive). `UPDATE_GOLDEN=1` keeps the file's order, fills in each exchange's
//!   request from the call it answered, drops exchanges no call took and adds the calls no
//!   exchange answered (with a 501 to replace);
//! - `response.toml` (`status`, `content_type`) and `response.xml`: the SOAP answer. The
//!   answer's own `wsa:MessageID` is random and is normalised to `NIL_MESSAGE_ID`. The file
//!   holds the answer with a line break and indentation between adjacent tags (the converter
//!   writes none) so that it can be read; the comparison removes them again and compares the
//!   rest byte for byte.
//!
//! - `wsrm.json` (WSRM cases, issue 16): `subscribers` (the `wsrm_subscriber` setting),
//!   `events` (WSB events POSTed to the converter's `/wsb` first, as the REST service
//!   delivers them) and optional `sequence_for` (`"TYPE:CODE"`: a CreateSequence is made as
//!   that organisation first, and its SequenceIdentifier replaces `{{SequenceIdentifier}}`
//!   in `request.xml`). The answer's SequenceIdentifier of a CreateSequence is random and
//!   is normalised to the nil UUID, the converter's address in it to `CONVERTER_BASE`.
//!
//! Every case gets its own fake REST service (a real HTTP server) and its own converter,
//! built by `app::app` as `serve` builds it, so the code-list cache starts empty: a create that
//! checks a code list fetches it first, and that GET is the case's first exchange.
//!
//! Every upstream call must carry a valid W3C `traceparent` (all of one SOAP request in one
//! trace); that is asserted, not stored, because span ids are random.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vos_converter::app;
use vos_converter::config::Config;
use vos_converter::mapping::{self, Behaviour, Plan};

/// The request headers of an upstream call that `upstream.json` records (lower-case).
const RECORDED_HEADERS: [&str; 5] = [
    "x-organisation-type",
    "x-organisation-code",
    "x-user-id",
    "x-cpr",
    "content-type",
];

/// What the converter's own address (a random port) in an answer is replaced with.
const CONVERTER_BASE: &str = "http://converter.invalid";

/// What the answer's random `wsa:MessageID` is replaced with before comparing.
const NIL_MESSAGE_ID: &str = "urn:uuid:00000000-0000-0000-0000-000000000000";

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn update_mode() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0")
}

// ---- The fixture files ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestMeta {
    content_type: String,
    soap_action: Option<String>,
    traceparent: Option<String>,
    cutover: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
}

/// `wsrm.json`: the WSRM queue a case starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsrmSetup {
    subscribers: Vec<String>,
    #[serde(default)]
    events: Vec<Value>,
    sequence_for: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ResponseMeta {
    status: u16,
    content_type: String,
}

/// One REST call the converter made: the expectation half of an exchange.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct UpstreamRequest {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// What the fake REST service answers: the input half of an exchange. A JSON content type
/// sends `body` as JSON; any other sends a string `body` as it is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Canned {
    status: u16,
    content_type: String,
    #[serde(default)]
    body: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Exchange {
    request: Option<UpstreamRequest>,
    response: Canned,
}

struct Case {
    name: String,
    dir: PathBuf,
    endpoint: String,
    /// Whether the operation makes its REST calls one after the other, so that the order of
    /// `upstream.json` is checked. A read's calls run concurrently: in any order.
    ordered: bool,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_if_exists(path: &Path) -> Option<String> {
    path.exists().then(|| read(path))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn compile_plan() -> Plan {
    mapping::compile().unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("the mappings do not compile:\n{}", lines.join("\n"))
    })
}

/// Every case folder, with the endpoint of its service folder (`<name>-<version>`) and
/// whether its operation (the folder name up to the first `-`) calls REST in order.
fn cases(plan: &Plan) -> Vec<Case> {
    let mut out = Vec::new();
    for service_dir in subdirs(&golden_root()) {
        let service = file_name(&service_dir);
        let plan_service = plan
            .services
            .iter()
            .find(|s| format!("{}-{}", s.name, s.version) == service)
            .unwrap_or_else(|| panic!("tests/golden/{service}: no mapped service of that name"));
        for dir in subdirs(&service_dir) {
            let case = file_name(&dir);
            let op = case.split('-').next().unwrap_or_default();
            let ordered = !plan_service
                .operations
                .iter()
                .any(|o| o.name == op && matches!(o.behaviour, Behaviour::Read(_)));
            out.push(Case {
                name: format!("{service}/{case}"),
                dir,
                endpoint: plan_service.endpoint.clone(),
                ordered,
            });
        }
    }
    out
}

// ---- Servers on ephemeral ports, each in its own thread and actix System ----

struct Running {
    base: String,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start<F>(build: F) -> Running
    where
        F: FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = build(listener).unwrap();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().unwrap();
        Running {
            base,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the fake REST service saw of one call.
#[derive(Debug)]
struct Seen {
    request: UpstreamRequest,
    traceparent: Option<String>,
    /// The exchange of `upstream.json` that answered it; `None`: no exchange was left (501).
    answered_by: Option<usize>,
}

/// The fake's script: per exchange of `upstream.json`, the method and path its request
/// names (`None` for a request not recorded yet), its answer, and whether a call took it.
struct Scripted {
    key: Option<(String, String)>,
    answer: Canned,
    used: bool,
}

#[derive(Default)]
struct Fake {
    script: Vec<Scripted>,
    seen: Vec<Seen>,
}

impl Fake {
    /// The exchange that answers a call: the first unused one with the call's method and
    /// path, else the first unused one not recorded yet.
    fn take(&mut self, method: &str, path: &str) -> Option<usize> {
        let matching = self.script.iter().position(|s| {
            !s.used
                && s.key
                    .as_ref()
                    .is_some_and(|(m, p)| m == method && p == path)
        });
        let i = matching.or_else(|| self.script.iter().position(|s| !s.used && s.key.is_none()))?;
        self.script[i].used = true;
        Some(i)
    }
}

/// The answer to a call `upstream.json` has no response for.
fn unscripted() -> Canned {
    Canned {
        status: 501,
        content_type: "text/plain; charset=utf-8".into(),
        body: Value::String("golden: upstream.json has no response left for this call".into()),
    }
}

async fn fake_rest(
    req: HttpRequest,
    body: web::Bytes,
    fake: web::Data<Mutex<Fake>>,
) -> HttpResponse {
    let mut headers = BTreeMap::new();
    for name in RECORDED_HEADERS {
        let values: Vec<String> = req
            .headers()
            .get_all(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !values.is_empty() {
            headers.insert(name.to_owned(), values.join(", "));
        }
    }
    let traceparent = req
        .headers()
        .get("traceparent")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    let request = UpstreamRequest {
        method: req.method().as_str().to_owned(),
        path,
        headers,
        body,
    };
    let answer = {
        let mut fake = fake.lock().unwrap();
        let answered_by = fake.take(&request.method, &request.path);
        let answer = answered_by.map_or_else(unscripted, |i| fake.script[i].answer.clone());
        fake.seen.push(Seen {
            request,
            traceparent,
            answered_by,
        });
        answer
    };
    let status = actix_web::http::StatusCode::from_u16(answer.status).unwrap();
    let bytes = match (&answer.body, answer.content_type.contains("json")) {
        (Value::Null, _) => Vec::new(),
        (Value::String(s), false) => s.clone().into_bytes(),
        (v, _) => serde_json::to_vec(v).unwrap(),
    };
    HttpResponse::build(status)
        .content_type(answer.content_type.as_str())
        .body(bytes)
}

/// The converter as `serve` builds it in dev mode (`app::app` from the default settings),
/// calling `rest_base`, its data dir in `data`; with `cutover`, that cutover instead of the
/// default.
fn start_converter(
    rest_base: &str,
    cutover: Option<jiff::Timestamp>,
    data: &Path,
    wsrm: &WsrmSetup,
) -> Running {
    let mut cfg = Config::defaults().unwrap();
    cfg.data_dir = data.to_owned();
    if let Some(at) = cutover {
        cfg.cutover = at;
    }
    cfg.wsrm_subscriber = wsrm
        .subscribers
        .iter()
        .map(|s| vos_converter::wsrm::Subscriber::parse(s).unwrap())
        .collect();
    let app = app::app(&cfg, rest_base).unwrap();
    let routes = app.routes();
    Running::start(move |listener| {
        Ok(
            HttpServer::new(move || App::new().configure(routes.clone()))
                .workers(1)
                .listen(listener)?
                .run(),
        )
    })
}

fn start_fake(exchanges: &[Exchange]) -> (Running, web::Data<Mutex<Fake>>) {
    let script = exchanges
        .iter()
        .map(|e| Scripted {
            key: e
                .request
                .as_ref()
                .map(|r| (r.method.clone(), r.path.clone())),
            answer: e.response.clone(),
            used: false,
        })
        .collect();
    let fake = web::Data::new(Mutex::new(Fake {
        script,
        seen: Vec::new(),
    }));
    let data = fake.clone();
    let running = Running::start(move |listener| {
        Ok(HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(fake_rest))
        })
        .workers(1)
        .listen(listener)?
        .run())
    });
    (running, fake)
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn send_soap(url: &str, meta: &RequestMeta, body: Vec<u8>) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .timeout(Duration::from_secs(30))
            .header("content-type", meta.content_type.as_str())
            .body(body);
        if let Some(a) = &meta.soap_action {
            req = req.header("SOAPAction", a.as_str());
        }
        if let Some(t) = &meta.traceparent {
            req = req.header("traceparent", t.as_str());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = res.bytes().await.unwrap();
        let body = String::from_utf8(bytes.to_vec())
            .unwrap_or_else(|_| panic!("the answer is not UTF-8: {bytes:?}"));
        Answer {
            status,
            content_type,
            body,
        }
    })
}

// ---- Normalising and showing XML ----

/// Replaces the text of every `wsa:MessageID` element (the answer's own, random) with
/// `NIL_MESSAGE_ID`, after checking it is a `urn:uuid:` with a valid UUID.
/// The events of `wsrm.json` delivered to the converter's `/wsb`; with `sequence_for`, a
/// CreateSequence as that organisation, its SequenceIdentifier put into the request.
fn prepare_wsrm(base: &str, wsrm: &WsrmSetup, request: Vec<u8>) -> Vec<u8> {
    if wsrm.subscribers.is_empty() {
        return request;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        for ev in &wsrm.events {
            let r = client
                .post(format!("{base}/wsb"))
                .json(ev)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 204, "a wsrm.json event was not taken");
        }
        let Some(who) = &wsrm.sequence_for else {
            return request;
        };
        let (t, code) = who.split_once(':').unwrap();
        let envelope = format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:d="urn:dk:star:dfdg:common:1" xmlns:w="urn:dk:star:dfdg:WsrmService:3"><s:Header><d:RequestUserMetadata><d:OrganisationType>{t}</d:OrganisationType><d:OrganisationCode>{code}</d:OrganisationCode></d:RequestUserMetadata></s:Header><s:Body><w:CreateSequenceRequest/></s:Body></s:Envelope>"#
        );
        let answer = client
            .post(format!("{base}/WsrmService/3"))
            .header("content-type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"urn:dk:star:dfdg:WsrmService:3/CreateSequence\"")
            .body(envelope)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let id = answer
            .split("SequenceIdentifier>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_else(|| panic!("no SequenceIdentifier in {answer}"));
        String::from_utf8(request)
            .unwrap()
            .replace("{{SequenceIdentifier}}", id)
            .into_bytes()
    })
}

/// A CreateSequence answer's SequenceIdentifier (random) as the nil UUID.
fn normalise_sequence_id(xml: &str) -> String {
    let Some(i) = xml.find("SequenceIdentifier>") else {
        return xml.to_owned();
    };
    let start = i + "SequenceIdentifier>".len();
    match xml[start..].find('<') {
        Some(len) if uuid::Uuid::parse_str(&xml[start..start + len]).is_ok() => format!(
            "{}{}{}",
            &xml[..start],
            uuid::Uuid::nil(),
            &xml[start + len..]
        ),
        _ => xml.to_owned(),
    }
}

fn normalise_message_id(xml: &str, problems: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find("<wsa:MessageID") {
        let Some(open_end) = rest[i..].find('>').map(|j| i + j + 1) else {
            break;
        };
        let Some(close) = rest[open_end..]
            .find("</wsa:MessageID>")
            .map(|j| open_end + j)
        else {
            break;
        };
        let id = &rest[open_end..close];
        out.push_str(&rest[..open_end]);
        let valid = id.strip_prefix("urn:uuid:").is_some_and(|s| {
            uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
        });
        if valid {
            out.push_str(NIL_MESSAGE_ID);
        } else {
            problems.push(format!(
                "the answer's wsa:MessageID {id:?} is not urn:uuid:<uuid>"
            ));
            out.push_str(id);
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// A line break and two spaces per level between adjacent tags (`><`); nothing else changes.
fn pretty_xml(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() * 2);
    let mut depth = 0usize;
    let pieces: Vec<&str> = xml.split("><").collect();
    let n = pieces.len();
    for (i, piece) in pieces.iter().enumerate() {
        let mut seg = String::new();
        if i > 0 {
            seg.push('<');
        }
        seg.push_str(piece);
        if i + 1 < n {
            seg.push('>');
        }
        let closing = seg.starts_with("</");
        if closing {
            depth = depth.saturating_sub(1);
        }
        if i > 0 {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
        out.push_str(&seg);
        let opening = !closing
            && !seg.starts_with("<?")
            && !seg.starts_with("<!")
            && !seg.ends_with("/>")
            && !seg.contains("</");
        if opening {
            depth += 1;
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The inverse of `pretty_xml`: drops a line break and the spaces after it between a `>`
/// and a `<`, and the final line break.
fn compact_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            out.push_str(line);
            continue;
        }
        let trimmed = line.trim_start_matches(' ');
        if out.ends_with('>') && trimmed.starts_with('<') {
            out.push_str(trimmed);
        } else {
            out.push('\n');
            out.push_str(line);
        }
    }
    out
}

/// A line diff (longest common subsequence): `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "    {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "  - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "  + {}", b[j]);
            j += 1;
        }
    }
    out
}

fn to_json_text<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

// ---- The check ----

/// `00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero; gives the trace id.
fn trace_id(traceparent: &str) -> Option<&str> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    ok.then_some(parts[1])
}

fn check_traces(meta: &RequestMeta, seen: &[Seen], problems: &mut Vec<String>) {
    let mut traces = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        match s.traceparent.as_deref().map(|t| (t, trace_id(t))) {
            Some((_, Some(id))) => traces.push(id.to_owned()),
            Some((t, None)) => problems.push(format!(
                "upstream call {} ({} {}) has an invalid traceparent {t:?}",
                i + 1,
                s.request.method,
                s.request.path
            )),
            None => problems.push(format!(
                "upstream call {} ({} {}) has no traceparent",
                i + 1,
                s.request.method,
                s.request.path
            )),
        }
    }
    traces.dedup();
    if traces.len() > 1 {
        problems.push(format!(
            "the upstream calls of one SOAP request are in different traces: {traces:?}"
        ));
    }
    let sent = meta.traceparent.as_deref().and_then(trace_id);
    if let (Some(sent), Some(got)) = (sent, traces.first())
        && sent != got
    {
        problems.push(format!(
            "the upstream calls do not continue the caller's trace {sent}: {got}"
        ));
    }
}

/// Runs one case; `Err` says what differs, file by file.
fn check(case: &Case, update: bool) -> Result<(), String> {
    let request_xml = std::fs::read(case.dir.join("request.xml"))
        .unwrap_or_else(|e| panic!("{}: request.xml: {e}", case.name));
    let meta: RequestMeta = toml::from_str(&read(&case.dir.join("request.toml")))
        .unwrap_or_else(|e| panic!("{}: request.toml: {e}", case.name));
    let upstream_path = case.dir.join("upstream.json");
    let exchanges: Vec<Exchange> = match read_if_exists(&upstream_path) {
        Some(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: upstream.json: {e}", case.name)),
        None => Vec::new(),
    };
    let response_meta_path = case.dir.join("response.toml");
    let response_xml_path = case.dir.join("response.xml");
    let expected_meta: Option<ResponseMeta> = read_if_exists(&response_meta_path).map(|t| {
        toml::from_str(&t).unwrap_or_else(|e| panic!("{}: response.toml: {e}", case.name))
    });
    let expected_xml = read_if_exists(&response_xml_path);

    let cutover = meta.cutover.as_deref().map(|c| {
        vos_converter::config::parse_instant(c).unwrap_or_else(|| {
            panic!(
                "{}: request.toml: cutover {c:?} is neither a date nor an xs:dateTime",
                case.name
            )
        })
    });
    let wsrm: WsrmSetup = read_if_exists(&case.dir.join("wsrm.json"))
        .map(|t| {
            serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: wsrm.json: {e}", case.name))
        })
        .unwrap_or_default();
    let (fake_server, fake) = start_fake(&exchanges);
    let data = tempfile::tempdir().unwrap();
    let converter = start_converter(&fake_server.base, cutover, data.path(), &wsrm);
    let request_xml = prepare_wsrm(&converter.base, &wsrm, request_xml);
    let answer = send_soap(
        &format!("{}{}", converter.base, case.endpoint),
        &meta,
        request_xml,
    );
    let converter_base = converter.base.clone();
    drop(converter);
    drop(fake_server);
    let seen = std::mem::take(&mut fake.lock().unwrap().seen);

    let mut problems = Vec::new();
    check_traces(&meta, &seen, &mut problems);
    let body = normalise_sequence_id(&normalise_message_id(&answer.body, &mut problems))
        .replace(&converter_base, CONVERTER_BASE);
    let actual_meta = ResponseMeta {
        status: answer.status,
        content_type: answer.content_type.clone(),
    };

    // Per exchange of the file, the call it answered; then the calls no exchange answered.
    let answered: Vec<Option<&Seen>> = (0..exchanges.len())
        .map(|i| seen.iter().find(|s| s.answered_by == Some(i)))
        .collect();
    let unanswered: Vec<&Seen> = seen.iter().filter(|s| s.answered_by.is_none()).collect();

    if update {
        // The file's order is kept (a read's concurrent calls arrive in any order); an
        // exchange no call took is dropped, a call no exchange answered is added.
        let rewritten: Vec<Exchange> = exchanges
            .iter()
            .zip(&answered)
            .filter_map(|(e, s)| {
                s.map(|s| Exchange {
                    request: Some(s.request.clone()),
                    response: e.response.clone(),
                })
            })
            .chain(unanswered.iter().map(|s| Exchange {
                request: Some(s.request.clone()),
                response: unscripted(),
            }))
            .collect();
        if exchanges.len() != rewritten.len() {
            eprintln!(
                "golden: {}: upstream.json had {} exchanges, the converter made {} calls; rewritten",
                case.name,
                exchanges.len(),
                rewritten.len()
            );
        }
        write(&upstream_path, &to_json_text(&rewritten));
        write(
            &response_meta_path,
            &format!(
                "status = {}\ncontent_type = {:?}\n",
                actual_meta.status, actual_meta.content_type
            ),
        );
        write(&response_xml_path, &pretty_xml(&body));
    } else {
        // Each exchange against the call it answered (null: no call took it), then every
        // call no exchange answered.
        let expected_requests: Vec<Option<&UpstreamRequest>> =
            exchanges.iter().map(|e| e.request.as_ref()).collect();
        let actual_requests: Vec<Option<&UpstreamRequest>> = answered
            .iter()
            .map(|s| s.map(|s| &s.request))
            .chain(unanswered.iter().map(|s| Some(&s.request)))
            .collect();
        if expected_requests != actual_requests {
            let mut msg = String::from("upstream.json: the REST calls differ");
            if exchanges.len() != seen.len() {
                let _ = write!(
                    msg,
                    " (expected {} calls, the converter made {})",
                    exchanges.len(),
                    seen.len()
                );
            }
            let _ = write!(
                msg,
                ", - expected + actual:\n{}",
                diff(
                    &to_json_text(&expected_requests),
                    &to_json_text(&actual_requests)
                )
            );
            problems.push(msg);
        } else if case.ordered {
            let order: Vec<usize> = seen.iter().filter_map(|s| s.answered_by).collect();
            if order.windows(2).any(|w| w[0] > w[1]) {
                let calls: Vec<String> = seen
                    .iter()
                    .map(|s| format!("{} {}", s.request.method, s.request.path))
                    .collect();
                problems.push(format!(
                    "upstream.json: the REST calls were made in another order than the file's:\n  {}",
                    calls.join("\n  ")
                ));
            }
        }
        match &expected_meta {
            Some(m) if *m == actual_meta => {}
            Some(m) => problems.push(format!(
                "response.toml: expected status {} and content type {:?}, got {} and {:?}",
                m.status, m.content_type, actual_meta.status, actual_meta.content_type
            )),
            None => problems.push("response.toml is missing".into()),
        }
        match &expected_xml {
            Some(x) if compact_xml(x) == body => {}
            Some(x) => {
                let shown = diff(&pretty_xml(&compact_xml(x)), &pretty_xml(&body));
                let msg = if shown.lines().all(|l| l.starts_with("    ")) {
                    format!(
                        "response.xml: differs in whitespace only:\n  expected {:?}\n  actual   {body:?}",
                        compact_xml(x)
                    )
                } else {
                    format!("response.xml: the answer differs, - expected + actual:\n{shown}")
                };
                problems.push(msg);
            }
            None => problems.push(format!("response.xml is missing; the answer is:\n{body}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "case {} ({}):\n{}",
            case.name,
            case.dir.display(),
            problems.join("\n")
        ))
    }
}

#[test]
fn golden() {
    let plan = compile_plan();
    let update = update_mode();
    let cases = cases(&plan);
    assert!(
        !cases.is_empty(),
        "no golden cases under {}",
        golden_root().display()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c, update).err())
        .collect();
    if !failures.is_empty() {
        panic!(
            "{} of {} golden cases failed (UPDATE_GOLDEN=1 rewrites the expectations; read them before committing):\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n\n")
        );
    }
}

/// Every operation of every mapped service has a golden case named `<Operation>` or
/// `<Operation>-...` whose request calls that operation, and every case folder names one.
#[test]
fn every_mapped_operation_has_a_golden_case() {
    let plan = compile_plan();
    let mut missing = Vec::new();
    for s in &plan.services {
        let service_dir = golden_root().join(format!("{}-{}", s.name, s.version));
        let names: Vec<String> = if service_dir.is_dir() {
            subdirs(&service_dir).iter().map(|d| file_name(d)).collect()
        } else {
            Vec::new()
        };
        for op in &s.operations {
            let prefix = format!("{}-", op.name);
            let covered = names.iter().any(|n| {
                (*n == op.name || n.starts_with(&prefix))
                    && read(&service_dir.join(n).join("request.xml"))
                        .contains(&format!("{}Request", op.name))
            });
            if !covered {
                missing.push(format!(
                    "{} v{} {}: no case tests/golden/{}-{}/{}[-...]",
                    s.name, s.version, op.name, s.name, s.version, op.name
                ));
            }
        }
        for n in &names {
            let op = n.split('-').next().unwrap_or_default();
            if !s.operations.iter().any(|o| o.name == op) {
                missing.push(format!(
                    "tests/golden/{}-{}/{n}: {op} is not an operation of the service",
                    s.name, s.version
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
