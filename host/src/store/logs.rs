//! Request logs: one row per request (written by [`super::log_writer`]), and the
//! queries over them: filtered listings, one request in detail, traces, replay windows
//! and exports.

use super::sql::{Cols, Dialect, Sql};
use super::{Store, StoreError};
use crate::metadata::Metadata;
use crate::usage::Usage;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};

/// What one plugin decided for one request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
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
    /// The guardrail hook that decided (`inspect-request`, `inspect-response`); none
    /// for the policy, route and budget hooks, whose outcome names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// What a guardrail found: rule, kind and count, never the matched text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// One kind of thing a guardrail found in a request or an answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    /// The rule that matched, e.g. `email`.
    pub rule: String,
    /// What kind of thing it is, e.g. `pii` or `credential`.
    pub kind: String,
    /// How many times it was found.
    pub count: u32,
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
    /// `priced_as`, and `usage_estimated` when the gateway counted the tokens itself);
    /// absent when no upstream served the request. A breakdown that cannot be read
    /// (from a journal record of some other release) is dropped, not the whole row:
    /// the row's usage and ledger entry are what must survive.
    #[serde(default, deserialize_with = "lenient_cost")]
    pub cost: Option<crate::pricing::CostBreakdown>,
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

/// Reads a row's `cost`, or `None` when it has another shape.
fn lenient_cost<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::pricing::CostBreakdown>, D::Error> {
    let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
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
    /// At most this many rows (default 100; the admin API allows 1,000 a page, a
    /// replay up to 50,000).
    pub limit: Option<u32>,
    /// Oldest first (exports) instead of newest first.
    pub oldest_first: bool,
    /// Rows strictly after this (ts_ms, request_id) in the chosen order (paging).
    pub after: Option<(i64, String)>,
    /// Only these endpoints (empty: every endpoint).
    pub endpoints: &'static [&'static str],
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

/// A row of [`Dialect::log_columns`] as a record (without its bodies).
pub(crate) fn log_from_row(r: &impl Cols) -> Result<LogRecord, StoreError> {
    let metadata: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&r.text_req(8)?).unwrap_or_default();
    let small = |i: usize| -> Result<Option<u32>, StoreError> {
        Ok(r.int(i)?
            .map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)))
    };
    Ok(LogRecord {
        request_id: r.text_req(0)?,
        ts_ms: r.int_req(1)?,
        tenant_id: r.text_req(2)?,
        key_id: r.text(3)?,
        trace_id: r.text_req(4)?,
        endpoint: r.text_req(5)?,
        team: r.text(6)?,
        user: r.text(7)?,
        metadata: Metadata(
            metadata
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
        ),
        requested_model: r.text(9)?,
        served_model: r.text(10)?,
        provider: r.text(11)?,
        status: u16::try_from(r.int_req(12)?).unwrap_or(0),
        stream: r.flag(13)?,
        latency_ms: r.count(14)?,
        ttft_ms: r.int(15)?.map(|t| t.max(0) as u64),
        usage: Usage {
            input_tokens: r.count(16)?,
            output_tokens: r.count(17)?,
            cache_read_tokens: r.count(18)?,
            cache_write_tokens: r.count(19)?,
        },
        decisions: serde_json::from_str(&r.text_req(20)?).unwrap_or_default(),
        error: r.text(21)?,
        attempts: serde_json::from_str(&r.text_req(22)?).unwrap_or_default(),
        cost_nano: r.count(23)?,
        cost: r.text(24)?.and_then(|c| serde_json::from_str(&c).ok()),
        bundle_version: small(25)?,
        platform_version: small(26)?,
        max_tokens: small(27)?,
        body_bytes: small(28)?.unwrap_or(0),
        message_count: small(29)?.unwrap_or(0),
        admitted: r.flag(30)?,
        ledger: None,
        bodies: None,
        traceparent: None,
        span_us: (0, 0),
    })
}

