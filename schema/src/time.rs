//! Reading an incident record's times quickly. A record holds about ten of them and a dashboard
//! reads every record of the incident topic when it starts (a million in a large city's year),
//! where chrono's general RFC 3339 parser is a fifth of the decoding. The form the stages write
//! (chrono's own, in UTC: `2026-11-23T12:00:00Z`, with 0 to 9 digits of fraction) is read
//! directly; anything else (an offset, a lower-case `t`, a leap second) goes to chrono, so what
//! is accepted, and the instant it means, are chrono's.
//!
//! Used as `#[serde(deserialize_with = "crate::time::utc")]` (and [`utc_option`] for an optional
//! time); writing is chrono's.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::{self, Deserializer, Visitor};

/// `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`, or `None` for anything else (including impossible dates
/// and times, which chrono then refuses with its own message).
fn fast(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(20..b.len() - 1)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    Some(
        date.and_hms_nano_opt(hour, minute, second, nanos)?
            .and_utc(),
    )
}

struct Rfc3339;

impl Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 date and time")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
        match fast(s) {
            Some(t) => Ok(t),
            None => s.parse().map_err(E::custom),
        }
    }
}

/// A time as chrono reads `DateTime<Utc>`, faster for the form the stages write.
pub fn utc<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Rfc3339)
}

/// [`utc`] for an optional time: absent or `null` is `None`.
pub fn utc_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<DateTime<Utc>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 date and time, or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            utc(d).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, SecondsFormat};

    fn chrono_reads(s: &str) -> Result<DateTime<Utc>, String> {
        s.parse::<DateTime<Utc>>().map_err(|e| e.to_string())
    }

    fn fast_reads(s: &str) -> Result<DateTime<Utc>, String> {
        let json = serde_json::to_string(s).unwrap();
        let mut d = serde_json::Deserializer::from_str(&json);
        utc(&mut d).map_err(|e| e.to_string())
    }

    /// Every time chrono writes, at every precision, reads back as chrono reads it.
    #[test]
    fn what_chrono_writes_reads_back_the_same() {
        let mut t = DateTime::from_timestamp(-62_000_000_000, 0).unwrap();
        let step = Duration::seconds(86_399) + Duration::nanoseconds(123_456_789);
        for n in 0..30_000 {
            t += step * (1 + n % 97);
            for format in [
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Micros,
                SecondsFormat::Nanos,
                SecondsFormat::AutoSi,
            ] {
                let s = t.to_rfc3339_opts(format, true);
                assert!(fast(&s).is_some(), "{s} takes the fast path");
                assert_eq!(fast_reads(&s), chrono_reads(&s), "{s}");
            }
        }
    }

    /// Forms off the fast path, valid or not, are chrono's to judge.
    #[test]
    fn other_forms_are_read_as_chrono_reads_them() {
        for s in [
            "2026-11-23T12:00:00+07:00",
            "2026-11-23t12:00:00z",
            "2026-11-23 12:00:00Z",
            "2026-11-23T12:00:00.1234567891Z",
            "2026-11-23T12:00:00.Z",
            "2016-12-31T23:59:60Z",
            "2026-02-30T12:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T12:60:00Z",
            "2026-1-23T12:00:00Z",
            "+2026-11-23T12:00:00Z",
            "2026-11-23T12:00:00",
            "2026-11-23T12:00:0xZ",
            "２０２６-11-23T12:00:00Z",
            "",
            "Z",
        ] {
            assert_eq!(fast_reads(s).is_ok(), chrono_reads(s).is_ok(), "{s}");
            if let (Ok(a), Ok(b)) = (fast_reads(s), chrono_reads(s)) {
                assert_eq!(a, b, "{s}");
            }
        }
    }

    #[test]
    fn an_optional_time_may_be_null() {
        let read = |json: &str| utc_option(&mut serde_json::Deserializer::from_str(json));
        assert_eq!(read("null").unwrap(), None);
        assert_eq!(
            read("\"2026-11-23T12:00:00Z\"").unwrap(),
            Some(DateTime::from_timestamp(1_795_435_200, 0).unwrap())
        );
        assert!(read("17").is_err());
    }
}
