//! WSB: the reference service tells its subscribers what changed (issue 15).
//!
//! - The **outbox**: every version recorded (create, update, the automatic close of rule 5)
//!   and every CPR change appends one event to `wsb_haendelse` in the same transaction as the
//!   change (`Tx::record` takes the event; `Tx::append_event` is the only other writer).
//!   So a 2xx means the event exists. `sekvens` is SQLite's AUTOINCREMENT key: a rolled-back
//!   write takes its number back, so the sequence has no gaps.
//! - **Subscriptions** (`api`): an organisation's HTTPS endpoint and the entities it wants.
//! - **Delivery** (`delivery`): one task per subscription POSTs the events it may see, in
//!   `sekvens` order, at least once, with capped exponential backoff; an event older than
//!   the configured age is parked (dead-lettered), listable and redeliverable by STAR.
//! - **Routing** ([`may_see`]): rule 7 and the a-kasse view of rule 6, exactly as for reads,
//!   over the person register as it was when the change was made.

pub mod api;
pub mod delivery;

use jiff::{Timestamp, civil::Date};
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use uuid::Uuid;

use super::access::Caller;
use super::store::{PersonEntry, Registrering, StoreError, Tx};
use crate::catalog::Catalog;
use crate::cpr::Cpr;
use crate::vos::{Kind, Registrant};

/// What an event is about. The EntitetIds: 100008 is STAR's for Kontaktgruppe.WSB; 100009
/// (Personkategori) and 100010 (CprSkift) are this project's choice (README, "WSB").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum Entitet {
    Kontaktgruppe,
    Personkategori,
    CprSkift,
}

impl Entitet {
    pub const ALL: [Entitet; 3] = [
        Entitet::Kontaktgruppe,
        Entitet::Personkategori,
        Entitet::CprSkift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entitet::Kontaktgruppe => "Kontaktgruppe",
            Entitet::Personkategori => "Personkategori",
            Entitet::CprSkift => "CprSkift",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    pub fn entitet_id(self) -> u32 {
        match self {
            Entitet::Kontaktgruppe => 100008,
            Entitet::Personkategori => 100009,
            Entitet::CprSkift => 100010,
        }
    }

    fn of(kind: Kind) -> Self {
        match kind {
            Kind::Kontaktgruppe => Entitet::Kontaktgruppe,
            Kind::Personkategori => Entitet::Personkategori,
        }
    }
}

/// `aendringstype`: 1 created, 2 updated (3, deleted, never happens: nothing is deleted).
pub const OPRETTET: u8 = 1;
pub const AENDRET: u8 = 2;

/// What routing needs to know about an event: the person, as the person register had them
/// when the change was made, and the version's kind, type and end (the a-kasse view).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub cpr: Cpr,
    pub person: Option<PersonEntry>,
    pub registrering: Option<(Kind, u32, Option<Date>)>,
}

/// An event to append, built in the change's transaction.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub besked_id: Uuid,
    pub entitet: Entitet,
    pub route: Route,
    /// The message as delivered, without `sekvens` (known only once appended).
    pub besked: String,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub sekvens: i64,
    pub entitet: Entitet,
    pub route: Route,
    besked: String,
    /// When it was written (the system clock, for ages and latencies).
    pub skrevet_ms: i64,
}

impl StoredEvent {
    /// The JSON body POSTed to a subscriber: the stored message with `sekvens` first.
    pub fn message(&self) -> String {
        self.with_members(&format!("\"sekvens\":{}", self.sekvens))
    }

    /// The stored message with `members` (JSON members, comma-separated) first.
    fn with_members(&self, members: &str) -> String {
        let rest = self.besked.strip_prefix('{').unwrap_or(&self.besked);
        let sep = if rest.starts_with('}') { "" } else { "," };
        format!("{{{members}{sep}{rest}")
    }

