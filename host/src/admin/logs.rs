//! Request logs for admins: filtered listings, one request in detail (with its bodies
//! where the tenant captures them), traces (requests sharing a trace id), analytics
//! time series, and exports as JSON lines or CSV.

use super::{AdminResult, invalid, parse_log_query};
use crate::control::ControlPlane;
use crate::error::{ApiError, ErrorKind};
use crate::ledger::calendar::rfc3339;
use crate::store::{AnalyticsQuery, LogQuery, LogRecord, UsageGroup};
use crate::time::parse_time;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /logs?tenant=&meta=k=v&team=&user=&key=&model=&provider=&status=4xx&q=&since=&until=&limit=`,
/// newest first.
pub async fn list(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let q = parse_log_query(raw.as_deref().unwrap_or(""), crate::ids::now_ms())
        .map_err(ApiError::invalid)?;
    let rows = state.store.query_logs(q).await.map_err(ApiError::from)?;
    Ok(Json(json!({ "data": rows })).into_response())
}

/// The value of `name` in a raw query string, if present.
fn param(raw: &Option<String>, name: &str) -> Option<String> {
    form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /logs/{request_id}?tenant=`: one request with everything known about it.
pub async fn detail(
    State(state): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let tenant = param(&raw, "tenant");
    let row = state
        .store
        .get_log(id.clone(), tenant)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no request '{id}'")))?;
    let capture = state.captures_bodies(&row.tenant_id);
    let bodies = row.bodies.clone();
    let mut body = serde_json::to_value(&row).unwrap_or_default();
    if let Some(o) = body.as_object_mut() {
        o.insert("body_capture".into(), capture.into());
        o.insert(
            "bodies".into(),
            bodies.map_or(Value::Null, |b| {
                serde_json::to_value(&*b).unwrap_or_default()
            }),
        );
    }
    Ok(Json(body).into_response())
}

/// `GET /traces?tenant=&since=24h&limit=`: recent traces, most recently active first.
pub async fn traces(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let now = crate::ids::now_ms();
    let mut tenant = None;
    let mut since = now - 86_400_000;
    let mut limit = 100u32;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "tenant" => tenant = Some(v.into_owned()),
            "since" => since = parse_time(&v, now).map_err(|e| invalid("since", e))?,
            "limit" => {
                limit = v
                    .parse()
                    .map_err(|_| invalid("limit", format!("'{v}' is not a number")))?
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (tenant, since, limit)"
                )));
            }
        }
    }
    let data = state
        .store
        .traces(tenant, since, limit)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "data": data })).into_response())
}

/// `GET /traces/{trace_id}?tenant=`: the trace's requests, oldest first.
pub async fn trace(
    State(state): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let q = LogQuery {
        tenant: param(&raw, "tenant"),
        trace_id: Some(id.clone()),
        oldest_first: true,
        limit: Some(1000),
        ..LogQuery::default()
    };
    let rows = state.store.query_logs(q).await.map_err(ApiError::from)?;
    if rows.is_empty() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no requests in trace '{id}'"),
        ));
    }
    let cost: u64 = rows.iter().map(|r| r.cost_nano).sum();
    let first = rows.first().map_or(0, |r| r.ts_ms);
    let last = rows
        .iter()
        .map(|r| r.ts_ms + r.latency_ms as i64)
        .max()
        .unwrap_or(first);
    Ok(Json(json!({
        "trace_id": id,
        "requests": rows.len(),
        "cost_usd": cost as f64 / 1e9,
        "first_ms": first,
        "last_ms": last,
        "data": rows,
    }))
    .into_response())
}

/// `GET /analytics?tenant=&since=24h&until=&bucket=auto|<duration>&by=none|team|user|key|model|provider|metadata.<key>&groups=8`.
pub async fn analytics(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let now = crate::ids::now_ms();
    let mut tenant = None;
    let mut by = UsageGroup::None;
    let (mut since, mut until) = (now - 86_400_000, now + 1);
    let mut bucket: Option<i64> = None;
    let mut groups = 8usize;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "tenant" => tenant = Some(v.into_owned()),
            "by" => by = v.parse().map_err(ApiError::invalid)?,
            "since" => since = parse_time(&v, now).map_err(|e| invalid("since", e))?,
            "until" => until = parse_time(&v, now).map_err(|e| invalid("until", e))?,
            "bucket" if v == "auto" => bucket = None,
            "bucket" => {
                // A duration such as 1m, 1h, 1d (parse_time measures it back from 0).
                let ms = parse_time(&v, 0)
                    .map_err(|e| invalid("bucket", e))?
                    .checked_neg()
                    .unwrap_or(0);
                if ms < 1000 {
                    return Err(invalid("bucket", "must be at least 1s"));
                }
                bucket = Some(ms);
            }
            "groups" => {
                groups = v
                    .parse()
                    .map_err(|_| invalid("groups", format!("'{v}' is not a number")))?
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (tenant, by, since, until, bucket, groups)"
                )));
            }
        }
    }
    if since >= until {
        return Err(ApiError::invalid("since must be before until"));
    }
    let span = until
        .checked_sub(since)
        .ok_or_else(|| invalid("since", "the range is too long"))?;
    let bucket_ms = bucket.unwrap_or_else(|| auto_bucket(span));
    if span / bucket_ms > crate::store::ANALYTICS_MAX_BUCKETS {
        return Err(invalid(
            "bucket",
            format!(
                "{} buckets is too many (at most {})",
                span / bucket_ms,
                crate::store::ANALYTICS_MAX_BUCKETS
            ),
        ));
    }
    let data = state
        .store
        .analytics(AnalyticsQuery {
            tenant,
            by,
            since_ms: since,
            until_ms: until,
            bucket_ms,
            max_groups: groups.clamp(1, 50),
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Json(data).into_response())
}

