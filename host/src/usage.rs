//! Token usage reported by providers, and extracting it from their bodies and streams.

use serde::{Deserialize, Serialize};

/// Tokens one request consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens (Anthropic's `input_tokens`).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Reads an Anthropic `usage` object, keeping fields it lacks.
    pub fn merge_anthropic(&mut self, usage: &serde_json::Value) {
        let get = |k: &str| usage.get(k).and_then(serde_json::Value::as_u64);
        if let Some(v) = get("input_tokens") {
            self.input_tokens = v;
        }
        if let Some(v) = get("output_tokens") {
            self.output_tokens = v;
        }
        if let Some(v) = get("cache_read_input_tokens") {
            self.cache_read_tokens = v;
        }
        if let Some(v) = get("cache_creation_input_tokens") {
            self.cache_write_tokens = v;
        }
    }

    /// Reads an OpenAI `usage` object. OpenAI counts cached prompt tokens inside
    /// `prompt_tokens`; they are split out so input is billed once.
    pub fn from_openai(usage: &serde_json::Value) -> Self {
        let get = |p: &str| {
            usage
                .pointer(p)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let prompt = get("/prompt_tokens");
        let cached = get("/prompt_tokens_details/cached_tokens").min(prompt);
        Usage {
            input_tokens: prompt - cached,
            output_tokens: get("/completion_tokens"),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        }
    }

    /// Usage from a whole Anthropic message body.
    pub fn from_anthropic_body(body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let mut u = Usage::default();
        u.merge_anthropic(v.get("usage")?);
        Some(u)
    }
}

/// Watches an Anthropic SSE stream as it passes through, without holding it back:
/// records usage from `message_start` / `message_delta`, whether the stream finished
/// (`message_stop`) and whether it carried an `error` event.
#[derive(Debug, Default)]
pub struct AnthropicStreamTap {
    line: Vec<u8>,
    event: Option<String>,
    /// Usage seen so far.
    pub usage: Usage,
    /// `message_stop` was seen.
    pub finished: bool,
    /// The upstream sent an `error` event (its message).
    pub error: Option<String>,
    /// Any content delta has been seen (first token).
    pub saw_content: bool,
    /// Stop reason from `message_delta`.
    pub stop_reason: Option<String>,
    /// Approximate characters of content generated so far (see [`DELTA_ENVELOPE`]).
    pub output_chars: u64,
}

/// Bytes of a `content_block_delta` event's JSON that are not content: subtracted so a
/// delta's length approximates its text without parsing it.
const DELTA_ENVELOPE: usize = 80;

impl Usage {
    /// Usage of a stream cut before its final usage arrived: output tokens are at least
    /// the generated characters at about four per token.
    pub fn with_output_estimate(mut self, output_chars: u64) -> Self {
        self.output_tokens = self.output_tokens.max(output_chars.div_ceil(4));
        self
    }
}

impl AnthropicStreamTap {
    /// Feeds the next chunk of the stream; chunk boundaries may fall anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
                self.line = line;
                self.line.clear();
            } else if self.line.len() < 1 << 20 {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, raw: &[u8]) {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if let Some(ev) = line.strip_prefix(b"event:") {
            self.event = Some(String::from_utf8_lossy(ev).trim().to_string());
        } else if let Some(data) = line.strip_prefix(b"data:") {
            self.data(data);
        } else if line.is_empty() {
            self.event = None;
        }
    }

    fn data(&mut self, data: &[u8]) {
        // Content deltas are the bulk of a stream and carry nothing we need: skip parsing them.
        if self.event.as_deref() == Some("content_block_delta") {
            self.saw_content = true;
            self.output_chars += data.len().saturating_sub(DELTA_ENVELOPE) as u64;
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        match v.get("type").and_then(|t| t.as_str()) {
            Some("message_start") => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    self.usage.merge_anthropic(u);
                }
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage") {
                    self.usage.merge_anthropic(u);
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(|r| r.as_str()) {
                    self.stop_reason = Some(r.to_string());
                }
            }
            Some("content_block_delta") => {
                self.saw_content = true;
                let delta = v.get("delta");
                let text = ["text", "partial_json", "thinking"]
                    .iter()
                    .find_map(|k| delta.and_then(|d| d.get(*k)).and_then(|t| t.as_str()));
                self.output_chars += text.map_or(0, str::len) as u64;
            }
            Some("message_stop") => self.finished = true,
            Some("error") => {
                self.error = Some(
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("upstream error event")
                        .to_string(),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_reads_usage_across_arbitrary_chunking() {
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
            let mut tap = AnthropicStreamTap::default();
            for chunk in stream.as_bytes().chunks(split) {
                tap.feed(chunk);
            }
            assert_eq!(tap.usage.input_tokens, 25);
            assert_eq!(tap.usage.output_tokens, 15);
            assert_eq!(tap.usage.cache_read_tokens, 7);
            assert!(tap.finished && tap.saw_content);
            assert_eq!(tap.stop_reason.as_deref(), Some("end_turn"));
        }
    }
}
