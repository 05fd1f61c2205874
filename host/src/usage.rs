//! Token usage reported by providers, read from either API's `usage` object.

use serde::{Deserialize, Serialize};

/// Tokens one request consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens (Anthropic's `input_tokens`).
    pub input_tokens: u64,
    /// Generated tokens (Anthropic's `output_tokens`, OpenAI's `completion_tokens`).
    pub output_tokens: u64,
    /// Input tokens served from the prompt cache (Anthropic's `cache_read_input_tokens`,
    /// OpenAI's `prompt_tokens_details.cached_tokens`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; OpenAI reports none).
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Every input token, cached or not: the prompt as the provider read it.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
    }

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

    /// Usage of a stream cut before its final usage arrived: output tokens are at least
    /// the generated characters at about four per token.
    pub fn with_output_estimate(mut self, output_chars: u64) -> Self {
        self.output_tokens = self.output_tokens.max(output_chars.div_ceil(4));
        self
    }
}
