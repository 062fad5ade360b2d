//! The data in `mappings/` that both sides share: the error catalogue, the code lists, the
//! organisation types and their access. Embedded in the binary at build time (so a copied
//! binary behaves as the tested one) and parsed and validated once, at start: a mistake in a
//! file stops start-up with the file and line, never a wrong answer later.

use std::collections::HashMap;
use std::sync::LazyLock;

use jiff::civil::Date;
use serde::Deserialize;

use crate::vos::Kind;

/// One error of the catalogue (`mappings/errors.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEntry {
    pub key: String,
    pub code: u32,
    pub status: u16,
    pub text: String,
    pub origin: Origin,
    pub doc: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Source,
    Project,
}

/// Every error the code can raise, by catalogue key. A test keeps this list and
/// `mappings/errors.toml` equal, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fejl {
    SlutdatoFremtidig,
    KontaktgruppeSkiftTilmeldt,
    UgyldigJson,
    UgyldigtCpr,
    UkendtKontaktgruppetype,
    UkendtPersonkategoritype,
    StartdatoEfterSlutdato,
    UgyldigParameter,
    TypeIkkeGyldig,
    CprSkiftSamme,
    UgyldigtEndpoint,
    UgyldigeEntiteter,
    IdentitetMangler,
    UkendtOrganisationstype,
    AdgangNaegtet,
    OperationIkkeTilladt,
    IdentitetIkkeBetroet,
    UkendtKontaktgruppe,
    UkendtPersonkategori,
    UkendtPerson,
    IdentifikatorKonflikt,
    StartdatoFoerAaben,
    AabenFindes,
    UkendtAbonnement,
    CprHarRegistreringer,
    UkendtRessource,
    MetodeIkkeTilladt,
    UgyldigMedietype,
    ForStor,
    InternFejl,
    UgyldigXml,
    DoctypeAfvist,
    DokumentOverGraense,
    UkendtOperation,
    UgyldigSoapMedietype,
    IkkeSoap,
    MetadataMangler,
    UgyldigVaerdi,
    FeltKanIkkeAendres,
    MetodeUdgaaet,
    AftaleDaekkerIkke,
    CertifikatMangler,
    ForespoergselForLangsom,
    UpstreamUtilgaengelig,
    UpstreamTimeout,
    UpstreamUgyldigtSvar,
    UpstreamUdfaldUkendt,
    WsrmUkendtSekvens,
    WsrmIkkeAbonnent,
    WsrmKoeFejl,
    TilstandUtilgaengelig,
}

