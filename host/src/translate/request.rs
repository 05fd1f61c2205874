//! Request bodies: Anthropic Messages <-> OpenAI Chat Completions.

use super::{TranslateError, invalid};
use serde_json::{Map, Value, json};

/// `max_tokens` Anthropic requires and OpenAI callers often omit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// An Anthropic Messages request as an OpenAI Chat Completions request for `model`.
pub fn anthropic_request_to_openai(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let req = req
        .as_object()
        .ok_or_else(|| invalid("request body must be a JSON object"))?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());

    let mut messages = Vec::new();
    match req.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text = join_text(blocks, "system")?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => {
            return Err(invalid(
                "system: must be a string or an array of text blocks",
            ));
        }
    }
    let turns = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages: required, must be an array"))?;
    for (i, m) in turns.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = m
            .get("content")
            .ok_or_else(|| invalid(format!("messages[{i}].content: required")))?;
        match role {
            "user" => user_to_openai(content, i, &mut messages)?,
            "assistant" => messages.push(assistant_to_openai(content, i)?),
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role: '{other}' is not one of user, assistant"
                )));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(m) = req.get("max_tokens").filter(|v| !v.is_null()) {
        out.insert("max_tokens".into(), m.clone());
    }
    for field in ["temperature", "top_p", "stream"] {
        if let Some(v) = req.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), v.clone());
        }
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(stop) = req.get("stop_sequences").and_then(Value::as_array)
        && !stop.is_empty()
    {
        out.insert("stop".into(), Value::Array(stop.clone()));
    }
    if let Some(user) = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array)
        && !tools.is_empty()
    {
        let tools = tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool_to_openai(t, i))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = req.get("tool_choice").filter(|v| !v.is_null()) {
            let ty = choice.get("type").and_then(Value::as_str).unwrap_or("auto");
            let mapped = match ty {
                "auto" => json!("auto"),
                "any" => json!("required"),
                "none" => json!("none"),
                "tool" => {
                    let name = choice
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("tool_choice.name: required for type 'tool'"))?;
                    json!({"type": "function", "function": {"name": name}})
                }
                other => {
                    return Err(invalid(format!(
                        "tool_choice.type: '{other}' is not one of auto, any, tool, none"
                    )));
                }
            };
            out.insert("tool_choice".into(), mapped);
            if choice
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                == Some(true)
            {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }
    Ok(Value::Object(out))
}

/// Concatenated text of text blocks (other block types are refused).
fn join_text(blocks: &[Value], field: &str) -> Result<String, TranslateError> {
    let mut text = String::new();
    for (i, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default());
            }
            other => {
                return Err(invalid(format!(
                    "{field}[{i}].type: '{}' cannot be sent to an OpenAI provider here (text only)",
                    other.unwrap_or("?")
                )));
            }
        }
    }
    Ok(text)
}

/// A user turn: tool results become `tool` messages (which must directly follow the
/// assistant's calls), the rest one `user` message.
fn user_to_openai(content: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => {
            return Err(invalid(format!(
                "messages[{i}].content: must be a string or an array"
            )));
        }
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => parts
                .push(json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()})),
            "image" => parts.push(image_to_openai(b, &at())?),
            "document" => parts.push(document_to_openai(b, &at())?),
            "tool_result" => {
                let id = b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{}.tool_use_id: required", at())))?;
                let mut text = tool_result_text(b.get("content"), &at())?;
                if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            other => {
                return Err(invalid(format!(
                    "{}.type: '{other}' cannot be sent to an OpenAI provider",
                    at()
                )));
            }
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let all_text = parts.iter().all(|p| p["type"] == "text");
    let content = if all_text && parts.len() == 1 {
        parts[0]["text"].clone()
    } else {
        Value::Array(parts)
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn tool_result_text(content: Option<&Value>, at: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default());
                    }
                    other => {
                        return Err(invalid(format!(
                            "{at}.content: a '{}' block in a tool result cannot be sent to an OpenAI provider",
                            other.unwrap_or("?")
                        )));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(format!(
            "{at}.content: must be a string or an array"
        ))),
    }
}

