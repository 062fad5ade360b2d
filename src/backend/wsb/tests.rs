#![allow(clippy::unwrap_used)]
//! Routing (who may see which event) for every organisation type, and the message shape.

use super::*;

fn catalog() -> &'static Catalog {
    Catalog::load().unwrap()
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

const TODAY: &str = "2026-12-04";

fn sub(organisationstype: u8, code: &str, entiteter: &[Entitet]) -> Abonnement {
    Abonnement {
        id: Uuid::nil(),
        organisationstype,
        organisationskode: code.to_owned(),
        endpoint: "https://example.invalid/wsb".into(),
        entiteter: entiteter.to_vec(),
        oprettet: Timestamp::UNIX_EPOCH,
        naeste_sekvens: 1,
    }
}

fn person(kommune: &str, akasse: Option<&str>) -> Option<PersonEntry> {
    Some(PersonEntry {
        kommunekode: kommune.into(),
        akasse: akasse.map(Into::into),
        tilmeldt: false,
    })
}

fn event(
    entitet: Entitet,
    person: Option<PersonEntry>,
    registrering: Option<(Kind, u32, Option<Date>)>,
) -> StoredEvent {
    StoredEvent {
        sekvens: 7,
        entitet,
        route: Route {
            cpr: Cpr::parse("0101800001").unwrap(),
            person,
            registrering,
        },
        besked: r#"{"beskedId":"x"}"#.into(),
        skrevet_ms: 0,
    }
}

fn kg(type_kode: u32, end: Option<&str>, p: Option<PersonEntry>) -> StoredEvent {
    event(
        Entitet::Kontaktgruppe,
        p,
        Some((Kind::Kontaktgruppe, type_kode, end.map(date))),
    )
}

fn pk(p: Option<PersonEntry>) -> StoredEvent {
    event(
        Entitet::Personkategori,
        p,
        Some((Kind::Personkategori, 3, None)),
    )
}

fn cpr_change(p: Option<PersonEntry>) -> StoredEvent {
    event(Entitet::CprSkift, p, None)
}

const ALL: &[Entitet] = &Entitet::ALL;

fn sees(s: &Abonnement, e: &StoredEvent) -> bool {
    may_see(catalog(), s, e, date(TODAY))
}

#[test]
fn a_jobcentre_and_a_kommune_see_their_own_citizens_only() {
    for ty in [1, 3] {
        let own = sub(ty, "101", ALL);
        let citizen = person("101", Some("12"));
        let other = person("102", Some("12"));
        assert!(sees(&own, &kg(1, None, citizen.clone())), "type {ty}");
        assert!(sees(&own, &pk(citizen.clone())), "type {ty}");
        assert!(sees(&own, &cpr_change(citizen.clone())), "type {ty}");
        // Every contact group type, ended long ago too: no a-kasse view for them.
        assert!(
            sees(&own, &kg(12, Some("2001-01-01"), citizen)),
            "type {ty}"
        );
        assert!(!sees(&own, &kg(1, None, other.clone())), "type {ty}");
        assert!(!sees(&own, &pk(other.clone())), "type {ty}");
        assert!(!sees(&own, &cpr_change(other)), "type {ty}");
        // Not in the person register: STAR's only.
        assert!(!sees(&own, &kg(1, None, None)), "type {ty}");
        assert!(!sees(&own, &cpr_change(None)), "type {ty}");
    }
}

#[test]
fn an_akasse_sees_its_members_listed_contact_groups_never_person_categories() {
    let akasse = sub(2, "12", ALL);
    let member = person("101", Some("12"));
    let not_member = person("101", Some("13"));
    // Types of the a-kasse view (kontaktgruppetyper.toml [akasse]) and types outside it.
    for t in [1, 13, 23, 25] {
        assert!(sees(&akasse, &kg(t, None, member.clone())), "type {t}");
    }
    for t in [12, 24, 26, 28] {
        assert!(!sees(&akasse, &kg(t, None, member.clone())), "type {t}");
    }
    // Ended within the history horizon (4 years) yes, before it no.
    assert!(sees(&akasse, &kg(25, Some("2023-01-01"), member.clone())));
    assert!(!sees(&akasse, &kg(25, Some("2022-01-01"), member.clone())));
    assert!(!sees(&akasse, &pk(member.clone())));
    assert!(sees(&akasse, &cpr_change(member)));
    assert!(!sees(&akasse, &kg(1, None, not_member.clone())));
    assert!(!sees(&akasse, &cpr_change(not_member)));
    assert!(!sees(&akasse, &kg(1, None, person("101", None))));
}