impl Fejl {
    pub const ALL: [Fejl; 51] = [
        Fejl::SlutdatoFremtidig,
        Fejl::KontaktgruppeSkiftTilmeldt,
        Fejl::UgyldigJson,
        Fejl::UgyldigtCpr,
        Fejl::UkendtKontaktgruppetype,
        Fejl::UkendtPersonkategoritype,
        Fejl::StartdatoEfterSlutdato,
        Fejl::UgyldigParameter,
        Fejl::TypeIkkeGyldig,
        Fejl::CprSkiftSamme,
        Fejl::UgyldigtEndpoint,
        Fejl::UgyldigeEntiteter,
        Fejl::IdentitetMangler,
        Fejl::UkendtOrganisationstype,
        Fejl::AdgangNaegtet,
        Fejl::OperationIkkeTilladt,
        Fejl::IdentitetIkkeBetroet,
        Fejl::UkendtKontaktgruppe,
        Fejl::UkendtPersonkategori,
        Fejl::UkendtPerson,
        Fejl::IdentifikatorKonflikt,
        Fejl::StartdatoFoerAaben,
        Fejl::AabenFindes,
        Fejl::UkendtAbonnement,
        Fejl::CprHarRegistreringer,
        Fejl::UkendtRessource,
        Fejl::MetodeIkkeTilladt,
        Fejl::UgyldigMedietype,
        Fejl::ForStor,
        Fejl::InternFejl,
        Fejl::UgyldigXml,
        Fejl::DoctypeAfvist,
        Fejl::DokumentOverGraense,
        Fejl::UkendtOperation,
        Fejl::UgyldigSoapMedietype,
        Fejl::IkkeSoap,
        Fejl::MetadataMangler,
        Fejl::UgyldigVaerdi,
        Fejl::FeltKanIkkeAendres,
        Fejl::MetodeUdgaaet,
        Fejl::AftaleDaekkerIkke,
        Fejl::CertifikatMangler,
        Fejl::ForespoergselForLangsom,
        Fejl::UpstreamUtilgaengelig,
        Fejl::UpstreamTimeout,
        Fejl::UpstreamUgyldigtSvar,
        Fejl::UpstreamUdfaldUkendt,
        Fejl::WsrmUkendtSekvens,
        Fejl::WsrmIkkeAbonnent,
        Fejl::WsrmKoeFejl,
        Fejl::TilstandUtilgaengelig,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Fejl::SlutdatoFremtidig => "slutdato_fremtidig",
            Fejl::KontaktgruppeSkiftTilmeldt => "kontaktgruppe_skift_tilmeldt",
            Fejl::UgyldigJson => "ugyldig_json",
            Fejl::UgyldigtCpr => "ugyldigt_cpr",
            Fejl::UkendtKontaktgruppetype => "ukendt_kontaktgruppetype",
            Fejl::UkendtPersonkategoritype => "ukendt_personkategoritype",
            Fejl::StartdatoEfterSlutdato => "startdato_efter_slutdato",
            Fejl::UgyldigParameter => "ugyldig_parameter",
            Fejl::TypeIkkeGyldig => "type_ikke_gyldig",
            Fejl::CprSkiftSamme => "cpr_skift_samme",
            Fejl::UgyldigtEndpoint => "ugyldigt_endpoint",
            Fejl::UgyldigeEntiteter => "ugyldige_entiteter",
            Fejl::IdentitetMangler => "identitet_mangler",
            Fejl::UkendtOrganisationstype => "ukendt_organisationstype",
            Fejl::AdgangNaegtet => "adgang_naegtet",
            Fejl::OperationIkkeTilladt => "operation_ikke_tilladt",
            Fejl::IdentitetIkkeBetroet => "identitet_ikke_betroet",
            Fejl::UkendtKontaktgruppe => "ukendt_kontaktgruppe",
            Fejl::UkendtPersonkategori => "ukendt_personkategori",
            Fejl::UkendtPerson => "ukendt_person",
            Fejl::IdentifikatorKonflikt => "identifikator_konflikt",
            Fejl::StartdatoFoerAaben => "startdato_foer_aaben",
            Fejl::AabenFindes => "aaben_findes",
            Fejl::UkendtAbonnement => "ukendt_abonnement",
            Fejl::CprHarRegistreringer => "cpr_har_registreringer",
            Fejl::UkendtRessource => "ukendt_ressource",
            Fejl::MetodeIkkeTilladt => "metode_ikke_tilladt",
            Fejl::UgyldigMedietype => "ugyldig_medietype",
            Fejl::ForStor => "for_stor",
            Fejl::InternFejl => "intern_fejl",
            Fejl::UgyldigXml => "ugyldig_xml",
            Fejl::DoctypeAfvist => "doctype_afvist",
            Fejl::DokumentOverGraense => "dokument_over_graense",
            Fejl::UkendtOperation => "ukendt_operation",
            Fejl::UgyldigSoapMedietype => "ugyldig_soap_medietype",
            Fejl::IkkeSoap => "ikke_soap",
            Fejl::MetadataMangler => "metadata_mangler",
            Fejl::UgyldigVaerdi => "ugyldig_vaerdi",
            Fejl::FeltKanIkkeAendres => "felt_kan_ikke_aendres",
            Fejl::MetodeUdgaaet => "metode_udgaaet",
            Fejl::AftaleDaekkerIkke => "aftale_daekker_ikke",
            Fejl::CertifikatMangler => "certifikat_mangler",
            Fejl::ForespoergselForLangsom => "forespoergsel_for_langsom",
            Fejl::UpstreamUtilgaengelig => "upstream_utilgaengelig",
            Fejl::UpstreamTimeout => "upstream_timeout",
            Fejl::UpstreamUgyldigtSvar => "upstream_ugyldigt_svar",
            Fejl::UpstreamUdfaldUkendt => "upstream_udfald_ukendt",
            Fejl::WsrmUkendtSekvens => "wsrm_ukendt_sekvens",
            Fejl::WsrmIkkeAbonnent => "wsrm_ikke_abonnent",
            Fejl::WsrmKoeFejl => "wsrm_koe_fejl",
            Fejl::TilstandUtilgaengelig => "tilstand_utilgaengelig",
        }
    }

    /// The catalogue entry. Start-up refuses a catalogue that lacks a key, so the fallback
    /// is only reached if a caller skipped `Catalog::load`; it still answers with a code.
    pub fn entry(self) -> &'static ErrorEntry {
        match CATALOG.as_ref() {
            Ok(c) => c.errors.get(&self).unwrap_or(&FALLBACK),
            Err(_) => &FALLBACK,
        }
    }
}

