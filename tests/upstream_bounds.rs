#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 14 point 4, "Bounded upstream", with `vos-converter serve` as a child process and a
//! raw REST stand-in: 50 concurrent reads whose REST answers are 100 MB (streamed chunked
//! without a length, or declared by Content-Length) are each a fault 900522, 50 concurrent
//! writes whose 201 is such an answer each 900523, and the converter's peak RSS stays under
//! 100 MiB; a flood of `/readyz` makes at most one REST probe a second.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use common::child::{CPR_101, CPR_101_ENROLLED, Serve};
use common::http::read_request_with_body;
use common::soap::{
    DFDG, PRS, PSS, Reply, Service, Side, Soap, create_contact_group, envelope_with, metadata_user,
    post_soap, status_request,
};

/// What each stand-in answer is: 100 MB, ten times the converter's memory bound.
const HUNDRED_MB: u64 = 100_000_000;

/// The reads about this person get a 200 streamed in chunks without a Content-Length.
const CPR_STREAMED: &str = CPR_101;
/// The reads about this person get a 200 with `Content-Length: 100000000`.
const CPR_DECLARED: &str = CPR_101_ENROLLED;

/// The peak RSS the converter must stay under.
const MAX_RSS_KIB: u64 = 100 * 1024;

/// A REST stand-in counting what it is asked; every answer to a call with an `X-Cpr` is
/// `{"fyld":"aaa...` to 100 MB (a member the mapping does not read, so the converter writes
/// nothing for it while it reads), written until the converter goes away.
struct StandIn {
    url: String,
    connections: Arc<AtomicU32>,
    requests: Arc<AtomicU32>,
    /// The most bytes one answer's body got out before the converter went away.
    most_written: Arc<AtomicU64>,
}

async fn stand_in() -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = StandIn {
        url: format!("http://{}", listener.local_addr().unwrap()),
        connections: Arc::new(AtomicU32::new(0)),
        requests: Arc::new(AtomicU32::new(0)),
        most_written: Arc::new(AtomicU64::new(0)),
    };
    let (connections, requests, most) = (
        s.connections.clone(),
        s.requests.clone(),
        s.most_written.clone(),
    );
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_connection(conn, requests.clone(), most.clone()));
        }
    });
    s
}

