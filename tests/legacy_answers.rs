#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Odd answers from a legacy service, and REST failing while the legacy service answers
//! (issue 14 point 7): each is either passed on as the legacy service sent it (where the
//! bytes are a SOAP answer the caller can read) or a Server fault with a catalogue code,
//! never a 200 with bytes the caller cannot read. `vos-converter serve` runs as a child
//! process with `--legacy-url` pointing at a stand-in that answers whatever bytes a case
//! gives it; REST is the embedded backend, or a stand-in of its own.

mod common;

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use common::child::{CPR_101, Serve, closed_url};
use common::http::read_request;
use common::soap::{
    DFDG, Fault, PHS, PRS, PSS, Reply, Service, Side, Soap, envelope_with, metadata_user,
    status_request,
};

/// One HTTP answer, as raw as a misbehaving server or proxy sends it.
#[derive(Clone)]
struct Raw {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A stand-in HTTP server: every request (read whole, by Content-Length) is answered with
/// the same [`Raw`]; the requests' heads are kept, lower-cased.
struct StandIn {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    async fn start(raw: Raw) -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer_all(conn, raw.clone(), kept.clone()));
            }
        });
        StandIn { url, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer_all(mut conn: tokio::net::TcpStream, raw: Raw, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    while let Some(head) = read_request(&mut conn, &mut buf).await {
        heads.lock().unwrap().push(head);
        let mut out = format!("HTTP/1.1 {} Whatever\r\n", raw.status).into_bytes();
        for (k, v) in &raw.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", raw.body.len()).as_bytes());
        out.extend_from_slice(&raw.body);
        if conn.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn raw(status: u16, content_type: &str, body: &[u8]) -> Raw {
    Raw {
        status,
        headers: vec![("content-type", content_type.to_owned())],
        body: body.to_vec(),
    }
}

const SOAP11_XML: &str = "text/xml;charset=UTF-8";

/// A legacy GetVariablePersonStatus answer with the two collections the converter fills.
const WITH_COLLECTIONS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<p:GetVariablePersonStatusResponse xmlns:p="urn:dk:star:dfdg:PersonStatusService:20"><p:PersonStatus>
<p:ContactGroupCollection/><p:PersonCategoryCollection/><p:Note>Søren</p:Note>
</p:PersonStatus></p:GetVariablePersonStatusResponse></soap:Body></soap:Envelope>"#;

/// The same answer without either collection.
const WITHOUT_COLLECTIONS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<p:GetVariablePersonStatusResponse xmlns:p="urn:dk:star:dfdg:PersonStatusService:20"><p:PersonStatus>
<p:AbsenceCollection/></p:PersonStatus></p:GetVariablePersonStatusResponse></soap:Body></soap:Envelope>"#;

/// A SOAP 1.1 fault sent with HTTP 200, as some legacy stacks do.
const FAULT_WITH_200: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>
<faultcode>soap:Server</faultcode><faultstring>legacy: intern fejl</faultstring></soap:Fault>
</soap:Body></soap:Envelope>"#;

const PROXY_502: &str = "<html><head><title>502 Bad Gateway</title></head>\
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

async fn status(s: &Serve, v: Soap) -> Reply {
    let envelope = envelope_with(
        v,
        &[("dfdg", DFDG), ("prs", PRS), ("pss", PSS), ("phs", PHS)],
        &metadata_user("1", "101", "legacy-answers"),
        &status_request(CPR_101),
    );
    s.call_traced(Service::Pss, v, "GetVariablePersonStatus", &envelope, None)
        .await
}

/// `serve` with the legacy PersonStatusService at `legacy` and REST at `rest` (the
/// embedded backend when `None`), before the cutover.
fn serve(legacy: &StandIn, rest: Option<&str>) -> Serve {
    let legacy_flag = format!("PersonStatusService={}/pss", legacy.url);
    let mut args = vec![
        "--cutover",
        "2099-01-01",
        "--identity",
        "header",
        "--legacy-url",
        &legacy_flag,
        "--upstream-timeout-ms",
        "3000",
    ];
    if let Some(r) = rest {
        args.extend(["--rest-url", r]);
    }
    Serve::start(&args)
}

/// Asserts a fault of version `v` from `side` with the version's status for it and first
/// error `code`.
fn expect_fault(r: &Reply, v: Soap, side: Side, code: u32) -> Fault {
    let f = r.fault(v);
    assert_eq!(f.errors[0].0, code, "{}", r.text);
    assert_eq!(f.code, v.fault_code(side), "{}", r.text);
    assert_eq!(r.status, v.fault_status(side), "{}", r.text);
    f
}

/// A Server fault with `code`, in both SOAP versions, with the legacy service asked.
async fn expect_fault_both(s: &Serve, legacy: &StandIn, code: u32) {
    for v in [Soap::V11, Soap::V12] {
        let before = legacy.heads().len();
        let r = status(s, v).await;
        expect_fault(&r, v, Side::Server, code);
        assert_eq!(
            legacy.heads().len(),
            before + 1,
            "the legacy service was asked"
        );
    }
}

#[tokio::test]
async fn a_legacy_answer_that_lacks_the_collections_passes_as_it_is() {
    let legacy = StandIn::start(raw(200, SOAP11_XML, WITHOUT_COLLECTIONS.as_bytes())).await;
    let mut s = serve(&legacy, None);
    let r = status(&s, Soap::V11).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, SOAP11_XML);
    assert_eq!(r.text, WITHOUT_COLLECTIONS);
    // With the collections, the same service answers spliced (the control).
    drop(legacy);
    let legacy = StandIn::start(raw(200, SOAP11_XML, WITH_COLLECTIONS.as_bytes())).await;
    let mut with = serve(&legacy, None);
    let r = status(&with, Soap::V11).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("<p:Note>Søren</p:Note>"), "{}", r.text);
    // Spliced: the self-closed collections are opened to hold REST's items (none here).
    assert!(
        r.text
            .contains("<p:ContactGroupCollection></p:ContactGroupCollection>"),
        "{}",
        r.text
    );
    s.finish(&[CPR_101]);
    with.finish(&[CPR_101]);
}

#[tokio::test]
async fn a_fault_the_legacy_service_sends_with_200_passes_as_it_is() {
    let legacy = StandIn::start(raw(200, SOAP11_XML, FAULT_WITH_200.as_bytes())).await;
    let mut s = serve(&legacy, None);
    let r = status(&s, Soap::V11).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, FAULT_WITH_200);
    s.finish(&[CPR_101]);
}

