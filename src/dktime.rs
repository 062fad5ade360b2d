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

/// A value that is not an xs:dateTime (or, for a day, an xs:date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an xs:dateTime")]
pub struct BadTime;

/// Splits an xs:dateTime into its date-time and its offset ("Z", "+01:00"), if any.
fn split_offset(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return (rest, Some("Z"));
    }
    // An offset is the last six characters: "+hh:mm" or "-hh:mm", after the time part.
    if s.len() > 6 && s.contains('T') {
        let (head, tail) = s.split_at(s.len() - 6);
        if (tail.starts_with('+') || tail.starts_with('-')) && tail.as_bytes()[3] == b':' {
            return (head, Some(tail));
        }
    }
    (s, None)
}

/// An xs:dateTime as an instant. Without an offset it is Danish local time; in the hour
/// that occurs twice in autumn the earlier instant is taken, in the hour skipped in spring
/// the time is moved forward (jiff's "compatible" rule, as RFC 5545 and java.time do).
pub fn parse_xs_datetime(s: &str) -> Result<Timestamp, BadTime> {
    let s = s.trim();
    match split_offset(s) {
        (_, Some(_)) => s.parse::<Timestamp>().map_err(|_| BadTime),
        (local, None) => {
            let dt: jiff::civil::DateTime = local.parse().map_err(|_| BadTime)?;
            dt.to_zoned(copenhagen().clone())
                .map(|z| z.timestamp())
                .map_err(|_| BadTime)
        }
    }
}

/// The Danish day an xs:dateTime (or an xs:date) names: with an offset, the Danish date of
/// that instant; without, the date as written.
pub fn parse_xs_day(s: &str) -> Result<Date, BadTime> {
    let s = s.trim();
    if !s.contains('T') {
        // An xs:date may carry a timezone ("2024-01-01+01:00", "2024-12-31Z"); the date as
        // written is the day it names.
        let date = s.strip_suffix(['Z', 'z']).unwrap_or(s);
        let date = match date.len() {
            16 if matches!(date.as_bytes()[10], b'+' | b'-') && date.as_bytes()[13] == b':' => {
                &date[..10]
            }
            _ => date,
        };
        return date.parse::<Date>().map_err(|_| BadTime);
    }
    match split_offset(s) {
        (_, Some(_)) => Ok(parse_xs_datetime(s)?.to_zoned(copenhagen().clone()).date()),
        (local, None) => local
            .parse::<jiff::civil::DateTime>()
            .map(|dt| dt.date())
            .map_err(|_| BadTime),
    }
}

fn write_offset(out: &mut String, seconds: i32) {
    use std::fmt::Write;
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.unsigned_abs() / 60;
    let _ = write!(out, "{sign}{:02}:{:02}", m / 60, m % 60);
}

/// An instant as an xs:dateTime in Danish time with its offset: `2024-07-01T10:00:00+02:00`.
pub fn format_xs_datetime(t: Timestamp) -> String {
    use std::fmt::Write;
    let z = t.to_zoned(copenhagen().clone());
    let mut out = String::with_capacity(32);
    let _ = write!(out, "{}", z.datetime());
    write_offset(&mut out, z.offset().seconds());
    out
}

/// A day as an xs:dateTime: Danish midnight with the offset of that instant, so 2024-03-31
/// is `2024-03-31T00:00:00+01:00` and 2024-07-01 is `2024-07-01T00:00:00+02:00`.
pub fn format_xs_day(d: Date) -> String {
    use std::fmt::Write;
    let offset = d
        .to_datetime(jiff::civil::Time::midnight())
        .to_zoned(copenhagen().clone())
        .map(|z| z.offset().seconds())
        .unwrap_or(0);
    let mut out = String::with_capacity(25);
    let _ = write!(out, "{d}T00:00:00");
    write_offset(&mut out, offset);
    out
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

    #[test]
    fn a_day_is_written_as_danish_midnight_with_its_offset() {
        assert_eq!(
            format_xs_day(jiff::civil::date(2024, 3, 31)),
            "2024-03-31T00:00:00+01:00"
        );
        assert_eq!(
            format_xs_day(jiff::civil::date(2024, 7, 1)),
            "2024-07-01T00:00:00+02:00"
        );
        assert_eq!(
            format_xs_day(jiff::civil::date(2024, 10, 27)),
            "2024-10-27T00:00:00+02:00"
        );
        assert_eq!(
            format_xs_day(jiff::civil::date(2024, 10, 28)),
            "2024-10-28T00:00:00+01:00"
        );
    }

    #[test]
    fn a_day_is_read_as_the_danish_date() {
        let d = |s| parse_xs_day(s).unwrap();
        assert_eq!(
            d("2024-03-31T00:00:00+01:00"),
            jiff::civil::date(2024, 3, 31)
        );
        assert_eq!(d("2024-03-31T00:00:00"), jiff::civil::date(2024, 3, 31));
        assert_eq!(d("2024-03-31"), jiff::civil::date(2024, 3, 31));
        assert_eq!(d("2024-01-01+01:00"), jiff::civil::date(2024, 1, 1));
        assert_eq!(d("2024-12-31Z"), jiff::civil::date(2024, 12, 31));
        assert_eq!(d("2024-12-31-05:00"), jiff::civil::date(2024, 12, 31));
        // 22:30 UTC on the 30th of June is the 1st of July in Denmark.
        assert_eq!(d("2024-06-30T22:30:00Z"), jiff::civil::date(2024, 7, 1));
        assert_eq!(
            d("2024-06-30T22:30:00.000+00:00"),
            jiff::civil::date(2024, 7, 1)
        );
        for bad in [
            "",
            "2024-02-30T00:00:00",
            "2024-03-31T25:00:00",
            "yesterday",
            "2024-03-31T00:00:00+1:00",
        ] {
            assert_eq!(parse_xs_day(bad), Err(BadTime), "{bad}");
        }
    }

    #[test]
    fn offset_less_times_are_danish_across_both_changes() {
        let t = |s| parse_xs_datetime(s).unwrap().to_string();
        assert_eq!(t("2024-01-15T10:00:00"), "2024-01-15T09:00:00Z");
        assert_eq!(t("2024-07-15T10:00:00"), "2024-07-15T08:00:00Z");
        // Spring: 02:30 on 2024-03-31 does not exist; it is read as 03:30 CEST.
        assert_eq!(t("2024-03-31T02:30:00"), "2024-03-31T01:30:00Z");
        // Autumn: 02:30 on 2024-10-27 happens twice; the first (CEST) is taken.
        assert_eq!(t("2024-10-27T02:30:00"), "2024-10-27T00:30:00Z");
        assert_eq!(t("2024-10-27T02:30:00+01:00"), "2024-10-27T01:30:00Z");
    }

    #[test]
    fn instants_are_written_in_danish_time_across_both_changes() {
        let f = |s: &str| format_xs_datetime(s.parse().unwrap());
        assert_eq!(f("2024-03-31T00:59:59Z"), "2024-03-31T01:59:59+01:00");
        assert_eq!(f("2024-03-31T01:00:00Z"), "2024-03-31T03:00:00+02:00");
        assert_eq!(f("2024-10-27T00:30:00Z"), "2024-10-27T02:30:00+02:00");
        assert_eq!(f("2024-10-27T01:30:00Z"), "2024-10-27T02:30:00+01:00");
        assert_eq!(f("2024-10-27T01:30:00.25Z"), "2024-10-27T02:30:00.25+01:00");
        // Round trip.
        let s = "2024-10-27T02:30:00+01:00";
        assert_eq!(format_xs_datetime(parse_xs_datetime(s).unwrap()), s);
    }
}
