//! Request logs: one row per request (written by [`super::log_writer`]), and the
//! queries over them: filtered listings, one request in detail, traces, replay windows
//! and exports.

use super::{Store, StoreError};
use crate::metadata::Metadata;
use crate::usage::Usage;
use bytes::Bytes;
use rusqlite::{
    Connection, OptionalExtension, Row, params, params_from_iter, types::Value as SqlValue,
};
use serde::{Deserialize, Serialize};

/// What one plugin decided for one request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginDecision {
    /// Plugin label (first-party name or file stem).
    pub plugin: String,
    /// `allow`, `deny`, `error` (failed the request) or `skipped` (failed open).
    pub outcome: String,
    /// Deny message or failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Labels the plugin attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<(String, String)>,
    /// Time spent in the plugin, instantiation included.
    pub micros: u64,
    /// When the call started, Unix microseconds (0 in rows older than the field).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_us: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One try at one upstream target while serving a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttemptRecord {
    /// Provider id tried.
    pub provider: String,
    /// Model asked of it.
    pub model: String,
    /// Position of the target in the route plan (0-based).
    pub target: u32,
    /// Upstream HTTP status; `None` when no response arrived (timeout, refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time until the upstream answered or failed.
    pub latency_ms: u64,
    /// Why the attempt did not serve the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the attempt was sent, Unix microseconds (0 in rows older than the field).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_us: i64,
}

/// A request's bodies, kept when its tenant captures them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CapturedBodies {
    /// The request body as the client sent it.
    #[serde(serialize_with = "as_text")]
    pub request: Bytes,
    /// The response as the client received it (the SSE text for streams).
    #[serde(serialize_with = "as_text")]
    pub response: Bytes,
    /// The request body was cut at the capture limit.
    pub request_truncated: bool,
    /// The response was cut at the capture limit.
    pub response_truncated: bool,
}

fn as_text<S: serde::Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

/// One request, as logged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogRecord {
    /// `req_` + 24 random characters, as sent in the `request-id` response header.
    pub request_id: String,
    /// When the request arrived, Unix ms.
    pub ts_ms: i64,
    /// The tenant of the key that made the request.
    pub tenant_id: String,
    /// The API key's id; `None` when no key was authenticated.
    pub key_id: Option<String>,
    /// The client's `x-portkey-trace-id`, else the request id.
    pub trace_id: String,
    /// `messages`, `count_tokens`, `chat_completions` or `models`.
    pub endpoint: String,
    /// The key's team, else the request's `team` metadata.
    pub team: Option<String>,
    /// The key's user, else the request's `user` metadata.
    pub user: Option<String>,
    /// The request's `x-portkey-metadata` pairs.
    pub metadata: Metadata,
    /// The model the client asked for; `None` when no body was parsed (refused early,
    /// or `models`).
    pub requested_model: Option<String>,
    /// The model of the target that served (or was serving when the client left).
    pub served_model: Option<String>,
    /// The provider that served (or was serving when the client left); `None` if none.
    pub provider: Option<String>,
    /// HTTP status sent to the client (499 when the client hung up first).
    pub status: u16,
    /// The client asked for a stream (never for `count_tokens`).
    pub stream: bool,
    /// From arrival until the response ended (for a stream, its last event).
    pub latency_ms: u64,
    /// From arrival to the first streamed content; `None` unless a stream produced some.
    pub ttft_ms: Option<u64>,
    /// Tokens the provider reported, or estimates where it could not (a cut stream, a
    /// client gone mid-request).
    pub usage: Usage,
    /// Every plugin decision, in the order the plugins ran.
    pub decisions: Vec<PluginDecision>,
    /// Every upstream attempt, in order (the last one served, unless all failed).
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    /// Why the request failed, as told to the client; `None` on success.
    pub error: Option<String>,
    /// Total cost in nano-dollars (1e-9 USD).
    #[serde(default)]
    pub cost_nano: u64,
    /// The cost's breakdown (`input_usd`, `output_usd`, cache parts, `total_usd`,
    /// `priced_as`); absent when no upstream served the request.
    #[serde(default)]
    pub cost: Option<serde_json::Value>,
    /// The tenant bundle version that decided the request (`None`: the config file's chain).
    #[serde(default)]
    pub bundle_version: Option<u32>,
    /// The platform bundle version that decided it, if one is active.
    #[serde(default)]
    pub platform_version: Option<u32>,
    /// The request's `max_tokens` (or `max_completion_tokens`), if it set one.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Size of the request body.
    #[serde(default)]
    pub body_bytes: u32,
    /// Messages in the request.
    #[serde(default)]
    pub message_count: u32,
    /// Every admission phase passed (the request was sent on, or failed later).
    #[serde(default)]
    pub admitted: bool,
    /// The usage to add to the stored ledger (not part of the row).
    #[serde(skip)]
    pub ledger: Option<crate::ledger::LedgerEntry>,
    /// Captured bodies (stored beside the row, shown by the log detail).
    #[serde(skip)]
    pub bodies: Option<Box<CapturedBodies>>,
    /// The caller's W3C `traceparent`, continued by exported spans.
    #[serde(skip)]
    pub traceparent: Option<String>,
    /// When the request arrived and ended, Unix microseconds (for exported spans; the
    /// stored row keeps milliseconds).
    #[serde(skip)]
    pub span_us: (i64, i64),
}

