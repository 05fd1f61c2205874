//! A streamed answer as guardrails see it: the client-shaped SSE events, assembled
//! into text parts (one per Anthropic text block, one per OpenAI choice), and a
//! rewrite put back as a stream that is still well-formed in the client's API: a
//! changed part's whole new text rides in its first delta, its later deltas carry
//! none, and every other event (tool calls, thinking, usage, stop) is sent as it came.

use super::edits::{self, part};
use super::{GuardError, Guarded, Subject};
use crate::api::Api;
use crate::plugins::wit;
use crate::translate::{SseEvent, SseParser};
use crate::usage::Usage;
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;

/// A buffered (or, for `observe`, already relayed) client stream being inspected.
pub struct StreamText {
    original: Bytes,
    events: Vec<SseEvent>,
    data: Vec<Option<Value>>,
    answer: wit::Answer,
    /// Per part, the events that carry its text, in order.
    slots: Vec<Vec<Slot>>,
    changed: bool,
}

/// One event carrying some of a part's text.
#[derive(Clone, Copy)]
struct Slot {
    event: usize,
    kind: SlotKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    /// Anthropic `content_block_start` (its block's initial text).
    Start,
    /// Anthropic `content_block_delta` with a `text_delta`.
    Delta,
    /// OpenAI chunk: `choices[n].delta.content`.
    Choice(usize),
}

impl StreamText {
    /// Assembles the answer of `bytes`, a whole SSE stream in the client's (`api`)
    /// shape; `delivered` when the client already has it (`observe`).
    pub fn parse(api: Api, bytes: Bytes, usage: &Usage, delivered: bool) -> Self {
        let mut events = Vec::new();
        let mut parser = SseParser::new();
        parser.feed(&bytes, &mut events);
        parser.finish(&mut events);
        let data: Vec<Option<Value>> = events
            .iter()
            .map(|e| serde_json::from_str(&e.data).ok())
            .collect();
        let mut a = Assembly::default();
        for (i, d) in data.iter().enumerate() {
            if let Some(d) = d {
                match api {
                    Api::Anthropic => a.anthropic(i, d),
                    Api::OpenAi => a.openai(i, d),
                }
            }
        }
        let tool_calls = a
            .tools
            .into_iter()
            .map(|(name, arguments)| wit::ToolCall { name, arguments })
            .collect();
        Self {
            original: bytes,
            events,
            data,
            answer: wit::Answer {
                parts: a.parts,
                tool_calls,
                stop_reason: a.stop,
                input_tokens: usage.prompt_tokens(),
                output_tokens: usage.output_tokens,
                delivered,
            },
            slots: a.slots,
            changed: false,
        }
    }

    /// Marks the answer as delivered: guardrails inspecting it from now on only record.
    pub fn deliver(&mut self) {
        self.answer.delivered = true;
    }

