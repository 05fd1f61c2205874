//! Tenant admin tokens: credentials that manage one tenant only (its keys, bundle, logs
//! and usage). Stored hashed, like API keys; the secret is shown once.

use super::{Store, StoreError, hash_secret};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// A tenant admin token (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct AdminToken {
    /// Stable id (`adm_` + 16 random characters); not the secret.
    pub id: String,
    /// The one tenant this token manages.
    pub tenant_id: String,
    /// Label given at creation, for people to tell tokens apart.
    pub name: String,
    /// When it was created, Unix ms.
    pub created_at: i64,
    /// When it was revoked, Unix ms; `None` while the token is usable.
    pub revoked_at: Option<i64>,
    /// SHA-256 of the secret.
    #[serde(skip)]
    pub secret_hash: String,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AdminToken> {
    Ok(AdminToken {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        revoked_at: r.get(4)?,
        secret_hash: r.get(5)?,
    })
}

const COLUMNS: &str = "id, tenant_id, name, created_at, revoked_at, secret_hash";

impl Store {
    /// Creates a tenant admin token; returns it with its secret (shown once).
    pub async fn create_admin_token(
        &self,
        tenant: String,
        name: String,
    ) -> Result<(AdminToken, String), StoreError> {
        let secret = format!("tgt-{}", crate::ids::random_token(40));
        let t = AdminToken {
            id: format!("adm_{}", crate::ids::random_token(16)),
            tenant_id: tenant,
            name,
            created_at: crate::ids::now_ms(),
            revoked_at: None,
            secret_hash: hash_secret(&secret),
        };
        if let Some(pg) = &self.pg {
            pg.insert_admin_token(&t).await?;
            return Ok((t, secret));
        }
        self.with_conn(move |c| {
            let exists: Option<String> = c
                .query_row(
                    "SELECT id FROM tenants WHERE id = ?1",
                    params![t.tenant_id],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("no tenant '{}'", t.tenant_id)));
            }
            c.execute(
                &format!("INSERT INTO admin_tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    t.id,
                    t.tenant_id,
                    t.name,
                    t.created_at,
                    t.revoked_at,
                    t.secret_hash
                ],
            )?;
            Ok((t, secret))
        })
        .await
    }

    /// Revokes a tenant admin token.
    pub async fn revoke_admin_token(&self, id: String) -> Result<AdminToken, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.revoke_admin_token(&id).await;
        }
        self.with_conn(move |c| {
            c.execute(
                "UPDATE admin_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, crate::ids::now_ms()],
            )?;
            c.query_row(
                &format!("SELECT {COLUMNS} FROM admin_tokens WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no admin token '{id}'")))
        })
        .await
    }

    /// Every tenant admin token (the in-memory cache).
    pub async fn admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.admin_tokens().await;
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM admin_tokens"))?;
            let rows = st.query_map([], row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
