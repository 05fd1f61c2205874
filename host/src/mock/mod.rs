//! A mock Anthropic-compatible upstream for tests and offline use (`tollgate mock`, and
//! in-process in the embedded default).
//!
//! It answers `/v1/messages` (whole or streamed), `/v1/messages/count_tokens` and
//! `/v1/models` with realistic bodies and usage, echoing the last user message. Failures
//! are requested per call, so every gateway failure path can be exercised offline:
//! - a directive in any message text: `[[mock status=503 retry_after=2 delay_ms=100
//!   drop_after=3 stall_after=2 tokens=20 text="hi" garbage=1 only=mock-a]]`;
//! - or the control API: `POST /_mock/behavior` (same keys as JSON, plus `times`),
//!   `DELETE /_mock/behavior`, `GET|DELETE /_mock/requests` (what was received).

mod anthropic;
mod directive;

pub use directive::Behavior;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// How a mock instance behaves.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// Name matched by `only=` directives and shown in replies.
    pub name: String,
    /// When set, requests must carry it as `x-api-key` or `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Applied to every request (directives and the control API take precedence).
    pub default_behavior: Behavior,
}

/// A request the mock received, for tests to inspect.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: serde_json::Map<String, Value>,
    pub body: Value,
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
        if let Ok(mut guard) = self.scripted.lock()
            && let Some(s) = guard.as_mut()
        {
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
        if let Ok(mut r) = self.recorded.lock() {
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

/// The mock's routes.
pub fn router(cfg: MockConfig) -> Router {
    let state = Arc::new(MockState {
        cfg,
        scripted: Mutex::new(None),
        recorded: Mutex::new(Vec::new()),
    });
    Router::new()
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/models", get(anthropic::models))
        .route("/_mock/behavior", post(set_behavior).delete(reset_behavior))
        .route("/_mock/requests", get(list_requests).delete(clear_requests))
        .route("/_mock/stats", get(stats))
        .with_state(state)
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, cfg: MockConfig) -> std::io::Result<()> {
    axum::serve(listener, router(cfg)).await
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
    if let Ok(mut g) = s.scripted.lock() {
        *g = Some(Scripted { behavior, times });
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn reset_behavior(State(s): State<Arc<MockState>>) -> StatusCode {
    if let Ok(mut g) = s.scripted.lock() {
        *g = None;
    }
    StatusCode::NO_CONTENT
}

async fn list_requests(State(s): State<Arc<MockState>>) -> Response {
    let r = s.recorded.lock().map(|r| r.clone()).unwrap_or_default();
    axum::Json(r).into_response()
}

async fn clear_requests(State(s): State<Arc<MockState>>) -> StatusCode {
    if let Ok(mut r) = s.recorded.lock() {
        r.clear();
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(s): State<Arc<MockState>>) -> Response {
    let n = s.recorded.lock().map(|r| r.len()).unwrap_or(0);
    axum::Json(json!({ "requests": n })).into_response()
}
