//! The mock's Anthropic Messages API.

use super::MockState;
use super::reply::{
    Api, Reply, Stop, accept, estimate_tokens, json_response, misbehave, model_of, sse,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// The models `GET /v1/models` lists.
pub(super) const MODELS: [&str; 3] = ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"];
/// Their `created_at`.
pub(super) const MODELS_CREATED_AT: &str = "2025-09-29T00:00:00Z";

/// An Anthropic error body.
pub(super) fn error_body(status: StatusCode, message: &str) -> Value {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn stop_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "end_turn",
        Stop::Length => "max_tokens",
        Stop::Tool => "tool_use",
    }
}

/// `POST /v1/messages`.
pub async fn messages(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, b) = match accept(&s, Api::Anthropic, "/v1/messages", &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if let Some(r) = misbehave(Api::Anthropic, &b).await {
        return r;
    }
    let reply = Reply::plan(&req, &b, req.get("max_tokens").and_then(Value::as_u64));
    let id = format!("msg_mock{}", crate::ids::random_token(16));
    let tool_id = format!("toolu_{}", crate::ids::random_token(24));
    let model = model_of(&req);
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        return stream(&id, &tool_id, &model, &reply, &b);
    }
    let mut content = Vec::new();
    if !reply.words.is_empty() {
        content.push(json!({"type": "text", "text": reply.text()}));
    }
    if let Some(t) = &reply.tool {
        let input: Value = serde_json::from_str(&t.args).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": tool_id, "name": t.name, "input": input}));
    }
    let out = json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": stop_reason(reply.stop), "stop_sequence": null,
        "usage": {
            "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens(),
            "cache_creation_input_tokens": b.cache_write, "cache_read_input_tokens": b.cache_read,
        },
    });
    let mut r = json_response(StatusCode::OK, &out);
    r.headers_mut()
        .insert("request-id", HeaderValue::from_static("req_mock_upstream"));
    r
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn stream(id: &str, tool_id: &str, model: &str, reply: &Reply, b: &super::Behavior) -> Response {
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": b.cache_write,
                      "cache_read_input_tokens": b.cache_read}}}),
    )];
    let mut index = 0;
    let mut deltas_start = None;
    let mut block = |events: &mut Vec<Bytes>, index: usize, start: Value, deltas: Vec<Value>| {
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        if index == 0 {
            events.push(event("ping", json!({"type": "ping"})));
        }
        deltas_start.get_or_insert(events.len());
        for delta in deltas {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    };
    if !reply.words.is_empty() || reply.tool.is_none() {
        let deltas = reply
            .deltas()
            .map(|text| json!({"type": "text_delta", "text": text}))
            .collect();
        block(
            &mut events,
            index,
            json!({"type": "text", "text": ""}),
            deltas,
        );
        index += 1;
    }
    if let Some(t) = &reply.tool {
        let deltas = t
            .pieces
            .iter()
            .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
            .collect();
        let start = json!({"type": "tool_use", "id": tool_id, "name": t.name, "input": {}});
        block(&mut events, index, start, deltas);
    }
    let deltas_start = deltas_start.unwrap_or(events.len());
    events.push(event(
        "message_delta",
        json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(reply.stop), "stop_sequence": null},
            "usage": {"output_tokens": reply.output_tokens()}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    sse(events, deltas_start, b)
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, b) = match accept(
        &s,
        Api::Anthropic,
        "/v1/messages/count_tokens",
        &headers,
        &body,
    ) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if let Some(r) = misbehave(Api::Anthropic, &b).await {
        return r;
    }
    json_response(
        StatusCode::OK,
        &json!({ "input_tokens": estimate_tokens(&req) }),
    )
}

/// The Anthropic `GET /v1/models` body.
pub(super) fn models_body() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": MODELS_CREATED_AT}))
        .collect();
    json!({"data": data, "has_more": false, "first_id": MODELS[0], "last_id": MODELS[MODELS.len() - 1]})
}
