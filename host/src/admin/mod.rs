//! The admin JSON API under `/admin/v1`, guarded by the admin token
//! (`TOLLGATE_ADMIN_TOKEN`): tenants, keys, request logs, usage, budgets, alerts and
//! policy bundles.

mod bundles;
mod logs;
mod metrics;
mod query;
mod roles;
mod usage;

pub use roles::Caller;

pub use query::parse_log_query;

use crate::control::ControlPlane;
use crate::error::{ApiError, ErrorKind};
use crate::store::NewKey;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The admin API under `/admin/v1` (every route behind the admin-token check) and the
/// Prometheus scrape at `/metrics`.
pub fn router(state: Arc<ControlPlane>) -> axum::Router {
    let api = Router::new()
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/tenants/{id}", get(get_tenant))
        .route("/tenants/{id}/keys", get(list_tenant_keys).post(create_key))
        .route("/keys", get(list_keys))
        .route("/keys/{id}", get(get_key).delete(revoke_key))
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/whoami", get(whoami))
        .route("/logs", get(logs::list))
        .route("/logs/export", get(logs::export))
        .route("/logs/{id}", get(logs::detail))
        .route("/traces", get(logs::traces))
        .route("/traces/{id}", get(logs::trace))
        .route("/analytics", get(logs::analytics))
        .route("/usage", get(usage::usage))
        .route("/budgets", get(usage::budgets))
        .route("/alerts", get(usage::alerts))
        .merge(bundles::routes())
        .route("/tenants/{id}/admin-tokens", post(create_admin_token))
        .route("/admin-tokens/{id}/revoke", post(revoke_admin_token))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .nest("/admin/v1", api)
        .route("/metrics", get(metrics::scrape))
        .with_state(state)
}