/// The requests of one keep-alive connection (GETs: heads only).
async fn serve_connection(
    mut conn: tokio::net::TcpStream,
    requests: Arc<AtomicU32>,
    most: Arc<AtomicU64>,
) {
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = read_request_with_body(&mut conn, &mut buf).await else {
            return;
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        requests.fetch_add(1, Ordering::SeqCst);
        // A read names its person in X-Cpr, a write in its JSON body.
        let cpr = head
            .lines()
            .find_map(|l| l.strip_prefix("x-cpr:"))
            .map(|v| v.trim().to_owned())
            .or_else(|| {
                [CPR_STREAMED, CPR_DECLARED]
                    .into_iter()
                    .find(|c| body.contains(c))
                    .map(str::to_owned)
            });
        let chunked = match cpr.as_deref() {
            Some(CPR_STREAMED) => true,
            Some(CPR_DECLARED) => false,
            _ => {
                // The readiness probe (GET /): REST's 404 for its base URL.
                let answer = "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                if conn.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let status = if head.starts_with("get ") {
            "200 OK"
        } else {
            "201 Created"
        };
        let head = if chunked {
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            )
        } else {
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {HUNDRED_MB}\r\n\r\n"
            )
        };
        if conn.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // The first piece opens the object and the string; the others are its inside.
        let inside = vec![b'a'; 64 * 1024];
        let mut first = inside.clone();
        first[..9].copy_from_slice(b"{\"fyld\":\"");
        let frame = |piece: &[u8]| {
            if chunked {
                [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat()
            } else {
                piece.to_vec()
            }
        };
        let (first, inside) = (frame(&first), frame(&inside));
        let mut written = 0u64;
        while written < HUNDRED_MB {
            let out = if written == 0 { &first } else { &inside };
            if conn.write_all(out).await.is_err() {
                break;
            }
            written += 64 * 1024;
            most.fetch_max(written, Ordering::SeqCst);
        }
        return;
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`: the peak RSS; `VmRSS`: now).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn envelope(v: Soap, cpr: &str) -> String {
    envelope_with(
        v,
        &[("dfdg", DFDG), ("pss", PSS)],
        &metadata_user("1", "101", "bounds"),
        &status_request(cpr),
    )
}

/// 50 concurrent CreateContactGroup writes about `cpr`, half SOAP 1.1, half 1.2; each
/// must be a Server fault 900523 (a 2xx that cannot be read) with HTTP 500.
async fn fifty_writes(s: &Serve, client: &reqwest::Client, cpr: &str) -> Duration {
    let url = s.url(Service::Prs.endpoint());
    let action = Service::Prs.action("CreateContactGroup");
    let start = Instant::now();
    let calls = (0..50).map(|i| {
        let v = if i % 2 == 0 { Soap::V11 } else { Soap::V12 };
        let (url, action) = (url.clone(), action.clone());
        let body = create_contact_group(
            cpr,
            1,
            "2025-01-06T00:00:00+01:00",
            None,
            &format!("2025-01-06T09:30:{i:02}"),
        );
        async move {
            let env = envelope_with(
                v,
                &[("dfdg", DFDG), ("prs", PRS)],
                &metadata_user("1", "101", "bounds"),
                &body,
            );
            (v, post_soap(client, &url, v, &action, &env).await)
        }
    });
    for (v, r) in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
        let f = r.fault(v);
        assert_eq!(f.code, v.fault_code(Side::Server), "{}", r.text);
        assert_eq!(f.errors[0].0, 900523, "{}", r.text);
    }
    start.elapsed()
}

/// 50 concurrent GetVariablePersonStatus reads about `cpr`, half SOAP 1.1, half 1.2; each
/// must be a Server fault 900522 with HTTP 500.
async fn fifty_reads(s: &Serve, client: &reqwest::Client, cpr: &str) -> Duration {
    let url = s.url(Service::Pss.endpoint());
    let action = Service::Pss.action("GetVariablePersonStatus");
    let start = Instant::now();
    let calls = (0..50).map(|i| {
        let v = if i % 2 == 0 { Soap::V11 } else { Soap::V12 };
        let (url, action) = (url.clone(), action.clone());
        async move {
            let r: Reply = post_soap(client, &url, v, &action, &envelope(v, cpr)).await;
            (v, r)
        }
    });
    for (v, r) in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
        assert_eq!(r.status, v.fault_status(Side::Server));
        let f = r.fault(v);
        assert_eq!(f.code, v.fault_code(Side::Server), "{}", r.text);
        assert_eq!(f.errors[0].0, 900522, "{}", r.text);
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_calls_with_100_mb_answers_are_faults_and_stay_under_100_mib() {
    let rest = stand_in().await;
    // The default ceiling (4 MiB) and connection bound (64); a cutover far ahead so the
    // reads call REST, and a timeout long enough for a debug build on a shared machine.
    let mut s = Serve::start(&[
        "--rest-url",
        &rest.url,
        "--identity",
        "header",
        "--cutover",
        "2099-01-01",
        "--upstream-timeout-ms",
        "120000",
    ]);
    let pid = s.child.pid();
    let at_start = status_kib(pid, "VmRSS");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .no_proxy()
        .build()
        .unwrap();

    let mut report = format!("RSS at start {at_start} KiB");
    for (what, cpr) in [("streamed", CPR_STREAMED), ("declared", CPR_DECLARED)] {
        let took = fifty_reads(&s, &client, cpr).await;
        let most = rest.most_written.swap(0, Ordering::SeqCst);
        let peak = status_kib(pid, "VmHWM");
        report += &format!("; 50 reads, {what}: {took:?}, peak {peak} KiB");
        // The converter stopped each answer near the ceiling and read nothing of one whose
        // head was over it: what one answer got out is that plus the sockets' buffers (up
        // to 36 MiB on loopback here), far from its 100 MB.
        assert!(
            most < HUNDRED_MB / 2,
            "{what} reads: {most} bytes of one answer"
        );
    }
    for (what, cpr) in [("streamed", CPR_STREAMED), ("declared", CPR_DECLARED)] {
        let took = fifty_writes(&s, &client, cpr).await;
        let most = rest.most_written.swap(0, Ordering::SeqCst);
        let peak = status_kib(pid, "VmHWM");
        report += &format!("; 50 writes, {what}: {took:?}, peak {peak} KiB");
        assert!(
            most < HUNDRED_MB / 2,
            "{what} writes: {most} bytes of one answer"
        );
    }
    let peak = status_kib(pid, "VmHWM");
    eprintln!(
        "{report}; REST requests {}",
        rest.requests.load(Ordering::SeqCst)
    );
    assert!(
        peak < MAX_RSS_KIB,
        "peak RSS {peak} KiB, bound {MAX_RSS_KIB} KiB ({report})"
    );
    s.finish(&[CPR_STREAMED, CPR_DECLARED]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readyz_makes_at_most_one_rest_probe_a_second() {
    let rest = stand_in().await;
    let mut s = Serve::start(&["--rest-url", &rest.url, "--identity", "header"]);
    let url = s.url("/readyz");
    let start = Instant::now();
    let calls = (0..200).map(|_| {
        let (client, url) = (s.client.clone(), url.clone());
        async move { client.get(&url).send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let elapsed = start.elapsed();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let (requests, connections) = (
        rest.requests.load(Ordering::SeqCst),
        rest.connections.load(Ordering::SeqCst),
    );
    eprintln!("200 /readyz in {elapsed:?}: {requests} REST probes on {connections} connections");
    // One probe per second of the flood at most (and the first).
    let most = elapsed.as_secs() as u32 + 1;
    assert!(
        (1..=most).contains(&requests),
        "{requests} probes in {elapsed:?}"
    );
    assert!(connections <= requests, "{connections} connections");
    s.finish(&[]);
}