/// Filters for reading logs; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Only this tenant's rows.
    pub tenant: Option<String>,
    /// `key=value` pairs matched against metadata (all must match).
    pub meta: Vec<(String, String)>,
    /// Matches the requested or the served model.
    pub model: Option<String>,
    /// The provider that served (or last tried) the request.
    pub provider: Option<String>,
    /// The status sent to the client: one, or a range such as `4xx`.
    pub status: Option<StatusFilter>,
    /// Only requests made with this API key.
    pub key_id: Option<String>,
    /// Only requests of this trace.
    pub trace_id: Option<String>,
    /// Only this request.
    pub request_id: Option<String>,
    /// Only this team's requests.
    pub team: Option<String>,
    /// Only this user's requests.
    pub user: Option<String>,
    /// Free text found in the request id or the trace id.
    pub search: Option<String>,
    /// Inclusive lower bound, Unix ms.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, Unix ms.
    pub until_ms: Option<i64>,
    /// At most this many rows (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Oldest first (exports) instead of newest first.
    pub oldest_first: bool,
    /// Rows strictly after this (ts_ms, request_id) in the chosen order (paging).
    pub after: Option<(i64, String)>,
}

/// Which statuses a log query keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// One status, e.g. `429`.
    Exact(u16),
    /// Inclusive range, e.g. `4xx` is 400..=499 and `error` is 400..=599.
    Range(u16, u16),
}

impl std::str::FromStr for StatusFilter {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        let range = |lo| Ok(Self::Range(lo, lo + 99));
        match v {
            "2xx" | "ok" => range(200),
            "3xx" => range(300),
            "4xx" => range(400),
            "5xx" => range(500),
            "error" | "errors" => Ok(Self::Range(400, 599)),
            n => n
                .parse()
                .map(Self::Exact)
                .map_err(|_| format!("status: '{v}' is not an HTTP status, 2xx..5xx or error")),
        }
    }
}

/// The columns [`from_row`] reads, in its order.
const SELECT: &str =
    "SELECT l.request_id, l.ts_ms, l.tenant_id, l.key_id, l.trace_id, l.endpoint, l.team, l.user,
        l.metadata, l.requested_model, l.served_model, l.provider, l.status, l.stream, l.latency_ms,
        l.ttft_ms, l.input_tokens, l.output_tokens, l.cache_read_tokens, l.cache_write_tokens,
        l.decisions, l.error, l.attempts, l.cost_nano, l.cost, l.bundle_version, l.platform_version,
        l.max_tokens, l.body_bytes, l.message_count, l.admitted
    FROM request_logs l WHERE 1=1";

