//! The business rules of rules.md, as operations on one store transaction. Handlers decode
//! and encode; everything a rule decides is here, where a test can point at it.
//!
//! Order inside a write: validate the request (types, dates) → may this caller register
//! this kind, for this person (rule 7) → an idempotent replay answers now → rule 1 → rule 2
//! → rule 5 → record (with the originator, rule 8).

use jiff::{Timestamp, civil::Date};
use uuid::Uuid;

use super::access::Caller;
use super::error::ApiError;
use super::store::{PersonEntry, Registrering, Tx};
use super::wsb;
use crate::catalog::{Catalog, Fejl};
use crate::cpr::Cpr;
use crate::vos::Kind;

/// What every operation needs besides its input.
pub struct Ctx<'a> {
    pub catalog: &'static Catalog,
    pub caller: &'a Caller,
    /// Today in Denmark.
    pub today: Date,
    pub now: Timestamp,
}

/// A create request, decoded.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub kind: Kind,
    /// Set by Create...MedIdentifier; None lets the service assign one.
    pub id: Option<Uuid>,
    pub cpr: Cpr,
    pub type_kode: u32,
    pub startdato: Date,
    pub slutdato: Option<Date>,
    pub haendelse: Timestamp,
}

/// What an update may change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Rule 4: a contact group's type, start date and event time cannot change.
    Kontaktgruppe { slutdato: Option<Date> },
    Personkategori {
        type_kode: u32,
        startdato: Date,
        slutdato: Option<Date>,
        haendelse: Timestamp,
    },
}

fn check_type(catalog: &Catalog, kind: Kind, code: u32, startdato: Date) -> Result<(), ApiError> {
    let unknown = match kind {
        Kind::Kontaktgruppe => Fejl::UkendtKontaktgruppetype,
        Kind::Personkategori => Fejl::UkendtPersonkategoritype,
    };
    let c = catalog
        .codes(kind)
        .iter()
        .find(|c| c.kode == code)
        .ok_or(unknown)?;
    if !c.valid_on(startdato) {
        return Err(ApiError::with_detail(
            Fejl::TypeIkkeGyldig,
            format!("type {code} er ikke gyldig {startdato}"),
        ));
    }
    Ok(())
}

fn check_period(startdato: Date, slutdato: Option<Date>) -> Result<(), ApiError> {
    match slutdato {
        Some(end) if end < startdato => Err(Fejl::StartdatoEfterSlutdato.into()),
        _ => Ok(()),
    }
}

/// Rule 1: a contact group's end date is not after today (Danish local date).
fn check_end_not_future(kind: Kind, slutdato: Option<Date>, today: Date) -> Result<(), ApiError> {
    match (kind, slutdato) {
        (Kind::Kontaktgruppe, Some(end)) if end > today => Err(Fejl::SlutdatoFremtidig.into()),
        _ => Ok(()),
    }
}

fn not_found(kind: Kind) -> ApiError {
    match kind {
        Kind::Kontaktgruppe => Fejl::UkendtKontaktgruppe.into(),
        Kind::Personkategori => Fejl::UkendtPersonkategori.into(),
    }
}

/// Rule 7 for a write: the caller registers this kind, and the person is theirs.
fn authorize_write(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Kind,
    cpr: &Cpr,
) -> Result<Option<PersonEntry>, ApiError> {
    ctx.caller.check_register(kind)?;
    let person = tx.person(cpr)?;
    ctx.caller.check_person(person.as_ref())?;
    Ok(person)
}

/// Rule 7 for a read about a person: the caller reads this kind, the person is theirs, and
/// the service knows the person at all.
fn authorize_read(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Option<Kind>,
    cpr: &Cpr,
) -> Result<(), ApiError> {
    if let Some(kind) = kind {
        ctx.caller.check_read(kind)?;
    }
    ctx.caller.check_person(tx.person(cpr)?.as_ref())?;
    if !tx.knows(cpr)? {
        return Err(Fejl::UkendtPerson.into());
    }
    Ok(())
}

/// Records a version with its WSB event, in the caller's transaction (the outbox).
fn record(tx: &Tx<'_>, r: &Registrering) -> Result<(), ApiError> {
    let event = wsb::version_event(r, tx.person(&r.cpr)?);
    Ok(tx.record(r, &event)?)
}