#[tokio::test]
async fn a_proxys_html_502_is_a_server_fault_900522() {
    let legacy = StandIn::start(raw(502, "text/html", PROXY_502.as_bytes())).await;
    let mut s = serve(&legacy, None);
    expect_fault_both(&s, &legacy, 900522).await;
    let log = s.finish(&[CPR_101]);
    assert!(
        log.contains("answered 502 with text/html, not a SOAP fault"),
        "{log}"
    );
}

#[tokio::test]
async fn a_legacy_answer_that_is_not_utf8_is_a_server_fault_900522() {
    // ISO-8859-1 "ø" (0xF8) in an answer the splice would write UTF-8 items into.
    let latin1 = WITH_COLLECTIONS
        .replace("UTF-8", "ISO-8859-1")
        .replace('ø', "\u{0}")
        .into_bytes()
        .into_iter()
        .map(|b| if b == 0 { 0xF8 } else { b })
        .collect::<Vec<u8>>();
    assert!(std::str::from_utf8(&latin1).is_err());
    let legacy = StandIn::start(raw(200, "text/xml;charset=ISO-8859-1", &latin1)).await;
    let mut s = serve(&legacy, None);
    expect_fault_both(&s, &legacy, 900522).await;
    s.finish(&[CPR_101]);
}

#[tokio::test]
async fn a_compressed_legacy_answer_is_a_server_fault_900522_and_identity_was_asked_for() {
    // Bytes the converter cannot splice, sent compressed although identity was asked for.
    let mut gzip = raw(
        200,
        SOAP11_XML,
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage",
    );
    gzip.headers.push(("content-encoding", "gzip".into()));
    let legacy = StandIn::start(gzip).await;
    let mut s = serve(&legacy, None);
    expect_fault_both(&s, &legacy, 900522).await;
    for head in legacy.heads() {
        assert!(head.contains("\r\naccept-encoding: identity\r\n"), "{head}");
    }
    s.finish(&[CPR_101]);
}

#[tokio::test]
async fn rest_failing_while_the_legacy_service_answers_is_a_fault_of_rest() {
    let legacy = StandIn::start(raw(200, SOAP11_XML, WITH_COLLECTIONS.as_bytes())).await;

    // REST cannot be reached: 900520.
    let gone = closed_url();
    let mut s = serve(&legacy, Some(&gone));
    expect_fault_both(&s, &legacy, 900520).await;
    s.finish(&[CPR_101]);

    // REST answers 200 with an HTML page: 900522.
    let html = StandIn::start(raw(200, "text/html", b"<html>maintenance</html>")).await;
    let mut s = serve(&legacy, Some(&html.url));
    expect_fault_both(&s, &legacy, 900522).await;
    assert!(!html.heads().is_empty(), "REST was asked");
    s.finish(&[CPR_101]);

    // REST refuses with a problem+json of its own: passed on as it is (rule 3).
    let problem = StandIn::start(raw(
        403,
        "application/problem+json",
        br#"{"type":"about:blank","title":"Forbidden","status":403,"fejlkode":900203,"fejltekst":"Organisationen har ikke adgang til borgeren"}"#,
    ))
    .await;
    let mut s = serve(&legacy, Some(&problem.url));
    for v in [Soap::V11, Soap::V12] {
        let r = status(&s, v).await;
        let f = expect_fault(&r, v, Side::Client, 900203);
        assert_eq!(f.reason, "Organisationen har ikke adgang til borgeren");
    }
    s.finish(&[CPR_101]);
}