fn image_to_openai(b: &Value, at: &str) -> Result<Value, TranslateError> {
    let src = b
        .get("source")
        .ok_or_else(|| invalid(format!("{at}.source: required")))?;
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            src.get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            src.get("data").and_then(Value::as_str).unwrap_or_default()
        ),
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        other => {
            return Err(invalid(format!(
                "{at}.source.type: '{}' is not one of base64, url",
                other.unwrap_or("?")
            )));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn document_to_openai(b: &Value, at: &str) -> Result<Value, TranslateError> {
    let src = b
        .get("source")
        .ok_or_else(|| invalid(format!("{at}.source: required")))?;
    match src.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(json!({"type": "text", "text": src.get("data").cloned().unwrap_or_default()}))
        }
        Some("base64") => {
            let media = src
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("application/pdf");
            let data = src.get("data").and_then(Value::as_str).unwrap_or_default();
            let name = b
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(
                json!({"type": "file", "file": {"filename": name, "file_data": format!("data:{media};base64,{data}")}}),
            )
        }
        other => Err(invalid(format!(
            "{at}.source.type: '{}' documents cannot be sent to an OpenAI provider",
            other.unwrap_or("?")
        ))),
    }
}

fn assistant_to_openai(content: &Value, i: usize) -> Result<Value, TranslateError> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({"role": "assistant", "content": s})),
        Value::Array(b) => b,
        _ => {
            return Err(invalid(format!(
                "messages[{i}].content: must be a string or an array"
            )));
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            "tool_use" => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or_default(),
                        "arguments": input.to_string(),
                    },
                }));
            }
            // Reasoning is the provider's own; another provider cannot take it back.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(format!(
                    "messages[{i}].content[{j}].type: '{other}' cannot be sent to an OpenAI provider"
                )));
            }
        }
    }
    let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    Ok(msg)
}

fn tool_to_openai(t: &Value, i: usize) -> Result<Value, TranslateError> {
    match t.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(other) => {
            return Err(invalid(format!(
                "tools[{i}].type: the server tool '{other}' cannot be served by an OpenAI provider"
            )));
        }
    }
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("tools[{i}].name: required")))?;
    let mut f = json!({"name": name});
    if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
        f["description"] = d.clone();
    }
    f["parameters"] = t
        .get("input_schema")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    Ok(json!({"type": "function", "function": f}))
}

/// An OpenAI Chat Completions request as an Anthropic Messages request for `model`.
pub fn openai_request_to_anthropic(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let req = req
        .as_object()
        .ok_or_else(|| invalid("request body must be a JSON object"))?;
    if req.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(invalid(
            "n: only 1 choice can be served by an Anthropic provider",
        ));
    }
    if let Some(ty) = req
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        && ty != "text"
    {
        return Err(invalid(format!(
            "response_format.type: '{ty}' cannot be served by an Anthropic provider"
        )));
    }
    let turns = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages: required, must be an array"))?;
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in turns.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                let text = openai_text(content, i)?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            "user" => push_turn(&mut messages, "user", user_to_anthropic(content, i)?),
            "assistant" => push_turn(&mut messages, "assistant", assistant_to_anthropic(m, i)?),
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .or_else(|| m.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("messages[{i}].tool_call_id: required")))?;
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": openai_text(content, i)?});
                push_turn(&mut messages, "user", vec![block]);
            }
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role: '{other}' is not one of system, developer, user, assistant, tool"
                )));
            }
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let max = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), max.into());
    if !system.is_empty() {
        out.insert("system".into(), system.join("\n\n").into());
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.get("temperature").and_then(Value::as_f64) {
        // OpenAI's range is 0..=2, Anthropic's 0..=1.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.get("top_p").filter(|v| v.is_number()) {
        out.insert("top_p".into(), p.clone());
    }
    if let Some(s) = req.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), s.clone());
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array)
        && !tools.is_empty()
    {
        let mut list = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            let f = t
                .get("function")
                .ok_or_else(|| invalid(format!("tools[{i}].function: required")))?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("tools[{i}].function.name: required")))?;
            let mut tool = json!({
                "name": name,
                "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = f.get("description").filter(|d| d.is_string()) {
                tool["description"] = d.clone();
            }
            list.push(tool);
        }
        out.insert("tools".into(), Value::Array(list));
        let mut choice = match req.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => json!({"type": "auto"}),
                "required" => json!({"type": "any"}),
                "none" => json!({"type": "none"}),
                other => {
                    return Err(invalid(format!(
                        "tool_choice: '{other}' is not one of auto, required, none"
                    )));
                }
            }),
            Some(v) => {
                let name = v
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("tool_choice.function.name: required"))?;
                Some(json!({"type": "tool", "name": name}))
            }
        };
        if req.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
            let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if c["type"] != "none" {
                c["disable_parallel_tool_use"] = true.into();
            }
        }
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
    }
    Ok(Value::Object(out))
}

