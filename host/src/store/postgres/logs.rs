//! The fleet's shared request logs and alerts in PostgreSQL: the statements the log
//! views run (rendered by [`crate::store::sql`], the same as SQLite's), and the writes
//! of shipped rows and fired alerts.

use super::{PgControl, pg};
use crate::ledger::Alert;
use crate::store::logs::{BODY_COLUMNS, bodies_from_row, log_from_row};
use crate::store::sql::{Arg, Sql};
use crate::store::{CapturedBodies, LogRecord, StoreError};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use tokio_postgres::Row;

/// Why a batch of log rows did not go in.
#[derive(Debug)]
pub(crate) enum ShipError {
    /// Something in the rows themselves (a data or constraint error): shipping them one
    /// by one finds the bad one.
    Data(String),
    /// Anything else (unreachable, read-only after a failover, disk full, a timeout, a
    /// schema newer than this replica): the batch is retried as it is.
    Store(StoreError),
}

impl ShipError {
    fn of(e: tokio_postgres::Error) -> Self {
        // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation).
        match e.code().map(|c| c.code()) {
            Some(code) if code.starts_with("22") || code.starts_with("23") => {
                ShipError::Data(e.to_string())
            }
            _ => ShipError::Store(pg(e)),
        }
    }
}

impl std::fmt::Display for ShipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShipError::Data(e) => write!(f, "{e}"),
            ShipError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl PgControl {
    /// The rows of `sql`, each read by `read`.
    pub(crate) async fn rows<T>(
        &self,
        sql: &Sql,
        read: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(sql.text.as_str(), &sql.pg_args())
            .await
            .map_err(pg)?;
        rows.iter().map(read).collect()
    }

    /// Streams the rows of `sql` into `each` without holding them all.
    pub(crate) async fn each_row(
        &self,
        sql: &Sql,
        mut each: impl FnMut(&Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        let stream = c
            .query_raw(sql.text.as_str(), sql.args.iter().map(Arg::pg))
            .await
            .map_err(pg)?;
        let mut stream = std::pin::pin!(stream);
        while let Some(row) = stream.try_next().await.map_err(pg)? {
            each(&row)?;
        }
        Ok(())
    }

    /// The log rows of a listing built by `log_query`.
    pub(crate) async fn logs(&self, sql: Sql) -> Result<Vec<LogRecord>, StoreError> {
        self.rows(&sql, log_from_row).await
    }

    /// Captured bodies of these requests, by request id.
    pub(crate) async fn bodies(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, CapturedBodies>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {BODY_COLUMNS} FROM request_bodies WHERE request_id = ANY($1)"),
                &[&ids],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(bodies_from_row).collect()
    }

    /// Writes shipped rows (and their bodies) in one transaction; rows already there
    /// (a retried batch) are left as they are. `rows` and `bodies` are JSON arrays of
    /// objects named like the tables' columns. Returns the rows new to PostgreSQL.
    pub(crate) async fn insert_logs(&self, rows: &str, bodies: &str) -> Result<u64, ShipError> {
        let mut c = self.client().await.map_err(ShipError::Store)?;
        let tx = c.transaction().await.map_err(ShipError::of)?;
        let mut new_rows = 0;
        for (table, json) in [("request_logs", rows), ("request_bodies", bodies)] {
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO {table}
                         SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb)
                         ON CONFLICT (request_id) DO NOTHING"
                    ),
                    &[&json],
                )
                .await
                .map_err(ShipError::of)?;
            if table == "request_logs" {
                new_rows = n;
            }
        }
        tx.commit().await.map_err(ShipError::of)?;
        Ok(new_rows)
    }

    /// Whether PostgreSQL answers (the shipper's health while it has nothing to ship).
    pub(crate) async fn ping(&self) -> bool {
        match self.client().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    /// Deletes logs (and bodies) that arrived before `cutoff_ms`, of `tenant` or, with
    /// `None`, of every tenant but `kept` (those with their own retention); at most
    /// `chunk` rows per statement so no purge holds the tables for long. Returns the
    /// rows deleted.
    pub(crate) async fn purge_logs(
        &self,
        tenant: Option<&str>,
        kept: &[String],
        cutoff_ms: i64,
        chunk: i64,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let mut deleted = 0;
        for table in ["request_bodies", "request_logs"] {
            let sql = format!(
                "DELETE FROM {table} WHERE request_id IN (
                   SELECT request_id FROM {table} WHERE ts_ms < $1
                     AND (($2::text IS NULL AND tenant_id <> ALL($3)) OR tenant_id = $2::text)
                   LIMIT $4)"
            );
            loop {
                let n = c
                    .execute(&sql, &[&cutoff_ms, &tenant, &kept, &chunk])
                    .await
                    .map_err(pg)?;
                if table == "request_logs" {
                    deleted += n;
                }
                if n < chunk as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Records a fired alert once for the fleet; false when some replica already did.
    pub(crate) async fn record_alert(&self, alert: &Alert) -> Result<bool, StoreError> {
        let payload = serde_json::to_string(alert).map_err(|e| StoreError::Task(e.to_string()))?;
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO budget_alerts
                   (tenant_id, budget, scope, value, period, bucket, threshold, fired_at_ms, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT DO NOTHING",
                &[
                    &alert.tenant,
                    &alert.budget,
                    &alert.scope,
                    &alert.value,
                    &alert.period.as_str(),
                    &crate::ledger::bucket(alert.period, alert.at_ms),
                    &i64::from(alert.threshold_pct),
                    &alert.at_ms,
                    &payload,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    /// Fired alerts, newest first, of one tenant or all; payloads that no longer
    /// parse are skipped.
    pub(crate) async fn alerts(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alert>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT payload FROM budget_alerts WHERE ($1::text IS NULL OR tenant_id = $1::text)
                 ORDER BY fired_at_ms DESC LIMIT $2",
                &[&tenant, &i64::from(limit)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .filter_map(|p| serde_json::from_str(&p).ok())
            .collect())
    }
}

/// The shared log as the fleet ledger's memory: what a scope used in a window before
/// Redis counted it. Counted requests are those the ledger settles: admitted model
/// requests that reached a provider, at the time they ended.
impl crate::ledger::fleet::UsageHistory for PgControl {
    fn usage<'a>(
        &'a self,
        scope: &'a crate::ledger::ScopeKey,
        since_ms: i64,
        until_ms: i64,
        bucket_ms: i64,
    ) -> crate::ledger::fleet::PastUsage<'a> {
        Box::pin(async move {
            use crate::ledger::ScopeKind;
            let mut sql = Sql::new(crate::store::sql::Dialect::Postgres);
            let bucket = if bucket_ms > 0 {
                format!("(l.ts_ms + l.latency_ms) / {}", sql.bind(bucket_ms))
            } else {
                "CAST(0 AS BIGINT)".into()
            };
            let tenant = sql.bind(&*scope.tenant);
            let (since, until) = (sql.bind(since_ms), sql.bind(until_ms));
            // A request is logged when it arrived and counted when it ended: the index
            // narrows by arrival, up to a day before the window (long streams).
            let earliest = sql.bind(since_ms.saturating_sub(crate::time::DAY_MS));
            let column = match &scope.kind {
                ScopeKind::Tenant => None,
                ScopeKind::Key => Some("l.key_id"),
                ScopeKind::Team => Some("l.team"),
                ScopeKind::User => Some("l.\"user\""),
                ScopeKind::Metadata(_) => Some(""),
            };
            let matches = match (&scope.kind, column) {
                (_, None) => "TRUE".to_string(),
                (ScopeKind::Metadata(k), _) => {
                    let (k, v) = (sql.bind(&**k), sql.bind(&*scope.value));
                    crate::store::sql::Dialect::Postgres.meta_equals(&k, &v)
                }
                (_, Some(col)) => format!("{col} = {}", sql.bind(&*scope.value)),
            };
            sql.push(&format!(
                "SELECT {bucket} AS b, COUNT(*),
                        CAST(SUM(l.input_tokens + l.output_tokens + l.cache_read_tokens + l.cache_write_tokens) AS BIGINT),
                        CAST(SUM(l.cost_nano) AS BIGINT)
                 FROM request_logs l
                 WHERE l.tenant_id = {tenant} AND l.admitted
                   AND l.endpoint IN ('messages', 'chat_completions')
                   AND jsonb_array_length(l.attempts) > 0
                   AND l.ts_ms >= {earliest} AND l.ts_ms < {until}
                   AND l.ts_ms + l.latency_ms >= {since} AND l.ts_ms + l.latency_ms < {until}
                   AND {matches}
                 GROUP BY b"
            ));
            // Bounded in PostgreSQL too: a caller that stops waiting does not cancel it.
            let mut c = self.client().await.map_err(|e| e.to_string())?;
            let tx = c.transaction().await.map_err(|e| e.to_string())?;
            tx.batch_execute("SET LOCAL statement_timeout = 1000")
                .await
                .map_err(|e| e.to_string())?;
            let rows = tx
                .query(sql.text.as_str(), &sql.pg_args())
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            rows.iter()
                .map(|r| {
                    use crate::store::sql::Cols;
                    Ok((
                        r.int_req(0)?,
                        crate::ledger::Amount {
                            requests: r.count(1)?,
                            tokens: r.count(2)?,
                            cost_nano: r.count(3)?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()
                .map_err(|e| e.to_string())
        })
    }
}
