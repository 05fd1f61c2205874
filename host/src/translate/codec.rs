//! One value per (client API, provider API) pair that knows every difference between
//! them: how the client's request is shaped for the provider, how a whole answer is
//! decoded back with its usage, which stream translator relays a stream, and how an
//! upstream error reaches the client. Everything else in the gateway is pair-blind.

use super::stream::{
    AnthropicPassthrough, AnthropicToOpenAiStream, OpenAiPassthrough, OpenAiToAnthropicStream,
    Relay, StreamTranslator,
};
use super::{TranslateError, passthrough, request, response, upstream_error_message};
use crate::api::Api;
use crate::error::{ApiError, ErrorKind, error_body};
use crate::usage::Usage;
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::Value;

/// What a routing target changes in a request.
#[derive(Clone, Copy, Debug)]
pub struct TargetShape<'a> {
    /// The provider's model name.
    pub model: &'a str,
    /// Upper bound on the output tokens the request may ask for.
    pub max_tokens_cap: Option<u32>,
    /// The client asked for a stream.
    pub stream: bool,
}

/// A client speaking `client` served by a provider speaking `upstream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    /// The API the client speaks.
    pub client: Api,
    /// The API the provider speaks.
    pub upstream: Api,
}

impl Codec {
    /// The codec for a pair.
    pub const fn new(client: Api, upstream: Api) -> Self {
        Self { client, upstream }
    }

    /// Whether the client's bytes can go upstream unchanged for `target` (a request
    /// for `client_model`): same API, same model, no cap, and nothing the gateway
    /// must add.
    pub fn passes_request(self, client_model: &str, target: &TargetShape<'_>) -> bool {
        self.client == self.upstream
            && target.model == client_model
            && target.max_tokens_cap.is_none()
            && !self.needs_stream_usage(target.stream)
    }

    /// An OpenAI provider reports a stream's usage only when asked.
    fn needs_stream_usage(self, stream: bool) -> bool {
        stream && self.upstream == Api::OpenAi
    }

