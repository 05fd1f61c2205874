//! Per-request directives: `[[mock key=value ...]]` inside message text.
//!
//! Values are bare (`status=503`), double-quoted (`text="two words"`) or single-quoted
//! (`tool_args='{"location":"Paris"}'`); a quoted value may contain `]]` and spaces.

use serde_json::Value;

/// What the mock does with one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Behavior {
    /// Answer with this status and a provider-shaped error body.
    pub status: Option<u16>,
    /// `retry-after` header (seconds) on that answer.
    pub retry_after: Option<u64>,
    /// Wait this long before sending headers.
    pub delay_ms: u64,
    /// Streaming: cut the connection after this many deltas.
    pub drop_after: Option<u32>,
    /// Streaming: stop sending (but keep the connection) after this many deltas.
    pub stall_after: Option<u32>,
    /// Output length in words (tokens) of a text reply.
    pub tokens: Option<u32>,
    /// Reply text instead of the echo (with `tool`: a text preface before the call).
    pub text: Option<String>,
    /// Answer 200 with a body that is not JSON.
    pub garbage: bool,
    /// Prompt tokens reported as read from the cache.
    pub cache_read: u64,
    /// Prompt tokens reported as written to the cache (Anthropic only).
    pub cache_write: u64,
    /// Gap between streamed events.
    pub gap_ms: u64,
    /// Answer with a call of this tool instead of text.
    pub tool: Option<String>,
    /// The tool call's arguments (a JSON object); `{}` when absent.
    pub tool_args: Option<Value>,
}

impl Behavior {
    /// Reads a behaviour from a JSON object with the directive's keys.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let mut b = Behavior::default();
        let Some(obj) = v.as_object() else {
            return Err("behavior must be a JSON object".into());
        };
        for (k, val) in obj {
            let text = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if k != "times" {
                b.set(k, &text)?;
            }
        }
        Ok(b)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}: '{v}' is not a number"))
        };
        match key {
            "status" => self.status = Some(num(value)? as u16),
            "retry_after" => self.retry_after = Some(num(value)?),
            "delay_ms" => self.delay_ms = num(value)?,
            "drop_after" => self.drop_after = Some(num(value)? as u32),
            "stall_after" => self.stall_after = Some(num(value)? as u32),
            "tokens" => self.tokens = Some(num(value)? as u32),
            "text" => self.text = Some(value.to_string()),
            "garbage" => self.garbage = value != "0" && value != "false",
            "cache_read" => self.cache_read = num(value)?,
            "cache_write" => self.cache_write = num(value)?,
            "gap_ms" => self.gap_ms = num(value)?,
            "tool" if !value.is_empty() => self.tool = Some(value.to_string()),
            "tool_args" => match serde_json::from_str::<Value>(value) {
                Ok(v @ Value::Object(_)) => self.tool_args = Some(v),
                _ => return Err(format!("tool_args: '{value}' is not a JSON object")),
            },
            "only" => {}
            other => return Err(format!("unknown or empty mock directive '{other}'")),
        }
        Ok(())
    }
}

/// All text of a request (Anthropic `system` and every message's content, string or
/// text parts, including tool results), for directive scanning and token estimates.
pub fn texts(body: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    collect(body.get("system"), &mut out);
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        for m in msgs {
            collect(m.get("content"), &mut out);
        }
    }
    out
}

/// The text of one message `content` (a string or a list of parts), joined by spaces.
pub(super) fn content_text(content: Option<&Value>) -> String {
    let mut out = Vec::new();
    collect(content, &mut out);
    out.join(" ")
}

fn collect<'a>(v: Option<&'a Value>, out: &mut Vec<&'a str>) {
    match v {
        Some(Value::String(s)) => out.push(s),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    out.push(t);
                }
                if let Some(c) = b.get("content") {
                    collect(Some(c), out);
                }
            }
        }
        _ => {}
    }
}

/// The first directive addressed to this mock (`only=` absent or equal to `name`).
/// Directives with an unknown key or a bad value are ignored.
pub fn find(body: &Value, name: &str) -> Option<Behavior> {
    for text in texts(body) {
        let mut rest = text;
        while let Some(start) = rest.find("[[mock") {
            let after = &rest[start + "[[mock".len()..];
            if !(after.starts_with(char::is_whitespace) || after.starts_with("]]")) {
                rest = after;
                continue;
            }
            let Some((pairs, used)) = parse(after) else {
                break;
            };
            rest = &after[used..];
            if pairs.iter().any(|(k, v)| k == "only" && v != name) {
                continue;
            }
            let mut b = Behavior::default();
            if pairs.iter().all(|(k, v)| b.set(k, v).is_ok()) {
                return Some(b);
            }
        }
    }
    None
}