/// About 60 buckets over `span`, at a round width.
fn auto_bucket(span: i64) -> i64 {
    const WIDTHS: &[i64] = &[
        10_000,
        60_000,
        300_000,
        900_000,
        3_600_000,
        3 * 3_600_000,
        6 * 3_600_000,
        86_400_000,
        7 * 86_400_000,
    ];
    WIDTHS
        .iter()
        .copied()
        .find(|w| span / w <= 60)
        .unwrap_or(30 * 86_400_000)
}

/// Rows per store read while exporting.
const EXPORT_PAGE: u32 = 1000;

/// `GET /logs/export?format=jsonl|csv&<the /logs filters>`: every matching row, oldest
/// first, streamed.
pub async fn export(
    State(state): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let mut format = "jsonl".to_string();
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "format" => format = v.into_owned(),
            "limit" => {}
            _ => {
                rest.append_pair(&k, &v);
            }
        }
    }
    let csv = match format.as_str() {
        "jsonl" | "ndjson" => false,
        "csv" => true,
        other => {
            return Err(invalid("format", format!("'{other}' is not jsonl or csv")));
        }
    };
    let mut q = parse_log_query(&rest.finish(), crate::ids::now_ms()).map_err(ApiError::invalid)?;
    q.oldest_first = true;
    q.limit = Some(EXPORT_PAGE);
    // A fixed end: rows arriving while the export runs cannot keep it going forever.
    q.until_ms.get_or_insert(crate::ids::now_ms() + 1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        if csv && tx.send(Ok(Bytes::from(csv_header()))).await.is_err() {
            return;
        }
        loop {
            let page = match store.query_logs(q.clone()).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "log export failed");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            q.after = Some((last.ts_ms, last.request_id.clone()));
            let mut chunk = String::with_capacity(page.len() * 512);
            for r in &page {
                if csv {
                    csv_row(&mut chunk, r);
                } else {
                    chunk.push_str(&serde_json::to_string(r).unwrap_or_default());
                    chunk.push('\n');
                }
            }
            // The client went away: stop reading the store.
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            if page.len() < EXPORT_PAGE as usize {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let (ctype, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"tollgate-logs.{ext}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The CSV export's columns.
const CSV_COLUMNS: &[&str] = &[
    "request_id",
    "time",
    "tenant",
    "key_id",
    "trace_id",
    "endpoint",
    "team",
    "user",
    "metadata",
    "requested_model",
    "served_model",
    "provider",
    "status",
    "stream",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "bundle_version",
    "error",
];

fn csv_header() -> String {
    let mut s = CSV_COLUMNS.join(",");
    s.push_str("\r\n");
    s
}

fn csv_row(out: &mut String, r: &LogRecord) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let cells = [
        r.request_id.clone(),
        rfc3339(r.ts_ms),
        r.tenant_id.clone(),
        opt(&r.key_id),
        r.trace_id.clone(),
        r.endpoint.clone(),
        opt(&r.team),
        opt(&r.user),
        r.metadata.to_json(),
        opt(&r.requested_model),
        opt(&r.served_model),
        opt(&r.provider),
        r.status.to_string(),
        r.stream.to_string(),
        r.latency_ms.to_string(),
        num(r.ttft_ms),
        r.usage.input_tokens.to_string(),
        r.usage.output_tokens.to_string(),
        r.usage.cache_read_tokens.to_string(),
        r.usage.cache_write_tokens.to_string(),
        format!("{:.9}", r.cost_nano as f64 / 1e9),
        num(r.bundle_version.map(u64::from)),
        opt(&r.error),
    ];
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, c);
    }
    out.push_str("\r\n");
}

/// RFC 4180 quoting; a leading formula character is prefixed with `'` so a
/// spreadsheet never runs what a client put in its metadata.
fn csv_cell(out: &mut String, v: &str) {
    let risky = v.starts_with(['=', '+', '-', '@', '\t', '\r']) && v.parse::<f64>().is_err();
    let needs = risky || v.contains([',', '"', '\n', '\r']);
    if !needs {
        out.push_str(v);
        return;
    }
    out.push('"');
    if risky {
        out.push('\'');
    }
    out.push_str(&v.replace('"', "\"\""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let mut s = String::new();
        csv_cell(&mut s, "plain");
        s.push('|');
        csv_cell(&mut s, "a,\"b\"");
        s.push('|');
        csv_cell(&mut s, "=HYPERLINK(1)");
        s.push('|');
        csv_cell(&mut s, "-1.5");
        assert_eq!(s, "plain|\"a,\"\"b\"\"\"|\"'=HYPERLINK(1)\"|-1.5");
    }

    #[test]
    fn auto_buckets_are_round() {
        assert_eq!(auto_bucket(3_600_000), 60_000);
        assert_eq!(auto_bucket(86_400_000), 3_600_000);
        assert_eq!(auto_bucket(7 * 86_400_000), 3 * 3_600_000);
    }
}
