//! Embeds every file of `mappings/`, `wsdl/` and `openapi/` into the binary, so that the
//! binary carries the contracts it was built and tested with, and so that adding a
//! mapping or a WSDL needs no Rust: `src/embedded.rs` lists what this generates.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let mut out = String::from("pub static FILES: &[(&str, &str)] = &[\n");
    for dir in ["mappings", "wsdl", "openapi"] {
        println!("cargo:rerun-if-changed={dir}");
        let mut entries: Vec<_> = match std::fs::read_dir(Path::new(&root).join(dir)) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect(),
            Err(_) => continue,
        };
        entries.sort();
        for path in entries {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !(name.ends_with(".toml")
                || name.ends_with(".wsdl")
                || name.ends_with(".xsd")
                || name.ends_with(".json"))
            {
                continue;
            }
            println!("cargo:rerun-if-changed={}", path.display());
            let _ = writeln!(
                out,
                "    ({:?}, include_str!({:?})),",
                format!("{dir}/{name}"),
                path.display().to_string()
            );
        }
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("embedded.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
