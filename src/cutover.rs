//! Which cutover instant applies to which caller (rule 9). From its instant a caller gets
//! the contact group and person category collections of PersonStatusService and
//! PersonHistoryService present and empty, and no REST call is made for them. The default
//! instant is configuration; a calling organisation (type + code) can have its own: the
//! "skiftespor" of kommunal-planner-skiftespor.txt, so one KSS or a test can be moved alone.

use std::collections::HashMap;

use jiff::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutover {
    default: Timestamp,
    overrides: HashMap<(String, String), Timestamp>,
}

impl Cutover {
    pub fn new(default: Timestamp) -> Cutover {
        Cutover {
            default,
            overrides: HashMap::new(),
        }
    }

    /// Gives organisation (type, code) its own instant.
    pub fn with_override(
        mut self,
        organisation_type: &str,
        organisation_code: &str,
        at: Timestamp,
    ) -> Cutover {
        self.overrides.insert(
            (
                organisation_type.trim().to_owned(),
                organisation_code.trim().to_owned(),
            ),
            at,
        );
        self
    }

    /// The instant that applies to a caller.
    pub fn instant_for(&self, organisation_type: &str, organisation_code: &str) -> Timestamp {
        // Lookup without allocating on the hot path: the map is tiny, compare in place.
        self.overrides
            .iter()
            .find(|((t, c), _)| t == organisation_type.trim() && c == organisation_code.trim())
            .map_or(self.default, |(_, at)| *at)
    }

    /// Whether the caller is past its cutover at `now`.
    pub fn passed(&self, organisation_type: &str, organisation_code: &str, now: Timestamp) -> bool {
        now >= self.instant_for(organisation_type, organisation_code)
    }

    pub fn default_instant(&self) -> Timestamp {
        self.default
    }

    /// Every override, for the start-up report and the dashboard.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &str, Timestamp)> {
        self.overrides
            .iter()
            .map(|((t, c), at)| (t.as_str(), c.as_str(), *at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_moves_one_caller_alone() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let c = Cutover::new(t("2025-03-01T00:00:00+01:00")).with_override(
            "1",
            "101",
            t("2030-01-01T00:00:00Z"),
        );
        let now = t("2026-01-01T00:00:00Z");
        assert!(c.passed("1", "147", now));
        assert!(!c.passed("1", "101", now));
        assert!(!c.passed(" 1 ", "101", now));
        assert!(
            c.passed("3", "101", now),
            "the override is per organisation type and code"
        );
        assert!(!c.passed("1", "147", t("2025-02-28T22:59:59Z")));
        assert!(c.passed("1", "147", t("2025-02-28T23:00:00Z")));
    }
}
