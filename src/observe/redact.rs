//! The redaction guarantee: whatever a log line contains, a CPR number does not reach the
//! log. Every formatted line passes through `redact` before it is written: a run of exactly
//! ten digits (or six, a dash, four), standing alone (no letter or digit next to it), whose
//! first four digits are a day and a month, is replaced by `**********`. Trace ids and
//! timestamps are not touched: their digits run into letters, colons or other digits.
//! This is the last line of defence; the first is that CPR numbers are never logged.

use std::io::{self, Write};

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn day_month(d: &[u8]) -> bool {
    let n = |i: usize| (d[i] - b'0') as u32;
    let day = n(0) * 10 + n(1);
    let month = n(2) * 10 + n(3);
    (1..=31).contains(&day) && (1..=12).contains(&month)
}

/// `line` with every CPR-shaped number masked.
pub fn redact(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        // A boundary: the start, a non-word byte, or an escape such as `\n` in a JSON line.
        let start_ok = i == 0
            || !is_word(line[i - 1])
            || (i >= 2 && line[i - 2] == b'\\' && matches!(line[i - 1], b'n' | b't' | b'r'));
        if start_ok && line[i].is_ascii_digit() {
            let run = line[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            // ten digits, or six-dash-four
            let (len, digits): (usize, Vec<u8>) = if run == 10 {
                (10, line[i..i + 10].to_vec())
            } else if run == 6
                && line.get(i + 6) == Some(&b'-')
                && line[i + 7..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count()
                    == 4
            {
                (
                    11,
                    line[i..i + 6]
                        .iter()
                        .chain(&line[i + 7..i + 11])
                        .copied()
                        .collect(),
                )
            } else {
                (0, Vec::new())
            };
            let end_ok = len > 0 && line.get(i + len).is_none_or(|b| !is_word(*b));
            if end_ok && day_month(&digits) {
                out.extend_from_slice(b"**********");
                i += len;
                continue;
            }
            out.extend_from_slice(&line[i..i + run]);
            i += run;
            continue;
        }
        out.push(line[i]);
        i += 1;
    }
    out
}

/// Whether `line` holds a run of ten digits (or six, a dash and four) at all: the cheap
/// test that lets the common line through without a copy.
fn may_hold_cpr(line: &[u8]) -> bool {
    let digits = |from: usize| {
        line[from.min(line.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut i = 0;
    while i < line.len() {
        if line[i].is_ascii_digit() {
            let run = digits(i);
            if run == 10 || (run == 6 && line.get(i + 6) == Some(&b'-') && digits(i + 7) == 4) {
                return true;
            }
            i += run;
        } else {
            i += 1;
        }
    }
    false
}

/// A writer that redacts each write (tracing-subscriber writes one event per call).
pub struct Redacting<W: Write>(pub W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if may_hold_cpr(buf) {
            self.0.write_all(&redact(buf))?;
        } else {
            self.0.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        String::from_utf8(redact(s.as_bytes())).unwrap()
    }

    #[test]
    fn cpr_numbers_are_masked_wherever_they_stand() {
        assert_eq!(r("cpr=0101701111 x"), "cpr=********** x");
        assert_eq!(r("<P>0101701111</P>"), "<P>**********</P>");
        assert_eq!(r("\"3112991234\""), "\"**********\"");
        assert_eq!(r("010170-1111"), "**********");
        assert_eq!(r("0101701111"), "**********");
        assert_eq!(r(r#""a\n0101701111\tb""#), r#""a\n**********\tb""#);
    }

    #[test]
    fn the_fast_path_sees_every_candidate() {
        assert!(may_hold_cpr(b"x 0101701111 y"));
        assert!(may_hold_cpr(b"010170-1111"));
        assert!(!may_hold_cpr(b"2026-11-27T22:55:03.123456Z micros=1234567"));
    }

    #[test]
    fn other_numbers_are_left_alone() {
        for s in [
            "2026-11-27T22:55:03.123456Z",
            "trace=4bf92f3577b34da6a3ce929d0e0e4736",
            "trace=a0101701111b",
            "micros=1234567",
            "n=01017011112",
            "n=3213991234",
            "id=68124841-3a76-4c82-b980-37b9d9720fca",
        ] {
            assert_eq!(r(s), s);
        }
    }
}