    /// The provider's request body for the client's parsed request.
    pub fn request(self, original: &Value, target: &TargetShape<'_>) -> Result<Value, ApiError> {
        let mut out = match (self.client, self.upstream) {
            (Api::Anthropic, Api::OpenAi) => {
                request::anthropic_request_to_openai(original, target.model)?
            }
            (Api::OpenAi, Api::Anthropic) => {
                request::openai_request_to_anthropic(original, target.model)?
            }
            (Api::Anthropic, Api::Anthropic) | (Api::OpenAi, Api::OpenAi) => {
                let mut v = original.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert("model".into(), Value::String(target.model.to_string()));
                }
                v
            }
        };
        if let Some(o) = out.as_object_mut() {
            if let Some(cap) = target.max_tokens_cap {
                for field in ["max_tokens", "max_completion_tokens"] {
                    if let Some(m) = o.get(field).and_then(Value::as_u64)
                        && m > u64::from(cap)
                    {
                        o.insert(field.into(), cap.into());
                    }
                }
                if self.upstream == Api::Anthropic && !o.contains_key("max_tokens") {
                    o.insert("max_tokens".into(), cap.into());
                }
            }
            if self.needs_stream_usage(target.stream) {
                let opts = o
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(opts) = opts.as_object_mut() {
                    opts.insert("include_usage".into(), Value::Bool(true));
                }
            }
        }
        Ok(out)
    }

    /// Whether the client itself asked for a stream's usage chunk (OpenAI's
    /// `stream_options.include_usage`); Anthropic streams always carry usage.
    pub fn client_wants_stream_usage(self, request: &Value) -> bool {
        self.client == Api::OpenAi
            && request
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    /// A successful whole answer in the client's API, with its usage. `model` names
    /// the answer when the provider's body does not.
    pub fn response(self, body: &Bytes, model: &str) -> Result<(Bytes, Usage), ApiError> {
        let not_valid = || TranslateError::BadResponse(NOT_A_COMPLETION.into());
        let untranslatable = |e: TranslateError| {
            TranslateError::BadResponse(format!(
                "the provider's response could not be translated: {e}"
            ))
        };
        let parse = || serde_json::from_slice::<Value>(body).map_err(|_| not_valid());
        match (self.client, self.upstream) {
            // Passed through unchanged: read only for its usage.
            (Api::Anthropic, Api::Anthropic) | (Api::OpenAi, Api::OpenAi) => {
                let usage = passthrough::usage(self.upstream, body).ok_or_else(not_valid)?;
                Ok((body.clone(), usage))
            }
            (Api::Anthropic, Api::OpenAi) => {
                let out = response::openai_response_to_anthropic(&parse()?, model)
                    .map_err(untranslatable)?;
                let usage = anthropic_usage(&out).unwrap_or_default();
                Ok((Bytes::from(out.to_string()), usage))
            }
            (Api::OpenAi, Api::Anthropic) => {
                let parsed = parse()?;
                let usage = anthropic_usage(&parsed).ok_or_else(not_valid)?;
                let out = response::anthropic_response_to_openai(&parsed, model)
                    .map_err(untranslatable)?;
                Ok((Bytes::from(out.to_string()), usage))
            }
        }
    }

    /// The relay for a streamed answer: `id` is the client-visible message id's
    /// suffix, `include_usage` whether an OpenAI client asked for the usage chunk.
    pub fn stream(self, model: &str, id: &str, include_usage: bool) -> Relay {
        let tr: Box<dyn StreamTranslator> = match (self.client, self.upstream) {
            (Api::Anthropic, Api::Anthropic) => Box::new(AnthropicPassthrough::default()),
            (Api::OpenAi, Api::OpenAi) => Box::new(OpenAiPassthrough::new(!include_usage)),
            (Api::Anthropic, Api::OpenAi) => {
                Box::new(OpenAiToAnthropicStream::new(model, &format!("msg_{id}")))
            }
            (Api::OpenAi, Api::Anthropic) => Box::new(AnthropicToOpenAiStream::new(
                model,
                &format!("chatcmpl-{id}"),
                include_usage,
            )),
        };
        Relay::new(self.client, tr)
    }

    /// An upstream error answer for the client, and its message for the log. Passed
    /// through when it already has the client's shape, else rebuilt in it (the status
    /// stays the provider's).
    pub fn error(self, status: StatusCode, body: Bytes) -> (Bytes, String) {
        let message = upstream_error_message(&body);
        if self.client == self.upstream && is_error_shape(self.client, &body) {
            return (body, message);
        }
        let kind = ErrorKind::from_status(status.as_u16());
        let ty = match self.client {
            Api::Anthropic => kind.anthropic_type(),
            Api::OpenAi => kind.openai_type(),
        };
        let rebuilt = Bytes::from(error_body(self.client, ty, &message).to_string());
        (rebuilt, message)
    }
}

const NOT_A_COMPLETION: &str = "the provider returned a response that is not a valid completion";

/// The usage of an Anthropic message body.
fn anthropic_usage(message: &Value) -> Option<Usage> {
    let mut u = Usage::default();
    u.merge_anthropic(message.get("usage")?);
    Some(u)
}

/// Whether `body` is already an error in `api`'s shape.
fn is_error_shape(api: Api, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match api {
        Api::Anthropic => {
            v.get("type").and_then(Value::as_str) == Some("error") && v.get("error").is_some()
        }
        Api::OpenAi => v
            .get("error")
            .and_then(|e| e.get("message"))
            .is_some_and(Value::is_string),
    }
}

