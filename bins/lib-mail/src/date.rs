//! date - RFC 5322 dates: written in local time, and read from the
//! Date: fields of messages with the offset they were written with.

use posthorn_sys::fsio::strftime_local;

/// now_rfc5322 - "Sat, 28 Nov 2026 11:43:00 +0000" for Date: and Received:.
pub fn now_rfc5322() -> String {
    rfc5322_from_unix(unix_now())
}

/// since_epoch - the time since the epoch, to the microsecond.
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// unix_now - seconds since the epoch.
pub fn unix_now() -> u64 {
    since_epoch().as_secs()
}

/// rfc5322_from_unix - a Unix time as an RFC 5322 date in local time.
pub fn rfc5322_from_unix(secs: u64) -> String {
    strftime_local(secs as i64, c"%a, %d %b %Y %H:%M:%S %z")
}

/// mailq_date - "Sat Nov 28 11:43:00" as Postfix's mailq prints arrival times.
pub fn mailq_date(secs: u64) -> String {
    strftime_local(secs as i64, c"%a %b %e %H:%M:%S")
}

/// A date read from a message: the instant, and the offset from UTC it
/// was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Seconds since the epoch, UTC.
    pub utc: i64,
    /// The zone's offset, in minutes east of UTC.
    pub offset: i32,
}

impl Written {
    /// civil_day - the calendar day written in the field, as days since
    /// the epoch: the date "disregarding time and timezone" that IMAP's
    /// SENT* keys compare (RFC 3501 §6.4.4).
    pub fn civil_day(&self) -> i64 {
        (self.utc + i64::from(self.offset) * 60).div_euclid(86400)
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// parse_rfc5322 - a Date: field's value (RFC 5322 §3.3 with §4.3's
/// obsolete forms: comments anywhere, no seconds, two- and three-digit
/// years, named and military zones), and a few orders mailers write
/// instead (`Mar 25 2007`, asctime's time before the year). A missing
/// zone, or one not known, counts as UTC, as §4.3 says of military
/// zones. None when no day, month, year and time can be found, or one is
/// out of range.
pub fn parse_rfc5322(value: &str) -> Option<Written> {
    // Comments out; commas and white space separate.
    let mut text = String::with_capacity(value.len());
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ',' => text.push(' '),
            _ => text.push(c),
        }
    }
    let (mut day, mut month, mut year, mut time, mut offset) = (None, None, None, None, None);
    for w in text.split_whitespace().take(16) {
        let lower = w.to_ascii_lowercase();
        if let Some(m) = MONTHS.iter().position(|m| lower.starts_with(m))
            && month.is_none()
            && lower.len() <= 9
            && lower.bytes().all(|b| b.is_ascii_alphabetic() || b == b'.')
        {
            month = Some(m as u32 + 1);
            continue;
        }
        if w.contains(':') && time.is_none() {
            time = Some(clock(w)?);
            continue;
        }
        if (w.starts_with('+') || w.starts_with('-')) && w.len() == 5 && time.is_some() {
            let n: i32 = w[1..].parse().ok()?;
            let (h, m) = (n / 100, n % 100);
            if m >= 60 {
                return None;
            }
            let o = h * 60 + m;
            offset = Some(if w.starts_with('-') { -o } else { o });
            continue;
        }
        if w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty() && w.len() <= 4 {
            let n: i64 = w.parse().ok()?;
            // The first number of one or two digits is the day; a
            // later one, or a longer one, the year.
            if day.is_none() && w.len() <= 2 {
                day = Some(n as u32);
            } else if year.is_none() {
                year = Some(match w.len() {
                    1 | 2 if n < 50 => 2000 + n,
                    1 | 2 => 1900 + n,
                    3 => 1900 + n,
                    _ => n,
                });
            }
            continue;
        }
        if time.is_some() && offset.is_none() && w.bytes().all(|b| b.is_ascii_alphabetic()) {
            offset = Some(named_zone(&lower));
        }
    }
    let (day, month, year, (h, mi, s)) = (day?, month?, year?, time?);
    if !(1..=31).contains(&day) || !(0..=9999).contains(&year) {
        return None;
    }
    let offset = offset.unwrap_or(0);
    let days = days_from_civil(year, month, day);
    let utc = days * 86400 + h * 3600 + mi * 60 + s - i64::from(offset) * 60;
    Some(Written { utc, offset })
}

