//! Serving an admitted request: shape the body for each target of the plan (translate,
//! swap the model, cap max_tokens), walk the plan, and relay the answer in the client's
//! API: whole bodies with their usage read, streams through [`super::stream`].

use super::stream::{OpenAiRelay, RelayStream, StreamMode, Translating};
use crate::api::Api;
use crate::error::{ApiError, ErrorKind, error_body};
use crate::pipeline::{Admitted, Exchange};
use crate::plugins::Endpoint;
use crate::routing::{self, Served, Target};
use crate::translate::{self, AnthropicToOpenAiStream, OpenAiToAnthropicStream};
use crate::usage::{AnthropicStreamTap, Usage};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

/// Upstream response headers worth relaying to the client.
const RELAYED: &[&str] = &[
    "retry-after",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
];

/// Largest non-streamed upstream body accepted.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// Serves the request through its plan; the exchange is logged when the response (or
/// the stream) ends.
pub async fn forward(
    mut ex: Exchange,
    mut a: Admitted,
    endpoint: Endpoint,
    headers: &HeaderMap,
) -> Response {
    let client = ex.flavor;
    if endpoint == Endpoint::CountTokens {
        // Only Anthropic upstreams count tokens; others get a local estimate.
        if !a.plan.targets.retain(|t| t.provider.wire == Api::Anthropic) {
            return local_token_count(ex, &a.body);
        }
    }
    let mut parsed: Option<Value> = None;
    let body = a.body.clone();
    let stream = a.stream;
    let prepare = |t: &Target| -> Result<(String, Bytes), ApiError> {
        let path = match endpoint {
            Endpoint::CountTokens => "/v1/messages/count_tokens".to_string(),
            _ => t.provider.wire.model_path().to_string(),
        };
        let same = t.provider.wire == client;
        let needs_usage = stream && t.provider.wire == Api::OpenAi;
        if same && t.model == a.model && t.max_tokens_cap.is_none() && !needs_usage {
            return Ok((path, body.clone()));
        }
        if parsed.is_none() {
            parsed =
                Some(serde_json::from_slice(&body).map_err(|e| {
                    ApiError::invalid(format!("request body is not valid JSON: {e}"))
                })?);
        }
        let original = parsed.as_ref().unwrap_or(&Value::Null);
        let mut out = match (client, t.provider.wire) {
            (Api::Anthropic, Api::OpenAi) => {
                translate::anthropic_request_to_openai(original, &t.model)
                    .map_err(|e| ApiError::invalid(e.to_string()))?
            }
            (Api::OpenAi, Api::Anthropic) => {
                translate::openai_request_to_anthropic(original, &t.model)
                    .map_err(|e| ApiError::invalid(e.to_string()))?
            }
            _ => {
                let mut v = original.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert("model".into(), Value::String(t.model.clone()));
                }
                v
            }
        };
        if let Some(o) = out.as_object_mut() {
            if let Some(cap) = t.max_tokens_cap {
                for field in ["max_tokens", "max_completion_tokens"] {
                    if let Some(m) = o.get(field).and_then(Value::as_u64)
                        && m > u64::from(cap)
                    {
                        o.insert(field.into(), cap.into());
                    }
                }
                if t.provider.wire == Api::Anthropic && !o.contains_key("max_tokens") {
                    o.insert("max_tokens".into(), cap.into());
                }
            }
            if needs_usage {
                let opts = o
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(opts) = opts.as_object_mut() {
                    opts.insert("include_usage".into(), Value::Bool(true));
                }
            }
        }
        let bytes = serde_json::to_vec(&out).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok((path, Bytes::from(bytes)))
    };
    let result = routing::execute(
        &a.plan,
        Method::POST,
        headers,
        prepare,
        &mut ex.record.attempts,
    )
    .await;
    let served = match result {
        Ok(s) => s,
        Err(e) => return ex.fail(e),
    };
    ex.record.provider = Some(served.target.provider.id.clone());
    ex.record.served_model = Some(served.target.model.clone());
    let client_include_usage =
        stream && client == Api::OpenAi && client_asked_usage(parsed.as_ref(), &a.body);
    relay(ex, served, endpoint, stream, client_include_usage).await
}