static FALLBACK: LazyLock<ErrorEntry> = LazyLock::new(|| ErrorEntry {
    key: "intern_fejl".into(),
    code: 900901,
    status: 500,
    text: "Intern fejl, prøv igen senere".into(),
    origin: Origin::Project,
    doc: String::new(),
});

/// One code of a code list (`mappings/kontaktgruppetyper.toml`, `personkategorityper.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    pub kode: u32,
    pub navn: String,
    pub gyldig_fra: Date,
    pub gyldig_til: Option<Date>,
    pub navngivet_i_kilden: bool,
}

impl Code {
    pub fn valid_on(&self, d: Date) -> bool {
        self.gyldig_fra <= d && self.gyldig_til.is_none_or(|til| d <= til)
    }
}

/// Rule 6: what an a-kasse sees of contact groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AkasseView {
    pub synlige_typer: Vec<u32>,
    pub historik_aar: i16,
}

/// Whose citizens an organisation type sees (rule 7).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Persons whose municipality is the caller's organisation code.
    Kommune,
    /// Members of the caller's a-kasse.
    Akasse,
    /// Everybody, also persons not in the person register.
    Alle,
    /// Nobody.
    Ingen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgType {
    pub kode: u8,
    pub navn: String,
    pub adgang: Scope,
    pub registrerer: Vec<Kind>,
    pub laeser: Vec<Kind>,
    #[serde(default)]
    pub akassefilter: bool,
    #[serde(default)]
    pub personregister: bool,
    /// May move a person's registrations to a new CPR number (CreateCprSkift).
    #[serde(default)]
    pub cprskift: bool,
}

#[derive(Debug)]
pub struct Catalog {
    pub errors: HashMap<Fejl, ErrorEntry>,
    /// The entries in file order, for documentation.
    pub error_list: Vec<ErrorEntry>,
    pub kontaktgruppetyper: Vec<Code>,
    pub personkategorityper: Vec<Code>,
    pub akasse: AkasseView,
    pub orgtyper: Vec<OrgType>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("mappings/{file}: {message}")]
pub struct CatalogError {
    pub file: &'static str,
    pub message: String,
}

fn embedded(file: &'static str) -> Result<&'static str, CatalogError> {
    crate::embedded::file(&format!("mappings/{file}"))
        .ok_or_else(|| invalid(file, "is missing".into()))
}

pub static CATALOG: LazyLock<Result<Catalog, CatalogError>> = LazyLock::new(Catalog::parse);

fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &'static str,
    text: &str,
) -> Result<T, CatalogError> {
    // toml's message names the line and column and quotes the offending line.
    toml::from_str(text).map_err(|e| CatalogError {
        file,
        message: e.to_string(),
    })
}

fn invalid(file: &'static str, message: String) -> CatalogError {
    CatalogError { file, message }
}

