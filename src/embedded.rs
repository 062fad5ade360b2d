//! The contract files compiled into the binary (`build.rs`): every `.toml` in `mappings/`,
//! every `.wsdl`/`.xsd` in `wsdl/`, every `.json` in `openapi/`, by their path from the
//! repository root.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The text of an embedded file, e.g. `file("mappings/errors.toml")`.
pub fn file(path: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
}

/// The embedded files of a folder, in name order.
pub fn folder(dir: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES.iter().copied().filter(move |(p, _)| {
        p.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}
