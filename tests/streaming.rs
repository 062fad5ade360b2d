#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large reads through `vos-converter serve` (a child process): a PersonHistoryService
//! answer with thousands of contact group versions leaves in chunks while REST is still
//! sending (the first SOAP bytes arrive before REST has sent the rest), is complete and
//! well-formed, and holds every item; a REST answer that breaks off after the SOAP answer
//! began cuts the SOAP answer off (the caller sees a broken answer, never a short one that
//! looks complete). The REST side is a raw HTTP responder on a thread, so the test decides
//! exactly when each byte leaves.

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

/// How the fake sends the contact group history.
#[derive(Clone, Copy)]
enum Send {
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
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                conn.write_all(head.as_bytes()).unwrap();
                if !line.contains("kontaktgruppehistorik") {
                    conn.write_all(body.as_bytes()).unwrap();
                    return;
                }
                let half = body.len() / 2;
                conn.write_all(&body.as_bytes()[..half]).unwrap();
                conn.flush().unwrap();
                match send {
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
            });
        }
    });
    (base, release, seen)
}

fn serve(base: &str) -> Serve {
    Serve::start(&[
        "--rest-url",
        base,
        "--identity",
        "header",
        // Before the cutover: reads call REST.
        "--cutover",
        "2099-01-01",
        "--upstream-timeout-ms",
        "20000",
    ])
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
    let mut body = Vec::new();
    let broken = loop {
        match res.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        broken,
        "the answer ended as if complete ({} bytes)",
        body.len()
    );
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