/// Whether an OpenAI client asked for `stream_options.include_usage`.
fn client_asked_usage(parsed: Option<&Value>, body: &[u8]) -> bool {
    let check = |v: &Value| {
        v.pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    match parsed {
        Some(v) => check(v),
        None => serde_json::from_slice::<Value>(body)
            .map(|v| check(&v))
            .unwrap_or(false),
    }
}

/// Answers `count_tokens` locally (about four bytes per token) when no Anthropic
/// upstream can count; the header says it is an estimate.
fn local_token_count(mut ex: Exchange, body: &[u8]) -> Response {
    let estimate = (body.len() / 4).max(1) as u64;
    ex.record.usage.input_tokens = estimate;
    let answer = serde_json::json!({ "input_tokens": estimate });
    ex.capture_response(answer.to_string().as_bytes());
    ex.finish(200, None);
    let mut resp = axum::Json(answer).into_response();
    resp.headers_mut()
        .insert("x-tollgate-estimate", HeaderValue::from_static("true"));
    resp
}

/// Builds the client's response from the serving attempt.
async fn relay(
    mut ex: Exchange,
    served: Served,
    endpoint: Endpoint,
    stream: bool,
    include_usage: bool,
) -> Response {
    let client = ex.flavor;
    let Served {
        response: upstream,
        target,
        attempt,
    } = served;
    let wire = target.provider.wire;
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    for name in RELAYED {
        if let Some(v) = upstream.headers().get(*name) {
            out_headers.insert(*name, v.clone());
        }
    }
    for id in ["request-id", "x-request-id"] {
        if let Some(v) = upstream.headers().get(id) {
            out_headers.insert("x-upstream-request-id", v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&target.provider.id) {
        out_headers.insert("x-tollgate-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.model) {
        out_headers.insert("x-tollgate-model", v);
    }
    out_headers.insert("x-tollgate-attempt", HeaderValue::from(attempt));
    out_headers.insert("x-tollgate-target", HeaderValue::from(target.index));
    let is_sse = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if stream && status.is_success() && is_sse {
        let id = ex.record.request_id.clone();
        let mode = match (client, wire) {
            (Api::Anthropic, Api::Anthropic) => {
                StreamMode::Anthropic(AnthropicStreamTap::default())
            }
            (Api::OpenAi, Api::OpenAi) => StreamMode::OpenAi(OpenAiRelay::new(!include_usage)),
            (Api::Anthropic, Api::OpenAi) => StreamMode::Translated(
                client,
                Translating::new(OpenAiToAnthropicStream::new(
                    &target.model,
                    &format!("msg_{id}"),
                )),
            ),
            (Api::OpenAi, Api::Anthropic) => StreamMode::Translated(
                client,
                Translating::new(AnthropicToOpenAiStream::new(
                    &target.model,
                    &format!("chatcmpl-{id}"),
                    include_usage,
                )),
            ),
        };
        out_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        out_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        out_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let mut resp = Response::new(Body::from_stream(RelayStream::new(upstream, mode, ex)));
        *resp.headers_mut() = out_headers;
        return resp;
    }

    let body = match read_body(upstream, target.provider.timeout()).await {
        Ok(b) => b,
        Err(e) => return ex.fail(e),
    };
    let body = if status.is_success() {
        match success_body(client, wire, endpoint, &target.model, &body) {
            Ok((b, usage)) => {
                ex.record.usage = usage;
                ex.capture_response(&b);
                ex.finish(status.as_u16(), None);
                b
            }
            Err(e) => return ex.fail(e),
        }
    } else {
        let message = translate::upstream_error_message(&body);
        let body = if is_error_shape(client, &body) && wire == client {
            body
        } else {
            // Keep the upstream's status, but give the client an error it can parse.
            let kind = ErrorKind::from_status(status.as_u16());
            let ty = match client {
                Api::Anthropic => kind.anthropic_type(),
                Api::OpenAi => kind.openai_type(),
            };
            Bytes::from(error_body(client, ty, &message).to_string())
        };
        ex.capture_response(&body);
        ex.finish(
            status.as_u16(),
            Some(format!("upstream {}: {message}", status.as_u16())),
        );
        body
    };
    out_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(out_headers);
    resp
}

/// A successful upstream body in the client's API, with its usage.
fn success_body(
    client: Api,
    wire: Api,
    endpoint: Endpoint,
    model: &str,
    body: &Bytes,
) -> Result<(Bytes, Usage), ApiError> {
    let not_valid = || {
        ApiError::new(
            ErrorKind::Api,
            "the provider returned a response that is not a valid completion",
        )
        .with_status(StatusCode::BAD_GATEWAY)
    };
    if endpoint == Endpoint::CountTokens {
        let usage = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("input_tokens").and_then(Value::as_u64))
            .ok_or_else(not_valid)?;
        return Ok((
            body.clone(),
            Usage {
                input_tokens: usage,
                ..Usage::default()
            },
        ));
    }
    match (client, wire) {
        (Api::Anthropic, Api::Anthropic) => {
            let usage = Usage::from_anthropic_body(body).ok_or_else(not_valid)?;
            Ok((body.clone(), usage))
        }
        (Api::OpenAi, Api::OpenAi) => {
            let v: Value = serde_json::from_slice(body).map_err(|_| not_valid())?;
            if v.get("choices").is_none() {
                return Err(not_valid());
            }
            let usage = v.get("usage").map(Usage::from_openai).unwrap_or_default();
            Ok((body.clone(), usage))
        }
        (Api::Anthropic, Api::OpenAi) => {
            let v: Value = serde_json::from_slice(body).map_err(|_| not_valid())?;
            let out = translate::openai_response_to_anthropic(&v, model).map_err(|e| {
                ApiError::new(
                    ErrorKind::Api,
                    format!("the provider's response could not be translated: {e}"),
                )
                .with_status(StatusCode::BAD_GATEWAY)
            })?;
            let usage = out
                .get("usage")
                .map(|u| {
                    let mut usage = Usage::default();
                    usage.merge_anthropic(u);
                    usage
                })
                .unwrap_or_default();
            Ok((Bytes::from(out.to_string()), usage))
        }
        (Api::OpenAi, Api::Anthropic) => {
            let usage = Usage::from_anthropic_body(body).ok_or_else(not_valid)?;
            let v: Value = serde_json::from_slice(body).map_err(|_| not_valid())?;
            let out = translate::anthropic_response_to_openai(&v, model).map_err(|e| {
                ApiError::new(
                    ErrorKind::Api,
                    format!("the provider's response could not be translated: {e}"),
                )
                .with_status(StatusCode::BAD_GATEWAY)
            })?;
            Ok((Bytes::from(out.to_string()), usage))
        }
    }
}

async fn read_body(
    upstream: reqwest::Response,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut buf = Vec::new();
        let mut s = upstream.bytes_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(
                    ErrorKind::Api,
                    format!("the provider's response was cut off: {e}"),
                )
                .with_status(StatusCode::BAD_GATEWAY)
            })?;
            if buf.len() + chunk.len() > MAX_UPSTREAM_BODY {
                return Err(
                    ApiError::new(ErrorKind::Api, "the provider's response is too large")
                        .with_status(StatusCode::BAD_GATEWAY),
                );
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorKind::Timeout,
                "the provider's response did not complete in time",
            ))
        })
}

/// Whether `body` is already an error in the client's API shape.
fn is_error_shape(client: Api, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match client {
        Api::Anthropic => {
            v.get("type").and_then(Value::as_str) == Some("error") && v.get("error").is_some()
        }
        Api::OpenAi => v
            .get("error")
            .and_then(|e| e.get("message"))
            .is_some_and(Value::is_string),
    }
}