/// clock - `hh:mm[:ss]`.
fn clock(w: &str) -> Option<(i64, i64, i64)> {
    let mut it = w.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let s: i64 = match it.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if it.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s.min(59)))
}

/// named_zone - RFC 5322 §4.3's zone names, in minutes east of UTC;
/// military letters and unknown names count as UTC.
fn named_zone(z: &str) -> i32 {
    match z {
        "edt" => -4 * 60,
        "est" | "cdt" => -5 * 60,
        "cst" | "mdt" => -6 * 60,
        "mst" | "pdt" => -7 * 60,
        "pst" => -8 * 60,
        _ => 0,
    }
}

/// days_from_civil - a proleptic Gregorian date as days since the epoch.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// civil_from_days - days since the epoch as (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_dates_keep_their_calendar_day() {
        let w = parse_rfc5322("Sun, 25 Mar 2007 00:00:00 +0200").unwrap();
        assert_eq!(w.offset, 120);
        assert_eq!(civil_from_days(w.civil_day()), (2007, 3, 25));
        // In UTC it is the day before.
        assert_eq!(civil_from_days(w.utc.div_euclid(86400)), (2007, 3, 24));
        let w = parse_rfc5322("Mon, 26 Mar 2007 23:59:59 -0700").unwrap();
        assert_eq!(civil_from_days(w.civil_day()), (2007, 3, 26));
        assert_eq!(
            w.utc,
            days_from_civil(2007, 3, 27) * 86400 + 6 * 3600 + 59 * 60 + 59
        );
    }

    #[test]
    fn obsolete_and_odd_forms() {
        let utc = |s: &str| parse_rfc5322(s).map(|w| (w.utc, w.offset));
        let base = days_from_civil(1994, 2, 1) * 86400 + 10 * 3600;
        assert_eq!(utc("Tue, 1 Feb 1994 10:00:00 +0000"), Some((base, 0)));
        assert_eq!(utc("1 Feb 1994 10:00 GMT"), Some((base, 0)));
        assert_eq!(utc("Tue,  1 Feb 94 10:00:00 +0000 (UTC)"), Some((base, 0)));
        assert_eq!(utc("Tue, 01 Feb 094 05:00:00 EST"), Some((base, -300)));
        assert_eq!(
            utc("(c) Tue (c), 1 (c) Feb 1994 10:00:00 Z"),
            Some((base, 0))
        );
        assert_eq!(utc("Tue Feb  1 10:00:00 1994"), Some((base, 0)));
        assert_eq!(utc("Feb 1 1994 03:00:00 -0700"), Some((base, -420)));
        assert_eq!(
            utc("1 Feb 2049 10:00:00 +0000").map(|x| x.0 > base),
            Some(true)
        );
        assert_eq!(
            utc("1 Feb 49 10:00:00 +0000"),
            utc("1 Feb 2049 10:00:00 +0000")
        );
        assert_eq!(
            utc("1 Feb 50 10:00:00 +0000"),
            utc("1 Feb 1950 10:00:00 +0000")
        );
        for bad in [
            "",
            "yesterday",
            "32 Feb 1994 10:00:00",
            "1 Feb 1994",
            "1 Feb 1994 25:00:00",
            "1 Feb 1994 10:00:00 +0099",
            "1 Foo 1994 10:00:00",
        ] {
            assert_eq!(parse_rfc5322(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_days_round_trip() {
        for z in [-800_000, -1, 0, 1, 13_597, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn date_shapes() {
        // Thu, 01 Jan 1970 00:00:00 +0000 in UTC; other zones shift the hour and the offset only.
        let d = super::rfc5322_from_unix(0);
        assert_eq!(d.len(), 31, "{d}");
        assert!(d.contains("1970") || d.contains("1969"), "{d}");
        assert!(
            d.ends_with("+0000") || d.as_bytes()[26] == b'+' || d.as_bytes()[26] == b'-',
            "{d}"
        );
    }
}
