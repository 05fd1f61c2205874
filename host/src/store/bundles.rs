//! Policy bundles: every version ever applied per scope (a tenant, or the platform),
//! which one is active, the uploaded plugin components by content hash, and the audit
//! log of changes.

use super::{Store, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The scope name of the platform bundle (tenant ids cannot contain `*`).
pub const PLATFORM: &str = "*";

/// One stored version of a bundle.
#[derive(Clone, Debug, Serialize)]
pub struct BundleVersion {
    /// Tenant id, or `None` for the platform bundle.
    pub tenant: Option<String>,
    /// 1, 2, … per scope; a rollback stores the old spec as a new version.
    pub version: u32,
    /// When it was applied, Unix ms.
    pub created_at_ms: i64,
    /// Who applied it.
    pub author: String,
    /// SHA-256 of the stored spec (plugin components by their own hash).
    pub hash: String,
    /// The applier's note, if any.
    pub message: Option<String>,
    /// What changed against the version it replaced.
    pub summary: String,
    /// Whether this is the scope's active version.
    pub active: bool,
    /// The spec as JSON (components as `wasm_sha256`).
    #[serde(skip)]
    pub spec: String,
}

/// One audit log entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// When it happened, Unix ms.
    pub ts_ms: i64,
    /// Who acted: `platform-admin` or `tenant-admin:<tenant>:<token id>`.
    pub actor: String,
    /// `apply` or `rollback`, with `-refused` appended when the change was refused.
    pub action: String,
    /// Tenant id, or `None` for the platform bundle.
    pub tenant: Option<String>,
    /// The new version with its hash prefix and summary, or why it was refused.
    pub detail: String,
}

fn scope_tenant(scope: &str) -> Option<String> {
    (scope != PLATFORM).then(|| scope.to_string())
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BundleVersion> {
    let scope: String = r.get(0)?;
    Ok(BundleVersion {
        tenant: scope_tenant(&scope),
        version: r.get(1)?,
        created_at_ms: r.get(2)?,
        author: r.get(3)?,
        hash: r.get(4)?,
        message: r.get(5)?,
        summary: r.get(6)?,
        spec: r.get(7)?,
        active: r.get::<_, Option<u32>>(8)?.is_some(),
    })
}

const VERSION_COLUMNS: &str = "b.scope, b.version, b.created_at_ms, b.author, b.hash, b.message, b.summary, b.spec, a.version";

/// Stores a plugin component under its hash (no-op when present).
fn put_blob(c: &Connection, sha256: &str, bytes: &[u8]) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO plugin_blobs (sha256, bytes) VALUES (?1, ?2)",
        params![sha256, bytes],
    )?;
    Ok(())
}

/// A stored plugin component.
fn get_blob(c: &Connection, sha256: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    c.query_row(
        "SELECT bytes FROM plugin_blobs WHERE sha256 = ?1",
        params![sha256],
        |r| r.get(0),
    )
    .optional()
}

/// A version about to be stored (borrowed, for the SQLite transaction).
struct NewVersion<'a> {
    /// Who applies it (also the audit entry's actor).
    author: &'a str,
    /// SHA-256 of the spec, hex.
    hash: &'a str,
    /// The applier's note, if any.
    message: Option<&'a str>,
    /// What changed against the active version.
    summary: &'a str,
    /// The spec as JSON.
    spec: &'a str,
    /// The audit log's action (`apply`, `rollback`).
    action: &'a str,
}

/// Stores a spec as the next version of `scope`, makes it active and audits it, in one
/// transaction. Returns the new version.
fn insert_active(
    c: &mut Connection,
    scope: &str,
    new: NewVersion<'_>,
) -> Result<BundleVersion, StoreError> {
    let NewVersion {
        author,
        hash,
        message,
        summary,
        spec,
        action,
    } = new;
    // Immediate: a deferred transaction that reads first cannot upgrade to a write once
    // the log writer has committed (SQLITE_BUSY without waiting).
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let next: u32 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM bundles WHERE scope = ?1",
        params![scope],
        |r| r.get(0),
    )?;
    let now = crate::ids::now_ms();
    tx.execute(
        "INSERT INTO bundles (scope, version, created_at_ms, author, hash, message, summary, spec)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![scope, next, now, author, hash, message, summary, spec],
    )?;
    tx.execute(
        "INSERT INTO bundle_active (scope, version) VALUES (?1, ?2)
         ON CONFLICT(scope) DO UPDATE SET version = excluded.version",
        params![scope, next],
    )?;
    tx.execute(
        "INSERT INTO audit_log (ts_ms, actor, action, scope, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            now,
            author,
            action,
            scope,
            format!(
                "version {next} ({}): {summary}",
                &hash[..hash.len().min(12)]
            )
        ],
    )?;
    tx.commit()?;
    Ok(BundleVersion {
        tenant: scope_tenant(scope),
        version: next,
        created_at_ms: now,
        author: author.to_string(),
        hash: hash.to_string(),
        message: message.map(str::to_string),
        summary: summary.to_string(),
        active: true,
        spec: spec.to_string(),
    })
}

/// Records a refused change in the audit log.
fn audit(
    c: &Connection,
    scope: &str,
    actor: &str,
    action: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO audit_log (ts_ms, actor, action, scope, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![crate::ids::now_ms(), actor, action, scope, detail],
    )?;
    Ok(())
}

