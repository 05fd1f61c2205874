//! API keys: stored as SHA-256 hashes, the secret shown once at creation.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A key as stored (never the secret).
#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    /// Public id, e.g. `key_3f9a…`.
    pub id: String,
    /// The tenant the key belongs to and whose traffic it is counted as.
    pub tenant_id: String,
    /// Label for people (`default` when none was given).
    pub name: String,
    /// Team the key is bound to; metadata naming another team is refused.
    pub team: Option<String>,
    /// User the key is bound to; metadata naming another user is refused.
    pub user: Option<String>,
    /// Model globs the key may request; `None` means any.
    pub models: Option<Vec<String>>,
    /// First characters of the secret, to tell keys apart in listings.
    pub prefix: String,
    /// When it was created, Unix ms.
    pub created_at: i64,
    /// When the key stops working, Unix ms; `None`: never.
    pub expires_at: Option<i64>,
    /// When it was revoked, Unix ms; `None` while the key is usable.
    pub revoked_at: Option<i64>,
    /// SHA-256 of the secret, hex (see [`hash_secret`]).
    #[serde(skip)]
    pub secret_hash: String,
}

/// What an admin supplies to create a key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Label for people; `None` gives `default`.
    #[serde(default)]
    pub name: Option<String>,
    /// Team to bind the key to; `None` leaves it to the request's metadata.
    #[serde(default)]
    pub team: Option<String>,
    /// User to bind the key to; `None` leaves it to the request's metadata.
    #[serde(default)]
    pub user: Option<String>,
    /// Model globs the key may request; `None` allows any.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Expiry as Unix milliseconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// SHA-256 of a key secret, hex-encoded: what the store and the key cache index by.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const COLUMNS: &str = "id, tenant_id, name, team, user, models, prefix, created_at, expires_at, revoked_at, secret_hash";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let models: Option<String> = r.get(5)?;
    Ok(ApiKey {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        team: r.get(3)?,
        user: r.get(4)?,
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        prefix: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
        secret_hash: r.get(10)?,
    })
}

impl Store {
    /// Creates a key for `tenant_id`; returns it with its secret (the only time it exists in clear).
    pub async fn create_key(
        &self,
        tenant_id: String,
        new: NewKey,
    ) -> Result<(ApiKey, String), StoreError> {
        let (key, secret) = new_key(&tenant_id, new);
        if let Some(pg) = &self.pg {
            pg.insert_key(&key).await?;
            return Ok((key, secret));
        }
        self.with_conn(move |c| {
            insert_key(c, &key)?;
            Ok((key, secret))
        })
        .await
    }

    /// Keys of a tenant (or all), newest first.
    pub async fn list_keys(&self, tenant_id: Option<String>) -> Result<Vec<ApiKey>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.list_keys(tenant_id.as_deref()).await;
        }
        self.with_conn(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM api_keys WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY created_at DESC, id"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([tenant_id], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every key, for filling the in-memory key cache.
    pub async fn all_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.list_keys(None).await;
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM api_keys"))?;
            let rows = st.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Marks a key revoked; returns it. Revoking twice keeps the first time.
    pub async fn revoke_key(&self, key_id: String) -> Result<ApiKey, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.revoke_key(&key_id).await;
        }
        self.with_conn(move |c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![key_id, crate::ids::now_ms()],
            )?;
            c.query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
                [&key_id],
                from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no key '{key_id}'")))
        })
        .await
    }

    /// One key by id.
    pub async fn get_key(&self, key_id: String) -> Result<Option<ApiKey>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.get_key(&key_id).await;
        }
        self.with_conn(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
                [&key_id],
                from_row,
            )
            .optional()?)
        })
        .await
    }
}

/// A new key for `tenant_id` and its secret (not stored yet).
fn new_key(tenant_id: &str, new: NewKey) -> (ApiKey, String) {
    let secret = format!("tg-{}", crate::ids::random_token(40));
    let key = ApiKey {
        id: format!("key_{}", crate::ids::random_token(16)),
        tenant_id: tenant_id.to_string(),
        name: new.name.unwrap_or_else(|| "default".into()),
        team: new.team,
        user: new.user,
        models: new.models,
        prefix: secret.chars().take(10).collect(),
        created_at: crate::ids::now_ms(),
        expires_at: new.expires_at,
        revoked_at: None,
        secret_hash: hash_secret(&secret),
    };
    (key, secret)
}

fn insert_key(c: &mut rusqlite::Connection, key: &ApiKey) -> Result<(), StoreError> {
    let exists: bool = c
        .query_row(
            "SELECT 1 FROM tenants WHERE id = ?1",
            [&key.tenant_id],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !exists {
        return Err(StoreError::NotFound(format!(
            "no tenant '{}'",
            key.tenant_id
        )));
    }
    let models = key
        .models
        .as_ref()
        .map(|m| serde_json::to_string(m).unwrap_or_default());
    c.execute(
        &format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            key.id,
            key.tenant_id,
            key.name,
            key.team,
            key.user,
            models,
            key.prefix,
            key.created_at,
            key.expires_at,
            key.revoked_at,
            key.secret_hash
        ],
    )?;
    Ok(())
}