pub fn create(tx: &Tx<'_>, ctx: &Ctx<'_>, n: NewRegistration) -> Result<Registrering, ApiError> {
    check_type(ctx.catalog, n.kind, n.type_kode, n.startdato)?;
    check_period(n.startdato, n.slutdato)?;
    let person = authorize_write(tx, ctx, n.kind, &n.cpr)?;

    // Create...MedIdentifier is idempotent: the same id and content answer as the first call.
    if let Some(id) = n.id
        && let Some(first) = tx.first_version(n.kind, id)?
    {
        let same = first.cpr == n.cpr
            && first.type_kode == n.type_kode
            && first.startdato == n.startdato
            && first.slutdato == n.slutdato
            && first.haendelse == n.haendelse
            && first.oprettet_af.organisationstype == ctx.caller.org.kode
            && first.oprettet_af.organisationskode == ctx.caller.code;
        return if same {
            Ok(first)
        } else {
            Err(Fejl::IdentifikatorKonflikt.into())
        };
    }

    check_end_not_future(n.kind, n.slutdato, ctx.today)?;
    let open = tx.open(n.kind, &n.cpr)?;

    // Rule 2: an enrolled person keeps the type of the current contact group.
    if n.kind == Kind::Kontaktgruppe
        && person.as_ref().is_some_and(|p| p.tilmeldt)
        && open.as_ref().is_some_and(|o| o.type_kode != n.type_kode)
    {
        return Err(Fejl::KontaktgruppeSkiftTilmeldt.into());
    }

    let by = ctx.caller.registrant();
    // Rule 5: the open registration ends the day before the new one starts.
    if let Some(mut o) = open {
        if n.startdato <= o.startdato {
            return Err(Fejl::StartdatoFoerAaben.into());
        }
        o.slutdato = Some(
            n.startdato
                .yesterday()
                .map_err(|_| ApiError::from(Fejl::StartdatoFoerAaben))?,
        );
        o.version += 1;
        o.registreret_af = by.clone();
        o.registreret_tid = ctx.now;
        record(tx, &o)?;
    }

    let r = Registrering {
        kind: n.kind,
        id: n.id.unwrap_or_else(Uuid::new_v4),
        cpr: n.cpr,
        type_kode: n.type_kode,
        startdato: n.startdato,
        slutdato: n.slutdato,
        haendelse: n.haendelse,
        version: 1,
        oprettet_af: by.clone(),
        registreret_af: by,
        registreret_tid: ctx.now,
    };
    record(tx, &r)?;
    Ok(r)
}

pub fn update(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Kind,
    id: Uuid,
    cpr: &Cpr,
    change: Change,
) -> Result<Registrering, ApiError> {
    authorize_write(tx, ctx, kind, cpr)?;
    let mut r = tx
        .get(kind, id)?
        .filter(|r| r.cpr == *cpr)
        .ok_or_else(|| not_found(kind))?;
    // An a-kasse cannot change what it cannot see (rule 6).
    if !ctx.caller.sees(ctx.catalog, &r, ctx.today) {
        return Err(not_found(kind));
    }
    let before = r.clone();
    match change {
        Change::Kontaktgruppe { slutdato } => r.slutdato = slutdato,
        Change::Personkategori {
            type_kode,
            startdato,
            slutdato,
            haendelse,
        } => {
            check_type(ctx.catalog, kind, type_kode, startdato)?;
            r.type_kode = type_kode;
            r.startdato = startdato;
            r.slutdato = slutdato;
            r.haendelse = haendelse;
        }
    }
    check_period(r.startdato, r.slutdato)?;
    if r.slutdato != before.slutdato {
        check_end_not_future(kind, r.slutdato, ctx.today)?;
    }
    if r == before {
        return Ok(before); // nothing changes, no version is recorded
    }
    // Rule 5: reopening is refused while another registration is open.
    if r.slutdato.is_none() && tx.open(kind, cpr)?.is_some_and(|o| o.id != id) {
        return Err(Fejl::AabenFindes.into());
    }
    r.version += 1;
    r.registreret_af = ctx.caller.registrant();
    r.registreret_tid = ctx.now;
    record(tx, &r)?;
    Ok(r)
}

/// One registration by id, if the caller may see it.
pub fn get(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Kind,
    id: Uuid,
    cpr: &Cpr,
) -> Result<Registrering, ApiError> {
    ctx.caller.check_read(kind)?;
    ctx.caller.check_person(tx.person(cpr)?.as_ref())?;
    tx.get(kind, id)?
        .filter(|r| r.cpr == *cpr && ctx.caller.sees(ctx.catalog, r, ctx.today))
        .ok_or_else(|| not_found(kind))
}

