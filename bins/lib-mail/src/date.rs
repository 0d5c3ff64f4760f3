//! date - RFC 5322 dates in local time.

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

/// days_from_civil - days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// civil_from_days - (year, month, day) of days since 1970-01-01.
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
