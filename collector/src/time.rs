//! UTC timestamps and human durations, done by hand: two small functions do not justify a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// Nanoseconds since the Unix epoch (0 before 1970, saturating far in the future).
pub fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// UTC civil date (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 UTC with nanoseconds, e.g. `2025-03-01T12:04:05.123456789Z` (fixed width, so it
/// sorts as text).
pub fn format_rfc3339(unix_nanos: u64) -> String {
    let secs = unix_nanos / NANOS_PER_SEC;
    let nanos = unix_nanos % NANOS_PER_SEC;
    let (year, month, day) = civil_from_days(secs / SECS_PER_DAY);
    let of_day = secs % SECS_PER_DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// UTC time of day with milliseconds, e.g. `12:04:05.123`: the table's TIME column.
pub fn format_clock_millis(unix_nanos: u64) -> String {
    let secs = unix_nanos / NANOS_PER_SEC;
    let millis = unix_nanos % NANOS_PER_SEC / 1_000_000;
    let of_day = secs % SECS_PER_DAY;
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Parses a duration such as `30s`, `15m`, `2h`, `1d`, `500ms` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: use a number and a unit (ms, s, m, h, d), e.g. 30s, 15m, 2h, 1h30m"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let part = match &rest[digits..digits + unit_len] {
            "ms" => Some(Duration::from_millis(value)),
            "s" => Some(Duration::from_secs(value)),
            "m" => value.checked_mul(60).map(Duration::from_secs),
            "h" => value.checked_mul(3600).map(Duration::from_secs),
            "d" => value.checked_mul(SECS_PER_DAY).map(Duration::from_secs),
            _ => None,
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(invalid)?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// The shape Envoy always prints, `2024-02-29T23:59:59.123Z`, read by position: every access-log
/// line has one, and the general parser below splits it five times over.
fn parse_canonical(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range)?.iter().try_fold(0i64, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hours, minutes, seconds) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let millis = number(20..23)?;
    civil_nanos(
        year,
        month,
        day,
        hours,
        minutes,
        seconds,
        millis * 1_000_000,
    )
}

/// `2024-02-29T23:59:59.123Z` (Envoy's `%START_TIME%`, UTC) → ns since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    if let Some(nanos) = parse_canonical(text) {
        return Some(nanos);
    }
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: i64 = date.next()?.parse().ok()?;
    let day: i64 = date.next()?.parse().ok()?;
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.split(':');
    let hours: i64 = clock.next()?.parse().ok()?;
    let minutes: i64 = clock.next()?.parse().ok()?;
    let seconds: i64 = clock.next()?.parse().ok()?;
    // Up to nine fraction digits, scaled to nanoseconds (`.5` is 500 ms), without allocating.
    let digits = fraction.bytes().take_while(u8::is_ascii_digit).take(9);
    let (value, count) = digits.fold((0i64, 0u32), |(value, count), digit| {
        (value * 10 + i64::from(digit - b'0'), count + 1)
    });
    let nanos = value * 10_i64.pow(9 - count);
    civil_nanos(year, month, day, hours, minutes, seconds, nanos)
}

/// A UTC civil time → ns since the Unix epoch; `None` out of range (bounds keep the arithmetic
/// far from overflow on garbage input).
fn civil_nanos(
    year: i64,
    month: i64,
    day: i64,
    hours: i64,
    minutes: i64,
    seconds: i64,
    nanos: i64,
) -> Option<u64> {
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hours)
        && (0..60).contains(&minutes)
        && (0..=60).contains(&seconds);
    if !valid {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hours * 3600 + minutes * 60 + seconds;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T23:59:59.5Z (a leap day)
        assert_eq!(
            format_rfc3339(1_709_251_199_500_000_000),
            "2024-02-29T23:59:59.500000000Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400 * NANOS_PER_SEC + 7),
            "2000-02-29T00:00:00.000000007Z"
        );
        assert_eq!(
            format_rfc3339(4_102_444_800 * NANOS_PER_SEC),
            "2100-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn clock() {
        assert_eq!(format_clock_millis(0), "00:00:00.000");
        assert_eq!(
            format_clock_millis(1_709_251_199_987_654_321),
            "23:59:59.987"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        for bad in [
            "",
            "30",
            "s",
            "1.5h",
            "-1m",
            "10x",
            "1h 30m",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("e.g. 30s"), "{bad}: {err}");
        }
    }

    #[test]
    fn unix_nanos_of_system_time() {
        assert_eq!(unix_nanos(UNIX_EPOCH + Duration::from_nanos(5)), 5);
        assert_eq!(unix_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("99999999999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T99:00:00Z"), None);
        // Envoy's own shape (read by position) agrees with the general reading.
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123Z"),
            parse_rfc3339("2023-11-14T22:13:20.123000Z")
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123_000_000)
        );
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20.123Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:1x:20.123Z"), None);
    }
}
