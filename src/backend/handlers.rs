//! HTTP handlers of the reference service: decode, run the rule on the blocking pool in
//! one store transaction, encode. One thin handler per operationId, so the OpenAPI
//! document names exactly what is served.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, http::header, web};
use jiff::civil::Date;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::access::Caller;
use super::error::ApiError;
use super::rules::{self, Change, Ctx, NewRegistration};
use super::store::{PersonEntry, Registrering, Store, Tx};
use crate::catalog::{Catalog, Code, Fejl};
use crate::cpr::{Cpr, CprInput};
use crate::dktime::Clock;
use crate::vos::{self, *};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Clock,
    pub catalog: &'static Catalog,
    /// Development mode (SetPersonRegister; WSB endpoints over plain HTTP to loopback).
    pub dev: bool,
    /// WSB delivery's wake-ups and metrics.
    pub wsb: super::wsb::delivery::Signals,
}

impl AppState {
    pub(super) async fn run<T: Send + 'static>(
        &self,
        caller: Caller,
        write: bool,
        f: impl FnOnce(&Tx<'_>, &Ctx<'_>) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        web::block(move || {
            let now = state.clock.now();
            let ctx = Ctx {
                catalog: state.catalog,
                caller: &caller,
                today: state.clock.today(),
                now,
            };
            if write {
                state.store.write(|tx| f(tx, &ctx))
            } else {
                state.store.read(|tx| f(tx, &ctx))
            }
        })
        .await?
    }
}

/// The person a read is about, from the `X-Cpr` header (never the URL).
pub struct CprHeader(pub Cpr);

impl FromRequest for CprHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let r = match req.headers().get(vos::HDR_CPR).map(|v| v.to_str()) {
            None => Err(ApiError::with_detail(
                Fejl::UgyldigtCpr,
                format!("{} mangler", vos::HDR_CPR),
            )),
            Some(Err(_)) => Err(Fejl::UgyldigtCpr.into()),
            Some(Ok(s)) => Cpr::parse(s.trim())
                .map(CprHeader)
                .map_err(|_| Fejl::UgyldigtCpr.into()),
        };
        ready(r)
    }
}

fn cpr(input: &CprInput) -> Result<Cpr, ApiError> {
    input.validate().map_err(|_| Fejl::UgyldigtCpr.into())
}

/// Query of GetKontaktgrupper and GetPersonkategorier.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only registrations not ended before today (the PSS collections). Default false: all.
    kun_aktuelle: Option<bool>,
}

/// Query of the history operations: registrations whose period overlaps [fraDato, tilDato].
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    fra_dato: Option<Date>,
    til_dato: Option<Date>,
}

/// The id of a registration.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// UUID, lower-case hyphenated.
    id: Uuid,
}

/// The person, for reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CprParam {
    /// CPR number, ten digits.
    #[param(
        rename = "X-Cpr",
        pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$"
    )]
    #[allow(dead_code)]
    cpr: String,
}

pub fn kontaktgruppe(r: Registrering) -> Kontaktgruppe {
    Kontaktgruppe {
        id: r.id,
        kontaktgruppetype: r.type_kode,
        startdato: r.startdato,
        slutdato: r.slutdato,
        haendelsestidspunkt: r.haendelse,
        version: r.version,
        oprettet_af: r.oprettet_af,
        registreret_af: r.registreret_af,
        registreringstidspunkt: r.registreret_tid,
    }
}

pub fn personkategori(r: Registrering) -> Personkategori {
    Personkategori {
        id: r.id,
        personkategoritype: r.type_kode,
        startdato: r.startdato,
        slutdato: r.slutdato,
        haendelsestidspunkt: r.haendelse,
        version: r.version,
        oprettet_af: r.oprettet_af,
        registreret_af: r.registreret_af,
        registreringstidspunkt: r.registreret_tid,
    }
}

fn created<T: serde::Serialize>(collection: &str, id: Uuid, body: T) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("{}/{collection}/{id}", vos::BASE)))
        .json(body)
}

async fn create(
    state: &AppState,
    caller: Caller,
    n: NewRegistration,
) -> Result<Registrering, ApiError> {
    state
        .run(caller, true, move |tx, ctx| rules::create(tx, ctx, n))
        .await
}

fn new_kontaktgruppe(b: OpretKontaktgruppe, id: Option<Uuid>) -> Result<NewRegistration, ApiError> {
    Ok(NewRegistration {
        kind: Kind::Kontaktgruppe,
        id,
        cpr: cpr(&b.cpr)?,
        type_kode: b.kontaktgruppetype,
        startdato: b.startdato,
        slutdato: b.slutdato,
        haendelse: b.haendelsestidspunkt,
    })
}

