//! Same-API streams: the client gets the provider's events, the gateway only reads
//! usage, first token and how the stream ended on the way.

use super::{StreamStats, StreamTranslator, write_error};
use crate::api::Api;
use crate::translate::sse::SseEvent;
use crate::usage::Usage;
use serde_json::Value;

/// Bytes of a `content_block_delta` event's JSON that are not content: subtracted so a
/// delta's length approximates its text without parsing it.
const DELTA_ENVELOPE: usize = 80;

/// Anthropic on both sides: the bytes pass through untouched; usage comes from
/// `message_start` / `message_delta`, the end from `message_stop` or an `error` event.
#[derive(Debug, Default)]
pub struct AnthropicPassthrough {
    stats: StreamStats,
}

impl StreamTranslator for AnthropicPassthrough {
    fn push(&mut self, ev: &SseEvent, _out: &mut Vec<u8>) {
        // Content deltas are the bulk of a stream and carry nothing we need: skip parsing them.
        if ev.event.as_deref() == Some("content_block_delta") {
            self.stats.saw_content = true;
            self.stats.output_chars += ev.data.len().saturating_sub(DELTA_ENVELOPE) as u64;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.stats.usage.merge_anthropic(u);
                }
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage") {
                    self.stats.usage.merge_anthropic(u);
                }
            }
            Some("content_block_delta") => {
                self.stats.saw_content = true;
                let delta = v.get("delta");
                let text = ["text", "partial_json", "thinking"]
                    .iter()
                    .find_map(|k| delta.and_then(|d| d.get(*k)).and_then(Value::as_str));
                self.stats.output_chars += text.map_or(0, str::len) as u64;
            }
            Some("message_stop") => self.stats.finished = true,
            Some("error") => {
                let message = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error event");
                self.stats.fail(message);
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.stats.finished {
            let message = "the provider's stream ended before message_stop";
            write_error(Api::Anthropic, "api_error", message, out);
            self.stats.fail(message);
        }
        self.stats.error.is_none()
    }

    fn stats(&self) -> &StreamStats {
        &self.stats
    }

    fn passes_bytes(&self) -> bool {
        true
    }
}

/// OpenAI on both sides: events pass through, except the usage chunk the gateway
/// asked for on behalf of a client that did not ask for it itself.
#[derive(Debug, Default)]
pub struct OpenAiPassthrough {
    /// Drop the usage-only chunk (the client did not ask for `include_usage`).
    strip_usage: bool,
    stats: StreamStats,
}

impl OpenAiPassthrough {
    /// A relay; `strip_usage` when the gateway added `include_usage` itself.
    pub fn new(strip_usage: bool) -> Self {
        Self {
            strip_usage,
            stats: StreamStats::default(),
        }
    }
}

impl OpenAiPassthrough {
    /// Reads one event into the stats; false for the usage chunk to hold back.
    fn observe(&mut self, data: &str) -> bool {
        if data == "[DONE]" {
            self.stats.finished = true;
            return true;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return true;
        };
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.stats.usage = Usage::from_openai(u);
        }
        if let Some(e) = v.get("error") {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            self.stats.error = Some(message.to_string());
        }
        let choices = v.get("choices").and_then(Value::as_array);
        for ch in choices.into_iter().flatten() {
            let text = ch.pointer("/delta/content").and_then(Value::as_str);
            let calls = ch.pointer("/delta/tool_calls").and_then(Value::as_array);
            let args: usize = calls
                .into_iter()
                .flatten()
                .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
                .map(str::len)
                .sum();
            self.stats.output_chars += (text.map_or(0, str::len) + args) as u64;
            if text.is_some_and(|t| !t.is_empty()) || calls.is_some() {
                self.stats.saw_content = true;
            }
        }
        let usage_only = choices.is_some_and(|c| c.is_empty()) && v.get("usage").is_some();
        !(self.strip_usage && usage_only)
    }
}

impl StreamTranslator for OpenAiPassthrough {
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.observe(ev.data.trim()) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(ev.data.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if self.stats.error.is_some() {
            // The provider's error chunk already told the client.
            self.stats.finished = true;
        } else if !self.stats.finished {
            let message = "the provider's stream ended before [DONE]";
            write_error(Api::OpenAi, "api_error", message, out);
            self.stats.fail(message);
        }
        self.stats.error.is_none()
    }

    fn stats(&self) -> &StreamStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::sse::SseParser;

    fn run(tr: &mut dyn StreamTranslator, raw: &str, split: usize) -> Vec<u8> {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        let mut out = Vec::new();
        for c in raw.as_bytes().chunks(split) {
            p.feed(c, &mut events);
            for e in events.drain(..) {
                tr.push(&e, &mut out);
            }
        }
        p.finish(&mut events);
        for e in events.drain(..) {
            tr.push(&e, &mut out);
        }
        tr.finish(&mut out);
        out
    }

    #[test]
    fn anthropic_usage_read_across_arbitrary_chunking() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":7}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: message_delta\r\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        for split in [1, 3, 7, 64, 4096] {
            let mut tap = AnthropicPassthrough::default();
            let out = run(&mut tap, stream, split);
            assert!(out.is_empty(), "a passthrough writes nothing of its own");
            let s = tap.stats();
            assert_eq!(s.usage.input_tokens, 25);
            assert_eq!(s.usage.output_tokens, 15);
            assert_eq!(s.usage.cache_read_tokens, 7);
            assert!(s.finished && s.saw_content && s.error.is_none());
        }
    }

    #[test]
    fn anthropic_stream_cut_short_gets_an_error_event() {
        let mut tap = AnthropicPassthrough::default();
        let out = run(
            &mut tap,
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n",
            8,
        );
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("event: error\ndata: {"), "{text}");
        assert!(tap.stats().finished);
        assert_eq!(
            tap.stats().error.as_deref(),
            Some("the provider's stream ended before message_stop")
        );
    }

    #[test]
    fn openai_usage_chunk_stripped_only_when_the_gateway_asked_for_it() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
        );
        for strip in [true, false] {
            let mut r = OpenAiPassthrough::new(strip);
            let out = String::from_utf8(run(&mut r, stream, 5)).expect("utf-8");
            assert_eq!(out.contains("\"usage\""), !strip, "{out}");
            assert!(out.ends_with("data: [DONE]\n\n"));
            let s = r.stats();
            assert_eq!((s.usage.input_tokens, s.usage.output_tokens), (9, 2));
            assert!(s.finished && s.saw_content && s.error.is_none());
            assert_eq!(s.output_chars, 5);
        }
    }

    #[test]
    fn openai_stream_without_done_ends_with_an_error_chunk() {
        let mut r = OpenAiPassthrough::new(false);
        let out = run(
            &mut r,
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            4,
        );
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("\"server_error\""), "{text}");
        assert!(r.stats().error.is_some());
    }
}
