#![allow(clippy::unwrap_used, clippy::expect_used)]
//! How `serve` starts and stops (issue 14, point 6): a call in flight at SIGTERM is
//! answered before the process exits 0; a production setting without `rest_url` does not
//! quietly become dev mode; dev mode says so in `/readyz` and in a metric.

mod common;

use std::time::Duration;

use common::child::{CPR_101, Serve};
use common::soap::Service::Pss;
use common::soap::Soap::V11;
use common::soap::{DFDG, PSS, envelope_with, metadata_user, post_soap, status_request};

fn status_call() -> String {
    envelope_with(
        V11,
        &[("dfdg", DFDG), ("pss", PSS)],
        &metadata_user("5", "12345678", "sb-lifecycle"),
        &status_request(CPR_101),
    )
}

/// The REST service answers 1.5 s late; SIGTERM arrives while a read waits for it. The
/// read is answered 200 with its collections, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_at_sigterm_is_answered_before_the_exit() {
    let backend = common::start_with_latency(
        vos_converter::dktime::Clock::System,
        true,
        Duration::from_millis(1500),
    );
    let mut serve = Serve::start(&[
        "--rest-url",
        &backend.base,
        "--identity",
        "header",
        "--cutover",
        "2099-01-01",
    ]);
    let url = serve.url(Pss.endpoint());
    let client = serve.client.clone();
    let action = Pss.action("GetVariablePersonStatus");
    let call =
        tokio::spawn(async move { post_soap(&client, &url, V11, &action, &status_call()).await });
    // Well inside the REST wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, log) = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    let reply = call.await.unwrap();
    assert_eq!(reply.status, 200, "{}\n{log}", reply.text);
    assert!(
        reply.text.contains("GetVariablePersonStatusResponse"),
        "{}",
        reply.text
    );
    assert!(
        reply.elapsed >= Duration::from_millis(1400),
        "the answer waited for REST: {:?}",
        reply.elapsed
    );
    assert!(status.success(), "serve exited with {status}:\n{log}");
    assert!(
        log.contains("stopped: calls drained, usage written"),
        "{log}"
    );
}

/// With the embedded backend the converter stops first and the backend after it: a
/// SIGTERM does not reach the backend on its own (it would stop while calls drain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_says_so_and_stops_in_order() {
    let mut serve = Serve::start(&[]);
    let ready = serve.client.get(serve.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert!(text.contains("DEV MODE"), "{text}");
    let metrics = serve
        .client
        .get(serve.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "vos_converter_dev_mode 1"),
        "{metrics}"
    );
    let (status, log) = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(status.success(), "{status}:\n{log}");
    let converter_done = log.find("stopped: calls drained").expect("the last line");
    assert!(
        !log[..converter_done].contains("Stopping"),
        "something stopped before the converter had drained:\n{log}"
    );
}

#[test]
fn production_settings_without_rest_url_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vos.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let agreements = dir.path().join("agreements.toml");
    std::fs::write(&agreements, "").unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--config", config.to_str().unwrap()], "a config file"),
        (
            &["--agreements", agreements.to_str().unwrap()],
            "agreements",
        ),
        (
            &["--trusted-proxy", "127.0.0.1", "--identity", "header"],
            "trusted_proxies",
        ),
    ];
    for (args, named) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vos-converter"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .env_remove("VOS_REST_URL")
            .env_remove("VOS_DEV")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started:\n{err}");
        assert!(
            err.contains("rest_url:") && err.contains(named) && err.contains("--dev"),
            "{args:?}: {err}"
        );
        assert!(
            !dir.path().join("vos-backend.db").exists(),
            "{args:?}: the dev backend's database was created"
        );
    }
}

#[test]
fn dev_on_purpose_starts_and_dev_with_rest_url_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vos.toml");
    std::fs::write(&config, "dev = true\n").unwrap();
    let mut serve = Serve::start(&["--config", config.to_str().unwrap()]);
    serve.kill();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vos-converter"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dev",
            "--rest-url",
            "http://127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("dev:") && err.contains("rest_url"), "{err}");
}

/// The embedded backend's SQLite file (CPR numbers) and the usage file are the owner's only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_created_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start_in(dir.path(), &[], "info");
    let reply = post_soap(
        &serve.client,
        &serve.url(Pss.endpoint()),
        V11,
        &Pss.action("GetVariablePersonStatus"),
        &status_call(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (status, log) = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(status.success(), "{log}");
    for name in ["vos-backend.db", "migration-usage.json"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
}
