//! Time as the gateway reads and writes it: Unix milliseconds, UTC civil dates (Howard
//! Hinnant's day-count arithmetic, exact over ±300 million years and cheap enough for
//! the ledger's hot path), RFC 3339 text, and the relative times admins type (`15m`,
//! `7d`). HTTP dates are `httpdate`'s.

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // m is 1..=12 and d is 1..=31 by construction.
    (y, m as u32, d as u32)
}

/// Days since 1970-01-01 of a civil date (inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
pub fn rfc3339(ms: i64) -> String {
    let (y, mo, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A time as Unix milliseconds, RFC 3339 (`2026-11-25T10:00:00Z`), or relative to now
/// (`90s`, `15m`, `24h`, `7d` ago).
pub fn parse_time(v: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ms) = parse_rfc3339(v) {
        return Ok(ms);
    }
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{v}' is neither Unix ms nor a duration like 15m"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("'{v}': unit must be s, m, h or d")),
    };
    Ok(now_ms - n.saturating_mul(unit_ms))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` as Unix milliseconds.
fn parse_rfc3339(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { v.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &v[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        ms = format!("{f:0<3}").get(..3)?.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest.as_bytes() {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let m =
                rest.get(1..3)?.parse::<i64>().ok()? * 60 + rest.get(4..6)?.parse::<i64>().ok()?;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) - offset_min * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_absolute_and_rfc3339_times() {
        let now = 1_795_651_200_000; // 2026-11-26T00:00:00Z
        assert_eq!(parse_time("1764000000000", now), Ok(1_764_000_000_000));
        assert_eq!(parse_time("15m", now), Ok(now - 900_000));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * DAY_MS));
        assert_eq!(parse_time("2026-11-26T00:00:00Z", now), Ok(now));
        assert_eq!(
            parse_time("2026-11-26T01:00:00.5+01:00", now),
            Ok(now + 500)
        );
        assert_eq!(rfc3339(now), "2026-11-26T00:00:00Z");
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5w", now).unwrap_err().contains("unit"));
        // Multi-byte input never panics.
        assert!(parse_time("2026-11-26T00:00:00é", now).is_err());
    }
}
