//! Streams relayed event by event, without buffering content. One driver ([`Relay`])
//! splits the upstream bytes into SSE events and hands them to one
//! [`StreamTranslator`] per (client API, provider API) pair: the two passthroughs watch
//! a same-API stream, the two translators rewrite it into the other API. Every one of
//! them keeps the same [`StreamStats`], which is what the log and the ledger read.

mod passthrough;
mod to_anthropic;
mod to_openai;

pub use passthrough::{AnthropicPassthrough, OpenAiPassthrough};
pub use to_anthropic::OpenAiToAnthropicStream;
pub use to_openai::AnthropicToOpenAiStream;

use super::sse::{SseEvent, SseParser};
use crate::api::Api;
use crate::error::error_body;
use crate::usage::Usage;
use bytes::Bytes;
use serde_json::Value;

/// What a stream carried so far: read for the log, the ledger and first-token time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Usage the provider reported (or, where it reports none, what was counted).
    pub usage: Usage,
    /// Any text or tool-call content has been relayed (the first token).
    pub saw_content: bool,
    /// The stream reached its end, well or with an error.
    pub finished: bool,
    /// The error the stream ended with, if any.
    pub error: Option<String>,
    /// Characters of text and tool arguments generated so far: what a stream cut
    /// before its final usage is billed on.
    pub output_chars: u64,
}

impl StreamStats {
    /// Usage for a stream that ended early: what the provider reported so far, with
    /// output tokens estimated from the content relayed when the final figure is missing.
    pub fn usage_when_cut(&self) -> Usage {
        self.usage.with_output_estimate(self.output_chars)
    }

    /// Ends the stream with `message` as its error.
    fn fail(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
        self.finished = true;
    }
}

/// Turns a provider's stream events into the client's, event by event.
pub trait StreamTranslator: Send {
    /// Takes one upstream event, appending client bytes to `out` (nothing when
    /// [`Self::passes_bytes`]).
    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>);
    /// The upstream closed: ends the client's stream properly, or with an error event
    /// when it had not finished. Returns whether it ended well.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool;
    /// What the stream carried so far.
    fn stats(&self) -> &StreamStats;
    /// Whether the client receives the upstream's bytes unchanged, the translator only
    /// watching them.
    fn passes_bytes(&self) -> bool {
        false
    }
}

/// The one stream driver: upstream chunks in, client chunks out.
pub struct Relay {
    client: Api,
    parser: SseParser,
    events: Vec<SseEvent>,
    tr: Box<dyn StreamTranslator>,
}

impl Relay {
    /// Drives `tr` for a client speaking `client`.
    pub fn new(client: Api, tr: Box<dyn StreamTranslator>) -> Self {
        Self {
            client,
            parser: SseParser::new(),
            events: Vec::new(),
            tr,
        }
    }

    /// Client bytes for the next upstream chunk (possibly none yet).
    pub fn chunk(&mut self, chunk: Bytes) -> Bytes {
        self.parser.feed(&chunk, &mut self.events);
        let raw = self.tr.passes_bytes();
        let mut out = if raw {
            Vec::new()
        } else {
            Vec::with_capacity(chunk.len() * 2)
        };
        for ev in self.events.drain(..) {
            self.tr.push(&ev, &mut out);
        }
        if raw { chunk } else { Bytes::from(out) }
    }

    /// The upstream closed: trailing client bytes (an error event when the stream had
    /// not finished).
    pub fn end(&mut self) -> Bytes {
        let mut out = Vec::new();
        self.parser.finish(&mut self.events);
        for ev in self.events.drain(..) {
            self.tr.push(&ev, &mut out);
        }
        // A byte-passing translator writes nothing here: the last event's bytes
        // already went out with its chunk.
        debug_assert!(!self.tr.passes_bytes() || out.is_empty());
        self.tr.finish(&mut out);
        Bytes::from(out)
    }

    /// The upstream connection broke: the error event that ends the client's stream.
    pub fn interrupted(&self, message: &str) -> Bytes {
        error_event(self.client, message)
    }

    /// What the stream carried so far.
    pub fn stats(&self) -> &StreamStats {
        self.tr.stats()
    }
}

/// An error event in `client`'s stream shape.
pub fn error_event(client: Api, message: &str) -> Bytes {
    let mut out = Vec::new();
    write_error(client, "api_error", message, &mut out);
    Bytes::from(out)
}

/// Appends an error event in `client`'s stream shape; `kind` is an Anthropic error type.
fn write_error(client: Api, kind: &str, message: &str, out: &mut Vec<u8>) {
    match client {
        Api::Anthropic => write_anthropic(out, "error", &error_body(client, kind, message)),
        Api::OpenAi => {
            let ty = match kind {
                "overloaded_error" | "api_error" => "server_error",
                "rate_limit_error" => "rate_limit_exceeded",
                other => other,
            };
            write_openai(out, &error_body(client, ty, message));
        }
    }
}

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

#[cfg(test)]
mod tests;
