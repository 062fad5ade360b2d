//! Shared by the integration tests: the reference backend started in-process on an
//! ephemeral port, over a real socket, with a temporary database and a chosen clock; its
//! JSON answers; Danish dates. The binary run as a child process is in [`child`], SOAP
//! requests and answers in [`soap`], the XML parse they use in [`xml`], raw HTTP for
//! misbehaving stand-ins in [`http`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod child;
pub mod http;
pub mod soap;
pub mod xml;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::dev::ServerHandle;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use vos_converter::backend::{self, BackendConfig};
use vos_converter::dktime::Clock;

pub type Org = (u8, &'static str);
pub const STAR: Org = (5, "12345678");
pub const JOBCENTER_101: Org = (1, "101");
pub const JOBCENTER_147: Org = (1, "147");
pub const KOMMUNE_101: Org = (3, "101");
pub const AKASSE_12: Org = (2, "12");
pub const AKASSE_34: Org = (2, "34");
pub const ANDEN_AKTOER: Org = (4, "87654321");

pub const BASE: &str = "/personvisitering/v1";

/// Every log line the test binary's servers write, to check that no CPR number is in one.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Backend {
    pub base: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Stop without waiting; the server thread ends when its System stops.
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
    }
}

pub fn start(clock: Clock) -> Backend {
    start_with(clock, true)
}

pub fn start_with(clock: Clock, dev: bool) -> Backend {
    start_with_latency(clock, dev, std::time::Duration::ZERO)
}

/// A backend that answers `latency` late (dev mode only; see `BackendConfig::latency`).
pub fn start_with_latency(clock: Clock, dev: bool, latency: std::time::Duration) -> Backend {
    start_cfg(clock, dev, latency, Default::default())
}

/// A dev-mode backend whose WSB delivery runs with `wsb`.
pub fn start_with_wsb(
    clock: Clock,
    wsb: vos_converter::backend::wsb::delivery::WsbSettings,
) -> Backend {
    start_cfg(clock, true, std::time::Duration::ZERO, wsb)
}

fn start_cfg(
    clock: Clock,
    dev: bool,
    latency: std::time::Duration,
    wsb: vos_converter::backend::wsb::delivery::WsbSettings,
) -> Backend {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let cfg = BackendConfig {
        db: dir.path().join("vos.db"),
        dev,
        clock,
        latency,
        tls: None,
        signals: true,
        wsb,
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = backend::server(listener, &cfg).unwrap();
            tx.send(server.handle()).unwrap();
            server.await.unwrap();
        })
    });
    let handle = rx.recv().unwrap();
    Backend {
        base,
        client: reqwest::Client::new(),
        handle,
        _dir: dir,
    }
}

/// An answer: status, content type, JSON body (Null when there is none).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub location: Option<String>,
}

impl Answer {
    /// The problem's fejlkode, after checking it is a well-formed problem+json answer.
    pub fn fejlkode(&self) -> u64 {
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(
            self.body["status"].as_u64(),
            Some(self.status.as_u16() as u64),
            "{self:?}"
        );
        assert_eq!(self.body["title"], self.body["fejltekst"], "{self:?}");
        self.body["fejlkode"]
            .as_u64()
            .unwrap_or_else(|| panic!("no fejlkode: {self:?}"))
    }

    /// The body's fejlkode, without checking the rest of the problem.
    pub fn code(&self) -> u64 {
        self.body["fejlkode"]
            .as_u64()
            .unwrap_or_else(|| panic!("no fejlkode in {self:?}"))
    }

    pub fn ok(self) -> Value {
        assert!(self.status.is_success(), "{self:?}");
        self.body
    }
}

/// A header of an answer, as text.
pub fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Sends `req` and reads its answer.
pub async fn answer(req: RequestBuilder) -> Answer {
    let res = req.send().await.unwrap();
    let status = res.status();
    let content_type = header(&res, "content-type").unwrap_or_default();
    let location = header(&res, "location");
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        content_type,
        body,
        location,
    }
}

impl Backend {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        org: Option<Org>,
        cpr: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, format!("{}{BASE}{path}", self.base));
        if let Some((ty, code)) = org {
            req = req
                .header("X-Organisation-Type", ty.to_string())
                .header("X-Organisation-Code", code)
                .header("X-User-Id", "test");
        }
        if let Some(cpr) = cpr {
            req = req.header("X-Cpr", cpr);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        answer(req).await
    }

    pub async fn get(&self, path: &str, org: Org, cpr: &str) -> Answer {
        self.send(Method::GET, path, Some(org), Some(cpr), None)
            .await
    }

    pub async fn post(&self, path: &str, org: Org, body: Value) -> Answer {
        self.send(Method::POST, path, Some(org), None, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, org: Org, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(org), None, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, org: Org, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(org), None, Some(body))
            .await
    }

    /// SetPersonRegister as STAR.
    pub async fn person(&self, cpr: &str, kommune: &str, akasse: Option<&str>, tilmeldt: bool) {
        let a = self
            .put(
                "/personregister",
                STAR,
                json!({"cpr": cpr, "kommunekode": kommune, "akasse": akasse, "tilmeldt": tilmeldt}),
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    }

    pub async fn create_kg(
        &self,
        org: Org,
        cpr: &str,
        ty: u32,
        start: &str,
        end: Option<&str>,
    ) -> Answer {
        self.post(
            "/kontaktgrupper",
            org,
            json!({"cpr": cpr, "kontaktgruppetype": ty, "startdato": start, "slutdato": end,
                   "haendelsestidspunkt": format!("{start}T09:00:00+01:00")}),
        )
        .await
    }

    pub async fn create_pc(&self, org: Org, cpr: &str, ty: u32, start: &str) -> Answer {
        self.post(
            "/personkategorier",
            org,
            json!({"cpr": cpr, "personkategoritype": ty, "startdato": start,
                   "haendelsestidspunkt": format!("{start}T09:00:00+01:00")}),
        )
        .await
    }
}

/// A fixed clock at a Danish local date-time given in UTC.
pub fn at(utc: &str) -> Clock {
    Clock::Fixed(utc.parse().unwrap())
}

// ---------------------------------------------------------------------------------------
// Danish dates
// ---------------------------------------------------------------------------------------

pub fn copenhagen() -> TimeZone {
    TimeZone::get("Europe/Copenhagen").unwrap()
}

pub fn danish_today() -> Date {
    Timestamp::now().to_zoned(copenhagen()).date()
}

/// A day as an xs:dateTime: Danish midnight with its offset.
pub fn xs_day(d: Date) -> String {
    d.to_zoned(copenhagen())
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

pub fn date(s: &str) -> Date {
    s.parse().unwrap()
}