fn new_personkategori(
    b: OpretPersonkategori,
    id: Option<Uuid>,
) -> Result<NewRegistration, ApiError> {
    Ok(NewRegistration {
        kind: Kind::Personkategori,
        id,
        cpr: cpr(&b.cpr)?,
        type_kode: b.personkategoritype,
        startdato: b.startdato,
        slutdato: b.slutdato,
        haendelse: b.haendelsestidspunkt,
    })
}

/// Register a contact group; the service assigns the id. An open contact group of the
/// person ends the day before this one starts (rule 5).
#[utoipa::path(post, path = "/personvisitering/v1/kontaktgrupper", operation_id = "CreateKontaktgruppe",
    tag = "Kontaktgrupper", request_body = OpretKontaktgruppe,
    responses((status = 201, description = "Registered", body = Kontaktgruppe,
        headers(("Location" = String, description = "Path of the new contact group")))))]
pub async fn create_kontaktgruppe(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<OpretKontaktgruppe>,
) -> Result<HttpResponse, ApiError> {
    let r = create(&state, caller, new_kontaktgruppe(body.into_inner(), None)?).await?;
    Ok(created("kontaktgrupper", r.id, kontaktgruppe(r)))
}

/// Register a contact group with the caller's id. Idempotent: the same id with the same
/// content answers as the first call did; with other content, 409 (900304).
#[utoipa::path(put, path = "/personvisitering/v1/kontaktgrupper/{id}", operation_id = "CreateKontaktgruppeMedIdentifier",
    tag = "Kontaktgrupper", params(IdPath), request_body = OpretKontaktgruppe,
    responses((status = 201, description = "Registered, or registered before with this content", body = Kontaktgruppe,
        headers(("Location" = String, description = "Path of the contact group")))))]
pub async fn create_kontaktgruppe_med_identifier(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<IdPath>,
    body: web::Json<OpretKontaktgruppe>,
) -> Result<HttpResponse, ApiError> {
    let r = create(
        &state,
        caller,
        new_kontaktgruppe(body.into_inner(), Some(path.id))?,
    )
    .await?;
    Ok(created("kontaktgrupper", r.id, kontaktgruppe(r)))
}

/// Change a contact group's end date: the only field that can change (rule 4). Not after
/// today (100028).
#[utoipa::path(patch, path = "/personvisitering/v1/kontaktgrupper/{id}", operation_id = "UpdateKontaktgruppe",
    tag = "Kontaktgrupper", params(IdPath), request_body = OpdaterKontaktgruppe,
    responses((status = 200, description = "The current version", body = Kontaktgruppe)))]
pub async fn update_kontaktgruppe(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<IdPath>,
    body: web::Json<OpdaterKontaktgruppe>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (id, cpr) = (path.id, cpr(&b.cpr)?);
    let change = Change::Kontaktgruppe {
        slutdato: b.slutdato,
    };
    let r = state
        .run(caller, true, move |tx, ctx| {
            rules::update(tx, ctx, Kind::Kontaktgruppe, id, &cpr, change)
        })
        .await?;
    Ok(HttpResponse::Ok().json(kontaktgruppe(r)))
}

/// The person's contact groups (current version of each), as the caller may see them.
#[utoipa::path(get, path = "/personvisitering/v1/kontaktgrupper", operation_id = "GetKontaktgrupper",
    tag = "Kontaktgrupper", params(CprParam, ListQuery),
    responses((status = 200, description = "The contact groups, by start date", body = Kontaktgrupper)))]
pub async fn get_kontaktgrupper(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let only_current = q.kun_aktuelle.unwrap_or(false);
    let rs = state
        .run(caller, false, move |tx, ctx| {
            rules::list(tx, ctx, Kind::Kontaktgruppe, &cpr.0, only_current)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Kontaktgrupper {
        kontaktgrupper: rs.into_iter().map(kontaktgruppe).collect(),
    }))
}

/// One contact group of the person, by id.
#[utoipa::path(get, path = "/personvisitering/v1/kontaktgrupper/{id}", operation_id = "GetKontaktgruppe",
    tag = "Kontaktgrupper", params(IdPath, CprParam),
    responses((status = 200, description = "The current version", body = Kontaktgruppe)))]
