//! The data plane's HTTP surface: the model routes of both APIs, the listener that
//! accepts their connections, the front door (request ids and the per-address gate on
//! unauthenticated requests), and the JSON fallbacks that keep every answer in the
//! client's API shape. The admin API and the console are routed beside it by `server`.

mod forward;
pub mod front_door;
pub mod listener;
mod messages;
mod models;
mod stream;

use crate::error::ApiError;
use crate::pipeline::Pipeline;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;

/// What the data plane's handlers read: the request path's state, plus what the HTTP
/// front door itself enforces.
pub struct DataPlane {
    /// The request path's state.
    pub pipeline: Arc<Pipeline>,
    /// Unauthenticated requests in flight per client address.
    pub preauth: Arc<crate::auth::preauth::PreAuthGate>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive once its key is accepted.
    pub body_read_timeout: Duration,
}

impl std::ops::Deref for DataPlane {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// The id of the request being served, set by the front door.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// The data plane's routes (the server adds the admin API, the console, the fallbacks
/// and the layers).
pub fn router(state: Arc<DataPlane>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/chat/completions", post(messages::chat_completions))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// The API a request to `path` speaks, for answers given before (or instead of) its
/// route: OpenAI's paths get OpenAI-shaped errors, everything else Anthropic's.
pub fn api_of_path(path: &str) -> crate::api::Api {
    const OPENAI: [&str; 4] = [
        "/v1/chat",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
    ];
    if OPENAI.iter().any(|p| path.starts_with(p)) {
        crate::api::Api::OpenAi
    } else {
        crate::api::Api::Anthropic
    }
}

/// Any path no route takes: 404 in the shape of the API the path belongs to.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let flavor = api_of_path(uri.path());
    ApiError::new(
        crate::error::ErrorKind::NotFound,
        format!("no route for {}", uri.path()),
    )
    .into_response_for(flavor)
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::invalid(format!("method {method} is not allowed on {}", uri.path()))
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .into_response()
}
