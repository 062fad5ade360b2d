#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTPS door as it runs: `vos-converter serve` as a child process (embedded dev
//! backend) with a TLS listener that requires client certificates, or behind a "proxy"
//! that forwards the certificate in a header, called over real sockets. Certificates are
//! made per test with `door::devcerts` into a temporary folder, with an agreements file
//! written here. What is checked: agreements decide claims (900511) before any REST call,
//! certificates that must not get in fail the handshake, SIGHUP reloads certificates and
//! agreements under traffic (and a broken file keeps the old set), the proxy mode honours
//! its header only from trusted addresses (900512), the envelope is strict, metric labels
//! stay bounded, and a trickled body is cut off (408, 900513).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use uuid::Uuid;
use vos_converter::door::devcerts::{Ca, Issued, Subject};

use common::child::{CALL_TIMEOUT, CPR_101, CPR_147, Serve};
use common::soap::{
    DFDG, PRS, PSS, Reply, Service, Side, Soap, create_contact_group, envelope_with, metadata_user,
    post_raw, soap_headers, status_request,
};
use common::xml::parse_xml;

const WSDL_SOAP11: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const WSDL_SOAP12: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
const REST_BASE: &str = "/personvisitering/v1";
const USER: &str = "door-e2e";

/// The jobcenter vendor's agreement name: a refusal must never show it.
const JOBCENTER_AGREEMENT: &str = "Leverandoer A KSS Jobcenter";
/// What the jobcenter certificate may act for (before any reload).
const JOBCENTER_ACTS: [(u8, &str); 3] = [(1, "101"), (3, "101"), (1, "751")];
/// A cutover still ahead: reads call REST for the KG/PC collections.
const BEFORE_CUTOVER: &str = "2099-01-01";
/// How long a poll for something asynchronous (a reload) may take.
const POLL: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Certificates and agreements in a temporary folder
// ---------------------------------------------------------------------------------------

/// A CA, the server's certificate and two client function certificates (OCES3 jobcenter
/// vendor of CVR 11111111, OCES2 a-kasse of CVR 22222222), written to a tempdir with an
/// agreements file.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Issued,
    jobcenter_subject: Subject,
    jobcenter: Issued,
    akasse: Issued,
}

fn jobcenter_subject() -> Subject {
    Subject::Oces3 {
        cvr: "11111111".into(),
        uuid: Uuid::new_v4(),
        cn: "KSS Jobcenter (door-e2e)".into(),
        o: "Leverandoer A (door-e2e)".into(),
    }
}