/// The current version of the person's registrations; with `only_current`, those not
/// ended before today.
pub fn list(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Kind,
    cpr: &Cpr,
    only_current: bool,
) -> Result<Vec<Registrering>, ApiError> {
    authorize_read(tx, ctx, Some(kind), cpr)?;
    visible_current(tx, ctx, kind, cpr, only_current)
}

fn visible_current(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Kind,
    cpr: &Cpr,
    only_current: bool,
) -> Result<Vec<Registrering>, ApiError> {
    let mut rs = tx.current(kind, cpr)?;
    rs.retain(|r| {
        ctx.caller.sees(ctx.catalog, r, ctx.today)
            && (!only_current || r.slutdato.is_none_or(|end| end >= ctx.today))
    });
    Ok(rs)
}

/// Every recorded version, oldest first, whose own period (as that version recorded it)
/// overlaps [from, to] (either end open).
pub fn history(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    kind: Kind,
    cpr: &Cpr,
    from: Option<Date>,
    to: Option<Date>,
) -> Result<Vec<Registrering>, ApiError> {
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(Fejl::StartdatoEfterSlutdato.into());
    }
    authorize_read(tx, ctx, Some(kind), cpr)?;
    let mut vs = tx.versions(kind, cpr)?;
    vs.retain(|v| {
        ctx.caller.sees(ctx.catalog, v, ctx.today)
            && to.is_none_or(|t| v.startdato <= t)
            && from.is_none_or(|f| v.slutdato.is_none_or(|end| end >= f))
    });
    Ok(vs)
}

/// GetPersonVisiteringOgStatusStatus: current contact groups and person categories, each
/// as far as the caller may read them (an a-kasse gets no person categories, rule 6).
pub fn status(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    cpr: &Cpr,
) -> Result<(Vec<Registrering>, Vec<Registrering>), ApiError> {
    if !ctx.caller.may_read(Kind::Kontaktgruppe) && !ctx.caller.may_read(Kind::Personkategori) {
        return Err(Fejl::OperationIkkeTilladt.into());
    }
    authorize_read(tx, ctx, None, cpr)?;
    Ok((
        visible_current(tx, ctx, Kind::Kontaktgruppe, cpr, true)?,
        visible_current(tx, ctx, Kind::Personkategori, cpr, true)?,
    ))
}

/// SetPersonRegister (dev mode only; the route does not exist otherwise).
pub fn set_person(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    cpr: &Cpr,
    entry: &PersonEntry,
) -> Result<(), ApiError> {
    if !ctx.caller.org.personregister {
        return Err(Fejl::OperationIkkeTilladt.into());
    }
    Ok(tx.set_person(cpr, entry)?)
}

/// A CPR change, done.
#[derive(Debug, Clone, PartialEq)]
pub struct CprChanged {
    pub id: Uuid,
    /// False when this call repeated a change already made (nothing changed).
    pub new: bool,
}

/// CreateCprSkift (STAR only): every registration of `gammelt`, history included, and its
/// person register entry now belong to `nyt`, with one `CprSkift` event; reads by `gammelt`
/// answer as for an unknown person. Repeating a change already made is a no-op; a change to
/// a number that has registrations of its own is refused.
pub fn change_cpr(
    tx: &Tx<'_>,
    ctx: &Ctx<'_>,
    gammelt: &Cpr,
    nyt: &Cpr,
) -> Result<CprChanged, ApiError> {
    if !ctx.caller.org.cprskift {
        return Err(Fejl::OperationIkkeTilladt.into());
    }
    if gammelt == nyt {
        return Err(Fejl::CprSkiftSamme.into());
    }
    let known = tx.knows(gammelt)?;
    if !known
        && let Some((target, id)) = tx.cpr_change(gammelt)?
        && target == nyt.expose()
    {
        return Ok(CprChanged { id, new: false });
    }
    if !known {
        return Err(Fejl::UkendtPerson.into());
    }
    if tx.has_registrations(nyt)? {
        return Err(Fejl::CprHarRegistreringer.into());
    }
    let id = Uuid::new_v4();
    tx.move_person(gammelt, nyt, id, ctx.now)?;
    let event = wsb::cpr_change_event(
        id,
        gammelt,
        nyt,
        ctx.now,
        &ctx.caller.registrant(),
        tx.person(nyt)?,
    );
    tx.append_event(&event)?;
    Ok(CprChanged { id, new: true })
}
