#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The converter as it runs: `vos-converter serve` as a child process (with its embedded
//! reference backend, seeded from mappings/dev-seed.toml), called over real sockets with
//! hand-written SOAP 1.1 and 1.2 requests. Effects are checked directly over REST on the
//! embedded backend. Every child's stderr is scanned for the CPR numbers the test used.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use uuid::Uuid;

const ENDPOINT: &str = "/PersonRegistrationService/9";
const PRS: &str = "urn:dk:star:dfdg:PersonRegistrationService:9";
const DFDG: &str = "urn:dk:star:dfdg:common:1";
const WSA: &str = "http://www.w3.org/2005/08/addressing";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const WSDL_SOAP11: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const WSDL_SOAP12: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
const REST_BASE: &str = "/personvisitering/v1";

// The persons of mappings/dev-seed.toml.

/// Municipality 101, a-kasse 12, not enrolled.
const CPR_101: &str = "0101701111";
/// Municipality 101, enrolled (rule 2 applies).
const CPR_101_ENROLLED: &str = "0202702222";
/// Municipality 147: not Jobcenter 101's citizen.
const CPR_147: &str = "0303703333";
/// Municipality 751, enrolled.
const CPR_751: &str = "0404704444";
const SEED_CPRS: [&str; 4] = [CPR_101, CPR_101_ENROLLED, CPR_147, CPR_751];

/// The caller of every request: Jobcenter (organisation type 1) of municipality 101.
const ORG_TYPE: &str = "1";
const ORG_CODE: &str = "101";
const USER: &str = "sb-e2e";

const TEXT_100028: &str = "Slutdato kan ikke være fremtidig";
const TEXT_100029: &str = "Kontaktgruppen kan ikke ændres til anden kontaktgruppe for tilmeldte, opdater i stedet tilmeldingen";

/// Every client call gives up after this, so nothing hangs; the slowest answer these tests
/// wait for (the upstream timeout) is about a second.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------------------