fn akasse_subject() -> Subject {
    Subject::Oces2 {
        cvr: "22222222".into(),
        fid: "1000012".into(),
        cn: "A-kasse 12 system (door-e2e)".into(),
        o: "A-kasse 12 (door-e2e)".into(),
    }
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("door-e2e CA").unwrap();
        let server = ca.server(&["localhost", "127.0.0.1"]).unwrap();
        let jobcenter_subject = jobcenter_subject();
        let jobcenter = ca.client(&jobcenter_subject).unwrap();
        let akasse = ca.client(&akasse_subject()).unwrap();
        let pki = Pki {
            dir,
            ca,
            server,
            jobcenter_subject,
            jobcenter,
            akasse,
        };
        pki.write("ca.pem", &pki.ca.cert_pem);
        pki.put_server(&pki.server.clone());
        pki.write_agreements(&[]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Replaces a file in one step (rename), as a deployment would.
    fn replace(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    /// server.pem and server-key.pem.
    fn put_server(&self, cert: &Issued) {
        self.replace("server.pem", &cert.cert_pem);
        self.replace("server-key.pem", &cert.key_pem);
    }

    /// agreements.toml: the jobcenter certificate (by its id) for `JOBCENTER_ACTS` plus
    /// `more`, the a-kasse CVR (any certificate) for (2, "12").
    fn write_agreements(&self, more: &[(u8, &str)]) {
        let acts: Vec<String> = JOBCENTER_ACTS
            .iter()
            .chain(more)
            .map(|(t, c)| format!("{{ type = {t}, code = \"{c}\" }}"))
            .collect();
        let text = format!(
            "[[agreement]]\nname = \"{JOBCENTER_AGREEMENT}\"\ncvr = \"11111111\"\n\
             certificate = \"{}\"\nacts_for = [ {} ]\n\n\
             [[agreement]]\nname = \"A-kasse 12\"\ncvr = \"22222222\"\n\
             acts_for = [ {{ type = 2, code = \"12\" }} ]\n",
            self.jobcenter_subject.certificate_id(),
            acts.join(", ")
        );
        self.replace("agreements.toml", &text);
    }

    fn agreements(&self) -> PathBuf {
        self.path("agreements.toml")
    }

    /// `serve` flags of the HTTPS door, in front of the embedded backend (`--dev`: on
    /// purpose).
    fn https_args(&self) -> Vec<String> {
        let p = |n: &str| self.path(n).display().to_string();
        vec![
            "--dev".into(),
            "--tls-cert".into(),
            p("server.pem"),
            "--tls-key".into(),
            p("server-key.pem"),
            "--client-ca".into(),
            p("ca.pem"),
            "--agreements".into(),
            p("agreements.toml"),
        ]
    }

    /// A client presenting `who` (written to `<stem>.pem`/`<stem>-key.pem`) and trusting
    /// the server's CA.
    fn client(&self, stem: &str, who: &Issued) -> Client {
        let (cert, key) = (format!("{stem}.pem"), format!("{stem}-key.pem"));
        // Replaced, not rewritten in place: another task may be reading them.
        self.replace(&cert, &who.cert_pem);
        self.replace(&key, &who.key_pem);
        let (cert, key) = (self.path(&cert), self.path(&key));
        tls_client(
            vos_converter::tls::client_config(Some((&cert, &key)), Some(&self.path("ca.pem")))
                .unwrap(),
        )
    }

    /// A client that presents no certificate.
    fn anonymous(&self) -> Client {
        tls_client(vos_converter::tls::client_config(None, Some(&self.path("ca.pem"))).unwrap())
    }

    /// `serve` with the HTTPS door (and `extra`), its client presenting the jobcenter
    /// certificate.
    fn serve(&self, extra: &[&str]) -> Serve {
        let mut args = self.https_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Serve::start_https(&args, "info", self.client("jobcenter", &self.jobcenter))
    }
}

/// A reqwest client over this rustls config; the peer's certificate is kept on every
/// response (`TlsInfo`).
fn tls_client(cfg: rustls::ClientConfig) -> Client {
    Client::builder()
        .tls_backend_preconfigured(cfg)
        .tls_info(true)
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap()
}

/// The DER certificate the server presented on the connection of `res`.
fn peer_cert(res: &reqwest::Response) -> Vec<u8> {
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS response with the peer's certificate")
        .to_vec()
}

fn sighup(pid: u32) {
    let st = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -HUP {pid}");
}

// ---------------------------------------------------------------------------------------
// SOAP
// ---------------------------------------------------------------------------------------

fn meta(ty: &str, code: &str) -> String {
    metadata_user(ty, code, USER)
}

fn envelope(v: Soap, header: &str, body: &str) -> String {
    envelope_with(
        v,
        &[("dfdg", DFDG), ("prs", PRS), ("pss", PSS)],
        header,
        body,
    )
}

fn status_envelope(v: Soap, org: (u8, &str), cpr: &str) -> String {
    envelope(v, &meta(&org.0.to_string(), org.1), &status_request(cpr))
}

/// GetVariablePersonStatus (SOAP 1.1) as `org` about `cpr`, with `client`.
async fn status_with(client: &Client, s: &Serve, org: (u8, &str), cpr: &str) -> Reply {
    soap_with(
        client,
        s,
        Service::Pss,
        Soap::V11,
        "GetVariablePersonStatus",
        &status_envelope(Soap::V11, org, cpr),
    )
    .await
}

async fn status(s: &Serve, org: (u8, &str), cpr: &str) -> Reply {
    status_with(&s.client, s, org, cpr).await
}

async fn soap_with(
    client: &Client,
    s: &Serve,
    service: Service,
    v: Soap,
    op: &str,
    envelope: &str,
) -> Reply {
    let (ct, action) = soap_headers(v, &service.action(op));
    post_raw(
        client,
        &s.url(service.endpoint()),
        &ct,
        action.as_deref(),
        envelope.as_bytes().to_vec(),
        None,
    )
    .await
}

/// A GetVariablePersonStatus that may fail at the transport: (status, text, the DER
/// certificate the server presented on the connection).
async fn try_status(
    client: &Client,
    s: &Serve,
    org: (u8, &str),
    cpr: &str,
) -> Result<(StatusCode, String, Vec<u8>), String> {
    let (ct, action) = soap_headers(Soap::V11, &Service::Pss.action("GetVariablePersonStatus"));
    let res = client
        .post(s.url(Service::Pss.endpoint()))
        .header("Content-Type", ct)
        .header("SOAPAction", action.unwrap())
        .body(status_envelope(Soap::V11, org, cpr))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let peer = peer_cert(&res);
    let status = res.status();
    let text = res.text().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, text, peer))
}

fn assert_status_ok(r: &Reply) {
    r.response(Soap::V11, PSS, "GetVariablePersonStatus");
}

/// A Client fault of version `v` with catalogue code `code`; returns the fault string.
fn assert_client_fault(r: &Reply, v: Soap, code: u32) -> String {
    let f = r.fault(v);
    assert_eq!(f.errors[0].0, code, "{}", r.text);
    assert_eq!(f.code, v.fault_code(Side::Client), "{}", r.text);
    assert_eq!(r.status, v.fault_status(Side::Client), "{}", r.text);
    f.reason
}

// ---------------------------------------------------------------------------------------
// /metrics and /api/migration
// ---------------------------------------------------------------------------------------

async fn get_text(client: &Client, url: &str) -> String {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET {url}");
    res.text().await.unwrap()
}

async fn metrics(s: &Serve) -> String {
    get_text(&s.client, &s.url("/metrics")).await
}