/// Appends blocks as a turn, merging into the previous turn of the same role (Anthropic
/// wants alternating roles; OpenAI sends parallel tool results as separate messages).
fn push_turn(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last.get_mut("content").and_then(Value::as_array_mut)
    {
        // Tool results must lead a user turn.
        if role == "user" && blocks.iter().all(|b| b["type"] == "tool_result") {
            let at = content
                .iter()
                .position(|b| b["type"] != "tool_result")
                .unwrap_or(content.len());
            content.splice(at..at, blocks);
        } else {
            content.extend(blocks);
        }
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// Text of an OpenAI content value (string or text parts).
fn openai_text(content: &Value, i: usize) -> Result<String, TranslateError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(p.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    other => {
                        return Err(invalid(format!(
                            "messages[{i}].content[{j}].type: '{}' is not allowed here (text only)",
                            other.unwrap_or("?")
                        )));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(invalid(format!(
            "messages[{i}].content: must be a string or an array"
        ))),
    }
}

fn user_to_anthropic(content: &Value, i: usize) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let at = format!("messages[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "text" => Ok(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()})),
                    "image_url" => {
                        let url = p
                            .pointer("/image_url/url")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(format!("{at}.image_url.url: required")))?;
                        Ok(json!({"type": "image", "source": url_source(url)}))
                    }
                    "file" => {
                        let data = p
                            .pointer("/file/file_data")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(format!("{at}.file.file_data: required (file ids cannot be sent to an Anthropic provider)")))?;
                        let mut doc = json!({"type": "document", "source": url_source(data)});
                        if let Some(name) = p.pointer("/file/filename").and_then(Value::as_str) {
                            doc["title"] = name.into();
                        }
                        Ok(doc)
                    }
                    other => Err(invalid(format!(
                        "{at}.type: '{other}' cannot be sent to an Anthropic provider"
                    ))),
                }
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(invalid(format!("messages[{i}].content: must be a string or an array"))),
    }
}

/// An Anthropic image/document source for a URL, unpacking `data:` URLs.
fn url_source(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media, data)) = rest.split_once(";base64,")
    {
        return json!({"type": "base64", "media_type": media, "data": data});
    }
    json!({"type": "url", "url": url})
}

