//! The request-log writer: a thread that receives finished requests over a channel and
//! writes them in batches (rows, metadata, captured bodies and their usage-ledger
//! buckets in one transaction), so the request path never waits on the disk. After each
//! batch, observers (metrics, trace export) see the rows; once an hour, logs past their
//! tenant's retention are deleted.

use super::LogRecord;
use crate::ledger::Ledger;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

enum Msg {
    Record(Box<LogRecord>),
    Flush(mpsc::Sender<()>),
    Shutdown,
}

/// Something that sees every finished request after its row is written: it runs on the
/// writer thread, so it must not block (hand slow work to a task of its own).
pub trait LogObserver: Send {
    /// Sees one written batch, oldest first.
    fn observe(&mut self, batch: &[Box<LogRecord>]);
}

/// How long request logs are kept.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Days for tenants without their own setting; 0 keeps logs forever.
    pub default_days: u32,
    /// Tenants' own settings (0 keeps forever).
    pub tenants: HashMap<String, u32>,
}

/// The writer's settings.
pub struct WriterOptions {
    /// Most rows written in one transaction.
    pub batch_size: usize,
    /// Longest a row waits before it is written.
    pub flush: Duration,
    /// The ledger whose new limits are stored with each batch.
    pub ledger: Arc<Ledger>,
    pub retention: Retention,
    pub observers: Vec<Box<dyn LogObserver>>,
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
    pub(super) fn start(conn: Connection, opts: WriterOptions) -> Self {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_loop(conn, rx, opts))
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

/// How often buckets no window reads any more, and logs past retention, are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Msg>, mut opts: WriterOptions) {
    let batch_size = opts.batch_size.max(1);
    let mut batch: Vec<Box<LogRecord>> = Vec::with_capacity(batch_size);
    let mut waiters: Vec<mpsc::Sender<()>> = Vec::new();
    // Prune once at start: a gateway that was down for a while catches up at once.
    prune(&conn, &opts.retention);
    let mut pruned = Instant::now();
    loop {
        let deadline = Instant::now() + opts.flush;
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
        let limits = opts.ledger.take_new_limits();
        if !batch.is_empty() || !limits.is_empty() {
            if let Err(e) = write_batch(&mut conn, &batch, &limits) {
                tracing::error!(error = %e, rows = batch.len(), "writing request logs failed");
            }
            for o in &mut opts.observers {
                o.observe(&batch);
            }
            batch.clear();
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            if let Err(e) = crate::ledger::prune(&conn, crate::ids::now_ms()) {
                tracing::warn!(error = %e, "pruning old usage buckets failed");
            }
            prune(&conn, &opts.retention);
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
               cost_nano, cost, bundle_version, platform_version, max_tokens, body_bytes, message_count, admitted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
        )?;
        let mut meta = tx.prepare_cached(
            "INSERT OR REPLACE INTO request_log_meta (request_id, tenant_id, key, value) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut bodies = tx.prepare_cached(
            "INSERT OR REPLACE INTO request_bodies
               (request_id, tenant_id, ts_ms, request, response, request_truncated, response_truncated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
                r.admitted,
            ])?;
            for (k, v) in &r.metadata.0 {
                meta.execute(params![r.request_id, r.tenant_id, k, v])?;
            }
            if let Some(b) = &r.bodies {
                bodies.execute(params![
                    r.request_id,
                    r.tenant_id,
                    r.ts_ms,
                    String::from_utf8_lossy(&b.request),
                    String::from_utf8_lossy(&b.response),
                    b.request_truncated,
                    b.response_truncated,
                ])?;
            }
        }
    }
    let entries: Vec<_> = batch.iter().filter_map(|r| r.ledger.clone()).collect();
    crate::ledger::write_entries(&tx, &entries)?;
    crate::ledger::write_limits(&tx, limits, crate::ids::now_ms())?;
    tx.commit()
}

/// Rows deleted per statement, so a large purge never holds the database for long.
const PURGE_CHUNK: i64 = 5_000;

