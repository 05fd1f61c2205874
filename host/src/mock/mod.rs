//! A mock upstream for tests and offline use (`tollgate mock`, and in-process in the
//! embedded default), speaking Anthropic, OpenAI or both ([`Flavor`]).
//!
//! Routes by flavour (the `/_mock/*` control routes and `GET /v1/models` exist in all):
//! - `anthropic`: `POST /v1/messages` (whole or streamed), `POST /v1/messages/count_tokens`,
//!   and an Anthropic-shaped `GET /v1/models`;
//! - `openai`: `POST /v1/chat/completions` (whole or streamed; a usage chunk only with
//!   `stream_options.include_usage`) and an OpenAI-shaped `GET /v1/models`; `/v1/messages`
//!   answers 404;
//! - `both` (the default): all of them; `/v1/models` lists both families in a merged shape
//!   that both SDKs parse.
//!
//! Replies are realistic bodies with consistent usage (input: ~4 characters of message text
//! per token; output: one per word, plus for a tool call one per streamed argument piece
//! and one for the call; the same whole and streamed), echoing the last user message (`echo: ...`), or,
//! when the request ends with a tool result (an Anthropic `tool_result` block or an OpenAI
//! `role: "tool"` message), `tool result: ...`. Errors are shaped like the API that was
//! called. Behaviour is requested per call, so every gateway path can be exercised offline:
//! - a directive in any message text (string or text parts, system prompt optional):
//!   `[[mock status=503 retry_after=2 delay_ms=100 drop_after=3 stall_after=2 tokens=20
//!   text="hi" garbage=1 gap_ms=10 cache_read=50 cache_write=10 only=mock-a]]`, where
//!   `tool=get_weather tool_args='{"location":"Paris"}'` answers with a tool call (`text`
//!   then becomes a preface; values may be double- or single-quoted);
//! - or the control API: `POST /_mock/behavior` (same keys as JSON, plus `times`),
//!   `DELETE /_mock/behavior`, `GET|DELETE /_mock/requests` (what was received, in every
//!   flavour), `GET /_mock/stats`.

mod anthropic;
mod directive;
mod openai;
mod reply;
#[cfg(test)]
mod tests;

pub use directive::Behavior;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reply::{Api, json_response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// Which provider API a mock plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// The Anthropic Messages API.
    Anthropic,
    /// The OpenAI Chat Completions API.
    #[value(name = "openai")]
    OpenAi,
    /// Both APIs.
    #[default]
    Both,
}

impl Flavor {
    fn anthropic(self) -> bool {
        matches!(self, Flavor::Anthropic | Flavor::Both)
    }

    fn openai(self) -> bool {
        matches!(self, Flavor::OpenAi | Flavor::Both)
    }
}

/// How a mock instance behaves.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// Name matched by `only=` directives and shown in replies.
    pub name: String,
    /// When set, requests must carry it as `x-api-key` or `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Applied to every request (directives and the control API take precedence).
    pub default_behavior: Behavior,
    /// Which API(s) to serve.
    pub flavor: Flavor,
}

/// A request the mock received, for tests to inspect.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Request headers (non-UTF-8 values as empty strings).
    pub headers: serde_json::Map<String, Value>,
    /// The JSON body; a string when it was not JSON, `null` when there was none.
    pub body: Value,
    /// When it arrived (Unix milliseconds).
    pub ts_ms: i64,
}

struct Scripted {
    behavior: Behavior,
    /// Requests left to apply it to; `None` = until reset.
    times: Option<u32>,
}

/// Shared state of one mock server.
pub struct MockState {
    cfg: MockConfig,
    scripted: Mutex<Option<Scripted>>,
    recorded: Mutex<Vec<Recorded>>,
}

impl MockState {
    /// The behaviour for this request: directive, else scripted, else the default.
    fn behavior_for(&self, body: &Value) -> Behavior {
        if let Some(b) = directive::find(body, &self.cfg.name) {
            return b;
        }
        let mut guard = crate::sync::lock(&self.scripted);
        if let Some(s) = guard.as_mut() {
            let b = s.behavior.clone();
            if let Some(t) = s.times.as_mut() {
                *t = t.saturating_sub(1);
                if *t == 0 {
                    *guard = None;
                }
            }
            return b;
        }
        self.cfg.default_behavior.clone()
    }

