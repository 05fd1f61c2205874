//! The embedded SQLite store: tenants, API keys and request logs.
//!
//! One connection serves admin reads and writes (behind a mutex, used only from
//! blocking tasks); request-log rows arrive over a channel and are written in batches,
//! with their usage-ledger buckets, by a dedicated thread, so the request path never
//! waits on the disk.

mod admin_tokens;
mod analytics;
pub mod bundles;
pub mod journal;
mod keys;
mod log_writer;
mod logs;
pub mod postgres;
mod sql;
mod tenants;
mod usage;
mod writer_sched;

pub use admin_tokens::AdminToken;
pub use analytics::{
    Analytics, AnalyticsQuery, MAX_BUCKETS as ANALYTICS_MAX_BUCKETS, Series, Totals,
};
pub use keys::{ApiKey, NewKey, hash_secret};
pub use log_writer::{LogObserver, LogSender, LogWriter, Retention, WriterCounters, WriterOptions};
pub use logs::{
    AttemptRecord, CapturedBodies, Finding, LogQuery, LogRecord, PluginDecision, StatusFilter,
    TraceSummary,
};
pub use tenants::Tenant;
pub use usage::{UsageGroup, UsageQuery, UsageRow};

use crate::error::{ApiError, ErrorKind};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Store failures. These never reach a data-plane client verbatim.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused a statement or could not open the database.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        /// The configured `data_dir`.
        path: PathBuf,
        /// Why creating it failed.
        source: std::io::Error,
    },
    /// The named row does not exist; the message names it (the admin API's 404).
    #[error("{0}")]
    NotFound(String),
    /// The write clashes with an existing row, e.g. a duplicate id (the admin API's 409).
    #[error("{0}")]
    Conflict(String),
    /// A blocking task or the log writer failed, or stored data is unreadable.
    #[error("store task failed: {0}")]
    Task(String),
    /// PostgreSQL refused a statement.
    #[error("postgres: {0}")]
    Postgres(String),
    /// The shared store (PostgreSQL) cannot be reached: writes fail until it is back,
    /// requests are served from what this replica has cached.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// Store failures as the admin API and the bundle engine answer them: a missing row is
/// 404, a clash 409, an unreachable shared store 503; anything else is logged and
/// answered as a 500 that names no internals.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::new(ErrorKind::NotFound, m),
            StoreError::Conflict(m) => {
                ApiError::invalid(m).with_status(axum::http::StatusCode::CONFLICT)
            }
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "admin write refused: the shared store is unavailable");
                ApiError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "the shared store (PostgreSQL) is unavailable, so changes cannot be \
                         saved right now; requests are still served with the keys and bundles \
                         each replica holds. Retry when it is back ({m})"
                    ),
                )
            }
            other => {
                tracing::error!(error = %other, "store operation failed");
                ApiError::internal("store operation failed; see the gateway log")
            }
        }
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    team        TEXT,
    user        TEXT,
    models      TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
CREATE TABLE request_logs (
    request_id      TEXT PRIMARY KEY,
    ts_ms           INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    key_id          TEXT,
    trace_id        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    team            TEXT,
    user            TEXT,
    metadata        TEXT NOT NULL,
    requested_model TEXT,
    served_model    TEXT,
    provider        TEXT,
    status          INTEGER NOT NULL,
    stream          INTEGER NOT NULL,
    latency_ms      INTEGER NOT NULL,
    ttft_ms         INTEGER,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    decisions       TEXT NOT NULL,
    error           TEXT
);
CREATE INDEX request_logs_tenant_ts ON request_logs(tenant_id, ts_ms DESC);
CREATE INDEX request_logs_trace ON request_logs(trace_id);
CREATE TABLE request_log_meta (
    request_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (request_id, key)
) WITHOUT ROWID;
CREATE INDEX request_log_meta_kv ON request_log_meta(tenant_id, key, value);
"#,
    r#"
ALTER TABLE request_logs ADD COLUMN attempts TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
ALTER TABLE request_logs ADD COLUMN cost_nano INTEGER NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN cost TEXT;
"#,
    crate::ledger::MIGRATION,
    r#"
CREATE TABLE bundles (
    scope         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    author        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    message       TEXT,
    summary       TEXT NOT NULL,
    spec          TEXT NOT NULL,
    PRIMARY KEY (scope, version)
) WITHOUT ROWID;
CREATE TABLE bundle_active (
    scope   TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE plugin_blobs (
    sha256 TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
);
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms  INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    scope  TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_scope ON audit_log(scope, id DESC);
ALTER TABLE request_logs ADD COLUMN bundle_version INTEGER;
ALTER TABLE request_logs ADD COLUMN platform_version INTEGER;
"#,
    r#"
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    secret_hash TEXT NOT NULL UNIQUE
);
"#,
    r#"
ALTER TABLE request_logs ADD COLUMN max_tokens INTEGER;
ALTER TABLE request_logs ADD COLUMN body_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN admitted INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
CREATE INDEX request_logs_ts ON request_logs(ts_ms DESC, request_id DESC);
CREATE TABLE request_bodies (
    request_id TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    request    TEXT NOT NULL,
    response   TEXT NOT NULL,
    request_truncated  INTEGER NOT NULL DEFAULT 0,
    response_truncated INTEGER NOT NULL DEFAULT 0
);
"#,
    r#"
