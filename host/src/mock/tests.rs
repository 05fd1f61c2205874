//! End-to-end tests of the mock over HTTP, in both flavours.

use super::{Flavor, MockConfig};
use serde_json::{Value, json};

/// A running mock and a client for it.
struct Mock {
    url: String,
    http: reqwest::Client,
}

async fn start(flavor: Flavor, api_key: Option<&str>) -> Mock {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let cfg = MockConfig {
        name: "m".into(),
        api_key: api_key.map(str::to_string),
        flavor,
        ..Default::default()
    };
    tokio::spawn(super::serve(listener, cfg));
    let http = crate::providers::client_builder().build().expect("client");
    Mock { url, http }
}

impl Mock {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send")
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("send")
    }

    async fn json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.post(path, body).await;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json body"))
    }

    /// The `data:` payloads of a streamed answer, with their `event:` names.
    async fn sse(&self, path: &str, body: &Value) -> Vec<(String, String)> {
        let r = self.post(path, body).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.expect("body");
        assert!(text.ends_with("\n\n"), "{text}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut name = String::new();
                let mut data = String::new();
                for line in e.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = d.to_string();
                    }
                }
                (name, data)
            })
            .collect()
    }
}

fn chat(content: Value) -> Value {
    json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": content}]})
}

fn with(mut body: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn parse(data: &str) -> Value {
    serde_json::from_str(data).expect("chunk json")
}

#[tokio::test]
async fn openai_completion_shape_and_usage() {
    let m = start(Flavor::OpenAi, None).await;
    let (status, v) = m
        .json("/v1/chat/completions", &chat(json!("hello there mock")))
        .await;
    assert_eq!(status, 200);
    assert!(v["id"].as_str().is_some_and(|i| i.starts_with("chatcmpl-")));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_i64().is_some_and(|c| c > 1_600_000_000));
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["system_fingerprint"], "fp_mock");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "echo: hello there mock", "refusal": null})
    );
    let u = &v["usage"];
    // "be brief" + "hello there mock" = 24 characters.
    assert_eq!(u["prompt_tokens"], 6);
    assert_eq!(u["completion_tokens"], 4);
    assert_eq!(u["total_tokens"], 10);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);

    // Limits: max_completion_tokens (or max_tokens) below the word count.
    let body = with(
        chat(json!("[[mock tokens=10 cache_read=7]] x")),
        json!({"max_completion_tokens": 3}),
    );
    let (_, v) = m.json("/v1/chat/completions", &body).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 7);
    let body = with(
        chat(json!("[[mock tokens=10]] x")),
        json!({"max_tokens": 10}),
    );
    let (_, v) = m.json("/v1/chat/completions", &body).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 10);

    let (status, v) = m
        .json("/v1/chat/completions", &json!({"model": "gpt-4o"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages");
}

#[tokio::test]
async fn openai_stream_without_usage() {
    let m = start(Flavor::OpenAi, None).await;
    let body = with(chat(json!("[[mock tokens=5]] go")), json!({"stream": true}));
    let events = m.sse("/v1/chat/completions", &body).await;
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(&e.1))
        .collect();
    assert_eq!(chunks.len(), 1 + 5 + 1);
    let id = &chunks[0]["id"];
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id);
        assert_eq!(c["model"], "gpt-4o");
        assert!(c.get("usage").is_none(), "{c}");
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    let text: String = chunks[1..6]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(text, "echo: [[mock tokens=5]] go word0");
    assert_eq!(text.split(' ').count(), 5);
    let last = &chunks[6]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");
    assert!(
        chunks[..6]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
}

#[tokio::test]
async fn openai_stream_with_usage() {
    let m = start(Flavor::Both, None).await;
    let body = with(
        chat(json!([{"type": "text", "text": "[[mock tokens=3]] go"}])),
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let events = m.sse("/v1/chat/completions", &body).await;
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(&e.1))
        .collect();
    assert_eq!(chunks.len(), 1 + 3 + 1 + 1);
    for c in &chunks[..5] {
        assert_eq!(c["usage"], Value::Null);
        assert!(c.get("usage").is_some());
    }
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[5];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    let (_, whole) = m
        .json(
            "/v1/chat/completions",
            &chat(json!([{"type": "text", "text": "[[mock tokens=3]] go"}])),
        )
        .await;
    assert_eq!(usage["usage"], whole["usage"]);
}

#[tokio::test]
async fn openai_tool_calls() {
    let m = start(Flavor::OpenAi, None).await;
    let ask = chat(json!(
        r#"[[mock tool=get_weather tool_args='{"location":"Paris"}']] weather?"#
    ));
    let (_, v) = m.json("/v1/chat/completions", &ask).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().is_some_and(|i| i.starts_with("call_")));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"location":"Paris"}"#);
    let completion_tokens = v["usage"]["completion_tokens"].clone();
    assert_eq!(completion_tokens, 4);

    let body = with(
        ask,
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let events = m.sse("/v1/chat/completions", &body).await;
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(&e.1))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let first = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().is_some_and(|i| i.starts_with("call_")));
    assert_eq!(first["type"], "function");
    assert_eq!(
        first["function"],
        json!({"name": "get_weather", "arguments": ""})
    );
    let pieces: Vec<&str> = chunks[2..]
        .iter()
        .take_while(|c| c["choices"][0]["finish_reason"].is_null())
        .map(|c| {
            let tc = &c["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(tc["index"], 0);
            assert!(tc.get("id").is_none());
            tc["function"]["arguments"].as_str().unwrap_or("?")
        })
        .collect();
    assert!((2..=3).contains(&pieces.len()), "{pieces:?}");
    assert_eq!(pieces.concat(), r#"{"location":"Paris"}"#);
    let finish = &chunks[2 + pieces.len()];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], completion_tokens);
}

