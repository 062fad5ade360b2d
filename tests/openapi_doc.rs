//! The committed OpenAPI document is the contract vendors and the converter's `check` read:
//! it must be exactly what the code generates. `UPDATE_OPENAPI=1 cargo test` rewrites it.

use std::path::Path;

#[test]
fn committed_openapi_matches_the_code() {
    let generated = format!("{}\n", vos_converter::cli::openapi_json().unwrap());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/personvisitering-v1.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/personvisitering-v1.json differs from the code; run `UPDATE_OPENAPI=1 cargo test --test openapi_doc` and commit it"
    );
}

#[test]
fn every_operation_id_of_the_issue_is_in_the_document() {
    let doc: serde_json::Value =
        serde_json::from_str(&vos_converter::cli::openapi_json().unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    let mut expected = vec![
        "CreateKontaktgruppe",
        "CreateKontaktgruppeMedIdentifier",
        "UpdateKontaktgruppe",
        "GetKontaktgrupper",
        "GetKontaktgruppe",
        "GetKontaktgruppeHistorik",
        "CreatePersonkategori",
        "CreatePersonkategoriMedIdentifier",
        "UpdatePersonkategori",
        "GetPersonkategorier",
        "GetPersonkategori",
        "GetPersonkategoriHistorik",
        "GetPersonVisiteringOgStatusStatus",
        "GetKontaktgruppetyper",
        "GetPersonkategorityper",
        "SetPersonRegister",
        // Issue 15: WSB subscriptions, parked events, the CPR change.
        "CreateWsbAbonnement",
        "GetWsbAbonnementer",
        "DeleteWsbAbonnement",
        "GetWsbParkeredeBeskeder",
        "CreateWsbGenlevering",
        "CreateCprSkift",
    ];
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn no_path_or_query_parameter_carries_a_cpr() {
    let doc: serde_json::Value =
        serde_json::from_str(&vos_converter::cli::openapi_json().unwrap()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!path.to_lowercase().contains("cpr"), "{path}");
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let (name, place) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
                if name.to_lowercase().contains("cpr") {
                    assert_eq!(place, "header", "{path}: {name}");
                }
            }
        }
    }
}

#[test]
fn the_readme_documents_every_error_code() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let catalog = vos_converter::catalog::Catalog::load().unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| 100") || l.starts_with("| 9"))
        .collect();
    assert_eq!(
        rows.len(),
        catalog.error_list.len(),
        "one README row per catalogue entry"
    );
    for e in &catalog.error_list {
        let row = format!("| {} | {} | {} | ", e.code, e.status, e.text);
        assert!(
            rows.iter().any(|r| r.starts_with(&row)),
            "README lacks `{row}`"
        );
    }
}

/// README's configuration table is the one `config::SETTINGS` generates;
/// `UPDATE_README=1` rewrites it.
#[test]
fn the_readme_configuration_table_is_generated() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find("| setting | flag | environment |")
        .expect("README has the configuration table");
    let end = readme[start..]
        .find("\n\n")
        .map_or(readme.len(), |i| start + i + 1);
    let table = vos_converter::config::readme_table();
    if readme[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(
            &path,
            format!("{}{table}{}", &readme[..start], &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        readme[start..end],
        table,
        "README.md's configuration table is not config::SETTINGS'; UPDATE_README=1 cargo test --test openapi_doc rewrites it"
    );
}
