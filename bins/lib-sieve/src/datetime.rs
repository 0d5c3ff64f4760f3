//! datetime - dates for the date extension (RFC 5260): RFC 5322 dates
//! parsed with their zone, and the date parts of §4.2.

/// The date parts a script may ask for.
pub const PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// parse_zone - `+hhmm` or `-hhmm` as minutes east of UTC.
pub fn parse_zone(z: &str) -> Option<i32> {
    let b = z.as_bytes();
    if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h: i32 = z[1..3].parse().ok()?;
    let m: i32 = z[3..5].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    let v = h * 60 + m;
    Some(if b[0] == b'-' { -v } else { v })
}

/// local_offset - the local zone's offset at `secs`, in minutes.
pub fn local_offset(secs: i64) -> i32 {
    let z = posthorn_sys::fsio::strftime_local(secs, c"%z");
    parse_zone(z.trim()).unwrap_or(0)
}

pub use posthorn_mail::date::{civil_from_days, days_from_civil};

/// parse_date - an RFC 5322 date-time (obsolete forms too): the Unix
/// time and the zone it was written in, in minutes.
pub fn parse_date(s: &str) -> Option<(i64, i32)> {
    posthorn_mail::date::parse_rfc5322(s).map(|w| (w.utc, w.offset))
}

/// part - one date part of `secs` seen in zone `zone` (minutes).
pub fn part(secs: i64, zone: i32, name: &str) -> Option<String> {
    let t = secs + i64::from(zone) * 60;
    let days = t.div_euclid(86400);
    let sod = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    let zs = format!(
        "{}{:02}{:02}",
        if zone < 0 { '-' } else { '+' },
        zone.abs() / 60,
        zone.abs() % 60
    );
    let wd = (days + 4).rem_euclid(7) as usize;
    Some(match name.to_ascii_lowercase().as_str() {
        "year" => format!("{y:04}"),
        "month" => format!("{m:02}"),
        "day" => format!("{d:02}"),
        "date" => format!("{y:04}-{m:02}-{d:02}"),
        "julian" => (days + 40587).to_string(),
        "hour" => format!("{hh:02}"),
        "minute" => format!("{mm:02}"),
        "second" => format!("{ss:02}"),
        "time" => format!("{hh:02}:{mm:02}:{ss:02}"),
        "iso8601" => format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{}:{}",
            &zs[..3],
            &zs[3..]
        ),
        "std11" => format!(
            "{}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} {zs}",
            DAYS[wd],
            {
                let mn = MONTHS[(m - 1) as usize];
                let mut c = mn.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        ),
        "zone" => zs,
        "weekday" => wd.to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let (t, z) = parse_date("Fri, 17 Jun 2005 13:52:15 -0400").unwrap();
        assert_eq!(z, -240);
        assert_eq!(
            part(t, z, "std11").unwrap(),
            "Fri, 17 Jun 2005 13:52:15 -0400"
        );
        assert_eq!(part(t, z, "iso8601").unwrap(), "2005-06-17T13:52:15-04:00");
        assert_eq!(part(t, 0, "time").unwrap(), "17:52:15");
        assert_eq!(part(t, z, "weekday").unwrap(), "5");
        assert_eq!(part(t, z, "julian").unwrap(), "53538");
        assert_eq!(part(0, 0, "date").unwrap(), "1970-01-01");
        assert!(parse_date("17 Jun 05 13:52 GMT").is_some());
        assert!(parse_date("yesterday").is_none());
        assert_eq!(parse_zone("+0530"), Some(330));
        assert_eq!(parse_zone("0530"), None);
        for d in [-1000, 0, 59, 60, 365, 11016, 20000, 100000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
