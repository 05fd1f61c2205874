//! Streams translated event by event, without buffering content: OpenAI chunks into
//! Anthropic SSE events and back.

use super::response::{finish_reason_from_anthropic, openai_usage, stop_reason_from_openai};
use super::sse::SseEvent;
use super::unix_now;
use crate::usage::Usage;
use serde_json::{Value, json};
use std::collections::HashMap;

fn write_anthropic(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

fn write_openai(out: &mut Vec<u8>, data: &Value) {
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// Turns one API's stream events into the other's, event by event.
pub trait StreamTranslator: Send {
    /// Translates one upstream event, appending client bytes to `out`.
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>);
    /// The upstream closed: ends the client's stream properly, or with an error event
    /// when it had not finished. Returns whether it ended well.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool;
    /// Usage so far.
    fn usage(&self) -> Usage;
    /// Whether any text or tool-call content has been sent.
    fn saw_content(&self) -> bool;
    /// Whether the stream ended (well or with an error).
    fn is_finished(&self) -> bool;
    /// The error the stream ended with, if any.
    fn error(&self) -> Option<&str>;
    /// Characters of text and tool arguments generated so far: what a stream cut
    /// before its final usage is billed on.
    fn output_chars(&self) -> u64;
}

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
    usage: Usage,
    saw_usage: bool,
    deltas: u64,
    chars: u64,
    finished: bool,
    error: Option<String>,
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
            usage: Usage::default(),
            saw_usage: false,
            deltas: 0,
            chars: 0,
            finished: false,
            error: None,
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
        if !self.saw_usage {
            self.usage.output_tokens = self.deltas;
        }
        let stop = stop_reason_from_openai(self.finish_reason.as_deref().unwrap_or("stop"));
        write_anthropic(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cache_read_input_tokens": self.usage.cache_read_tokens,
                "cache_creation_input_tokens": 0,
            }}),
        );
        write_anthropic(out, "message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        write_anthropic(
            out,
            "error",
            &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        );
        self.error = Some(message.to_string());
        self.finished = true;
    }
}

impl StreamTranslator for OpenAiToAnthropicStream {
    /// Translates one upstream event, appending Anthropic events to `out`.
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.finished {
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
            self.usage = Usage::from_openai(u);
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
            self.deltas += 1;
            self.chars += text.len() as u64;
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
                    self.deltas += 1;
                    self.chars += args.len() as u64;
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
        if !self.finished {
            if self.finish_reason.is_some() {
                self.end(out);
            } else {
                self.fail("the provider's stream ended before it finished", out);
            }
        }
        self.error.is_none()
    }

    /// Usage so far.
    fn usage(&self) -> Usage {
        let mut u = self.usage;
        if !self.saw_usage {
            u.output_tokens = self.deltas;
        }
        u
    }

    /// Whether any text or tool-call content has been sent.
    fn saw_content(&self) -> bool {
        self.deltas > 0 || !self.tools.is_empty()
    }

    /// Whether the message ended (well or with an error).
    fn is_finished(&self) -> bool {
        self.finished
    }

    /// The error the stream ended with, if any.
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn output_chars(&self) -> u64 {
        self.chars
    }
}

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
    usage: Usage,
    saw_content: bool,
    chars: u64,
    finished: bool,
    error: Option<String>,
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
            usage: Usage::default(),
            saw_content: false,
            chars: 0,
            finished: false,
            error: None,
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
        let ty = match kind {
            "overloaded_error" | "api_error" => "server_error",
            "rate_limit_error" => "rate_limit_exceeded",
            other => other,
        };
        write_openai(
            out,
            &json!({"error": {"message": message, "type": ty, "param": null, "code": null}}),
        );
        self.error = Some(message.to_string());
        self.finished = true;
    }
}

impl StreamTranslator for AnthropicToOpenAiStream {
    /// Translates one upstream event, appending OpenAI chunks to `out`.
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.finished {
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
                    self.usage.merge_anthropic(u);
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
                        self.saw_content = true;
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
                            self.saw_content = true;
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
                            self.saw_content = true;
                            self.chars += t.len() as u64;
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
                            self.chars += part.len() as u64;
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
                    self.usage.merge_anthropic(u);
                }
            }
            "message_stop" => {
                self.chunk(json!({}), Some(self.finish_reason), out);
                if self.include_usage {
                    write_openai(
                        out,
                        &json!({
                            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": openai_usage(&self.usage),
                        }),
                    );
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.finished = true;
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
        if !self.finished {
            self.fail(
                "the provider's stream ended before message_stop",
                "server_error",
                out,
            );
        }
        self.error.is_none()
    }

    /// Usage so far.
    fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether any text or tool-call content has been sent.
    fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// Whether the stream ended (well or with an error).
    fn is_finished(&self) -> bool {
        self.finished
    }

    /// The error the stream ended with, if any.
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn output_chars(&self) -> u64 {
        self.chars
    }
}

