//! The shadow compare (AC 1005.17.28.15): before the cutover, the legacy service's
//! collections and the REST-derived ones should agree. A pure function: the caller counts
//! and logs what it finds, without CPR numbers or identifiers.
//!
//! Items are compared as multisets, in canonical form (each mapped field read by its type:
//! a UUID in any case, an instant with any offset; fields in any order). Each legacy item
//! is the partner of at most one REST item:
//!
//! 1. A REST item and a legacy item that are equal match. Order does not matter, and the
//!    versions of one registration in a history (same identifier, other fields) each find
//!    their own equal.
//! 2. The items left over are grouped by key: the identity field of the plan
//!    ([`CollectionPlan::identity`], e.g. ContactGroupIdentifier, found by name wherever it
//!    stands in the item), with the version field where the plan has one. Within a key they
//!    pair off in order; a pair is one mismatch (a changed item), an item without a partner
//!    is one (missing on the other side). So a key with `r` REST and `l` legacy items left
//!    counts `max(r, l)`: no pairing counts fewer.
//!
//! Linear in the items (two hash maps per collection).

use std::collections::HashMap;

use crate::mapping::{Canon, CollectionPlan, ReadPlan, Transform};
use crate::soap::splice::LegacyItem;
use crate::soap::write::Fields;

/// How one collection compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference<'p> {
    /// The collection element's local name.
    pub collection: &'p str,
    pub mismatches: u64,
    pub rest_items: usize,
    pub legacy_items: usize,
}

/// The collections where legacy and REST differ; a missing item on either side or a
/// differing one is a mismatch (see the module doc for how items are paired).
pub fn compare<'p>(
    plan: &'p ReadPlan,
    rest: &[Vec<Fields<'_>>],
    legacy: &[Vec<LegacyItem>],
) -> Vec<Difference<'p>> {
    plan.collections
        .iter()
        .zip(rest)
        .zip(legacy)
        .filter_map(|((c, rest_items), legacy_items)| {
            let mismatches = mismatches(c, rest_items, legacy_items);
            (mismatches > 0).then(|| Difference {
                collection: c.element.last().map_or("", String::as_str),
                mismatches,
                rest_items: rest_items.len(),
                legacy_items: legacy_items.len(),
            })
        })
        .collect()
}

/// An item in canonical form: (path below the item, value), sorted by path (stable: a
/// repeated element keeps its order).
type Canonical = Vec<(String, Canon)>;

/// What pairs left-over items: (identity, version), each `None` where the plan has no such
/// field or the item lacks it.
type Key = (Option<Canon>, Option<Canon>);

/// One collection's fields as the compare reads them.
struct Shape {
    /// Each mapped field's path (joined with "/") and type.
    types: Vec<(String, Transform)>,
    /// The paths of the identity and the version field, where the plan has them.
    identity: Option<String>,
    version: Option<String>,
}

impl Shape {
    fn of(c: &CollectionPlan) -> Shape {
        let path = |i: Option<usize>| i.and_then(|i| c.fields.get(i)).map(|f| f.soap.join("/"));
        Shape {
            types: c.fields.iter().map(|f| (f.soap.join("/"), f.ty)).collect(),
            identity: path(c.identity),
            version: path(c.version),
        }
    }

    /// The item in canonical form: a mapped field by its type (its text as it is where it
    /// is not of that type), anything else as text.
    fn canonical<'t>(&self, fields: impl Iterator<Item = (String, &'t str)>) -> Canonical {
        let mut item: Canonical = fields
            .map(|(path, text)| {
                let value = self
                    .types
                    .iter()
                    .find(|(p, _)| *p == path)
                    .and_then(|(_, ty)| ty.from_soap(text).ok())
                    .unwrap_or_else(|| Canon::Text(text.to_owned()));
                (path, value)
            })
            .collect();
        item.sort_by(|a, b| a.0.cmp(&b.0));
        item
    }

    /// The item's identity and version (the first element of that name, if it repeats).
    fn key(&self, item: &Canonical) -> Key {
        let value = |field: &Option<String>| {
            let field = field.as_deref()?;
            item.iter()
                .find(|(p, _)| p == field)
                .map(|(_, v)| v.clone())
        };
        (value(&self.identity), value(&self.version))
    }
}

