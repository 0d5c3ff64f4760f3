//! date - RFC 5322 dates in local time.

/// now_rfc5322 - "Sat, 28 Nov 2026 11:43:00 +0000" for Date: and Received:.
pub fn now_rfc5322() -> String {
    let now = jiff::ZonedDateTime::now();
    now.strftime("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// since_epoch - the time since the epoch, to the microsecond.
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// unix_now - seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// rfc5322_from_unix - a Unix time as an RFC 5322 date in local time.
pub fn rfc5322_from_unix(secs: u64) -> String {
    match jiff::Timestamp::from_second(secs as i64) {
        Ok(ts) => ts
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => now_rfc5322(),
    }
}

/// mailq_date - "Sat Nov 28 11:43:00" as Postfix's mailq prints arrival times.
pub fn mailq_date(secs: u64) -> String {
    match jiff::Timestamp::from_second(secs as i64) {
        Ok(ts) => ts
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%a %b %e %H:%M:%S")
            .to_string(),
        Err(_) => String::from("?"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_shape() {
        let d = super::rfc5322_from_unix(0);
        // "Thu, 01 Jan 1970 00:00:00 +0000" in UTC; other zones shift the hour only.
        assert_eq!(d.len(), 31, "{d}");
        assert!(d.contains("1970") || d.contains("1969"));
    }
}
