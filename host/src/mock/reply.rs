//! What the mock answers, shared by both API flavours: request intake (parse, record,
//! authorize), failure directives, the reply plan (words, tool call, stop reason, usage)
//! and the paced event stream.

use super::MockState;
use super::directive::{Behavior, content_text, texts};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub(super) use crate::api::Api;

/// A provider-shaped error answer.
pub(super) fn error(api: Api, status: StatusCode, message: &str) -> Response {
    let body = match api {
        Api::Anthropic => super::anthropic::error_body(status, message),
        Api::OpenAi => super::openai::error_body(status, message),
    };
    json_response(status, &body)
}

/// The 401 answer for a missing or wrong key.
pub(super) fn unauthorized(api: Api) -> Response {
    let message = match api {
        Api::Anthropic => "invalid x-api-key",
        Api::OpenAi => "Incorrect API key provided.",
    };
    error(api, StatusCode::UNAUTHORIZED, message)
}

/// `body` as an `application/json` answer.
pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Parses, records and authorizes a request; `Err` is the answer to send instead.
pub(super) fn accept(
    s: &MockState,
    api: Api,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Behavior), Box<Response>> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            s.record(
                "POST",
                path,
                headers,
                &Value::String(String::from_utf8_lossy(body).into_owned()),
            );
            let message = format!("invalid JSON: {e}");
            return Err(Box::new(error(api, StatusCode::BAD_REQUEST, &message)));
        }
    };
    s.record("POST", path, headers, &v);
    if !s.authorized(headers) {
        return Err(Box::new(unauthorized(api)));
    }
    let b = s.behavior_for(&v);
    Ok((v, b))
}

/// Applies delay and failure directives; `Some` is the failure answer.
pub(super) async fn misbehave(api: Api, b: &Behavior) -> Option<Response> {
    if b.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.delay_ms)).await;
    }
    if let Some(status) = b.status {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = error(api, code, &format!("mock failure {status}"));
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

/// ~4 characters of message text per token, at least 1.
pub(super) fn estimate_tokens(body: &Value) -> u64 {
    let chars: usize = texts(body).iter().map(|t| t.len()).sum();
    (chars as u64 / 4).max(1)
}

/// The requested model, or `mock-model`.
pub(super) fn model_of(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string()
}

/// Seconds since the Unix epoch.
pub(super) fn now_secs() -> i64 {
    crate::ids::now_ms() / 1000
}

/// Why the reply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The whole reply was sent.
    End,
    /// Cut at the request's output limit.
    Length,
    /// The reply is a tool call.
    Tool,
}

/// A tool call the reply makes.
#[derive(Clone, Debug)]
pub(super) struct ToolCall {
    pub name: String,
    /// The arguments as JSON text.
    pub args: String,
    /// `args` split into the pieces streamed one per delta.
    pub pieces: Vec<String>,
}

/// The reply to one request, whatever the wire format.
#[derive(Clone, Debug)]
pub(super) struct Reply {
    /// Words of the text (the preface, for a tool call).
    pub words: Vec<String>,
    pub tool: Option<ToolCall>,
    pub stop: Stop,
    /// The request's estimated input tokens.
    pub input_tokens: u64,
}

impl Reply {
    /// Plans the reply: a tool call when `tool` is set (unless the request ends with a
    /// tool result, which is echoed instead), else the behaviour's text, else an echo of
    /// the last user message; at most `max_tokens` words.
    pub(super) fn plan(body: &Value, b: &Behavior, max_tokens: Option<u64>) -> Self {
        let result = tool_result(body);
        let tool = match (&b.tool, &result) {
            (Some(name), None) => Some(tool_call(name, b.tool_args.as_ref())),
            _ => None,
        };
        let input_tokens = estimate_tokens(body);
        if let Some(tool) = tool {
            let words = b
                .text
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            return Reply {
                words,
                tool: Some(tool),
                stop: Stop::Tool,
                input_tokens,
            };
        }
        let text = match (&b.text, result) {
            (Some(t), _) => t.clone(),
            (None, Some(r)) => format!("tool result: {r}"),
            (None, None) => format!("echo: {}", last_user_text(body)),
        };
        let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        if let Some(n) = b.tokens {
            let n = (n as usize).max(1);
            let mut i = 0;
            while words.len() < n {
                words.push(format!("word{i}"));
                i += 1;
            }
            words.truncate(n);
        }
        let max = max_tokens.map_or(usize::MAX, |m| {
            usize::try_from(m.max(1)).unwrap_or(usize::MAX)
        });
        let stop = if words.len() > max {
            words.truncate(max);
            Stop::Length
        } else {
            Stop::End
        };
        Reply {
            words,
            tool: None,
            stop,
            input_tokens,
        }
    }

    /// The text, words joined by single spaces.
    pub(super) fn text(&self) -> String {
        self.words.join(" ")
    }

    /// Output tokens: one per word, plus one per streamed argument piece and one for the
    /// call itself.
    pub(super) fn output_tokens(&self) -> u64 {
        let tool = self.tool.as_ref().map_or(0, |t| t.pieces.len() + 1);
        (self.words.len() + tool) as u64
    }

    /// The streamed text deltas: words, each after the first with a leading space.
    pub(super) fn deltas(&self) -> impl Iterator<Item = String> + '_ {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { format!(" {w}") })
    }
}

fn tool_call(name: &str, args: Option<&Value>) -> ToolCall {
    let args = args.map_or_else(|| "{}".to_string(), Value::to_string);
    let chars: Vec<char> = args.chars().collect();
    let n = chars.len().clamp(1, 3);
    let size = chars.len().div_ceil(n).max(1);
    let pieces = chars.chunks(size).map(|c| c.iter().collect()).collect();
    ToolCall {
        name: name.to_string(),
        args,
        pieces,
    }
}

/// The text of the last user message (string or text parts).
fn last_user_text(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default()
}

/// The tool result(s) the request ends with: Anthropic `tool_result` blocks in a final
/// user message, or OpenAI's trailing `role: "tool"` messages; joined by spaces.
fn tool_result(body: &Value) -> Option<String> {
    let msgs = body.get("messages").and_then(Value::as_array)?;
    let last = msgs.last()?;
    let role = |m: &Value| m.get("role").and_then(Value::as_str).map(str::to_string);
    match role(last).as_deref() {
        Some("tool") => {
            let mut parts: Vec<String> = msgs
                .iter()
                .rev()
                .take_while(|m| role(m).as_deref() == Some("tool"))
                .map(|m| content_text(m.get("content")))
                .collect();
            parts.reverse();
            Some(parts.join(" "))
        }
        Some("user") => {
            let parts: Vec<String> = last
                .get("content")
                .and_then(Value::as_array)?
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .map(|b| content_text(b.get("content")))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

/// Streams `events` as `text/event-stream`, `gap_ms` apart, honouring `drop_after` and
/// `stall_after` (counted in events from `deltas_start`, the first delta).
pub(super) fn sse(events: Vec<Bytes>, deltas_start: usize, b: &Behavior) -> Response {
    let events = Arc::new(events);
    let cut = b.drop_after.map(|n| deltas_start + n as usize);
    let stall = b.stall_after.map(|n| deltas_start + n as usize);
    let gap = Duration::from_millis(b.gap_ms.max(1));
    let body = futures_util::stream::unfold(0usize, move |i| {
        let events = Arc::clone(&events);
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
