//! Parsing log filters from a query string (shared by the admin API and the CLI).

use crate::store::LogQuery;

/// Parses `tenant=…&meta=team=eng&model=…&status=…&since=24h&until=…&before=…&limit=…`.
/// `meta` (alias `filter`) may repeat; each is `key=value` (or `key:value`).
pub fn parse_log_query(raw: &str, now_ms: i64) -> Result<LogQuery, String> {
    let mut q = LogQuery::default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let v = v.into_owned();
        match &*k {
            "tenant" => q.tenant = Some(v),
            "meta" | "filter" => {
                let (mk, mv) = v
                    .split_once('=')
                    .or_else(|| v.split_once(':'))
                    .ok_or_else(|| format!("{k}: '{v}' must be key=value"))?;
                q.meta.push((mk.to_string(), mv.to_string()));
            }
            "model" => q.model = Some(v),
            "provider" => q.provider = Some(v),
            "q" | "search" => q.search = Some(v),
            "status" => q.status = Some(v.parse()?),
            "key_id" | "key" => q.key_id = Some(v),
            "trace_id" => q.trace_id = Some(v),
            "request_id" => q.request_id = Some(v),
            "team" => q.team = Some(v),
            "user" => q.user = Some(v),
            "since" => {
                q.since_ms = Some(parse_time(&v, now_ms).map_err(|e| format!("since: {e}"))?)
            }
            "until" => {
                q.until_ms = Some(parse_time(&v, now_ms).map_err(|e| format!("until: {e}"))?)
            }
            "before" => {
                // A paging cursor: `<ts_ms>:<request_id>` of the last row already seen.
                let (ts, id) = v
                    .split_once(':')
                    .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id)))
                    .ok_or_else(|| format!("before: '{v}' must be <ts_ms>:<request_id>"))?;
                q.after = Some((ts, id.to_string()));
            }
            "limit" => {
                q.limit = Some(
                    v.parse()
                        .map_err(|_| format!("limit: '{v}' is not a number"))?,
                )
            }
            other => return Err(format!("unknown filter '{other}'")),
        }
    }
    Ok(q)
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
    let days = crate::ledger::calendar::days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) - offset_min * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters() {
        let q = parse_log_query(
            "tenant=acme&meta=team%3Deng&filter=env:prod&status=200&since=1h&limit=5",
            10_000_000,
        )
        .expect("valid");
        assert_eq!(q.tenant.as_deref(), Some("acme"));
        assert_eq!(
            q.meta,
            vec![("team".into(), "eng".into()), ("env".into(), "prod".into())]
        );
        assert_eq!(q.status, Some(crate::store::StatusFilter::Exact(200)));
        let q2 = parse_log_query("status=4xx&provider=a&q=req_1", 0).expect("valid");
        assert_eq!(q2.status, Some(crate::store::StatusFilter::Range(400, 499)));
        assert_eq!(
            (q2.provider.as_deref(), q2.search.as_deref()),
            (Some("a"), Some("req_1"))
        );
        assert!(parse_log_query("status=teapot", 0).is_err());
        let q3 = parse_log_query("before=12:req_a", 0).expect("cursor");
        assert_eq!(q3.after, Some((12, "req_a".to_string())));
        assert!(parse_log_query("before=req_a", 0).is_err());
        assert_eq!(q.since_ms, Some(10_000_000 - 3_600_000));
        assert_eq!(q.limit, Some(5));
        assert!(parse_log_query("bogus=1", 0).is_err());
        assert!(parse_log_query("meta=novalue", 0).is_err());
        assert!(parse_time("5y", 0).is_err());
        assert_eq!(parse_time("1970-01-02T00:00:01.5Z", 0), Ok(86_401_500));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", 0), Ok(0));
        assert!(parse_time("1970-13-01T00:00:00Z", 0).is_err());
        // Multi-byte characters where the offset goes are refused, not a panic.
        assert!(parse_time("1970-01-01T00:00:00€123", 0).is_err());
        assert!(parse_time("1970-01-01T00:00:00+0é00", 0).is_err());
        assert!(parse_time("1970-01-01T00:00:00.5é", 0).is_err());
    }
}
