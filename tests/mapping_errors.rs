#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The mapping checker's messages, data-driven in the style of rust-analyzer: one `check()`
//! runs every case under `tests/mapping_errors/<case>/` through `mapping::compile_from`,
//! and `UPDATE_EXPECT=1 cargo test --test mapping_errors` rewrites the expectations.
//!
//! A case is a folder holding what differs from the shipped contract, each file at the path
//! it has in the repository, which it replaces (or adds, for a new mapping or WSDL):
//!
//! - `mappings/<Service>-<version>.toml`: a service mapping file. Write a whole, small file
//!   with the one mistake of the case; map the WSDL operations the case is not about as
//!   `retired`, so that they add no errors;
//! - `wsdl/<name>.wsdl`: a WSDL text (a mapping's `[service] wsdl` names it);
//! - `openapi/<name>.json`: the OpenAPI document the mappings are checked against;
//! - `expected.txt`: the expectation: every error message, one a line, in the order the
//!   checker reports them, or `compiles with no error`.
//!
//! Every other file of a case fails the test (a misspelt folder would otherwise be a case
//! that checks nothing). A case without `expected.txt`, or with one that differs, fails
//! unless `UPDATE_EXPECT` is set, which writes what the checker said.

use std::fs;
use std::path::{Path, PathBuf};

use vos_converter::mapping::{self, Sources};

/// The variable that turns comparing into rewriting.
const UPDATE: &str = "UPDATE_EXPECT";

/// What a case that compiles expects.
const NO_ERROR: &str = "compiles with no error\n";

fn cases_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mapping_errors")
}

/// The files below `dir`: (path relative to `base` with `/`, text).
fn files_below(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_below(base, &path, out);
        } else {
            let rel = path.strip_prefix(base).unwrap();
            let rel: Vec<_> = rel.iter().map(|c| c.to_str().unwrap()).collect();
            out.push((rel.join("/"), fs::read_to_string(&path).unwrap()));
        }
    }
}

/// Replaces the entry named `name`, or adds it.
fn put<'a>(entries: &mut Vec<(&'a str, &'static str)>, name: &'a str, text: &'static str) {
    match entries.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = text,
        None => entries.push((name, text)),
    }
}

/// The shipped sources with the case's files in place of theirs. The texts are leaked:
/// a plan keeps its WSDL texts for the life of the process ('static).
fn sources(files: Vec<(String, String)>) -> Sources<'static> {
    let mut sources = Sources::embedded().unwrap();
    for (path, text) in files {
        let path: &'static str = path.leak();
        let text: &'static str = text.leak();
        if let Some(name) = path.strip_prefix("wsdl/") {
            put(&mut sources.wsdls, name, text);
        } else if path.starts_with("mappings/") && path.ends_with(".toml") {
            put(&mut sources.mappings, path, text);
        } else if path.starts_with("openapi/") {
            sources.openapi = (path, text);
        } else {
            panic!("{path}: a case holds mappings/*.toml, wsdl/*, openapi/* and expected.txt");
        }
    }
    sources
}

/// What the checker says about a case's sources, as `expected.txt` holds it.
fn render(sources: &Sources<'_>) -> String {
    match mapping::compile_from(sources) {
        Ok(_) => NO_ERROR.to_owned(),
        Err(errors) => errors.iter().map(|e| format!("{e}\n")).collect(),
    }
}

/// Compares (or, with `update`, says to write) one case's result: Ok(Some(text)) to write,
/// Ok(None) when it matches, Err with the difference.
fn verdict(
    case: &str,
    actual: &str,
    expected: Option<&str>,
    update: bool,
) -> Result<Option<String>, String> {
    match (expected, update) {
        (Some(e), _) if e == actual => Ok(None),
        (_, true) => Ok(Some(actual.to_owned())),
        (None, false) => Err(format!(
            "{case}: no expected.txt ({UPDATE}=1 writes it); the checker said:\n{actual}"
        )),
        (Some(e), false) => Err(format!(
            "{case}: expected.txt differs ({UPDATE}=1 rewrites it)\n--- expected\n{e}--- actual\n{actual}"
        )),
    }
}

#[test]
fn check() {
    let update = std::env::var_os(UPDATE).is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() > 1, "no cases under {}", cases_root().display());
    let mut failures = Vec::new();
    for dir in &cases {
        let case = dir.file_name().unwrap().to_str().unwrap();
        let mut files = Vec::new();
        files_below(dir, dir, &mut files);
        let expected_file = dir.join("expected.txt");
        let expected = files
            .iter()
            .position(|(p, _)| p == "expected.txt")
            .map(|i| files.remove(i).1);
        let actual = render(&sources(files));
        match verdict(case, &actual, expected.as_deref(), update) {
            Ok(Some(text)) => fs::write(&expected_file, text).unwrap(),
            Ok(None) => {}
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_contract_compiles_with_no_error() {
    // Also the case `shipped/` (no files but expected.txt); this one holds if it is lost.
    assert_eq!(render(&Sources::embedded().unwrap()), NO_ERROR);
}

#[test]
fn a_missing_or_wrong_expectation_fails_unless_updating() {
    assert_eq!(verdict("c", "a\n", Some("a\n"), false), Ok(None));
    assert!(verdict("c", "a\n", None, false).is_err());
    assert!(verdict("c", "a\n", Some("b\n"), false).is_err());
    assert_eq!(verdict("c", "a\n", None, true), Ok(Some("a\n".to_owned())));
    assert_eq!(
        verdict("c", "a\n", Some("b\n"), true),
        Ok(Some("a\n".to_owned()))
    );
}
