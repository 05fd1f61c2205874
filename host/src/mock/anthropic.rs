//! The mock's Anthropic Messages API.

use super::MockState;
use super::directive::{Behavior, texts};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Parses, records and authorizes a request; `Err` is the answer to send instead.
fn accept(
    s: &MockState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Behavior), Response> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("invalid JSON: {e}"),
        )
    })?;
    s.record("POST", path, headers, &v);
    if !s.authorized(headers) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    Ok((v.clone(), s.behavior_for(&v)))
}

/// Applies delay and failure directives; `Some` is the failure answer.
async fn misbehave(b: &Behavior) -> Option<Response> {
    if b.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.delay_ms)).await;
    }
    if let Some(status) = b.status {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = error(code, error_type(status), &format!("mock failure {status}"));
        if let Some(ra) = b.retry_after
            && let Ok(v) = HeaderValue::from_str(&ra.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Some(r);
    }
    if b.garbage {
        let mut r = (StatusCode::OK, "<html>definitely not json").into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Some(r);
    }
    None
}

/// ~4 characters per token, at least 1.
fn estimate_tokens(body: &Value) -> u64 {
    let chars: usize = texts(body).iter().map(|t| t.len()).sum();
    (chars as u64 / 4).max(1)
}

/// The reply's words: the behaviour's text, else an echo of the last user message.
fn reply_words(body: &Value, b: &Behavior) -> Vec<String> {
    let text = match &b.text {
        Some(t) => t.clone(),
        None => {
            let last = body
                .get("messages")
                .and_then(Value::as_array)
                .and_then(|m| {
                    m.iter()
                        .rev()
                        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                })
                .map(|m| {
                    let mut t = Vec::new();
                    super::directive::texts(&json!({"messages": [m]}))
                        .into_iter()
                        .for_each(|s| t.push(s.to_string()));
                    t.join(" ")
                })
                .unwrap_or_default();
            format!("echo: {last}")
        }
    };
    let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if let Some(n) = b.tokens {
        let n = n as usize;
        let mut i = 0;
        while words.len() < n {
            words.push(format!("word{i}"));
            i += 1;
        }
        words.truncate(n.max(1));
    }
    let max = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX) as usize;
    words.truncate(max.max(1));
    words
}

fn model_of(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string()
}

/// `POST /v1/messages`.
pub async fn messages(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, b) = match accept(&s, "/v1/messages", &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = misbehave(&b).await {
        return r;
    }
    let words = reply_words(&req, &b);
    let max = req
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let stop_reason = if (words.len() as u64) >= max {
        "max_tokens"
    } else {
        "end_turn"
    };
    let input = estimate_tokens(&req);
    let id = format!("msg_mock{}", crate::ids::random_token(16));
    let model = model_of(&req);
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        return stream(id, model, words, input, stop_reason, b);
    }
    let text = words.join(" ");
    let out = json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {
            "input_tokens": input, "output_tokens": words.len(),
            "cache_creation_input_tokens": b.cache_write, "cache_read_input_tokens": b.cache_read,
        },
    });
    let mut r = (StatusCode::OK, out.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert("request-id", HeaderValue::from_static("req_mock_upstream"));
    r
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn stream(
    id: String,
    model: String,
    words: Vec<String>,
    input: u64,
    stop_reason: &str,
    b: Behavior,
) -> Response {
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1,
                      "cache_creation_input_tokens": b.cache_write, "cache_read_input_tokens": b.cache_read}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    let deltas_start = events.len();
    for (i, w) in words.iter().enumerate() {
        let text = if i == 0 { w.clone() } else { format!(" {w}") };
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": words.len()}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));

    let cut = b.drop_after.map(|n| deltas_start + n as usize);
    let stall = b.stall_after.map(|n| deltas_start + n as usize);
    let gap = Duration::from_millis(b.gap_ms.max(1));
    let body = futures_util::stream::unfold(0usize, move |i| {
        let events = events.clone();
        async move {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            if stall == Some(i) {
                std::future::pending::<()>().await;
            }
            if cut == Some(i) {
                return Some((
                    Err(std::io::Error::other("mock dropped the stream")),
                    usize::MAX,
                ));
            }
            let ev = events.get(i)?.clone();
            Some((Ok::<_, std::io::Error>(ev), i + 1))
        }
    });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, b) = match accept(&s, "/v1/messages/count_tokens", &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = misbehave(&b).await {
        return r;
    }
    axum::Json(json!({ "input_tokens": estimate_tokens(&req) })).into_response()
}

/// `GET /v1/models`.
pub async fn models(State(s): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    s.record("GET", "/v1/models", &headers, &Value::Null);
    if !s.authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    let ids = ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"];
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-09-29T00:00:00Z"}))
        .collect();
    axum::Json(json!({"data": data, "has_more": false, "first_id": ids[0], "last_id": ids[2]}))
        .into_response()
}