fn from_row(r: &Row<'_>) -> rusqlite::Result<LogRecord> {
    let metadata: String = r.get(8)?;
    let decisions: String = r.get(20)?;
    let metadata: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&metadata).unwrap_or_default();
    Ok(LogRecord {
        request_id: r.get(0)?,
        ts_ms: r.get(1)?,
        tenant_id: r.get(2)?,
        key_id: r.get(3)?,
        trace_id: r.get(4)?,
        endpoint: r.get(5)?,
        team: r.get(6)?,
        user: r.get(7)?,
        metadata: Metadata(
            metadata
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
        ),
        requested_model: r.get(9)?,
        served_model: r.get(10)?,
        provider: r.get(11)?,
        status: r.get(12)?,
        stream: r.get(13)?,
        latency_ms: r.get::<_, i64>(14)? as u64,
        ttft_ms: r.get::<_, Option<i64>>(15)?.map(|t| t as u64),
        usage: Usage {
            input_tokens: r.get::<_, i64>(16)? as u64,
            output_tokens: r.get::<_, i64>(17)? as u64,
            cache_read_tokens: r.get::<_, i64>(18)? as u64,
            cache_write_tokens: r.get::<_, i64>(19)? as u64,
        },
        decisions: serde_json::from_str(&decisions).unwrap_or_default(),
        error: r.get(21)?,
        attempts: serde_json::from_str(&r.get::<_, String>(22)?).unwrap_or_default(),
        cost_nano: r.get::<_, i64>(23)?.max(0) as u64,
        cost: r
            .get::<_, Option<String>>(24)?
            .and_then(|c| serde_json::from_str(&c).ok()),
        bundle_version: r.get(25)?,
        platform_version: r.get(26)?,
        max_tokens: r.get(27)?,
        body_bytes: r.get(28)?,
        message_count: r.get(29)?,
        admitted: r.get(30)?,
        ledger: None,
        bodies: None,
        traceparent: None,
        span_us: (0, 0),
    })
}

impl Store {
    /// Log rows matching `q`, newest first.
    pub async fn query_logs(&self, q: LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        self.with_conn(move |c| query_logs(c, &q)).await
    }

