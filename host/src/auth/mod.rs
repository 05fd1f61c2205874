//! API-key authentication and key scope checks, tenant admin tokens, and the
//! per-address gate on requests that have not authenticated yet.
//!
//! Keys live in the store as hashes; an in-memory index (refreshed on every admin
//! change) answers lookups on the request path without touching the disk.

pub mod preauth;

use crate::error::ApiError;
use crate::headers as names;
use crate::metadata::Metadata;
use crate::store::{AdminToken, ApiKey, Store, StoreError};
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Headers a client may carry its key in, in order of precedence.
pub const KEY_HEADERS: &str = "Authorization: Bearer, x-api-key or x-portkey-api-key";

/// Why a request was refused before its key was known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No key in any supported header.
    Missing,
    /// A key the gateway does not know.
    Invalid,
    /// A revoked key.
    Revoked,
    /// An expired key.
    Expired,
    /// Too many unauthenticated requests from one address at once.
    Throttled,
}

impl Unauthenticated {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Unauthenticated; 5] = [
        Self::Missing,
        Self::Invalid,
        Self::Revoked,
        Self::Expired,
        Self::Throttled,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing_key",
            Self::Invalid => "invalid_key",
            Self::Revoked => "revoked_key",
            Self::Expired => "expired_key",
            Self::Throttled => "too_many_per_client",
        }
    }
}

/// The in-memory index of keys by secret hash.
#[derive(Default)]
pub struct KeyCache {
    by_hash: RwLock<HashMap<String, Arc<ApiKey>>>,
}

impl KeyCache {
    /// Fills the index from the store.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let cache = Self::default();
        cache.replace_all(store.all_keys().await?);
        Ok(cache)
    }

    /// Reloads every key from the store (another replica may have changed them).
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.replace_all(store.all_keys().await?);
        Ok(())
    }

    fn replace_all(&self, keys: Vec<ApiKey>) {
        let map = keys
            .into_iter()
            .map(|k| (k.secret_hash.clone(), Arc::new(k)))
            .collect();
        *crate::sync::write(&self.by_hash) = map;
    }

    /// Adds or replaces one key (after create or revoke).
    pub fn upsert(&self, key: ApiKey) {
        crate::sync::write(&self.by_hash).insert(key.secret_hash.clone(), Arc::new(key));
    }

    /// Authenticates a request's headers: the key, valid now; else why not (the 401
    /// the client gets, and the reason counted in `/metrics`).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        now_ms: i64,
    ) -> Result<Arc<ApiKey>, (Unauthenticated, ApiError)> {
        let refuse = |why, message: String| (why, ApiError::unauthenticated(message));
        let secret = extract_secret(headers).ok_or_else(|| {
            refuse(
                Unauthenticated::Missing,
                format!("missing API key: send it as {KEY_HEADERS}"),
            )
        })?;
        let hash = crate::store::hash_secret(secret);
        let key = crate::sync::read(&self.by_hash)
            .get(&hash)
            .cloned()
            .ok_or_else(|| refuse(Unauthenticated::Invalid, "invalid API key".into()))?;
        if key.revoked_at.is_some() {
            return Err(refuse(
                Unauthenticated::Revoked,
                format!("API key {} has been revoked", key.id),
            ));
        }
        if key.expires_at.is_some_and(|t| t <= now_ms) {
            return Err(refuse(
                Unauthenticated::Expired,
                format!("API key {} has expired", key.id),
            ));
        }
        Ok(key)
    }
}

/// Tenant admin tokens by secret hash, loaded at start and kept current by the admin
/// API (a revoked token stops working at once).
#[derive(Default)]
pub struct AdminTokens(RwLock<HashMap<String, AdminToken>>);

impl AdminTokens {
    /// The index of `tokens`.
    pub fn new(tokens: Vec<AdminToken>) -> Self {
        Self(RwLock::new(
            tokens
                .into_iter()
                .map(|t| (t.secret_hash.clone(), t))
                .collect(),
        ))
    }

    /// Replaces every token (reloaded from the store after another replica changed
    /// them).
    pub fn replace_all(&self, tokens: Vec<AdminToken>) {
        *crate::sync::write(&self.0) = tokens
            .into_iter()
            .map(|t| (t.secret_hash.clone(), t))
            .collect();
    }

    /// Adds or replaces a token (after create or revoke).
    pub fn upsert(&self, token: AdminToken) {
        let mut m = crate::sync::write(&self.0);
        m.insert(token.secret_hash.clone(), token);
    }

    /// The live token with this secret.
    pub fn find(&self, secret: &str) -> Option<AdminToken> {
        let m = crate::sync::read(&self.0);
        m.get(&crate::store::hash_secret(secret))
            .filter(|t| t.revoked_at.is_none())
            .cloned()
    }
}

/// The key secret from whichever supported header carries it.
fn extract_secret(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !token.is_empty() {
            return Some(token);
        }
    }
    [names::X_API_KEY, names::PORTKEY_API_KEY]
        .iter()
        .filter_map(|h| headers.get(h).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .find(|v| !v.is_empty())
}

/// Refuses (403) a request that steps outside what its key is bound to: another
/// tenant, team or user named in the metadata, or a model the key may not use.
pub fn check_scope(key: &ApiKey, metadata: &Metadata, model: Option<&str>) -> Result<(), ApiError> {
    let bound = [
        ("tenant", Some(&key.tenant_id)),
        ("team", key.team.as_ref()),
        ("user", key.user.as_ref()),
    ];
    for (field, bound) in bound {
        if let (Some(bound), Some(claimed)) = (bound, metadata.get(field))
            && bound != claimed
        {
            return Err(ApiError::forbidden(format!(
                "API key {} is bound to {field} '{bound}' but the request's metadata names {field} '{claimed}'",
                key.id
            )));
        }
    }
    if let (Some(allowed), Some(model)) = (&key.models, model)
        && !allowed.iter().any(|p| crate::glob::matches(p, model))
    {
        return Err(ApiError::forbidden(format!(
            "API key {} may not use model '{model}'; allowed: {}",
            key.id,
            allowed.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(revoked: bool) -> ApiKey {
        ApiKey {
            id: "key_1".into(),
            tenant_id: "acme".into(),
            name: "k".into(),
            team: None,
            user: None,
            models: None,
            prefix: "tg-abc".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: revoked.then_some(1),
            secret_hash: crate::store::hash_secret("tg-secret"),
        }
    }

    #[test]
    fn a_revoke_is_applied_even_after_a_panic_poisoned_the_index() {
        let cache = Arc::new(KeyCache::default());
        cache.upsert(key(false));
        let c = cache.clone();
        let _ = std::thread::spawn(move || {
            let _held = c.by_hash.write();
            panic!("poison the index");
        })
        .join();
        assert!(cache.by_hash.is_poisoned());
        cache.upsert(key(true));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "tg-secret".parse().expect("header"));
        let (why, err) = cache.authenticate(&headers, 0).expect_err("revoked");
        assert_eq!(why, Unauthenticated::Revoked);
        assert!(err.message.contains("revoked"));
    }
}
