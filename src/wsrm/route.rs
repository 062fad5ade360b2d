//! From a WSB event to legacy WSRM messages. Routing is data
//! (`mappings/wsrm-routing.toml`, checked at load); shaping is the legacy message's fields
//! in the WSDL's order, from the event alone.

use jiff::{Timestamp, civil::Date};
use serde::Deserialize;
use uuid::Uuid;

use super::{MessageKind, Subscriber};
use crate::catalog::{Catalog, Scope};

/// The namespace of the MessageIdentifiers (a v5 UUID of beskedId, subscriber and kind).
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2b8e_4c0a_5e7b_9a3d_1c2e_7f40_b915);

/// A WSB event as the converter reads it (the REST service's message; `borger` is there
/// because the converter subscribes as STAR).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsbEvent {
    pub sekvens: i64,
    pub besked_id: Uuid,
    pub entitet: String,
    pub aendringstype: u8,
    pub tidspunkt: String,
    pub cpr: String,
    #[serde(default)]
    pub borger: Option<Borger>,
    pub registreret_af: Registrant,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Borger {
    pub kommunekode: String,
    pub akasse: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registrant {
    pub organisationstype: u8,
    pub organisationskode: String,
    pub bruger_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Adgang {
    Kommune,
    Akasse,
    Alle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Aendring {
    Oprettet,
    Afsluttet,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDecl {
    entitet: String,
    adgang: Adgang,
    messages: Vec<String>,
    #[serde(default)]
    kun_akasse_overgange: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overgang {
    navn: String,
    aendring: Aendring,
    #[serde(rename = "type")]
    type_kode: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    route: Vec<RouteDecl>,
    #[serde(default)]
    akasse_overgang: Vec<Overgang>,
}

#[derive(Debug, Clone)]
struct Route {
    entitet: &'static str,
    adgang: Adgang,
    messages: Vec<MessageKind>,
    kun_akasse_overgange: bool,
}

/// The routing table, checked.
#[derive(Debug, Clone)]
pub struct Routing {
    routes: Vec<Route>,
    overgange: Vec<Overgang>,
}

/// The file the routing is read from.
pub const ROUTING_FILE: &str = "mappings/wsrm-routing.toml";

/// The message kinds an entity's events can become.
fn fits(entitet: &str, kind: MessageKind) -> bool {
    matches!(
        (entitet, kind),
        (
            "Kontaktgruppe",
            MessageKind::GetContactGroupVersion5 | MessageKind::GetContactGroupVersion4
        ) | ("Personkategori", MessageKind::GetPersonCategoryVersion1)
            | ("CprSkift", MessageKind::GetCprChanged)
    )
}

impl Routing {
    /// The embedded `mappings/wsrm-routing.toml`.
    pub fn load() -> Result<Routing, String> {
        let text = crate::embedded::file(ROUTING_FILE)
            .ok_or_else(|| format!("{ROUTING_FILE} is missing"))?;
        Routing::parse(text).map_err(|e| format!("{ROUTING_FILE}: {e}"))
    }

    pub fn parse(text: &str) -> Result<Routing, String> {
        let file: RoutingFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut routes = Vec::new();
        for r in file.route {
            let entitet = ["Kontaktgruppe", "Personkategori", "CprSkift"]
                .into_iter()
                .find(|e| *e == r.entitet)
                .ok_or_else(|| format!("route: unknown entitet {}", r.entitet))?;
            let mut messages = Vec::new();
            for m in &r.messages {
                let kind =
                    MessageKind::parse(m).ok_or_else(|| format!("route: unknown message {m}"))?;
                if !fits(entitet, kind) {
                    return Err(format!("route: a {entitet} event cannot become {m}"));
                }
                messages.push(kind);
            }
            if r.kun_akasse_overgange && (r.adgang != Adgang::Akasse || entitet != "Kontaktgruppe")
            {
                return Err(
                    "route: kun_akasse_overgange is for adgang = \"akasse\" and Kontaktgruppe"
                        .into(),
                );
            }
            routes.push(Route {
                entitet,
                adgang: r.adgang,
                messages,
                kun_akasse_overgange: r.kun_akasse_overgange,
            });
        }
        if routes.iter().any(|r| r.kun_akasse_overgange) && file.akasse_overgang.is_empty() {
            return Err("kun_akasse_overgange without any [[akasse_overgang]]".into());
        }
        Ok(Routing {
            routes,
            overgange: file.akasse_overgang,
        })
    }

    /// Whether a contact group event is one of the a-kasse transitions (by name, for tests).
    fn overgang(&self, ev: &WsbEvent) -> Option<&str> {
        let type_kode = ev.data.get("kontaktgruppetype")?.as_u64()?;
        let ended = ev.data.get("slutdato").is_some_and(|v| !v.is_null());
        self.overgange
            .iter()
            .find(|o| {
                u64::from(o.type_kode) == type_kode
                    && match o.aendring {
                        Aendring::Oprettet => ev.aendringstype == 1,
                        Aendring::Afsluttet => ev.aendringstype == 2 && ended,
                    }
            })
            .map(|o| o.navn.as_str())
    }

    /// Who gets what: (index into `subscribers`, kind), each pair once, in subscriber order.
    pub fn route(
        &self,
        catalog: &Catalog,
        ev: &WsbEvent,
        subscribers: &[Subscriber],
    ) -> Vec<(usize, MessageKind)> {
        let mut out = Vec::new();
        for (i, s) in subscribers.iter().enumerate() {
            let Some(org) = catalog.orgtype(s.organisation_type) else {
                continue;
            };
            let code = s.organisation_code.as_str();
            for r in self.routes.iter().filter(|r| r.entitet == ev.entitet) {
                let own = match (r.adgang, &ev.borger) {
                    (Adgang::Alle, _) => true,
                    (Adgang::Kommune, Some(b)) => {
                        org.adgang == Scope::Kommune && b.kommunekode == code
                    }
                    (Adgang::Akasse, Some(b)) => {
                        org.adgang == Scope::Akasse && b.akasse.as_deref() == Some(code)
                    }
                    (_, None) => false,
                };
                if !own || (r.kun_akasse_overgange && self.overgang(ev).is_none()) {
                    continue;
                }
                for &kind in &r.messages {
                    if s.wants(kind) && !out.contains(&(i, kind)) {
                        out.push((i, kind));
                    }
                }
            }
        }
        out
    }
}

/// The stable MessageIdentifier of an event's message of `kind` for a subscriber.
pub fn message_identifier(besked_id: Uuid, subscriber: &str, kind: MessageKind) -> Uuid {
    let name = format!("{besked_id}/{subscriber}/{}", kind.as_str());
    Uuid::new_v5(&MESSAGE_ID_NAMESPACE, name.as_bytes())
}

/// A message's fields, `(path below the item, text)` in the WSDL's order.
pub type Fields = Vec<(String, String)>;

fn text(v: &serde_json::Value, field: &str) -> Result<String, String> {
    match v.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!("data.{field} is missing")),
    }
}

fn day(v: &serde_json::Value, field: &str) -> Result<Option<String>, String> {
    match v.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => {
            let d: Date = s
                .parse()
                .map_err(|_| format!("data.{field} is not a date"))?;
            Ok(Some(crate::dktime::format_xs_day(d)))
        }
        Some(_) => Err(format!("data.{field} is not a date")),
    }
}

fn instant(s: &str, what: &str) -> Result<String, String> {
    let t: Timestamp = s.parse().map_err(|_| format!("{what} is not a time"))?;
    Ok(crate::dktime::format_xs_datetime(t))
}

/// The citizen and `<What>{Identifier, TypeIdentifier, StartTime, EndTime?, EventTime}` of a
/// contact group or person category message, from the version in `data` (its type in
/// `type_field`).
fn registration(f: &mut Fields, ev: &WsbEvent, what: &str, type_field: &str) -> Result<(), String> {
    let d = &ev.data;
    let p = format!("{what}/{what}");
    f.push(("PersonCivilRegistrationIdentifier".into(), ev.cpr.clone()));
    f.push((format!("{p}Identifier"), text(d, "id")?));
    f.push((format!("{p}TypeIdentifier"), text(d, type_field)?));
    let start = day(d, "startdato")?.ok_or("data.startdato is missing")?;
    f.push((format!("{p}StartTime"), start));
    if let Some(end) = day(d, "slutdato")? {
        f.push((format!("{p}EndTime"), end));
    }
    let event = instant(&text(d, "haendelsestidspunkt")?, "data.haendelsestidspunkt")?;
    f.push((format!("{p}EventTime"), event));
    Ok(())
}

/// The legacy message of `kind` for an event, with its MessageIdentifier.
pub fn shape(ev: &WsbEvent, kind: MessageKind, message_identifier: Uuid) -> Result<Fields, String> {
    let mut f: Fields = vec![(
        "WSRMMetadata/MessageIdentifier".into(),
        message_identifier.to_string(),
    )];
    if kind != MessageKind::GetContactGroupVersion4 {
        let by = &ev.registreret_af;
        f.push((
            "WSRMMetadata/RegisteringAuthority/OrganisationType".into(),
            by.organisationstype.to_string(),
        ));
        f.push((
            "WSRMMetadata/RegisteringAuthority/OrganisationCode".into(),
            by.organisationskode.clone(),
        ));
        if let Some(user) = &by.bruger_id {
            f.push((
                "WSRMMetadata/RegisteringUser/UserIdentifier".into(),
                user.clone(),
            ));
        }
    }
    let change = if ev.aendringstype == 1 {
        "Created"
    } else {
        "Updated"
    };
    let d = &ev.data;
    match kind {
        MessageKind::GetContactGroupVersion5 | MessageKind::GetContactGroupVersion4 => {
            registration(&mut f, ev, "ContactGroup", "kontaktgruppetype")?;
            f.push(("ChangeType".into(), change.into()));
        }
        MessageKind::GetPersonCategoryVersion1 => {
            registration(&mut f, ev, "PersonCategory", "personkategoritype")?;
            f.push(("ChangeType".into(), change.into()));
        }
        MessageKind::GetCprChanged => {
            f.push((
                "OldPersonCivilRegistrationIdentifier".into(),
                text(d, "gammeltCpr")?,
            ));
            f.push((
                "NewPersonCivilRegistrationIdentifier".into(),
                text(d, "nytCpr")?,
            ));
            f.push(("ChangeTime".into(), instant(&ev.tidspunkt, "tidspunkt")?));
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
