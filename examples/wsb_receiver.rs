//! The WSB receiver of `scripts/bench.sh wsb`: a subscriber's endpoint that acknowledges
//! every event at once, counts them and times their arrival.
//!
//! ```sh
//! cargo run --release --example wsb_receiver -- [--listen 127.0.0.1:0]
//! ```
//!
//! It prints `listening on http://127.0.0.1:PORT` and serves plain HTTP/1.1 (keep-alive,
//! `Content-Length` bodies; the backend's client sends nothing else) on one thread:
//!
//! - `POST <any path>`: an event; answered `204` (or `503` while held, not counted). Counted
//!   per path (one receiver serves several subscriptions, one path each), with its arrival
//!   time, and, when its `tidspunkt` (the registration's time, ns precision, from the same
//!   system clock) can be read, its lag: arrival minus `tidspunkt`;
//! - `GET /stats`: JSON `{"count", "first_s", "last_s", "paths": {path: count}, "lag": {"n",
//!   "p50_ms", "p90_ms", "p99_ms", "max_ms"}, "refused"}` (times in seconds since the epoch);
//! - `DELETE /stats`: starts counting afresh;
//! - `PUT /hold`: events are answered `503` (the backend retries them) until `DELETE /hold`:
//!   a backlog builds up, whose drain is the delivery's throughput.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The longest request head, and body, accepted.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

#[derive(Default)]
struct Stats {
    count: u64,
    first_s: Option<f64>,
    last_s: Option<f64>,
    paths: BTreeMap<String, u64>,
    /// Arrival minus the event's `tidspunkt`, µs.
    lags_us: Vec<i64>,
    /// Events answered 503 while held.
    refused: u64,
    held: bool,
}

impl Stats {
    fn json(&self) -> String {
        let mut lags = self.lags_us.clone();
        lags.sort_unstable();
        // Nearest rank.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * lags.len() as f64).ceil() as usize;
            lags.get(rank.clamp(1, lags.len().max(1)) - 1)
                .map(|us| *us as f64 / 1000.0)
        };
        serde_json::json!({
            "count": self.count,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "paths": self.paths,
            "lag": {
                "n": lags.len(),
                "p50_ms": pct(50.0),
                "p90_ms": pct(90.0),
                "p99_ms": pct(99.0),
                "max_ms": lags.last().map(|us| *us as f64 / 1000.0),
            },
            "refused": self.refused,
        })
        .to_string()
    }
}

type Shared = Arc<Mutex<Stats>>;

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    tidspunkt: Option<&'a str>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// One request's line and the headers this receiver reads.
struct Head {
    method: String,
    path: String,
    length: usize,
    close: bool,
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?, first.next()?);
    let mut head = Head {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or(target).to_owned(),
        length: 0,
        close: first.next() == Some("HTTP/1.0"),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked bodies are not read here.
            return None;
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Some(head)
}

/// What to answer: status line and body.
fn handle(stats: &Shared, head: &Head, body: &[u8]) -> (&'static str, String) {
    const NO_CONTENT: &str = "204 No Content";
    let Ok(mut s) = stats.lock() else {
        return ("500 Internal Server Error", String::new());
    };
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/stats") => ("200 OK", s.json()),
        ("DELETE", "/stats") => {
            let held = s.held;
            *s = Stats {
                held,
                ..Stats::default()
            };
            (NO_CONTENT, String::new())
        }
        ("PUT", "/hold") => {
            s.held = true;
            (NO_CONTENT, String::new())
        }
        ("DELETE", "/hold") => {
            s.held = false;
            (NO_CONTENT, String::new())
        }
        ("POST", path) => {
            if s.held {
                s.refused += 1;
                return ("503 Service Unavailable", String::new());
            }
            let arrival = now_us();
            let sent = serde_json::from_slice::<Event<'_>>(body)
                .ok()
                .and_then(|e| e.tidspunkt?.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_microsecond());
            if let Some(sent) = sent {
                s.lags_us.push(arrival - sent);
            }
            let t = arrival as f64 / 1e6;
            s.count += 1;
            s.first_s.get_or_insert(t);
            s.last_s = Some(t);
            *s.paths.entry(path.to_owned()).or_default() += 1;
            (NO_CONTENT, String::new())
        }
        _ => ("404 Not Found", String::new()),
    }
}

async fn serve(mut conn: TcpStream, stats: Shared) -> Result<(), Error> {
    conn.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return Err("request head too long".into());
            }
            match conn.read(&mut chunk).await? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(head) = parse_head(&buf[..head_end - 4]) else {
            conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await?;
            return Ok(());
        };
        if head.length > MAX_BODY {
            return Err("request body too long".into());
        }
        while buf.len() < head_end + head.length {
            match conn.read(&mut chunk).await? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let (status, body) = handle(&stats, &head, &buf[head_end..head_end + head.length]);
        buf.drain(..head_end + head.length);
        let mut answer = format!("HTTP/1.1 {status}\r\n");
        if !status.starts_with("204") {
            answer.push_str(&format!("content-length: {}\r\n", body.len()));
            if !body.is_empty() {
                answer.push_str("content-type: application/json\r\n");
            }
        }
        if head.close {
            answer.push_str("connection: close\r\n");
        }
        answer.push_str("\r\n");
        answer.push_str(&body);
        conn.write_all(answer.as_bytes()).await?;
        if head.close {
            return Ok(());
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            _ => {
                return Err(
                    format!("unknown argument {a:?}; usage: wsb_receiver [--listen ADDR]").into(),
                );
            }
        }
    }
    let listener = TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let stats: Shared = Arc::default();
    loop {
        let (conn, _) = listener.accept().await?;
        let stats = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(conn, stats).await {
                eprintln!("wsb_receiver: connection: {e}");
            }
        });
    }
}
