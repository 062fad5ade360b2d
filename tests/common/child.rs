//! The `vos-converter` binary as a child process: a guard that kills it when dropped,
//! drains its stderr into a buffer and its stdout line by line; `serve` started on an
//! ephemeral port with its SOAP and REST addresses; the CPR checks on what it logged.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::Client;

use super::soap::{Reply, Service, Soap, post_raw, soap_headers};

// The persons of mappings/dev-seed.toml, which `serve` seeds its embedded backend with.

/// Municipality 101, member of a-kasse 12, not enrolled.
pub const CPR_101: &str = "0101701111";
/// Municipality 101, enrolled (rule 2 applies).
pub const CPR_101_ENROLLED: &str = "0202702222";
/// Municipality 147, member of a-kasse 34: not Jobcenter 101's citizen.
pub const CPR_147: &str = "0303703333";
/// Municipality 751, enrolled.
pub const CPR_751: &str = "0404704444";
pub const SEED_CPRS: [&str; 4] = [CPR_101, CPR_101_ENROLLED, CPR_147, CPR_751];

/// Every client call gives up after this, so a hanging server fails the test instead of
/// hanging it; the slowest answer the tests wait for (an upstream timeout) is about a
/// second.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a child may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `VOS_*` variables `serve` reads: none of the test's environment reaches the child.
fn serve_env() -> impl Iterator<Item = String> {
    ["VOS_CONFIG", "VOS_LOG_FORMAT"]
        .map(str::to_owned)
        .into_iter()
        .chain(vos_converter::config::SETTINGS.iter().map(|s| s.env()))
}

// ---------------------------------------------------------------------------------------
// The guard
// ---------------------------------------------------------------------------------------

/// A running child process. Dropping it kills the child (SIGKILL), so a failing test
/// leaves no server behind.
pub struct ChildGuard {
    child: std::process::Child,
    /// Everything the child wrote to stderr so far.
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    /// stdout, line by line; kept so the reader thread keeps draining the pipe. (In a
    /// Mutex so the guard can be shared between tasks.)
    stdout_lines: Mutex<Receiver<String>>,
}

