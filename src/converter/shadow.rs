//! The shadow compare (AC 1005.17.28.15): before the cutover, the legacy service's
//! collections and the REST-derived ones should agree. A pure function: the caller counts
//! and logs what it finds, without CPR numbers or identifiers.

use crate::mapping::{Canon, ReadPlan};
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

/// The collections where legacy and REST differ. Items are matched by their first field
/// (the identifier); a missing item on either side or a differing field is a mismatch.
pub fn compare<'p>(
    plan: &'p ReadPlan,
    rest: &[Vec<Fields<'_>>],
    legacy: &[Vec<LegacyItem>],
) -> Vec<Difference<'p>> {
    let mut out = Vec::new();
    for ((c, rest_items), legacy_items) in plan.collections.iter().zip(rest).zip(legacy) {
        let key = |fields: &[(String, String)]| fields.first().map(|(_, v)| v.clone());
        let canon = |path: &str, text: &str| {
            c.fields
                .iter()
                .find(|f| f.soap.join("/") == path)
                .and_then(|f| f.ty.from_soap(text).ok())
                .unwrap_or_else(|| Canon::Text(text.to_owned()))
        };
        let as_map = |fields: &[(String, String)]| -> Vec<(String, Canon)> {
            let mut m: Vec<(String, Canon)> = fields
                .iter()
                .map(|(p, t)| (p.clone(), canon(p, t)))
                .collect();
            m.sort_by(|x, y| x.0.cmp(&y.0));
            m
        };
        let rest_owned: Vec<LegacyItem> = rest_items
            .iter()
            .map(|it| it.iter().map(|(p, t)| (p.join("/"), t.clone())).collect())
            .collect();
        let mut mismatches = 0u64;
        for r in &rest_owned {
            match legacy_items.iter().find(|l| key(l) == key(r)) {
                None => mismatches += 1,
                Some(l) if as_map(r) != as_map(l) => mismatches += 1,
                Some(_) => {}
            }
        }
        mismatches += legacy_items
            .iter()
            .filter(|l| !rest_owned.iter().any(|r| key(r) == key(l)))
            .count() as u64;
        if mismatches > 0 {
            out.push(Difference {
                collection: c.element.last().map_or("", String::as_str),
                mismatches,
                rest_items: rest_owned.len(),
                legacy_items: legacy_items.len(),
            });
        }
    }
    out
}
