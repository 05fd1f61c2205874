//! The shared control plane on PostgreSQL (`[store] kind = "postgres"`): tenants, API
//! keys, tenant admin tokens, bundles with their versions, components and audit log.
//!
//! Every replica of a fleet reads and writes the same rows through a pool
//! (tokio-postgres with deadpool). Each write bumps the `changes` counter and sends a
//! `NOTIFY tollgate_changes` in its own transaction; [`PgControl::listen`] hands those
//! notifications to the replica's reloader, and the counter is the safety net for a
//! notification missed while a listener reconnected. Schema migrations are versioned
//! files applied at start under an advisory lock, so replicas starting together do
//! not race.

mod logs;
pub mod ship;
#[cfg(test)]
mod tests;

use super::StoreError;
use super::bundles::{AuditEntry, BundleVersion, PLATFORM};
use super::{AdminToken, ApiKey, Tenant};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{NoTls, Row};

/// Versioned schema files, applied in order; `schema_migrations` records each.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "control", include_str!("migrations/0001_control.sql")),
    (2, "logs", include_str!("migrations/0002_logs.sql")),
];

/// Any key: only Tollgate's replicas take it, to migrate one at a time.
const MIGRATION_LOCK: i64 = 0x7467_6d69_6772; // "tgmigr"

/// The channel replicas listen on.
const CHANNEL: &str = "tollgate_changes";

/// What another replica (or this one) changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// API keys (created or revoked).
    Keys,
    /// Tenant admin tokens.
    AdminTokens,
    /// Tenants.
    Tenants,
    /// The active bundle of a scope (a tenant id, or `*`).
    Bundle(String),
    /// Unknown, or possibly missed: reload everything.
    All,
}

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Keys => "keys".into(),
            Change::AdminTokens => "admin_tokens".into(),
            Change::Tenants => "tenants".into(),
            Change::Bundle(scope) => format!("bundle:{scope}"),
            Change::All => "all".into(),
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "keys" => Change::Keys,
            "admin_tokens" => Change::AdminTokens,
            "tenants" => Change::Tenants,
            other => match other.strip_prefix("bundle:") {
                Some(scope) => Change::Bundle(scope.to_string()),
                None => Change::All,
            },
        }
    }
}

/// A change as notified, with the change counter's value it set (when known).
#[derive(Clone, Debug)]
pub struct Notified {
    /// What changed.
    pub change: Change,
    /// The counter after the change.
    pub seq: Option<i64>,
}

