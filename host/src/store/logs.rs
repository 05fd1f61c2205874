//! Request logs: one row per request, written in batches off the request path.

use super::{Store, StoreError};
use crate::ledger::Ledger;
use crate::metadata::Metadata;
use crate::usage::Usage;
use rusqlite::{Connection, Row, params, params_from_iter, types::Value as SqlValue};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
}

/// One request, as logged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogRecord {
    pub request_id: String,
    pub ts_ms: i64,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub trace_id: String,
    pub endpoint: String,
    pub team: Option<String>,
    pub user: Option<String>,
    pub metadata: Metadata,
    pub requested_model: Option<String>,
    pub served_model: Option<String>,
    pub provider: Option<String>,
    pub status: u16,
    pub stream: bool,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub usage: Usage,
    pub decisions: Vec<PluginDecision>,
    /// Every upstream attempt, in order (the last one served, unless all failed).
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
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
    /// The usage to add to the stored ledger (not part of the row).
    #[serde(skip)]
    pub ledger: Option<crate::ledger::LedgerEntry>,
}

enum Msg {
    Record(Box<LogRecord>),
    Flush(mpsc::Sender<()>),
    Shutdown,
}

/// Sends finished requests to the writer thread. Cloning is cheap.
#[derive(Clone)]
pub struct LogSender(mpsc::Sender<Msg>);

impl LogSender {
    /// Queues a row; never blocks. A row queued after shutdown is reported and dropped.
    pub fn send(&self, record: LogRecord) {
        if self.0.send(Msg::Record(Box::new(record))).is_err() {
            tracing::error!("request log writer is gone; a log row was dropped");
        }
    }

    /// Waits until every row queued before this call is on disk.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        if self.0.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// The batched writer thread; [`LogWriter::shutdown`] writes what is queued and stops.
pub struct LogWriter {
    tx: LogSender,
    handle: Option<JoinHandle<()>>,
}

impl LogWriter {
    pub(super) fn start(
        conn: Connection,
        batch_size: usize,
        flush: Duration,
        ledger: Arc<Ledger>,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_loop(conn, rx, batch_size, flush, &ledger))
            .ok();
        if handle.is_none() {
            tracing::error!("could not start the request log writer thread");
        }
        Self {
            tx: LogSender(tx),
            handle,
        }
    }

    /// A handle for request handlers.
    pub fn sender(&self) -> LogSender {
        self.tx.clone()
    }

