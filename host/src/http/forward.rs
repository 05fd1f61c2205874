//! Sending an admitted request upstream and relaying the answer: whole bodies with their
//! usage read, and SSE streams passed through event by event as they arrive.

use crate::error::{ApiError, ApiFlavor, ErrorKind, error_body};
use crate::pipeline::{Admitted, Exchange};
use crate::providers::root_cause;
use crate::usage::{AnthropicStreamTap, Usage};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Upstream response headers worth relaying to the client.
const RELAYED: &[&str] = &[
    "retry-after",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
];

/// Largest non-streamed upstream body accepted.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// Forwards the request and builds the client's response; the exchange is logged when
/// the response (or the stream) ends.
pub async fn forward(
    mut ex: Exchange,
    a: Admitted,
    method: Method,
    path: &str,
    headers: &HeaderMap,
) -> Response {
    let upstream = match a.provider.send(method, path, headers, a.body).await {
        Ok(r) => r,
        Err(e) => return ex.fail(e.to_api_error()),
    };
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    for name in RELAYED {
        if let Some(v) = upstream.headers().get(*name) {
            out_headers.insert(*name, v.clone());
        }
    }
    if let Some(v) = upstream.headers().get("request-id") {
        out_headers.insert("x-upstream-request-id", v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&a.provider.id) {
        out_headers.insert("x-tollgate-provider", v);
    }
    if let Some(m) = a
        .model
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        out_headers.insert("x-tollgate-model", m);
    }
    let is_sse = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if a.stream && status.is_success() && is_sse {
        out_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        out_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        out_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let stream = RelayStream {
            inner: Box::pin(upstream.bytes_stream()),
            tap: AnthropicStreamTap::default(),
            ex: Some(ex),
            done: false,
        };
        let mut resp = Response::new(Body::from_stream(stream));
        *resp.headers_mut() = out_headers;
        return resp;
    }

    let body = match read_body(upstream, a.provider.timeout()).await {
        Ok(b) => b,
        Err(e) => return ex.fail(e),
    };
    if status.is_success() {
        match Usage::from_anthropic_body(&body) {
            Some(u) => ex.record.usage = u,
            None if ex.record.endpoint == "messages" => {
                return ex.fail(
                    ApiError::new(
                        ErrorKind::Api,
                        "the provider returned a response that is not a valid message",
                    )
                    .with_status(StatusCode::BAD_GATEWAY),
                );
            }
            None => {}
        }
        ex.finish(status.as_u16(), None);
    } else {
        let message = upstream_error_message(&body);
        ex.finish(
            status.as_u16(),
            Some(format!("upstream {}: {message}", status.as_u16())),
        );
    }
    let body = if status.is_success() || is_anthropic_error(&body) {
        body
    } else {
        // Keep the upstream's status, but give the client an error it can parse.
        let kind = ErrorKind::from_status(status.as_u16());
        Bytes::from(
            error_body(
                ApiFlavor::Anthropic,
                kind.anthropic_type(),
                &upstream_error_message(&body),
            )
            .to_string(),
        )
    };
    out_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(out_headers);
    resp
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

fn is_anthropic_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| {
            v.get("type").and_then(|t| t.as_str()) == Some("error") && v.get("error").is_some()
        })
}

/// The message of an upstream error body, or a readable snippet of whatever it was.
fn upstream_error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for ptr in ["/error/message", "/message", "/error"] {
            if let Some(m) = v.pointer(ptr).and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.chars().take(200).collect();
    if snippet.trim().is_empty() {
        "empty response body".into()
    } else {
        format!("non-JSON response body: {}", snippet.trim())
    }
}

/// An Anthropic SSE `error` event.
fn error_event(message: &str) -> Bytes {
    let data = error_body(ApiFlavor::Anthropic, "api_error", message);
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

/// Relays upstream bytes unchanged while the tap reads usage; turns an upstream failure
/// into an Anthropic `error` event, and logs the exchange when the stream ends or the
/// client goes away.
struct RelayStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    tap: AnthropicStreamTap,
    ex: Option<Exchange>,
    done: bool,
}

impl RelayStream {
    fn finish(&mut self, error: Option<String>) {
        if let Some(mut ex) = self.ex.take() {
            ex.record.usage = self.tap.usage;
            ex.finish(200, error);
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let had_content = self.tap.saw_content;
                self.tap.feed(&chunk);
                if !had_content && self.tap.saw_content {
                    let this = &mut *self;
                    if let Some(ex) = this.ex.as_mut() {
                        ex.record.ttft_ms = Some(ex.elapsed_ms());
                    }
                }
                if self.tap.finished {
                    let err = self.tap.error.clone();
                    self.finish(err);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                let msg = format!("the provider's stream was interrupted: {}", root_cause(&e));
                self.finish(Some(msg.clone()));
                Poll::Ready(Some(Ok(error_event(&msg))))
            }
            Poll::Ready(None) => {
                self.done = true;
                if self.ex.is_none() || self.tap.error.is_some() {
                    let err = self.tap.error.clone();
                    self.finish(err);
                    return Poll::Ready(None);
                }
                let msg = "the provider's stream ended before message_stop".to_string();
                self.finish(Some(msg.clone()));
                Poll::Ready(Some(Ok(error_event(&msg))))
            }
        }
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        if let Some(mut ex) = self.ex.take() {
            // The client hung up mid-stream; bill what was generated so far.
            ex.record.usage = self.tap.usage;
            ex.finish(499, Some("client closed the stream".into()));
        }
    }
}
