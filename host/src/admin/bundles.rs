//! Policy bundles over the admin API: apply, show, history, diff, rollback, for a
//! tenant (`/tenants/{id}/bundle...`) or the platform (`/bundle...`), and the audit log.

use super::{AdminResult, Caller, json_rejection};
use crate::bundles::{self, BundleRequest, Scope};
use crate::control::ControlPlane;
use crate::error::{ApiError, ErrorKind};
use crate::store::bundles::PLATFORM;
use axum::Extension;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The bundle routes, for both scopes.
pub fn routes() -> Router<Arc<ControlPlane>> {
    Router::new()
        .route("/bundle", get(platform_active).put(platform_apply))
        .route("/bundle/versions", get(platform_versions))
        .route("/bundle/versions/{v}", get(platform_version))
        .route("/bundle/diff", get(platform_diff))
        .route("/bundle/rollback", post(platform_rollback))
        .route("/tenants/{id}/bundle", get(tenant_active).put(tenant_apply))
        .route("/tenants/{id}/bundle/versions", get(tenant_versions))
        .route("/tenants/{id}/bundle/versions/{v}", get(tenant_version))
        .route("/tenants/{id}/bundle/diff", get(tenant_diff))
        .route("/tenants/{id}/bundle/rollback", post(tenant_rollback))
        .route("/tenants/{id}/bundle/replay", post(tenant_replay))
        .route("/audit", get(audit))
}

async fn apply(
    state: Arc<ControlPlane>,
    caller: Caller,
    scope: Scope,
    body: Result<Json<BundleRequest>, JsonRejection>,
) -> AdminResult<Response> {
    let Json(req) = body.map_err(json_rejection)?;
    let v = bundles::apply(&state, scope, req, &caller.author()).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn show(
    state: Arc<ControlPlane>,
    key: String,
    version: Option<u32>,
) -> AdminResult<Response> {
    let v = state
        .store
        .bundle_version(key, version)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "no such bundle version"))?;
    let spec = bundles::spec_json(&v);
    let mut out = serde_json::to_value(&v).unwrap_or_default();
    if let Some(o) = out.as_object_mut() {
        o.insert("bundle".into(), spec);
    }
    Ok(Json(out).into_response())
}

async fn versions(state: Arc<ControlPlane>, key: String) -> AdminResult<Response> {
    let data = state
        .store
        .bundle_versions(key)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "data": data })).into_response())
}

async fn diff(state: Arc<ControlPlane>, key: String, raw: Option<String>) -> AdminResult<Response> {
    let (mut from, mut to) = (None, None);
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        let n: u32 = v
            .parse()
            .map_err(|_| ApiError::invalid(format!("{k}: '{v}' is not a version number")))?;
        match &*k {
            "from" => from = Some(n),
            "to" => to = Some(n),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (from, to)"
                )));
            }
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::invalid("from and to: both versions are required"));
    };
    let a = state
        .store
        .bundle_version(key.clone(), Some(from))
        .await
        .map_err(ApiError::from)?;
    let b = state
        .store
        .bundle_version(key, Some(to))
        .await
        .map_err(ApiError::from)?;
    let missing = |n: u32| ApiError::new(ErrorKind::NotFound, format!("no bundle version {n}"));
    let (a, b) = (
        a.ok_or_else(|| missing(from))?,
        b.ok_or_else(|| missing(to))?,
    );
    let changes = bundles::diff(&bundles::spec_json(&a), &bundles::spec_json(&b));
    Ok(Json(json!({ "from": from, "to": to, "changes": changes })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    version: u32,
}

async fn rollback(
    state: Arc<ControlPlane>,
    caller: Caller,
    scope: Scope,
    body: Result<Json<Rollback>, JsonRejection>,
) -> AdminResult<Response> {
    let Json(r) = body.map_err(json_rejection)?;
    let v = bundles::rollback(&state, scope, r.version, &caller.author()).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn platform_apply(
    State(s): State<Arc<ControlPlane>>,
    Extension(c): Extension<Caller>,
    body: Result<Json<BundleRequest>, JsonRejection>,
) -> AdminResult<Response> {
    apply(s, c, Scope::Platform, body).await
}
async fn tenant_apply(
    State(s): State<Arc<ControlPlane>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<BundleRequest>, JsonRejection>,
) -> AdminResult<Response> {
    apply(s, c, Scope::Tenant(id), body).await
}
async fn platform_active(State(s): State<Arc<ControlPlane>>) -> AdminResult<Response> {
    show(s, PLATFORM.into(), None).await
}
async fn tenant_active(
    State(s): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    show(s, id, None).await
}
async fn platform_version(
    State(s): State<Arc<ControlPlane>>,
    Path(v): Path<u32>,
) -> AdminResult<Response> {
    show(s, PLATFORM.into(), Some(v)).await
}
async fn tenant_version(
    State(s): State<Arc<ControlPlane>>,
    Path((id, v)): Path<(String, u32)>,
) -> AdminResult<Response> {
    show(s, id, Some(v)).await
}
async fn platform_versions(State(s): State<Arc<ControlPlane>>) -> AdminResult<Response> {
    versions(s, PLATFORM.into()).await
}
async fn tenant_versions(
    State(s): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
) -> AdminResult<Response> {
    versions(s, id).await
}
async fn platform_diff(
    State(s): State<Arc<ControlPlane>>,
    RawQuery(q): RawQuery,
) -> AdminResult<Response> {
    diff(s, PLATFORM.into(), q).await
}
async fn tenant_diff(
    State(s): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> AdminResult<Response> {
    diff(s, id, q).await
}
async fn platform_rollback(
    State(s): State<Arc<ControlPlane>>,
    Extension(c): Extension<Caller>,
    body: Result<Json<Rollback>, JsonRejection>,
) -> AdminResult<Response> {
    rollback(s, c, Scope::Platform, body).await
}
async fn tenant_rollback(
    State(s): State<Arc<ControlPlane>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Rollback>, JsonRejection>,
) -> AdminResult<Response> {
    rollback(s, c, Scope::Tenant(id), body).await
}

/// `POST /tenants/{id}/bundle/replay`: what a candidate bundle would change over the
/// tenant's logged requests (nothing is applied).
async fn tenant_replay(
    State(s): State<Arc<ControlPlane>>,
    Path(id): Path<String>,
    body: Result<Json<bundles::ReplayRequest>, JsonRejection>,
) -> AdminResult<Response> {
    let Json(req) = body.map_err(json_rejection)?;
    if s.store
        .get_tenant(id.clone())
        .await
        .map_err(ApiError::from)?
        .is_none()
    {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("tenant '{id}' does not exist"),
        ));
    }
    let report = bundles::replay(&s, &id, req).await?;
    Ok(Json(report).into_response())
}

/// `GET /audit?tenant=&limit=`: bundle changes (applied, rolled back, refused), newest first.
async fn audit(
    State(s): State<Arc<ControlPlane>>,
    RawQuery(raw): RawQuery,
) -> AdminResult<Response> {
    let mut scope = None;
    let mut limit = 100u32;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "tenant" => scope = Some(v.into_owned()),
            "platform" => scope = Some(PLATFORM.to_string()),
            "limit" => {
                limit = v
                    .parse()
                    .map_err(|_| ApiError::invalid(format!("limit: '{v}' is not a number")))?
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter '{other}' (tenant, platform, limit)"
                )));
            }
        }
    }
    let limit = limit.clamp(1, 1000);
    let data = s
        .store
        .bundle_audit_log(scope, limit)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "data": data })).into_response())
}