    /// [`StoredEvent::message`], for a subscriber that sees every person (STAR) with
    /// `borger` added: the person's municipality and a-kasse as the person register had them
    /// at the change (`null` when not in it). A router of events (the converter's legacy WSRM
    /// queues) needs them; other subscribers know their own citizens and are not told.
    pub fn message_with_person(&self) -> String {
        let borger = match &self.route.person {
            Some(p) => json!({ "kommunekode": p.kommunekode, "akasse": p.akasse }),
            None => serde_json::Value::Null,
        };
        self.with_members(&format!("\"sekvens\":{},\"borger\":{borger}", self.sekvens))
    }
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Abonnement {
    pub id: Uuid,
    pub organisationstype: u8,
    pub organisationskode: String,
    /// Where events are POSTed.
    pub endpoint: String,
    pub entiteter: Vec<Entitet>,
    pub oprettet: Timestamp,
    /// The next event considered for delivery: every event before it is delivered or parked.
    pub naeste_sekvens: i64,
}

/// Milliseconds since the epoch, from the system clock.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// A WSB message as delivered (without `sekvens`, which [`StoredEvent::message`] adds).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    besked_id: Uuid,
    entitet: &'static str,
    entitet_id: u32,
    aendringstype: u8,
    /// Danish time with its offset.
    tidspunkt: String,
    cpr: &'a str,
    noegle: serde_json::Value,
    registreret_af: &'a Registrant,
    data: serde_json::Value,
}

impl Message<'_> {
    fn text(&self) -> String {
        // A struct of strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The event of one recorded version: `Kontaktgruppe` or `Personkategori`, created for
/// version 1 and updated otherwise, `data` the version as GetKontaktgruppe (GetPersonkategori)
/// answers it.
pub fn version_event(r: &Registrering, person: Option<PersonEntry>) -> NewEvent {
    let entitet = Entitet::of(r.kind);
    let (key, data) = match r.kind {
        Kind::Kontaktgruppe => (
            "kontaktgruppeId",
            serde_json::to_value(super::handlers::kontaktgruppe(r.clone())),
        ),
        Kind::Personkategori => (
            "personkategoriId",
            serde_json::to_value(super::handlers::personkategori(r.clone())),
        ),
    };
    let besked_id = Uuid::new_v4();
    let aendringstype = if r.version == 1 { OPRETTET } else { AENDRET };
    NewEvent {
        besked_id,
        entitet,
        route: Route {
            cpr: r.cpr.clone(),
            person,
            registrering: Some((r.kind, r.type_kode, r.slutdato)),
        },
        besked: Message {
            besked_id,
            entitet: entitet.as_str(),
            entitet_id: entitet.entitet_id(),
            aendringstype,
            tidspunkt: crate::dktime::format_xs_datetime(r.registreret_tid),
            cpr: r.cpr.expose(),
            noegle: json!({ key: r.id }),
            registreret_af: &r.registreret_af,
            data: data.unwrap_or(serde_json::Value::Null),
        }
        .text(),
    }
}

/// The event of a CPR change: about the new number, `data` both numbers.
pub fn cpr_change_event(
    id: Uuid,
    gammelt: &Cpr,
    nyt: &Cpr,
    at: Timestamp,
    by: &Registrant,
    person: Option<PersonEntry>,
) -> NewEvent {
    let besked_id = Uuid::new_v4();
    NewEvent {
        besked_id,
        entitet: Entitet::CprSkift,
        route: Route {
            cpr: nyt.clone(),
            person,
            registrering: None,
        },
        besked: Message {
            besked_id,
            entitet: Entitet::CprSkift.as_str(),
            entitet_id: Entitet::CprSkift.entitet_id(),
            aendringstype: OPRETTET,
            tidspunkt: crate::dktime::format_xs_datetime(at),
            cpr: nyt.expose(),
            noegle: json!({ "cprSkiftId": id }),
            registreret_af: by,
            data: json!({ "gammeltCpr": gammelt.expose(), "nytCpr": nyt.expose() }),
        }
        .text(),
    }
}

/// Whether a subscription may see an event: it asked for the entity, and its organisation
/// could read the change now (rule 7: its citizen or member; rule 6: an a-kasse sees contact
/// groups of the listed types only, never person categories).
pub fn may_see(catalog: &'static Catalog, sub: &Abonnement, ev: &StoredEvent, today: Date) -> bool {
    if !sub.entiteter.contains(&ev.entitet) {
        return false;
    }
    let Some(org) = catalog.orgtype(sub.organisationstype) else {
        return false;
    };
    let caller = Caller {
        org,
        code: sub.organisationskode.clone(),
        user: None,
    };
    if caller.check_person(ev.route.person.as_ref()).is_err() {
        return false;
    }
    match ev.route.registrering {
        Some((kind, type_kode, slutdato)) => {
            caller.sees_version(catalog, kind, type_kode, slutdato, today)
        }
        None => true,
    }
}

fn entiteter_text(e: &[Entitet]) -> String {
    e.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// A parked event, for STAR's list.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parkeret {
    pub abonnement_id: Uuid,
    pub sekvens: i64,
    pub entitet: String,
    /// When it was parked (ms since the epoch).
    pub parkeret_ms: i64,
    pub forsoeg: u32,
    /// The last failure, as the dispatcher saw it (status or transport error; no body).
    pub fejl: String,
    /// Set when STAR asked for a redelivery that has not succeeded yet.
    pub genlever_ms: Option<i64>,
}

/// One event for one subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub sub: Abonnement,
    /// In `sekvens` order: one parked event to redeliver, or the events of the next scanned
    /// batch the subscription may see (delivered one after the other without another scan).
    pub events: Vec<StoredEvent>,
    /// Set for a redelivery STAR asked for: since when (ms since the epoch).
    pub redelivery: Option<i64>,
    /// The scan stopped at a full batch: the outbox may hold more after it.
    pub more: bool,
}

