//! The stream relay: every (client API, provider API) pair streams in the client's
//! shape and logs the provider's usage; a provider that cuts the stream ends the
//! client's with an error event in its shape; a client that hangs up is logged as 499
//! and billed for what was generated.

use crate::support::{BothApis, ask, request_id, router};
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn setup(label: &str) -> BothApis {
    let rest = format!(
        r#"
[[tenants]]
id = "to-anthropic"
default_provider = "anthropic"

[[tenants]]
id = "to-openai"
{}
"#,
        router(json!({"default": {"targets": [{"provider": "openai", "model": "gpt-4o"}]}}))
    );
    BothApis::start(label, &rest).await
}

/// The `data:` payloads of an SSE text that parse as JSON.
fn data_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

fn chat_body(include_usage: bool) -> Value {
    let mut b = json!({"model": "claude-sonnet-4-5", "stream": true,
        "messages": [{"role": "user", "content": "[[mock tokens=12]] hi"}]});
    if include_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_streams_in_the_clients_shape_and_logs_usage() {
    let s = setup("pairs").await;
    for tenant in ["to-anthropic", "to-openai"] {
        let key = s.gw.key(tenant).await;

        // An Anthropic client.
        let resp =
            s.gw.messages(&key, streamed(ask("[[mock tokens=12]] hi")))
                .await;
        assert_eq!(resp.status(), 200, "{tenant}");
        let rid = request_id(&resp);
        let text = resp.text().await.expect("body");
        let types: Vec<String> = data_events(&text)
            .iter()
            .filter_map(|e| e["type"].as_str().map(str::to_string))
            .collect();
        assert_eq!(types.first().map(String::as_str), Some("message_start"));
        assert_eq!(types.last().map(String::as_str), Some("message_stop"));
        let row = s.gw.wait_log(&rid).await;
        assert_eq!(row["status"], 200);
        assert_eq!(row["usage"]["output_tokens"], 12, "{tenant}: {row}");
        assert!(row["ttft_ms"].is_u64(), "{row}");

        // An OpenAI client, with and without the usage chunk.
        for include_usage in [true, false] {
            let resp = s.gw.chat(&key, chat_body(include_usage)).await;
            assert_eq!(resp.status(), 200);
            let rid = request_id(&resp);
            let text = resp.text().await.expect("body");
            assert!(text.ends_with("data: [DONE]\n\n"), "{tenant}: {text}");
            let chunks = data_events(&text);
            assert!(
                chunks
                    .iter()
                    .all(|c| c["object"] == "chat.completion.chunk")
            );
            let usage_chunk = chunks.iter().any(|c| c["usage"].is_object());
            assert_eq!(usage_chunk, include_usage, "{tenant}: {text}");
            let row = s.gw.wait_log(&rid).await;
            assert_eq!(row["usage"]["output_tokens"], 12, "{tenant}: {row}");
        }
    }
    // The gateway asked the OpenAI provider for usage each time, on the client's behalf.
    let sent = s.oai.requests().await;
    assert!(!sent.is_empty());
    assert!(
        sent.iter()
            .all(|r| r["body"]["stream_options"]["include_usage"] == true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_cut_ends_the_clients_stream_with_an_error_in_its_shape() {
    let s = setup("cut").await;
    s.anth.behave(json!({"drop_after": 3, "tokens": 50})).await;
    s.oai.behave(json!({"drop_after": 3, "tokens": 50})).await;
    for tenant in ["to-anthropic", "to-openai"] {
        let key = s.gw.key(tenant).await;
        let resp = s.gw.messages(&key, streamed(ask("go"))).await;
        let rid = request_id(&resp);
        let text = resp.text().await.unwrap_or_default();
        let last = data_events(&text).pop().expect("events");
        assert_eq!(last["type"], "error", "{tenant}: {text}");
        let row = s.gw.wait_log(&rid).await;
        assert!(row["error"].as_str().is_some(), "{row}");
        assert!(row["usage"]["output_tokens"].as_u64() >= Some(1), "{row}");

        // (No directive in the prompt: it would override the scripted cut.)
        let mut body = chat_body(false);
        body["messages"][0]["content"] = json!("go");
        let resp = s.gw.chat(&key, body).await;
        let text = resp.text().await.unwrap_or_default();
        let last = data_events(&text).pop().expect("events");
        assert_eq!(last["error"]["type"], "server_error", "{tenant}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_is_logged_499_and_billed_for_what_was_sent() {
    let s = setup("hangup").await;
    let key = s.gw.key("to-anthropic").await;
    let resp =
        s.gw.messages(
            &key,
            json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": true,
                "messages": [{"role": "user", "content": "[[mock tokens=400 gap_ms=10]] go"}]}),
        )
        .await;
    let rid = request_id(&resp);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while seen.matches("content_block_delta").count() < 40 {
        let chunk = body.next().await.expect("more").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    let row = s.gw.wait_log(&rid).await;
    assert_eq!(row["status"], 499, "{row}");
    let out = row["usage"]["output_tokens"]
        .as_u64()
        .expect("output tokens");
    assert!((20..400).contains(&out), "{row}");
    assert_eq!(row["cost"]["usage_estimated"], true, "{row}");
}