pub async fn get_kontaktgruppe(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.id;
    let r = state
        .run(caller, false, move |tx, ctx| {
            rules::get(tx, ctx, Kind::Kontaktgruppe, id, &cpr.0)
        })
        .await?;
    Ok(HttpResponse::Ok().json(kontaktgruppe(r)))
}

/// Every recorded version of the person's contact groups, oldest first.
#[utoipa::path(get, path = "/personvisitering/v1/kontaktgruppehistorik", operation_id = "GetKontaktgruppeHistorik",
    tag = "Kontaktgrupper", params(CprParam, PeriodQuery),
    responses((status = 200, description = "The versions", body = KontaktgruppeHistorik)))]
pub async fn get_kontaktgruppe_historik(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
    q: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (q.fra_dato, q.til_dato);
    let vs = state
        .run(caller, false, move |tx, ctx| {
            rules::history(tx, ctx, Kind::Kontaktgruppe, &cpr.0, from, to)
        })
        .await?;
    Ok(HttpResponse::Ok().json(KontaktgruppeHistorik {
        versioner: vs.into_iter().map(kontaktgruppe).collect(),
    }))
}

/// Register a person category; the service assigns the id. An open person category ends
/// the day before this one starts (rule 5).
#[utoipa::path(post, path = "/personvisitering/v1/personkategorier", operation_id = "CreatePersonkategori",
    tag = "Personkategorier", request_body = OpretPersonkategori,
    responses((status = 201, description = "Registered", body = Personkategori,
        headers(("Location" = String, description = "Path of the new person category")))))]
pub async fn create_personkategori(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<OpretPersonkategori>,
) -> Result<HttpResponse, ApiError> {
    let r = create(&state, caller, new_personkategori(body.into_inner(), None)?).await?;
    Ok(created("personkategorier", r.id, personkategori(r)))
}

/// Register a person category with the caller's id. Idempotent as
/// CreateKontaktgruppeMedIdentifier.
#[utoipa::path(put, path = "/personvisitering/v1/personkategorier/{id}", operation_id = "CreatePersonkategoriMedIdentifier",
    tag = "Personkategorier", params(IdPath), request_body = OpretPersonkategori,
    responses((status = 201, description = "Registered, or registered before with this content", body = Personkategori,
        headers(("Location" = String, description = "Path of the person category")))))]
pub async fn create_personkategori_med_identifier(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<IdPath>,
    body: web::Json<OpretPersonkategori>,
) -> Result<HttpResponse, ApiError> {
    let r = create(
        &state,
        caller,
        new_personkategori(body.into_inner(), Some(path.id))?,
    )
    .await?;
    Ok(created("personkategorier", r.id, personkategori(r)))
}

/// Change a person category: type, dates and event time.
#[utoipa::path(patch, path = "/personvisitering/v1/personkategorier/{id}", operation_id = "UpdatePersonkategori",
    tag = "Personkategorier", params(IdPath), request_body = OpretPersonkategori,
    responses((status = 200, description = "The current version", body = Personkategori)))]
pub async fn update_personkategori(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<IdPath>,
    body: web::Json<OpretPersonkategori>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (id, cpr) = (path.id, cpr(&b.cpr)?);
    let change = Change::Personkategori {
        type_kode: b.personkategoritype,
        startdato: b.startdato,
        slutdato: b.slutdato,
        haendelse: b.haendelsestidspunkt,
    };
    let r = state
        .run(caller, true, move |tx, ctx| {
            rules::update(tx, ctx, Kind::Personkategori, id, &cpr, change)
        })
        .await?;
    Ok(HttpResponse::Ok().json(personkategori(r)))
}

/// The person's person categories (current version of each).
#[utoipa::path(get, path = "/personvisitering/v1/personkategorier", operation_id = "GetPersonkategorier",
    tag = "Personkategorier", params(CprParam, ListQuery),
    responses((status = 200, description = "The person categories, by start date", body = Personkategorier)))]
pub async fn get_personkategorier(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let only_current = q.kun_aktuelle.unwrap_or(false);
    let rs = state
        .run(caller, false, move |tx, ctx| {
            rules::list(tx, ctx, Kind::Personkategori, &cpr.0, only_current)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Personkategorier {
        personkategorier: rs.into_iter().map(personkategori).collect(),
    }))
}

/// One person category of the person, by id.
#[utoipa::path(get, path = "/personvisitering/v1/personkategorier/{id}", operation_id = "GetPersonkategori",
    tag = "Personkategorier", params(IdPath, CprParam),
    responses((status = 200, description = "The current version", body = Personkategori)))]