#[cfg(test)]
mod tests {
    use super::super::sse::SseParser;
    use super::*;

    fn events(raw: &str) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(raw.as_bytes(), &mut out);
        p.finish(&mut out);
        out
    }

    fn json_events(out: &[u8]) -> Vec<Value> {
        events(std::str::from_utf8(out).unwrap())
            .into_iter()
            .filter(|e| e.data != "[DONE]")
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    /// OpenAI's documented streaming example, with the usage chunk.
    const OPENAI_STREAM: &str = "\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}

data: [DONE]

";

    #[test]
    fn openai_text_stream_becomes_a_valid_anthropic_stream() {
        let mut t = OpenAiToAnthropicStream::new("gpt-4o-mini", "msg_1");
        let mut out = Vec::new();
        for e in events(OPENAI_STREAM) {
            t.push(&e, &mut out);
        }
        assert!(t.finish(&mut out));
        let ev = json_events(&out);
        let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[2]["delta"]["text"], "Hello");
        assert_eq!(ev[5]["delta"]["stop_reason"], "end_turn");
        assert_eq!(ev[5]["usage"]["output_tokens"], 2);
        assert_eq!(ev[5]["usage"]["input_tokens"], 5);
        assert_eq!(ev[5]["usage"]["cache_read_input_tokens"], 4);
        assert_eq!(t.usage().input_tokens, 5);
        assert!(t.saw_content() && t.is_finished());
    }

    #[test]
    fn openai_tool_call_stream_becomes_tool_use_blocks() {
        let raw = "\
data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"location\\\":\"}}]},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}

";
        let mut t = OpenAiToAnthropicStream::new("gpt-4o", "msg_2");
        let mut out = Vec::new();
        for e in events(raw) {
            t.push(&e, &mut out);
        }
        // No [DONE]: a finish_reason was seen, so the message still ends properly.
        assert!(t.finish(&mut out));
        let ev = json_events(&out);
        assert_eq!(ev[1]["content_block"]["type"], "tool_use");
        assert_eq!(
            ev[1]["content_block"]["id"],
            "call_DdmO9pD3xa9XTPNJ32zg2hcA"
        );
        let json: String = ev
            .iter()
            .filter_map(|e| e.pointer("/delta/partial_json").and_then(Value::as_str))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            json!({"location": "Paris"})
        );
        let delta = ev.iter().find(|e| e["type"] == "message_delta").unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn openai_stream_cut_short_ends_with_an_error_event() {
        let mut t = OpenAiToAnthropicStream::new("m", "msg_3");
        let mut out = Vec::new();
        for e in events(OPENAI_STREAM).into_iter().take(2) {
            t.push(&e, &mut out);
        }
        assert!(!t.finish(&mut out));
        assert_eq!(json_events(&out).last().unwrap()["type"], "error");
    }

    /// Anthropic's documented streaming example with a tool call.
    const ANTHROPIC_STREAM: &str = "\
event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ncisco, CA\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

    #[test]
    fn anthropic_tool_stream_becomes_openai_chunks() {
        let mut t = AnthropicToOpenAiStream::new("claude", "chatcmpl-1", true);
        let mut out = Vec::new();
        for e in events(ANTHROPIC_STREAM) {
            t.push(&e, &mut out);
        }
        assert!(t.finish(&mut out));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        let chunks = json_events(&out);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Okay");
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"location": "San Francisco, CA"})
        );
        let last = &chunks[chunks.len() - 1];
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 472);
        assert_eq!(last["usage"]["completion_tokens"], 89);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(t.usage().output_tokens, 89);
    }

    #[test]
    fn anthropic_stream_without_usage_request_and_with_error() {
        let mut t = AnthropicToOpenAiStream::new("claude", "chatcmpl-2", false);
        let mut out = Vec::new();
        for e in events(ANTHROPIC_STREAM) {
            t.push(&e, &mut out);
        }
        assert!(json_events(&out).iter().all(|c| c.get("usage").is_none()));
        let mut t = AnthropicToOpenAiStream::new("claude", "chatcmpl-3", false);
        let mut out = Vec::new();
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        for e in events(err) {
            t.push(&e, &mut out);
        }
        assert!(!t.finish(&mut out));
        assert_eq!(t.error(), Some("Overloaded"));
        assert_eq!(json_events(&out)[0]["error"]["type"], "server_error");
    }
}