/// Every version of `scope`, newest first.
fn versions(c: &Connection, scope: &str) -> rusqlite::Result<Vec<BundleVersion>> {
    let mut st = c.prepare(&format!(
        "SELECT {VERSION_COLUMNS} FROM bundles b
         LEFT JOIN bundle_active a ON a.scope = b.scope AND a.version = b.version
         WHERE b.scope = ?1 ORDER BY b.version DESC"
    ))?;
    let rows = st.query_map(params![scope], version_row)?;
    rows.collect()
}

/// One version of `scope`; the active one when `version` is `None`.
fn version(
    c: &Connection,
    scope: &str,
    version: Option<u32>,
) -> rusqlite::Result<Option<BundleVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM bundles b
         LEFT JOIN bundle_active a ON a.scope = b.scope AND a.version = b.version
         WHERE b.scope = ?1 AND b.version = COALESCE(?2, (SELECT version FROM bundle_active WHERE scope = ?1))"
    );
    c.query_row(&sql, params![scope, version], version_row)
        .optional()
}

/// The active version of every scope (start-up).
fn all_active(c: &Connection) -> rusqlite::Result<Vec<BundleVersion>> {
    let mut st = c.prepare(&format!(
        "SELECT {VERSION_COLUMNS} FROM bundles b
         JOIN bundle_active a ON a.scope = b.scope AND a.version = b.version
         ORDER BY b.scope"
    ))?;
    let rows = st.query_map([], version_row)?;
    rows.collect()
}

/// Audit entries, newest first, optionally for one scope.
fn audit_log(c: &Connection, scope: Option<&str>, limit: u32) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut st = c.prepare(
        "SELECT ts_ms, actor, action, scope, detail FROM audit_log
         WHERE ?1 IS NULL OR scope = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![scope, limit], |r| {
        let scope: String = r.get(3)?;
        Ok(AuditEntry {
            ts_ms: r.get(0)?,
            actor: r.get(1)?,
            action: r.get(2)?,
            tenant: scope_tenant(&scope),
            detail: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// A version about to be stored (the summary is made against the active version,
/// inside the storing transaction).
#[derive(Clone, Debug)]
pub struct NewBundle {
    /// Who applies it (also the audit entry's actor).
    pub author: String,
    /// SHA-256 of the spec, hex.
    pub hash: String,
    /// The applier's note, if any.
    pub message: Option<String>,
    /// The spec as JSON.
    pub spec: String,
    /// The audit log's action (`apply`, `rollback`).
    pub action: String,
}

impl Store {
    /// One version of `scope`; the active one when `version` is `None`.
    pub async fn bundle_version(
        &self,
        scope: String,
        v: Option<u32>,
    ) -> Result<Option<BundleVersion>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.version(&scope, v).await;
        }
        self.with_conn(move |c| Ok(version(c, &scope, v)?)).await
    }

    /// Every version of `scope`, newest first.
    pub async fn bundle_versions(&self, scope: String) -> Result<Vec<BundleVersion>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.versions(&scope).await;
        }
        self.with_conn(move |c| Ok(versions(c, &scope)?)).await
    }

    /// The active version of every scope, by scope (the platform's `*` first).
    pub async fn active_bundles(&self) -> Result<Vec<BundleVersion>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.all_active().await;
        }
        self.with_conn(|c| Ok(all_active(c)?)).await
    }

    /// Audit entries, newest first, optionally for one scope.
    pub async fn bundle_audit_log(
        &self,
        scope: Option<String>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.audit_log(scope.as_deref(), limit).await;
        }
        self.with_conn(move |c| Ok(audit_log(c, scope.as_deref(), limit)?))
            .await
    }

    /// Records a refused change in the audit log.
    pub async fn bundle_audit(
        &self,
        scope: String,
        actor: String,
        action: String,
        detail: String,
    ) -> Result<(), StoreError> {
        if let Some(pg) = &self.pg {
            return pg.audit(&scope, &actor, &action, &detail).await;
        }
        self.with_conn(move |c| Ok(audit(c, &scope, &actor, &action, &detail)?))
            .await
    }

    /// Stored components by hash; `NotFound` naming the first one missing.
    pub async fn bundle_blobs(
        &self,
        shas: Vec<String>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.blobs(&shas).await;
        }
        self.with_conn(move |c| {
            let mut out = Vec::with_capacity(shas.len());
            for sha in shas {
                let bytes = get_blob(c, &sha)?
                    .ok_or_else(|| StoreError::NotFound(format!("component {sha} is missing")))?;
                out.push((sha, bytes));
            }
            Ok(out)
        })
        .await
    }

    /// Stores `blobs` and `new` as the next version of `scope`, makes it active and
    /// audits it; `summarise` gets the replaced active version's spec.
    pub async fn commit_bundle(
        &self,
        scope: String,
        blobs: Vec<(String, Vec<u8>)>,
        new: NewBundle,
        summarise: impl FnOnce(Option<&str>) -> String + Send + 'static,
    ) -> Result<BundleVersion, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.commit_bundle(&scope, &blobs, &new, summarise).await;
        }
        self.with_conn(move |c| {
            let previous = version(c, &scope, None)?;
            let summary = summarise(previous.as_ref().map(|v| v.spec.as_str()));
            for (sha, bytes) in &blobs {
                put_blob(c, sha, bytes)?;
            }
            insert_active(
                c,
                &scope,
                NewVersion {
                    author: &new.author,
                    hash: &new.hash,
                    message: new.message.as_deref(),
                    summary: &summary,
                    spec: &new.spec,
                    action: &new.action,
                },
            )
        })
        .await
    }
}