pub async fn get_personkategori(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.id;
    let r = state
        .run(caller, false, move |tx, ctx| {
            rules::get(tx, ctx, Kind::Personkategori, id, &cpr.0)
        })
        .await?;
    Ok(HttpResponse::Ok().json(personkategori(r)))
}

/// Every recorded version of the person's person categories, oldest first.
#[utoipa::path(get, path = "/personvisitering/v1/personkategorihistorik", operation_id = "GetPersonkategoriHistorik",
    tag = "Personkategorier", params(CprParam, PeriodQuery),
    responses((status = 200, description = "The versions", body = PersonkategoriHistorik)))]
pub async fn get_personkategori_historik(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
    q: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (q.fra_dato, q.til_dato);
    let vs = state
        .run(caller, false, move |tx, ctx| {
            rules::history(tx, ctx, Kind::Personkategori, &cpr.0, from, to)
        })
        .await?;
    Ok(HttpResponse::Ok().json(PersonkategoriHistorik {
        versioner: vs.into_iter().map(personkategori).collect(),
    }))
}

/// The person's current contact groups and person categories (AC 1005.17.28.13).
#[utoipa::path(get, path = "/personvisitering/v1/status", operation_id = "GetPersonVisiteringOgStatusStatus",
    tag = "Status", params(CprParam),
    responses((status = 200, description = "Current registrations", body = PersonVisiteringOgStatusStatus)))]
pub async fn get_status(
    state: web::Data<AppState>,
    caller: Caller,
    cpr: CprHeader,
) -> Result<HttpResponse, ApiError> {
    let (kg, pc) = state
        .run(caller, false, move |tx, ctx| rules::status(tx, ctx, &cpr.0))
        .await?;
    Ok(HttpResponse::Ok().json(PersonVisiteringOgStatusStatus {
        kontaktgrupper: kg.into_iter().map(kontaktgruppe).collect(),
        personkategorier: pc.into_iter().map(personkategori).collect(),
    }))
}

fn kodeliste(codes: &[Code]) -> Kodeliste {
    Kodeliste {
        koder: codes
            .iter()
            .map(|c| Kode {
                kode: c.kode,
                navn: c.navn.clone(),
                gyldig_fra: c.gyldig_fra,
                gyldig_til: c.gyldig_til,
                navngivet_i_kilden: c.navngivet_i_kilden,
            })
            .collect(),
    }
}

/// Code list of contact group types (AC 1005.17.28.7), from mappings/kontaktgruppetyper.toml.
#[utoipa::path(get, path = "/personvisitering/v1/kodelister/kontaktgruppetyper", operation_id = "GetKontaktgruppetyper",
    tag = "Kodelister", responses((status = 200, description = "The code list", body = Kodeliste)))]
pub async fn get_kontaktgruppetyper(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(kodeliste(&state.catalog.kontaktgruppetyper))
}

/// Code list of person category types, from mappings/personkategorityper.toml.
#[utoipa::path(get, path = "/personvisitering/v1/kodelister/personkategorityper", operation_id = "GetPersonkategorityper",
    tag = "Kodelister", responses((status = 200, description = "The code list", body = Kodeliste)))]
pub async fn get_personkategorityper(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(kodeliste(&state.catalog.personkategorityper))
}

fn register_field_ok(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

/// Feed the person register the access rules read (municipality, a-kasse, enrolled).
/// STAR (organisation type 5) only, and only when the service runs with `--dev`: without
/// it the route does not exist.
#[utoipa::path(put, path = "/personvisitering/v1/personregister", operation_id = "SetPersonRegister",
    tag = "Udvikling", request_body = PersonRegister,
    responses((status = 204, description = "Recorded")))]
pub async fn set_person_register(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<PersonRegister>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let cpr = cpr(&b.cpr)?;
    if !register_field_ok(&b.kommunekode, 3, 3) {
        return Err(ApiError::with_detail(
            Fejl::UgyldigParameter,
            "kommunekode skal være tre cifre",
        ));
    }
    if b.akasse
        .as_deref()
        .is_some_and(|a| !register_field_ok(a, 1, 8))
    {
        return Err(ApiError::with_detail(
            Fejl::UgyldigParameter,
            "akasse skal være 1-8 cifre",
        ));
    }
    let entry = PersonEntry {
        kommunekode: b.kommunekode,
        akasse: b.akasse,
        tilmeldt: b.tilmeldt,
    };
    state
        .run(caller, true, move |tx, ctx| {
            rules::set_person(tx, ctx, &cpr, &entry)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
