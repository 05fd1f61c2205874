//! Log shipping: each replica writes its request logs to its own SQLite file first (the
//! journal-backed writer the embedded mode uses, so nothing waits on the network and a
//! crash loses nothing acknowledged), and this task copies them, in order and in
//! batches, to the PostgreSQL tables every replica reads.
//!
//! The local table is the buffer that rides out a PostgreSQL outage: the task keeps its
//! place (the last shipped `rowid`, stored beside the rows) and resumes where it stopped,
//! after a restart too. The buffer is bounded: when more than `max_backlog` rows wait,
//! the oldest are skipped, counted in `tollgate_log_ship_dropped_total` and logged.
//! Retried batches are idempotent (`ON CONFLICT DO NOTHING` on the request id).

use super::PgControl;
use super::logs::ShipError;
use crate::store::logs::{BODY_COLUMNS, bodies_from_row, log_from_row};
use crate::store::sql::Dialect;
use crate::store::{LogObserver, LogRecord, Retention, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Rows per shipped batch (one transaction in PostgreSQL).
const BATCH: usize = 500;
/// Longest pause between looks at the local table when nothing nudges the task.
const IDLE: Duration = Duration::from_millis(500);
/// How often an idle shipper checks that PostgreSQL answers.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How often logs past their retention are deleted from PostgreSQL.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per statement of a purge.
const PURGE_CHUNK: i64 = 5_000;

/// What `/metrics` shows of the shipping.
#[derive(Debug, Default)]
pub struct ShipCounters {
    /// Rows written to PostgreSQL.
    pub shipped: AtomicU64,
    /// Rows skipped because the backlog was full, or refused one by one by PostgreSQL.
    pub dropped: AtomicU64,
    /// Failed batches (retried).
    pub errors: AtomicU64,
    /// Rows written locally and not yet shipped.
    pub backlog: AtomicU64,
    /// Whether the last batch reached PostgreSQL.
    pub up: AtomicBool,
}

/// The shipping's settings.
pub struct ShipOptions {
    /// Most rows waiting for PostgreSQL before the oldest are dropped.
    pub max_backlog: u64,
    /// How long logs are kept in PostgreSQL, per tenant.
    pub retention: Retention,
}

/// The running task.
pub struct Shipper {
    nudge: Arc<Notify>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Wakes the shipper as soon as the writer has committed a batch, so a row reaches the
/// shared tables a few milliseconds after it is written locally.
pub struct Nudge(Arc<Notify>);

impl LogObserver for Nudge {
    fn observe(&mut self, _batch: &[Box<LogRecord>]) {
        self.0.notify_one();
    }
}

impl Shipper {
    /// The observer to hand the log writer.
    pub fn nudge(&self) -> Nudge {
        Nudge(self.nudge.clone())
    }

    /// Ships what the (already stopped) writer left, for at most `within`.
    pub async fn finish(self, within: Duration) {
        self.stop.store(true, Ordering::Release);
        self.nudge.notify_one();
        if tokio::time::timeout(within, self.task).await.is_err() {
            tracing::warn!(
                "request logs not yet in PostgreSQL at shutdown stay in the local store; they are shipped at the next start"
            );
        }
    }
}

/// Starts shipping the rows of the SQLite file at `path` to `pg`.
pub fn start(
    pg: Arc<PgControl>,
    path: &std::path::Path,
    opts: ShipOptions,
) -> Result<Shipper, StoreError> {
    let conn = crate::store::open_conn(path)?;
    let cursor = conn
        .query_row(
            "SELECT last_rowid FROM log_shipping WHERE id = 0",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0);
    let nudge = Arc::new(Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(run(
        pg,
        Arc::new(Mutex::new(conn)),
        cursor,
        opts,
        nudge.clone(),
        stop.clone(),
    ));
    Ok(Shipper { nudge, stop, task })
}

/// One batch read from the local table.
struct Batch {
    /// JSON array of `request_logs` rows.
    rows: String,
    /// JSON array of `request_bodies` rows.
    bodies: String,
    /// The last `rowid` in it.
    last: i64,
}

async fn run(
    pg: Arc<PgControl>,
    conn: Arc<Mutex<Connection>>,
    mut cursor: i64,
    opts: ShipOptions,
    nudge: Arc<Notify>,
    stop: Arc<AtomicBool>,
) {
    let counters = pg.shipping.clone();
    let mut backoff = Duration::from_millis(100);
    let mut last_prune = Instant::now();
    let mut last_probe = Instant::now() - PROBE_EVERY;
    // Alerts this replica recorded in its own file while PostgreSQL was away (all of
    // them again after a restart: recording one twice does nothing).
    let mut alerts_from = 0;
    let mut last_alerts = Instant::now() - PROBE_EVERY;
    let mut last_warned: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let read = {
            let conn = conn.clone();
            let max_backlog = opts.max_backlog;
            tokio::task::spawn_blocking(move || {
                read_batch(&crate::sync::lock(&conn), cursor, max_backlog)
            })
            .await
        };
        let read = match read {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read request logs to ship to PostgreSQL");
                Read::nothing(cursor)
            }
            Err(e) => {
                tracing::error!(error = %e, "log shipping read task failed");
                Read::nothing(cursor)
            }
        };
        let backlog = read.waiting;
        counters.backlog.store(backlog, Ordering::Relaxed);
        if read.skipped > 0 {
            counters.dropped.fetch_add(read.skipped, Ordering::Relaxed);
            tracing::error!(
                rows = read.skipped,
                max_backlog = opts.max_backlog,
                "PostgreSQL has been unreachable for too long: the oldest request logs waiting for it were dropped from the shared log (they stay in this replica's local store)"
            );
        }
        if read.from != cursor {
            cursor = read.from;
            save_cursor(&conn, cursor).await;
        }
        // Retention and stranded alerts on schedule, busy or not.
        if !stopping && last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            prune(&pg, &opts.retention).await;
        }
        if last_alerts.elapsed() >= PROBE_EVERY {
            last_alerts = Instant::now();
            alerts_from = ship_alerts(&pg, &conn, alerts_from).await;
        }
        let Some(batch) = read.batch else {
            if stopping {
                return;
            }
            // Nothing to ship: the health gauge still says whether PostgreSQL answers.
            if last_probe.elapsed() >= PROBE_EVERY {
                last_probe = Instant::now();
                counters.up.store(pg.ping().await, Ordering::Relaxed);
            }
            let _ = tokio::time::timeout(IDLE, nudge.notified()).await;
            continue;
        };
        match ship(&pg, &batch).await {
            Ok((written, dropped)) => {
                counters.up.store(true, Ordering::Relaxed);
                counters.shipped.fetch_add(written, Ordering::Relaxed);
                counters.dropped.fetch_add(dropped, Ordering::Relaxed);
                cursor = batch.last;
                save_cursor(&conn, cursor).await;
                backoff = Duration::from_millis(100);
                if last_warned.take().is_some() {
                    tracing::info!("request logs reach PostgreSQL again");
                }
            }
            Err(e) => {
                counters.up.store(false, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if last_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    last_warned = Some(Instant::now());
                    tracing::warn!(error = %e, backlog, "cannot ship request logs to PostgreSQL; they wait in the local store and are retried");
                }
                if stopping {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Writes a batch; when PostgreSQL refuses it for what is in it (a data or constraint
/// error, not an outage), writes its rows one by one so one bad row cannot hold back
/// the rest. Returns the rows written and the rows refused one by one (dropped); any
/// other error leaves the batch to be retried whole.
async fn ship(pg: &PgControl, batch: &Batch) -> Result<(u64, u64), ShipError> {
    match pg.insert_logs(&batch.rows, &batch.bodies).await {
        Ok(n) => Ok((n, 0)),
        Err(ShipError::Data(e)) => {
            tracing::warn!(error = %e, "PostgreSQL refused a batch of request logs; shipping its rows one by one");
            let rows: Vec<serde_json::Value> =
                serde_json::from_str(&batch.rows).unwrap_or_default();
            let bodies: Vec<serde_json::Value> =
                serde_json::from_str(&batch.bodies).unwrap_or_default();
            let (mut written, mut dropped) = (0, 0);
            for row in rows {
                let id = row.get("request_id").cloned();
                let body: Vec<&serde_json::Value> = bodies
                    .iter()
                    .filter(|b| b.get("request_id") == id.as_ref())
                    .collect();
                let one = pg
                    .insert_logs(
                        &serde_json::Value::Array(vec![row]).to_string(),
                        &serde_json::to_string(&body).unwrap_or_else(|_| "[]".into()),
                    )
                    .await;
                match one {
                    Ok(n) => written += n,
                    Err(ShipError::Data(e)) => {
                        dropped += 1;
                        tracing::error!(request_id = ?id, error = %e, "PostgreSQL refused a request log row; it stays in this replica's local store only");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((written, dropped))
        }
        Err(e) => Err(e),
    }
}

/// Records in PostgreSQL the alerts this replica's file holds from `from_ms` on (those
/// fired while PostgreSQL was away), a hundred at a time; returns where to go on from.
async fn ship_alerts(pg: &PgControl, conn: &Arc<Mutex<Connection>>, from_ms: i64) -> i64 {
    let conn = conn.clone();
    let read = tokio::task::spawn_blocking(move || {
        let c = crate::sync::lock(&conn);
        let mut st = c.prepare_cached(
            "SELECT fired_at_ms, payload FROM budget_alerts WHERE fired_at_ms >= ?1
             ORDER BY fired_at_ms LIMIT 100",
        )?;
        st.query_map(params![from_ms], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()
    })
    .await;
    let Ok(Ok(rows)) = read else {
        return from_ms;
    };
    let mut next = from_ms;
    for (at, payload) in &rows {
        let Ok(alert) = serde_json::from_str::<crate::ledger::Alert>(payload) else {
            continue;
        };
        if pg.record_alert(&alert).await.is_err() {
            return next;
        }
        next = next.max(*at);
    }
    // A full page may end inside a run of equal times: the next look starts there again.
    if rows.is_empty() || rows.len() == 100 {
        next
    } else {
        next + 1
    }
}

async fn save_cursor(conn: &Arc<Mutex<Connection>>, cursor: i64) {
    let conn = conn.clone();
    let saved = tokio::task::spawn_blocking(move || {
        crate::sync::lock(&conn).execute(
            "INSERT INTO log_shipping (id, last_rowid) VALUES (0, ?1)
             ON CONFLICT (id) DO UPDATE SET last_rowid = excluded.last_rowid",
            params![cursor],
        )
    })
    .await;
    match saved {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot store how far request logs were shipped; some may be shipped twice (harmless)")
        }
        Err(e) => tracing::warn!(error = %e, "log shipping cursor task failed"),
    }
}

/// What one look at the local table found.
struct Read {
    /// Where the batch starts: the cursor, or past rows skipped from a full backlog
    /// (or 0 when the local file was rebuilt).
    from: i64,
    /// Rows skipped because more than `max_backlog` waited.
    skipped: u64,
    /// The next rows to ship, if any.
    batch: Option<Batch>,
    /// Rows waiting, this batch included.
    waiting: u64,
}

impl Read {
    fn nothing(from: i64) -> Self {
        Self {
            from,
            skipped: 0,
            batch: None,
            waiting: 0,
        }
    }
}

/// Reads the rows after `cursor`: first skipping past the oldest when more than
/// `max_backlog` wait, then up to [`BATCH`] rows with their bodies.
fn read_batch(c: &Connection, mut cursor: i64, max_backlog: u64) -> Result<Read, StoreError> {
    let max: i64 = c.query_row(
        "SELECT COALESCE(MAX(rowid), 0) FROM request_logs",
        [],
        |r| r.get(0),
    )?;
    // A rebuilt local file restarts its rowids: start again from its beginning.
    if max < cursor {
        cursor = 0;
    }
    let mut skipped = 0;
    if (max - cursor).max(0) as u64 > max_backlog {
        let to = max - max_backlog as i64;
        let n: i64 = c.query_row(
            "SELECT COUNT(*) FROM request_logs WHERE rowid > ?1 AND rowid <= ?2",
            params![cursor, to],
            |r| r.get(0),
        )?;
        skipped = n.max(0) as u64;
        cursor = to;
    }
    let mut st = c.prepare_cached(&format!(
        "SELECT {}, l.rowid FROM request_logs l WHERE l.rowid > ?1 ORDER BY l.rowid LIMIT ?2",
        Dialect::Sqlite.log_columns()
    ))?;
    let mut body = c.prepare_cached(&format!(
        "SELECT {BODY_COLUMNS}, tenant_id, ts_ms FROM request_bodies WHERE request_id = ?1"
    ))?;
    let mut rows = st.query(params![cursor, BATCH as i64])?;
    let (mut out, mut bodies, mut last) = (Vec::new(), Vec::new(), cursor);
    while let Some(r) = rows.next()? {
        let record = log_from_row(r)?;
        last = r.get(31)?;
        let kept = body
            .query_row(params![record.request_id], |b| {
                Ok((
                    bodies_from_row(b),
                    b.get::<_, String>(5)?,
                    b.get::<_, i64>(6)?,
                ))
            })
            .optional()?;
        if let Some((found, tenant, ts)) = kept {
            let (id, b) = found?;
            bodies.push(serde_json::json!({
                "request_id": id,
                "tenant_id": tenant,
                "ts_ms": ts,
                "request": String::from_utf8_lossy(&b.request),
                "response": String::from_utf8_lossy(&b.response),
                "request_truncated": b.request_truncated,
                "response_truncated": b.response_truncated,
            }));
        }
        out.push(shipped_row(&record));
    }
    let batch = (!out.is_empty()).then(|| Batch {
        rows: pg_json(&serde_json::Value::Array(out)),
        bodies: pg_json(&serde_json::Value::Array(bodies)),
        last,
    });
    Ok(Read {
        from: cursor,
        skipped,
        batch,
        waiting: (max - cursor).max(0) as u64,
    })
}

/// A record as a `request_logs` row: metadata as an object, usage as its columns.
fn shipped_row(r: &LogRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        if let Some(serde_json::Value::Object(usage)) = m.remove("usage") {
            m.extend(usage);
        }
        m.insert(
            "metadata".into(),
            serde_json::Value::Object(r.metadata.to_map()),
        );
    }
    v
}

/// JSON text PostgreSQL accepts: its text and JSONB types cannot hold U+0000, which a
/// client can put in a body or a header value; it becomes U+FFFD. (Only real U+0000
/// characters: a body's own `\u0000` escape is text and stays as it is.)
fn pg_json(v: &serde_json::Value) -> String {
    fn text(s: &str) -> String {
        s.replace('\0', "\u{fffd}")
    }
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => *s = text(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(clean),
            serde_json::Value::Object(o) => {
                // Keys too: a metadata key is the client's choice.
                *o = std::mem::take(o)
                    .into_iter()
                    .map(|(k, mut v)| {
                        clean(&mut v);
                        (text(&k), v)
                    })
                    .collect();
            }
            _ => {}
        }
    }
    let s = v.to_string();
    // Serialised, a U+0000 is always `\u0000`; most batches have none.
    if !s.contains("\\u0000") {
        return s;
    }
    let mut v = v.clone();
    clean(&mut v);
    v.to_string()
}

/// Deletes PostgreSQL's logs past their tenants' retention (any replica may run it; a
/// delete that finds the rows gone does nothing).
async fn prune(pg: &PgControl, retention: &Retention) {
    let now = crate::ids::now_ms();
    let cutoff = |days: u32| now - i64::from(days) * 86_400_000;
    let kept: Vec<String> = retention.tenants.keys().cloned().collect();
    let mut deleted = 0;
    let mut failed = None;
    for (tenant, days) in &retention.tenants {
        if *days > 0 {
            match pg
                .purge_logs(Some(tenant), &kept, cutoff(*days), PURGE_CHUNK)
                .await
            {
                Ok(n) => deleted += n,
                Err(e) => failed = Some(e),
            }
        }
    }
    if retention.default_days > 0 {
        match pg
            .purge_logs(None, &kept, cutoff(retention.default_days), PURGE_CHUNK)
            .await
        {
            Ok(n) => deleted += n,
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        tracing::warn!(error = %e, "deleting expired request logs from PostgreSQL failed");
    }
    if deleted > 0 {
        tracing::info!(
            rows = deleted,
            "deleted request logs past their retention from PostgreSQL"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rows_flatten_usage_and_keep_metadata_as_an_object() {
        let r = LogRecord {
            request_id: "req_1".into(),
            metadata: crate::metadata::Metadata::from(vec![("team".into(), "eng".into())]),
            usage: crate::usage::Usage {
                input_tokens: 7,
                ..Default::default()
            },
            ..LogRecord::default()
        };
        let v = shipped_row(&r);
        assert_eq!(v["input_tokens"], 7);
        assert!(v.get("usage").is_none());
        assert_eq!(v["metadata"]["team"], "eng");
        assert_eq!(
            pg_json(&serde_json::json!({"a": ["x\u{0}y"], "b": "\\u0000", "k\u{0}": 1})),
            "{\"a\":[\"x\u{fffd}y\"],\"b\":\"\\\\u0000\",\"k\u{fffd}\":1}"
        );
    }
}