/// How many items of one collection differ (see the module doc).
fn mismatches(c: &CollectionPlan, rest: &[Fields<'_>], legacy: &[LegacyItem]) -> u64 {
    if rest.is_empty() && legacy.is_empty() {
        return 0;
    }
    let shape = Shape::of(c);
    let rest: Vec<Canonical> = rest
        .iter()
        .map(|item| {
            shape.canonical(
                item.iter()
                    .map(|(path, text)| (path.join("/"), text.as_str())),
            )
        })
        .collect();
    let legacy: Vec<Canonical> = legacy
        .iter()
        .map(|item| {
            shape.canonical(
                item.iter()
                    .map(|(path, text)| (path.clone(), text.as_str())),
            )
        })
        .collect();

    // 1. Equal items match, each legacy item at most once.
    let mut unused: HashMap<&Canonical, u64> = HashMap::with_capacity(legacy.len());
    for l in &legacy {
        *unused.entry(l).or_default() += 1;
    }
    // 2. What is left, per key: (REST items, legacy items).
    let mut left: HashMap<Key, (u64, u64)> = HashMap::new();
    for r in &rest {
        match unused.get_mut(r) {
            Some(n) if *n > 0 => *n -= 1,
            _ => left.entry(shape.key(r)).or_default().0 += 1,
        }
    }
    for (l, n) in unused {
        if n > 0 {
            left.entry(shape.key(l)).or_default().1 += n;
        }
    }
    left.values().map(|&(r, l)| r.max(l)).sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::mapping::{Behaviour, Plan};

    const KG1: &str = "0d5f3c1e-8a2b-4c6d-9e7f-102938475610";
    const KG2: &str = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    const KG3: &str = "2f3e4d5c-6b7a-4988-a7b6-c5d4e3f2a1b0";
    const PC1: &str = "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928";

    fn plan() -> Plan {
        crate::mapping::compile().expect("the shipped mappings compile")
    }

    /// The read plan of `op` of the service at `endpoint`.
    fn read<'a>(plan: &'a Plan, endpoint: &str, op: &str) -> &'a ReadPlan {
        let service = plan.service(endpoint).expect("the service");
        let op = service
            .operations
            .iter()
            .find(|o| o.name == op)
            .expect("the operation");
        match &op.behaviour {
            Behaviour::Read(r) => r,
            _ => panic!("{} is not a read", op.name),
        }
    }

    fn pss(plan: &Plan) -> &ReadPlan {
        read(plan, "/PersonStatusService/20", "GetVariablePersonStatus")
    }

    fn phs(plan: &Plan) -> &ReadPlan {
        read(plan, "/PersonHistoryService/4", "GetPersonHistory")
    }

    /// A contact group as a legacy service writes it: (local name, text), in the XSD's
    /// order, the history's RegistrationTime last if given.
    fn kg(id: &str, ty: &str, end: Option<&str>, registered: Option<&str>) -> LegacyItem {
        let mut item = vec![
            ("ContactGroupIdentifier", id),
            ("ContactGroupTypeIdentifier", ty),
            ("ContactGroupStartTime", "2024-01-01T00:00:00+01:00"),
        ];
        if let Some(end) = end {
            item.push(("ContactGroupEndTime", end));
        }
        item.extend([
            ("ContactGroupEventTime", "2024-01-01T10:00:00+01:00"),
            ("RegisteredByOrganisationType", "1"),
            ("RegisteredByOrganisationCode", "101"),
        ]);
        if let Some(t) = registered {
            item.push(("RegistrationTime", t));
        }
        item.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn pc(id: &str, ty: &str, registered: Option<&str>) -> LegacyItem {
        let mut item = vec![
            ("PersonCategoryIdentifier", id),
            ("PersonCategoryTypeIdentifier", ty),
            ("PersonCategoryStartTime", "2024-02-01T00:00:00+01:00"),
            ("PersonCategoryEventTime", "2024-02-01T08:00:00+01:00"),
            ("RegisteredByOrganisationType", "1"),
            ("RegisteredByOrganisationCode", "101"),
        ];
        if let Some(t) = registered {
            item.push(("RegistrationTime", t));
        }
        item.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The two versions of one contact group's history, oldest first.
    fn kg_history() -> Vec<LegacyItem> {
        vec![
            kg(KG1, "1", None, Some("2024-01-01T10:00:01+01:00")),
            kg(
                KG1,
                "1",
                Some("2024-06-30T00:00:00+02:00"),
                Some("2024-03-01T09:00:00+01:00"),
            ),
        ]
    }

    /// `items` as the REST side hands them to the compare: each field's path in the plan.
    fn as_rest<'p>(c: &'p CollectionPlan, items: &[LegacyItem]) -> Vec<Fields<'p>> {
        items
            .iter()
            .map(|item| {
                item.iter()
                    .map(|(name, text)| {
                        let field = c
                            .fields
                            .iter()
                            .find(|f| f.soap.join("/") == *name)
                            .unwrap_or_else(|| panic!("{name} is not mapped"));
                        (field.soap.as_slice(), text.clone())
                    })
                    .collect()
            })
            .collect()
    }

    /// The compare of a read with both collections: (mismatches of the KG collection, of
    /// the PC collection).
    fn counts(read: &ReadPlan, rest: [&[LegacyItem]; 2], legacy: [&[LegacyItem]; 2]) -> (u64, u64) {
        let rest: Vec<Vec<Fields<'_>>> = read
            .collections
            .iter()
            .zip(rest)
            .map(|(c, items)| as_rest(c, items))
            .collect();
        let legacy: Vec<Vec<LegacyItem>> = legacy.iter().map(|l| l.to_vec()).collect();
        let found = compare(read, &rest, &legacy);
        let of = |i: usize| {
            let name = read.collections[i].element.last().unwrap();
            found
                .iter()
                .find(|d| d.collection == name)
                .map_or(0, |d| d.mismatches)
        };
        (of(0), of(1))
    }

    /// The item with its first field moved to its end.
    fn identifier_last(item: &LegacyItem) -> LegacyItem {
        let mut item = item.clone();
        item.rotate_left(1);
        item
    }

    #[test]
    fn the_shipped_collections_are_matched_by_their_identifier() {
        let plan = plan();
        for (read, names) in [
            (
                pss(&plan),
                ["ContactGroupIdentifier", "PersonCategoryIdentifier"],
            ),
            (
                phs(&plan),
                ["ContactGroupIdentifier", "PersonCategoryIdentifier"],
            ),
        ] {
            for (c, name) in read.collections.iter().zip(names) {
                let identity = &c.fields[c.identity.expect("an identity field")];
                assert_eq!(identity.soap, vec![name.to_owned()]);
                // No version element in the legacy contract: versions pair by position.
                assert_eq!(c.version, None);
            }
        }
    }

    #[test]
    fn identical_answers_count_nothing_in_any_order() {
        let plan = plan();
        let pss = pss(&plan);
        let kgs = [kg(KG1, "1", None, None), kg(KG2, "2", None, None)];
        let pcs = [pc(PC1, "3", None)];
        assert_eq!(counts(pss, [&kgs, &pcs], [&kgs, &pcs]), (0, 0));
        let reversed: Vec<LegacyItem> = kgs.iter().rev().cloned().collect();
        assert_eq!(counts(pss, [&kgs, &pcs], [&reversed, &pcs]), (0, 0));
        assert_eq!(counts(pss, [&[], &[]], [&[], &[]]), (0, 0));
    }

    #[test]
    fn an_identical_two_version_history_counts_nothing() {
        let plan = plan();
        let phs = phs(&plan);
        let history = kg_history();
        let pcs = [
            pc(PC1, "1", Some("2024-02-01T08:00:01+01:00")),
            pc(PC1, "2", Some("2024-02-02T08:00:01+01:00")),
        ];
        assert_eq!(counts(phs, [&history, &pcs], [&history, &pcs]), (0, 0));
        // Newest first on the legacy side: the same versions.
        let reversed: Vec<LegacyItem> = history.iter().rev().cloned().collect();
        let pcs_reversed: Vec<LegacyItem> = pcs.iter().rev().cloned().collect();
        assert_eq!(
            counts(phs, [&history, &pcs], [&reversed, &pcs_reversed]),
            (0, 0)
        );
    }

    #[test]
    fn a_legacy_item_whose_identifier_is_not_first_is_matched() {
        let plan = plan();
        for read in [pss(&plan), phs(&plan)] {
            let registered = (read.collections[0].item == "ContactGroupHistory")
                .then_some("2024-01-01T10:00:01+01:00");
            let kgs = [
                kg(KG1, "1", None, registered),
                kg(KG2, "2", None, registered),
            ];
            let pcs = [pc(PC1, "3", registered)];
            let kgs_moved: Vec<LegacyItem> = kgs.iter().map(identifier_last).collect();
            let pcs_moved: Vec<LegacyItem> = pcs.iter().map(identifier_last).collect();
            assert_ne!(kgs_moved[0][0].0, "ContactGroupIdentifier");
            assert_eq!(counts(read, [&kgs, &pcs], [&kgs_moved, &pcs_moved]), (0, 0));
            // Not first, and changed: one changed item, not one missing and one extra.
            let mut changed = kgs_moved.clone();
            changed[1][0].1 = "9".to_owned();
            assert_eq!(changed[1][0].0, "ContactGroupTypeIdentifier");
            assert_eq!(counts(read, [&kgs, &pcs], [&changed, &pcs_moved]), (1, 0));
        }
    }

    #[test]
    fn a_changed_field_counts_one() {
        let plan = plan();
        let pss = pss(&plan);
        let kgs = [kg(KG1, "1", None, None), kg(KG2, "2", None, None)];
        let pcs = [pc(PC1, "3", None)];
        let mut changed = kgs.to_vec();
        changed[0][1].1 = "8".to_owned();
        assert_eq!(counts(pss, [&kgs, &pcs], [&changed, &pcs]), (1, 0));

        // One version of a two-version history changed: one, whichever it is and in
        // whichever order the legacy service lists them.
        let phs = phs(&plan);
        let history = kg_history();
        for v in 0..2 {
            let mut changed = history.clone();
            changed[v][1].1 = "8".to_owned();
            assert_eq!(counts(phs, [&history, &[]], [&changed, &[]]), (1, 0));
            changed.reverse();
            assert_eq!(counts(phs, [&history, &[]], [&changed, &[]]), (1, 0));
        }
        // Both versions changed: two.
        let mut both = history.clone();
        for item in &mut both {
            item[1].1 = "8".to_owned();
        }
        assert_eq!(counts(phs, [&history, &[]], [&both, &[]]), (2, 0));
    }

    #[test]
    fn missing_and_extra_items_count_one_each() {
        let plan = plan();
        let pss = pss(&plan);
        let kgs = [kg(KG1, "1", None, None), kg(KG2, "2", None, None)];
        // KG1 changed, KG2 missing in legacy: two (as the end-to-end test counts).
        let legacy = [kg(KG1, "8", None, None)];
        assert_eq!(counts(pss, [&kgs, &[]], [&legacy, &[]]), (2, 0));
        // Legacy has a contact group REST does not, and the same one twice.
        let extra = [
            kg(KG1, "1", None, None),
            kg(KG2, "2", None, None),
            kg(KG2, "2", None, None),
            kg(KG3, "1", None, None),
        ];
        assert_eq!(counts(pss, [&kgs, &[]], [&extra, &[]]), (2, 0));
        // A version missing in legacy's history: one.
        let phs = phs(&plan);
        let history = kg_history();
        assert_eq!(counts(phs, [&history, &[]], [&history[1..], &[]]), (1, 0));
        // Nothing on one side: every item of the other.
        assert_eq!(counts(phs, [&history, &[]], [&[], &[]]), (2, 0));
        assert_eq!(counts(phs, [&[], &[]], [&history, &[]]), (2, 0));
    }

    #[test]
    fn values_compare_by_type_and_unmapped_legacy_elements_count() {
        let plan = plan();
        let pss = pss(&plan);
        let kgs = [kg(KG1, "1", None, None)];
        // Upper-case UUID, UTC, spaces: the same values.
        let mut same = kgs.to_vec();
        same[0][0].1 = KG1.to_uppercase();
        same[0][3].1 = "2024-01-01T09:00:00Z".to_owned();
        same[0][1].1 = " 1 ".to_owned();
        assert_eq!(counts(pss, [&kgs, &[]], [&same, &[]]), (0, 0));
        // An element the mapping does not know is a difference.
        let mut more = kgs.to_vec();
        more[0].push(("Note".to_owned(), "x".to_owned()));
        assert_eq!(counts(pss, [&kgs, &[]], [&more, &[]]), (1, 0));
    }

    #[test]
    fn with_a_version_field_history_items_match_by_identifier_and_version() {
        // The legacy contract has no version element; a collection that had one (here the
        // start time standing in for it) pairs left-over items by (identifier, version).
        let plan = plan();
        let mut read = phs(&plan).clone();
        let c = &mut read.collections[0];
        let start = c
            .fields
            .iter()
            .position(|f| f.soap == ["ContactGroupStartTime"])
            .unwrap();
        c.version = Some(start);
        let v1 = kg(KG1, "1", None, Some("2024-01-01T10:00:01+01:00"));
        let mut v2 = kg(KG1, "1", None, Some("2024-03-01T09:00:00+01:00"));
        v2[2].1 = "2024-02-01T00:00:00+01:00".to_owned();
        let mut v3 = v2.clone();
        v3[2].1 = "2024-03-01T00:00:00+01:00".to_owned();
        // REST v1, v2; legacy v2 (changed), v3: v1 missing, v2 changed, v3 extra.
        let mut v2_changed = v2.clone();
        v2_changed[1].1 = "8".to_owned();
        let rest = [v1.clone(), v2.clone()];
        assert_eq!(
            counts(
                &read,
                [&rest, &[]],
                [&[v3.clone(), v2_changed.clone()], &[]]
            ),
            (3, 0)
        );
        // Without the version field the same items pair in order: two.
        assert_eq!(
            counts(phs(&plan), [&rest, &[]], [&[v3, v2_changed], &[]]),
            (2, 0)
        );
        // Equal versions, in any order: nothing.
        assert_eq!(counts(&read, [&rest, &[]], [&[v2, v1], &[]]), (0, 0));
    }

    #[test]
    fn ten_thousand_items_in_another_order_compare_equal_and_find_one_change() {
        // 5,000 registrations of two versions each, listed newest first by legacy (the most
        // a call compares, SHADOW_MAX_ITEMS per side). Its cost is a benchmark's business,
        // not a test's: this checks the counts.
        let plan = plan();
        let phs = phs(&plan);
        let history: Vec<LegacyItem> = (0..5_000u32)
            .flat_map(|i| {
                let id = format!("00000000-0000-4000-8000-{i:012}");
                ["10:00:00", "11:00:00"].map(|t| {
                    let t = format!("2024-01-01T{t}+01:00");
                    kg(&id, "1", None, Some(&t))
                })
            })
            .collect();
        let mut legacy: Vec<LegacyItem> = history.iter().rev().cloned().collect();
        assert_eq!(counts(phs, [&history, &[]], [&legacy, &[]]), (0, 0));
        legacy[5_000][1].1 = "8".to_owned();
        assert_eq!(counts(phs, [&history, &[]], [&legacy, &[]]), (1, 0));
    }
}