impl Store {
    /// Log rows matching `q`, newest first.
    pub async fn query_logs(&self, q: LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.logs(log_query(Dialect::Postgres, &q)).await;
        }
        self.with_conn(move |c| query_logs(c, &q)).await
    }

    /// A tenant's model requests in `[since_ms, until_ms)`, oldest first, at most
    /// `limit` (what a bundle replay runs over), with the request bodies a capturing
    /// tenant kept: a replay gives them to plugins.
    pub async fn tenant_requests(
        &self,
        tenant: String,
        since_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let q = LogQuery {
            tenant: Some(tenant),
            since_ms: Some(since_ms),
            until_ms: Some(until_ms),
            limit: Some(limit),
            oldest_first: true,
            endpoints: MODEL_ENDPOINTS,
            ..LogQuery::default()
        };
        let mut rows = self.query_logs(q).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect();
        let mut bodies = self.bodies(ids).await?;
        for row in &mut rows {
            if let Some(b) = bodies.remove(&row.request_id)
                && !b.request_truncated
            {
                row.bodies = Some(Box::new(CapturedBodies {
                    request: b.request,
                    ..CapturedBodies::default()
                }));
            }
        }
        Ok(rows)
    }

    /// The captured bodies of these requests, by request id.
    async fn bodies(
        &self,
        ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, CapturedBodies>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        if let Some(pg) = &self.pg {
            return pg.bodies(&ids).await;
        }
        self.with_conn(move |c| {
            let mut st = c.prepare_cached(
                "SELECT request_id, request, response, request_truncated, response_truncated
                 FROM request_bodies WHERE request_id = ?1",
            )?;
            let mut out = std::collections::HashMap::new();
            for id in &ids {
                let found = st
                    .query_row(params![id], |r| Ok(bodies_from_row(r)))
                    .optional()?;
                if let Some(found) = found {
                    let (id, b) = found?;
                    out.insert(id, b);
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Most rows one log query returns (a replay's window).
const MAX_ROWS: u32 = 50_000;

/// The endpoints that are model requests (what a replay runs over).
const MODEL_ENDPOINTS: &[&str] = &["messages", "chat_completions", "count_tokens"];

/// The columns a body row is selected with, as an id and the bodies.
pub(crate) const BODY_COLUMNS: &str =
    "request_id, request, response, request_truncated, response_truncated";

/// A row of [`BODY_COLUMNS`].
pub(crate) fn bodies_from_row(r: &impl Cols) -> Result<(String, CapturedBodies), StoreError> {
    Ok((
        r.text_req(0)?,
        CapturedBodies {
            request: Bytes::from(r.text_req(1)?),
            response: Bytes::from(r.text_req(2)?),
            request_truncated: r.flag(3)?,
            response_truncated: r.flag(4)?,
        },
    ))
}

/// The statement of a log listing, in `d`'s dialect.
pub(crate) fn log_query(d: Dialect, q: &LogQuery) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "SELECT {} FROM request_logs l WHERE 1=1",
        d.log_columns()
    ));
    if let Some(t) = &q.tenant {
        let p = sql.bind(t.as_str());
        sql.push(&format!(" AND l.tenant_id = {p}"));
    }
    for (k, v) in &q.meta {
        let (k, v) = (sql.bind(k.as_str()), sql.bind(v.as_str()));
        sql.push(&format!(" AND {}", d.meta_equals(&k, &v)));
    }
    if let Some(m) = &q.model {
        let p = sql.bind(m.as_str());
        sql.push(&format!(
            " AND (l.requested_model = {p} OR l.served_model = {p})"
        ));
    }
    match q.status {
        Some(StatusFilter::Exact(s)) => {
            let p = sql.bind(i64::from(s));
            sql.push(&format!(" AND l.status = {p}"));
        }
        Some(StatusFilter::Range(lo, hi)) => {
            let (lo, hi) = (sql.bind(i64::from(lo)), sql.bind(i64::from(hi)));
            sql.push(&format!(" AND l.status >= {lo} AND l.status <= {hi}"));
        }
        None => {}
    }
    for (col, v) in [
        ("key_id", &q.key_id),
        ("trace_id", &q.trace_id),
        ("request_id", &q.request_id),
        ("team", &q.team),
        ("\"user\"", &q.user),
        ("provider", &q.provider),
    ] {
        if let Some(v) = v {
            let p = sql.bind(v.as_str());
            sql.push(&format!(" AND l.{col} = {p}"));
        }
    }
    if let Some(text) = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let p = sql.bind(text);
        sql.push(&format!(
            " AND ({} OR {})",
            d.contains("l.request_id", &p),
            d.contains("l.trace_id", &p)
        ));
    }
    if !q.endpoints.is_empty() {
        let list: Vec<String> = q.endpoints.iter().map(|e| sql.bind(*e)).collect();
        sql.push(&format!(" AND l.endpoint IN ({})", list.join(", ")));
    }
    if let Some(s) = q.since_ms {
        let p = sql.bind(s);
        sql.push(&format!(" AND l.ts_ms >= {p}"));
    }
    if let Some(u) = q.until_ms {
        let p = sql.bind(u);
        sql.push(&format!(" AND l.ts_ms < {p}"));
    }
    let (cmp, order) = if q.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some((ts, id)) = &q.after {
        let (ts, id) = (sql.bind(*ts), sql.bind(id.as_str()));
        sql.push(&format!(
            " AND (l.ts_ms {cmp} {ts} OR (l.ts_ms = {ts} AND l.request_id {cmp} {id}))"
        ));
    }
    // The admin API caps a page at 1,000 rows; internal readers (a replay) go further.
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_ROWS);
    sql.push(&format!(
        " ORDER BY l.ts_ms {order}, l.request_id {order} LIMIT {limit}"
    ));
    sql
}

/// Runs a SQLite statement and reads each row with `read`.
pub(crate) fn sqlite_rows<T>(
    c: &Connection,
    sql: &Sql,
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut st = c.prepare(&sql.text)?;
    let mut rows = st.query(params_from_iter(&sql.args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(read(r)?);
    }
    Ok(out)
}

fn query_logs(c: &mut Connection, q: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
    sqlite_rows(c, &log_query(Dialect::Sqlite, q), |r| log_from_row(r))
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
        let q = LogQuery {
            request_id: Some(request_id.clone()),
            tenant,
            limit: Some(1),
            ..LogQuery::default()
        };
        let Some(mut row) = self.query_logs(q).await?.into_iter().next() else {
            return Ok(None);
        };
        row.bodies = self
            .bodies(vec![request_id])
            .await?
            .into_values()
            .next()
            .map(Box::new);
        Ok(Some(row))
    }

    /// Recent traces (a tenant's requests grouped by trace id: clients choose trace ids,
    /// so two tenants' sessions never merge), most recently active first.
    pub async fn traces(
        &self,
        tenant: Option<String>,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<TraceSummary>, StoreError> {
        if let Some(pg) = &self.pg {
            let sql = traces_sql(Dialect::Postgres, tenant.as_deref(), since_ms, limit);
            return pg.rows(&sql, trace_from_row).await;
        }
        self.with_conn(move |c| {
            let sql = traces_sql(Dialect::Sqlite, tenant.as_deref(), since_ms, limit);
            sqlite_rows(c, &sql, |r| trace_from_row(r))
        })
        .await
    }
}

fn traces_sql(d: Dialect, tenant: Option<&str>, since_ms: i64, limit: u32) -> Sql {
    let mut sql = Sql::new(d);
    let since = sql.bind(since_ms);
    sql.push(&format!(
        "SELECT trace_id, tenant_id, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
                MIN(ts_ms), MAX(ts_ms + latency_ms), CAST(SUM(cost_nano) AS BIGINT),
                CAST(SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens) AS BIGINT),
                {}
         FROM request_logs WHERE ts_ms >= {since}",
        d.distinct_list("COALESCE(served_model, requested_model)")
    ));
    if let Some(t) = tenant {
        let p = sql.bind(t);
        sql.push(&format!(" AND tenant_id = {p}"));
    }
    sql.push(&format!(
        " GROUP BY tenant_id, trace_id ORDER BY MAX(ts_ms) DESC, tenant_id, trace_id LIMIT {}",
        limit.clamp(1, 1000)
    ));
    sql
}

fn trace_from_row(r: &impl Cols) -> Result<TraceSummary, StoreError> {
    Ok(TraceSummary {
        trace_id: r.text_req(0)?,
        tenant_id: r.text_req(1)?,
        requests: r.count(2)?,
        errors: r.count(3)?,
        first_ms: r.int_req(4)?,
        last_ms: r.int_req(5)?,
        cost_usd: r.count(6)? as f64 / 1e9,
        tokens: r.count(7)?,
        models: r
            .text(8)?
            .map(|m| m.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    })
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
            metadata: Metadata::from(vec![
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
            .log_writer(crate::store::WriterOptions::for_tests(
                1000,
                std::time::Duration::from_secs(60),
            ))
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
