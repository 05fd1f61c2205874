//! A request's conversation as guardrails see it, and their rewrites applied to the
//! body in the client's API shape (Anthropic Messages or OpenAI Chat Completions).

use super::edits::{self, part};
use super::path::{self, Path, Seg};
use super::{GuardError, Guarded, Subject};
use crate::api::Api;
use crate::plugins::wit;
use bytes::Bytes;
use serde_json::{Value, json};

/// A request body being inspected: its JSON, the conversation shown to plugins, and
/// where each part's text lives.
pub struct RequestText {
    api: Api,
    body: Value,
    conversation: wit::Conversation,
    paths: Vec<Path>,
    changed: bool,
}

impl RequestText {
    /// Reads the conversation of a body the client sent in `api`'s shape.
    pub fn parse(api: Api, body: &[u8]) -> Result<Self, serde_json::Error> {
        let body: Value = serde_json::from_slice(body)?;
        let mut t = Self {
            api,
            body,
            conversation: empty(),
            paths: Vec::new(),
            changed: false,
        };
        t.extract();
        Ok(t)
    }

    /// The conversation as the next plugin sees it.
    pub fn conversation(&self) -> &wit::Conversation {
        &self.conversation
    }

    /// The rewritten body, when a plugin changed it.
    pub fn into_body(self) -> Option<Bytes> {
        self.rewritten_body()
    }

    fn extract(&mut self) {
        let mut x = Extract::default();
        match self.api {
            Api::Anthropic => x.anthropic(&self.body),
            Api::OpenAi => x.openai(&self.body),
        }
        self.conversation = wit::Conversation {
            parts: x.parts,
            tool_calls: x.tool_calls,
            other_parts: x.other,
        };
        self.paths = x.paths;
    }
}

impl Guarded for RequestText {
    fn subject(&self) -> Subject<'_> {
        Subject::Request(&self.conversation)
    }

    fn rewrite(&mut self, rewrite: wit::Rewrite) -> Result<(), GuardError> {
        let appended = rewrite.append_system.as_ref().map_or(0, String::len);
        let changes = edits::plan(&self.conversation.parts, &rewrite.edits, appended)?;
        if changes.is_empty() && rewrite.append_system.is_none() {
            return Ok(());
        }
        path::write(&mut self.body, &self.paths, changes);
        if let Some(text) = rewrite.append_system {
            append_system(self.api, &mut self.body, text);
        }
        self.changed = true;
        self.extract();
        Ok(())
    }

    fn rewritten_body(&self) -> Option<Bytes> {
        if !self.changed {
            return None;
        }
        // A Value always serialises.
        serde_json::to_vec(&self.body).ok().map(Bytes::from)
    }
}

fn empty() -> wit::Conversation {
    wit::Conversation {
        parts: Vec::new(),
        tool_calls: Vec::new(),
        other_parts: 0,
    }
}

/// The parts, tool calls and other blocks read from a body, with each part's path.
#[derive(Default)]
struct Extract {
    parts: Vec<wit::TextPart>,
    paths: Vec<Path>,
    tool_calls: Vec<wit::ToolCall>,
    other: u32,
}

impl Extract {
    fn push(&mut self, role: wit::Role, message: Option<usize>, text: &str, path: Path) {
        self.parts.push(part(self.parts.len(), role, message, text));
        self.paths.push(path);
    }

    fn other(&mut self) {
        self.other = self.other.saturating_add(1);
    }

    fn tool_call(&mut self, name: Option<&Value>, arguments: Option<&Value>) {
        self.tool_calls.push(wit::ToolCall {
            name: name.and_then(Value::as_str).unwrap_or_default().to_string(),
            arguments: match arguments {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "{}".into(),
            },
        });
    }

