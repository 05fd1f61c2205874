//! Anthropic Messages API routes: `/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`.

use super::{RequestId, body_rejection, forward};
use crate::error::ApiFlavor;
use crate::pipeline::{self, Exchange};
use crate::plugins::Endpoint;
use crate::server::AppState;
use axum::Extension;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;

/// `POST /v1/messages`, streamed or not.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    model_request(
        state,
        &id,
        headers,
        body,
        Endpoint::Messages,
        "messages",
        "/v1/messages",
    )
    .await
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    model_request(
        state,
        &id,
        headers,
        body,
        Endpoint::CountTokens,
        "count_tokens",
        "/v1/messages/count_tokens",
    )
    .await
}

async fn model_request(
    state: Arc<AppState>,
    id: &str,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
    name: &str,
    upstream_path: &str,
) -> Response {
    let mut ex = Exchange::new(&state, id, name, ApiFlavor::Anthropic, &headers);
    let body = match body {
        Ok(b) => b,
        Err(e) => return ex.fail(body_rejection(e)),
    };
    let admitted = match pipeline::admit(&state, &mut ex, &headers, body, endpoint).await {
        Ok(a) => a,
        Err(e) => return ex.fail(e),
    };
    forward::forward(ex, admitted, Method::POST, upstream_path, &headers).await
}

/// `GET /v1/models`: the models of the caller's provider.
pub async fn models(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut ex = Exchange::new(&state, &id, "models", ApiFlavor::Anthropic, &headers);
    let key = match pipeline::authenticate(&state, &mut ex, &headers) {
        Ok(k) => k,
        Err(e) => return ex.fail(e),
    };
    let tenant = state.tenant(&key.tenant_id);
    let Some(provider) = tenant
        .default_provider
        .as_deref()
        .or(state.default_provider.as_deref())
        .and_then(|p| state.providers.get(p))
        .cloned()
    else {
        return ex.fail(crate::error::ApiError::invalid(format!(
            "no provider is configured for tenant '{}'",
            key.tenant_id
        )));
    };
    ex.record.provider = Some(provider.id.clone());
    let path = match query {
        Some(q) if !q.is_empty() => format!("/v1/models?{q}"),
        _ => "/v1/models".to_string(),
    };
    let admitted = pipeline::Admitted {
        key,
        provider,
        body: Bytes::new(),
        stream: false,
        model: None,
    };
    forward::forward(ex, admitted, Method::GET, &path, &headers).await
}
