//! Danish time. Dates are `jiff::civil::Date` in Europe/Copenhagen; "today" is the Danish
//! local date, not the UTC date (rule 1 turns on it between 22:00 and 24:00 UTC).
//! The time zone database is bundled into the binary (jiff `tzdb-bundle-always`), so the
//! answer does not depend on the machine's /usr/share/zoneinfo.

use std::sync::LazyLock;

use jiff::{Timestamp, civil::Date, tz::TimeZone};

static COPENHAGEN: LazyLock<TimeZone> =
    LazyLock::new(|| TimeZone::get("Europe/Copenhagen").unwrap_or(TimeZone::UTC));

/// Europe/Copenhagen. Falls back to UTC only if the bundled database lacks the zone, which
/// `copenhagen_is_bundled` below rules out.
pub fn copenhagen() -> &'static TimeZone {
    &COPENHAGEN
}

/// Where "now" comes from. Production uses the system clock; tests pin an instant so that
/// the edges of the Danish day and the daylight-saving changes can be tested at any hour.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(Timestamp),
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }

    /// Today's date in Denmark.
    pub fn today(&self) -> Date {
        self.now().to_zoned(copenhagen().clone()).date()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copenhagen_is_bundled() {
        assert_eq!(copenhagen().iana_name(), Some("Europe/Copenhagen"));
    }

    #[test]
    fn today_is_the_danish_date_not_the_utc_date() {
        // 22:30 UTC in summer is 00:30 the next day in Copenhagen (UTC+2).
        let c = Clock::Fixed("2026-06-30T22:30:00Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 7, 1));
        // 23:30 UTC in winter is 00:30 the next day (UTC+1); 22:30 UTC is still the same day.
        let c = Clock::Fixed("2026-01-31T23:30:00Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 2, 1));
        let c = Clock::Fixed("2026-01-31T22:30:00Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 1, 31));
    }

    #[test]
    fn today_across_both_daylight_saving_changes() {
        // Spring forward, 2026-03-29 01:00 UTC: 00:30 local on the 29th is 23:30 UTC on the 28th.
        let c = Clock::Fixed("2026-03-28T23:30:00Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 3, 29));
        // After the change, midnight on the 30th is 22:00 UTC on the 29th.
        let c = Clock::Fixed("2026-03-29T22:00:00Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 3, 30));
        let c = Clock::Fixed("2026-03-29T21:59:59Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 3, 29));
        // Fall back, 2026-10-25 01:00 UTC: midnight on the 26th is 23:00 UTC on the 25th.
        let c = Clock::Fixed("2026-10-25T22:59:59Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 10, 25));
        let c = Clock::Fixed("2026-10-25T23:00:00Z".parse().unwrap());
        assert_eq!(c.today(), jiff::civil::date(2026, 10, 26));
    }
}
