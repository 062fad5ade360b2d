#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large reads through `vos-converter serve` (a child process): a PersonHistoryService
//! answer with thousands of contact group versions leaves in chunks while REST is still
//! sending (the first SOAP bytes arrive before REST has sent the rest), is complete and
//! well-formed, and holds every item; a REST answer that breaks off after the SOAP answer
//! began cuts the SOAP answer off (the caller sees a broken answer, never a short one that
//! looks complete). The same with a legacy service (the splice): a large legacy answer
//! leaves in chunks while the legacy service and REST are still sending, and a legacy answer
//! that breaks off after the head cuts the answer off. The REST and legacy sides are raw
//! HTTP responders on threads, so the test decides exactly when each byte leaves.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use common::child::{CPR_101, Serve};
use common::soap::{PHS, Soap, envelope_with, history_request, metadata_user, soap_headers};
use common::xml::parse_xml;

const ID: &str = "7b1e4c2a-9d3f-4a5b-8c6d-1e2f3a4b5c6d";

fn version(i: usize) -> String {
    format!(
        r#"{{"haendelsestidspunkt":"2024-03-31T07:15:00Z","id":"{ID}","kontaktgruppetype":2,"oprettetAf":{{"brugerId":"star-drift","organisationskode":"12345678","organisationstype":5}},"registreretAf":{{"brugerId":"jc101","organisationskode":"101","organisationstype":1}},"registreringstidspunkt":"2024-10-28T09:02:11Z","slutdato":null,"startdato":"2024-03-31","version":{}}}"#,
        i + 1
    )
}

/// `{"versioner":[...]}` with `n` contact group versions.
fn history(n: usize) -> String {
    let items: Vec<String> = (0..n).map(version).collect();
    format!(r#"{{"versioner":[{}]}}"#, items.join(","))
}

const ONE_CATEGORY: &str = r#"{"versioner":[{"haendelsestidspunkt":"2024-03-31T07:15:00Z","id":"c3d4e5f6-a7b8-4c9d-8e0f-112233445566","personkategoritype":1,"oprettetAf":{"brugerId":"x","organisationskode":"101","organisationstype":1},"registreretAf":{"brugerId":"x","organisationskode":"101","organisationstype":1},"registreringstidspunkt":"2024-10-28T09:02:11Z","slutdato":null,"startdato":"2024-03-31","version":1}]}"#;

/// How a fake sends its answer.
#[derive(Clone, Copy)]
enum Send {
    Whole,
    /// The first half, then (once `release` is set, or after 10 s) the rest.
    HeldBack,
    /// The first half, then the connection closes (Content-Length promises more).
    BrokenOff,
}

/// Reads one request's head; returns its request line.
fn request_line(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Answers with `body` (200, `content_type`) as `send` says.
fn respond(conn: &mut TcpStream, content_type: &str, body: &str, send: Send, release: &AtomicBool) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    let half = match send {
        Send::Whole => body.len(),
        _ => body.len() / 2,
    };
    conn.write_all(&body.as_bytes()[..half]).unwrap();
    conn.flush().unwrap();
    match send {
        Send::Whole => {}
        Send::BrokenOff => {
            std::thread::sleep(Duration::from_millis(200));
        }
        Send::HeldBack => {
            let until = Instant::now() + Duration::from_secs(10);
            while !release.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = conn.write_all(&body.as_bytes()[half..]);
        }
    }
}

/// A REST stand-in: the person category history answered whole, the contact group
/// history (`n` versions) as `send` says. Returns its base URL and the release flag.
fn fake_rest(n: usize, send: Send) -> (String, Arc<AtomicBool>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let release = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (release.clone(), seen.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let (release, seen) = (r.clone(), s.clone());
            std::thread::spawn(move || {
                let line = request_line(&mut conn);
                seen.lock().unwrap().push(line.clone());
                let body = if line.contains("kontaktgruppehistorik") {
                    history(n)
                } else {
                    ONE_CATEGORY.to_owned()
                };
                if line.contains("kontaktgruppehistorik") {
                    respond(&mut conn, "application/json", &body, send, &release);
                } else {
                    respond(&mut conn, "application/json", &body, Send::Whole, &release);
                }
            });
        }
    });
    (base, release, seen)
}

fn serve(base: &str) -> Serve {
    serve_with(base, &[])
}

fn serve_with(base: &str, extra: &[&str]) -> Serve {
    let mut args = vec![
        "--rest-url",
        base,
        "--identity",
        "header",
        // Before the cutover: reads call REST.
        "--cutover",
        "2099-01-01",
        "--upstream-timeout-ms",
        "20000",
    ];
    args.extend_from_slice(extra);
    Serve::start(&args)
}

/// A streamed answer's body, read to its end, which must be broken (not a clean end).
async fn broken_body(res: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => panic!("the answer ended as if complete ({} bytes)", body.len()),
            Err(_) => return body,
        }
    }
}