async fn require_admin(
    State(state): State<Arc<ControlPlane>>,
    mut req: Request,
    next: Next,
) -> Response {
    use crate::telemetry::Unauthenticated;
    let caller = match presented_token(req.headers())
        .map_err(|e| (Unauthenticated::Missing, e))
        .and_then(|t| roles::identify(&state, t).map_err(|e| (Unauthenticated::Invalid, e)))
    {
        Ok(c) => c,
        Err((why, e)) => {
            state.metrics.protection.unauthenticated(why);
            return e.into_response();
        }
    };
    crate::auth::preauth::authenticated(req.extensions());
    if let Err(e) = roles::authorize(&state, &caller, &mut req).await {
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Whether `headers` present the platform admin token (`/metrics` takes no other).
pub(crate) fn is_platform(state: &ControlPlane, headers: &axum::http::HeaderMap) -> bool {
    presented_token(headers)
        .and_then(|t| roles::identify(state, t))
        .is_ok_and(|c| c == Caller::Platform)
}

fn presented_token(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-admin-token").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthenticated("admin API: missing admin token (Authorization: Bearer …)")
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdminToken {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /tenants/{id}/admin-tokens` (platform only): a token that manages that tenant;
/// its secret is in the answer only.
async fn create_admin_token(
    State(state): State<Arc<ControlPlane>>,
    Path(tenant): Path<String>,
    body: Result<Json<NewAdminToken>, axum::extract::rejection::JsonRejection>,
) -> AdminResult<Response> {
    let Json(req) = body.map_err(json_rejection)?;
    let name = req.name.unwrap_or_else(|| format!("{tenant}-admin"));
    let (token, secret) = state
        .store
        .create_admin_token(tenant, name)
        .await
        .map_err(ApiError::from)?;
    state.admin_tokens.upsert(token.clone());
    let mut body = serde_json::to_value(&token).unwrap_or_default();
    if let Some(o) = body.as_object_mut() {
        o.insert("token".into(), secret.into());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /admin-tokens/{id}/revoke` (platform only).
async fn revoke_admin_token(
    State(state): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let token = state
        .store
        .revoke_admin_token(id)
        .await
        .map_err(ApiError::from)?;
    state.admin_tokens.upsert(token.clone());
    Ok(Json(token).into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type AdminResult<T> = Result<T, ApiError>;

/// 400 naming the query parameter at fault.
fn invalid(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("{field}: {e}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

async fn create_tenant(
    State(state): State<Arc<ControlPlane>>,
    body: Result<Json<NewTenant>, axum::extract::rejection::JsonRejection>,
) -> AdminResult<Response> {
    let Json(t) = body.map_err(json_rejection)?;
    if !crate::config::valid_id(&t.id) {
        return Err(ApiError::invalid(format!(
            "id: '{}' must match [A-Za-z0-9_.-]{{1,64}}",
            t.id
        )));
    }
    let name = t.name.unwrap_or_else(|| t.id.clone());
    let tenant = state
        .store
        .create_tenant(t.id, name)
        .await
        .map_err(ApiError::from)?;
    Ok((StatusCode::CREATED, Json(tenant)).into_response())
}

async fn list_tenants(State(state): State<Arc<ControlPlane>>) -> AdminResult<Response> {
    let tenants = state.store.list_tenants().await.map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({ "data": tenants })).into_response())
}

async fn get_tenant(
    State(state): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let t = state
        .store
        .get_tenant(id.clone())
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no tenant '{id}'")))?;
    let rt = state.tenant(&id);
    let mut body = serde_json::to_value(&t).unwrap_or_default();
    if let (Some(o), Some(s)) = (body.as_object_mut(), rt.chain.sandbox()) {
        o.insert(
            "sandbox".into(),
            serde_json::json!({
                "deadline_ms": s.limits.deadline.as_millis() as u64,
                "memory_mib": s.limits.memory_bytes >> 20,
                "max_instances": s.max_instances(),
                "instances_in_use": s.in_use(),
            }),
        );
        o.insert("bundle_version".into(), rt.version.into());
        o.insert("platform_version".into(), rt.platform_version.into());
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("layers".into(), layers(&state, &rt));
    }
    Ok(Json(body).into_response())
}

/// The layers a tenant's requests pass through, in order: the platform bundle, the
/// operator's rules pinned on the tenant (only the platform token changes them), and
/// the tenant's own bundle.
fn layers(state: &ControlPlane, rt: &crate::tenancy::TenantRuntime) -> serde_json::Value {
    let labels = |ps: &[crate::plugins::ConfiguredPlugin]| -> Vec<String> {
        ps.iter().map(|p| p.label.to_string()).collect()
    };
    let platform = state.tenants.platform();
    serde_json::json!({
        "platform": {
            "version": platform.version,
            "plugins": labels(&platform.plugins),
        },
        "pinned": {
            "source": if rt.pinned.is_empty() { "none" } else { rt.pinned.source.as_str() },
            "plugins": labels(&rt.pinned.plugins),
            "allowed_providers": rt.pinned.allowed_providers,
            "allowed_models": rt.pinned.allowed_models,
        },
        "own": {
            "version": rt.version,
            "plugins": labels(&rt.own),
            "default_provider": rt.default_provider,
        },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[serde(flatten)]
    key: NewKeyFields,
    /// Relative expiry in seconds, an alternative to `expires_at`.
    #[serde(default)]
    expires_in_s: Option<i64>,
}

#[derive(Deserialize)]
struct NewKeyFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    expires_at: Option<i64>,
}

async fn create_key(
    State(state): State<Arc<ControlPlane>>,
    Path(tenant): Path<String>,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> AdminResult<Response> {
    let Json(req) = body.map_err(json_rejection)?;
    let expires_at = match (req.key.expires_at, req.expires_in_s) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "set expires_at or expires_in_s, not both",
            ));
        }
        (at, None) => at,
        (None, Some(s)) if s > 0 => Some(crate::ids::now_ms() + s * 1000),
        (None, Some(_)) => return Err(ApiError::invalid("expires_in_s: must be positive")),
    };
    if let Some(at) = expires_at
        && at <= crate::ids::now_ms()
    {
        return Err(ApiError::invalid(format!(
            "expires_at: {at} ({}) is in the past; a key must expire in the future",
            crate::ledger::rfc3339(at)
        )));
    }
    let new = NewKey {
        name: req.key.name,
        team: req.key.team,
        user: req.key.user,
        models: req.key.models,
        expires_at,
    };
    let (key, secret) = state
        .store
        .create_key(tenant, new)
        .await
        .map_err(ApiError::from)?;
    state.keys.upsert(key.clone());
    let mut body = serde_json::to_value(&key).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("secret".into(), secret.into());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_tenant_keys(
    State(state): State<Arc<ControlPlane>>,
    Path(tenant): Path<String>,
) -> AdminResult<Response> {
    let keys = state
        .store
        .list_keys(Some(tenant))
        .await
        .map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({ "data": keys })).into_response())
}

#[derive(Deserialize)]
struct KeysQuery {
    tenant: Option<String>,
}

async fn list_keys(
    State(state): State<Arc<ControlPlane>>,
    q: Result<axum::extract::Query<KeysQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult<Response> {
    let axum::extract::Query(q) = q.map_err(|e| ApiError::invalid(e.body_text()))?;
    let keys = state
        .store
        .list_keys(q.tenant)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({ "data": keys })).into_response())
}

async fn get_key(
    State(state): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let k = state
        .store
        .get_key(id.clone())
        .await
        .map_err(ApiError::from)?;
    k.map(|k| Json(k).into_response())
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no key '{id}'")))
}

async fn revoke_key(
    State(state): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    let key = state.store.revoke_key(id).await.map_err(ApiError::from)?;
    state.keys.upsert(key.clone());
    Ok(Json(key).into_response())
}

/// `GET /whoami`: which role the token has (the console adapts to it).
async fn whoami(axum::Extension(caller): axum::Extension<Caller>) -> Response {
    let body = match caller {
        Caller::Platform => serde_json::json!({ "role": "platform", "tenant": null }),
        Caller::Tenant { tenant, token_id } => {
            serde_json::json!({ "role": "tenant", "tenant": tenant, "token_id": token_id })
        }
    };
    Json(body).into_response()
}

fn json_rejection(e: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::invalid(e.body_text()).with_status(e.status())
}
