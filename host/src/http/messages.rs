//! The model endpoints of both APIs: Anthropic `/v1/messages` and
//! `/v1/messages/count_tokens`, OpenAI `/v1/chat/completions`. They share one path
//! through the pipeline; only the client's API shape differs.

use super::DataPlane;
use super::{RequestId, forward};
use crate::api::Api;
use crate::auth::preauth::PreAuthSlot;
use crate::error::{ApiError, ErrorKind};
use crate::pipeline::{self, Exchange};
use crate::plugins::Endpoint;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// `POST /v1/messages`, streamed or not.
pub async fn create(
    State(state): State<Arc<DataPlane>>,
    Extension(RequestId(id)): Extension<RequestId>,
    slot: Option<Extension<PreAuthSlot>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    model_request(state, &id, slot, headers, body, Endpoint::Messages).await
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(state): State<Arc<DataPlane>>,
    Extension(RequestId(id)): Extension<RequestId>,
    slot: Option<Extension<PreAuthSlot>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    model_request(state, &id, slot, headers, body, Endpoint::CountTokens).await
}

/// `POST /v1/chat/completions` (OpenAI), streamed or not.
pub async fn chat_completions(
    State(state): State<Arc<DataPlane>>,
    Extension(RequestId(id)): Extension<RequestId>,
    slot: Option<Extension<PreAuthSlot>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    model_request(state, &id, slot, headers, body, Endpoint::ChatCompletions).await
}

async fn model_request(
    state: Arc<DataPlane>,
    id: &str,
    slot: Option<Extension<PreAuthSlot>>,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let (name, flavor) = match endpoint {
        Endpoint::Messages => ("messages", Api::Anthropic),
        Endpoint::CountTokens => ("count_tokens", Api::Anthropic),
        Endpoint::ChatCompletions => ("chat_completions", Api::OpenAi),
    };
    let mut ex = Exchange::new(&state.pipeline, id, name, flavor, &headers);
    // The key first: a client without one never gets its body read.
    let key = match pipeline::authenticate(&state, &mut ex, &headers) {
        Ok(k) => k,
        Err(e) => return ex.fail(e),
    };
    if let Some(Extension(slot)) = slot {
        slot.release();
    }
    let body = match read_body(body, state.max_body_bytes, state.body_read_timeout).await {
        Ok(b) => b,
        Err(e) => return ex.fail(e),
    };
    let admitted = match pipeline::admit(&state, &mut ex, key, &headers, body, endpoint).await {
        Ok(a) => a,
        Err(e) => return ex.fail(e),
    };
    forward::forward(ex, admitted, endpoint, &headers).await
}

/// The whole request body, at most `max` bytes, within `timeout`.
async fn read_body(body: Body, max: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(ApiError::invalid(format!(
            "the request body did not arrive within {} s",
            timeout.as_secs()
        ))
        .with_status(StatusCode::REQUEST_TIMEOUT)),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            Err(if too_large {
                ApiError::new(
                    ErrorKind::RequestTooLarge,
                    format!("request body is too large (at most {max} bytes)"),
                )
            } else {
                ApiError::invalid(format!("could not read the request body: {e}"))
            })
        }
    }
}