    /// A tenant's model requests in `[since_ms, until_ms)`, oldest first, at most
    /// `limit` (what a bundle replay runs over).
    pub async fn tenant_requests(
        &self,
        tenant: String,
        since_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.with_conn(move |c| {
            let sql = format!(
                "{SELECT} AND l.tenant_id = ?1 AND l.ts_ms >= ?2 AND l.ts_ms < ?3
                   AND l.endpoint IN ('messages', 'chat_completions', 'count_tokens')
                 ORDER BY l.ts_ms, l.request_id LIMIT ?4"
            );
            let mut st = c.prepare(&sql)?;
            let mut rows = st
                .query_map(params![tenant, since_ms, until_ms, limit], from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            // The request bodies a capturing tenant kept: a replay gives them to plugins.
            let mut body = c.prepare_cached(
                "SELECT request, request_truncated FROM request_bodies WHERE request_id = ?1",
            )?;
            for row in &mut rows {
                let kept = body
                    .query_row(params![row.request_id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
                    })
                    .optional()?;
                if let Some((request, false)) = kept {
                    row.bodies = Some(Box::new(CapturedBodies {
                        request: Bytes::from(request),
                        ..CapturedBodies::default()
                    }));
                }
            }
            Ok(rows)
        })
        .await
    }
}

fn query_logs(c: &mut Connection, q: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
    let mut sql = String::from(SELECT);
    let mut args: Vec<SqlValue> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, v: SqlValue| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = &q.tenant {
        push(&mut sql, " AND l.tenant_id = ?", t.clone().into());
    }
    for (k, v) in &q.meta {
        push(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM request_log_meta m WHERE m.request_id = l.request_id AND m.key = ?",
            k.clone().into(),
        );
        push(&mut sql, " AND m.value = ?)", v.clone().into());
    }
    if let Some(m) = &q.model {
        push(&mut sql, " AND (l.requested_model = ?", m.clone().into());
        push(&mut sql, " OR l.served_model = ?)", m.clone().into());
    }
    match q.status {
        Some(StatusFilter::Exact(s)) => push(&mut sql, " AND l.status = ?", i64::from(s).into()),
        Some(StatusFilter::Range(lo, hi)) => {
            push(&mut sql, " AND l.status >= ?", i64::from(lo).into());
            push(&mut sql, " AND l.status <= ?", i64::from(hi).into());
        }
        None => {}
    }
    for (col, v) in [
        ("key_id", &q.key_id),
        ("trace_id", &q.trace_id),
        ("request_id", &q.request_id),
        ("team", &q.team),
        ("user", &q.user),
        ("provider", &q.provider),
    ] {
        if let Some(v) = v {
            push(&mut sql, &format!(" AND l.{col} = ?"), v.clone().into());
        }
    }
    if let Some(text) = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        push(
            &mut sql,
            " AND (instr(l.request_id, ?)",
            text.to_string().into(),
        );
        push(
            &mut sql,
            " OR instr(l.trace_id, ?))",
            text.to_string().into(),
        );
    }
    if let Some(s) = q.since_ms {
        push(&mut sql, " AND l.ts_ms >= ?", s.into());
    }
    if let Some(u) = q.until_ms {
        push(&mut sql, " AND l.ts_ms < ?", u.into());
    }
    let (cmp, order) = if q.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some((ts, id)) = &q.after {
        push(&mut sql, &format!(" AND (l.ts_ms {cmp} ?"), (*ts).into());
        push(&mut sql, " OR (l.ts_ms = ?", (*ts).into());
        push(
            &mut sql,
            &format!(" AND l.request_id {cmp} ?))"),
            id.clone().into(),
        );
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    sql.push_str(&format!(
        " ORDER BY l.ts_ms {order}, l.request_id {order} LIMIT {limit}"
    ));
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// [`query_logs`] on a connection, for the writer's tests.
#[cfg(test)]
pub(super) fn query_logs_for_tests(
    c: &mut Connection,
    q: &LogQuery,
) -> Result<Vec<LogRecord>, StoreError> {
    query_logs(c, q)
}

/// One trace: the requests sharing a trace id.
#[derive(Clone, Debug, Serialize)]
pub struct TraceSummary {
    /// The trace id the requests share (client-chosen, or a lone request's id).
    pub trace_id: String,
    /// The tenant the requests belong to; traces never span tenants.
    pub tenant_id: String,
    /// Requests in the trace.
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    /// When the first request of the trace arrived, Unix ms.
    pub first_ms: i64,
    /// When the last request of the trace ended.
    pub last_ms: i64,
    /// Summed cost of its requests, in USD.
    pub cost_usd: f64,
    /// Input, output and cache tokens of every request.
    pub tokens: u64,
    /// Models served (or asked for) in the trace.
    pub models: Vec<String>,
}

impl Store {
    /// One logged request with its captured bodies, within `tenant` when given.
    pub async fn get_log(
        &self,
        request_id: String,
        tenant: Option<String>,
    ) -> Result<Option<LogRecord>, StoreError> {
        self.with_conn(move |c| {
            let q = LogQuery {
                request_id: Some(request_id.clone()),
                tenant,
                limit: Some(1),
                ..LogQuery::default()
            };
            let Some(mut row) = query_logs(c, &q)?.into_iter().next() else {
                return Ok(None);
            };
            row.bodies = c
                .query_row(
                    "SELECT request, response, request_truncated, response_truncated
                     FROM request_bodies WHERE request_id = ?1",
                    params![request_id],
                    |r| {
                        Ok(CapturedBodies {
                            request: Bytes::from(r.get::<_, String>(0)?),
                            response: Bytes::from(r.get::<_, String>(1)?),
                            request_truncated: r.get(2)?,
                            response_truncated: r.get(3)?,
                        })
                    },
                )
                .optional()?
                .map(Box::new);
            Ok(Some(row))
        })
        .await
    }

    /// Recent traces (a tenant's requests grouped by trace id: clients choose trace ids,
    /// so two tenants' sessions never merge), most recently active first.
    pub async fn traces(
        &self,
        tenant: Option<String>,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<TraceSummary>, StoreError> {
        self.with_conn(move |c| {
            let mut st = c.prepare(
                "SELECT trace_id, tenant_id, COUNT(*), SUM(status >= 400), MIN(ts_ms),
                        MAX(ts_ms + latency_ms), SUM(cost_nano),
                        SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens),
                        GROUP_CONCAT(DISTINCT COALESCE(served_model, requested_model))
                 FROM request_logs
                 WHERE ts_ms >= ?1 AND (?2 IS NULL OR tenant_id = ?2)
                 GROUP BY tenant_id, trace_id
                 ORDER BY MAX(ts_ms) DESC
                 LIMIT ?3",
            )?;
            let rows = st.query_map(params![since_ms, tenant, limit.clamp(1, 1000)], |r| {
                let n = |i: usize| -> rusqlite::Result<u64> {
                    Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
                };
                let models: Option<String> = r.get(8)?;
                Ok(TraceSummary {
                    trace_id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    requests: n(2)?,
                    errors: n(3)?,
                    first_ms: r.get(4)?,
                    last_ms: r.get(5)?,
                    cost_usd: n(6)? as f64 / 1e9,
                    tokens: n(7)?,
                    models: models
                        .map(|m| m.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tenant: &str, team: &str, status: u16) -> LogRecord {
        LogRecord {
            request_id: id.into(),
            ts_ms: crate::ids::now_ms(),
            tenant_id: tenant.into(),
            key_id: Some("key_1".into()),
            trace_id: format!("trace-{id}"),
            endpoint: "messages".into(),
            team: Some(team.into()),
            user: None,
            metadata: Metadata(vec![
                ("env".into(), "prod".into()),
                ("team".into(), team.into()),
            ]),
            requested_model: Some("claude-x".into()),
            served_model: Some("claude-x".into()),
            provider: Some("mock".into()),
            status,
            stream: false,
            latency_ms: 5,
            ttft_ms: None,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 3,
                ..Default::default()
            },
            decisions: vec![],
            attempts: vec![],
            error: None,
            cost_nano: 0,
            cost: None,
            ..LogRecord::default()
        }
    }

    #[test]
    fn batched_rows_survive_shutdown_and_filter_by_metadata() {
        let dir =
            std::env::temp_dir().join(format!("tollgate-logs-{}", crate::ids::random_token(8)));
        let store = Store::open(&dir).expect("open");
        let writer = store
            .log_writer(crate::store::WriterOptions {
                batch_size: 1000,
                flush: std::time::Duration::from_secs(60),
                ledger: std::sync::Arc::new(crate::ledger::Ledger::new()),
                retention: crate::store::Retention::default(),
                observers: Vec::new(),
                max_queued: 1_000,
                journal_dir: None,
                counters: Default::default(),
            })
            .expect("writer");
        let tx = writer.sender();
        tx.send(record("r1", "acme", "eng", 200));
        tx.send(record("r2", "acme", "sales", 200));
        tx.send(record("r3", "other", "eng", 500));
        // A long flush interval: only shutdown's drain can have written these.
        writer.shutdown();
        let rows = store
            .with_conn_blocking(|c| {
                query_logs(
                    c,
                    &LogQuery {
                        tenant: Some("acme".into()),
                        meta: vec![("team".into(), "eng".into())],
                        ..Default::default()
                    },
                )
            })
            .expect("query");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].request_id, "r1");
        assert_eq!(rows[0].usage.input_tokens, 10);
        let all = store
            .with_conn_blocking(|c| query_logs(c, &LogQuery::default()))
            .expect("all");
        assert_eq!(all.len(), 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
