//! Anthropic Messages stream events in, OpenAI `chat.completion.chunk` events out.

use super::{StreamStats, StreamTranslator, write_error, write_openai};
use crate::api::Api;
use crate::translate::response::{finish_reason_from_anthropic, openai_usage};
use crate::translate::sse::SseEvent;
use crate::translate::unix_now;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Anthropic Messages stream events in, OpenAI `chat.completion.chunk` events out.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    /// Anthropic content block index -> OpenAI tool-call index.
    tools: HashMap<u64, u64>,
    finish_reason: &'static str,
    stats: StreamStats,
}

impl AnthropicToOpenAiStream {
    /// A translator for completion `id` served by `model`; `include_usage` adds the
    /// final usage chunk the client asked for.
    pub fn new(model: &str, id: &str, include_usage: bool) -> Self {
        Self {
            model: model.to_string(),
            id: id.to_string(),
            created: unix_now(),
            include_usage,
            tools: HashMap::new(),
            finish_reason: "stop",
            stats: StreamStats::default(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        write_openai(out, &c);
    }

    fn fail(&mut self, message: &str, kind: &str, out: &mut Vec<u8>) {
        write_error(Api::OpenAi, kind, message, out);
        self.stats.fail(message);
    }
}

impl StreamTranslator for AnthropicToOpenAiStream {
    /// Translates one upstream event, appending OpenAI chunks to `out`.
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.stats.finished {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or_default();
        match ty {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.stats.usage.merge_anthropic(u);
                }
                if let Some(m) = v.pointer("/message/model").and_then(Value::as_str) {
                    self.model = m.to_string();
                }
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            "content_block_start" => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let n = self.tools.len() as u64;
                        self.tools.insert(index, n);
                        self.stats.saw_content = true;
                        self.chunk(
                            json!({"tool_calls": [{"index": n, "id": block.get("id"), "type": "function",
                                "function": {"name": block.get("name"), "arguments": ""}}]}),
                            None,
                            out,
                        );
                    }
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str)
                            && !t.is_empty()
                        {
                            self.stats.saw_content = true;
                            self.chunk(json!({"content": t}), None, out);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = delta.get("text").and_then(Value::as_str) {
                            self.stats.saw_content = true;
                            self.stats.output_chars += t.len() as u64;
                            self.chunk(json!({"content": t}), None, out);
                        }
                    }
                    Some("input_json_delta") => {
                        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let (Some(&n), Some(part)) = (
                            self.tools.get(&index),
                            delta.get("partial_json").and_then(Value::as_str),
                        ) && !part.is_empty()
                        {
                            self.stats.output_chars += part.len() as u64;
                            self.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": part}}]}),
                                None,
                                out,
                            );
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(stop) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish_reason = finish_reason_from_anthropic(stop);
                }
                if let Some(u) = v.get("usage") {
                    self.stats.usage.merge_anthropic(u);
                }
            }
            "message_stop" => {
                self.chunk(json!({}), Some(self.finish_reason), out);
                if self.include_usage {
                    write_openai(
                        out,
                        &json!({
                            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": openai_usage(&self.stats.usage),
                        }),
                    );
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.stats.finished = true;
            }
            "error" => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_string();
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                self.fail(&msg, kind, out);
            }
            _ => {}
        }
    }

    /// The upstream closed; appends an error chunk unless the message had ended.
    /// Returns whether the stream ended well.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.stats.finished {
            self.fail(
                "the provider's stream ended before message_stop",
                "api_error",
                out,
            );
        }
        self.stats.error.is_none()
    }

    fn stats(&self) -> &StreamStats {
        &self.stats
    }
}
