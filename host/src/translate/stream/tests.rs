//! The translators against the providers' documented streams.

use super::*;
use crate::translate::sse::SseParser;
use serde_json::json;

fn events(raw: &str) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    p.feed(raw.as_bytes(), &mut out);
    p.finish(&mut out);
    out
}

fn json_events(out: &[u8]) -> Vec<Value> {
    events(std::str::from_utf8(out).unwrap())
        .into_iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

/// OpenAI's documented streaming example, with the usage chunk.
const OPENAI_STREAM: &str = "\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}

data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}

data: [DONE]

";

#[test]
fn openai_text_stream_becomes_a_valid_anthropic_stream() {
    let mut t = OpenAiToAnthropicStream::new("gpt-4o-mini", "msg_1");
    let mut out = Vec::new();
    for e in events(OPENAI_STREAM) {
        t.push(&e, &mut out);
    }
    assert!(t.finish(&mut out));
    let ev = json_events(&out);
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(ev[2]["delta"]["text"], "Hello");
    assert_eq!(ev[5]["delta"]["stop_reason"], "end_turn");
    assert_eq!(ev[5]["usage"]["output_tokens"], 2);
    assert_eq!(ev[5]["usage"]["input_tokens"], 5);
    assert_eq!(ev[5]["usage"]["cache_read_input_tokens"], 4);
    assert_eq!(t.stats().usage.input_tokens, 5);
    assert!(t.stats().saw_content && t.stats().finished);
}

#[test]
fn openai_tool_call_stream_becomes_tool_use_blocks() {
    let raw = "\
data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"location\\\":\"}}]},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}

data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}

";
    let mut t = OpenAiToAnthropicStream::new("gpt-4o", "msg_2");
    let mut out = Vec::new();
    for e in events(raw) {
        t.push(&e, &mut out);
    }
    // No [DONE]: a finish_reason was seen, so the message still ends properly.
    assert!(t.finish(&mut out));
    let ev = json_events(&out);
    assert_eq!(ev[1]["content_block"]["type"], "tool_use");
    assert_eq!(
        ev[1]["content_block"]["id"],
        "call_DdmO9pD3xa9XTPNJ32zg2hcA"
    );
    let json: String = ev
        .iter()
        .filter_map(|e| e.pointer("/delta/partial_json").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"location": "Paris"})
    );
    let delta = ev.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[test]
fn openai_stream_cut_short_ends_with_an_error_event() {
    let mut t = OpenAiToAnthropicStream::new("m", "msg_3");
    let mut out = Vec::new();
    for e in events(OPENAI_STREAM).into_iter().take(2) {
        t.push(&e, &mut out);
    }
    assert!(!t.finish(&mut out));
    assert_eq!(json_events(&out).last().unwrap()["type"], "error");
}

/// Anthropic's documented streaming example with a tool call.
const ANTHROPIC_STREAM: &str = "\
event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ncisco, CA\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

#[test]
fn anthropic_tool_stream_becomes_openai_chunks() {
    let mut t = AnthropicToOpenAiStream::new("claude", "chatcmpl-1", true);
    let mut out = Vec::new();
    for e in events(ANTHROPIC_STREAM) {
        t.push(&e, &mut out);
    }
    assert!(t.finish(&mut out));
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks = json_events(&out);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Okay");
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let args: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "San Francisco, CA"})
    );
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 472);
    assert_eq!(last["usage"]["completion_tokens"], 89);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(t.stats().usage.output_tokens, 89);
}

#[test]
fn anthropic_stream_without_usage_request_and_with_error() {
    let mut t = AnthropicToOpenAiStream::new("claude", "chatcmpl-2", false);
    let mut out = Vec::new();
    for e in events(ANTHROPIC_STREAM) {
        t.push(&e, &mut out);
    }
    assert!(json_events(&out).iter().all(|c| c.get("usage").is_none()));
    let mut t = AnthropicToOpenAiStream::new("claude", "chatcmpl-3", false);
    let mut out = Vec::new();
    let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    for e in events(err) {
        t.push(&e, &mut out);
    }
    assert!(!t.finish(&mut out));
    assert_eq!(t.stats().error.as_deref(), Some("Overloaded"));
    assert_eq!(json_events(&out)[0]["error"]["type"], "server_error");
}