/// The pool and what it needs to listen for changes.
pub struct PgControl {
    pool: Pool,
    url: String,
    timeout: Duration,
    /// How the request logs' shipping to PostgreSQL goes (for `/metrics`).
    pub shipping: Arc<ship::ShipCounters>,
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    // A closed or refused connection is the store being down, not a bad statement.
    if e.is_closed() || e.as_db_error().is_none() {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Postgres(e.to_string())
}

impl PgControl {
    /// Connects a pool to `url`, waiting at most `timeout` for each connection, and
    /// applies pending migrations under the advisory lock.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Postgres(format!("[store] url: {e}")))?;
        let mut config = config;
        harden(&mut config, timeout);
        config.application_name("tollgate");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        let store = Self {
            pool,
            url: url.to_string(),
            timeout,
            shipping: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        // Session lock: held across the migrations' transactions, released below (or
        // by the server when this connection dies).
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg)?;
        let out = async {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
            )
            .await
            .map_err(pg)?;
            let done: i32 = c
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
                .await
                .map_err(pg)?
                .get(0);
            for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > done) {
                let tx = c.transaction().await.map_err(pg)?;
                tx.batch_execute(sql).await.map_err(pg)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                    &[version, name, &crate::ids::now_ms()],
                )
                .await
                .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
                tracing::info!(version, name, "applied a PostgreSQL migration");
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let _ = c
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        out
    }

    /// The change counter (see the module docs); fails rather than wait past the
    /// store's timeout.
    pub async fn change_seq(&self) -> Result<i64, StoreError> {
        let read = async {
            let c = self.client().await?;
            let row = c
                .query_one("SELECT seq FROM changes WHERE id = 0", &[])
                .await
                .map_err(pg)?;
            Ok::<i64, StoreError>(row.get(0))
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| StoreError::Unavailable("no answer in time".into()))?
    }

    /// Starts listening for changes on a connection of its own; it reconnects after a
    /// failure and then reports [`Change::All`], since notifications sent meanwhile
    /// were lost.
    pub fn listen(&self) -> mpsc::UnboundedReceiver<Notified> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (url, timeout) = (self.url.clone(), self.timeout);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                if tx.is_closed() {
                    return;
                }
                match listen_once(&url, timeout, &tx, first).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "PostgreSQL change listener: reconnecting")
                    }
                }
                first = false;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        rx
    }

    // ---- tenants --------------------------------------------------------------------

    /// Creates a tenant; `Conflict` if the id is taken.
    pub async fn create_tenant(&self, id: String, name: String) -> Result<Tenant, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let now = crate::ids::now_ms();
        let n = tx
            .execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&id, &name, &now],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "tenant '{id}' already exists"
            )));
        }
        changed(&tx, Change::Tenants).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Tenant {
            id,
            name,
            created_at: now,
        })
    }

    /// Creates the tenant unless it exists.
    pub async fn ensure_tenant(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&id, &name, &crate::ids::now_ms()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    /// All tenants, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT id, name, created_at FROM tenants ORDER BY id", &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(tenant_row).collect())
    }

    /// One tenant, if it exists.
    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT id, name, created_at FROM tenants WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(tenant_row))
    }

    // ---- keys -----------------------------------------------------------------------

    /// Stores a new key (its id and hash already made by the caller).
    pub async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        require_tenant(&tx, &key.tenant_id).await?;
        let models = key
            .models
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default());
        tx.execute(
            &format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &key.id,
                &key.tenant_id,
                &key.name,
                &key.team,
                &key.user,
                &models,
                &key.prefix,
                &key.created_at,
                &key.expires_at,
                &key.revoked_at,
                &key.secret_hash,
            ],
        )
        .await
        .map_err(pg)?;
        changed(&tx, Change::Keys).await?;
        tx.commit().await.map_err(pg)
    }

    /// Keys of a tenant (or all), newest first.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1::TEXT IS NULL OR tenant_id = $1)
                     ORDER BY created_at DESC, id"
                ),
                &[&tenant],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(key_row).collect())
    }

    /// Marks a key revoked (keeping the first time); returns it.
    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
                     RETURNING {KEY_COLUMNS}"
                ),
                &[&id, &crate::ids::now_ms()],
            )
            .await
            .map_err(pg)?
            .ok_or_else(|| StoreError::NotFound(format!("no key '{id}'")))?;
        changed(&tx, Change::Keys).await?;
        tx.commit().await.map_err(pg)?;
        Ok(key_row(&row))
    }

    /// One key by id.
    pub async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(key_row))
    }

    // ---- tenant admin tokens -----------------------------------------------------------

    /// Stores a new token (made by the caller).
    pub async fn insert_admin_token(&self, t: &AdminToken) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        require_tenant(&tx, &t.tenant_id).await?;
        tx.execute(
            &format!("INSERT INTO admin_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[
                &t.id,
                &t.tenant_id,
                &t.name,
                &t.created_at,
                &t.revoked_at,
                &t.secret_hash,
            ],
        )
        .await
        .map_err(pg)?;
        changed(&tx, Change::AdminTokens).await?;
        tx.commit().await.map_err(pg)
    }

    /// Revokes a tenant admin token; returns it.
    pub async fn revoke_admin_token(&self, id: &str) -> Result<AdminToken, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute(
            "UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &crate::ids::now_ms()],
        )
        .await
        .map_err(pg)?;
        let row = tx
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg)?
            .ok_or_else(|| StoreError::NotFound(format!("no admin token '{id}'")))?;
        changed(&tx, Change::AdminTokens).await?;
        tx.commit().await.map_err(pg)?;
        Ok(token_row(&row))
    }

    /// Every tenant admin token.
    pub async fn admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens"), &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(token_row).collect())
    }

    // ---- bundles --------------------------------------------------------------------

    /// Components by hash; `NotFound` naming the first one missing.
    pub async fn blobs(&self, shas: &[String]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let c = self.client().await?;
        let mut out = Vec::with_capacity(shas.len());
        for sha in shas {
            let row = c
                .query_opt("SELECT bytes FROM plugin_blobs WHERE sha256 = $1", &[sha])
                .await
                .map_err(pg)?
                .ok_or_else(|| StoreError::NotFound(format!("component {sha} is missing")))?;
            out.push((sha.clone(), row.get(0)));
        }
        Ok(out)
    }

    /// Stores `blobs` and the next version of `scope`, makes it active and audits it,
    /// in one transaction serialised per scope across the fleet; `summarise` gets the
    /// active version's spec. Returns the new version.
    pub async fn commit_bundle(
        &self,
        scope: &str,
        blobs: &[(String, Vec<u8>)],
        new: &super::bundles::NewBundle,
        summarise: impl FnOnce(Option<&str>) -> String,
    ) -> Result<BundleVersion, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&scope])
            .await
            .map_err(pg)?;
        let previous: Option<String> = tx
            .query_opt(
                "SELECT b.spec FROM bundles b JOIN bundle_active a
                 ON a.scope = b.scope AND a.version = b.version WHERE b.scope = $1",
                &[&scope],
            )
            .await
            .map_err(pg)?
            .map(|r| r.get(0));
        let summary = summarise(previous.as_deref());
        for (sha, bytes) in blobs {
            tx.execute(
                "INSERT INTO plugin_blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[sha, bytes],
            )
            .await
            .map_err(pg)?;
        }
        let next: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM bundles WHERE scope = $1",
                &[&scope],
            )
            .await
            .map_err(pg)?
            .get(0);
        let now = crate::ids::now_ms();
        tx.execute(
            "INSERT INTO bundles (scope, version, created_at_ms, author, hash, message, summary, spec)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &scope,
                &next,
                &now,
                &new.author,
                &new.hash,
                &new.message,
                &summary,
                &new.spec,
            ],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO bundle_active (scope, version) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET version = excluded.version",
            &[&scope, &next],
        )
        .await
        .map_err(pg)?;
        let detail = format!(
            "version {next} ({}): {summary}",
            &new.hash[..new.hash.len().min(12)]
        );
        tx.execute(
            "INSERT INTO audit_log (ts_ms, actor, action, scope, detail) VALUES ($1, $2, $3, $4, $5)",
            &[&now, &new.author, &new.action, &scope, &detail],
        )
        .await
        .map_err(pg)?;
        changed(&tx, Change::Bundle(scope.to_string())).await?;
        tx.commit().await.map_err(pg)?;
        Ok(BundleVersion {
            tenant: scope_tenant(scope),
            version: next.max(0) as u32,
            created_at_ms: now,
            author: new.author.clone(),
            hash: new.hash.clone(),
            message: new.message.clone(),
            summary,
            active: true,
            spec: new.spec.clone(),
        })
    }

    /// Records a refused change in the audit log.
    pub async fn audit(
        &self,
        scope: &str,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO audit_log (ts_ms, actor, action, scope, detail) VALUES ($1, $2, $3, $4, $5)",
            &[&crate::ids::now_ms(), &actor, &action, &scope, &detail],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    /// Every version of `scope`, newest first.
    pub async fn versions(&self, scope: &str) -> Result<Vec<BundleVersion>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM bundles b
                     LEFT JOIN bundle_active a ON a.scope = b.scope AND a.version = b.version
                     WHERE b.scope = $1 ORDER BY b.version DESC"
                ),
                &[&scope],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(version_row).collect())
    }

    /// One version of `scope`; the active one when `version` is `None`.
    pub async fn version(
        &self,
        scope: &str,
        version: Option<u32>,
    ) -> Result<Option<BundleVersion>, StoreError> {
        let c = self.client().await?;
        let version: Option<i32> = version.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        let row = c
            .query_opt(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM bundles b
                     LEFT JOIN bundle_active a ON a.scope = b.scope AND a.version = b.version
                     WHERE b.scope = $1 AND b.version =
                         COALESCE($2, (SELECT version FROM bundle_active WHERE scope = $1))"
                ),
                &[&scope, &version],
            )
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(version_row))
    }

    /// The active version of every scope, by scope (the platform's `*` first).
    pub async fn all_active(&self) -> Result<Vec<BundleVersion>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM bundles b
                     JOIN bundle_active a ON a.scope = b.scope AND a.version = b.version
                     ORDER BY b.scope COLLATE \"C\""
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(version_row).collect())
    }

    /// Audit entries, newest first, optionally for one scope.
    pub async fn audit_log(
        &self,
        scope: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT ts_ms, actor, action, scope, detail FROM audit_log
                 WHERE $1::TEXT IS NULL OR scope = $1 ORDER BY id DESC LIMIT $2",
                &[&scope, &i64::from(limit)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                ts_ms: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                tenant: scope_tenant(r.get::<_, &str>(3)),
                detail: r.get(4),
            })
            .collect())
    }
}

