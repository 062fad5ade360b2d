#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The commands besides `serve` as a user runs them (`check`, `openapi`), and where a
//! setting's value comes from: flag over variable over file over default.

mod common;

use std::process::{Command, Output};

use common::child::ChildGuard;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vos-converter"));
    for s in vos_converter::config::SETTINGS {
        cmd.env_remove(s.env());
    }
    cmd.env_remove("VOS_CONFIG");
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn check_lists_every_service_and_refuses_a_bad_agreements_file() {
    let (out, stdout, stderr) = run(bin().arg("check"));
    assert!(out.status.success(), "{stderr}");
    for service in [
        "PersonRegistrationService v9",
        "PersonStatusService v20",
        "PersonHistoryService v4",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok  ") && l.contains(service)),
            "{service} not checked:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("CreateContactGroup -> CreateKontaktgruppeMedIdentifier"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("agreements.toml");
    // Type 9 is no organisation type.
    std::fs::write(
        &bad,
        "[[agreement]]\nname = \"x\"\ncvr = \"11111111\"\norganisations = [{ type = 9, code = \"101\" }]\n",
    )
    .unwrap();
    let (out, _, stderr) = run(bin().arg("check").arg("--agreements").arg(&bad));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("agreements.toml"), "{stderr}");
}

#[test]
fn openapi_prints_the_committed_document() {
    let (out, stdout, stderr) = run(bin().arg("openapi"));
    assert!(out.status.success(), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/openapi/personvisitering-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

/// `serve`'s banner line of the cutover with this file, variable and flag.
fn banner_cutover(file: Option<&str>, var: Option<&str>, flag: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    if let Some(c) = file {
        let path = dir.path().join("vos.toml");
        // A config file is a production setting: dev mode on purpose.
        std::fs::write(&path, format!("dev = true\ncutover = \"{c}\"\n")).unwrap();
        cmd.arg("--config").arg(path);
    }
    if let Some(c) = var {
        cmd.env("VOS_CUTOVER", c);
    }
    if let Some(c) = flag {
        cmd.args(["--cutover", c]);
    }
    let mut child = ChildGuard::spawn(&mut cmd);
    let mut line = String::new();
    child.wait_for("serve", |l| {
        if l.starts_with("cutover (") {
            line = l.to_owned();
            true
        } else {
            false
        }
    });
    child.kill();
    line
}

#[test]
fn a_flag_beats_the_variable_which_beats_the_file_which_beats_the_default() {
    let cases = [
        (None, None, None, "2025-03-01T00:00:00+01:00"),
        (Some("2030-01-01"), None, None, "2030-01-01T00:00:00+01:00"),
        (
            Some("2030-01-01"),
            Some("2031-01-01"),
            None,
            "2031-01-01T00:00:00+01:00",
        ),
        (
            Some("2030-01-01"),
            Some("2031-01-01"),
            Some("2032-01-01"),
            "2032-01-01T00:00:00+01:00",
        ),
        (None, Some("2031-01-01"), None, "2031-01-01T00:00:00+01:00"),
    ];
    for (file, var, flag, expected) in cases {
        let line = banner_cutover(file, var, flag);
        assert!(
            line.ends_with(expected),
            "file {file:?}, variable {var:?}, flag {flag:?}: {line}"
        );
    }
}