    /// Anthropic: top-level `system` (string or text blocks), then each message's
    /// content (string, or blocks: `text`, a `document` whose source is plain text,
    /// `tool_result` with string or text-block content; `tool_use` is a tool call;
    /// anything else is another part).
    fn anthropic(&mut self, body: &Value) {
        use Seg::{Index, Key};
        match body.get("system") {
            Some(Value::String(s)) => self.push(wit::Role::System, None, s, vec![Key("system")]),
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    match text_block(b) {
                        Some(t) => self.push(
                            wit::Role::System,
                            None,
                            t,
                            vec![Key("system"), Index(j), Key("text")],
                        ),
                        None => self.other(),
                    }
                }
            }
            _ => {}
        }
        let Some(messages) = body.get("messages").and_then(Value::as_array) else {
            return;
        };
        for (i, m) in messages.iter().enumerate() {
            let role = match m.get("role").and_then(Value::as_str) {
                Some("assistant") => wit::Role::Assistant,
                _ => wit::Role::User,
            };
            let at = |rest: &[Seg]| {
                let mut p = vec![Key("messages"), Index(i), Key("content")];
                p.extend_from_slice(rest);
                p
            };
            match m.get("content") {
                Some(Value::String(s)) => self.push(role, Some(i), s, at(&[])),
                Some(Value::Array(blocks)) => {
                    for (j, b) in blocks.iter().enumerate() {
                        match b.get("type").and_then(Value::as_str) {
                            Some("text") => match b.get("text").and_then(Value::as_str) {
                                Some(t) => {
                                    self.push(role, Some(i), t, at(&[Index(j), Key("text")]))
                                }
                                None => self.other(),
                            },
                            Some("tool_use") => self.tool_call(b.get("name"), b.get("input")),
                            // A plain-text document is text the model reads.
                            Some("document")
                                if b.pointer("/source/type").and_then(Value::as_str)
                                    == Some("text") =>
                            {
                                match b.pointer("/source/data").and_then(Value::as_str) {
                                    Some(t) => self.push(
                                        role,
                                        Some(i),
                                        t,
                                        at(&[Index(j), Key("source"), Key("data")]),
                                    ),
                                    None => self.other(),
                                }
                            }
                            Some("tool_result") => match b.get("content") {
                                Some(Value::String(s)) => self.push(
                                    wit::Role::Tool,
                                    Some(i),
                                    s,
                                    at(&[Index(j), Key("content")]),
                                ),
                                Some(Value::Array(inner)) => {
                                    for (k, c) in inner.iter().enumerate() {
                                        match text_block(c) {
                                            Some(t) => self.push(
                                                wit::Role::Tool,
                                                Some(i),
                                                t,
                                                at(&[
                                                    Index(j),
                                                    Key("content"),
                                                    Index(k),
                                                    Key("text"),
                                                ]),
                                            ),
                                            None => self.other(),
                                        }
                                    }
                                }
                                _ => {}
                            },
                            _ => self.other(),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// OpenAI: each message's content (string, or parts of which `text` ones are
    /// text); `system` and `developer` messages are the system prompt, `tool` and
    /// `function` messages tool results; assistant `tool_calls` are tool calls.
    fn openai(&mut self, body: &Value) {
        use Seg::{Index, Key};
        let Some(messages) = body.get("messages").and_then(Value::as_array) else {
            return;
        };
        for (i, m) in messages.iter().enumerate() {
            let role = match m.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => wit::Role::System,
                Some("assistant") => wit::Role::Assistant,
                Some("tool" | "function") => wit::Role::Tool,
                _ => wit::Role::User,
            };
            match m.get("content") {
                Some(Value::String(s)) => self.push(
                    role,
                    Some(i),
                    s,
                    vec![Key("messages"), Index(i), Key("content")],
                ),
                Some(Value::Array(items)) => {
                    for (j, c) in items.iter().enumerate() {
                        match text_block(c) {
                            Some(t) => self.push(
                                role,
                                Some(i),
                                t,
                                vec![
                                    Key("messages"),
                                    Index(i),
                                    Key("content"),
                                    Index(j),
                                    Key("text"),
                                ],
                            ),
                            None => self.other(),
                        }
                    }
                }
                _ => {}
            }
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                for c in calls {
                    let f = c.get("function");
                    self.tool_call(
                        f.and_then(|f| f.get("name")),
                        f.and_then(|f| f.get("arguments")),
                    );
                }
            }
        }
    }
}

/// The text of a `{"type": "text", "text": ...}` block.
fn text_block(b: &Value) -> Option<&str> {
    if b.get("type").and_then(Value::as_str) == Some("text") {
        b.get("text").and_then(Value::as_str)
    } else {
        None
    }
}

/// Adds `text` at the end of the system prompt: Anthropic's `system` (set, extended,
/// or given another text block); OpenAI's last `system`/`developer` message, or a new
/// `system` message first when there is none.
fn append_system(api: Api, body: &mut Value, text: String) {
    fn extend(slot: &mut Value, text: String) {
        match slot {
            Value::String(s) if s.is_empty() => *s = text,
            Value::String(s) => {
                s.push_str("\n\n");
                s.push_str(&text);
            }
            Value::Array(blocks) => blocks.push(json!({"type": "text", "text": text})),
            other => *other = Value::String(text),
        }
    }
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    match api {
        Api::Anthropic => match obj.get_mut("system") {
            Some(slot) => extend(slot, text),
            None => {
                obj.insert("system".into(), Value::String(text));
            }
        },
        Api::OpenAi => {
            let Some(Value::Array(messages)) = obj.get_mut("messages") else {
                return;
            };
            let last_system = messages.iter().rposition(|m| {
                matches!(
                    m.get("role").and_then(Value::as_str),
                    Some("system" | "developer")
                )
            });
            match last_system.and_then(|i| messages[i].get_mut("content")) {
                Some(slot) => extend(slot, text),
                None => messages.insert(0, json!({"role": "system", "content": text})),
            }
        }
    }
}
