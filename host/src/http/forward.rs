//! Serving an admitted request: shape the body for each target of the plan (translate,
//! swap the model, cap max_tokens), walk the plan, and relay the answer in the client's
//! API: whole bodies with their usage read, streams through [`super::stream`].

use super::stream::RelayStream;
use crate::api::Api;
use crate::error::{ApiError, ErrorKind};
use crate::guard::{AnswerText, StreamText};
use crate::headers as names;
use crate::pipeline::{Admitted, Exchange, ResponseGuard};
use crate::plugins::Endpoint;
use crate::plugins::StreamMode;
use crate::routing::{self, Served, Target};
use crate::translate::Relay;
use crate::translate::{Codec, TargetShape};
use crate::usage::Usage;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

/// Largest non-streamed upstream body accepted.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// Largest client stream held for `buffer` guardrails (it is kept parsed, event by
/// event, while they decide); past it the answer is cut with an error event.
const MAX_BUFFERED_STREAM: usize = 8 << 20;

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
    let prepare = |t: &Target| -> Result<(&'static str, Bytes), ApiError> {
        let codec = Codec::new(client, t.provider.wire);
        let path = match endpoint {
            Endpoint::CountTokens => COUNT_TOKENS_PATH,
            _ => codec.upstream.model_path(),
        };
        let shape = TargetShape {
            model: &t.model,
            max_tokens_cap: t.max_tokens_cap,
            stream,
        };
        if codec.passes_request(&a.model, &shape) {
            return Ok((path, body.clone()));
        }
        let original =
            match &parsed {
                Some(v) => v,
                None => parsed.insert(serde_json::from_slice(&body).map_err(|e| {
                    ApiError::invalid(format!("request body is not valid JSON: {e}"))
                })?),
            };
        let out = codec.request(original, &shape)?;
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
    let codec = Codec::new(client, served.target.provider.wire);
    // An OpenAI client's stream never passes through unparsed (its provider either
    // speaks the other API or must be asked for usage), so `parsed` holds its request.
    let include_usage = stream
        && parsed
            .as_ref()
            .is_some_and(|v| codec.client_wants_stream_usage(v));
    let guard = a.guard.take();
    relay(ex, served, codec, endpoint, stream, include_usage, guard).await
}

/// A header value for `n`, without an allocation for the small numbers attempts and
/// target indexes almost always are.
fn small_number(n: u32) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(n as usize) {
        Some(d) => HeaderValue::from_static(d),
        None => HeaderValue::from(n),
    }
}

/// Copies what the provider said about itself to the client's headers: its rate-limit
/// headers and `retry-after` (the first value of each), and its own request id as
/// `x-upstream-request-id` (`x-request-id` over `request-id`). One pass over the
/// provider's few headers, instead of a lookup per name.
fn relay_provider_headers(upstream: &HeaderMap, out: &mut HeaderMap) {
    let (mut their_id, mut their_x_id) = (None, None);
    for (name, v) in upstream {
        if names::RATE_LIMITS.contains(name) || name == header::RETRY_AFTER {
            if !out.contains_key(name) {
                out.insert(name.clone(), v.clone());
            }
        } else if name == names::REQUEST_ID {
            their_id = their_id.or(Some(v));
        } else if name == names::X_REQUEST_ID {
            their_x_id = their_x_id.or(Some(v));
        }
    }
    if let Some(v) = their_x_id.or(their_id) {
        out.insert(names::UPSTREAM_REQUEST_ID, v.clone());
    }
}

/// Anthropic's token-counting endpoint (no OpenAI equivalent).
const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

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
        .insert(names::ESTIMATE, HeaderValue::from_static("true"));
    resp
}