/// The sum of every sample of `name` (all label sets).
fn sum_samples(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// How many REST calls the converter made (every operationId).
async fn upstream_calls(s: &Serve) -> f64 {
    sum_samples(&metrics(s).await, "vos_converter_upstream_seconds_count")
}

/// The values `label` takes on the samples of `series`.
fn label_values(text: &str, series: &str, label: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix(series).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        for prefix in [format!("{{{label}=\""), format!(",{label}=\"")] {
            let hay = format!("{{{labels}");
            if let Some(i) = hay.find(&prefix) {
                let rest = &hay[i + prefix.len()..];
                out.insert(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
    }
    out
}

const CALLS: &str = "vos_converter_soap_calls_total";

/// The (type, code) pairs of `/api/migration`.
async fn usage_organisations(client: &Client, s: &Serve) -> BTreeSet<(String, String)> {
    let v: Value = serde_json::from_str(&get_text(client, &s.url("/api/migration")).await).unwrap();
    v["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["organisationType"].as_str().unwrap().to_owned(),
                o["organisationCode"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. A claim an agreement covers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_claim_the_agreement_covers_is_served_over_https() {
    let pki = Pki::new();
    let mut s = pki.serve(&[]);

    // The read, as the jobcenter certificate's own organisation.
    let r = status(&s, (1, "101"), CPR_101).await;
    assert_status_ok(&r);

    // A create; REST recorded it with the claimed organisation as registrant.
    let body = create_contact_group(
        CPR_101,
        1,
        "2024-01-01T00:00:00+01:00",
        None,
        "2024-01-01T10:00:00+01:00",
    );
    let r = soap_with(
        &s.client,
        &s,
        Service::Prs,
        Soap::V11,
        "CreateContactGroup",
        &envelope(Soap::V11, &meta("1", "101"), &body),
    )
    .await;
    let (doc, el) = r.response(Soap::V11, PRS, "CreateContactGroup");
    let id_el = doc
        .child(el, PRS, "ContactGroupIdentifier")
        .unwrap_or_else(|| panic!("no ContactGroupIdentifier: {}", r.text));
    let id: Uuid = doc.els[id_el].text.parse().unwrap();
    let rec: Value = serde_json::from_str(
        &common::child::client()
            .get(format!("{}{REST_BASE}/kontaktgrupper/{id}", s.rest))
            .header("X-Organisation-Type", "1")
            .header("X-Organisation-Code", "101")
            .header("X-Cpr", CPR_101)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        rec["oprettetAf"]["organisationstype"],
        Value::from(1),
        "{rec}"
    );
    assert_eq!(
        rec["oprettetAf"]["organisationskode"],
        Value::from("101"),
        "{rec}"
    );

    // /readyz (over the same door) says how callers are identified.
    let ready = get_text(&s.client, &s.url("/readyz")).await;
    assert!(
        ready.contains("identity: certificate (2 connection agreements)"),
        "{ready}"
    );
    s.finish(&[CPR_101]);
}

// ---------------------------------------------------------------------------------------
// 2. A claim outside the agreement: 900511, before any REST call
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_claim_outside_the_agreement_is_refused_before_any_rest_call() {
    let pki = Pki::new();
    // Before the cutover, so that a read calls REST (after it, PSS answers alone).
    let mut s = pki.serve(&["--cutover", BEFORE_CUTOVER]);

    // The metric counts REST calls: one allowed read makes some.
    let before = upstream_calls(&s).await;
    assert_status_ok(&status(&s, (1, "101"), CPR_101).await);
    let after_allowed = upstream_calls(&s).await;
    assert!(after_allowed > before, "{before} -> {after_allowed}");

    for v in [Soap::V11, Soap::V12] {
        for (org, cpr) in [((5u8, "55570117"), CPR_101), ((1, "147"), CPR_147)] {
            let r = soap_with(
                &s.client,
                &s,
                Service::Pss,
                v,
                "GetVariablePersonStatus",
                &status_envelope(v, org, cpr),
            )
            .await;
            let reason = assert_client_fault(&r, v, 900511);
            let refused = format!("{}:{}", org.0, org.1);
            assert!(reason.contains(&refused), "{reason}");
            // Nothing of what the certificate may act for.
            for (t, c) in JOBCENTER_ACTS {
                assert!(!r.text.contains(&format!("{t}:{c}")), "{}", r.text);
            }
            assert!(!r.text.contains(JOBCENTER_AGREEMENT), "{}", r.text);
            assert!(!r.text.contains("11111111"), "{}", r.text);
        }
        // A write as another organisation: refused too, with no code-list read either.
        let body = create_contact_group(
            CPR_147,
            1,
            "2024-01-01T00:00:00+01:00",
            None,
            "2024-01-01T10:00:00+01:00",
        );
        let r = soap_with(
            &s.client,
            &s,
            Service::Prs,
            v,
            "CreateContactGroup",
            &envelope(v, &meta("1", "147"), &body),
        )
        .await;
        assert_client_fault(&r, v, 900511);
    }
    assert_eq!(
        upstream_calls(&s).await,
        after_allowed,
        "a refused claim made a REST call"
    );

    // An OCES2 certificate (CVR:22222222-FID:...) for the a-kasse its CVR's agreement names.
    let akasse = pki.client("akasse", &pki.akasse);
    assert_status_ok(&status_with(&akasse, &s, (2, "12"), CPR_101).await);
    // ... and not for another a-kasse.
    let r = status_with(&akasse, &s, (2, "34"), CPR_147).await;
    let reason = assert_client_fault(&r, Soap::V11, 900511);
    assert!(
        reason.contains("2:34") && !reason.contains("2:12"),
        "{reason}"
    );
    s.finish(&[CPR_101, CPR_147]);
}

// ---------------------------------------------------------------------------------------
// 3. Certificates that must not get in fail the handshake
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_unknown_expired_and_revoked_certificates_fail_the_handshake() {
    let pki = Pki::new();
    let subject = jobcenter_subject();
    let revoked = pki.ca.client(&subject).unwrap();
    let expired = pki.ca.client_valid(&subject, -30, 10).unwrap();
    let stranger_ca = Ca::new("someone else's CA").unwrap();
    let stranger = stranger_ca.client(&pki.jobcenter_subject).unwrap();
    let crl = pki.write("crl.pem", &pki.ca.crl(&[&revoked]).unwrap());
    let crl = crl.display().to_string();
    let mut s = pki.serve(&["--client-crl", &crl]);

    let valid = pki.client("jobcenter", &pki.jobcenter);
    // Each with the TLS alert the server sends (rustls' names, in the error's chain).
    let refused: [(&str, Client, &str); 4] = [
        (
            "no client certificate",
            pki.anonymous(),
            "AlertReceived(CertificateRequired)",
        ),
        (
            "a certificate of an unknown CA",
            pki.client("stranger", &stranger),
            "AlertReceived(UnknownCA)",
        ),
        (
            "an expired certificate",
            pki.client("expired", &expired),
            "AlertReceived(CertificateExpired)",
        ),
        (
            "a revoked certificate",
            pki.client("revoked", &revoked),
            "AlertReceived(CertificateRevoked)",
        ),
    ];
    for (what, client, alert) in &refused {
        // The valid certificate works on the same server, before and after each refusal.
        let ok = try_status(&valid, &s, (1, "101"), CPR_101).await;
        assert!(matches!(&ok, Ok((StatusCode::OK, _, _))), "{ok:?}");
        // With TLS 1.3 the client learns of the refusal when it reads: an error at request
        // time, never an answer.
        match try_status(client, &s, (1, "101"), CPR_101).await {
            Ok(r) => panic!("{what} got an answer: {r:?}"),
            Err(e) => assert!(e.contains(alert), "{what}: {e}"),
        }
    }
    let ok = try_status(&valid, &s, (1, "101"), CPR_101).await;
    assert!(matches!(&ok, Ok((StatusCode::OK, _, _))), "{ok:?}");
    // Nor does /metrics answer without a certificate: the door is the whole listener.
    assert!(pki.anonymous().get(s.url("/metrics")).send().await.is_err());
    s.finish(&[CPR_101]);
}

// ---------------------------------------------------------------------------------------
// 4. SIGHUP: certificates and agreements reload under traffic
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Traffic {
    stop: AtomicBool,
    /// Set once a new connection has seen the new server certificate.
    reloaded: AtomicBool,
    failures: Mutex<Vec<String>>,
    kept_calls: AtomicUsize,
    fresh_calls: AtomicUsize,
    /// Calls on the kept-alive connection after the reload, still with the old certificate:
    /// the connection outlived the reload.
    kept_old_after_reload: AtomicUsize,
    fresh_after_reload: AtomicUsize,
}

/// Polls `cond` until it holds; fails the test after `POLL`.
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + POLL;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_certificates_and_agreements_without_failing_a_call() {
    let pki = Pki::new();
    let s = Arc::new(pki.serve(&[]));
    let pid = s.child.pid();
    let cert_a = pki.server.der.clone();
    let fresh = || pki.client("jobcenter", &pki.jobcenter);

    // Before: cert A; (1, "147") is outside the agreement.
    let (st, _, peer) = try_status(&fresh(), &s, (1, "101"), CPR_101).await.unwrap();
    assert_eq!((st, peer == cert_a), (StatusCode::OK, true));
    assert_client_fault(&status(&s, (1, "147"), CPR_147).await, Soap::V11, 900511);

    // Calls in a loop, on one kept-alive connection and on new ones.
    let traffic = Arc::new(Traffic::default());
    let background = {
        let (t, s) = (traffic.clone(), s.clone());
        let kept = pki.client("jobcenter", &pki.jobcenter);
        let cfg_cert = pki.path("jobcenter.pem");
        let cfg_key = pki.path("jobcenter-key.pem");
        let ca = pki.path("ca.pem");
        let cert_a = cert_a.clone();
        tokio::spawn(async move {
            while !t.stop.load(Ordering::SeqCst) {
                let reloaded = t.reloaded.load(Ordering::SeqCst);
                match try_status(&kept, &s, (1, "101"), CPR_101).await {
                    Ok((StatusCode::OK, _, peer)) => {
                        t.kept_calls.fetch_add(1, Ordering::SeqCst);
                        if reloaded && peer == cert_a {
                            t.kept_old_after_reload.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    other => t
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("kept-alive: {other:?}")),
                }
                let client = tls_client(
                    vos_converter::tls::client_config(Some((&cfg_cert, &cfg_key)), Some(&ca))
                        .unwrap(),
                );
                match try_status(&client, &s, (1, "101"), CPR_101).await {
                    Ok((StatusCode::OK, _, _)) => {
                        t.fresh_calls.fetch_add(1, Ordering::SeqCst);
                        if reloaded {
                            t.fresh_after_reload.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    other => t
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("new connection: {other:?}")),
                }
            }
        })
    };
    wait_for("traffic", || {
        traffic.fresh_calls.load(Ordering::SeqCst) >= 3
    })
    .await;

    // Rotate to cert B (same CA), add (1, "147") to the agreement, SIGHUP.
    let cert_b = pki.ca.server(&["localhost", "127.0.0.1"]).unwrap();
    assert_ne!(cert_b.der, cert_a);
    pki.put_server(&cert_b);
    pki.write_agreements(&[(1, "147")]);
    sighup(pid);
    let deadline = Instant::now() + POLL;
    loop {
        let (st, _, peer) = try_status(&fresh(), &s, (1, "101"), CPR_101).await.unwrap();
        assert_eq!(st, StatusCode::OK);
        let r = status_with(&fresh(), &s, (1, "147"), CPR_147).await;
        if peer == cert_b.der && r.status == StatusCode::OK {
            assert_status_ok(&r);
            break;
        }
        assert!(
            peer == cert_a || peer == cert_b.der,
            "an unknown server certificate"
        );
        assert!(
            Instant::now() < deadline,
            "after SIGHUP: new cert seen {}, (1, 147) answered {}",
            peer == cert_b.der,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    traffic.reloaded.store(true, Ordering::SeqCst);
    wait_for("traffic after the reload", || {
        traffic.fresh_after_reload.load(Ordering::SeqCst) >= 3
            && traffic.kept_old_after_reload.load(Ordering::SeqCst) >= 3
    })
    .await;

    // A broken agreements file: the reload fails, says why, and the old agreements stay.
    pki.replace("agreements.toml", "[[agreement]\nname = \"broken\n");
    sighup(pid);
    let deadline = Instant::now() + POLL;
    let line = loop {
        let log = s.child.stderr_text();
        if let Some(l) = log.lines().find(|l| l.contains("agreements reload failed")) {
            break l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no reload failure logged:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        line.contains("agreements.toml") && line.contains("old agreements stay"),
        "{line}"
    );
    assert_status_ok(&status_with(&fresh(), &s, (1, "147"), CPR_147).await);
    assert_status_ok(&status_with(&fresh(), &s, (1, "101"), CPR_101).await);
    let done = traffic.fresh_calls.load(Ordering::SeqCst);
    wait_for("traffic after the failed reload", || {
        traffic.fresh_calls.load(Ordering::SeqCst) >= done + 2
    })
    .await;

    traffic.stop.store(true, Ordering::SeqCst);
    background.await.unwrap();
    let failures = traffic.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} kept-alive and {} new-connection calls failed:\n{}",
        failures.len(),
        traffic.kept_calls.load(Ordering::SeqCst),
        traffic.fresh_calls.load(Ordering::SeqCst),
        failures.join("\n")
    );
    let mut s = Arc::into_inner(s).expect("the background task is done");
    s.finish(&[CPR_101, CPR_147]);
}

// ---------------------------------------------------------------------------------------
// 5. Proxy mode: the certificate header, only from trusted proxies
// ---------------------------------------------------------------------------------------

/// Percent-encodes every byte but the unreserved ones, as nginx's
/// `$ssl_client_escaped_cert`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn escaped(pem: &str) -> String {
    utf8_percent_encode(pem, NOT_UNRESERVED).to_string()
}

fn proxy_serve(pki: &Pki, trusted: &str, extra: &[&str]) -> Serve {
    let agreements = pki.agreements().display().to_string();
    let ca = pki.path("ca.pem").display().to_string();
    let mut args = vec![
        // The embedded backend behind the door, on purpose.
        "--dev",
        "--trusted-proxy",
        trusted,
        "--client-cert-header",
        "X-Client-Cert",
        "--agreements",
        &agreements,
        "--client-ca",
        &ca,
    ];
    args.extend(extra);
    Serve::start(&args)
}

/// GetVariablePersonStatus through the "proxy" with these extra headers.
async fn proxied_status(s: &Serve, org: (u8, &str), cpr: &str, headers: &[(&str, &str)]) -> Reply {
    let (ct, action) = soap_headers(Soap::V11, &Service::Pss.action("GetVariablePersonStatus"));
    let mut req = s
        .client
        .post(s.url(Service::Pss.endpoint()))
        .header("Content-Type", ct)
        .header("SOAPAction", action.unwrap())
        .body(status_envelope(Soap::V11, org, cpr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    Reply {
        status: res.status(),
        content_type: common::header(&res, "content-type").unwrap_or_default(),
        request_id: common::header(&res, "x-request-id"),
        text: res.text().await.unwrap(),
        elapsed: Duration::ZERO,
    }
}

/// The WSDL's soap:address and soap12:address locations, and its Cache-Control.
async fn wsdl(s: &Serve, headers: &[(&str, &str)]) -> (Vec<String>, Option<String>) {
    let mut req = s
        .client
        .get(format!("{}?wsdl", s.url(Service::Pss.endpoint())));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cache = common::header(&res, "cache-control");
    let text = res.text().await.unwrap();
    let doc = parse_xml(&text).unwrap();
    let mut locations: Vec<String> = [WSDL_SOAP11, WSDL_SOAP12]
        .iter()
        .flat_map(|ns| doc.all(ns, "address"))
        .map(|e| e.attr("location").unwrap().to_owned())
        .collect();
    locations.dedup();
    (locations, cache)
}

#[tokio::test]
async fn proxy_mode_honours_the_certificate_header_only_from_trusted_proxies() {
    let pki = Pki::new();
    let jobcenter = escaped(&pki.jobcenter.cert_pem);
    assert!(!jobcenter.contains('\n') && !jobcenter.contains('+') && !jobcenter.contains('/'));
    let cert = [("X-Client-Cert", jobcenter.as_str())];

    // 127.0.0.1 is the trusted proxy.
    let mut s = proxy_serve(&pki, "127.0.0.1/32", &[]);
    assert_status_ok(&proxied_status(&s, (1, "101"), CPR_101, &cert).await);
    let r = proxied_status(&s, (1, "147"), CPR_147, &cert).await;
    assert_client_fault(&r, Soap::V11, 900511);
    let r = proxied_status(&s, (1, "101"), CPR_101, &[]).await;
    assert_client_fault(&r, Soap::V11, 900512);
    // A certificate the client CAs do not verify.
    let stranger = Ca::new("someone else's CA")
        .unwrap()
        .client(&pki.jobcenter_subject)
        .unwrap();
    let forged = escaped(&stranger.cert_pem);
    let r = proxied_status(&s, (1, "101"), CPR_101, &[("X-Client-Cert", &forged)]).await;
    assert_client_fault(&r, Soap::V11, 900512);
    let r = proxied_status(
        &s,
        (1, "101"),
        CPR_101,
        &[("X-Client-Cert", "not%20a%20pem")],
    )
    .await;
    assert_client_fault(&r, Soap::V11, 900512);
    // The trusted proxy's forwarded host names the WSDL's address (no-store: per client).
    let (locations, cache) = wsdl(
        &s,
        &[
            ("X-Forwarded-Host", "gw.example"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        locations,
        vec!["https://gw.example/PersonStatusService/20".to_owned()]
    );
    assert_eq!(cache.as_deref(), Some("no-store"));
    s.finish(&[CPR_101, CPR_147]);

    // 127.0.0.1 is not a trusted proxy: its header and forwarded host are ignored.
    let mut s = proxy_serve(&pki, "10.0.0.0/8", &[]);
    let r = proxied_status(&s, (1, "101"), CPR_101, &cert).await;
    assert_client_fault(&r, Soap::V11, 900512);
    let (locations, cache) = wsdl(
        &s,
        &[
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(locations, vec![s.url("/PersonStatusService/20")]);
    assert_eq!(cache.as_deref(), Some("no-store"));
    s.finish(&[CPR_101]);

    // A fixed public URL: every client gets it, and it may be cached.
    let mut s = proxy_serve(
        &pki,
        "10.0.0.0/8",
        &["--public-url", "https://soap.example"],
    );
    let (locations, cache) = wsdl(&s, &[("X-Forwarded-Host", "evil.example")]).await;
    assert_eq!(
        locations,
        vec!["https://soap.example/PersonStatusService/20".to_owned()]
    );
    assert!(
        !cache.as_deref().unwrap_or_default().contains("no-store"),
        "{cache:?}"
    );
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 6. The strict envelope, over HTTPS
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_envelope_is_strict_over_https() {
    let pki = Pki::new();
    let mut s = pki.serve(&["--cutover", BEFORE_CUTOVER]);
    let nil = "<dfdg:OrganisationCode xsi:nil=\"true\" \
               xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"/>";
    for v in [Soap::V11, Soap::V12] {
        let ok_meta = meta("1", "101");
        let body = status_request(CPR_101);
        let good = envelope(v, &ok_meta, &body);
        // The well-formed one is served: the cases below differ from it in one point.
        let r = soap_with(
            &s.client,
            &s,
            Service::Pss,
            v,
            "GetVariablePersonStatus",
            &good,
        )
        .await;
        r.response(v, PSS, "GetVariablePersonStatus");
        let before = upstream_calls(&s).await;

        let root_start = good.find("<env:Envelope").unwrap();
        let header_block = format!("<env:Header>{ok_meta}</env:Header>");
        let header_after_body = good
            .replace(&header_block, "")
            .replace("</env:Envelope>", &format!("{header_block}</env:Envelope>"));
        assert_ne!(header_after_body, good);
        let code_twice = ok_meta.replace(
            "<dfdg:OrganisationCode>101</dfdg:OrganisationCode>",
            "<dfdg:OrganisationCode>101</dfdg:OrganisationCode>\
             <dfdg:OrganisationCode>101</dfdg:OrganisationCode>",
        );
        let type_twice = ok_meta.replace(
            "<dfdg:OrganisationType>1</dfdg:OrganisationType>",
            "<dfdg:OrganisationType>1</dfdg:OrganisationType>\
             <dfdg:OrganisationType>1</dfdg:OrganisationType>",
        );
        let nil_code = ok_meta.replace("<dfdg:OrganisationCode>101</dfdg:OrganisationCode>", nil);
        let cases: Vec<(&str, String, u32)> = vec![
            (
                "two Envelope roots",
                format!("{good}{}", &good[root_start..]),
                900506,
            ),
            ("the Header after the Body", header_after_body, 900506),
            (
                "two RequestUserMetadata",
                envelope(v, &format!("{ok_meta}{ok_meta}"), &body),
                900507,
            ),
            (
                "OrganisationCode twice",
                envelope(v, &code_twice, &body),
                900507,
            ),
            (
                "OrganisationType twice",
                envelope(v, &type_twice, &body),
                900507,
            ),
            (
                "xsi:nil OrganisationCode",
                envelope(v, &nil_code, &body),
                900507,
            ),
            (
                "OrganisationType 05",
                envelope(v, &meta("05", "101"), &body),
                900507,
            ),
            (
                "OrganisationType +1",
                envelope(v, &meta("+1", "101"), &body),
                900507,
            ),
            (
                "OrganisationType 256",
                envelope(v, &meta("256", "101"), &body),
                900507,
            ),
        ];
        for (what, env, code) in cases {
            assert_ne!(env, good, "{what}");
            let r = soap_with(
                &s.client,
                &s,
                Service::Pss,
                v,
                "GetVariablePersonStatus",
                &env,
            )
            .await;
            let f = r.fault(v);
            assert_eq!(
                (f.errors[0].0, f.code.as_str(), r.status),
                (
                    code,
                    v.fault_code(Side::Client),
                    v.fault_status(Side::Client)
                ),
                "{what} ({v:?}): {}",
                r.text
            );
        }
        assert_eq!(
            upstream_calls(&s).await,
            before,
            "a refused envelope reached REST"
        );
    }
    s.finish(&[CPR_101]);
}

// ---------------------------------------------------------------------------------------
// 7. Metric labels and usage keys stay bounded
// ---------------------------------------------------------------------------------------

/// About a thousand spellings of organisation type 5.
fn spellings_of_five() -> Vec<String> {
    let mut out = Vec::new();
    for lead in ["", " ", "\t", "\n", "  \n\t"] {
        for sign in ["", "+"] {
            for zeros in 0..20 {
                for tail in ["", " ", ".0", "\n", "e0"] {
                    out.push(format!("{lead}{sign}{}5{tail}", "0".repeat(zeros)));
                }
            }
        }
    }
    out.extend(
        [
            "&#53;",
            "&#x35;",
            "<![CDATA[5]]>",
            "٥",
            "５",
            "0x5",
            "-5",
            "5-",
            "5+0",
        ]
        .map(String::from),
    );
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_stay_bounded_whatever_the_callers_send() {
    // Header mode (dev default): RequestUserMetadata trusted, but spelled many ways.
    let data = tempfile::tempdir().unwrap();
    let s = Arc::new(Serve::start_in(data.path(), &[], "info"));
    let spellings = spellings_of_five();
    assert!(spellings.len() >= 1000, "{}", spellings.len());
    let mut refused = 0;
    for chunk in spellings.chunks(25) {
        let mut set = tokio::task::JoinSet::new();
        for ty in chunk {
            let (s, ty) = (s.clone(), ty.clone());
            set.spawn(async move {
                let env = envelope(Soap::V11, &meta(&ty, "12345678"), &status_request(CPR_101));
                let r = soap_with(
                    &s.client,
                    &s,
                    Service::Pss,
                    Soap::V11,
                    "GetVariablePersonStatus",
                    &env,
                )
                .await;
                (ty, r)
            });
        }
        while let Some(done) = set.join_next().await {
            let (ty, r) = done.unwrap();
            // XML character references and CDATA are the text "5"; whitespace around a
            // canonical number is allowed; every other spelling is refused.
            let canonical = ty.trim_matches([' ', '\t', '\n']) == "5"
                || ["&#53;", "&#x35;", "<![CDATA[5]]>"].contains(&ty.as_str());
            let code = (r.status != StatusCode::OK).then(|| r.fault(Soap::V11).errors[0].0);
            if canonical {
                assert_eq!(code, None, "type {ty:?}: {}", r.text);
            } else {
                assert_eq!(code, Some(900507), "type {ty:?}: {}", r.text);
                assert_client_fault(&r, Soap::V11, 900507);
                refused += 1;
            }
        }
    }
    assert!(refused > 900, "{refused}");
    let text = metrics(&s).await;
    let types = label_values(&text, CALLS, "organisation_type");
    assert_eq!(
        types,
        BTreeSet::from(["5".to_owned(), "other".to_owned()]),
        "organisation_type labels"
    );
    let codes = label_values(&text, CALLS, "organisation_code");
    assert_eq!(
        codes,
        BTreeSet::from(["12345678".to_owned(), "other".to_owned()])
    );
    let orgs = usage_organisations(&s.client, &s).await;
    assert!(orgs.len() <= 2, "{orgs:?}");
    // And what reaches the disk (at SIGTERM) is as bounded.
    let mut s = Arc::into_inner(s).unwrap();
    let (exit, log) = s.stop();
    assert!(exit.success(), "{log}");
    common::child::assert_no_cpr(&log, &[CPR_101]);
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("migration-usage.json")).unwrap(),
    )
    .unwrap();
    let persisted: BTreeSet<String> = stored["last_seen"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.splitn(3, '|').take(2).collect::<Vec<_>>().join("|"))
        .collect();
    assert!(
        persisted.is_subset(&BTreeSet::from([
            "5|12345678".to_owned(),
            "other|other".to_owned()
        ])) && !persisted.is_empty(),
        "{persisted:?}"
    );

    // Certificate mode: a refused claim never becomes a label or a usage key.
    let pki = Pki::new();
    let mut s = pki.serve(&[]);
    assert_status_ok(&status(&s, (1, "101"), CPR_101).await);
    let before = metrics(&s).await;
    let codes_before = label_values(&before, CALLS, "organisation_code");
    assert!(codes_before.contains("101"), "{codes_before:?}");
    for i in 0..200 {
        let code = format!("9{i:03}");
        let r = status(&s, (1, &code), CPR_101).await;
        assert_client_fault(&r, Soap::V11, 900511);
    }
    let after = metrics(&s).await;
    // The refusals are counted as organisation "other"; none of their codes is a label.
    let mut expected = codes_before.clone();
    expected.insert("other".to_owned());
    assert_eq!(label_values(&after, CALLS, "organisation_code"), expected);
    assert!(!after.contains("organisation_code=\"9"), "{after}");
    assert!(
        label_values(&after, CALLS, "fault_code").contains("900511"),
        "the refusals are counted"
    );
    let orgs = usage_organisations(&s.client, &s).await;
    assert!(orgs.iter().all(|(_, c)| !c.starts_with('9')), "{orgs:?}");
    s.finish(&[CPR_101]);
}

// ---------------------------------------------------------------------------------------
// 8. A trickled body is cut off
// ---------------------------------------------------------------------------------------

#[test]
fn a_body_trickled_byte_by_byte_gets_408_and_the_connection_closes() {
    let mut s = Serve::start(&["--body-timeout-ms", "500"]);
    let addr = s.soap.strip_prefix("http://").unwrap().to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let head = format!(
        "POST /PersonStatusService/20 HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"{}\"\r\nContent-Length: 1000\r\n\r\n",
        Service::Pss.action("GetVariablePersonStatus")
    );
    stream.write_all(head.as_bytes()).unwrap();
    let sent = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let (stop, mut w) = (stop.clone(), stream.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut written = 0;
            while !stop.load(Ordering::SeqCst) && written < 100 {
                std::thread::sleep(Duration::from_millis(100));
                if w.write_all(b" ").is_err() {
                    break;
                }
                written += 1;
            }
            written
        })
    };

    // The answer: status line, headers, a body of Content-Length bytes.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut buf).expect("an answer within 3 s");
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .expect("a content-length");
            break (i + 4, len);
        }
    };
    let answered = sent.elapsed();
    while got.len() < head_len + body_len {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed in the middle of the answer");
        got.extend_from_slice(&buf[..n]);
    }
    stop.store(true, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&got[..head_len]).into_owned();
    let body = String::from_utf8(got[head_len..head_len + body_len].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        answered >= Duration::from_millis(450) && answered < Duration::from_secs(2),
        "answered after {answered:?}"
    );
    let reply = Reply {
        status: StatusCode::REQUEST_TIMEOUT,
        content_type: head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default(),
        request_id: None,
        text: body,
        elapsed: answered,
    };
    let f = reply.fault(Soap::V11);
    assert_eq!(f.errors[0].0, 900513, "{}", reply.text);
    assert_eq!(f.code, "Client", "{}", reply.text);

    // And the server closes the connection: EOF (or a reset, the trickle having written
    // into a closed socket), not a read timeout.
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(e) => break Err(e),
        }
    };
    match end {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection stayed open: {e}"),
    }
    let written = trickle.join().unwrap();
    assert!(written < 20, "the trickle went on for {written} bytes");
    s.finish(&[]);
}

// ---------------------------------------------------------------------------------------
// 9. Found while writing 7: Unicode whitespace around OrganisationType
// ---------------------------------------------------------------------------------------

/// OrganisationType is xs:int, whose whitespace facet collapses XML whitespace only (space,
/// tab, CR, LF). src/soap/envelope.rs trims the metadata texts with `str::trim`, which
/// also removes Unicode whitespace (U+00A0, U+2003, U+3000, ...), so "5\u{a0}" is read as
/// the canonical 5. (The label is still "5": the cardinality is not at stake, the
/// strictness is.)
#[tokio::test]
async fn unicode_whitespace_around_the_organisation_type_is_refused() {
    let mut s = Serve::start(&[]);
    let mut accepted = Vec::new();
    for ty in ["5\u{a0}", "\u{a0}5", "\u{2003}5", "5\u{3000}", "\u{85}5"] {
        let env = envelope(Soap::V11, &meta(ty, "12345678"), &status_request(CPR_101));
        let r = soap_with(
            &s.client,
            &s,
            Service::Pss,
            Soap::V11,
            "GetVariablePersonStatus",
            &env,
        )
        .await;
        if r.status == StatusCode::OK {
            accepted.push(format!("{ty:?}"));
        } else {
            assert_client_fault(&r, Soap::V11, 900507);
        }
    }
    s.finish(&[CPR_101]);
    assert!(
        accepted.is_empty(),
        "accepted as type 5: {}",
        accepted.join(", ")
    );
}

// ---------------------------------------------------------------------------------------
// A connection does not outlive its certificate's trust
// ---------------------------------------------------------------------------------------

/// A keep-alive connection made with a certificate that is then revoked (CRL + SIGHUP) is
/// refused on its next call (900512), not served for as long as the client keeps it open.
#[tokio::test]
async fn a_certificate_revoked_after_the_handshake_is_refused_on_its_open_connection() {
    let pki = Pki::new();
    let crl = pki.write("crl.pem", &pki.ca.crl(&[]).unwrap());
    let crl = crl.display().to_string();
    let mut s = pki.serve(&["--client-crl", &crl]);
    let doomed = pki.ca.client(&pki.jobcenter_subject).unwrap();
    let kept = pki.client("doomed", &doomed);
    let first = try_status(&kept, &s, (1, "101"), CPR_101).await.unwrap();
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);

    pki.replace("crl.pem", &pki.ca.crl(&[&doomed]).unwrap());
    sighup(s.child.pid());
    // Until a new connection with that certificate fails its handshake, the reload has not
    // happened yet.
    let fresh = || pki.client("doomed2", &doomed);
    let deadline = std::time::Instant::now() + POLL;
    while try_status(&fresh(), &s, (1, "101"), CPR_101).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the CRL was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The kept-alive connection (the same certificate as at its handshake) is refused now.
    let (status, text, _) = try_status(&kept, &s, (1, "101"), CPR_101).await.unwrap();
    assert!(
        text.contains("<ErrorCode>900512</ErrorCode>") || text.contains(":ErrorCode>900512<"),
        "{status} {text}"
    );
    // Another certificate on its own open connection goes on being served.
    let ok = try_status(
        &pki.client("jobcenter", &pki.jobcenter),
        &s,
        (1, "101"),
        CPR_101,
    )
    .await
    .unwrap();
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    s.finish(&[CPR_101]);
}

/// A refused claim is nobody's call on the dashboard: a certificate claiming an
/// organisation another certificate's agreement covers is counted as `other`, not as that
/// organisation.
#[tokio::test]
async fn a_refused_claim_is_not_counted_as_the_organisation_it_claims() {
    let pki = Pki::new();
    let mut s = pki.serve(&["--cutover", BEFORE_CUTOVER]);
    // The a-kasse certificate claims jobcenter 101 (covered, but by the jobcenter's agreement).
    let akasse = pki.client("akasse", &pki.akasse);
    let r = status_with(&akasse, &s, (1, "101"), CPR_101).await;
    assert_client_fault(&r, Soap::V11, 900511);
    let text = metrics(&s).await;
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(CALLS) && l.contains("fault_code=\"900511\""))
        .collect();
    assert!(!refused.is_empty(), "{text}");
    for l in &refused {
        assert!(
            l.contains("organisation_type=\"other\"") && l.contains("organisation_code=\"other\""),
            "{l}"
        );
    }
    // The jobcenter's own call is counted as 1:101.
    assert_status_ok(&status(&s, (1, "101"), CPR_101).await);
    let text = metrics(&s).await;
    assert!(
        text.lines().any(|l| l.starts_with(CALLS)
            && l.contains("organisation_type=\"1\"")
            && l.contains("organisation_code=\"101\"")),
        "{text}"
    );
    s.finish(&[CPR_101]);
}

/// A forwarded certificate header sent twice (a proxy that appended instead of replacing)
/// is refused: the client's own copy could stand first.
#[tokio::test]
async fn a_forwarded_certificate_header_sent_twice_is_refused() {
    let pki = Pki::new();
    let mut s = proxy_serve(&pki, "127.0.0.1/32", &[]);
    let mine = escaped(&pki.jobcenter.cert_pem);
    let other = escaped(&pki.akasse.cert_pem);
    let once = proxied_status(&s, (1, "101"), CPR_101, &[("X-Client-Cert", &mine)]).await;
    assert_status_ok(&once);
    let twice = proxied_status(
        &s,
        (1, "101"),
        CPR_101,
        &[("X-Client-Cert", &mine), ("X-Client-Cert", &other)],
    )
    .await;
    assert_client_fault(&twice, Soap::V11, 900512);
    s.finish(&[CPR_101]);
}
