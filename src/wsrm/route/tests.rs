#![allow(clippy::unwrap_used)]
//! Routing from a table: WSB events → the messages each subscriber gets.

use super::*;
use MessageKind::*;

fn catalog() -> &'static Catalog {
    Catalog::load().unwrap()
}

/// Jobcentre 101, kommune 101, jobcentre 147, a-kasse 12, a-kasse 34, STAR, and jobcentre
/// 101 again narrowed to V5 only.
fn subscribers() -> Vec<Subscriber> {
    let s = |t, c: &str, m: Vec<MessageKind>| Subscriber::new(t, c, m).unwrap();
    vec![
        s(1, "101", vec![]),
        s(3, "101", vec![]),
        s(1, "147", vec![]),
        s(2, "12", vec![]),
        s(2, "34", vec![]),
        s(5, "55570117", vec![]),
        s(1, "101", vec![GetContactGroupVersion5]),
    ]
}

fn event(
    entitet: &str,
    aendringstype: u8,
    kommune: &str,
    akasse: Option<&str>,
    data: serde_json::Value,
) -> WsbEvent {
    serde_json::from_value(serde_json::json!({
        "sekvens": 1, "beskedId": Uuid::nil(), "entitet": entitet, "entitetId": 100008,
        "aendringstype": aendringstype, "tidspunkt": "2026-12-04T10:00:00+01:00",
        "cpr": "0101800001", "noegle": {},
        "borger": {"kommunekode": kommune, "akasse": akasse},
        "registreretAf": {"organisationstype": 1, "organisationskode": "101", "brugerId": "sb01"},
        "data": data,
    }))
    .unwrap()
}

fn kg(aendringstype: u8, type_kode: u32, slutdato: Option<&str>) -> WsbEvent {
    event(
        "Kontaktgruppe",
        aendringstype,
        "101",
        Some("12"),
        serde_json::json!({
            "id": Uuid::nil(), "kontaktgruppetype": type_kode, "startdato": "2026-01-01",
            "slutdato": slutdato, "haendelsestidspunkt": "2026-01-01T09:00:00Z", "version": 1,
        }),
    )
}

/// (subscriber index, kind) pairs, by subscriber key for reading.
fn routed(ev: &WsbEvent) -> Vec<(String, MessageKind)> {
    let subs = subscribers();
    Routing::load()
        .unwrap()
        .route(catalog(), ev, &subs)
        .into_iter()
        .map(|(i, k)| (format!("{}#{i}", subs[i].key()), k))
        .collect()
}

fn jobcentre_and_kommune_v5_v4() -> Vec<(String, MessageKind)> {
    vec![
        ("1:101#0".into(), GetContactGroupVersion5),
        ("1:101#0".into(), GetContactGroupVersion4),
        ("3:101#1".into(), GetContactGroupVersion5),
        ("3:101#1".into(), GetContactGroupVersion4),
        ("1:101#6".into(), GetContactGroupVersion5),
    ]
}

fn plus_akasse(mut v: Vec<(String, MessageKind)>) -> Vec<(String, MessageKind)> {
    // Subscriber order: the a-kasse (index 3) comes before the narrowed jobcentre (6).
    v.insert(4, ("2:12#3".into(), GetContactGroupVersion5));
    v
}