async fn post_history(s: &Serve) -> reqwest::Response {
    let v = Soap::V11;
    let envelope = envelope_with(
        v,
        &[("dfdg", common::soap::DFDG), ("phs", PHS)],
        &metadata_user("1", "101", "jc101"),
        &history_request(CPR_101, None, None),
    );
    let (content_type, action) = soap_headers(v, &format!("{PHS}/GetPersonHistory"));
    s.client
        .post(s.url("/PersonHistoryService/4"))
        .header("Content-Type", content_type)
        .header("SOAPAction", action.unwrap())
        .body(envelope)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_large_history_leaves_in_chunks_while_rest_is_still_sending() {
    let n = 3000;
    let (base, release, seen) = fake_rest(n, Send::HeldBack);
    let s = serve(&base);
    let mut res = post_history(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get("content-length").is_none(),
        "a streamed answer has no Content-Length: {:?}",
        res.headers()
    );
    assert!(res.headers().get("x-request-id").is_some());
    // The first SOAP bytes arrive while REST holds back the second half of its answer.
    let first = tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .expect("no SOAP bytes while REST was still sending")
        .unwrap()
        .unwrap();
    assert!(!release.load(Ordering::SeqCst));
    let mut body = first.to_vec();
    release.store(true, Ordering::SeqCst);
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    parse_xml(&text).unwrap_or_else(|e| panic!("not well-formed ({e})"));
    assert_eq!(text.matches("<ContactGroupHistory>").count(), n);
    assert_eq!(text.matches("<PersonCategoryHistory>").count(), 1);
    assert!(
        text.ends_with("</soap:Envelope>"),
        "{}",
        &text[text.len() - 200..]
    );
    assert!(
        text.contains("<ContactGroupIdentifier>7b1e4c2a-9d3f-4a5b-8c6d-1e2f3a4b5c6d</ContactGroupIdentifier><ContactGroupTypeIdentifier>2</ContactGroupTypeIdentifier><ContactGroupStartTime>2024-03-31T00:00:00+01:00</ContactGroupStartTime><ContactGroupEventTime>2024-03-31T09:15:00+02:00</ContactGroupEventTime>"),
        "{}",
        &text[..2000]
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "one REST call per collection"
    );
}

#[tokio::test]
async fn a_rest_answer_that_breaks_off_cuts_the_streamed_answer_off() {
    let (base, _release, _) = fake_rest(3000, Send::BrokenOff);
    let s = serve(&base);
    let mut res = post_history(&s).await;
    // The head left before REST broke off: 200, and then the body does not end well.
    assert_eq!(res.status(), StatusCode::OK);
    let body = broken_body(&mut res).await;
    let text = String::from_utf8_lossy(&body);
    assert!(!text.ends_with("</soap:Envelope>"));
    // The converter stays up and says what happened in its metrics.
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vos_converter_upstream_errors_total")
                && l.contains("GetKontaktgruppeHistorik")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_small_history_is_answered_whole() {
    let (base, release, _) = fake_rest(3, Send::HeldBack);
    release.store(true, Ordering::SeqCst);
    let s = serve(&base);
    let res = post_history(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    let len: usize = res
        .headers()
        .get("content-length")
        .expect("a small answer has its length")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = res.text().await.unwrap();
    assert_eq!(text.len(), len);
    assert_eq!(text.matches("<ContactGroupHistory>").count(), 3);
}

// ---------------------------------------------------------------------------------------
// The legacy splice streams the same way
// ---------------------------------------------------------------------------------------

/// A legacy PersonHistoryService answer: stale contact groups, an empty person category
/// collection, and `m` interviews of the legacy service's own (about 100 bytes each).
fn legacy_history(m: usize) -> String {
    let interviews: String = (0..m)
        .map(|i| format!("<h:InterviewHistory><h:Note>interview {i} kept as it was</h:Note></h:InterviewHistory>\n"))
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\n<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>\
         <h:GetPersonHistoryResponse xmlns:h=\"{PHS}\"><h:PersonHistory>\
         <h:PersonCivilRegistrationIdentifier>0101701111</h:PersonCivilRegistrationIdentifier>\
         <h:ContactGroupHistoryCollection><h:ContactGroupHistory><h:ContactGroupIdentifier>stale\
         </h:ContactGroupIdentifier></h:ContactGroupHistory></h:ContactGroupHistoryCollection>\
         <h:PersonCategoryHistoryCollection/>\
         <h:InterviewHistoryCollection>\n{interviews}</h:InterviewHistoryCollection>\
         </h:PersonHistory></h:GetPersonHistoryResponse></S:Body></S:Envelope>\n"
    )
}

/// A legacy SOAP stand-in: answers every request with `body` as `send` says. Returns its
/// URL and the release flag.
fn fake_legacy(body: String, send: Send) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/phs", listener.local_addr().unwrap());
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let (release, body) = (r.clone(), body.clone());
            std::thread::spawn(move || {
                // The request's head, then its body (its length is in the head).
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let len: usize = String::from_utf8_lossy(&head)
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut request = vec![0u8; len];
                conn.read_exact(&mut request).unwrap();
                respond(&mut conn, "text/xml; charset=utf-8", &body, send, &release);
            });
        }
    });
    (url, release)
}