/// Deletes logs older than their tenant's retention (with their metadata and bodies).
fn prune(conn: &Connection, retention: &Retention) {
    let now = crate::ids::now_ms();
    let cutoff = |days: u32| now - i64::from(days) * 86_400_000;
    let mut deleted = 0usize;
    let mut run = |tenant: Option<&str>, days: u32| {
        if days == 0 {
            return;
        }
        loop {
            let n = purge_chunk(conn, tenant, &retention.tenants, cutoff(days));
            match n {
                Ok(0) => return,
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(error = %e, "deleting expired request logs failed");
                    return;
                }
            }
        }
    };
    for (tenant, days) in &retention.tenants {
        run(Some(tenant), *days);
    }
    run(None, retention.default_days);
    if deleted > 0 {
        tracing::info!(rows = deleted, "deleted request logs past their retention");
    }
}

/// One chunk of expired rows: of `tenant`, or (`None`) of every tenant without its own
/// setting.
fn purge_chunk(
    conn: &Connection,
    tenant: Option<&str>,
    overrides: &HashMap<String, u32>,
    cutoff_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS purge_ids (id TEXT PRIMARY KEY); DELETE FROM purge_ids;",
    )?;
    let picked = match tenant {
        Some(t) => tx.execute(
            "INSERT INTO purge_ids SELECT request_id FROM request_logs
             WHERE tenant_id = ?1 AND ts_ms < ?2 LIMIT ?3",
            params![t, cutoff_ms, PURGE_CHUNK],
        )?,
        None => {
            let kept: Vec<&str> = overrides.keys().map(String::as_str).collect();
            let json = serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "INSERT INTO purge_ids SELECT request_id FROM request_logs
                 WHERE ts_ms < ?1 AND tenant_id NOT IN (SELECT value FROM json_each(?2)) LIMIT ?3",
                params![cutoff_ms, json, PURGE_CHUNK],
            )?
        }
    };
    if picked > 0 {
        tx.execute_batch(
            "DELETE FROM request_log_meta WHERE request_id IN (SELECT id FROM purge_ids);
             DELETE FROM request_bodies WHERE request_id IN (SELECT id FROM purge_ids);
             DELETE FROM request_logs WHERE request_id IN (SELECT id FROM purge_ids);",
        )?;
    }
    tx.commit()?;
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CapturedBodies, LogQuery, Store};
    use bytes::Bytes;

    fn row(id: &str, tenant: &str, age_days: i64) -> LogRecord {
        LogRecord {
            request_id: id.into(),
            ts_ms: crate::ids::now_ms() - age_days * 86_400_000,
            tenant_id: tenant.into(),
            trace_id: id.into(),
            endpoint: "messages".into(),
            status: 200,
            ..LogRecord::default()
        }
    }

    #[test]
    fn bodies_are_stored_and_expired_rows_purged_per_tenant() {
        let dir =
            std::env::temp_dir().join(format!("tollgate-writer-{}", crate::ids::random_token(8)));
        let store = Store::open(&dir).expect("open");
        let writer = store
            .log_writer(WriterOptions {
                batch_size: 100,
                flush: Duration::from_millis(10),
                ledger: Arc::new(Ledger::new()),
                retention: Retention::default(),
                observers: Vec::new(),
            })
            .expect("writer");
        let mut kept = row("fresh", "a", 0);
        kept.bodies = Some(Box::new(CapturedBodies {
            request: Bytes::from_static(b"{\"q\":1}"),
            response: Bytes::from_static(b"{\"a\":2}"),
            request_truncated: false,
            response_truncated: false,
        }));
        let tx = writer.sender();
        tx.send(kept);
        tx.send(row("old-a", "a", 10));
        tx.send(row("old-b", "b", 10));
        tx.send(row("older-b", "b", 40));
        writer.shutdown();
        let retention = Retention {
            default_days: 30,
            tenants: HashMap::from([("a".to_string(), 5)]),
        };
        let ids = store
            .with_conn_blocking(|c| {
                prune(c, &retention);
                let rows = super::super::logs::query_logs_for_tests(c, &LogQuery::default())?;
                let bodies: i64 =
                    c.query_row("SELECT COUNT(*) FROM request_bodies", [], |r| r.get(0))?;
                Ok((
                    rows.into_iter().map(|r| r.request_id).collect::<Vec<_>>(),
                    bodies,
                ))
            })
            .expect("query");
        let mut left = ids.0;
        left.sort();
        assert_eq!(left, vec!["fresh".to_string(), "old-b".to_string()]);
        assert_eq!(ids.1, 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
