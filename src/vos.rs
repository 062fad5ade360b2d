//! The REST contract of VisiteringOgStatus PersonVisiteringService v1: paths, headers and the
//! JSON types, with their OpenAPI schemas. Shared by the reference backend (which serves it)
//! and the converter (which calls it). Field names are Danish domain words in camelCase.
//!
//! A CPR number never appears in a path or a query string: writes carry it in the body,
//! reads in the `X-Cpr` header.

use jiff::{Timestamp, civil::Date};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cpr::CprInput;

/// The versioned base path of every operation.
pub const BASE: &str = "/personvisitering/v1";

/// Caller identity: the int code of the organisation type (mappings/organisationstyper.toml).
pub const HDR_ORG_TYPE: &str = "X-Organisation-Type";
/// Caller identity: municipality number, a-kasse number or CVR.
pub const HDR_ORG_CODE: &str = "X-Organisation-Code";
/// Caller identity: the case worker or system user, optional.
pub const HDR_USER: &str = "X-User-Id";
/// The person a read is about.
pub const HDR_CPR: &str = "X-Cpr";

/// The two kinds of registration. They share one shape and one store; the rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Kontaktgruppe,
    Personkategori,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kontaktgruppe => "kontaktgruppe",
            Kind::Personkategori => "personkategori",
        }
    }
}

/// Who made a registration or a version of it (rule 8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registrant {
    /// Organisation type code (1 Jobcenter, 2 A-kasse, 3 Kommune, 4 Anden aktør, 5 STAR).
    pub organisationstype: u8,
    /// Municipality number, a-kasse number or CVR.
    pub organisationskode: String,
    /// The user, when the caller said.
    pub bruger_id: Option<String>,
}

/// Body of CreateKontaktgruppe and CreateKontaktgruppeMedIdentifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpretKontaktgruppe {
    #[schema(value_type = String, pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$")]
    pub cpr: CprInput,
    /// Code from GetKontaktgruppetyper.
    pub kontaktgruppetype: u32,
    pub startdato: Date,
    /// Not after today (100028).
    #[serde(default)]
    pub slutdato: Option<Date>,
    pub haendelsestidspunkt: Timestamp,
}

/// Body of UpdateKontaktgruppe. Type, start date and event time cannot change (rule 4):
/// only the end date can. A missing or null end date reopens the contact group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpdaterKontaktgruppe {
    #[schema(value_type = String, pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$")]
    pub cpr: CprInput,
    /// Not after today (100028).
    #[serde(default)]
    pub slutdato: Option<Date>,
}

/// Body of CreatePersonkategori, CreatePersonkategoriMedIdentifier and UpdatePersonkategori.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpretPersonkategori {
    #[schema(value_type = String, pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$")]
    pub cpr: CprInput,
    /// Code from GetPersonkategorityper.
    pub personkategoritype: u32,
    pub startdato: Date,
    #[serde(default)]
    pub slutdato: Option<Date>,
    pub haendelsestidspunkt: Timestamp,
}

/// A contact group: the current version, or one version of its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kontaktgruppe {
    pub id: Uuid,
    pub kontaktgruppetype: u32,
    pub startdato: Date,
    pub slutdato: Option<Date>,
    pub haendelsestidspunkt: Timestamp,
    /// 1 for the version the create made, one more for every change.
    pub version: u32,
    /// Who created the contact group (rule 8).
    pub oprettet_af: Registrant,
    /// Who made this version.
    pub registreret_af: Registrant,
    /// When this version was recorded.
    pub registreringstidspunkt: Timestamp,
}

/// A person category: the current version, or one version of its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Personkategori {
    pub id: Uuid,
    pub personkategoritype: u32,
    pub startdato: Date,
    pub slutdato: Option<Date>,
    pub haendelsestidspunkt: Timestamp,
    pub version: u32,
    pub oprettet_af: Registrant,
    pub registreret_af: Registrant,
    pub registreringstidspunkt: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kontaktgrupper {
    pub kontaktgrupper: Vec<Kontaktgruppe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Personkategorier {
    pub personkategorier: Vec<Personkategori>,
}

/// Every recorded version, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KontaktgruppeHistorik {
    pub versioner: Vec<Kontaktgruppe>,
}

/// Every recorded version, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonkategoriHistorik {
    pub versioner: Vec<Personkategori>,
}

/// GetPersonVisiteringOgStatusStatus: the person's current (not ended before today)
/// contact groups and person categories, as the caller may see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonVisiteringOgStatusStatus {
    pub kontaktgrupper: Vec<Kontaktgruppe>,
    pub personkategorier: Vec<Personkategori>,
}

/// One code of a code list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kode {
    pub kode: u32,
    pub navn: String,
    /// First day a registration may start with this code.
    pub gyldig_fra: Date,
    /// Last day, when the code has one.
    pub gyldig_til: Option<Date>,
    /// Whether the name is the source's (false: a neutral name given by the project).
    pub navngivet_i_kilden: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kodeliste {
    pub koder: Vec<Kode>,
}

/// Body of SetPersonRegister (dev mode only): what the access rules need to know about a
/// person from other domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonRegister {
    #[schema(value_type = String, pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$")]
    pub cpr: CprInput,
    /// The person's municipality, three digits.
    #[schema(pattern = "^[0-9]{3}$")]
    pub kommunekode: String,
    /// The a-kasse the person is a member of, if any.
    #[schema(pattern = "^[0-9]{1,8}$")]
    pub akasse: Option<String>,
    /// Enrolled as job seeker.
    pub tilmeldt: bool,
}

/// An error (RFC 9457 problem details), `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:dk:star:vos:fejl:<fejlkode>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The Danish text, as `fejltekst`.
    pub title: String,
    pub status: u16,
    /// What in the request caused it, when that helps and reveals no personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The error code of mappings/errors.toml (100028, 100029, 9001xx, ...).
    pub fejlkode: u32,
    /// The Danish error text, byte for byte the catalogue's.
    pub fejltekst: String,
}