impl Catalog {
    /// The validated catalogue, or why it is not valid. Call once at start.
    pub fn load() -> Result<&'static Catalog, CatalogError> {
        CATALOG.as_ref().map_err(Clone::clone)
    }

    fn parse() -> Result<Catalog, CatalogError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Errors {
            error: Vec<ErrorEntry>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Kg {
            akasse: AkasseView,
            #[serde(rename = "type")]
            types: Vec<Code>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pc {
            #[serde(rename = "type")]
            types: Vec<Code>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Orgs {
            #[serde(rename = "type")]
            types: Vec<OrgType>,
        }

        let errors: Errors = parse_toml("errors.toml", embedded("errors.toml")?)?;
        let mut by_key = HashMap::new();
        let mut codes = std::collections::HashSet::new();
        for e in &errors.error {
            if !codes.insert(e.code) {
                return Err(invalid(
                    "errors.toml",
                    format!("code {} appears twice", e.code),
                ));
            }
            if !(400..=599).contains(&e.status) {
                return Err(invalid(
                    "errors.toml",
                    format!("{}: status {} is not an error status", e.key, e.status),
                ));
            }
            // Rule 3: the project's codes live outside DFDG's 1000xx range.
            if e.origin == Origin::Project && (100_000..=100_999).contains(&e.code) {
                return Err(invalid(
                    "errors.toml",
                    format!("{}: project code {} is in DFDG's range", e.key, e.code),
                ));
            }
        }
        for f in Fejl::ALL {
            let entry = errors
                .error
                .iter()
                .find(|e| e.key == f.key())
                .ok_or_else(|| {
                    invalid("errors.toml", format!("no entry with key \"{}\"", f.key()))
                })?;
            by_key.insert(f, entry.clone());
        }
        if let Some(extra) = errors
            .error
            .iter()
            .find(|e| !Fejl::ALL.iter().any(|f| f.key() == e.key))
        {
            return Err(invalid(
                "errors.toml",
                format!("key \"{}\" is not used by the code", extra.key),
            ));
        }

        let kg: Kg = parse_toml(
            "kontaktgruppetyper.toml",
            embedded("kontaktgruppetyper.toml")?,
        )?;
        check_codes("kontaktgruppetyper.toml", &kg.types)?;
        for t in &kg.akasse.synlige_typer {
            if !kg.types.iter().any(|c| c.kode == *t) {
                return Err(invalid(
                    "kontaktgruppetyper.toml",
                    format!("akasse.synlige_typer names {t}, which is not in the list"),
                ));
            }
        }
        let pc: Pc = parse_toml(
            "personkategorityper.toml",
            embedded("personkategorityper.toml")?,
        )?;
        check_codes("personkategorityper.toml", &pc.types)?;
        let orgs: Orgs = parse_toml(
            "organisationstyper.toml",
            embedded("organisationstyper.toml")?,
        )?;
        for (i, o) in orgs.types.iter().enumerate() {
            if orgs.types[..i].iter().any(|p| p.kode == o.kode) {
                return Err(invalid(
                    "organisationstyper.toml",
                    format!("kode {} appears twice", o.kode),
                ));
            }
        }
        Ok(Catalog {
            errors: by_key,
            error_list: errors.error,
            kontaktgruppetyper: kg.types,
            personkategorityper: pc.types,
            akasse: kg.akasse,
            orgtyper: orgs.types,
        })
    }

    pub fn codes(&self, kind: Kind) -> &[Code] {
        match kind {
            Kind::Kontaktgruppe => &self.kontaktgruppetyper,
            Kind::Personkategori => &self.personkategorityper,
        }
    }

    pub fn orgtype(&self, kode: u8) -> Option<&OrgType> {
        self.orgtyper.iter().find(|o| o.kode == kode)
    }
}

fn check_codes(file: &'static str, codes: &[Code]) -> Result<(), CatalogError> {
    for (i, c) in codes.iter().enumerate() {
        if codes[..i].iter().any(|p| p.kode == c.kode) {
            return Err(invalid(file, format!("kode {} appears twice", c.kode)));
        }
        if c.gyldig_til.is_some_and(|til| til < c.gyldig_fra) {
            return Err(invalid(
                file,
                format!("kode {}: gyldig_til is before gyldig_fra", c.kode),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_mappings_load() {
        let c = Catalog::load().unwrap();
        assert_eq!(c.errors.len(), Fejl::ALL.len());
        assert_eq!(
            c.error_list.len(),
            Fejl::ALL.len(),
            "every catalogue entry is used by the code"
        );
    }

    #[test]
    fn source_codes_are_exactly_as_in_the_rules() {
        let e = Fejl::SlutdatoFremtidig.entry();
        assert_eq!(
            (e.code, e.text.as_str()),
            (100028, "Slutdato kan ikke være fremtidig")
        );
        let e = Fejl::KontaktgruppeSkiftTilmeldt.entry();
        assert_eq!(
            (e.code, e.text.as_str()),
            (
                100029,
                "Kontaktgruppen kan ikke ændres til anden kontaktgruppe for tilmeldte, opdater i stedet tilmeldingen"
            )
        );
    }

    #[test]
    fn every_type_the_source_uses_is_known_and_no_other() {
        let c = Catalog::load().unwrap();
        let mut kg: Vec<u32> = c.kontaktgruppetyper.iter().map(|c| c.kode).collect();
        kg.sort_unstable();
        assert_eq!(
            kg,
            [1, 2, 4, 5, 7, 8, 10, 12, 13, 21, 22, 23, 24, 25, 26, 28]
        );
        assert_eq!(
            c.akasse.synlige_typer,
            [1, 2, 4, 5, 7, 8, 10, 13, 21, 22, 23, 25]
        );
        assert_eq!(c.akasse.historik_aar, 4);
    }

    #[test]
    fn star_is_organisation_type_5_and_sees_everybody() {
        let c = Catalog::load().unwrap();
        let star = c.orgtype(5).unwrap();
        assert_eq!((star.navn.as_str(), star.adgang), ("STAR", Scope::Alle));
        assert!(star.personregister);
    }

    #[test]
    fn a_broken_file_is_reported_with_its_name_and_line() {
        let e = parse_toml::<toml::Value>("errors.toml", "[[error]]\nkey = \n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("mappings/errors.toml:"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }
}
