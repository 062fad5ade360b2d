//! Danish time. Dates are `jiff::civil::Date` in Europe/Copenhagen; "today" is the Danish
//! local date, not the UTC date (rule 1 turns on it between 22:00 and 24:00 UTC).
//! The time zone database is bundled into the binary (jiff `tzdb-bundle-always`), so the
//! answer does not depend on the machine's /usr/share/zoneinfo.

use std::sync::LazyLock;

use jiff::{
    Timestamp,
    civil::Date,
    tz::{AmbiguousOffset, TimeZone},
};

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
    let m = seconds.unsigned_abs() / 60;
    out.push(if seconds < 0 { '-' } else { '+' });
    push_digits(out, m / 60, 2);
    out.push(':');
    push_digits(out, m % 60, 2);
}

/// `n`'s last `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
    }
}

/// `YYYY-MM-DD` of a date with a four-digit year (as jiff's `Display` writes it), or false
/// for a year jiff writes otherwise (before 1000 or signed), which is left to jiff.
fn push_date(out: &mut String, d: Date) -> bool {
    let Ok(year) = u32::try_from(d.year()) else {
        return false;
    };
    if !(1000..=9999).contains(&year) {
        return false;
    }
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, u32::from(d.month().unsigned_abs()), 2);
    out.push('-');
    push_digits(out, u32::from(d.day().unsigned_abs()), 2);
    true
}

/// An instant as an xs:dateTime in Danish time with its offset: `2024-07-01T10:00:00+02:00`.
pub fn format_xs_datetime(t: Timestamp) -> String {
    let mut out = String::with_capacity(32);
    write_xs_datetime(&mut out, t);
    out
}

/// [`format_xs_datetime`], appended to `out`. The common case (whole seconds, a four-digit
/// year) is written by hand from the offset alone, without a `Zoned` or `fmt` (issue 13:
/// this was a sixth of a history item's cost); anything else as jiff writes it.
pub fn write_xs_datetime(out: &mut String, t: Timestamp) {
    let offset = copenhagen().to_offset(t);
    let dt = offset.to_datetime(t);
    let start = out.len();
    if dt.subsec_nanosecond() == 0 && push_date(out, dt.date()) {
        out.push('T');
        push_digits(out, u32::from(dt.hour().unsigned_abs()), 2);
        out.push(':');
        push_digits(out, u32::from(dt.minute().unsigned_abs()), 2);
        out.push(':');
        push_digits(out, u32::from(dt.second().unsigned_abs()), 2);
    } else {
        use std::fmt::Write;
        out.truncate(start);
        let _ = write!(out, "{dt}");
    }
    write_offset(out, offset.seconds());
}

/// A day as an xs:dateTime: Danish midnight with the offset of that instant, so 2024-03-31
/// is `2024-03-31T00:00:00+01:00` and 2024-07-01 is `2024-07-01T00:00:00+02:00`.
pub fn format_xs_day(d: Date) -> String {
    let mut out = String::with_capacity(25);
    write_xs_day(&mut out, d);
    out
}

/// [`format_xs_day`], appended to `out`.
pub fn write_xs_day(out: &mut String, d: Date) {
    let midnight = d.to_datetime(jiff::civil::Time::midnight());
    let start = out.len();
    // In year 9999 midnight may lie past `Timestamp::MAX`: left to `to_zoned`.
    let offset = if d.year() < 9999 && push_date(out, d) {
        // The offset `to_zoned` (the "compatible" rule) gives the result: in a gap the
        // time moves forward into the later offset, in a fold the earlier instant is taken.
        match copenhagen().to_ambiguous_timestamp(midnight).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.seconds(),
            AmbiguousOffset::Gap { after, .. } => after.seconds(),
            AmbiguousOffset::Fold { before, .. } => before.seconds(),
        }
    } else {
        // Years near jiff's limits, where the instant may not exist (offset 0, as before).
        use std::fmt::Write;
        out.truncate(start);
        let _ = write!(out, "{d}");
        midnight
            .to_zoned(copenhagen().clone())
            .map(|z| z.offset().seconds())
            .unwrap_or(0)
    };
    out.push_str("T00:00:00");
    write_offset(out, offset);
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

    /// The hand-written forms are what jiff writes through a `Zoned`: at instants from 1800
    /// to 2100 a step apart that is no whole number of hours (so every hour of the day, and
    /// the hours around the DST changes, come up), with and without fractions, and on days
    /// from year 1 to 9999 (every day from 1850 to 2150).
    #[test]
    fn hand_written_times_are_what_jiff_writes() {
        use std::fmt::Write;
        let reference_instant = |t: Timestamp| {
            let z = t.to_zoned(copenhagen().clone());
            let mut out = format!("{}", z.datetime());
            write_offset(&mut out, z.offset().seconds());
            out
        };
        let reference_day = |d: Date| {
            let offset = d
                .to_datetime(jiff::civil::Time::midnight())
                .to_zoned(copenhagen().clone())
                .map(|z| z.offset().seconds())
                .unwrap_or(0);
            let mut out = String::new();
            let _ = write!(out, "{d}T00:00:00");
            write_offset(&mut out, offset);
            out
        };
        let start: Timestamp = "1800-01-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
        let mut t = start;
        while t < end {
            for extra in [0, 1_500, 250_000_000] {
                let u = t + jiff::SignedDuration::from_nanos(extra);
                assert_eq!(format_xs_datetime(u), reference_instant(u), "{u}");
            }
            t += jiff::SignedDuration::from_secs(7 * 3600 + 17 * 60 + 3);
        }
        for edge in [Timestamp::MIN, Timestamp::MAX] {
            assert_eq!(format_xs_datetime(edge), reference_instant(edge));
        }
        let mut d = jiff::civil::date(1, 1, 1);
        loop {
            assert_eq!(format_xs_day(d), reference_day(d), "{d}");
            let step = if (1850..2150).contains(&d.year()) {
                1
            } else {
                97
            };
            match d.checked_add(jiff::Span::new().days(step)) {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
        for d in [jiff::civil::Date::MIN, jiff::civil::Date::MAX] {
            assert_eq!(format_xs_day(d), reference_day(d), "{d}");
        }
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
