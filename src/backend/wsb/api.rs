//! The WSB operations of the REST service: subscriptions (an organisation's own), STAR's
//! list and redelivery of parked events, and the CPR change.

use actix_web::{HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Abonnement, Entitet, Parkeret};
use crate::backend::access::Caller;
use crate::backend::error::ApiError;
use crate::backend::handlers::AppState;
use crate::backend::rules;
use crate::catalog::{Fejl, Scope};
use crate::cpr::CprInput;
use crate::vos::{self, Kind};

/// The longest endpoint accepted.
const MAX_ENDPOINT_LEN: usize = 2000;

/// Body of CreateWsbAbonnement.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpretWsbAbonnement {
    /// Where events are POSTed: an absolute `https://` URL (in dev mode also `http://` to a
    /// loopback address).
    #[schema(max_length = 2000, example = "https://kss.example.dk/wsb")]
    pub endpoint: String,
    /// The entities wanted: `Kontaktgruppe`, `Personkategori`, `CprSkift` (at least one).
    #[schema(min_items = 1, max_items = 3)]
    pub entiteter: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WsbAbonnementer {
    pub abonnementer: Vec<Abonnement>,
}

/// Query of GetWsbAbonnementer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AbonnementQuery {
    /// STAR only: every organisation's subscriptions, not just the caller's own.
    alle: Option<bool>,
}

/// The id of a subscription.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AbonnementPath {
    /// UUID, lower-case hyphenated.
    id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WsbParkerede {
    pub parkerede: Vec<Parkeret>,
}

/// Body of CreateWsbGenlevering: which parked events of a subscription to deliver again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpretWsbGenlevering {
    pub abonnement_id: Uuid,
    /// The events (their `sekvens`); absent: every parked event of the subscription.
    pub sekvenser: Option<Vec<i64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WsbGenlevering {
    /// How many parked events will be delivered again.
    pub markeret: usize,
}

/// Body of CreateCprSkift.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpretCprSkift {
    #[schema(value_type = String, pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$")]
    pub gammelt_cpr: CprInput,
    #[schema(value_type = String, pattern = "^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}$")]
    pub nyt_cpr: CprInput,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CprSkift {
    /// The change's id (the `cprSkiftId` of its WSB event).
    pub id: Uuid,
}

/// Checks a subscriber's endpoint: `https://` with a host, no user info, no fragment; in dev
/// mode also `http://` to 127.0.0.1, ::1 or localhost.
pub fn check_endpoint(endpoint: &str, dev: bool) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::with_detail(Fejl::UgyldigtEndpoint, why.to_owned());
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(bad("for lang"));
    }
    let url = reqwest::Url::parse(endpoint).map_err(|_| bad("ikke en absolut URL"))?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(bad("brugeroplysninger eller fragment"));
    }
    let host = url.host_str().ok_or_else(|| bad("ingen vært"))?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if dev && loopback => Ok(()),
        "http" if dev => Err(bad("http kun til loopback i udviklingstilstand")),
        _ => Err(bad("skal være https")),
    }
}

/// The entities asked for, checked: known, not repeated, readable by the caller's type.
fn entiteter(caller: &Caller, names: &[String]) -> Result<Vec<Entitet>, ApiError> {
    let bad = |why: String| ApiError::with_detail(Fejl::UgyldigeEntiteter, why);
    if names.is_empty() {
        return Err(bad("mindst én entitet".into()));
    }
    let mut out = Vec::new();
    for n in names {
        let e = Entitet::parse(n).ok_or_else(|| bad(format!("ukendt entitet {n:.40}")))?;
        if out.contains(&e) {
            return Err(bad(format!("{n} gentaget")));
        }
        let readable = match e {
            Entitet::Kontaktgruppe => caller.may_read(Kind::Kontaktgruppe),
            Entitet::Personkategori => caller.may_read(Kind::Personkategori),
            Entitet::CprSkift => caller.org.adgang != Scope::Ingen,
        };
        if !readable {
            return Err(bad(format!("{n} må ikke læses af organisationstypen")));
        }
        out.push(e);
    }
    Ok(out)
}

fn star_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.org.adgang == Scope::Alle {
        Ok(())
    } else {
        Err(Fejl::OperationIkkeTilladt.into())
    }
}

/// Subscribe the calling organisation to WSB events: each event it may see (as for reads,
/// rules 6 and 7) is POSTed to the endpoint as JSON, in `sekvens` order, at least once.
/// Events written from now on are delivered.
#[utoipa::path(post, path = "/personvisitering/v1/wsb/abonnementer", operation_id = "CreateWsbAbonnement",
    tag = "WSB", request_body = OpretWsbAbonnement,
    responses((status = 201, description = "Subscribed", body = Abonnement,
        headers(("Location" = String, description = "Path of the subscription")))))]
pub async fn create_wsb_abonnement(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<OpretWsbAbonnement>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    check_endpoint(&b.endpoint, state.dev)?;
    let wanted = entiteter(&caller, &b.entiteter)?;
    let a = state
        .run(caller, true, move |tx, ctx| {
            let a = Abonnement {
                id: Uuid::new_v4(),
                organisationstype: ctx.caller.org.kode,
                organisationskode: ctx.caller.code.clone(),
                endpoint: b.endpoint,
                entiteter: wanted,
                oprettet: ctx.now,
                naeste_sekvens: tx.last_sekvens()? + 1,
            };
            tx.create_subscription(&a)?;
            Ok(a)
        })
        .await?;
    state.wsb.subscriptions_changed();
    tracing::info!(abonnement = %a.id, organisationstype = a.organisationstype, "WSB subscription created");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("{}/wsb/abonnementer/{}", vos::BASE, a.id),
        ))
        .json(a))
}

