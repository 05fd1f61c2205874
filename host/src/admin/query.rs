//! Parsing log filters from a query string (shared by the admin API and the CLI).

use crate::store::LogQuery;
use crate::time::parse_time;

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
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("limit: '{v}' is not a number"))?;
                // A listing pages at most this many rows per call.
                q.limit = Some(n.clamp(1, 1000));
            }
            other => return Err(format!("unknown filter '{other}'")),
        }
    }
    Ok(q)
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
