//! Per-request failure directives: `[[mock key=value ...]]` inside message text.

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
    /// Streaming: cut the connection after this many text deltas.
    pub drop_after: Option<u32>,
    /// Streaming: stop sending (but keep the connection) after this many text deltas.
    pub stall_after: Option<u32>,
    /// Output length in words (tokens).
    pub tokens: Option<u32>,
    /// Reply text instead of the echo.
    pub text: Option<String>,
    /// Answer 200 with a body that is not JSON.
    pub garbage: bool,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Gap between streamed events.
    pub gap_ms: u64,
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
            "only" => {}
            other => return Err(format!("unknown mock directive '{other}'")),
        }
        Ok(())
    }
}

/// All text of a request (system prompt and messages), for directive scanning and echoing.
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
pub fn find(body: &Value, name: &str) -> Option<Behavior> {
    for text in texts(body) {
        let mut rest = text;
        while let Some(start) = rest.find("[[mock") {
            let after = &rest[start + 6..];
            let Some(end) = after.find("]]") else { break };
            let inner = &after[..end];
            rest = &after[end + 2..];
            let pairs = split_pairs(inner);
            if pairs.iter().any(|(k, v)| k == "only" && v != name) {
                continue;
            }
            let mut b = Behavior::default();
            let ok = pairs.iter().all(|(k, v)| b.set(k, v).is_ok());
            if ok {
                return Some(b);
            }
        }
    }
    None
}

/// `a=1 b="two words"` → [("a","1"), ("b","two words")].
fn split_pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| !c.is_whitespace()).collect()
        };
        out.push((key.trim().to_string(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_and_respect_only() {
        let body = serde_json::json!({"messages":[{"role":"user","content":[{"type":"text","text":"x [[mock status=503 retry_after=2 text=\"a b\" only=m1]] y"}]}]});
        let b = find(&body, "m1").expect("directive");
        assert_eq!(b.status, Some(503));
        assert_eq!(b.retry_after, Some(2));
        assert_eq!(b.text.as_deref(), Some("a b"));
        assert!(find(&body, "m2").is_none());
    }
}