/// One LISTEN session: forwards notifications until the connection ends.
async fn listen_once(
    url: &str,
    timeout: Duration,
    tx: &mpsc::UnboundedSender<Notified>,
    first: bool,
) -> Result<(), String> {
    use futures_util::StreamExt;
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    harden(&mut config, timeout);
    config.application_name("tollgate-listener");
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<String>();
    let forward = tx.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let why = loop {
            match messages.next().await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    let (what, seq) = match n.payload().rsplit_once('@') {
                        Some((w, s)) => (w, s.parse().ok()),
                        None => (n.payload(), None),
                    };
                    let _ = forward.send(Notified {
                        change: Change::parse(what),
                        seq,
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "connection closed".to_string(),
            }
        };
        let _ = done_tx.send(why);
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    // Changes made before this session listened (at start, or while reconnecting) were
    // not delivered: reload once now that nothing more can be missed.
    let _ = tx.send(Notified {
        change: Change::All,
        seq: None,
    });
    if first {
        tracing::info!("listening for changes from other replicas (PostgreSQL LISTEN)");
    } else {
        tracing::info!("listening for changes from other replicas again");
    }
    let why = (&mut done_rx)
        .await
        .unwrap_or_else(|_| "listener ended".into());
    drop(client);
    Err(why)
}

/// Bounds every wait on the server: connecting, a statement (`statement_timeout`, ten
/// times the connect bound and at least 10 s, for bundle uploads), and a peer that
/// vanished without closing the connection (TCP keepalives and user timeout).
fn harden(config: &mut tokio_postgres::Config, timeout: Duration) {
    let statement = (timeout * 10).max(Duration::from_secs(10));
    config
        .connect_timeout(timeout)
        .options(format!("-c statement_timeout={}", statement.as_millis()))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(statement);
}

/// `NotFound` unless tenant `id` exists.
async fn require_tenant(
    tx: &deadpool_postgres::Transaction<'_>,
    id: &str,
) -> Result<(), StoreError> {
    let found = tx
        .query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&id])
        .await
        .map_err(pg)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("no tenant '{id}'"))),
    }
}

