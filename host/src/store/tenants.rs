//! Tenants: the organisations (or teams of them) the gateway serves.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// A tenant row.
#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    /// Stable id, 1 to 64 of `[A-Za-z0-9_.-]`.
    pub id: String,
    /// Display name (the id unless one was given).
    pub name: String,
    /// When it was created, Unix ms.
    pub created_at: i64,
}

impl Store {
    /// Creates a tenant; `Conflict` if the id is taken.
    pub async fn create_tenant(&self, id: String, name: String) -> Result<Tenant, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.create_tenant(id, name).await;
        }
        self.with_conn(move |c| {
            let now = crate::ids::now_ms();
            let n = c.execute(
                "INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, name, now],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "tenant '{id}' already exists"
                )));
            }
            Ok(Tenant {
                id,
                name,
                created_at: now,
            })
        })
        .await
    }

    /// Creates the tenant unless it exists (used to sync tenants from the config file).
    pub async fn ensure_tenant(&self, id: &str, name: &str) -> Result<(), StoreError> {
        if let Some(pg) = &self.pg {
            return pg.ensure_tenant(id, name).await;
        }
        self.with_conn_blocking(|c| {
            c.execute(
                "INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, name, crate::ids::now_ms()],
            )?;
            Ok(())
        })
    }

    /// All tenants, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.list_tenants().await;
        }
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT id, name, created_at FROM tenants ORDER BY id")?;
            let rows = st.query_map([], |r| {
                Ok(Tenant {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One tenant, if it exists.
    pub async fn get_tenant(&self, id: String) -> Result<Option<Tenant>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.get_tenant(&id).await;
        }
        self.with_conn(move |c| {
            Ok(c.query_row(
                "SELECT id, name, created_at FROM tenants WHERE id = ?1",
                [id],
                |r| {
                    Ok(Tenant {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }
}
