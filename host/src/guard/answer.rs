//! A whole (not streamed) answer as guardrails see it, and their rewrites applied to
//! the response body in the client's API shape.

use super::edits::{self, part};
use super::path::{self, Path, Seg};
use super::{GuardError, Guarded, Subject};
use crate::api::Api;
use crate::plugins::wit;
use crate::usage::Usage;
use bytes::Bytes;
use serde_json::Value;

/// A response body being inspected.
pub struct AnswerText {
    body: Value,
    answer: wit::Answer,
    paths: Vec<Path>,
    changed: bool,
}

impl AnswerText {
    /// Reads the answer of a response body already in the client's (`api`) shape.
    pub fn parse(api: Api, body: &[u8], usage: &Usage) -> Result<Self, serde_json::Error> {
        let body: Value = serde_json::from_slice(body)?;
        let (mut parts, mut paths, mut tool_calls) = (Vec::new(), Vec::new(), Vec::new());
        let stop_reason = match api {
            Api::Anthropic => {
                if let Some(blocks) = body.get("content").and_then(Value::as_array) {
                    for (j, b) in blocks.iter().enumerate() {
                        match b.get("type").and_then(Value::as_str) {
                            Some("text") => {
                                if let Some(t) = b.get("text").and_then(Value::as_str) {
                                    parts.push(part(parts.len(), wit::Role::Assistant, Some(0), t));
                                    paths.push(vec![
                                        Seg::Key("content"),
                                        Seg::Index(j),
                                        Seg::Key("text"),
                                    ]);
                                }
                            }
                            Some("tool_use") => tool_calls.push(wit::ToolCall {
                                name: str_of(b.get("name")),
                                arguments: b
                                    .get("input")
                                    .map_or_else(|| "{}".into(), Value::to_string),
                            }),
                            _ => {}
                        }
                    }
                }
                body.get("stop_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }
            Api::OpenAi => {
                let choices = body.get("choices").and_then(Value::as_array);
                for (c, choice) in choices.into_iter().flatten().enumerate() {
                    let Some(msg) = choice.get("message") else {
                        continue;
                    };
                    if let Some(t) = msg.get("content").and_then(Value::as_str) {
                        parts.push(part(parts.len(), wit::Role::Assistant, Some(c), t));
                        paths.push(vec![
                            Seg::Key("choices"),
                            Seg::Index(c),
                            Seg::Key("message"),
                            Seg::Key("content"),
                        ]);
                    }
                    for call in msg
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let f = call.get("function");
                        tool_calls.push(wit::ToolCall {
                            name: str_of(f.and_then(|f| f.get("name"))),
                            arguments: str_of(f.and_then(|f| f.get("arguments"))),
                        });
                    }
                }
                choices
                    .and_then(|c| c.first())
                    .and_then(|c| c.get("finish_reason"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }
        };
        Ok(Self {
            body,
            answer: wit::Answer {
                parts,
                tool_calls,
                stop_reason,
                input_tokens: usage.prompt_tokens(),
                output_tokens: usage.output_tokens,
                delivered: false,
            },
            paths,
            changed: false,
        })
    }

    /// The rewritten body, when a plugin changed it.
    pub fn into_body(self) -> Option<Bytes> {
        if !self.changed {
            return None;
        }
        serde_json::to_vec(&self.body).ok().map(Bytes::from)
    }
}

impl Guarded for AnswerText {
    fn subject(&self) -> Subject<'_> {
        Subject::Response(&self.answer)
    }

    fn rewrite(&mut self, rewrite: wit::Rewrite) -> Result<(), GuardError> {
        let changes = edits::plan_answer(&self.answer.parts, &rewrite)?;
        if changes.is_empty() {
            return Ok(());
        }
        for (i, text) in &changes {
            self.answer.parts[*i].text.clone_from(text);
        }
        path::write(&mut self.body, &self.paths, changes);
        self.changed = true;
        Ok(())
    }
}

fn str_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}
