//! The model endpoints of both APIs: Anthropic `/v1/messages` and
//! `/v1/messages/count_tokens`, OpenAI `/v1/chat/completions`. They share one path
//! through the pipeline; only the client's API shape differs.

use super::{RequestId, body_rejection, forward};
use crate::error::ApiFlavor;
use crate::pipeline::{self, Exchange};
use crate::plugins::Endpoint;
use crate::server::AppState;
use axum::Extension;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
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
    model_request(state, &id, headers, body, Endpoint::Messages).await
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    model_request(state, &id, headers, body, Endpoint::CountTokens).await
}

/// `POST /v1/chat/completions` (OpenAI), streamed or not.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    model_request(state, &id, headers, body, Endpoint::ChatCompletions).await
}

async fn model_request(
    state: Arc<AppState>,
    id: &str,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
) -> Response {
    let (name, flavor) = match endpoint {
        Endpoint::Messages => ("messages", ApiFlavor::Anthropic),
        Endpoint::CountTokens => ("count_tokens", ApiFlavor::Anthropic),
        Endpoint::ChatCompletions => ("chat_completions", ApiFlavor::OpenAi),
    };
    let mut ex = Exchange::new(&state, id, name, flavor, &headers);
    let body = match body {
        Ok(b) => b,
        Err(e) => return ex.fail(body_rejection(e)),
    };
    let admitted = match pipeline::admit(&state, &mut ex, &headers, body, endpoint).await {
        Ok(a) => a,
        Err(e) => return ex.fail(e),
    };
    forward::forward(ex, admitted, endpoint, &headers).await
}