    /// Writes everything queued so far, then stops the thread.
    pub fn shutdown(mut self) {
        let _ = self.tx.0.send(Msg::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// How often buckets no window reads any more are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Msg>,
    batch_size: usize,
    flush: Duration,
    ledger: &Ledger,
) {
    let mut batch: Vec<Box<LogRecord>> = Vec::with_capacity(batch_size);
    let mut waiters: Vec<mpsc::Sender<()>> = Vec::new();
    let mut pruned = Instant::now();
    loop {
        let deadline = Instant::now() + flush;
        let mut stop = false;
        // Gather until the batch is full, the flush interval passes, or someone asks.
        while batch.len() < batch_size {
            let wait = deadline.saturating_duration_since(Instant::now());
            let msg = if batch.is_empty() && waiters.is_empty() {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(wait)
            };
            match msg {
                Ok(Msg::Record(r)) => batch.push(r),
                Ok(Msg::Flush(w)) => {
                    waiters.push(w);
                    break;
                }
                Ok(Msg::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Drain whatever is already queued: nothing is lost on a clean stop.
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            Msg::Record(r) => batch.push(r),
                            Msg::Flush(w) => waiters.push(w),
                            Msg::Shutdown => {}
                        }
                    }
                    stop = true;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        let limits = ledger.take_new_limits();
        if !batch.is_empty() || !limits.is_empty() {
            if let Err(e) = write_batch(&mut conn, &batch, &limits) {
                tracing::error!(error = %e, rows = batch.len(), "writing request logs failed");
            }
            batch.clear();
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            if let Err(e) = crate::ledger::prune(&conn, crate::ids::now_ms()) {
                tracing::warn!(error = %e, "pruning old usage buckets failed");
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if stop {
            return;
        }
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &[Box<LogRecord>],
    limits: &[crate::ledger::Limit],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut row = tx.prepare_cached(
            "INSERT OR REPLACE INTO request_logs (request_id, ts_ms, tenant_id, key_id, trace_id, endpoint, team, user,
               metadata, requested_model, served_model, provider, status, stream, latency_ms, ttft_ms,
               input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, decisions, error, attempts,
               cost_nano, cost, bundle_version, platform_version, max_tokens, body_bytes, message_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)",
        )?;
        let mut meta = tx.prepare_cached(
            "INSERT OR REPLACE INTO request_log_meta (request_id, tenant_id, key, value) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for r in batch {
            row.execute(params![
                r.request_id,
                r.ts_ms,
                r.tenant_id,
                r.key_id,
                r.trace_id,
                r.endpoint,
                r.team,
                r.user,
                r.metadata.to_json(),
                r.requested_model,
                r.served_model,
                r.provider,
                r.status,
                r.stream,
                r.latency_ms as i64,
                r.ttft_ms.map(|t| t as i64),
                r.usage.input_tokens as i64,
                r.usage.output_tokens as i64,
                r.usage.cache_read_tokens as i64,
                r.usage.cache_write_tokens as i64,
                serde_json::to_string(&r.decisions).unwrap_or_else(|_| "[]".into()),
                r.error,
                serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".into()),
                i64::try_from(r.cost_nano).unwrap_or(i64::MAX),
                r.cost.as_ref().map(|c| c.to_string()),
                r.bundle_version,
                r.platform_version,
                r.max_tokens,
                r.body_bytes,
                r.message_count,
            ])?;
            for (k, v) in &r.metadata.0 {
                meta.execute(params![r.request_id, r.tenant_id, k, v])?;
            }
        }
    }
    let entries: Vec<_> = batch.iter().filter_map(|r| r.ledger.clone()).collect();
    crate::ledger::write_entries(&tx, &entries)?;
    crate::ledger::write_limits(&tx, limits, crate::ids::now_ms())?;
    tx.commit()
}

/// Filters for reading logs; every field narrows the result.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogQuery {
    pub tenant: Option<String>,
    /// `key=value` pairs matched against metadata (all must match).
    #[serde(default)]
    pub meta: Vec<(String, String)>,
    /// Matches the requested or the served model.
    pub model: Option<String>,
    pub status: Option<u16>,
    pub key_id: Option<String>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    pub team: Option<String>,
    pub user: Option<String>,
    /// Inclusive lower bound, Unix ms.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, Unix ms.
    pub until_ms: Option<i64>,
    /// At most this many rows (default 100, at most 1000), newest first.
    pub limit: Option<u32>,
}

/// The columns [`from_row`] reads, in its order.
const SELECT: &str =
    "SELECT l.request_id, l.ts_ms, l.tenant_id, l.key_id, l.trace_id, l.endpoint, l.team, l.user,
        l.metadata, l.requested_model, l.served_model, l.provider, l.status, l.stream, l.latency_ms,
        l.ttft_ms, l.input_tokens, l.output_tokens, l.cache_read_tokens, l.cache_write_tokens,
        l.decisions, l.error, l.attempts, l.cost_nano, l.cost, l.bundle_version, l.platform_version,
        l.max_tokens, l.body_bytes, l.message_count
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
        ledger: None,
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
            let rows = st.query_map(params![tenant, since_ms, until_ms, limit], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
    if let Some(s) = q.status {
        push(&mut sql, " AND l.status = ?", i64::from(s).into());
    }
    for (col, v) in [
        ("key_id", &q.key_id),
        ("trace_id", &q.trace_id),
        ("request_id", &q.request_id),
        ("team", &q.team),
        ("user", &q.user),
    ] {
        if let Some(v) = v {
            push(&mut sql, &format!(" AND l.{col} = ?"), v.clone().into());
        }
    }
    if let Some(s) = q.since_ms {
        push(&mut sql, " AND l.ts_ms >= ?", s.into());
    }
    if let Some(u) = q.until_ms {
        push(&mut sql, " AND l.ts_ms < ?", u.into());
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    sql.push_str(&format!(
        " ORDER BY l.ts_ms DESC, l.request_id LIMIT {limit}"
    ));
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
            .log_writer(1000, Duration::from_secs(60), Arc::new(Ledger::new()))
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
