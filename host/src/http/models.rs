//! `GET /v1/models` and `GET /v1/models/{id}`: the models the caller's key may use,
//! in one JSON shape both the Anthropic and the OpenAI SDK parse (each reads its own
//! fields and ignores the other's).

use super::DataPlane;
use super::RequestId;
use crate::api::Api;
use crate::auth::preauth::PreAuthSlot;
use crate::error::{ApiError, ErrorKind};
use crate::pipeline::Pipeline;
use crate::pipeline::{self, Exchange};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most of a provider's model listing read: a hostile or broken upstream cannot make
/// the gateway buffer without end.
const MODELS_BODY_LIMIT: usize = 16 << 20;

/// Fixed creation time reported for configured models (they have no real one).
const CREATED: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

/// The API a models request speaks, guessed from SDK headers (both SDKs use this path).
fn flavor(headers: &HeaderMap) -> Api {
    let ua = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if headers.contains_key("anthropic-version") || !ua.starts_with("OpenAI") {
        Api::Anthropic
    } else {
        Api::OpenAi
    }
}

/// `GET /v1/models`.
pub async fn list(
    State(state): State<Arc<DataPlane>>,
    Extension(RequestId(id)): Extension<RequestId>,
    slot: Option<Extension<PreAuthSlot>>,
    headers: HeaderMap,
) -> Response {
    let mut ex = Exchange::new(&state.pipeline, &id, "models", flavor(&headers), &headers);
    match allowed_models(&state, &mut ex, &headers, slot).await {
        Ok(models) => {
            let data: Vec<Value> = models.iter().map(|(m, owner)| entry(m, owner)).collect();
            ex.finish(200, None);
            Json(json!({
                "object": "list",
                "data": data,
                "has_more": false,
                "first_id": models.first().map(|m| m.0.clone()),
                "last_id": models.last().map(|m| m.0.clone()),
            }))
            .into_response()
        }
        Err(e) => ex.fail(e),
    }
}

/// `GET /v1/models/{id}`.
pub async fn get(
    State(state): State<Arc<DataPlane>>,
    Extension(RequestId(id)): Extension<RequestId>,
    Path(model): Path<String>,
    slot: Option<Extension<PreAuthSlot>>,
    headers: HeaderMap,
) -> Response {
    let mut ex = Exchange::new(&state.pipeline, &id, "models", flavor(&headers), &headers);
    match allowed_models(&state, &mut ex, &headers, slot).await {
        Ok(models) => match models.iter().find(|(m, _)| *m == model) {
            Some((m, owner)) => {
                ex.finish(200, None);
                Json(entry(m, owner)).into_response()
            }
            None => ex.fail(ApiError::new(
                ErrorKind::NotFound,
                format!("model '{model}' is not available to this key"),
            )),
        },
        Err(e) => ex.fail(e),
    }
}

fn entry(model: &str, owner: &str) -> Value {
    json!({
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2025-01-01T00:00:00Z",
        "object": "model",
        "created": CREATED,
        "owned_by": owner,
    })
}

/// (model, provider) pairs the key may request: the tenant's advertised list, else every
/// provider's configured models, else what the default provider's upstream lists.
async fn allowed_models(
    state: &Pipeline,
    ex: &mut Exchange,
    headers: &HeaderMap,
    slot: Option<Extension<PreAuthSlot>>,
) -> Result<Vec<(String, String)>, ApiError> {
    let key = pipeline::authenticate(state, ex, headers)?;
    if let Some(Extension(slot)) = slot {
        slot.release();
    }
    let tenant = state.tenant(&key.tenant_id);
    let mut models: Vec<(String, String)> = Vec::new();
    fn push(models: &mut Vec<(String, String)>, m: &str, owner: &str) {
        if !models.iter().any(|(x, _)| x == m) {
            models.push((m.to_string(), owner.to_string()));
        }
    }
    if !tenant.models.is_empty() {
        for m in tenant.models.iter() {
            push(&mut models, m, "tollgate");
        }
    } else {
        let default =
            pipeline::default_provider(state, &state.tenant(&key.tenant_id), &key.tenant_id).ok();
        let mut providers: Vec<_> = default.iter().cloned().collect();
        providers.extend(state.providers.iter().cloned());
        // Only what the operator's pins let this tenant be served.
        let pins = &tenant.pinned;
        providers.retain(|p| pins.allows_provider(&p.id).is_ok());
        for p in &providers {
            for m in p.models.iter().filter(|m| pins.allows(&p.id, m).is_ok()) {
                push(&mut models, m, &p.id);
            }
        }
        if models.is_empty()
            && let Some(p) = default.filter(|p| pins.allows_provider(&p.id).is_ok())
        {
            for m in upstream_models(&p, headers).await? {
                if pins.allows(&p.id, &m).is_ok() {
                    push(&mut models, &m, &p.id);
                }
            }
        }
    }
    ex.record.provider = None;
    Ok(models
        .into_iter()
        .filter(|(m, _)| {
            key.models
                .as_ref()
                .is_none_or(|globs| globs.iter().any(|g| crate::glob::matches(g, m)))
        })
        .collect())
}

/// Model ids the provider's own `/v1/models` lists (both APIs use `data[].id`).
async fn upstream_models(
    p: &crate::providers::Provider,
    headers: &HeaderMap,
) -> Result<Vec<String>, ApiError> {
    let resp = p
        .send(
            Method::GET,
            "/v1/models?limit=1000",
            headers,
            Bytes::new(),
            None,
        )
        .await
        .map_err(|e| e.to_api_error())?;
    let status = resp.status();
    let body = resp
        .bytes(MODELS_BODY_LIMIT)
        .await
        .map_err(|e| p.classify(e).to_api_error())?
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Api,
                format!(
                    "provider '{}' listed more models than the gateway reads",
                    p.id
                ),
            )
            .with_status(axum::http::StatusCode::BAD_GATEWAY)
        })?;
    if !status.is_success() {
        return Err(ApiError::new(
            ErrorKind::from_status(status.as_u16()),
            format!(
                "provider '{}' could not list models: {}",
                p.id,
                crate::translate::upstream_error_message(&body)
            ),
        )
        .with_status(status));
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(v.get("data")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}