/// A running `vos-converter serve`. Dropping it kills the child, so a failing test leaves
/// no server behind.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`: the SOAP side, from the "listening on" line.
    soap: String,
    /// The REST base from the "REST upstream:" line (`http://127.0.0.1:PORT`).
    rest: String,
    client: Client,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    /// Kept so the reader thread keeps draining stdout.
    stdout_lines: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// `serve --listen 127.0.0.1:0 --data-dir <tempdir>` plus `extra`, with the embedded
    /// backend unless `extra` names a `--rest-url`.
    fn start(extra: &[&str]) -> Serve {
        Serve::start_with(extra, "info")
    }

    fn start_with(extra: &[&str], rust_log: &str) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vos-converter"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "VOS_CONFIG",
            "VOS_LISTEN",
            "VOS_REST_URL",
            "VOS_DATA_DIR",
            "VOS_CUTOVER",
            "VOS_UPSTREAM_TIMEOUT_MS",
            "VOS_CONNECT_TIMEOUT_MS",
            "VOS_CODELIST_TTL_SECS",
            "VOS_MAX_BODY_BYTES",
            "VOS_MAX_DEPTH",
            "VOS_MAX_ELEMENTS",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd.spawn().expect("start the vos-converter binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr_pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let client = Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .unwrap();
        // From here on the guard owns the child: a panic below kills it.
        let mut serve = Serve {
            child,
            soap: String::new(),
            rest: String::new(),
            client,
            stderr,
            stderr_reader: Some(stderr_reader),
            stdout_lines: lines,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while serve.rest.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match serve.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        serve.soap = addr.trim().to_owned();
                    } else if let Some(rest) = line.strip_prefix("REST upstream: ") {
                        serve.rest = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let log = serve.kill();
                    panic!("serve printed no address within 30 s; stderr:\n{log}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let log = serve.kill();
                    panic!("serve closed stdout before listening; stderr:\n{log}");
                }
            }
        }
        assert!(
            serve.soap.starts_with("http://127.0.0.1:"),
            "SOAP address {:?}",
            serve.soap
        );
        assert!(
            serve.rest.starts_with("http://"),
            "REST address {:?}",
            serve.rest
        );
        serve
    }

    fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Stops the child and checks rule 10 on everything it wrote to stderr: no CPR number
    /// of `cprs` (nor of the seed) in any line. Returns the log.
    fn finish(&mut self, cprs: &[&str]) -> String {
        let log = self.kill();
        assert_no_cpr(&log, cprs);
        assert_no_cpr(&log, &SEED_CPRS);
        log
    }

    fn endpoint(&self) -> String {
        format!("{}{ENDPOINT}", self.soap)
    }

    /// A SOAP call of `op` with the headers a generated client sends.
    async fn call(&self, v: Soap, op: &str, envelope: &str) -> Reply {
        post_soap(&self.client, &self.endpoint(), v, op, envelope).await
    }

    /// A POST with exactly these headers and bytes.
    async fn post_raw(
        &self,
        content_type: &str,
        soap_action: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        post_raw(
            &self.client,
            &self.endpoint(),
            content_type,
            soap_action,
            body,
        )
        .await
    }

    /// A REST read as Jobcenter 101, asserting 200.
    async fn rest_get(&self, path: &str, cpr: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{REST_BASE}{path}", self.rest))
            .header("X-Organisation-Type", ORG_TYPE)
            .header("X-Organisation-Code", ORG_CODE)
            .header("X-Cpr", cpr)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn contact_groups(&self, cpr: &str) -> Vec<Value> {
        self.rest_get("/kontaktgrupper", cpr).await["kontaktgrupper"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn person_categories(&self, cpr: &str) -> Vec<Value> {
        self.rest_get("/personkategorier", cpr).await["personkategorier"]
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rule 10: no CPR number in the log, in any line.
fn assert_no_cpr(log: &str, cprs: &[&str]) {
    for cpr in cprs {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(cpr)).collect();
        assert!(
            lines.is_empty(),
            "the converter logged CPR number {cpr}:\n{}",
            lines.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Danish dates
// ---------------------------------------------------------------------------------------

fn copenhagen() -> TimeZone {
    TimeZone::get("Europe/Copenhagen").unwrap()
}

fn danish_today() -> Date {
    Timestamp::now().to_zoned(copenhagen()).date()
}

/// A day as an xs:dateTime: Danish midnight with its offset.
fn xs_day(d: Date) -> String {
    d.to_zoned(copenhagen())
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

fn instant(s: &str) -> Timestamp {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// SOAP requests
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Soap {
    V11,
    V12,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl Soap {
    fn ns(self) -> &'static str {
        match self {
            Soap::V11 => SOAP11,
            Soap::V12 => SOAP12,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Soap::V11 => "text/xml",
            Soap::V12 => "application/soap+xml",
        }
    }

    /// The fault code's local name for a side.
    fn fault_code(self, side: Side) -> &'static str {
        match (self, side) {
            (Soap::V11, Side::Client) => "Client",
            (Soap::V11, Side::Server) => "Server",
            (Soap::V12, Side::Client) => "Sender",
            (Soap::V12, Side::Server) => "Receiver",
        }
    }

    /// The HTTP status of a fault (src/converter.rs fault_for): SOAP 1.1 always 500; SOAP
    /// 1.2 400 for Sender, 500 for Receiver.
    fn fault_status(self, side: Side) -> StatusCode {
        match (self, side) {
            (Soap::V12, Side::Client) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn action(op: &str) -> String {
    format!("{PRS}/{op}")
}

/// An envelope of version `v` with these header blocks and this body content.
fn envelope(v: Soap, header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="{}" xmlns:dfdg="{DFDG}" xmlns:wsa="{WSA}" xmlns:prs="{PRS}"><env:Header>{header}</env:Header><env:Body>{body}</env:Body></env:Envelope>"#,
        v.ns()
    )
}

fn metadata(org_type: &str, org_code: &str) -> String {
    format!(
        "<dfdg:RequestUserMetadata><dfdg:OrganisationType>{org_type}</dfdg:OrganisationType>\
         <dfdg:OrganisationCode>{org_code}</dfdg:OrganisationCode>\
         <dfdg:UserIdentifier>{USER}</dfdg:UserIdentifier></dfdg:RequestUserMetadata>"
    )
}

/// RequestUserMetadata of Jobcenter 101.
fn jobcenter() -> String {
    metadata(ORG_TYPE, ORG_CODE)
}

/// Jobcenter 101's metadata and a wsa:MessageID.
fn jobcenter_with_message_id(message_id: &str) -> String {
    format!("{}<wsa:MessageID>{message_id}</wsa:MessageID>", jobcenter())
}

fn opt(name: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!("<prs:{name}>{v}</prs:{name}>"))
        .unwrap_or_default()
}

fn create_contact_group(cpr: &str, ty: u32, start: &str, end: Option<&str>, event: &str) -> String {
    format!(
        "<prs:CreateContactGroupRequest>\
         <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\
         <prs:ContactGroup>\
         <prs:ContactGroupTypeIdentifier>{ty}</prs:ContactGroupTypeIdentifier>\
         <prs:ContactGroupStartTime>{start}</prs:ContactGroupStartTime>{}\
         <prs:ContactGroupEventTime>{event}</prs:ContactGroupEventTime>\
         </prs:ContactGroup></prs:CreateContactGroupRequest>",
        opt("ContactGroupEndTime", end)
    )
}

fn update_contact_group(
    cpr: &str,
    id: Uuid,
    ty: u32,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    format!(
        "<prs:UpdateContactGroupRequest>\
         <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\
         <prs:ContactGroup>\
         <prs:ContactGroupIdentifier>{id}</prs:ContactGroupIdentifier>\
         <prs:ContactGroupTypeIdentifier>{ty}</prs:ContactGroupTypeIdentifier>\
         <prs:ContactGroupStartTime>{start}</prs:ContactGroupStartTime>{}\
         <prs:ContactGroupEventTime>{event}</prs:ContactGroupEventTime>\
         </prs:ContactGroup></prs:UpdateContactGroupRequest>",
        opt("ContactGroupEndTime", end)
    )
}

fn create_person_category(
    cpr: &str,
    ty: u32,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    format!(
        "<prs:CreatePersonCategoryRequest>\
         <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\
         <prs:PersonCategory>\
         <prs:PersonCategoryTypeIdentifier>{ty}</prs:PersonCategoryTypeIdentifier>\
         <prs:PersonCategoryStartTime>{start}</prs:PersonCategoryStartTime>{}\
         <prs:PersonCategoryEventTime>{event}</prs:PersonCategoryEventTime>\
         </prs:PersonCategory></prs:CreatePersonCategoryRequest>",
        opt("PersonCategoryEndTime", end)
    )
}

fn update_person_category(
    cpr: &str,
    id: Uuid,
    ty: u32,
    start: &str,
    end: Option<&str>,
    event: &str,
) -> String {
    format!(
        "<prs:UpdatePersonCategoryRequest>\
         <prs:PersonCivilRegistrationIdentifier>{cpr}</prs:PersonCivilRegistrationIdentifier>\
         <prs:PersonCategory>\
         <prs:PersonCategoryIdentifier>{id}</prs:PersonCategoryIdentifier>\
         <prs:PersonCategoryTypeIdentifier>{ty}</prs:PersonCategoryTypeIdentifier>\
         <prs:PersonCategoryStartTime>{start}</prs:PersonCategoryStartTime>{}\
         <prs:PersonCategoryEventTime>{event}</prs:PersonCategoryEventTime>\
         </prs:PersonCategory></prs:UpdatePersonCategoryRequest>",
        opt("PersonCategoryEndTime", end)
    )
}

/// The CreateContactGroup most tests start from: type 1 from 2024-01-01.
fn first_contact_group(cpr: &str) -> String {
    create_contact_group(
        cpr,
        1,
        "2024-01-01T00:00:00+01:00",
        None,
        "2024-01-01T10:00:00+01:00",
    )
}

async fn post_soap(client: &Client, url: &str, v: Soap, op: &str, envelope: &str) -> Reply {
    let body = envelope.as_bytes().to_vec();
    match v {
        Soap::V11 => {
            post_raw(
                client,
                url,
                "text/xml; charset=utf-8",
                Some(&format!("\"{}\"", action(op))),
                body,
            )
            .await
        }
        Soap::V12 => {
            let ct = format!(
                "application/soap+xml; charset=utf-8; action=\"{}\"",
                action(op)
            );
            post_raw(client, url, &ct, None, body).await
        }
    }
}

async fn post_raw(
    client: &Client,
    url: &str,
    content_type: &str,
    soap_action: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = client
        .post(url)
        .header("Content-Type", content_type)
        .body(body);
    if let Some(a) = soap_action {
        req = req.header("SOAPAction", a);
    }
    let start = Instant::now();
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} ({content_type}): {e}"));
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = res.bytes().await.unwrap();
    let elapsed = start.elapsed();
    let text = String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|_| panic!("the answer is not UTF-8: {bytes:?}"));
    Reply {
        status,
        content_type,
        text,
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------
// SOAP answers
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
    elapsed: Duration,
}

#[derive(Debug)]
struct Fault {
    /// The fault code's local name (Client/Server, Sender/Receiver); its namespace was
    /// checked to be the envelope's.
    code: String,
    /// faultstring / Reason/Text.
    reason: String,
    /// Every dfdg:Error of the detail.
    errors: Vec<(u32, String)>,
}

impl Reply {
    fn doc(&self) -> Doc {
        parse_xml(&self.text)
            .unwrap_or_else(|e| panic!("the answer is not well-formed XML ({e}):\n{}", self.text))
    }

    /// The Body's single child, after checking the envelope of version `v`.
    fn body_child(&self, v: Soap) -> (Doc, usize) {
        let doc = self.doc();
        let root = &doc.els[0];
        assert_eq!(
            (root.ns.as_str(), root.name.as_str()),
            (v.ns(), "Envelope"),
            "{}",
            self.text
        );
        let body = doc
            .child(0, v.ns(), "Body")
            .unwrap_or_else(|| panic!("no Body: {}", self.text));
        let children = doc.children(body);
        assert_eq!(
            children.len(),
            1,
            "the Body should have one child: {}",
            self.text
        );
        let first = children[0];
        (doc, first)
    }

    /// A successful answer of `op`: HTTP 200, the version's content type, `<op>Response`
    /// in the service's namespace with the id element `id`, which is returned.
    fn ok(&self, v: Soap, op: &str, id: &str) -> Uuid {
        assert_eq!(self.status, StatusCode::OK, "{op}: {}", self.text);
        assert!(
            self.content_type.starts_with(v.mime()),
            "{op}: content type {}",
            self.content_type
        );
        let (doc, el) = self.body_child(v);
        let e = &doc.els[el];
        assert_eq!(
            (e.ns.as_str(), e.name.as_str()),
            (PRS, format!("{op}Response").as_str()),
            "{}",
            self.text
        );
        let id_el = doc
            .child(el, PRS, id)
            .unwrap_or_else(|| panic!("no {id} in {}", self.text));
        let text = doc.els[id_el].text.as_str();
        let uuid: Uuid = text
            .parse()
            .unwrap_or_else(|_| panic!("{id} {text:?} is not a UUID"));
        assert_eq!(
            text,
            uuid.hyphenated().to_string(),
            "not lower-case hyphenated: {text}"
        );
        uuid
    }

    /// The fault this answer is: a well-formed envelope of version `v`, the version's
    /// content type, a Fault with code, reason and a dfdg:ServiceFault detail.
    fn fault(&self, v: Soap) -> Fault {
        assert!(
            self.content_type.starts_with(v.mime()),
            "content type {} of {}",
            self.content_type,
            self.text
        );
        let (doc, f) = self.body_child(v);
        let fe = &doc.els[f];
        assert_eq!(
            (fe.ns.as_str(), fe.name.as_str()),
            (v.ns(), "Fault"),
            "{}",
            self.text
        );
        let need = |parent: usize, ns: &str, name: &str| {
            doc.child(parent, ns, name)
                .unwrap_or_else(|| panic!("no {name} in the fault: {}", self.text))
        };
        let (code_el, reason_el, detail) = match v {
            Soap::V11 => (
                need(f, "", "faultcode"),
                need(f, "", "faultstring"),
                need(f, "", "detail"),
            ),
            Soap::V12 => {
                let code = need(f, SOAP12, "Code");
                let reason = need(f, SOAP12, "Reason");
                (
                    need(code, SOAP12, "Value"),
                    need(reason, SOAP12, "Text"),
                    need(f, SOAP12, "Detail"),
                )
            }
        };
        let (code_ns, code) = doc.els[code_el]
            .qname
            .clone()
            .unwrap_or_else(|| panic!("the fault code is not a resolvable QName: {}", self.text));
        assert_eq!(code_ns, v.ns(), "the fault code's namespace: {}", self.text);
        let sf = need(detail, DFDG, "ServiceFault");
        let errors: Vec<(u32, String)> = doc
            .children(sf)
            .into_iter()
            .map(|e| {
                assert_eq!(
                    (doc.els[e].ns.as_str(), doc.els[e].name.as_str()),
                    (DFDG, "Error"),
                    "{}",
                    self.text
                );
                let code = doc.els[need(e, DFDG, "ErrorCode")]
                    .text
                    .trim()
                    .parse()
                    .unwrap();
                (code, doc.els[need(e, DFDG, "ErrorText")].text.clone())
            })
            .collect();
        assert!(
            !errors.is_empty(),
            "a ServiceFault without Error: {}",
            self.text
        );
        let reason = doc.els[reason_el].text.clone();
        assert!(
            reason.starts_with(&errors[0].1),
            "the fault string is the first error's text: {}",
            self.text
        );
        Fault {
            code,
            reason,
            errors,
        }
    }

    /// Asserts a fault of version `v`, from `side`, with HTTP `status` and first error
    /// `code`; returns it.
    fn expect_fault(&self, v: Soap, side: Side, status: StatusCode, code: u32) -> Fault {
        let f = self.fault(v);
        assert_eq!(f.errors[0].0, code, "{}", self.text);
        assert_eq!(f.code, v.fault_code(side), "{}", self.text);
        assert_eq!(self.status, status, "{}", self.text);
        f
    }

    /// A fault with the usual status of its version and side.
    fn expect(&self, v: Soap, side: Side, code: u32) -> Fault {
        self.expect_fault(v, side, v.fault_status(side), code)
    }

    /// The wsa header of the answer: (Action, MessageID, RelatesTo).
    fn wsa(&self, v: Soap) -> (String, String, String) {
        let doc = self.doc();
        let header = doc
            .child(0, v.ns(), "Header")
            .unwrap_or_else(|| panic!("no Header: {}", self.text));
        let get = |name: &str| {
            let el = doc
                .child(header, WSA, name)
                .unwrap_or_else(|| panic!("no wsa:{name}: {}", self.text));
            doc.els[el].text.trim().to_owned()
        };
        (get("Action"), get("MessageID"), get("RelatesTo"))
    }
}

/// An XML document as a flat list of elements (the root first).
#[derive(Debug)]
struct Doc {
    els: Vec<El>,
}

#[derive(Debug)]
struct El {
    ns: String,
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    parent: Option<usize>,
    /// The text as a QName resolved in the element's scope, if it is one.
    qname: Option<(String, String)>,
}

impl Doc {
    fn children(&self, parent: usize) -> Vec<usize> {
        (0..self.els.len())
            .filter(|i| self.els[*i].parent == Some(parent))
            .collect()
    }

    fn child(&self, parent: usize, ns: &str, name: &str) -> Option<usize> {
        self.children(parent)
            .into_iter()
            .find(|i| self.els[*i].ns == ns && self.els[*i].name == name)
    }

    fn all(&self, ns: &str, name: &str) -> Vec<&El> {
        self.els
            .iter()
            .filter(|e| e.ns == ns && e.name == name)
            .collect()
    }
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A namespace-aware, strict parse: balanced tags, one root, known prefixes, only the
/// predefined entities, no DOCTYPE.
fn parse_xml(xml: &str) -> Result<Doc, String> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().expand_empty_elements = true;
    r.config_mut().check_end_names = true;
    let mut els: Vec<El> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
        match ev {
            Event::Start(e) => {
                if stack.is_empty() && !els.is_empty() {
                    return Err("more than one root element".into());
                }
                let ns = match ns {
                    ResolveResult::Bound(n) => n.0.to_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => return Err(format!("unknown prefix {p}")),
                };
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let value = a
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    attrs.push((
                        a.key.local_name().into_inner().to_owned(),
                        value.into_owned(),
                    ));
                }
                els.push(El {
                    ns,
                    name: e.local_name().into_inner().to_owned(),
                    attrs,
                    text: String::new(),
                    parent: stack.last().copied(),
                    qname: None,
                });
                stack.push(els.len() - 1);
            }
            Event::End(_) => {
                let i = stack.pop().ok_or("an end tag without a start")?;
                let t = els[i].text.trim().to_owned();
                if t.contains(':') && !t.contains(char::is_whitespace) {
                    let (res, local) = r.resolver().resolve_element(QName(&t));
                    if let ResolveResult::Bound(n) = res {
                        els[i].qname = Some((n.0.to_owned(), local.into_inner().to_owned()));
                    }
                }
            }
            Event::Text(t) => {
                if let Some(&i) = stack.last() {
                    els[i].text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err("text outside the root".into());
                }
            }
            Event::CData(c) => {
                let i = *stack.last().ok_or("CDATA outside the root")?;
                els[i].text.push_str(&c.into_inner());
            }
            Event::GeneralRef(g) => {
                let ch = match g.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match &*g {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("entity &{other}; is not predefined")),
                    },
                };
                let i = *stack.last().ok_or("a reference outside the root")?;
                els[i].text.push(ch);
            }
            Event::DocType(_) => return Err("a DOCTYPE".into()),
            Event::Eof => break,
            Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    if els.is_empty() {
        return Err("no root element".into());
    }
    Ok(Doc { els })
}

// ---------------------------------------------------------------------------------------
// REST checks
// ---------------------------------------------------------------------------------------

/// Rule 8: the registrant is Jobcenter 101 (and the user the request named).
fn assert_registrant(record: &Value, field: &str) {
    let r = &record[field];
    assert_eq!(
        r["organisationstype"],
        Value::from(1),
        "{field} of {record}"
    );
    assert_eq!(
        r["organisationskode"],
        Value::from(ORG_CODE),
        "{field} of {record}"
    );
    assert_eq!(r["brugerId"], Value::from(USER), "{field} of {record}");
}

fn date_field(record: &Value, field: &str) -> Option<Date> {
    record[field].as_str().map(date)
}

// ---------------------------------------------------------------------------------------
// 1. Every operation, both SOAP versions
// ---------------------------------------------------------------------------------------

async fn every_operation(v: Soap) {
    let mut s = Serve::start(&[]);
    let cpr = CPR_101;
    // SOAP 1.1 sends times with their offsets; SOAP 1.2 without (Danish local time).
    let (start, event) = match v {
        Soap::V11 => ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00"),
        Soap::V12 => ("2024-01-01T00:00:00", "2024-01-01T10:00:00"),
    };
    let event_instant = instant("2024-01-01T09:00:00Z");

    // CreateContactGroup.
    let r = s
        .call(
            v,
            "CreateContactGroup",
            &envelope(
                v,
                &jobcenter(),
                &create_contact_group(cpr, 1, start, None, event),
            ),
        )
        .await;
    let cg = r.ok(v, "CreateContactGroup", "ContactGroupIdentifier");
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), cpr).await;
    assert_eq!(rec["id"], Value::from(cg.to_string()), "{rec}");
    assert_eq!(rec["kontaktgruppetype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(date_field(&rec, "slutdato"), None, "{rec}");
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        event_instant,
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(1), "{rec}");
    assert_registrant(&rec, "oprettetAf");
    assert_registrant(&rec, "registreretAf");

    // UpdateContactGroup: end it today (Danish date), type, start and event unchanged.
    let today = danish_today();
    let body = update_contact_group(cpr, cg, 1, start, Some(&xs_day(today)), event);
    let r = s
        .call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
        .await;
    assert_eq!(r.ok(v, "UpdateContactGroup", "ContactGroupIdentifier"), cg);
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), cpr).await;
    assert_eq!(date_field(&rec, "slutdato"), Some(today), "{rec}");
    assert_eq!(rec["kontaktgruppetype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        event_instant,
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(2), "{rec}");
    assert_registrant(&rec, "oprettetAf");
    assert_registrant(&rec, "registreretAf");
    assert_eq!(s.contact_groups(cpr).await.len(), 1);

    // CreatePersonCategory.
    let body = create_person_category(cpr, 1, start, None, event);
    let r = s
        .call(v, "CreatePersonCategory", &envelope(v, &jobcenter(), &body))
        .await;
    let pc = r.ok(v, "CreatePersonCategory", "PersonCategoryIdentifier");
    let rec = s.rest_get(&format!("/personkategorier/{pc}"), cpr).await;
    assert_eq!(rec["personkategoritype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(date_field(&rec, "slutdato"), None, "{rec}");
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        event_instant,
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(1), "{rec}");
    assert_registrant(&rec, "oprettetAf");

    // UpdatePersonCategory: every field changes.
    let (start2, end2, event2) = match v {
        Soap::V11 => (
            "2024-02-01T00:00:00+01:00",
            "2024-06-30T00:00:00+02:00",
            "2024-02-01T09:30:00+01:00",
        ),
        Soap::V12 => (
            "2024-02-01T00:00:00",
            "2024-06-30T00:00:00",
            "2024-02-01T09:30:00",
        ),
    };
    let body = update_person_category(cpr, pc, 2, start2, Some(end2), event2);
    let r = s
        .call(v, "UpdatePersonCategory", &envelope(v, &jobcenter(), &body))
        .await;
    assert_eq!(
        r.ok(v, "UpdatePersonCategory", "PersonCategoryIdentifier"),
        pc
    );
    let rec = s.rest_get(&format!("/personkategorier/{pc}"), cpr).await;
    assert_eq!(rec["personkategoritype"], Value::from(2), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-02-01")),
        "{rec}"
    );
    assert_eq!(
        date_field(&rec, "slutdato"),
        Some(date("2024-06-30")),
        "{rec}"
    );
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        instant("2024-02-01T08:30:00Z"),
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(2), "{rec}");
    assert_registrant(&rec, "oprettetAf");
    assert_registrant(&rec, "registreretAf");
    assert_eq!(s.person_categories(cpr).await.len(), 1);

    s.finish(&[cpr]);
}

#[tokio::test]
async fn every_operation_end_to_end_soap11() {
    every_operation(Soap::V11).await;
}

#[tokio::test]
async fn every_operation_end_to_end_soap12() {
    every_operation(Soap::V12).await;
}

// ---------------------------------------------------------------------------------------
// 2. 100028 and 100029 reach the SOAP client unchanged
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn source_error_codes_reach_the_client_unchanged() {
    let mut s = Serve::start(&[]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");

    // 100028: an end date tomorrow (Danish date).
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101)),
        )
        .await;
    let cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    let tomorrow = xs_day(danish_today().checked_add(1.day()).unwrap());
    for v in [Soap::V11, Soap::V12] {
        let body = update_contact_group(CPR_101, cg, 1, start, Some(&tomorrow), event);
        let r = s
            .call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
            .await;
        let f = r.expect(v, Side::Client, 100028);
        assert_eq!(
            f.errors,
            vec![(100028, TEXT_100028.to_owned())],
            "{}",
            r.text
        );
        assert_eq!(f.reason, TEXT_100028, "{}", r.text);
        // Byte for byte: the text as UTF-8, not as character references.
        assert!(
            r.text
                .contains(&format!("<dfdg:ErrorText>{TEXT_100028}</dfdg:ErrorText>")),
            "{}",
            r.text
        );
    }
    // A fault to a request with a MessageID relates to it.
    let mid = format!("urn:uuid:{}", Uuid::new_v4());
    let body = update_contact_group(CPR_101, cg, 1, start, Some(&tomorrow), event);
    let r = s
        .call(
            Soap::V12,
            "UpdateContactGroup",
            &envelope(Soap::V12, &jobcenter_with_message_id(&mid), &body),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 100028);
    let (_, _, relates_to) = r.wsa(Soap::V12);
    assert_eq!(relates_to, mid, "{}", r.text);
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), CPR_101).await;
    assert_eq!(
        (date_field(&rec, "slutdato"), &rec["version"]),
        (None, &Value::from(1)),
        "{rec}"
    );

    // 100029: the enrolled person has a contact group of type 1; one of type 2 is refused.
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(
                Soap::V11,
                &jobcenter(),
                &first_contact_group(CPR_101_ENROLLED),
            ),
        )
        .await;
    let enrolled_cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    for v in [Soap::V11, Soap::V12] {
        let body = create_contact_group(
            CPR_101_ENROLLED,
            2,
            "2024-03-01T00:00:00+01:00",
            None,
            "2024-03-01T10:00:00+01:00",
        );
        let r = s
            .call(v, "CreateContactGroup", &envelope(v, &jobcenter(), &body))
            .await;
        let f = r.expect(v, Side::Client, 100029);
        assert_eq!(
            f.errors,
            vec![(100029, TEXT_100029.to_owned())],
            "{}",
            r.text
        );
        assert_eq!(f.reason, TEXT_100029, "{}", r.text);
        assert!(
            r.text
                .contains(&format!("<dfdg:ErrorText>{TEXT_100029}</dfdg:ErrorText>")),
            "{}",
            r.text
        );
    }
    let groups = s.contact_groups(CPR_101_ENROLLED).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["id"], Value::from(enrolled_cg.to_string()));
    assert_eq!(date_field(&groups[0], "slutdato"), None, "{groups:?}");

    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 3. A retried MessageID creates one record
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_message_id_creates_one_record() {
    const CONCURRENT: usize = 8;
    let mut s = Serve::start(&[]);
    let mid = format!("urn:uuid:{}", Uuid::new_v4());
    let message = envelope(
        Soap::V11,
        &jobcenter_with_message_id(&mid),
        &first_contact_group(CPR_101),
    );

    let check = |r: &Reply, v: Soap, mid: &str| -> Uuid {
        let id = r.ok(v, "CreateContactGroup", "ContactGroupIdentifier");
        let (action_, message_id, relates_to) = r.wsa(v);
        assert_eq!(relates_to, mid, "{}", r.text);
        assert_eq!(action_, action("CreateContactGroupResponse"), "{}", r.text);
        assert!(!message_id.is_empty() && message_id != mid, "{}", r.text);
        id
    };

    // The first sending, concurrently several times (a client's retries racing).
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        let (client, url, message, barrier) = (
            s.client.clone(),
            s.endpoint(),
            message.clone(),
            barrier.clone(),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            post_soap(&client, &url, Soap::V11, "CreateContactGroup", &message).await
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.push(check(&r.unwrap(), Soap::V11, &mid));
    }
    // Then twice more, one after the other.
    for _ in 0..2 {
        ids.push(check(
            &s.call(Soap::V11, "CreateContactGroup", &message).await,
            Soap::V11,
            &mid,
        ));
    }
    let first = ids[0];
    assert!(
        ids.iter().all(|id| *id == first),
        "one MessageID, several ids: {ids:?}"
    );
    let groups = s.contact_groups(CPR_101).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["id"], Value::from(first.to_string()));
    assert_registrant(&groups[0], "oprettetAf");

    // Another MessageID is another message: another contact group (from a later day, rule 5).
    let mid2 = format!("urn:uuid:{}", Uuid::new_v4());
    let body = create_contact_group(
        CPR_101,
        1,
        "2024-02-01T00:00:00+01:00",
        None,
        "2024-02-01T10:00:00+01:00",
    );
    let r = s
        .call(
            Soap::V12,
            "CreateContactGroup",
            &envelope(Soap::V12, &jobcenter_with_message_id(&mid2), &body),
        )
        .await;
    let second = check(&r, Soap::V12, &mid2);
    assert_ne!(second, first);
    let groups = s.contact_groups(CPR_101).await;
    assert_eq!(groups.len(), 2, "{groups:?}");

    // The first message once more, after the second closed its record: still its id, and
    // nothing new.
    let r = s.call(Soap::V11, "CreateContactGroup", &message).await;
    assert_eq!(check(&r, Soap::V11, &mid), first);
    assert_eq!(s.contact_groups(CPR_101).await.len(), 2);

    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 4. Rule 4
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_update_cannot_change_type_start_or_event_time() {
    let mut s = Serve::start(&[]);
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101)),
        )
        .await;
    let cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    let today = xs_day(danish_today());

    let changes = [
        (Soap::V11, 2, start, event),
        (Soap::V12, 2, start, event),
        (Soap::V11, 1, "2024-01-02T00:00:00+01:00", event),
        (Soap::V12, 1, start, "2024-01-01T11:00:00+01:00"),
    ];
    for (v, ty, start, event) in changes {
        let body = update_contact_group(CPR_101, cg, ty, start, Some(&today), event);
        let r = s
            .call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
            .await;
        let f = r.expect(v, Side::Client, 900509);
        assert_eq!(
            f.errors[0].1,
            "Kontaktgruppens type, starttidspunkt og hændelsestidspunkt kan ikke ændres",
            "{}",
            r.text
        );
    }
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), CPR_101).await;
    assert_eq!(rec["kontaktgruppetype"], Value::from(1), "{rec}");
    assert_eq!(
        date_field(&rec, "startdato"),
        Some(date("2024-01-01")),
        "{rec}"
    );
    assert_eq!(date_field(&rec, "slutdato"), None, "{rec}");
    assert_eq!(
        instant(rec["haendelsestidspunkt"].as_str().unwrap()),
        instant("2024-01-01T09:00:00Z"),
        "{rec}"
    );
    assert_eq!(rec["version"], Value::from(1), "{rec}");

    // The same values written another way are unchanged: the update goes through.
    let body = update_contact_group(
        CPR_101,
        cg,
        1,
        "2024-01-01T00:00:00",
        Some(&today),
        "2024-01-01T09:00:00Z",
    );
    let r = s
        .call(
            Soap::V11,
            "UpdateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &body),
        )
        .await;
    assert_eq!(
        r.ok(Soap::V11, "UpdateContactGroup", "ContactGroupIdentifier"),
        cg
    );
    let rec = s.rest_get(&format!("/kontaktgrupper/{cg}"), CPR_101).await;
    assert_eq!(date_field(&rec, "slutdato"), Some(danish_today()), "{rec}");
    assert_eq!(rec["version"], Value::from(2), "{rec}");

    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 5. The retired method
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_person_category_and_interview_is_retired() {
    let mut s = Serve::start(&[]);
    let body = format!(
        "<prs:CreatePersonCategoryAndInterviewRequest>\
         <prs:PersonCivilRegistrationIdentifier>{CPR_101}</prs:PersonCivilRegistrationIdentifier>\
         <prs:PersonCategory>\
         <prs:PersonCategoryTypeIdentifier>1</prs:PersonCategoryTypeIdentifier>\
         <prs:PersonCategoryStartTime>2024-01-01T00:00:00+01:00</prs:PersonCategoryStartTime>\
         <prs:PersonCategoryEventTime>2024-01-01T10:00:00+01:00</prs:PersonCategoryEventTime>\
         </prs:PersonCategory>\
         <prs:Interview><prs:InterviewTime>2024-01-05T10:00:00+01:00</prs:InterviewTime>\
         <prs:InterviewTypeIdentifier>1</prs:InterviewTypeIdentifier></prs:Interview>\
         </prs:CreatePersonCategoryAndInterviewRequest>"
    );
    for v in [Soap::V11, Soap::V12] {
        let r = s
            .call(
                v,
                "CreatePersonCategoryAndInterview",
                &envelope(v, &jobcenter(), &body),
            )
            .await;
        let f = r.expect(v, Side::Client, 900510);
        assert!(
            f.reason.contains("CreatePersonkategori"),
            "the fault does not name the replacement: {}",
            r.text
        );
        assert!(f.errors[0].1.starts_with("Metoden er udgået"), "{}", r.text);
    }
    assert!(s.person_categories(CPR_101).await.is_empty());
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------

/// A valid, idempotent call (a CreateContactGroup with a fixed MessageID): the service
/// still serves, and always answers the same id.
async fn still_serves(s: &Serve, mid: &str, id: &mut Option<Uuid>, after: &str) {
    let env = envelope(
        Soap::V11,
        &jobcenter_with_message_id(mid),
        &first_contact_group(CPR_101),
    );
    let r = s.call(Soap::V11, "CreateContactGroup", &env).await;
    assert_eq!(r.status, StatusCode::OK, "after {after}: {}", r.text);
    let got = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    assert_eq!(*id.get_or_insert(got), got, "after {after}");
}

#[tokio::test]
async fn bad_input_gets_a_fault_and_the_service_stays_up() {
    let mut s = Serve::start(&[]);
    let mid = format!("urn:uuid:{}", Uuid::new_v4());
    let mut id = None;
    still_serves(&s, &mid, &mut id, "start").await;

    let v11 = |body: &str| envelope(Soap::V11, &jobcenter(), body);
    let valid_body = first_contact_group(CPR_101);
    let ct11 = "text/xml; charset=utf-8";
    let ct12 = "application/soap+xml; charset=utf-8";
    let create = format!("\"{}\"", action("CreateContactGroup"));

    // A DOCTYPE with entities (billion laughs).
    let mut laughs =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol0 \"lol\">\n");
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        laughs.push_str(&format!("<!ENTITY lol{i} \"{refs}\">\n"));
    }
    laughs.push_str("]>\n");
    let with_laughs = v11(&first_contact_group("&lol9;"));
    laughs.push_str(with_laughs.split_once("?>\n").unwrap().1);
    let r = s.post_raw(ct11, Some(&create), laughs.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900502);
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
    still_serves(&s, &mid, &mut id, "billion laughs").await;

    // A body over 1 MiB, in both versions: 413, quickly.
    for (v, ct) in [(Soap::V11, ct11), (Soap::V12, ct12)] {
        let padding = format!("<!--{}-->", "x".repeat(1024 * 1024));
        let big = envelope(v, &format!("{}{padding}", jobcenter()), &valid_body);
        assert!(big.len() > 1024 * 1024);
        let r = s.post_raw(ct, Some(&create), big.into_bytes()).await;
        r.expect_fault(v, Side::Client, StatusCode::PAYLOAD_TOO_LARGE, 900503);
        assert!(
            r.elapsed < Duration::from_secs(2),
            "a large body took {:?}",
            r.elapsed
        );
        still_serves(&s, &mid, &mut id, "a large body").await;
    }

    // Nesting deeper than 32, in SOAP 1.2.
    let deep = format!("{}{}", "<prs:Nest>".repeat(40), "</prs:Nest>".repeat(40));
    let body = valid_body.replace(
        "</prs:CreateContactGroupRequest>",
        &format!("{deep}</prs:CreateContactGroupRequest>"),
    );
    let r = s
        .post_raw(
            ct12,
            None,
            envelope(Soap::V12, &jobcenter(), &body).into_bytes(),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 900503);
    still_serves(&s, &mid, &mut id, "deep nesting").await;

    // More than 2000 elements.
    let many = format!("{}<extra>{}</extra>", jobcenter(), "<x/>".repeat(2100));
    let r = s
        .post_raw(
            ct11,
            Some(&create),
            envelope(Soap::V11, &many, &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900503);
    still_serves(&s, &mid, &mut id, "many elements").await;

    // Not UTF-8.
    let mut bytes = v11(&valid_body).into_bytes();
    let at = bytes.windows(6).position(|w| w == b"sb-e2e").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    let r = s.post_raw(ct11, Some(&create), bytes).await;
    r.expect(Soap::V11, Side::Client, 900501);
    still_serves(&s, &mid, &mut id, "invalid UTF-8").await;

    // Malformed XML: crossed tags, and a document cut short (in SOAP 1.2).
    let crossed = v11(&valid_body).replace("</prs:ContactGroup>", "</prs:Contact>");
    let r = s.post_raw(ct11, Some(&create), crossed.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900501);
    let full = envelope(Soap::V12, &jobcenter(), &valid_body);
    let cut = full[..full.len() - 40].to_owned();
    let r = s.post_raw(ct12, None, cut.into_bytes()).await;
    r.expect(Soap::V12, Side::Client, 900501);
    still_serves(&s, &mid, &mut id, "malformed XML").await;

    // Not a SOAP content type: 415, answered as a SOAP 1.1 fault.
    let r = s
        .post_raw(
            "application/json",
            None,
            br#"{"cpr": "0101701111"}"#.to_vec(),
        )
        .await;
    r.expect_fault(
        Soap::V11,
        Side::Client,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        900505,
    );
    still_serves(&s, &mid, &mut id, "application/json").await;

    // An unknown Body element (no action: the body decides), an unknown action, and a known
    // element name in another namespace.
    let unknown =
        v11(&valid_body.replace("CreateContactGroupRequest", "DeleteContactGroupRequest"));
    let r = s.post_raw(ct11, Some("\"\""), unknown.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900504);
    let r = s
        .post_raw(
            ct11,
            Some(&format!("\"{}\"", action("DeleteContactGroup"))),
            v11(&valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900504);
    let other_ns = v11(&valid_body.replace(
        "<prs:CreateContactGroupRequest>",
        "<prs:CreateContactGroupRequest xmlns:prs=\"urn:dk:star:dfdg:PersonRegistrationService:8\">",
    ));
    let r = s.post_raw(ct11, None, other_ns.into_bytes()).await;
    r.expect(Soap::V11, Side::Client, 900504);
    still_serves(&s, &mid, &mut id, "an unknown operation").await;

    // A SOAPAction / action naming another operation than the body.
    let update = format!("\"{}\"", action("UpdateContactGroup"));
    let r = s
        .post_raw(ct11, Some(&update), v11(&valid_body).into_bytes())
        .await;
    r.expect(Soap::V11, Side::Client, 900504);
    let ct = format!("{ct12}; action={update}");
    let r = s
        .post_raw(
            &ct,
            None,
            envelope(Soap::V12, &jobcenter(), &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 900504);
    still_serves(&s, &mid, &mut id, "action and body disagreeing").await;

    // No RequestUserMetadata; one without OrganisationCode.
    let r = s
        .post_raw(
            ct11,
            Some(&create),
            envelope(Soap::V11, "", &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900507);
    let partial = "<dfdg:RequestUserMetadata><dfdg:OrganisationType>1</dfdg:OrganisationType></dfdg:RequestUserMetadata>";
    let r = s
        .post_raw(
            ct12,
            None,
            envelope(Soap::V12, partial, &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V12, Side::Client, 900507);
    still_serves(&s, &mid, &mut id, "missing metadata").await;

    // Not a date in ContactGroupStartTime: the fault names the element.
    let body = create_contact_group(CPR_101, 1, "not-a-date", None, "2024-01-01T10:00:00+01:00");
    let r = s
        .post_raw(ct11, Some(&create), v11(&body).into_bytes())
        .await;
    let f = r.expect(Soap::V11, Side::Client, 900508);
    assert!(
        f.reason.contains("ContactGroupStartTime"),
        "the fault does not name the element: {}",
        r.text
    );
    still_serves(&s, &mid, &mut id, "a non-date").await;

    // A SOAP 1.2 envelope as text/xml, and a SOAP 1.1 envelope as application/soap+xml.
    let r = s
        .post_raw(
            ct11,
            Some(&create),
            envelope(Soap::V12, &jobcenter(), &valid_body).into_bytes(),
        )
        .await;
    r.expect(Soap::V11, Side::Client, 900506);
    let r = s.post_raw(ct12, None, v11(&valid_body).into_bytes()).await;
    r.expect(Soap::V12, Side::Client, 900506);
    still_serves(&s, &mid, &mut id, "a version mismatch").await;

    // An empty SOAPAction, and SOAP 1.2 without an action: the body decides.
    let env = envelope(Soap::V11, &jobcenter_with_message_id(&mid), &valid_body);
    let r = s.post_raw(ct11, Some("\"\""), env.into_bytes()).await;
    assert_eq!(
        Some(r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier")),
        id
    );
    let env = envelope(Soap::V12, &jobcenter_with_message_id(&mid), &valid_body);
    let r = s.post_raw(ct12, None, env.into_bytes()).await;
    assert_eq!(
        Some(r.ok(Soap::V12, "CreateContactGroup", "ContactGroupIdentifier")),
        id
    );

    // All of it made one contact group.
    assert_eq!(s.contact_groups(CPR_101).await.len(), 1);
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 7. Upstream failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unreachable_rest_service_is_a_server_fault() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}");
    let mut s = Serve::start(&["--rest-url", &url]);
    assert_eq!(s.rest, url);
    for v in [Soap::V11, Soap::V12] {
        let r = s
            .call(
                v,
                "CreateContactGroup",
                &envelope(v, &jobcenter(), &first_contact_group(CPR_101)),
            )
            .await;
        r.expect(v, Side::Server, 900520);
        assert!(
            r.elapsed < Duration::from_secs(3),
            "900520 took {:?}",
            r.elapsed
        );
    }
    s.finish(&[]);
}

#[tokio::test]
async fn a_rest_service_that_never_answers_is_a_timeout_fault() {
    // Accepts connections and holds them open, never answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut s = Serve::start(&["--rest-url", &url, "--upstream-timeout-ms", "500"]);
    for v in [Soap::V11, Soap::V12] {
        let r = s
            .call(
                v,
                "CreateContactGroup",
                &envelope(v, &jobcenter(), &first_contact_group(CPR_101)),
            )
            .await;
        r.expect(v, Side::Server, 900521);
        eprintln!("{v:?}: 900521 after {:?}", r.elapsed);
        assert!(
            r.elapsed > Duration::from_millis(400),
            "900521 before the timeout: {:?}",
            r.elapsed
        );
        assert!(
            r.elapsed < Duration::from_secs(3),
            "900521 took {:?}",
            r.elapsed
        );
    }
    silent.abort();
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 8. The WSDL
// ---------------------------------------------------------------------------------------

async fn wsdl_locations(s: &Serve, headers: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let mut req = s.client.get(format!("{}?wsdl", s.endpoint()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/xml"), "WSDL content type {ct}");
    let text = res.text().await.unwrap();
    let doc = parse_xml(&text).unwrap_or_else(|e| panic!("the WSDL is not well-formed ({e})"));
    assert_eq!(doc.els[0].name, "definitions");
    assert!(
        !text.contains("location=\"http://localhost:8080"),
        "a placeholder address is left in the WSDL"
    );
    let locations = |ns: &str| -> Vec<String> {
        doc.all(ns, "address")
            .iter()
            .map(|e| e.attr("location").unwrap().to_owned())
            .collect()
    };
    (locations(WSDL_SOAP11), locations(WSDL_SOAP12))
}

#[tokio::test]
async fn the_wsdl_names_the_address_the_client_used() {
    let mut s = Serve::start(&[]);
    let direct = s.endpoint();
    assert_eq!(
        wsdl_locations(&s, &[]).await,
        (vec![direct.clone()], vec![direct.clone()])
    );

    let proxied = "https://gw.example/PersonRegistrationService/9".to_owned();
    let forwarded = [
        ("X-Forwarded-Host", "gw.example"),
        ("X-Forwarded-Proto", "https"),
    ];
    assert_eq!(
        wsdl_locations(&s, &forwarded).await,
        (vec![proxied.clone()], vec![proxied])
    );
    // And without them again: nothing of the forwarded address is kept.
    assert_eq!(
        wsdl_locations(&s, &[]).await,
        (vec![direct.clone()], vec![direct])
    );
    s.finish(&[]);
}

/// src/soap/wsdl.rs client_base: a forwarded scheme other than http/https, and a forwarded
/// host with characters no host has, are ignored: the WSDL names the address the client
/// used (its Host header, on plain http).
#[tokio::test]
async fn the_wsdl_ignores_forwarded_values_no_proxy_would_send() {
    let mut s = Serve::start(&[]);
    let direct = s.endpoint();
    let cases: [&[(&str, &str)]; 3] = [
        &[("X-Forwarded-Proto", "gopher")],
        &[("X-Forwarded-Proto", "javascript:alert(1)//")],
        &[("X-Forwarded-Host", "gw.example\"><x")],
    ];
    let mut wrong = Vec::new();
    for headers in cases {
        let got = wsdl_locations(&s, headers).await;
        if got != (vec![direct.clone()], vec![direct.clone()]) {
            wrong.push(format!("{headers:?} gave {got:?}"));
        }
    }
    s.finish(&[]);
    assert!(
        wrong.is_empty(),
        "the WSDL should name {direct}:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 9. No CPR in the log
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_cpr_number_reaches_the_log() {
    let mut s = Serve::start_with(&[], "debug");
    let not_registered = "0505705555";
    let invalid = "3213991234";
    let (start, event) = ("2024-01-01T00:00:00+01:00", "2024-01-01T10:00:00+01:00");

    for v in [Soap::V11, Soap::V12] {
        // Refused by REST: someone else's citizens, someone not in the register, no CPR.
        for cpr in [CPR_147, CPR_751, not_registered, invalid] {
            let r = s
                .call(
                    v,
                    "CreateContactGroup",
                    &envelope(v, &jobcenter(), &first_contact_group(cpr)),
                )
                .await;
            let f = r.fault(v);
            assert!(f.errors[0].0 >= 900_000, "{}", r.text);
        }
        // A CPR number where a date and a UUID belong.
        let body = create_contact_group(CPR_101, 1, CPR_101, None, event);
        s.call(v, "CreateContactGroup", &envelope(v, &jobcenter(), &body))
            .await
            .expect(v, Side::Client, 900508);
        let body = update_contact_group(CPR_101, Uuid::nil(), 1, start, None, event)
            .replace(&Uuid::nil().to_string(), CPR_101);
        s.call(v, "UpdateContactGroup", &envelope(v, &jobcenter(), &body))
            .await
            .expect(v, Side::Client, 900508);
        // A malformed document with a CPR number in it.
        let cut = envelope(v, &jobcenter(), &first_contact_group(CPR_101_ENROLLED))
            .replace("</env:Body>", "");
        s.call(v, "CreateContactGroup", &cut)
            .await
            .expect(v, Side::Client, 900501);
    }
    // Successful calls, and a business refusal.
    let r = s
        .call(
            Soap::V11,
            "CreateContactGroup",
            &envelope(Soap::V11, &jobcenter(), &first_contact_group(CPR_101)),
        )
        .await;
    let cg = r.ok(Soap::V11, "CreateContactGroup", "ContactGroupIdentifier");
    let tomorrow = xs_day(danish_today().checked_add(1.day()).unwrap());
    let body = update_contact_group(CPR_101, cg, 1, start, Some(&tomorrow), event);
    s.call(
        Soap::V12,
        "UpdateContactGroup",
        &envelope(Soap::V12, &jobcenter(), &body),
    )
    .await
    .expect(Soap::V12, Side::Client, 100028);
    let body = update_contact_group(CPR_101, cg, 2, start, None, event);
    s.call(
        Soap::V12,
        "UpdateContactGroup",
        &envelope(Soap::V12, &jobcenter(), &body),
    )
    .await
    .expect(Soap::V12, Side::Client, 900509);
    let body = create_person_category(CPR_101_ENROLLED, 2, start, None, event);
    let r = s
        .call(
            Soap::V12,
            "CreatePersonCategory",
            &envelope(Soap::V12, &jobcenter(), &body),
        )
        .await;
    r.ok(
        Soap::V12,
        "CreatePersonCategory",
        "PersonCategoryIdentifier",
    );

    let log = s.finish(&[not_registered, invalid]);
    assert!(
        log.contains("soap call"),
        "the converter logged no SOAP call:\n{log}"
    );
    assert!(
        log.contains("DEBUG"),
        "RUST_LOG=debug did not reach the child:\n{log}"
    );
}