/// The calling organisation's subscriptions; STAR with `alle=true`: everyone's.
#[utoipa::path(get, path = "/personvisitering/v1/wsb/abonnementer", operation_id = "GetWsbAbonnementer",
    tag = "WSB", params(AbonnementQuery),
    responses((status = 200, description = "The subscriptions, oldest first", body = WsbAbonnementer)))]
pub async fn get_wsb_abonnementer(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AbonnementQuery>,
) -> Result<HttpResponse, ApiError> {
    let all = query.alle.unwrap_or(false);
    if all {
        star_only(&caller)?;
    }
    let abonnementer = state
        .run(caller, false, move |tx, ctx| {
            let owner = (ctx.caller.org.kode, ctx.caller.code.as_str());
            Ok(tx.subscriptions((!all).then_some(owner))?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(WsbAbonnementer { abonnementer }))
}

/// End one of the calling organisation's subscriptions. Its undelivered and parked events
/// are dropped for it.
#[utoipa::path(delete, path = "/personvisitering/v1/wsb/abonnementer/{id}", operation_id = "DeleteWsbAbonnement",
    tag = "WSB", params(AbonnementPath),
    responses((status = 204, description = "Ended")))]
pub async fn delete_wsb_abonnement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<AbonnementPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.id;
    state
        .run(caller, true, move |tx, ctx| {
            let own = tx.subscription(id)?.is_some_and(|a| {
                a.organisationstype == ctx.caller.org.kode && a.organisationskode == ctx.caller.code
            });
            if !own || !tx.delete_subscription(id)? {
                return Err(Fejl::UkendtAbonnement.into());
            }
            Ok(())
        })
        .await?;
    state.wsb.subscriptions_changed();
    tracing::info!(abonnement = %id, "WSB subscription ended");
    Ok(HttpResponse::NoContent().finish())
}

/// STAR only: the parked (dead-lettered) events: those a subscriber did not acknowledge
/// within the delivery age (`--wsb-max-age-secs`).
#[utoipa::path(get, path = "/personvisitering/v1/wsb/parkerede", operation_id = "GetWsbParkeredeBeskeder",
    tag = "WSB",
    responses((status = 200, description = "The parked events, by subscription and sekvens", body = WsbParkerede)))]
pub async fn get_wsb_parkerede(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    star_only(&caller)?;
    let parkerede = state.run(caller, false, |tx, _| Ok(tx.parked()?)).await?;
    Ok(HttpResponse::Ok().json(WsbParkerede { parkerede }))
}

/// STAR only: deliver parked events of a subscription again (before its next new events;
/// parked again if they are still refused after the delivery age).
#[utoipa::path(post, path = "/personvisitering/v1/wsb/genleveringer", operation_id = "CreateWsbGenlevering",
    tag = "WSB", request_body = OpretWsbGenlevering,
    responses((status = 200, description = "How many were marked for redelivery", body = WsbGenlevering)))]
pub async fn create_wsb_genlevering(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<OpretWsbGenlevering>,
) -> Result<HttpResponse, ApiError> {
    star_only(&caller)?;
    let b = body.into_inner();
    let markeret = state
        .run(caller, true, move |tx, _| {
            if tx.subscription(b.abonnement_id)?.is_none() {
                return Err(Fejl::UkendtAbonnement.into());
            }
            Ok(tx.redeliver(b.abonnement_id, b.sekvenser.as_deref())?)
        })
        .await?;
    // The worker looks for redeliveries first whenever it wakes.
    state.wsb.events.send_modify(|n| *n = n.wrapping_add(1));
    Ok(HttpResponse::Ok().json(WsbGenlevering { markeret }))
}

/// STAR only: a citizen has a new CPR number. Every registration of the old number, history
/// included, and its person register entry move to the new one in one transaction, with
/// one `CprSkift` WSB event; reads by the old number then answer as for an unknown person.
/// Repeating a change already made answers as the first call did and changes nothing.
#[utoipa::path(post, path = "/personvisitering/v1/personnummerskift", operation_id = "CreateCprSkift",
    tag = "Personer", request_body = OpretCprSkift,
    responses((status = 200, description = "Moved, or moved before by the same change", body = CprSkift)))]
pub async fn create_cpr_skift(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<OpretCprSkift>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let invalid = |_| ApiError::from(Fejl::UgyldigtCpr);
    let (gammelt, nyt) = (
        b.gammelt_cpr.validate().map_err(invalid)?,
        b.nyt_cpr.validate().map_err(invalid)?,
    );
    let done = state
        .run(caller, true, move |tx, ctx| {
            rules::change_cpr(tx, ctx, &gammelt, &nyt)
        })
        .await?;
    if done.new {
        tracing::info!(cpr_skift = %done.id, "CPR change recorded");
    }
    Ok(HttpResponse::Ok().json(CprSkift { id: done.id }))
}