#[tokio::test]
async fn anthropic_tool_calls() {
    let m = start(Flavor::Anthropic, None).await;
    let ask = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user",
        "content": r#"[[mock tool=get_weather tool_args='{"location":"Oslo"}' text="Let me check."]] w?"#}]});
    let (_, v) = m.json("/v1/messages", &ask).await;
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    let use_ = &v["content"][1];
    assert_eq!(use_["type"], "tool_use");
    assert!(use_["id"].as_str().is_some_and(|i| i.starts_with("toolu_")));
    assert_eq!(use_["name"], "get_weather");
    assert_eq!(use_["input"], json!({"location": "Oslo"}));
    let output_tokens = v["usage"]["output_tokens"].clone();

    let events = m
        .sse("/v1/messages", &with(ask, json!({"stream": true})))
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta"
        ]
    );
    let data: Vec<Value> = events.iter().map(|e| parse(&e.1)).collect();
    let start = data
        .iter()
        .find(|d| d["type"] == "content_block_start" && d["index"] == 1)
        .expect("tool block");
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    assert_eq!(start["content_block"]["input"], json!({}));
    let pieces: Vec<&str> = data
        .iter()
        .filter(|d| d["delta"]["type"] == "input_json_delta")
        .map(|d| {
            assert_eq!(d["index"], 1);
            d["delta"]["partial_json"].as_str().unwrap_or("?")
        })
        .collect();
    assert!((2..=3).contains(&pieces.len()));
    assert_eq!(pieces.concat(), r#"{"location":"Oslo"}"#);
    let delta = data
        .iter()
        .find(|d| d["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], output_tokens);
    assert_eq!(names.last(), Some(&"message_stop"));
}

#[tokio::test]
async fn anthropic_stream_usage_matches_words() {
    let m = start(Flavor::Both, None).await;
    let ask = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "s",
        "messages": [{"role": "user", "content": "[[mock tokens=7]] hi"}]});
    let (_, whole) = m.json("/v1/messages", &ask).await;
    assert_eq!(whole["usage"]["output_tokens"], 7);
    assert_eq!(whole["stop_reason"], "end_turn");
    let events = m
        .sse("/v1/messages", &with(ask.clone(), json!({"stream": true})))
        .await;
    let data: Vec<Value> = events.iter().map(|e| parse(&e.1)).collect();
    let text: String = data
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, whole["content"][0]["text"].as_str().unwrap_or("?"));
    assert_eq!(text.split(' ').count(), 7);
    let delta = data
        .iter()
        .find(|d| d["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["usage"]["output_tokens"], 7);
    assert_eq!(
        data[0]["message"]["usage"]["input_tokens"],
        whole["usage"]["input_tokens"]
    );
    let (_, cut) = m
        .json("/v1/messages", &with(ask, json!({"max_tokens": 2})))
        .await;
    assert_eq!(cut["stop_reason"], "max_tokens");
    assert_eq!(cut["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn tool_results_are_echoed() {
    let m = start(Flavor::Both, None).await;
    // The earlier directive would call the tool again; the trailing result wins.
    let anthropic = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "[[mock tool=get_weather]] weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "18C and sunny"}]}]}]});
    let (_, v) = m.json("/v1/messages", &anthropic).await;
    assert_eq!(v["content"][0]["text"], "tool result: 18C and sunny");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 5);
    let string_result = json!({"model": "m", "max_tokens": 64, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "rainy"}]}]});
    let (_, v) = m.json("/v1/messages", &string_result).await;
    assert_eq!(v["content"][0]["text"], "tool result: rainy");

    let openai = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "[[mock tool=get_weather]] weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}]});
    let (_, v) = m.json("/v1/chat/completions", &openai).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "tool result: 18C and sunny"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let parts = json!({"model": "gpt-4o", "messages": [
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "windy"}]}]});
    let (_, v) = m.json("/v1/chat/completions", &parts).await;
    assert_eq!(v["choices"][0]["message"]["content"], "tool result: windy");
}