fn assistant_to_anthropic(m: &Value, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    let text = openai_text(m.get("content").unwrap_or(&Value::Null), i)?;
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    let calls = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let legacy = m.get("function_call").filter(|f| f.is_object());
    for (j, call) in calls.chain(legacy).enumerate() {
        let f = call.get("function").unwrap_or(call);
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                invalid(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments: not valid JSON ({e})"
                ))
            })?
        };
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| name.to_string(), str::to_string);
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anthropic's documented tool-use example, sent to an OpenAI provider.
    #[test]
    fn anthropic_tool_conversation_to_openai() {
        let req = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}}],
            "tools": [{
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
            }],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["\n\nHuman:"],
            "temperature": 0.5,
            "top_k": 5,
            "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "x"},
                    {"type": "text", "text": "<thinking>I need to use get_weather</thinking>"},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                    {"type": "text", "text": "Thanks"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}
                ]}
            ]
        });
        let out = anthropic_request_to_openai(&req, "gpt-4o").unwrap();
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["max_tokens"], 1024);
        assert_eq!(out["temperature"], 0.5);
        assert!(out.get("top_k").is_none());
        assert_eq!(out["stop"], json!(["\n\nHuman:"]));
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["parallel_tool_calls"], false);
        assert_eq!(out["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(
            out["tools"][0]["function"]["parameters"]["required"][0],
            "location"
        );
        let m = out["messages"].as_array().unwrap();
        assert_eq!(
            m[0],
            json!({"role": "system", "content": "You are a weather bot."})
        );
        assert_eq!(
            m[1],
            json!({"role": "user", "content": "What's the weather like in San Francisco?"})
        );
        assert_eq!(
            m[2]["content"],
            "<thinking>I need to use get_weather</thinking>"
        );
        assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        let args: Value = serde_json::from_str(
            m[2]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"location": "San Francisco, CA"}));
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"})
        );
        assert_eq!(m[4]["role"], "user");
        assert_eq!(
            m[4]["content"][0],
            json!({"type": "text", "text": "Thanks"})
        );
        assert_eq!(
            m[4]["content"][1]["image_url"]["url"],
            "data:image/jpeg;base64,/9j/4AAQ"
        );
    }

    #[test]
    fn anthropic_stream_asks_for_usage_and_named_tool_choice_maps() {
        let req = json!({"model": "m", "max_tokens": 5, "stream": true,
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "t"},
            "messages": [{"role": "user", "content": "hi"}]});
        let out = anthropic_request_to_openai(&req, "gpt").unwrap();
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "t"}})
        );
    }

    #[test]
    fn anthropic_server_tools_and_bad_roles_are_refused_with_the_field() {
        let req = json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
        let e = anthropic_request_to_openai(&req, "gpt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tools[0].type"), "{e}");
        let req = json!({"messages": [{"role": "system", "content": "x"}]});
        let e = anthropic_request_to_openai(&req, "gpt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("messages[0].role"), "{e}");
    }

    /// OpenAI's documented function-calling conversation, sent to an Anthropic provider.
    #[test]
    fn openai_tool_conversation_to_anthropic() {
        let req = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What's in this image, and the weather in Paris and Bogotá?"},
                    {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/boardwalk.jpg"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_12345xyz", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}"}},
                    {"id": "call_67890abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Bogotá, Colombia\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_12345xyz", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_67890abc", "content": [{"type": "text", "text": "25C"}]},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Get current temperature for a given location.",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
                "strict": true
            }}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "temperature": 1.4,
            "stop": "END",
            "user": "user-1234",
            "max_completion_tokens": 300
        });
        let out = openai_request_to_anthropic(&req, "claude-sonnet-4-5").unwrap();
        assert_eq!(out["model"], "claude-sonnet-4-5");
        assert_eq!(out["max_tokens"], 300);
        assert_eq!(out["system"], "You are a helpful assistant.");
        assert_eq!(out["temperature"], 1.0);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"], json!({"user_id": "user-1234"}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(out["tools"][0]["input_schema"]["required"][0], "location");
        let m = out["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            m[0]["content"][1]["source"],
            json!({"type": "url", "url": "https://upload.wikimedia.org/boardwalk.jpg"})
        );
        assert_eq!(
            m[1]["content"][1]["input"],
            json!({"location": "Bogotá, Colombia"})
        );
        // Both tool results lead the next user turn, then the text.
        assert_eq!(
            m[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "call_12345xyz", "content": "18C"})
        );
        assert_eq!(m[2]["content"][1]["content"], "25C");
        assert_eq!(
            m[2]["content"][2],
            json!({"type": "text", "text": "And tomorrow?"})
        );
    }

    #[test]
    fn openai_defaults_and_refusals() {
        let req = json!({"messages": [{"role": "user", "content": "hi"}]});
        let out = openai_request_to_anthropic(&req, "claude").unwrap();
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(out.get("system").is_none());
        let data = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}]});
        let out = openai_request_to_anthropic(&data, "claude").unwrap();
        assert_eq!(
            out["messages"][0]["content"][0]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "iVBOR"})
        );
        let bad = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{nope"}}]}]});
        let e = openai_request_to_anthropic(&bad, "claude")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("messages[0].tool_calls[0].function.arguments"),
            "{e}"
        );
        let n = json!({"n": 2, "messages": []});
        assert!(
            openai_request_to_anthropic(&n, "claude")
                .unwrap_err()
                .to_string()
                .contains("n:")
        );
    }
}