impl ChildGuard {
    /// The child's process id (for signals such as SIGHUP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `cmd` with stdin closed and stdout and stderr piped and drained.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the vos-converter binary");
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
        let (tx, stdout_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The receiver may be gone (test over); keep draining regardless.
                let _ = tx.send(line);
            }
        });
        // From here on the guard owns the child: a panic kills it.
        ChildGuard {
            child,
            stderr,
            stderr_reader: Some(stderr_reader),
            stdout_lines: Mutex::new(stdout_lines),
        }
    }

    /// Hands the child's stdout lines, trimmed, to `done` until it returns true. If that
    /// takes more than 30 s, or stdout closes first, kills the child and panics with its
    /// stderr; `who` names the child in the message.
    pub fn wait_for(&mut self, who: &str, mut done: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = self.stdout_lines.lock().unwrap().recv_timeout(left);
            match next {
                Ok(line) => {
                    if done(line.trim()) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let log = self.kill();
                    panic!("{who} printed no address within 30 s; stderr:\n{log}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let log = self.kill();
                    panic!("{who} closed stdout before listening; stderr:\n{log}");
                }
            }
        }
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Everything the child wrote to stderr, once its pipe is closed.
    pub fn collect_stderr(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr_text()
    }

    /// SIGKILL (`Child::kill` on Unix), reap, and return all the child wrote to stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.collect_stderr()
    }

    /// Stops the child as an orchestrator does (SIGTERM), waits for it to exit and returns
    /// its exit status and stderr.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let log = self.kill();
                panic!("serve did not exit within 30 s of SIGTERM; stderr:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.collect_stderr())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// `vos-converter serve`
// ---------------------------------------------------------------------------------------

/// A running `vos-converter serve`, with a client for it.
pub struct Serve {
    pub child: ChildGuard,
    /// `http://127.0.0.1:PORT`: the SOAP side, from the "listening on" line.
    pub soap: String,
    /// The REST base from the "REST upstream:" line (`http://127.0.0.1:PORT`).
    pub rest: String,
    pub client: Client,
    /// The data directory, when the guard made it; removed after the child is killed.
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    /// `serve --listen 127.0.0.1:0 --data-dir <tempdir>` plus `extra`, with the embedded
    /// backend unless `extra` names a `--rest-url`.
    pub fn start(extra: &[&str]) -> Serve {
        Serve::start_with(extra, "info")
    }

    /// As [`Serve::start`], with `RUST_LOG` set to `rust_log`.
    pub fn start_with(extra: &[&str], rust_log: &str) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = Serve::start_in(dir.path(), extra, rust_log);
        serve._dir = Some(dir);
        serve
    }

    /// `serve --listen 127.0.0.1:0 --data-dir <data_dir>` plus `extra`, with `RUST_LOG` set
    /// to `rust_log` and no `VOS_*` variable of the test's environment. Returns when
    /// "REST upstream:" is printed (after "listening on" and the endpoints): the server is
    /// bound and the embedded backend seeded.
    pub fn start_in(data_dir: &Path, extra: &[&str], rust_log: &str) -> Serve {
        Serve::launch(data_dir, extra, rust_log, "http", client())
    }

    /// As [`Serve::start_with`] for an HTTPS listener (`extra` names `--tls-cert` and the
    /// rest): the SOAP address is `https://127.0.0.1:PORT`, and `client` (one that presents
    /// a client certificate and trusts the server's CA) becomes the guard's client.
    pub fn start_https(extra: &[&str], rust_log: &str, client: Client) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = Serve::launch(dir.path(), extra, rust_log, "https", client);
        serve._dir = Some(dir);
        serve
    }

    fn launch(
        data_dir: &Path,
        extra: &[&str],
        rust_log: &str,
        scheme: &str,
        client: Client,
    ) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vos-converter"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", rust_log);
        for var in serve_env() {
            cmd.env_remove(var);
        }
        let mut child = ChildGuard::spawn(&mut cmd);
        let (mut soap, mut rest) = (String::new(), String::new());
        child.wait_for("serve", |line| {
            if let Some(addr) = line.strip_prefix("listening on ") {
                soap = addr.trim().to_owned();
            } else if let Some(url) = line.strip_prefix("REST upstream: ") {
                rest = url.split_whitespace().next().unwrap_or_default().to_owned();
                return true;
            }
            false
        });
        let serve = Serve {
            child,
            soap,
            rest,
            client,
            _dir: None,
        };
        assert!(
            serve.soap.starts_with(&format!("{scheme}://127.0.0.1:")),
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

    pub fn kill(&mut self) -> String {
        self.child.kill()
    }

    pub fn stop(&mut self) -> (ExitStatus, String) {
        self.child.stop()
    }

    /// Stops the child and checks rule 10 on everything it wrote to stderr: no CPR number
    /// of `cprs` (nor of the seed) in any line. Returns the log.
    pub fn finish(&mut self, cprs: &[&str]) -> String {
        let log = self.kill();
        assert_no_cpr(&log, cprs);
        assert_no_cpr(&log, &SEED_CPRS);
        log
    }

    /// `path` on the SOAP side.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.soap)
    }

    /// A SOAP call of `op` of `service` with the headers a generated client sends, and
    /// `traceparent`.
    pub async fn call_traced(
        &self,
        service: Service,
        v: Soap,
        op: &str,
        envelope: &str,
        traceparent: Option<&str>,
    ) -> Reply {
        let (content_type, soap_action) = soap_headers(v, &service.action(op));
        self.send(
            service,
            &content_type,
            soap_action.as_deref(),
            envelope.as_bytes().to_vec(),
            traceparent,
        )
        .await
    }

    /// A POST to `service`'s endpoint with exactly these headers and bytes.
    pub async fn send(
        &self,
        service: Service,
        content_type: &str,
        soap_action: Option<&str>,
        body: Vec<u8>,
        traceparent: Option<&str>,
    ) -> Reply {
        let url = self.url(service.endpoint());
        post_raw(
            &self.client,
            &url,
            content_type,
            soap_action,
            body,
            traceparent,
        )
        .await
    }
}

/// The client the tests call `serve` with: every call gives up after [`CALL_TIMEOUT`].
pub fn client() -> Client {
    Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Rule 10 and closed ports
// ---------------------------------------------------------------------------------------

/// Rule 10: no CPR number in the converter's log, in any line.
pub fn assert_no_cpr(log: &str, cprs: &[&str]) {
    assert_not_logged("the converter", log, cprs);
}

/// Rule 10: no CPR number in the log `who` wrote, in any line.
pub fn assert_not_logged(who: &str, log: &str, cprs: &[&str]) {
    for cpr in cprs {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(cpr)).collect();
        assert!(
            lines.is_empty(),
            "{who} logged CPR number {cpr}:\n{}",
            lines.join("\n")
        );
    }
}

/// A local port where nothing listens.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A URL where nothing listens: a REST call there is a fault 900520.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", closed_port())
}