    fn record(&self, method: &str, path: &str, headers: &HeaderMap, body: &Value) {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    Value::String(v.to_str().unwrap_or("").to_string()),
                )
            })
            .collect();
        {
            let mut r = crate::sync::lock(&self.recorded);
            if r.len() >= 10_000 {
                r.remove(0);
            }
            r.push(Recorded {
                method: method.into(),
                path: path.into(),
                headers,
                body: body.clone(),
                ts_ms: crate::ids::now_ms(),
            });
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.cfg.api_key else {
            return true;
        };
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        bearer == Some(expected.as_str()) || key == Some(expected.as_str())
    }
}

/// The mock's routes for `cfg.flavor`.
pub fn router(cfg: MockConfig) -> Router {
    let flavor = cfg.flavor;
    let state = Arc::new(MockState {
        cfg,
        scripted: Mutex::new(None),
        recorded: Mutex::new(Vec::new()),
    });
    let mut r = Router::new();
    if flavor.anthropic() {
        r = r
            .route("/v1/messages", post(anthropic::messages))
            .route("/v1/messages/count_tokens", post(anthropic::count_tokens));
    }
    if flavor.openai() {
        r = r.route("/v1/chat/completions", post(openai::chat_completions));
    }
    r.route("/v1/models", get(models))
        .route("/_mock/behavior", post(set_behavior).delete(reset_behavior))
        .route("/_mock/requests", get(list_requests).delete(clear_requests))
        .route("/_mock/stats", get(stats))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, cfg: MockConfig) -> std::io::Result<()> {
    axum::serve(listener, router(cfg)).await
}

/// The API a flavour-neutral route answers as: the flavour's, or under `both` OpenAI for a
/// request with a bearer token and no `anthropic-version`.
fn api_for(flavor: Flavor, headers: &HeaderMap) -> Api {
    match flavor {
        Flavor::Anthropic => Api::Anthropic,
        Flavor::OpenAi => Api::OpenAi,
        Flavor::Both => {
            let bearer = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer "));
            if bearer && !headers.contains_key("anthropic-version") {
                Api::OpenAi
            } else {
                Api::Anthropic
            }
        }
    }
}

/// `GET /v1/models`, shaped by flavour; `both` merges the two shapes and model families.
async fn models(State(s): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    s.record("GET", "/v1/models", &headers, &Value::Null);
    if !s.authorized(&headers) {
        return reply::unauthorized(api_for(s.cfg.flavor, &headers));
    }
    let body = match s.cfg.flavor {
        Flavor::Anthropic => anthropic::models_body(),
        Flavor::OpenAi => openai::models_body(),
        Flavor::Both => {
            let ids: Vec<&str> = anthropic::MODELS
                .iter()
                .chain(openai::MODELS.iter())
                .copied()
                .collect();
            let data: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({"id": id, "object": "model", "created": openai::MODELS_CREATED,
                        "owned_by": "mock", "type": "model", "display_name": id,
                        "created_at": anthropic::MODELS_CREATED_AT})
                })
                .collect();
            json!({"object": "list", "data": data, "has_more": false,
                "first_id": ids.first(), "last_id": ids.last()})
        }
    };
    json_response(StatusCode::OK, &body)
}

/// Any other route: recorded, then a provider-shaped 404.
async fn not_found(
    State(s): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let recorded = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    s.record(method.as_str(), uri.path(), &headers, &recorded);
    let message = format!("Invalid URL ({method} {})", uri.path());
    reply::error(
        api_for(s.cfg.flavor, &headers),
        StatusCode::NOT_FOUND,
        &message,
    )
}

async fn set_behavior(State(s): State<Arc<MockState>>, body: axum::body::Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad behavior JSON: {e}")).into_response();
        }
    };
    let times = v.get("times").and_then(Value::as_u64).map(|t| t as u32);
    let behavior = match Behavior::from_json(&v) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    *crate::sync::lock(&s.scripted) = Some(Scripted { behavior, times });
    StatusCode::NO_CONTENT.into_response()
}

async fn reset_behavior(State(s): State<Arc<MockState>>) -> StatusCode {
    *crate::sync::lock(&s.scripted) = None;
    StatusCode::NO_CONTENT
}

async fn list_requests(State(s): State<Arc<MockState>>) -> Response {
    let r = crate::sync::lock(&s.recorded).clone();
    axum::Json(r).into_response()
}

async fn clear_requests(State(s): State<Arc<MockState>>) -> StatusCode {
    crate::sync::lock(&s.recorded).clear();
    StatusCode::NO_CONTENT
}

async fn stats(State(s): State<Arc<MockState>>) -> Response {
    let n = crate::sync::lock(&s.recorded).len();
    axum::Json(json!({ "requests": n })).into_response()
}