/// Parses `a=1 b="two words" c='{"x":1}']]...` up to and including the closing `]]`:
/// the pairs and the number of bytes used. `None` when the directive is not closed.
fn parse(s: &str) -> Option<(Vec<(String, String)>, usize)> {
    let next = |i: usize| s[i..].chars().next();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while let Some(c) = next(i)
            && c.is_whitespace()
        {
            i += c.len_utf8();
        }
        if s[i..].starts_with("]]") {
            return Some((out, i + 2));
        }
        next(i)?;
        let key_start = i;
        while let Some(c) = next(i)
            && c != '='
            && !c.is_whitespace()
            && !s[i..].starts_with("]]")
        {
            i += c.len_utf8();
        }
        let key = s[key_start..i].to_string();
        let mut value = String::new();
        if s[i..].starts_with('=') {
            i += 1;
            match next(i) {
                Some(q @ ('"' | '\'')) => {
                    let len = s[i + 1..].find(q)?;
                    value = s[i + 1..i + 1 + len].to_string();
                    i += len + 2;
                }
                _ => {
                    let start = i;
                    while let Some(c) = next(i)
                        && !c.is_whitespace()
                        && !s[i..].starts_with("]]")
                    {
                        i += c.len_utf8();
                    }
                    value = s[start..i].to_string();
                }
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn directives_parse_and_respect_only() {
        let body = json!({"messages":[{"role":"user","content":[{"type":"text","text":"x [[mock status=503 retry_after=2 text=\"a b\" only=m1]] y"}]}]});
        let b = find(&body, "m1").expect("directive");
        assert_eq!(b.status, Some(503));
        assert_eq!(b.retry_after, Some(2));
        assert_eq!(b.text.as_deref(), Some("a b"));
        assert!(find(&body, "m2").is_none());
    }

    #[test]
    fn single_quotes_hold_json_and_brackets() {
        let text = r#"hi [[mock tool=get_weather tool_args='{"location":"Paris","l":[[1]]}' text='x  y']] there"#;
        let body = json!({"messages":[{"role":"user","content":text}]});
        let b = find(&body, "m").expect("directive");
        assert_eq!(b.tool.as_deref(), Some("get_weather"));
        assert_eq!(b.tool_args, Some(json!({"location": "Paris", "l": [[1]]})));
        assert_eq!(b.text.as_deref(), Some("x  y"));
    }

    #[test]
    fn bad_or_unclosed_directives_are_ignored() {
        for text in [
            "[[mock status=abc]]",
            "[[mock nope=1]]",
            "[[mock tool_args='[1]']]",
            "[[mock status=500",
            "[[mock text='open]]",
            "[[mockery status=500]]",
        ] {
            let body = json!({"messages":[{"role":"user","content":text}]});
            assert!(find(&body, "m").is_none(), "{text}");
        }
        let body =
            json!({"messages":[{"role":"user","content":"[[mock nope=1]] [[mock tokens=3]]"}]});
        assert_eq!(find(&body, "m").and_then(|b| b.tokens), Some(3));
    }

    #[test]
    fn found_in_openai_and_anthropic_bodies_without_system() {
        let openai_string = json!({"model":"gpt-4o","messages":[
            {"role":"developer","content":"be brief"},
            {"role":"user","content":"[[mock tokens=4]] hi"}]});
        let openai_parts = json!({"model":"gpt-4o","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:,"}},
            {"type":"text","text":"look [[mock status=429 retry_after=1]]"}]}]});
        let openai_tool = json!({"messages":[{"role":"tool","tool_call_id":"c","content":[
            {"type":"text","text":"[[mock garbage=1]]"}]}]});
        let anthropic = json!({"messages":[{"role":"user","content":[
            {"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"[[mock delay_ms=5]]"}]}]}]});
        let anthropic_system = json!({"system":[{"type":"text","text":"[[mock gap_ms=2]]"}],
            "messages":[{"role":"user","content":"hi"}]});
        assert_eq!(find(&openai_string, "m").and_then(|b| b.tokens), Some(4));
        let b = find(&openai_parts, "m").expect("parts");
        assert_eq!((b.status, b.retry_after), (Some(429), Some(1)));
        assert!(find(&openai_tool, "m").is_some_and(|b| b.garbage));
        assert_eq!(find(&anthropic, "m").map(|b| b.delay_ms), Some(5));
        assert_eq!(find(&anthropic_system, "m").map(|b| b.gap_ms), Some(2));
    }
}
