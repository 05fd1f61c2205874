//! Relaying an upstream SSE stream to the client as it arrives: unchanged when both
//! sides speak the same API, translated event by event when they do not. Usage, first
//! token and how the stream ended are read on the way for the log.

use crate::api::Api;
use crate::error::error_body;
use crate::pipeline::Exchange;
use crate::providers::root_cause;
use crate::translate::{SseEvent, SseParser, StreamTranslator};
use crate::usage::{AnthropicStreamTap, Usage};
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How upstream events become client events.
pub enum StreamMode {
    /// Anthropic on both sides: bytes pass through untouched.
    Anthropic(AnthropicStreamTap),
    /// OpenAI on both sides: events pass through, except the usage chunk the gateway
    /// asked for on a client's behalf that did not ask for it itself.
    OpenAi(OpenAiRelay),
    /// The client speaks the other API: events are translated for `client`.
    Translated(Api, Box<Translating>),
}

/// An SSE parser feeding a stream translator.
pub struct Translating {
    parser: SseParser,
    events: Vec<SseEvent>,
    tr: Box<dyn StreamTranslator>,
}

impl Translating {
    /// Wraps a translator.
    pub fn new(tr: impl StreamTranslator + 'static) -> Box<Self> {
        Box::new(Self {
            parser: SseParser::new(),
            events: Vec::new(),
            tr: Box::new(tr),
        })
    }
}

/// State of an OpenAI-to-OpenAI relay.
pub struct OpenAiRelay {
    parser: SseParser,
    events: Vec<SseEvent>,
    /// Drop the usage-only chunk (the client did not ask for `include_usage`).
    strip_usage: bool,
    usage: Usage,
    finished: bool,
    saw_content: bool,
    output_chars: u64,
    error: Option<String>,
}

impl OpenAiRelay {
    /// A relay; `strip_usage` when the gateway added `include_usage` itself.
    pub fn new(strip_usage: bool) -> Self {
        Self {
            parser: SseParser::new(),
            events: Vec::new(),
            strip_usage,
            usage: Usage::default(),
            finished: false,
            saw_content: false,
            output_chars: 0,
            error: None,
        }
    }

    fn push(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.finished = true;
        } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                self.usage = Usage::from_openai(u);
            }
            if let Some(e) = v.get("error") {
                self.error = Some(
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("upstream error")
                        .to_string(),
                );
            }
            let choices = v.get("choices").and_then(|c| c.as_array());
            for ch in choices.into_iter().flatten() {
                let text = ch.pointer("/delta/content").and_then(|t| t.as_str());
                let calls = ch.pointer("/delta/tool_calls").and_then(|t| t.as_array());
                let args: usize = calls
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.pointer("/function/arguments").and_then(|a| a.as_str()))
                    .map(str::len)
                    .sum();
                self.output_chars += (text.map_or(0, str::len) + args) as u64;
                if text.is_some_and(|t| !t.is_empty()) || calls.is_some() {
                    self.saw_content = true;
                }
            }
            if self.strip_usage && choices.is_some_and(|c| c.is_empty()) && v.get("usage").is_some()
            {
                return;
            }
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(ev.data.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

impl StreamMode {
    /// Client bytes for the next upstream chunk (possibly none yet).
    fn on_chunk(&mut self, chunk: Bytes) -> Bytes {
        match self {
            Self::Anthropic(tap) => {
                tap.feed(&chunk);
                chunk
            }
            Self::OpenAi(r) => {
                let mut events = std::mem::take(&mut r.events);
                r.parser.feed(&chunk, &mut events);
                let mut out = Vec::with_capacity(chunk.len());
                for ev in events.drain(..) {
                    r.push(&ev, &mut out);
                }
                r.events = events;
                Bytes::from(out)
            }
            Self::Translated(_, t) => {
                t.parser.feed(&chunk, &mut t.events);
                let mut out = Vec::with_capacity(chunk.len() * 2);
                for ev in t.events.drain(..) {
                    t.tr.push(&ev, &mut out);
                }
                Bytes::from(out)
            }
        }
    }

    /// The upstream closed: trailing client bytes, and the error if it ended badly.
    fn on_end(&mut self, flavor: Api) -> (Bytes, Option<String>) {
        match self {
            Self::Anthropic(tap) => {
                if tap.finished || tap.error.is_some() {
                    (Bytes::new(), tap.error.clone())
                } else {
                    let msg = "the provider's stream ended before message_stop";
                    (error_event(flavor, msg), Some(msg.into()))
                }
            }
            Self::OpenAi(r) => {
                let mut out = Vec::new();
                let mut events = std::mem::take(&mut r.events);
                r.parser.finish(&mut events);
                for ev in events.drain(..) {
                    r.push(&ev, &mut out);
                }
                if r.finished || r.error.is_some() {
                    (Bytes::from(out), r.error.clone())
                } else {
                    let msg = "the provider's stream ended before [DONE]";
                    out.extend_from_slice(&error_event(flavor, msg));
                    (Bytes::from(out), Some(msg.into()))
                }
            }
            Self::Translated(_, t) => {
                let mut out = Vec::new();
                t.parser.finish(&mut t.events);
                for ev in t.events.drain(..) {
                    t.tr.push(&ev, &mut out);
                }
                t.tr.finish(&mut out);
                (Bytes::from(out), t.tr.error().map(str::to_string))
            }
        }
    }

    fn usage(&self) -> Usage {
        match self {
            Self::Anthropic(tap) => tap.usage,
            Self::OpenAi(r) => r.usage,
            Self::Translated(_, t) => t.tr.usage(),
        }
    }

    /// Usage for a stream the client cut: what the provider reported so far, with
    /// output tokens estimated from the content relayed when the final figure is missing.
    fn usage_when_cut(&self) -> Usage {
        let chars = match self {
            Self::Anthropic(tap) => tap.output_chars,
            Self::OpenAi(r) => r.output_chars,
            Self::Translated(_, t) => t.tr.output_chars(),
        };
        self.usage().with_output_estimate(chars)
    }

    fn saw_content(&self) -> bool {
        match self {
            Self::Anthropic(tap) => tap.saw_content,
            Self::OpenAi(r) => r.saw_content,
            Self::Translated(_, t) => t.tr.saw_content(),
        }
    }

    /// The stream reached its proper end; the log row can be written.
    fn finished(&self) -> Option<Option<String>> {
        match self {
            Self::Anthropic(tap) => tap.finished.then(|| tap.error.clone()),
            Self::OpenAi(r) => r.finished.then(|| r.error.clone()),
            Self::Translated(_, t) => t.tr.is_finished().then(|| t.tr.error().map(str::to_string)),
        }
    }
}

/// An error event in the client's stream shape.
pub fn error_event(flavor: Api, message: &str) -> Bytes {
    match flavor {
        Api::Anthropic => {
            let data = error_body(flavor, "api_error", message);
            Bytes::from(format!("event: error\ndata: {data}\n\n"))
        }
        Api::OpenAi => {
            let data = error_body(flavor, "server_error", message);
            Bytes::from(format!("data: {data}\n\n"))
        }
    }
}

/// The client's side of a relayed stream; logs the exchange when the stream ends or
/// the client goes away (then with what was generated so far, as 499).
pub struct RelayStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    mode: StreamMode,
    ex: Option<Exchange>,
    done: bool,
}