fn serve_spliced(rest: &str, legacy: &str) -> Serve {
    let flag = format!("PersonHistoryService={legacy}");
    serve_with(rest, &["--legacy-url", &flag])
}

/// The rest of a streamed answer, after its first chunk.
async fn rest_of(res: &mut reqwest::Response, first: &[u8]) -> String {
    let mut body = first.to_vec();
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).unwrap()
}

#[tokio::test]
async fn a_large_legacy_answer_leaves_in_chunks_while_legacy_and_rest_are_still_sending() {
    let (n, m) = (3000, 5000);
    let (rest, rest_release, _) = fake_rest(n, Send::HeldBack);
    let legacy_answer = legacy_history(m);
    let (legacy, legacy_release) = fake_legacy(legacy_answer.clone(), Send::HeldBack);
    let s = serve_spliced(&rest, &legacy);
    let mut res = post_history(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/xml; charset=utf-8");
    assert!(
        res.headers().get("content-length").is_none(),
        "a streamed answer has no Content-Length: {:?}",
        res.headers()
    );
    // The first bytes arrive while both hold back the second half of their answers.
    let first = tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .expect("no SOAP bytes while legacy and REST were still sending")
        .unwrap()
        .unwrap();
    assert!(!rest_release.load(Ordering::SeqCst) && !legacy_release.load(Ordering::SeqCst));
    assert!(first.starts_with(b"<?xml version=\"1.0\"?>\n<S:Envelope"));
    rest_release.store(true, Ordering::SeqCst);
    legacy_release.store(true, Ordering::SeqCst);
    let text = rest_of(&mut res, &first).await;
    parse_xml(&text).unwrap_or_else(|e| panic!("not well-formed ({e})"));
    // REST's items with the legacy collection's prefix; every other byte the legacy's.
    assert_eq!(text.matches("<h:ContactGroupHistory>").count(), n);
    assert_eq!(text.matches("<h:PersonCategoryHistory>").count(), 1);
    assert!(!text.contains("stale"));
    let from = legacy_answer
        .find("<h:InterviewHistoryCollection>")
        .unwrap();
    assert!(
        text.ends_with(&legacy_answer[from..]),
        "the legacy tail is kept"
    );
    assert!(text.contains("<h:PersonCategoryHistoryCollection><h:PersonCategoryHistory>"));
}

#[tokio::test]
async fn a_large_legacy_answer_streams_with_small_rest_answers() {
    let (rest, rest_release, _) = fake_rest(3, Send::HeldBack);
    rest_release.store(true, Ordering::SeqCst);
    let legacy_answer = legacy_history(5000);
    let (legacy, legacy_release) = fake_legacy(legacy_answer.clone(), Send::HeldBack);
    let s = serve_spliced(&rest, &legacy);
    let mut res = post_history(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("content-length").is_none());
    let first = tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .expect("no SOAP bytes while the legacy service was still sending")
        .unwrap()
        .unwrap();
    assert!(!legacy_release.load(Ordering::SeqCst));
    legacy_release.store(true, Ordering::SeqCst);
    let text = rest_of(&mut res, &first).await;
    assert_eq!(text.matches("<h:ContactGroupHistory>").count(), 3);
    assert_eq!(text.matches("<h:InterviewHistory>").count(), 5000);
    assert!(text.ends_with("</S:Envelope>\n"));
}

#[tokio::test]
async fn a_legacy_answer_that_breaks_off_cuts_the_spliced_answer_off() {
    let (rest, rest_release, _) = fake_rest(3, Send::HeldBack);
    rest_release.store(true, Ordering::SeqCst);
    let (legacy, _) = fake_legacy(legacy_history(5000), Send::BrokenOff);
    let s = serve_spliced(&rest, &legacy);
    let mut res = post_history(&s).await;
    // The head left before the legacy service broke off: 200, then no proper end.
    assert_eq!(res.status(), StatusCode::OK);
    let body = broken_body(&mut res).await;
    assert!(!String::from_utf8_lossy(&body).ends_with("</S:Envelope>\n"));
}

#[tokio::test]
async fn a_small_spliced_answer_is_answered_whole_and_a_late_failure_is_still_a_fault() {
    let (rest, rest_release, _) = fake_rest(3, Send::HeldBack);
    rest_release.store(true, Ordering::SeqCst);
    let (legacy, _) = fake_legacy(legacy_history(2), Send::Whole);
    let s = serve_spliced(&rest, &legacy);
    let res = post_history(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("content-length").is_some());
    let text = res.text().await.unwrap();
    assert_eq!(text.matches("<h:ContactGroupHistory>").count(), 3);
    // Broken off before 32 KiB were written: nothing left yet, so the caller gets 900520.
    let (legacy, _) = fake_legacy(legacy_history(2), Send::BrokenOff);
    let s = serve_spliced(&rest, &legacy);
    let res = post_history(&s).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = res.text().await.unwrap();
    assert!(text.contains("<dfdg:ErrorCode>90052"), "{text}");
}
