//! Parsing log filters from a query string (shared by the admin API and the CLI).

use crate::store::LogQuery;

/// Parses `tenant=…&meta=team=eng&model=…&status=…&since=24h&until=…&limit=…`.
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
            "status" => {
                q.status = Some(
                    v.parse()
                        .map_err(|_| format!("status: '{v}' is not an HTTP status"))?,
                )
            }
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

/// A time as Unix milliseconds, or relative to now (`90s`, `15m`, `24h`, `7d` ago).
pub fn parse_time(v: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(ms) = v.parse::<i64>() {
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
        assert_eq!(q.status, Some(200));
        assert_eq!(q.since_ms, Some(10_000_000 - 3_600_000));
        assert_eq!(q.limit, Some(5));
        assert!(parse_log_query("bogus=1", 0).is_err());
        assert!(parse_log_query("meta=novalue", 0).is_err());
        assert!(parse_time("5y", 0).is_err());
    }
}
