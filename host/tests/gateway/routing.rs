//! The routing executor: retries with backoff, `Retry-After`, fallback across
//! providers and APIs, refused connections, and the error when every target fails.

use crate::support::{BothApis, ask, json_body, request_id, router};
use serde_json::{Value, json};

const FAIL_OVER: &str =
    r#"{"statuses": [429, 500, 502, 503, 504], "timeout": true, "connect_error": true}"#;

async fn setup(label: &str) -> BothApis {
    let fail_over: Value = serde_json::from_str(FAIL_OVER).expect("json");
    let tenants = [
        (
            "retry",
            router(
                json!({"default": {"targets": [{"provider": "anthropic"}], "retries": 2,
                "backoff_ms": 20, "max_backoff_ms": 3000, "retry_on": fail_over}}),
            ),
        ),
        (
            "fallback",
            router(
                json!({"default": {"strategy": "fallback", "retry_on": fail_over,
                "targets": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}]}}),
            ),
        ),
        (
            "refused",
            router(
                json!({"default": {"strategy": "fallback", "retry_on": fail_over,
                "targets": [{"provider": "dead"}, {"provider": "anthropic"}]}}),
            ),
        ),
    ];
    let tenant_toml: String = tenants
        .iter()
        .map(|(id, plugins)| format!("\n[[tenants]]\nid = \"{id}\"\n{plugins}"))
        .collect();
    let rest = format!(
        r#"
[[providers]]
id = "dead"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9"
connect_timeout_ms = 500
{tenant_toml}
"#
    );
    BothApis::start(label, &rest).await
}

fn attempts(row: &Value) -> Vec<(String, Option<u64>)> {
    row["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["provider"].as_str().unwrap_or_default().to_string(),
                a["status"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_and_wait_as_long_as_retry_after_says() {
    let s = setup("retry").await;
    let key = s.gw.key("retry").await;
    s.anth
        .behave(json!({"status": 429, "retry_after": 1, "times": 1}))
        .await;
    let resp = s.gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-attempt"], "2");
    let row = s.gw.wait_log(&request_id(&resp)).await;
    assert_eq!(
        attempts(&row),
        [
            ("anthropic".into(), Some(429)),
            ("anthropic".into(), Some(200))
        ]
    );
    let sent: Vec<i64> = row["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["at_us"].as_i64().expect("at_us"))
        .collect();
    // The provider asked for a second; the 20 ms backoff alone would not wait that long.
    assert!(
        sent[1] - sent[0] >= 1_000_000,
        "retried {} us after a Retry-After of 1 s",
        sent[1] - sent[0]
    );
    assert_eq!(s.anth.requests().await.len(), 2);

    // Past its retries the last upstream error reaches the client, in its shape.
    s.anth.behave(json!({"status": 503})).await;
    let resp = s.gw.messages(&key, ask("again")).await;
    assert_eq!(resp.status(), 503);
    let rid = request_id(&resp);
    let body = json_body(resp).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
    let row = s.gw.wait_log(&rid).await;
    assert_eq!(attempts(&row).len(), 3, "one try and two retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_moves_to_the_next_provider_and_translates_its_answer() {
    let s = setup("fallback").await;
    let key = s.gw.key("fallback").await;
    s.anth.behave(json!({"status": 503})).await;
    let resp = s.gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "openai");
    assert_eq!(resp.headers()["x-tollgate-model"], "gpt-4o");
    let rid = request_id(&resp);
    let body = json_body(resp).await;
    // An Anthropic client gets an Anthropic message, whoever served it.
    assert_eq!(body["type"], "message");
    assert!(body["content"][0]["text"].is_string(), "{body}");
    let row = s.gw.wait_log(&rid).await;
    assert_eq!(
        attempts(&row),
        [
            ("anthropic".into(), Some(503)),
            ("openai".into(), Some(200))
        ]
    );
    assert_eq!(row["provider"], "openai");
    assert!(row["usage"]["output_tokens"].as_u64() > Some(0), "{row}");
    let sent = s.oai.requests().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["model"], "gpt-4o");

    // An OpenAI client is served the same way, in its own shape.
    let resp =
        s.gw.chat(
            &key,
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    assert_eq!(body["object"], "chat.completion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_falls_back_and_is_recorded() {
    let s = setup("refused").await;
    let key = s.gw.key("refused").await;
    let resp = s.gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    let row = s.gw.wait_log(&request_id(&resp)).await;
    assert_eq!(
        attempts(&row),
        [("dead".into(), None), ("anthropic".into(), Some(200))]
    );
    let first = &row["attempts"][0];
    assert!(
        first["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_started_is_never_retried() {
    let s = setup("nostreamretry").await;
    let key = s.gw.key("fallback").await;
    s.anth.behave(json!({"drop_after": 2, "tokens": 20})).await;
    let mut body = ask("hello");
    body["stream"] = json!(true);
    let resp = s.gw.messages(&key, body).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains("event: error"), "{text}");
    let row = s.gw.wait_log(&rid).await;
    assert_eq!(attempts(&row), [("anthropic".into(), Some(200))]);
    assert!(row["error"].as_str().is_some(), "{row}");
    assert!(s.oai.requests().await.is_empty());
}

/// What the provider said about itself reaches the client: its own request id
/// (Anthropic's `request-id`, OpenAI's `x-request-id`) as `x-upstream-request-id`,
/// and the `retry-after` of the error that ended the tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_request_id_and_retry_after_reach_the_client() {
    let s = setup("relayed").await;
    let key = s.gw.key("fallback").await;
    let resp = s.gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "anthropic");
    assert_eq!(resp.headers()["x-tollgate-target"], "0");
    assert_eq!(resp.headers()["x-upstream-request-id"], "req_mock_upstream");

    s.anth.behave(json!({"status": 503})).await;
    let resp = s.gw.messages(&key, ask("again")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "openai");
    assert_eq!(resp.headers()["x-tollgate-target"], "1");
    assert_eq!(resp.headers()["x-tollgate-attempt"], "2");
    assert_eq!(resp.headers()["x-upstream-request-id"], "req_mock_upstream");

    s.oai.behave(json!({"status": 429, "retry_after": 7})).await;
    let resp = s.gw.messages(&key, ask("once more")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(resp.headers().get("x-upstream-request-id").is_none());
}