#[tokio::test]
async fn openai_directives_in_string_and_parts() {
    let m = start(Flavor::OpenAi, None).await;
    let (_, v) = m
        .json(
            "/v1/chat/completions",
            &chat(json!("[[mock text=\"from a string\"]]")),
        )
        .await;
    assert_eq!(v["choices"][0]["message"]["content"], "from a string");
    let parts = json!([{"type": "text", "text": "hi"},
        {"type": "text", "text": "[[mock text='from parts' only=m]]"}]);
    let (_, v) = m.json("/v1/chat/completions", &chat(parts)).await;
    assert_eq!(v["choices"][0]["message"]["content"], "from parts");
}

#[tokio::test]
async fn openai_flavor_routes_and_errors() {
    let m = start(Flavor::OpenAi, None).await;
    let r = m
        .post(
            "/v1/messages",
            &json!({"model": "m", "max_tokens": 5, "messages": []}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let r = m
        .post(
            "/v1/chat/completions",
            &chat(json!("[[mock status=429 retry_after=3]] x")),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_exceeded");
    assert_eq!(v["error"]["param"], Value::Null);
    assert!(v["error"]["message"].is_string() && v["error"].get("code").is_some());
    let (status, v) = m
        .json(
            "/v1/chat/completions",
            &chat(json!("[[mock status=503]] x")),
        )
        .await;
    assert_eq!(
        (status, v["error"]["type"].as_str()),
        (503, Some("server_error"))
    );

    let recorded = m.get("/_mock/requests", &[]).await;
    let recorded: Value =
        serde_json::from_slice(&recorded.bytes().await.expect("body")).expect("json");
    let paths: Vec<&str> = recorded
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["path"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        paths,
        [
            "/v1/messages",
            "/v1/chat/completions",
            "/v1/chat/completions"
        ]
    );
    assert_eq!(recorded[1]["body"]["model"], "gpt-4o");
    assert_eq!(recorded[1]["headers"]["content-type"], "application/json");

    let (_, v) = m.json("/v1/chat/completions", &chat(json!("hi"))).await;
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hi");
    let models: Value = m.get("/v1/models", &[]).await.json_value().await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
    assert!(models["data"][0]["created"].is_i64() && models["data"][0]["owned_by"].is_string());
    assert!(models["data"][0].get("display_name").is_none());
}

#[tokio::test]
async fn auth_errors_follow_the_api() {
    let m = start(Flavor::Both, Some("k")).await;
    let (status, v) = m.json("/v1/chat/completions", &chat(json!("x"))).await;
    assert_eq!(status, 401);
    assert_eq!(
        v["error"],
        json!({"message": "Incorrect API key provided.", "type": "invalid_request_error",
               "param": null, "code": "invalid_api_key"})
    );
    let (status, v) = m
        .json(
            "/v1/messages",
            &json!({"model": "m", "max_tokens": 1, "messages": []}),
        )
        .await;
    assert_eq!((status, v["type"].as_str()), (401, Some("error")));
    assert_eq!(v["error"]["type"], "authentication_error");
    let ok = m
        .http
        .post(format!("{}/v1/chat/completions", m.url))
        .header("authorization", "Bearer k")
        .body(chat(json!("x")).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    let r = m
        .get("/v1/models", &[("authorization", "Bearer nope")])
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json_value().await["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn models_by_flavor() {
    let m = start(Flavor::Anthropic, None).await;
    let v = m.get("/v1/models", &[]).await.json_value().await;
    assert_eq!(v["has_more"], false);
    assert_eq!(v["data"][0]["type"], "model");
    assert!(v.get("object").is_none());
    let r = m.post("/v1/chat/completions", &chat(json!("x"))).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json_value().await["error"]["type"], "not_found_error");

    let m = start(Flavor::Both, None).await;
    let v = m.get("/v1/models", &[]).await.json_value().await;
    assert_eq!(v["object"], "list");
    assert_eq!(v["has_more"], false);
    let ids: Vec<&str> = v["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&"gpt-4o") && ids.contains(&"claude-sonnet-4-5"));
    assert_eq!(v["first_id"], ids[0]);
    assert_eq!(v["last_id"], ids[ids.len() - 1]);
    for model in v["data"].as_array().into_iter().flatten() {
        for key in [
            "id",
            "object",
            "created",
            "owned_by",
            "type",
            "display_name",
            "created_at",
        ] {
            assert!(model.get(key).is_some(), "{key} in {model}");
        }
    }
}

/// Reads a response body as JSON.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.expect("body")).expect("json")
    }
}