/// Builds the client's response from the serving attempt.
async fn relay(
    mut ex: Exchange,
    served: Served,
    codec: Codec,
    endpoint: Endpoint,
    stream: bool,
    include_usage: bool,
    guard: Option<ResponseGuard>,
) -> Response {
    let Served {
        response: upstream,
        target,
        attempt,
    } = served;
    let status = upstream.status();
    let mut out_headers = HeaderMap::with_capacity(16);
    relay_provider_headers(upstream.headers(), &mut out_headers);
    if let Ok(v) = HeaderValue::from_str(&target.provider.id) {
        out_headers.insert(names::PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.model) {
        out_headers.insert(names::MODEL, v);
    }
    out_headers.insert(names::ATTEMPT, small_number(attempt));
    out_headers.insert(names::TARGET, small_number(target.index));
    let is_sse = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if stream && status.is_success() && is_sse {
        let relay = codec.stream(&target.model, &ex.record.request_id, include_usage);
        out_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        out_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        out_headers.insert(names::ACCEL_BUFFERING, HeaderValue::from_static("no"));
        if let Some(g) = guard.as_ref().filter(|g| g.buffers_streams()) {
            // Boxed, as is `inspect_whole` below: a guardrail's plugin calls would
            // otherwise size every request's future, copied as it is moved and boxed.
            let buffered = buffered_stream(ex, upstream, relay, g, codec.client, out_headers);
            return Box::pin(buffered).await;
        }
        let observer = guard.map(|g| (g, codec.client));
        let stream = RelayStream::new(upstream, relay, ex).observed_by(observer);
        let mut resp = Response::new(Body::from_stream(stream));
        *resp.headers_mut() = out_headers;
        return resp;
    }

    let body = match read_body(upstream, target.provider.timeout()).await {
        Ok(b) => b,
        Err(e) => return ex.fail(e),
    };
    let body = if status.is_success() {
        let decoded = match endpoint {
            Endpoint::CountTokens => count_tokens_body(body),
            _ => codec.response(&body, &target.model),
        };
        match decoded {
            Ok((b, usage)) => {
                ex.record.usage = usage;
                let b = match &guard {
                    Some(g) if endpoint != Endpoint::CountTokens => {
                        match Box::pin(inspect_whole(g, &mut ex, codec.client, b)).await {
                            Ok(b) => b,
                            // Still billed and logged: the provider did the work.
                            Err(e) => return ex.fail(e),
                        }
                    }
                    _ => b,
                };
                ex.capture_response(&b);
                ex.finish(status.as_u16(), None);
                b
            }
            Err(e) => return ex.fail(e),
        }
    } else {
        let (body, message) = codec.error(status, body);
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

/// Runs the response guardrails on a whole answer in the client's shape: the body to
/// send (rewritten or as it was), or the error to send instead.
async fn inspect_whole(
    g: &ResponseGuard,
    ex: &mut Exchange,
    client: Api,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    let mut text = AnswerText::parse(client, &body, &ex.record.usage).map_err(|e| {
        ApiError::internal(format!("the answer could not be read for inspection: {e}"))
    })?;
    g.inspect(&mut text, None, false, &mut ex.record.decisions)
        .await?;
    Ok(text.into_body().unwrap_or(body))
}

/// Reads a whole upstream stream through `relay` for the `buffer` guardrails, then
/// answers with the client-shaped stream once they have decided (rewritten or as it
/// came), or with the error they chose instead. Usage is read on the way, as a
/// relayed stream's is, and billed either way.
async fn buffered_stream(
    mut ex: Exchange,
    upstream: crate::providers::Response,
    mut relay: Relay,
    g: &ResponseGuard,
    client: Api,
    headers: HeaderMap,
) -> Response {
    let mut out = Vec::new();
    let mut cut = None;
    let mut s = upstream.into_stream();
    while let Some(chunk) = s.next().await {
        match chunk {
            Ok(chunk) => {
                out.extend_from_slice(&relay.chunk(chunk));
                // A client that leaves while the answer is held is billed for what was
                // generated, as a relayed stream's would be.
                ex.bill_stream(relay.stats(), true);
                if out.len() > MAX_BUFFERED_STREAM {
                    let msg = format!(
                        "the answer is longer than the {} MiB a guardrail may hold; it was cut",
                        MAX_BUFFERED_STREAM >> 20
                    );
                    out.extend_from_slice(&relay.interrupted(&msg));
                    cut = Some(msg);
                    break;
                }
            }
            Err(e) => {
                let msg = super::stream::interrupted(&e);
                out.extend_from_slice(&relay.interrupted(&msg));
                cut = Some(msg);
                break;
            }
        }
    }
    if cut.is_none() {
        out.extend_from_slice(&relay.end());
    }
    let error = cut.or_else(|| relay.stats().error.clone());
    ex.bill_stream(relay.stats(), error.is_some());
    let mut text = StreamText::parse(client, Bytes::from(out), &ex.record.usage, false);
    let decisions = &mut ex.record.decisions;
    if let Err(e) = g
        .inspect(&mut text, Some(StreamMode::Buffer), false, decisions)
        .await
    {
        return ex.fail(e);
    }
    let bytes = text.to_bytes();
    // Guardrails set to observe see what was sent, and only record.
    text.deliver();
    let _ = g
        .inspect(&mut text, Some(StreamMode::Observe), true, decisions)
        .await;
    ex.capture_response(&bytes);
    // The client's first token comes with the whole answer, sent now.
    ex.record.ttft_ms = Some(ex.elapsed_ms());
    ex.finish(200, error);
    let mut resp = Response::new(Body::from(bytes));
    *resp.headers_mut() = headers;
    resp
}

/// An Anthropic `count_tokens` answer, passed through with its count as usage.
fn count_tokens_body(body: Bytes) -> Result<(Bytes, Usage), ApiError> {
    let input_tokens = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("input_tokens").and_then(Value::as_u64))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Api,
                "the provider returned a token count that is not valid",
            )
            .with_status(StatusCode::BAD_GATEWAY)
        })?;
    let usage = Usage {
        input_tokens,
        ..Usage::default()
    };
    Ok((body, usage))
}