/// The one mapping of translation failures to client errors: a request the other
/// API cannot express is the client's 400; an answer that cannot be read is a 502.
impl From<TranslateError> for ApiError {
    fn from(e: TranslateError) -> Self {
        match e {
            TranslateError::Invalid(m) => ApiError::invalid(m),
            TranslateError::BadResponse(m) => {
                ApiError::new(ErrorKind::Api, m).with_status(StatusCode::BAD_GATEWAY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PAIRS: [Codec; 4] = [
        Codec::new(Api::Anthropic, Api::Anthropic),
        Codec::new(Api::Anthropic, Api::OpenAi),
        Codec::new(Api::OpenAi, Api::Anthropic),
        Codec::new(Api::OpenAi, Api::OpenAi),
    ];

    fn client_request(api: Api) -> Value {
        match api {
            Api::Anthropic => json!({"model": "m", "max_tokens": 900, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
            Api::OpenAi => json!({"model": "m", "max_tokens": 900, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
        }
    }

    #[test]
    fn every_pair_swaps_the_model_caps_tokens_and_asks_openai_for_usage() {
        for codec in PAIRS {
            let target = TargetShape {
                model: "served",
                max_tokens_cap: Some(100),
                stream: true,
            };
            assert!(!codec.passes_request("m", &target));
            let out = codec
                .request(&client_request(codec.client), &target)
                .expect("shapes");
            assert_eq!(out["model"], "served", "{codec:?}");
            let max = out
                .get("max_tokens")
                .or_else(|| out.get("max_completion_tokens"));
            assert_eq!(max, Some(&json!(100)), "{codec:?}: {out}");
            assert_eq!(
                out.pointer("/stream_options/include_usage") == Some(&json!(true)),
                codec.upstream == Api::OpenAi,
                "{codec:?}"
            );
        }
        let same = TargetShape {
            model: "m",
            max_tokens_cap: None,
            stream: false,
        };
        assert!(PAIRS[0].passes_request("m", &same));
        assert!(!PAIRS[1].passes_request("m", &same));
        assert!(PAIRS[3].passes_request("m", &same));
        let streamed = TargetShape {
            stream: true,
            ..same
        };
        assert!(PAIRS[0].passes_request("m", &streamed));
        assert!(!PAIRS[3].passes_request("m", &streamed));
    }

    #[test]
    fn every_pair_decodes_an_answer_into_the_clients_api_with_usage() {
        let anthropic = Bytes::from(
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "a",
                "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 12, "output_tokens": 3}})
            .to_string(),
        );
        let openai = Bytes::from(
            json!({"id": "c", "object": "chat.completion", "model": "o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                    "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
            .to_string(),
        );
        for codec in PAIRS {
            let body = match codec.upstream {
                Api::Anthropic => &anthropic,
                Api::OpenAi => &openai,
            };
            let (out, usage) = codec.response(body, "m").expect("decodes");
            assert_eq!((usage.input_tokens, usage.output_tokens), (12, 3));
            let v: Value = serde_json::from_slice(&out).expect("json");
            match codec.client {
                Api::Anthropic => assert_eq!(v["content"][0]["text"], "hello", "{codec:?}"),
                Api::OpenAi => {
                    assert_eq!(v["choices"][0]["message"]["content"], "hello", "{codec:?}")
                }
            }
            let garbage = codec
                .response(&Bytes::from_static(b"<html>"), "m")
                .expect_err("not a completion");
            assert_eq!(garbage.status, StatusCode::BAD_GATEWAY);
        }
    }

    #[test]
    fn a_passed_through_answer_is_kept_byte_for_byte_and_must_still_be_a_whole_answer() {
        let (anthropic, openai) = (PAIRS[0], PAIRS[3]);
        let body = Bytes::from_static(
            br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"hi"}],
               "usage":{"input_tokens":5,"output_tokens":2,"cache_read_input_tokens":4}}"#,
        );
        let (out, usage) = anthropic.response(&body, "m").expect("passes");
        assert_eq!(out, body);
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens
            ),
            (5, 2, 4)
        );
        let refused = [
            // No usage: nothing to bill.
            (
                anthropic,
                &br#"{"id":"msg_1","type":"message","content":[]}"#[..],
            ),
            // Cut short: the fields after `usage` are still checked as JSON.
            (anthropic, br#"{"usage":{"input_tokens":1},"content":["#),
            // No choices.
            (openai, br#"{"id":"c","usage":{"prompt_tokens":1}}"#),
            (openai, br#"[1, 2]"#),
            // Checked as strictly as before, though never built.
            (anthropic, b"{\"usage\":{},\"content\":\"\xff\"}"),
            (anthropic, br#"{"usage":{},"x":1e400}"#),
            (anthropic, br#"{"usage":{},"x":"\ud800"}"#),
            (openai, br#"{"choices":[],"x":"\q"}"#),
        ];
        for (codec, body) in refused {
            let err = codec
                .response(&Bytes::copy_from_slice(body), "m")
                .expect_err("not a whole answer");
            assert_eq!(err.status, StatusCode::BAD_GATEWAY, "{codec:?}");
        }
        let (_, usage) = openai
            .response(&Bytes::from_static(br#"{"choices":[]}"#), "m")
            .expect("an answer without usage still passes");
        assert_eq!(usage.input_tokens, 0);
        // Nulls and repeated keys are read as a parse into `Value` reads them.
        for (codec, body, tokens) in [
            (anthropic, &br#"{"usage":null}"#[..], 0),
            (openai, br#"{"choices":null}"#, 0),
            (
                anthropic,
                br#"{"usage":{"input_tokens":1},"usage":{"input_tokens":7}}"#,
                7,
            ),
        ] {
            let (_, usage) = codec
                .response(&Bytes::copy_from_slice(body), "m")
                .expect("accepted as before");
            assert_eq!(usage.input_tokens, tokens, "{codec:?}");
        }
        let deep = format!(
            "{{\"usage\":{{}},\"x\":{}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(
            anthropic.response(&Bytes::from(deep), "m").is_err(),
            "nesting is bounded"
        );
    }

    #[test]
    fn upstream_errors_reach_the_client_in_its_shape() {
        let anthropic_err = Bytes::from_static(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        let openai_err = Bytes::from_static(
            br#"{"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}"#,
        );
        for codec in PAIRS {
            let upstream_body = match codec.upstream {
                Api::Anthropic => anthropic_err.clone(),
                Api::OpenAi => openai_err.clone(),
            };
            let (body, message) = codec.error(StatusCode::SERVICE_UNAVAILABLE, upstream_body);
            assert_eq!(message, "Overloaded");
            let v: Value = serde_json::from_slice(&body).expect("json");
            match codec.client {
                Api::Anthropic => {
                    assert_eq!(v["type"], "error");
                    assert_eq!(v["error"]["type"], "overloaded_error", "{codec:?}");
                }
                Api::OpenAi => {
                    assert_eq!(v["error"]["type"], "server_error", "{codec:?}");
                    assert!(v.get("type").is_none(), "{codec:?}");
                }
            }
        }
        let (body, _) = PAIRS[0].error(StatusCode::BAD_GATEWAY, Bytes::from_static(b"<html>"));
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["message"], "<html>");
    }

    #[test]
    fn every_pair_relays_a_stream_into_the_clients_api() {
        let anthropic = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"a\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hey\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let openai = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hey\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        for codec in PAIRS {
            let raw = match codec.upstream {
                Api::Anthropic => anthropic,
                Api::OpenAi => openai,
            };
            let mut relay = codec.stream("m", "1", true);
            let mut out = Vec::new();
            for chunk in raw.as_bytes().chunks(11) {
                out.extend_from_slice(&relay.chunk(Bytes::copy_from_slice(chunk)));
            }
            out.extend_from_slice(&relay.end());
            let text = String::from_utf8(out).expect("utf-8");
            let s = relay.stats();
            assert!(
                s.finished && s.saw_content && s.error.is_none(),
                "{codec:?}"
            );
            assert_eq!((s.usage.input_tokens, s.usage.output_tokens), (7, 4));
            match codec.client {
                Api::Anthropic => assert!(text.contains("event: message_stop"), "{codec:?}"),
                Api::OpenAi => assert!(text.ends_with("data: [DONE]\n\n"), "{codec:?}"),
            }
            // Cut after the first event: the client's stream ends with an error in its shape.
            let mut relay = codec.stream("m", "1", true);
            let first = raw.split_inclusive("\n\n").next().expect("an event");
            relay.chunk(Bytes::copy_from_slice(first.as_bytes()));
            let tail = String::from_utf8(relay.end().to_vec()).expect("utf-8");
            assert!(tail.contains("error"), "{codec:?}: {tail}");
            assert!(relay.stats().error.is_some(), "{codec:?}");
        }
    }
}