impl RelayStream {
    /// Relays `upstream` through `mode`, logging into `ex`.
    pub fn new(upstream: reqwest::Response, mode: StreamMode, ex: Exchange) -> Self {
        Self {
            inner: Box::pin(upstream.bytes_stream()),
            mode,
            ex: Some(ex),
            done: false,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut ex) = self.ex.take() {
            // A stream that failed may never have carried its final usage: bill at least
            // what was relayed.
            ex.record.usage = if error.is_some() {
                ex.usage_estimated = true;
                self.mode.usage_when_cut()
            } else {
                self.mode.usage()
            };
            ex.finish(200, error);
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let this = &mut *self;
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let had_content = this.mode.saw_content();
                    let out = this.mode.on_chunk(chunk);
                    if let Some(ex) = this.ex.as_mut() {
                        if !had_content && this.mode.saw_content() {
                            ex.record.ttft_ms = Some(ex.elapsed_ms());
                        }
                        ex.capture_response(&out);
                    }
                    if let Some(err) = this.mode.finished() {
                        this.finish(err);
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    let msg = format!("the provider's stream was interrupted: {}", root_cause(&e));
                    let event = error_event(flavor_of(&this.mode), &msg);
                    if let Some(ex) = this.ex.as_mut() {
                        ex.capture_response(&event);
                    }
                    this.finish(Some(msg));
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.ex.is_none() {
                        return Poll::Ready(None);
                    }
                    let flavor = flavor_of(&this.mode);
                    let (tail, err) = this.mode.on_end(flavor);
                    if let Some(ex) = this.ex.as_mut() {
                        ex.capture_response(&tail);
                    }
                    this.finish(err);
                    if tail.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(tail)));
                }
            }
        }
    }
}

/// The API the client of a stream speaks.
fn flavor_of(mode: &StreamMode) -> Api {
    match mode {
        StreamMode::Anthropic(_) => Api::Anthropic,
        StreamMode::OpenAi(_) => Api::OpenAi,
        StreamMode::Translated(client, _) => *client,
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        if let Some(mut ex) = self.ex.take() {
            // The client hung up mid-stream; bill what was generated so far.
            ex.record.usage = self.mode.usage_when_cut();
            ex.usage_estimated = true;
            ex.finish(499, Some("client closed the stream".into()));
        }
    }
}