/// Bumps the change counter and notifies every replica, when `tx` commits.
async fn changed(tx: &deadpool_postgres::Transaction<'_>, what: Change) -> Result<(), StoreError> {
    let seq: i64 = tx
        .query_one(
            "UPDATE changes SET seq = seq + 1 WHERE id = 0 RETURNING seq",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    // The counter's new value rides along, so a replica that applies the change knows
    // its counter has not moved without it.
    let payload = format!("{}@{seq}", what.payload());
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map_err(pg)?;
    Ok(())
}

const KEY_COLUMNS: &str = "id, tenant_id, name, team, \"user\", models, prefix, created_at, expires_at, revoked_at, secret_hash";
const TOKEN_COLUMNS: &str = "id, tenant_id, name, created_at, revoked_at, secret_hash";
const VERSION_COLUMNS: &str = "b.scope, b.version, b.created_at_ms, b.author, b.hash, b.message, b.summary, b.spec, a.version";

fn scope_tenant(scope: &str) -> Option<String> {
    (scope != PLATFORM).then(|| scope.to_string())
}

fn tenant_row(r: &Row) -> Tenant {
    Tenant {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
    }
}

fn key_row(r: &Row) -> ApiKey {
    let models: Option<String> = r.get(5);
    ApiKey {
        id: r.get(0),
        tenant_id: r.get(1),
        name: r.get(2),
        team: r.get(3),
        user: r.get(4),
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        prefix: r.get(6),
        created_at: r.get(7),
        expires_at: r.get(8),
        revoked_at: r.get(9),
        secret_hash: r.get(10),
    }
}

fn token_row(r: &Row) -> AdminToken {
    AdminToken {
        id: r.get(0),
        tenant_id: r.get(1),
        name: r.get(2),
        created_at: r.get(3),
        revoked_at: r.get(4),
        secret_hash: r.get(5),
    }
}

fn version_row(r: &Row) -> BundleVersion {
    let scope: &str = r.get(0);
    BundleVersion {
        tenant: scope_tenant(scope),
        version: r.get::<_, i32>(1).max(0) as u32,
        created_at_ms: r.get(2),
        author: r.get(3),
        hash: r.get(4),
        message: r.get(5),
        summary: r.get(6),
        spec: r.get(7),
        active: r.get::<_, Option<i32>>(8).is_some(),
    }
}
