//! Anthropic Messages <-> OpenAI Chat Completions translation, so any client can be
//! served by any provider: request bodies, whole responses, streams and error bodies.
//! The rest of the gateway sees one [`Codec`] per (client API, provider API) pair and
//! one stream driver ([`Relay`]); the per-direction functions stay inside.
//!
//! Everything here is pure and total: no input makes it panic (a property test checks),
//! and what cannot be expressed on the other side is an [`TranslateError`] naming the
//! field, never silently dropped meaning.

mod codec;
mod passthrough;
mod request;
mod response;
mod sse;
mod stream;

pub use codec::{Codec, TargetShape};
pub use sse::{SseEvent, SseParser};
pub use stream::{Relay, StreamStats};

use serde_json::Value;

/// A body that cannot be expressed in the other API.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The client's request cannot be expressed for the provider; the message names
    /// the offending field.
    #[error("{0}")]
    Invalid(String),
    /// The provider's answer is not a valid completion or cannot be expressed in the
    /// client's API.
    #[error("{0}")]
    BadResponse(String),
}

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(msg.into())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Longest upstream error text passed on when the body is not a known error shape.
const MAX_RAW_ERROR: usize = 300;

/// The human message of an upstream error body in any common shape: Anthropic
/// (`error.message`), OpenAI (`error.message`), `{"error": "..."}`, `{"message": ...}`,
/// FastAPI-style `{"detail": ...}` (vLLM), else the start of the raw text.
pub fn upstream_error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"));
        match found {
            Some(Value::String(s)) if !s.is_empty() => return s.clone(),
            Some(other) if !other.is_null() => return other.to_string(),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "the provider sent an empty error body".into();
    }
    match text.char_indices().nth(MAX_RAW_ERROR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::request::{anthropic_request_to_openai, openai_request_to_anthropic};
    use super::response::{anthropic_response_to_openai, openai_response_to_anthropic};
    use super::sse::{SseEvent, SseParser};
    use super::stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamTranslator};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn error_messages_from_every_shape() {
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(upstream_error_message(anthropic), "Overloaded");
        let openai = br#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            upstream_error_message(openai),
            "Rate limit reached for gpt-4o"
        );
        assert_eq!(
            upstream_error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(
            upstream_error_message(br#"{"detail":"Not Found"}"#),
            "Not Found"
        );
        assert_eq!(
            upstream_error_message(b"<html>502 Bad Gateway</html>"),
            "<html>502 Bad Gateway</html>"
        );
        assert_eq!(
            upstream_error_message(b""),
            "the provider sent an empty error body"
        );
        assert!(
            upstream_error_message("é".repeat(1000).as_bytes())
                .chars()
                .count()
                <= MAX_RAW_ERROR + 1
        );
    }

    /// Any JSON value, biased towards the shapes the translators look into.
    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "model",
            "messages",
            "role",
            "content",
            "type",
            "text",
            "system",
            "tools",
            "tool_choice",
            "tool_calls",
            "function",
            "name",
            "arguments",
            "input",
            "id",
            "tool_use_id",
            "tool_call_id",
            "image_url",
            "url",
            "source",
            "data",
            "media_type",
            "max_tokens",
            "stream",
            "stop",
            "stop_sequences",
            "choices",
            "message",
            "delta",
            "finish_reason",
            "stop_reason",
            "usage",
            "index",
            "content_block",
            "partial_json",
            "error",
            "temperature",
            "n",
            "file",
            "parameters",
        ]);
        let word = prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "tool",
            "developer",
            "text",
            "image",
            "tool_use",
            "tool_result",
            "image_url",
            "file",
            "document",
            "base64",
            "url",
            "auto",
            "any",
            "none",
            "required",
            "function",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "text_delta",
            "input_json_delta",
            "message_delta",
            "message_stop",
            "error",
            "stop",
            "length",
            "{",
            "{\"a\":1}",
            "data:image/png;base64,AA",
            "",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            word.prop_map(|s| Value::String(s.to_string())),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn no_body_makes_translation_panic(v in arb_json()) {
            let _ = anthropic_request_to_openai(&v, "m");
            let _ = openai_request_to_anthropic(&v, "m");
            let _ = openai_response_to_anthropic(&v, "m");
            let _ = anthropic_response_to_openai(&v, "m");
            let _ = upstream_error_message(v.to_string().as_bytes());
        }

        #[test]
        fn no_stream_makes_translation_panic(
            events in prop::collection::vec((prop::option::of("[a-z_]{0,20}"), arb_json()), 0..12),
            raw in prop::collection::vec(any::<u8>(), 0..256),
            cut in 1usize..64,
        ) {
            let mut a = OpenAiToAnthropicStream::new("m", "msg");
            let mut o = AnthropicToOpenAiStream::new("m", "chatcmpl", true);
            let mut out = Vec::new();
            for (event, data) in &events {
                let ev = SseEvent { event: event.clone(), data: data.to_string() };
                a.push(&ev, &mut out);
                o.push(&ev, &mut out);
            }
            let mut parser = SseParser::new();
            let mut parsed = Vec::new();
            for c in raw.chunks(cut) {
                parser.feed(c, &mut parsed);
            }
            parser.finish(&mut parsed);
            for ev in &parsed {
                a.push(ev, &mut out);
                o.push(ev, &mut out);
            }
            let _ = (a.finish(&mut out), o.finish(&mut out), a.stats().usage_when_cut(), o.stats().usage_when_cut());
        }

        /// Whatever an Anthropic request says in text survives the round trip.
        #[test]
        fn text_round_trips(system in ".{0,40}", turns in prop::collection::vec(".{1,40}", 1..6)) {
            let messages: Vec<Value> = turns.iter().enumerate().map(|(i, t)| {
                json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": t})
            }).collect();
            let req = json!({"model": "a", "max_tokens": 10, "system": system, "messages": messages});
            let back = openai_request_to_anthropic(&anthropic_request_to_openai(&req, "b").unwrap(), "a").unwrap();
            prop_assert_eq!(back["messages"].as_array().unwrap().len(), turns.len());
            for (i, t) in turns.iter().enumerate() {
                prop_assert_eq!(&back["messages"][i]["content"][0]["text"], &json!(t));
            }
            if system.is_empty() {
                prop_assert!(back.get("system").is_none());
            } else {
                prop_assert_eq!(&back["system"], &json!(system));
            }
        }
    }
}
