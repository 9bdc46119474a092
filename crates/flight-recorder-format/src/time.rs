//! Dates for people: Unix nanoseconds as UTC calendar dates, without a time-zone database.

/// Formats Unix nanoseconds as an RFC 3339 UTC date with milliseconds, e.g.
/// `2026-11-22T02:35:36.123Z`.
pub fn format_utc_millis(unix_ns: u64) -> String {
    let (date, secs_of_day, nanos) = split(unix_ns);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        nanos / 1_000_000
    )
}

/// `2026-11-22T02:35:36.123456Z`: a UTC date to the microsecond.
pub fn format_utc_micros(unix_ns: u64) -> String {
    let millis = format_utc_millis(unix_ns);
    let micros = unix_ns / 1_000 % 1_000;
    match millis.strip_suffix('Z') {
        Some(stem) => format!("{stem}{micros:03}Z"),
        None => millis,
    }
}

/// Formats Unix nanoseconds with Go's layout `2006-01-02T15_04_05.000` (UTC), the time stamp of
/// dump file names: no colons, so the name is valid on every file system.
pub fn format_file_stamp(unix_ns: u64) -> String {
    let (date, secs_of_day, nanos) = split(unix_ns);
    format!(
        "{date}T{:02}_{:02}_{:02}.{:03}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        nanos / 1_000_000
    )
}

fn split(unix_ns: u64) -> (String, u64, u64) {
    let secs = unix_ns / 1_000_000_000;
    let nanos = unix_ns % 1_000_000_000;
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    (format!("{y:04}-{m:02}-{d:02}"), secs % 86_400, nanos)
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day) 12:34:56.789.
        assert_eq!(
            format_utc_millis(951_827_696_789_000_000),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            format_file_stamp(1_795_833_336_123_456_789),
            "2026-11-28T02_35_36.123"
        );
    }
}
