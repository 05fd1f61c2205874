//! OpenAI `chat.completion.chunk` events in, Anthropic Messages stream events out.

use super::{StreamStats, StreamTranslator, write_anthropic, write_error};
use crate::api::Api;
use crate::translate::response::stop_reason_from_openai;
use crate::translate::sse::SseEvent;
use crate::usage::Usage;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The content block currently open in the Anthropic stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    None,
    Text(usize),
    Tool(usize),
}

/// OpenAI `chat.completion.chunk` events in, Anthropic Messages stream events out.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    id: String,
    started: bool,
    next_index: usize,
    open: Open,
    /// OpenAI tool-call index -> Anthropic content block index.
    tools: HashMap<u64, usize>,
    finish_reason: Option<String>,
    /// OpenAI sent its usage chunk; until then output tokens are the deltas counted.
    saw_usage: bool,
    deltas: u64,
    stats: StreamStats,
}

impl OpenAiToAnthropicStream {
    /// A translator for a message `id` served by `model`.
    pub fn new(model: &str, id: &str) -> Self {
        Self {
            model: model.to_string(),
            id: id.to_string(),
            started: false,
            next_index: 0,
            open: Open::None,
            tools: HashMap::new(),
            finish_reason: None,
            saw_usage: false,
            deltas: 0,
            stats: StreamStats::default(),
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        write_anthropic(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                // OpenAI reports usage only at the end; message_delta carries it.
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        );
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Open::Text(i) | Open::Tool(i) = self.open {
            write_anthropic(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            );
        }
        self.open = Open::None;
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_block(out);
        let stop = stop_reason_from_openai(self.finish_reason.as_deref().unwrap_or("stop"));
        write_anthropic(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {
                "input_tokens": self.stats.usage.input_tokens,
                "output_tokens": self.stats.usage.output_tokens,
                "cache_read_input_tokens": self.stats.usage.cache_read_tokens,
                "cache_creation_input_tokens": 0,
            }}),
        );
        write_anthropic(out, "message_stop", &json!({"type": "message_stop"}));
        self.stats.finished = true;
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        write_error(Api::Anthropic, "api_error", message, out);
        self.stats.fail(message);
    }

    /// One content delta of `len` bytes; until OpenAI's usage chunk arrives, each
    /// delta counts as one output token.
    fn count_delta(&mut self, len: usize) {
        self.deltas += 1;
        self.stats.output_chars += len as u64;
        self.stats.saw_content = true;
        if !self.saw_usage {
            self.stats.usage.output_tokens = self.deltas;
        }
    }
}

impl StreamTranslator for OpenAiToAnthropicStream {
    /// Translates one upstream event, appending Anthropic events to `out`.
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.stats.finished {
            return;
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.end(out);
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return; // keep-alives and garbage carry nothing to translate
        };
        if let Some(e) = v.get("error") {
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .unwrap_or("upstream error")
                .to_string();
            self.fail(&msg, out);
            return;
        }
        self.start(out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.stats.usage = Usage::from_openai(u);
            self.saw_usage = true;
        }
        let Some(choice) = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return;
        };
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
            && !text.is_empty()
        {
            let index = match self.open {
                Open::Text(i) => i,
                _ => {
                    self.close_block(out);
                    let i = self.next_index;
                    self.next_index += 1;
                    write_anthropic(
                        out,
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                    );
                    self.open = Open::Text(i);
                    i
                }
            };
            self.count_delta(text.len());
            write_anthropic(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            );
        }
        if let Some(calls) = choice
            .pointer("/delta/tool_calls")
            .and_then(Value::as_array)
        {
            for (n, call) in calls.iter().enumerate() {
                let key = call
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(n as u64);
                let index = match self.tools.get(&key) {
                    Some(&i) => i,
                    None => {
                        self.close_block(out);
                        let i = self.next_index;
                        self.next_index += 1;
                        self.tools.insert(key, i);
                        self.stats.saw_content = true;
                        let id = call
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("toolu_{}_{i}", self.id), str::to_string);
                        let name = call
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        write_anthropic(
                            out,
                            "content_block_start",
                            &json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                        );
                        self.open = Open::Tool(i);
                        i
                    }
                };
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str)
                    && !args.is_empty()
                {
                    self.count_delta(args.len());
                    write_anthropic(
                        out,
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                    );
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_string());
        }
    }

    /// The upstream closed. Ends the message if it had finished (some servers omit
    /// `[DONE]`), else appends an error event. Returns whether the stream ended well.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.stats.finished {
            if self.finish_reason.is_some() {
                self.end(out);
            } else {
                self.fail("the provider's stream ended before it finished", out);
            }
        }
        self.stats.error.is_none()
    }

    fn stats(&self) -> &StreamStats {
        &self.stats
    }
}
