//! The HTTP surface: routes, the request-id layer, and the JSON fallbacks that keep every
//! answer in the client's API shape.

pub mod client_gate;
mod forward;
pub mod listener;
mod messages;
mod metrics;
mod models;
mod stream;

use crate::error::ApiError;
use crate::server::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// Response header carrying the gateway's request id (Anthropic's name for it).
pub const REQUEST_ID_HEADER: &str = "request-id";

/// The id of the request being served, set by the request-id layer.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// All routes of the gateway.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.max_body_bytes;
    Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/chat/completions", post(messages::chat_completions))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::scrape))
        .nest("/admin/v1", crate::admin::router(state.clone()))
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client_gate::gate,
        ))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Gives every request an id and echoes it on every response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id: Arc<str> = Arc::from(crate::ids::request_id());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v.clone());
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn not_found(uri: axum::http::Uri) -> Response {
    // OpenAI SDK paths get OpenAI-shaped errors.
    let flavor = if uri.path().starts_with("/v1/messages") {
        crate::error::ApiFlavor::Anthropic
    } else if [
        "/v1/chat",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
    ]
    .iter()
    .any(|p| uri.path().starts_with(p))
    {
        crate::error::ApiFlavor::OpenAi
    } else {
        crate::error::ApiFlavor::Anthropic
    };
    ApiError::new(
        crate::error::ErrorKind::NotFound,
        format!("no route for {}", uri.path()),
    )
    .into_response_for(flavor)
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::invalid(format!("method {method} is not allowed on {}", uri.path()))
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .into_response()
}