/// What a subscription's worker does next.
#[derive(Debug, Clone)]
pub enum Next {
    /// Deliver `event` to `sub`: a parked event STAR asked to redeliver (`redelivery`: since
    /// when), else the next event from the cursor on that the subscription may see.
    Deliver(Box<Delivery>),
    /// Nothing to deliver now; the events up to `scanned_to` are not for the subscription.
    Idle { scanned_to: Option<i64> },
    /// The subscription is gone.
    Gone,
}

const EVENT_COLUMNS: &str =
    "sekvens, entitet, cpr, kind, type_kode, slutdato, kommunekode, akasse, besked, skrevet_ms";

fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredEvent, StoreError>> {
    let entitet: String = r.get(1)?;
    let cpr: String = r.get(2)?;
    let kind: Option<String> = r.get(3)?;
    let type_kode: Option<u32> = r.get(4)?;
    let slutdato: Option<String> = r.get(5)?;
    let kommunekode: Option<String> = r.get(6)?;
    let akasse: Option<String> = r.get(7)?;
    let (sekvens, besked, skrevet_ms) = (r.get(0)?, r.get(8)?, r.get(9)?);
    Ok((|| {
        let entitet = Entitet::parse(&entitet).ok_or_else(|| corrupt("wsb entitet"))?;
        let cpr = Cpr::parse(&cpr).map_err(|_| corrupt("wsb cpr"))?;
        let registrering = match (kind.as_deref(), type_kode) {
            (Some(k), Some(t)) => {
                let kind = match k {
                    "kontaktgruppe" => Kind::Kontaktgruppe,
                    "personkategori" => Kind::Personkategori,
                    _ => return Err(corrupt("wsb kind")),
                };
                let end = match slutdato {
                    Some(s) => Some(s.parse().map_err(|_| corrupt("wsb slutdato"))?),
                    None => None,
                };
                Some((kind, t, end))
            }
            _ => None,
        };
        let person = kommunekode.map(|kommunekode| PersonEntry {
            kommunekode,
            akasse,
            tilmeldt: false,
        });
        Ok(StoredEvent {
            sekvens,
            entitet,
            route: Route {
                cpr,
                person,
                registrering,
            },
            besked,
            skrevet_ms,
        })
    })())
}