#[test]
fn contact_group_events_and_the_four_akasse_transitions() {
    type Row = (&'static str, WsbEvent, Vec<(String, MessageKind)>);
    let table: Vec<Row> = vec![
        (
            "type 1 created",
            kg(1, 1, None),
            jobcentre_and_kommune_v5_v4(),
        ),
        (
            "1. jobafklaring: type 13 created",
            kg(1, 13, None),
            plus_akasse(jobcentre_and_kommune_v5_v4()),
        ),
        (
            "2. seniorjob: type 23 created",
            kg(1, 23, None),
            plus_akasse(jobcentre_and_kommune_v5_v4()),
        ),
        (
            "3. type 25 ended, no successor",
            kg(2, 25, Some("2026-06-30")),
            plus_akasse(jobcentre_and_kommune_v5_v4()),
        ),
        // 4. closed by a successor: rule 5's automatic close is the same update.
        (
            "4. type 25 closed by a successor",
            kg(2, 25, Some("2026-02-28")),
            plus_akasse(jobcentre_and_kommune_v5_v4()),
        ),
        // Near misses.
        (
            "type 25 updated without an end date",
            kg(2, 25, None),
            jobcentre_and_kommune_v5_v4(),
        ),
        (
            "type 25 created",
            kg(1, 25, None),
            jobcentre_and_kommune_v5_v4(),
        ),
        (
            "type 12 created",
            kg(1, 12, None),
            jobcentre_and_kommune_v5_v4(),
        ),
        (
            "type 13 ended",
            kg(2, 13, Some("2026-06-30")),
            jobcentre_and_kommune_v5_v4(),
        ),
    ];
    for (what, ev, expected) in table {
        assert_eq!(routed(&ev), expected, "{what}");
    }
}

#[test]
fn person_categories_reach_the_municipality_only_and_cpr_changes_everyone() {
    let pc = event(
        "Personkategori",
        1,
        "101",
        Some("12"),
        serde_json::json!({"id": Uuid::nil(), "personkategoritype": 3, "startdato": "2026-01-01",
                           "haendelsestidspunkt": "2026-01-01T09:00:00Z"}),
    );
    assert_eq!(
        routed(&pc),
        vec![
            ("1:101#0".to_owned(), GetPersonCategoryVersion1),
            ("3:101#1".to_owned(), GetPersonCategoryVersion1),
        ]
    );
    let cpr = event(
        "CprSkift",
        1,
        "101",
        Some("12"),
        serde_json::json!({"gammeltCpr": "0101800001", "nytCpr": "0202800002"}),
    );
    let everyone: Vec<_> = routed(&cpr).into_iter().map(|(s, _)| s).collect();
    // Everyone subscribed for it: not the subscriber narrowed to V5.
    assert_eq!(
        everyone,
        [
            "1:101#0",
            "3:101#1",
            "1:147#2",
            "2:12#3",
            "2:34#4",
            "5:55570117#5"
        ]
    );
    // Another municipality's and another a-kasse's citizen.
    let elsewhere = event("Kontaktgruppe", 1, "147", Some("34"), kg(1, 13, None).data);
    assert_eq!(
        routed(&elsewhere),
        vec![
            ("1:147#2".to_owned(), GetContactGroupVersion5),
            ("1:147#2".to_owned(), GetContactGroupVersion4),
            ("2:34#4".to_owned(), GetContactGroupVersion5),
        ]
    );
    // A person not in the register (borger null): nobody but CPR-change subscribers.
    let mut unknown = kg(1, 13, None);
    unknown.borger = None;
    assert!(routed(&unknown).is_empty());
}

#[test]
fn messages_are_shaped_as_the_wsdl_orders_them() {
    let ev = kg(2, 25, Some("2026-06-30"));
    let id = message_identifier(ev.besked_id, "1:101", GetContactGroupVersion5);
    assert_eq!(
        id,
        message_identifier(ev.besked_id, "1:101", GetContactGroupVersion5)
    );
    assert_ne!(
        id,
        message_identifier(ev.besked_id, "1:101", GetContactGroupVersion4)
    );
    let v5 = shape(&ev, GetContactGroupVersion5, id).unwrap();
    let names: Vec<&str> = v5.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "WSRMMetadata/MessageIdentifier",
            "WSRMMetadata/RegisteringAuthority/OrganisationType",
            "WSRMMetadata/RegisteringAuthority/OrganisationCode",
            "WSRMMetadata/RegisteringUser/UserIdentifier",
            "PersonCivilRegistrationIdentifier",
            "ContactGroup/ContactGroupIdentifier",
            "ContactGroup/ContactGroupTypeIdentifier",
            "ContactGroup/ContactGroupStartTime",
            "ContactGroup/ContactGroupEndTime",
            "ContactGroup/ContactGroupEventTime",
            "ChangeType",
        ]
    );
    let value = |f: &Fields, name: &str| f.iter().find(|(p, _)| p == name).map(|(_, v)| v.clone());
    assert_eq!(
        value(&v5, "ContactGroup/ContactGroupStartTime").unwrap(),
        "2026-01-01T00:00:00+01:00"
    );
    assert_eq!(
        value(&v5, "ContactGroup/ContactGroupEndTime").unwrap(),
        "2026-06-30T00:00:00+02:00"
    );
    assert_eq!(
        value(&v5, "ContactGroup/ContactGroupEventTime").unwrap(),
        "2026-01-01T10:00:00+01:00"
    );
    assert_eq!(value(&v5, "ChangeType").unwrap(), "Updated");
    let v4 = shape(&ev, GetContactGroupVersion4, id).unwrap();
    assert!(v4.iter().all(|(p, _)| !p.contains("Registering")));
    assert_eq!(v4.len(), v5.len() - 3);

    let cpr = event(
        "CprSkift",
        1,
        "101",
        None,
        serde_json::json!({"gammeltCpr": "0101800001", "nytCpr": "0202800002"}),
    );
    let c = shape(&cpr, GetCprChanged, id).unwrap();
    assert_eq!(
        value(&c, "OldPersonCivilRegistrationIdentifier").unwrap(),
        "0101800001"
    );
    assert_eq!(
        value(&c, "NewPersonCivilRegistrationIdentifier").unwrap(),
        "0202800002"
    );
    assert_eq!(
        value(&c, "ChangeTime").unwrap(),
        "2026-12-04T10:00:00+01:00"
    );
    // A message without what it needs is refused, not queued half.
    let broken = kg(1, 1, None);
    let mut b = broken.clone();
    b.data = serde_json::json!({"kontaktgruppetype": 1});
    assert!(shape(&b, GetContactGroupVersion5, id).is_err());
}

