//! Whole (non-streamed) response bodies: OpenAI <-> Anthropic.

use super::{TranslateError, invalid, unix_now};
use serde_json::{Value, json};

/// OpenAI `finish_reason` as an Anthropic `stop_reason`.
pub fn stop_reason_from_openai(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason_from_anthropic(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic `usage` from an OpenAI one (cached prompt tokens split out of the input).
pub fn anthropic_usage(usage: Option<&Value>) -> Value {
    let u = usage
        .map(crate::usage::Usage::from_openai)
        .unwrap_or_default();
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": 0,
    })
}

/// OpenAI `usage` from Anthropic counts (the prompt includes cached tokens).
pub fn openai_usage(u: &crate::usage::Usage) -> Value {
    let prompt = u.prompt_tokens();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
    })
}

/// An OpenAI chat completion as an Anthropic message. `model` is used when the body names none.
pub fn openai_response_to_anthropic(resp: &Value, model: &str) -> Result<Value, TranslateError> {
    let choice = resp
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| invalid("the completion has no choices"))?;
    let msg = choice
        .get("message")
        .ok_or_else(|| invalid("choices[0].message: missing"))?;
    let mut content = Vec::new();
    for field in ["content", "refusal"] {
        if let Some(text) = msg.get(field).and_then(Value::as_str)
            && !text.is_empty()
        {
            content.push(json!({"type": "text", "text": text}));
        }
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for (j, call) in calls.iter().enumerate() {
            let args = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|e| {
                    invalid(format!(
                        "choices[0].message.tool_calls[{j}].function.arguments: not valid JSON ({e})"
                    ))
                })?
            };
            content.push(json!({
                "type": "tool_use",
                "id": call.get("id").cloned().unwrap_or_else(|| format!("toolu_{j}").into()),
                "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                "input": input,
            }));
        }
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let id = resp.get("id").and_then(Value::as_str).unwrap_or("openai");
    Ok(json!({
        "id": format!("msg_{id}"),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").and_then(Value::as_str).unwrap_or(model),
        "content": content,
        "stop_reason": stop_reason_from_openai(finish),
        "stop_sequence": null,
        "usage": anthropic_usage(resp.get("usage")),
    }))
}

/// An Anthropic message as an OpenAI chat completion. `model` is used when the body names none.
pub fn anthropic_response_to_openai(resp: &Value, model: &str) -> Result<Value, TranslateError> {
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the message has no content array"))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or_default(),
                    "arguments": b.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let stop = resp
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let mut usage = crate::usage::Usage::default();
    if let Some(u) = resp.get("usage") {
        usage.merge_anthropic(u);
    }
    let id = resp
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("anthropic");
    Ok(json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": resp.get("model").and_then(Value::as_str).unwrap_or(model),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason_from_anthropic(stop),
        }],
        "usage": openai_usage(&usage),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenAI's documented chat completion object.
    #[test]
    fn openai_completion_to_anthropic_message() {
        let resp = json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "The image shows a wooden boardwalk.", "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "length"
            }],
            "usage": {
                "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035"
        });
        let out = openai_response_to_anthropic(&resp, "gpt-4o").unwrap();
        assert_eq!(out["type"], "message");
        assert_eq!(out["model"], "gpt-4o-2024-08-06");
        assert_eq!(out["stop_reason"], "max_tokens");
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "The image shows a wooden boardwalk."}])
        );
        assert_eq!(out["usage"]["input_tokens"], 93);
        assert_eq!(out["usage"]["cache_read_input_tokens"], 1024);
        assert_eq!(out["usage"]["output_tokens"], 46);
    }

    #[test]
    fn openai_tool_calls_become_tool_use_blocks() {
        let resp = json!({
            "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}
            ]}, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}
        });
        let out = openai_response_to_anthropic(&resp, "x").unwrap();
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(
            out["content"][0],
            json!({"type": "tool_use", "id": "call_abc123", "name": "get_current_weather", "input": {"location": "Boston, MA"}})
        );
        assert_eq!(out["usage"]["input_tokens"], 82);
    }

    /// Anthropic's documented tool-use response.
    #[test]
    fn anthropic_message_to_openai_completion() {
        let resp = json!({
            "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "stop_reason": "tool_use", "stop_sequence": null,
            "content": [
                {"type": "text", "text": "<thinking>I need to call the get_weather function.</thinking>"},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}}
            ],
            "usage": {"input_tokens": 472, "output_tokens": 91, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 10}
        });
        let out = anthropic_response_to_openai(&resp, "claude").unwrap();
        assert_eq!(out["object"], "chat.completion");
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(
            choice["message"]["content"],
            "<thinking>I need to call the get_weather function.</thinking>"
        );
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(out["usage"]["prompt_tokens"], 582);
        assert_eq!(out["usage"]["completion_tokens"], 91);
        assert_eq!(out["usage"]["total_tokens"], 673);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        for (a, o) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            assert_eq!(finish_reason_from_anthropic(a), o);
            assert_eq!(stop_reason_from_openai(o), a);
        }
        assert_eq!(finish_reason_from_anthropic("stop_sequence"), "stop");
    }

    #[test]
    fn bodies_without_the_essentials_are_errors() {
        assert!(openai_response_to_anthropic(&json!({"choices": []}), "m").is_err());
        assert!(anthropic_response_to_openai(&json!({"type": "message"}), "m").is_err());
    }
}
