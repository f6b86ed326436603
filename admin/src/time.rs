//! Times on the command line: milliseconds since the epoch, or an ISO 8601
//! datetime as Kafka's `--to-datetime` takes it
//! (`YYYY-MM-DDTHH:MM:SS.sss`, zone `Z` or `+HH:MM`). Without a zone the
//! time is UTC (Kafka's tools take the local zone; a CLI that reads the
//! same everywhere is easier to script). Hand-written: a calendar crate
//! for one conversion is not worth the dependency.

/// Ms since the epoch, or a datetime.
pub fn parse_time(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(ms),
        Ok(_) => Err(format!("invalid time '{s}': negative")),
        Err(_) => parse_datetime(s),
    }
}

/// `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]` to ms since the epoch.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid datetime '{s}': expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]");
    let (body, zone_ms) = split_zone(s).ok_or_else(bad)?;
    let (date, time) = match body.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (body, "00:00"),
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d[..] else {
        return Err(bad());
    };
    let (y, mo, da) = (num(y, 4)?, num(mo, 2)?, num(da, 2)?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = hms.split(':').collect();
    let (h, mi, sec) = match t[..] {
        [h, m] => (num(h, 2)?, num(m, 2)?, 0),
        [h, m, s] => (num(h, 2)?, num(m, 2)?, num(s, 2)?),
        _ => return Err(bad()),
    };
    let ms = if frac.is_empty() {
        0
    } else if frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit()) {
        format!("{frac:0<3}").parse::<i64>().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    if !(1..=12).contains(&mo)
        || da < 1
        || da > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, da);
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms - zone_ms)
}

/// Splits off a trailing `Z` or `±HH:MM` zone, returning its offset in ms.
fn split_zone(s: &str) -> Option<(&str, i64)> {
    if let Some(body) = s.strip_suffix('Z') {
        return Some((body, 0));
    }
    // A zone sign comes after the time, so after the 'T' or ' '.
    let Some(time_at) = s.find(['T', ' ']) else {
        return Some((s, 0));
    };
    let Some(sign_at) = s[time_at..].rfind(['+', '-']).map(|i| i + time_at) else {
        return Some((s, 0));
    };
    let sign = if s.as_bytes()[sign_at] == b'-' { -1 } else { 1 };
    let (h, m) = s[sign_at + 1..].split_once(':')?;
    let (h, m) = (num(h, 2).ok()?, num(m, 2).ok()?);
    Some((&s[..sign_at], sign * (h * 60 + m) * 60_000))
}

fn num(s: &str, digits: usize) -> Result<i64, String> {
    if s.len() != digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a {digits}-digit number"));
    }
    s.parse::<i64>().map_err(|e| e.to_string())
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_as_kafka_writes_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01"), Ok(0));
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789Z"),
            Ok(1_709_210_096_789)
        );
        assert_eq!(
            parse_datetime("2024-02-29T13:34:56.789+01:00"),
            Ok(1_709_210_096_789)
        );
        assert_eq!(
            parse_datetime("2024-02-29T07:04:56.7-05:30"),
            Ok(1_709_210_096_700)
        );
        assert_eq!(parse_datetime("2024-02-29 12:34"), Ok(1_709_210_040_000));
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00",
            "yesterday",
            "2024-1-1",
            "2024-01-01T10:00:00.1234",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_ms_or_datetimes() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_time("-5").is_err());
    }
}