#[test]
fn the_routing_file_is_checked() {
    assert!(Routing::load().is_ok());
    for (bad, why) in [
        (
            "[[route]]\nentitet = \"Borger\"\nadgang = \"alle\"\nmessages = []\n",
            "unknown entitet",
        ),
        (
            "[[route]]\nentitet = \"Personkategori\"\nadgang = \"kommune\"\nmessages = [\"GetCprChanged\"]\n",
            "cannot become",
        ),
        (
            "[[route]]\nentitet = \"Kontaktgruppe\"\nadgang = \"kommune\"\nmessages = [\"GetX\"]\n",
            "unknown message",
        ),
        (
            "[[route]]\nentitet = \"Kontaktgruppe\"\nadgang = \"akasse\"\nmessages = [\"GetContactGroupVersion5\"]\nkun_akasse_overgange = true\n",
            "without any",
        ),
        (
            "[[route]]\nentitet = \"Kontaktgruppe\"\nadgang = \"hvem\"\nmessages = []\n",
            "unknown variant",
        ),
    ] {
        let e = Routing::parse(bad).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn subscribers_parse_from_the_flag_form() {
    let s = Subscriber::parse("2:12=GetContactGroupVersion5+GetCprChanged").unwrap();
    assert_eq!(
        (s.organisation_type, s.organisation_code.as_str()),
        (2, "12")
    );
    assert_eq!(s.messages, vec![GetContactGroupVersion5, GetCprChanged]);
    assert!(s.wants(GetCprChanged) && !s.wants(GetContactGroupVersion4));
    assert!(
        Subscriber::parse("1:101")
            .unwrap()
            .wants(GetContactGroupVersion4)
    );
    for bad in ["101", "x:101", "1:", "1:101=GetFoo", "1:a b"] {
        assert!(Subscriber::parse(bad).is_err(), "{bad}");
    }
}