#[test]
fn star_sees_everything_and_anden_aktoer_nothing() {
    let star = sub(5, "55555555", ALL);
    let other = sub(4, "12345678", ALL);
    for e in [
        kg(12, Some("2001-01-01"), person("101", None)),
        kg(1, None, None),
        pk(None),
        cpr_change(None),
    ] {
        assert!(sees(&star, &e), "{e:?}");
        assert!(!sees(&other, &e), "{e:?}");
    }
    // An organisation type the catalogue does not know sees nothing.
    assert!(!sees(&sub(99, "1", ALL), &kg(1, None, None)));
}

#[test]
fn a_subscription_gets_only_the_entities_it_asked_for() {
    let p = person("101", Some("12"));
    let only_kg = sub(1, "101", &[Entitet::Kontaktgruppe]);
    assert!(sees(&only_kg, &kg(1, None, p.clone())));
    assert!(!sees(&only_kg, &pk(p.clone())));
    assert!(!sees(&only_kg, &cpr_change(p.clone())));
    let only_cpr = sub(1, "101", &[Entitet::CprSkift]);
    assert!(!sees(&only_cpr, &kg(1, None, p.clone())));
    assert!(sees(&only_cpr, &cpr_change(p)));
}

#[test]
fn the_message_has_its_sekvens_first() {
    let e = kg(1, None, None);
    let m: serde_json::Value = serde_json::from_str(&e.message()).unwrap();
    assert_eq!(m["sekvens"], 7);
    assert_eq!(m["beskedId"], "x");
    assert!(e.message().starts_with("{\"sekvens\":7,"));
    let mut empty = e;
    empty.besked = "{}".into();
    assert_eq!(empty.message(), "{\"sekvens\":7}");
}

#[test]
fn entitet_ids_and_names_round_trip() {
    for e in Entitet::ALL {
        assert_eq!(Entitet::parse(e.as_str()), Some(e));
    }
    assert_eq!(Entitet::Kontaktgruppe.entitet_id(), 100008);
    assert_eq!(Entitet::parse("kontaktgruppe"), None);
}

#[test]
fn a_version_event_carries_the_contract_fields() {
    let r = Registrering {
        kind: Kind::Kontaktgruppe,
        id: Uuid::nil(),
        cpr: Cpr::parse("0101800001").unwrap(),
        type_kode: 13,
        startdato: date("2026-12-01"),
        slutdato: None,
        haendelse: "2026-12-01T08:00:00Z".parse().unwrap(),
        version: 1,
        oprettet_af: Registrant {
            organisationstype: 1,
            organisationskode: "101".into(),
            bruger_id: Some("sb01".into()),
        },
        registreret_af: Registrant {
            organisationstype: 1,
            organisationskode: "101".into(),
            bruger_id: Some("sb01".into()),
        },
        registreret_tid: "2026-12-04T09:00:00Z".parse().unwrap(),
    };
    let e = version_event(&r, person("101", None));
    let m: serde_json::Value = serde_json::from_str(&e.besked).unwrap();
    assert_eq!(m["entitet"], "Kontaktgruppe");
    assert_eq!(m["entitetId"], 100008);
    assert_eq!(m["aendringstype"], 1);
    assert_eq!(m["tidspunkt"], "2026-12-04T10:00:00+01:00");
    assert_eq!(m["cpr"], "0101800001");
    assert_eq!(m["noegle"]["kontaktgruppeId"], Uuid::nil().to_string());
    assert_eq!(m["registreretAf"]["organisationskode"], "101");
    assert_eq!(m["registreretAf"]["brugerId"], "sb01");
    assert_eq!(m["data"]["kontaktgruppetype"], 13);
    assert_eq!(m["beskedId"], e.besked_id.to_string());
    let updated = version_event(&Registrering { version: 2, ..r }, None);
    let m: serde_json::Value = serde_json::from_str(&updated.besked).unwrap();
    assert_eq!(m["aendringstype"], 2);
}