CREATE TABLE journal_state (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    segment INTEGER NOT NULL,
    offset  INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE log_shipping (
    id         INTEGER PRIMARY KEY CHECK (id = 0),
    last_rowid INTEGER NOT NULL
);
"#,
    // Metadata is read from the row's own JSON column (as PostgreSQL reads its JSONB):
    // `request_log_meta` duplicated it at eight b-tree writes a request, a third of the
    // log writer's cost per row, for filters that read it row by row anyway. It is no
    // longer written or read, but stays so that a gateway rolled back to an older
    // release can still write its batches; its rows go with their logs' retention.
    // The index no query used goes now.
    r#"
DROP INDEX IF EXISTS request_log_meta_kv;
"#,
];

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// With `[store] kind = "postgres"`: where the control plane (tenants, keys, admin
    /// tokens, bundles) lives instead of the SQLite file, shared by every replica.
    pg: Option<Arc<postgres::PgControl>>,
}

impl Store {
    /// Opens (creating if needed) `data_dir/tollgate.db` in WAL mode and migrates it.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("tollgate.db");
        let mut conn = open_conn(&path)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
            pg: None,
        })
    }

    /// Keeps the control plane in `pg` from now on (the fleet's shared store).
    pub fn with_postgres(self, pg: postgres::PgControl) -> Self {
        self.with_postgres_arc(Arc::new(pg))
    }

    /// [`Store::with_postgres`] with a control plane already shared.
    pub fn with_postgres_arc(mut self, pg: Arc<postgres::PgControl>) -> Self {
        self.pg = Some(pg);
        self
    }

    /// The shared PostgreSQL control plane, when configured.
    pub fn postgres(&self) -> Option<&Arc<postgres::PgControl>> {
        self.pg.as_ref()
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the shared connection on a blocking thread.
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut crate::sync::lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` with the shared connection on the current thread (start-up and CLI use).
    pub fn with_conn_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut crate::sync::lock(&self.conn))
    }

    /// Starts the batched request-log writer on its own connection; it also stores
    /// the usage of each row and the budgets the options' ledger sees. A writer that
    /// cannot start stops the gateway's start: it must not serve what it cannot log.
    pub fn log_writer(&self, opts: WriterOptions) -> Result<LogWriter, StoreError> {
        let conn = open_conn(&self.path)?;
        // The writer's hot pages are the tails of the log tables and their indexes;
        // a larger cache keeps the index interiors it walks from being re-read per batch.
        conn.pragma_update(None, "cache_size", -(WRITER_CACHE_KIB as i64))?;
        LogWriter::start(conn, opts)
            .map_err(|e| StoreError::Task(format!("starting the request log writer: {e}")))
    }

    /// Records a fired budget alert; false when it was already recorded (by another
    /// replica of the fleet, or before a restart): its webhook then went out already.
    /// A fleet records it in PostgreSQL, falling back to this replica's file when that
    /// is unreachable (the alert is then delivered, and listed here only).
    pub async fn record_alert(&self, alert: crate::ledger::Alert) -> Result<bool, StoreError> {
        if let Some(pg) = &self.pg {
            match pg.record_alert(&alert).await {
                Ok(new) => return Ok(new),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record a budget alert in PostgreSQL; recording it locally")
                }
            }
        }
        self.with_conn(move |c| Ok(crate::ledger::record_alert(c, &alert)?))
            .await
    }

    /// Fired budget alerts, newest first, of one tenant or all; at most `limit`.
    pub async fn alerts(
        &self,
        tenant: Option<String>,
        limit: u32,
    ) -> Result<Vec<crate::ledger::Alert>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.alerts(tenant.as_deref(), limit).await;
        }
        self.with_conn(move |c| Ok(crate::ledger::list_alerts(c, tenant.as_deref(), limit)?))
            .await
    }

    /// Writes the rows a previous run left in the usage journal at `dir` (see
    /// [`journal`]); run before the ledger is loaded, so it counts them.
    pub fn recover_journal(&self, dir: &Path) -> Result<usize, StoreError> {
        self.with_conn_blocking(|c| log_writer::recover(c, dir))
    }
}

/// Page cache of the log writer's connection, in KiB.
const WRITER_CACHE_KIB: usize = 8 << 10;

/// WAL pages past which a commit checkpoints (SQLite's `wal_autocheckpoint`).
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

pub(crate) fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The log writer rewrites the same few pages (the tails of the log tables and
    // their indexes, the minute's ledger rows) in every batch; a checkpoint copies
    // each page once however often it changed, so checkpointing every 10,000 pages
    // (about 40 MB of WAL) instead of SQLite's 1,000 copies them ten times less often
    // (0.5 µs less per row logged, in `benches/log_writer.rs`). Set on every
    // connection, so an admin's commit is never the one that finds 1,000 exceeded.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