    /// The stream to send: as it came, or re-encoded with the rewritten text.
    pub fn to_bytes(&self) -> Bytes {
        if !self.changed {
            return self.original.clone();
        }
        let mut out = String::with_capacity(self.original.len() + 64);
        for (e, d) in self.events.iter().zip(&self.data) {
            if let Some(name) = &e.event {
                out.push_str("event: ");
                out.push_str(name);
                out.push('\n');
            }
            match d {
                Some(v) => {
                    out.push_str("data: ");
                    out.push_str(&v.to_string());
                    out.push('\n');
                }
                None => {
                    for line in e.data.split('\n') {
                        out.push_str("data: ");
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
            out.push('\n');
        }
        Bytes::from(out)
    }

    fn set(&mut self, slot: Slot, text: &str) {
        let Some(Some(d)) = self.data.get_mut(slot.event) else {
            return;
        };
        let target = match slot.kind {
            SlotKind::Start => d.get_mut("content_block").and_then(|b| b.get_mut("text")),
            SlotKind::Delta => d.get_mut("delta").and_then(|b| b.get_mut("text")),
            SlotKind::Choice(n) => d
                .get_mut("choices")
                .and_then(|c| c.get_mut(n))
                .and_then(|c| c.get_mut("delta"))
                .and_then(|c| c.get_mut("content")),
        };
        if let Some(t) = target {
            *t = Value::String(text.to_string());
        }
    }
}

impl Guarded for StreamText {
    fn subject(&self) -> Subject<'_> {
        Subject::Response(&self.answer)
    }

    fn rewrite(&mut self, rewrite: wit::Rewrite) -> Result<(), GuardError> {
        let changes = edits::plan_answer(&self.answer.parts, &rewrite)?;
        for (i, text) in changes {
            let slots = self.slots[i].clone();
            // The whole text rides in the first delta (clients print deltas), or in
            // the block's start when it has none.
            let carrier = slots
                .iter()
                .position(|s| s.kind != SlotKind::Start)
                .unwrap_or(0);
            for (k, slot) in slots.iter().enumerate() {
                self.set(*slot, if k == carrier { &text } else { "" });
            }
            self.answer.parts[i].text = text;
            self.changed = true;
        }
        Ok(())
    }
}

/// The answer being put together from the events.
#[derive(Default)]
struct Assembly {
    parts: Vec<wit::TextPart>,
    slots: Vec<Vec<Slot>>,
    /// Part of each Anthropic text block index / OpenAI choice index.
    part_of: HashMap<u64, usize>,
    /// Tool calls (name, arguments so far), and which Anthropic block index or
    /// (OpenAI choice, call index) each is.
    tools: Vec<(String, String)>,
    tool_of: HashMap<(u64, u64), usize>,
    stop: Option<String>,
}

impl Assembly {
    fn part(&mut self, key: u64, message: usize) -> usize {
        if let Some(&p) = self.part_of.get(&key) {
            return p;
        }
        let p = self.parts.len();
        self.parts
            .push(part(p, wit::Role::Assistant, Some(message), ""));
        self.slots.push(Vec::new());
        self.part_of.insert(key, p);
        p
    }

    fn add(&mut self, p: usize, text: &str, slot: Slot) {
        self.parts[p].text.push_str(text);
        self.slots[p].push(slot);
    }

    fn anthropic(&mut self, event: usize, d: &Value) {
        let index = d.get("index").and_then(Value::as_u64).unwrap_or(0);
        match d.get("type").and_then(Value::as_str) {
            Some("content_block_start") => {
                let Some(block) = d.get("content_block") else {
                    return;
                };
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let p = self.part(index, 0);
                        let text = block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        self.add(
                            p,
                            text,
                            Slot {
                                event,
                                kind: SlotKind::Start,
                            },
                        );
                    }
                    Some("tool_use") => {
                        let name = block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        self.tool_of.insert((0, index), self.tools.len());
                        self.tools.push((name.to_string(), String::new()));
                    }
                    _ => {}
                }
            }
            Some("content_block_delta") => {
                let Some(delta) = d.get("delta") else {
                    return;
                };
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let p = self.part(index, 0);
                        self.add(
                            p,
                            text,
                            Slot {
                                event,
                                kind: SlotKind::Delta,
                            },
                        );
                    }
                    Some("input_json_delta") => {
                        if let Some(&t) = self.tool_of.get(&(0, index)) {
                            let more = delta.get("partial_json").and_then(Value::as_str);
                            self.tools[t].1.push_str(more.unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(s) = d.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(s.to_string());
                }
            }
            _ => {}
        }
    }

    fn openai(&mut self, event: usize, d: &Value) {
        let Some(choices) = d.get("choices").and_then(Value::as_array) else {
            return;
        };
        for (pos, c) in choices.iter().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            if let Some(delta) = c.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    let p = self.part(index, usize::try_from(index).unwrap_or(usize::MAX));
                    self.add(
                        p,
                        text,
                        Slot {
                            event,
                            kind: SlotKind::Choice(pos),
                        },
                    );
                }
                for call in delta
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let f = call.get("function");
                    let t = match self.tool_of.get(&(index, k)) {
                        Some(&t) => t,
                        None => {
                            self.tool_of.insert((index, k), self.tools.len());
                            self.tools.push((String::new(), String::new()));
                            self.tools.len() - 1
                        }
                    };
                    if let Some(name) = f.and_then(|f| f.get("name")).and_then(Value::as_str) {
                        self.tools[t].0.push_str(name);
                    }
                    if let Some(args) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
                        self.tools[t].1.push_str(args);
                    }
                }
            }
            if self.stop.is_none()
                && let Some(s) = c.get("finish_reason").and_then(Value::as_str)
            {
                self.stop = Some(s.to_string());
            }
        }
    }
}
