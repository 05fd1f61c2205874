//! The mock's OpenAI Chat Completions API.

use super::reply::{Api, Reply, Stop, accept, json_response, misbehave, model_of, now_secs, sse};
use super::{Behavior, MockState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The models `GET /v1/models` lists.
pub(super) const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "o3-mini"];
/// Their `created` (Unix seconds).
pub(super) const MODELS_CREATED: i64 = 1_715_367_049;

/// An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
pub(super) fn error_body(status: StatusCode, message: &str) -> Value {
    let (kind, code) = match status.as_u16() {
        400 | 413 | 422 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        403 => (
            "permission_error",
            json!("unsupported_country_region_territory"),
        ),
        404 => ("invalid_request_error", json!("not_found")),
        429 => ("rate_limit_exceeded", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "stop",
        Stop::Length => "length",
        Stop::Tool => "tool_calls",
    }
}

/// The usage object; `prompt_tokens` includes the cached tokens, as OpenAI reports it.
fn usage(reply: &Reply, b: &Behavior) -> Value {
    let prompt = reply.input_tokens + b.cache_read;
    let completion = reply.output_tokens();
    json!({
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": b.cache_read},
        "completion_tokens_details": {"reasoning_tokens": 0},
    })
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, b) = match accept(&s, Api::OpenAi, "/v1/chat/completions", &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if let Some(r) = invalid(&req) {
        return r;
    }
    if let Some(r) = misbehave(Api::OpenAi, &b).await {
        return r;
    }
    let max = req
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| req.get("max_tokens").and_then(Value::as_u64));
    let reply = Reply::plan(&req, &b, max);
    let head = Head {
        id: format!("chatcmpl-{}", crate::ids::random_token(29)),
        call_id: format!("call_{}", crate::ids::random_token(24)),
        created: now_secs(),
        model: model_of(&req),
    };
    let mut r = if req.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        stream(&head, &reply, &b, include_usage)
    } else {
        json_response(StatusCode::OK, &completion(&head, &reply, &b))
    };
    r.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_static("req_mock_upstream"),
    );
    r
}

/// A 400 for a request the real API would reject outright.
fn invalid(req: &Value) -> Option<Response> {
    let (param, message) = if req.get("model").is_none_or(|m| !m.is_string()) {
        ("model", "you must provide a model parameter")
    } else if req
        .get("messages")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        ("messages", "'messages' must be a non-empty array")
    } else {
        return None;
    };
    let mut body = error_body(StatusCode::BAD_REQUEST, message);
    body["error"]["param"] = json!(param);
    Some(json_response(StatusCode::BAD_REQUEST, &body))
}

/// What every chunk of one completion shares.
struct Head {
    id: String,
    call_id: String,
    created: i64,
    model: String,
}

fn completion(head: &Head, reply: &Reply, b: &Behavior) -> Value {
    let mut message = json!({"role": "assistant", "content": reply.text(), "refusal": null});
    if let Some(t) = &reply.tool {
        if reply.words.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = json!([{"id": head.call_id, "type": "function",
            "function": {"name": t.name, "arguments": t.args}}]);
    }
    json!({
        "id": head.id, "object": "chat.completion", "created": head.created, "model": head.model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(reply.stop)}],
        "usage": usage(reply, b),
        "system_fingerprint": "fp_mock",
    })
}

fn stream(head: &Head, reply: &Reply, b: &Behavior, include_usage: bool) -> Response {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut c = Map::new();
        c.insert("id".into(), json!(head.id));
        c.insert("object".into(), json!("chat.completion.chunk"));
        c.insert("created".into(), json!(head.created));
        c.insert("model".into(), json!(head.model));
        c.insert("system_fingerprint".into(), json!("fp_mock"));
        c.insert("choices".into(), choices);
        if include_usage {
            c.insert("usage".into(), usage.unwrap_or(Value::Null));
        }
        Bytes::from(format!("data: {}\n\n", Value::Object(c)))
    };
    let delta = |delta: Value, finish: Option<&str>| {
        chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            None,
        )
    };
    let mut events = vec![delta(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    let deltas_start = events.len();
    events.extend(reply.deltas().map(|w| delta(json!({"content": w}), None)));
    if let Some(t) = &reply.tool {
        events.push(delta(
            json!({"tool_calls": [{"index": 0, "id": head.call_id, "type": "function",
                                   "function": {"name": t.name, "arguments": ""}}]}),
            None,
        ));
        events.extend(t.pieces.iter().map(|p| {
            delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                None,
            )
        }));
    }
    events.push(delta(json!({}), Some(finish_reason(reply.stop))));
    if include_usage {
        events.push(chunk(json!([]), Some(usage(reply, b))));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    sse(events, deltas_start, b)
}

/// The OpenAI `GET /v1/models` body.
pub(super) fn models_body() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": MODELS_CREATED, "owned_by": "mock"}))
        .collect();
    json!({"object": "list", "data": data})
}