fn abonnement(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Abonnement, StoreError>> {
    let id: String = r.get(0)?;
    let entiteter: String = r.get(4)?;
    let oprettet: String = r.get(5)?;
    let (organisationstype, organisationskode, endpoint, naeste_sekvens) =
        (r.get(1)?, r.get(2)?, r.get(3)?, r.get(6)?);
    Ok((|| {
        Ok(Abonnement {
            id: id.parse().map_err(|_| corrupt("wsb abonnement id"))?,
            organisationstype,
            organisationskode,
            endpoint,
            entiteter: entiteter
                .split(',')
                .map(|e| Entitet::parse(e).ok_or_else(|| corrupt("wsb entiteter")))
                .collect::<Result<_, _>>()?,
            oprettet: oprettet
                .parse()
                .map_err(|_| corrupt("wsb abonnement oprettet"))?,
            naeste_sekvens,
        })
    })())
}

const SUB_COLUMNS: &str =
    "id, organisationstype, organisationskode, endpoint, entiteter, oprettet, naeste_sekvens";

/// How many events a worker reads at once while it looks for the next one it may see.
const SCAN_BATCH: i64 = 200;

impl Tx<'_> {
    /// Appends an event to the outbox (in the caller's transaction).
    pub fn append_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        let (kind, type_kode, slutdato) = match e.route.registrering {
            Some((k, t, s)) => (Some(k.as_str()), Some(t), s.map(|d| d.to_string())),
            None => (None, None, None),
        };
        let person = e.route.person.as_ref();
        self.conn
            .prepare_cached(
                "INSERT INTO wsb_haendelse (besked_id, entitet, cpr, kind, type_kode, slutdato,
                     kommunekode, akasse, besked, skrevet_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                e.besked_id.to_string(),
                e.entitet.as_str(),
                e.route.cpr.expose(),
                kind,
                type_kode,
                slutdato,
                person.map(|p| p.kommunekode.as_str()),
                person.and_then(|p| p.akasse.as_deref()),
                e.besked,
                now_ms(),
            ])?;
        self.appended.borrow_mut().push(e.entitet);
        Ok(self.conn.last_insert_rowid())
    }

    /// The last sekvens written (0 when the outbox is empty).
    pub fn last_sekvens(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(sekvens), 0) FROM wsb_haendelse")?
            .query_row([], |r| r.get(0))?)
    }

    /// Every event from `from` on, oldest first, at most `limit` (for tests and tools).
    pub fn events_from(&self, from: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM wsb_haendelse WHERE sekvens >= ?1 ORDER BY sekvens LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![from, limit], stored_event)?;
        rows.map(|r| r?).collect()
    }

    fn event(&self, sekvens: i64) -> Result<Option<StoredEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM wsb_haendelse WHERE sekvens = ?1"
        ))?;
        stmt.query_row([sekvens], stored_event)
            .optional()?
            .transpose()
    }

    pub fn create_subscription(&self, a: &Abonnement) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO wsb_abonnement ({SUB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                a.id.to_string(),
                a.organisationstype,
                a.organisationskode,
                a.endpoint,
                entiteter_text(&a.entiteter),
                a.oprettet.to_string(),
                a.naeste_sekvens,
            ])?;
        Ok(())
    }

    pub fn subscription(&self, id: Uuid) -> Result<Option<Abonnement>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUB_COLUMNS} FROM wsb_abonnement WHERE id = ?1"
        ))?;
        stmt.query_row([id.to_string()], abonnement)
            .optional()?
            .transpose()
    }

    /// Every subscription, or one organisation's, oldest first.
    pub fn subscriptions(&self, owner: Option<(u8, &str)>) -> Result<Vec<Abonnement>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUB_COLUMNS} FROM wsb_abonnement
             WHERE ?1 IS NULL OR (organisationstype = ?1 AND organisationskode = ?2)
             ORDER BY oprettet, id"
        ))?;
        let rows = stmt.query_map(params![owner.map(|o| o.0), owner.map(|o| o.1)], abonnement)?;
        rows.map(|r| r?).collect()
    }

    pub fn delete_subscription(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM wsb_abonnement WHERE id = ?1")?
            .execute([id.to_string()])?
            > 0)
    }

    /// What `sub`'s worker delivers next: a redelivery STAR asked for, else the first event
    /// from the cursor on that the subscription may see. Events it may not see are passed
    /// over (the cursor moves past them at the next acknowledgement).
    /// `done`: the worker's own cursor when it is ahead of the stored one (acknowledged
    /// events whose cursor is not written yet).
    pub fn next_for(
        &self,
        catalog: &'static Catalog,
        sub: Uuid,
        today: Date,
        done: Option<i64>,
    ) -> Result<Next, StoreError> {
        let Some(a) = self.subscription(sub)? else {
            return Ok(Next::Gone);
        };
        let redeliver: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT sekvens, genlever_ms FROM wsb_parkeret
                 WHERE abonnement_id = ?1 AND genlever_ms IS NOT NULL ORDER BY sekvens LIMIT 1",
            )?
            .query_row([sub.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((sekvens, since_ms)) = redeliver
            && let Some(event) = self.event(sekvens)?
        {
            return Ok(Next::Deliver(Box::new(Delivery {
                sub: a,
                events: vec![event],
                redelivery: Some(since_ms),
                more: true,
            })));
        }
        let mut from = a.naeste_sekvens.max(done.unwrap_or(0));
        let mut scanned_to = None;
        loop {
            let batch = self.events_from(from, SCAN_BATCH)?;
            let Some(last) = batch.last().map(|e| e.sekvens) else {
                return Ok(Next::Idle { scanned_to });
            };
            let more = batch.len() as i64 >= SCAN_BATCH;
            let events: Vec<StoredEvent> = batch
                .into_iter()
                .filter(|e| may_see(catalog, &a, e, today))
                .collect();
            if !events.is_empty() {
                return Ok(Next::Deliver(Box::new(Delivery {
                    sub: a,
                    events,
                    redelivery: None,
                    more,
                })));
            }
            scanned_to = Some(last);
            from = last + 1;
        }
    }

    /// The events before `sekvens` are done for `sub` (delivered, parked or not for it).
    pub fn advance(&self, sub: Uuid, sekvens: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE wsb_abonnement SET naeste_sekvens = MAX(naeste_sekvens, ?2) WHERE id = ?1",
            )?
            .execute(params![sub.to_string(), sekvens])?;
        Ok(())
    }

    /// Parks an event for `sub` and moves its cursor past it.
    pub fn park(
        &self,
        sub: Uuid,
        sekvens: i64,
        forsoeg: u32,
        fejl: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO wsb_parkeret (abonnement_id, sekvens, parkeret_ms, forsoeg, fejl)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (abonnement_id, sekvens) DO UPDATE SET parkeret_ms = ?3,
                     forsoeg = forsoeg + ?4, fejl = ?5, genlever_ms = NULL",
            )?
            .execute(params![sub.to_string(), sekvens, now_ms(), forsoeg, fejl])?;
        self.advance(sub, sekvens + 1)
    }

    /// A redelivered event arrived: it is no longer parked.
    pub fn unpark(&self, sub: Uuid, sekvens: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM wsb_parkeret WHERE abonnement_id = ?1 AND sekvens = ?2")?
            .execute(params![sub.to_string(), sekvens])?;
        Ok(())
    }

    pub fn parked(&self) -> Result<Vec<Parkeret>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.abonnement_id, p.sekvens, h.entitet, p.parkeret_ms, p.forsoeg, p.fejl,
                    p.genlever_ms
             FROM wsb_parkeret p JOIN wsb_haendelse h ON h.sekvens = p.sekvens
             ORDER BY p.abonnement_id, p.sekvens",
        )?;
        let rows = stmt.query_map([], |r| {
            let id: String = r.get(0)?;
            Ok((
                id,
                Parkeret {
                    abonnement_id: Uuid::nil(),
                    sekvens: r.get(1)?,
                    entitet: r.get(2)?,
                    parkeret_ms: r.get(3)?,
                    forsoeg: r.get(4)?,
                    fejl: r.get(5)?,
                    genlever_ms: r.get(6)?,
                },
            ))
        })?;
        rows.map(|r| {
            let (id, mut p) = r?;
            p.abonnement_id = id.parse().map_err(|_| corrupt("wsb parkeret id"))?;
            Ok(p)
        })
        .collect()
    }

    /// Marks parked events for redelivery: all of a subscription's, or the listed ones.
    /// Answers how many were marked.
    pub fn redeliver(&self, sub: Uuid, sekvenser: Option<&[i64]>) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut n = 0;
        match sekvenser {
            None => {
                n += self
                    .conn
                    .prepare_cached(
                        "UPDATE wsb_parkeret SET genlever_ms = ?2 WHERE abonnement_id = ?1",
                    )?
                    .execute(params![sub.to_string(), now])?;
            }
            Some(list) => {
                let mut stmt = self.conn.prepare_cached(
                    "UPDATE wsb_parkeret SET genlever_ms = ?2 WHERE abonnement_id = ?1 AND sekvens = ?3",
                )?;
                for s in list {
                    n += stmt.execute(params![sub.to_string(), now, s])?;
                }
            }
        }
        Ok(n)
    }

    /// The latest CPR change made from `gammelt`: its target and id.
    pub fn cpr_change(&self, gammelt: &Cpr) -> Result<Option<(String, Uuid)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT nyt_cpr, id FROM cpr_skift WHERE gammelt_cpr = ?1 ORDER BY rowid DESC LIMIT 1",
            )?
            .query_row([gammelt.expose()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(nyt, id)| Ok((nyt, id.parse().map_err(|_| corrupt("cpr_skift id"))?)))
            .transpose()
    }

    /// Moves every registration, every version and the person register entry of `gammelt`
    /// to `nyt`, and records the change. The caller has checked that `nyt` has none.
    pub fn move_person(
        &self,
        gammelt: &Cpr,
        nyt: &Cpr,
        id: Uuid,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (o, n) = (gammelt.expose(), nyt.expose());
        self.conn
            .prepare_cached("UPDATE registrering SET cpr = ?2 WHERE cpr = ?1")?
            .execute([o, n])?;
        self.conn
            .prepare_cached("UPDATE registrering_version SET cpr = ?2 WHERE cpr = ?1")?
            .execute([o, n])?;
        // The register's entry follows, unless the new number has one of its own already.
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO person (cpr, kommunekode, akasse, tilmeldt)
                 SELECT ?2, kommunekode, akasse, tilmeldt FROM person WHERE cpr = ?1",
            )?
            .execute([o, n])?;
        self.conn
            .prepare_cached("DELETE FROM person WHERE cpr = ?1")?
            .execute([o])?;
        self.conn
            .prepare_cached(
                "INSERT INTO cpr_skift (gammelt_cpr, nyt_cpr, id, tidspunkt) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![o, n, id.to_string(), at.to_string()])?;
        Ok(())
    }

    /// Whether any registration belongs to the number.
    pub fn has_registrations(&self, cpr: &Cpr) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM registrering WHERE cpr = ?1)")?
            .query_row([cpr.expose()], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests;