async fn read_body(
    upstream: crate::providers::Response,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        upstream
            .bytes(MAX_UPSTREAM_BODY)
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::Api,
                    format!("the provider's response was cut off: {e}"),
                )
                .with_status(StatusCode::BAD_GATEWAY)
            })?
            .ok_or_else(|| {
                ApiError::new(ErrorKind::Api, "the provider's response is too large")
                    .with_status(StatusCode::BAD_GATEWAY)
            })
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

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn the_providers_own_headers_are_relayed_first_value_first() {
        let mut upstream = HeaderMap::new();
        let mut add = |name: &'static str, value: &'static str| {
            upstream.append(name, HeaderValue::from_static(value));
        };
        add("content-type", "application/json");
        add("request-id", "req_a");
        add("anthropic-ratelimit-tokens-remaining", "9000");
        add("anthropic-ratelimit-tokens-remaining", "1");
        add("x-request-id", "xreq_b");
        add("x-request-id", "xreq_c");
        add("retry-after", "3");
        add("x-ratelimit-limit-requests", "60");
        add("set-cookie", "secret=1");
        let mut out = HeaderMap::new();
        super::relay_provider_headers(&upstream, &mut out);
        let got = |name: &str| {
            out.get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(got("anthropic-ratelimit-tokens-remaining"), ["9000"]);
        assert_eq!(got("x-ratelimit-limit-requests"), ["60"]);
        assert_eq!(got("retry-after"), ["3"]);
        assert_eq!(got("x-upstream-request-id"), ["xreq_b"]);
        assert_eq!(out.len(), 4, "nothing else is relayed: {out:?}");

        let mut only_anthropic_id = HeaderMap::new();
        only_anthropic_id.insert("request-id", HeaderValue::from_static("req_a"));
        let mut out = HeaderMap::new();
        super::relay_provider_headers(&only_anthropic_id, &mut out);
        assert_eq!(
            out.get("x-upstream-request-id")
                .and_then(|v| v.to_str().ok()),
            Some("req_a")
        );
    }

    #[test]
    fn small_numbers_are_written_like_any_other() {
        for n in [0, 1, 9, 10, 42, u32::MAX] {
            assert_eq!(
                super::small_number(n).to_str().ok(),
                Some(n.to_string()).as_deref()
            );
        }
    }
}
