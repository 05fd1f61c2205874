//! Guardrail hooks through the whole request path: bad rewrites fail the request
//! cleanly with a 500 naming the plugin and never reach the provider; findings are
//! bounded; a fail-open guardrail that misbehaves is skipped.

use crate::support::{MockUpstream, TestGateway, ask, json_body, provider, request_id};
use serde_json::Value;
use tollgate::mock::Flavor;

fn tenant(id: &str, mode: &str, extra: &str) -> String {
    // Enough to pass the growth bound; rule names just over the 64-byte cut.
    let size = if mode == "edit-grow" { 70_000 } else { 200 };
    format!(
        r#"
[[tenants]]
id = "{id}"
[[tenants.plugins]]
name = "hostile"
config = {{ mode = "{mode}", count = 100, size = {size} }}
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rewrites_fail_the_request_and_never_corrupt_a_body() {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let mut cfg = format!(
        "default_provider = \"up\"\n{}",
        provider("up", "anthropic", &up.url)
    );
    for (id, mode) in [
        ("no-part", "edit-no-part"),
        ("overlap", "edit-overlap"),
        ("split", "edit-split-char"),
        ("grow", "edit-grow"),
        ("answer", "answer-no-part"),
        ("findings", "many-findings"),
    ] {
        cfg.push_str(&tenant(id, mode, ""));
    }
    cfg.push_str(&tenant("open", "edit-no-part", "fail_open = true"));
    let gw = TestGateway::start("guard-bad", &cfg).await;

    for (tenant, expected) in [
        ("no-part", "names part 9999, but there are only 1 part(s)"),
        ("overlap", "edits 0 and 1 of part 0 overlap"),
        (
            "split",
            "bytes 0..1 are not a range on character boundaries",
        ),
        ("grow", "at most 65536 may be added"),
    ] {
        let key = gw.key(tenant).await;
        let resp = gw.messages(&key, ask("é, a multi-byte start")).await;
        assert_eq!(resp.status(), 500, "{tenant}");
        let id = request_id(&resp);
        let body: Value = json_body(resp).await;
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(body["type"], "error", "Anthropic error shape: {body}");
        assert!(
            msg.starts_with("plugin 'hostile' returned a rewrite the host cannot apply")
                && msg.contains(expected),
            "{tenant}: {msg}"
        );
        let row = gw.wait_log(&id).await;
        let d = &row["decisions"][1];
        assert_eq!(
            (d["hook"].as_str(), d["outcome"].as_str()),
            (Some("inspect-request"), Some("error")),
            "{row}"
        );
    }
    assert!(
        up.requests().await.is_empty(),
        "no bad rewrite reached the provider"
    );

    // The same plugin failing open is skipped: the request goes on as sent.
    let key = gw.key("open").await;
    let resp = gw.messages(&key, ask("untouched")).await;
    assert_eq!(resp.status(), 200);
    let row = gw.wait_log(&request_id(&resp)).await;
    assert_eq!(row["decisions"][1]["outcome"], "skipped", "{row}");
    let sent = up.requests().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["messages"][0]["content"], "untouched");

    // A bad rewrite of the answer: the provider answered (and is billed), the client
    // gets a 500 naming the plugin.
    let key = gw.key("answer").await;
    let resp = gw.messages(&key, ask("hi")).await;
    assert_eq!(resp.status(), 500);
    let id = request_id(&resp);
    let body: Value = json_body(resp).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("plugin 'hostile'"),
        "{body}"
    );
    let row = gw.wait_log(&id).await;
    assert_eq!(row["status"], 500);
    assert!(
        row["usage"]["output_tokens"].as_u64().unwrap_or_default() > 0,
        "billed: {row}"
    );
    let last = row["decisions"]
        .as_array()
        .and_then(|d| d.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["hook"].as_str(), last["outcome"].as_str()),
        (Some("inspect-response"), Some("error")),
        "{row}"
    );

    // Findings are bounded like labels: 16 kept, names cut to 64 bytes.
    let key = gw.key("findings").await;
    let resp = gw.messages(&key, ask("hi")).await;
    assert_eq!(resp.status(), 200);
    let row = gw.wait_log(&request_id(&resp)).await;
    let d = &row["decisions"][1];
    assert_eq!(d["outcome"], "flag", "{row}");
    let findings = d["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 16);
    assert!(
        findings
            .iter()
            .all(|f| f["rule"].as_str().is_some_and(|r| r.len() == 64))
    );
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("100 findings cut to 16"),
        "{d}"
    );
}

/// The text an SSE client prints: Anthropic text deltas or OpenAI content deltas.
fn printed(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| {
            e.pointer("/delta/text")
                .or_else(|| e.pointer("/choices/0/delta/content"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

fn pii_tenant(id: &str, provider: &str, config: &str, stream_mode: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
default_provider = "{provider}"
[[tenants.plugins]]
name = "pii-redact"
config = {config}
response_stream = "{stream_mode}"
"#
    )
}

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";

fn says_key() -> String {
    format!("[[mock text=\"the key is {KEY} ok\"]] go")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pii_is_redacted_before_the_provider_and_in_answers_streamed_or_not() {
    let response_only = r#"{ apply_to = "response" }"#;
    let rest = [
        pii_tenant("req", "anthropic", r#"{ apply_to = "request" }"#, "observe"),
        pii_tenant("obs", "anthropic", response_only, "observe"),
        pii_tenant("buf", "openai", response_only, "buffer"),
        pii_tenant("buf-anth", "anthropic", response_only, "buffer"),
        pii_tenant(
            "deny",
            "anthropic",
            r#"{ apply_to = "response", kinds = { aws_key = "deny" } }"#,
            "buffer",
        ),
    ]
    .concat();
    let s = crate::support::BothApis::start("guard-pii", &rest).await;
    let gw = &s.gw;

    // A prompt's e-mail and card number reach the provider redacted; the echo still
    // reads well to the client.
    let key = gw.key("req").await;
    let resp = gw
        .messages(
            &key,
            ask("mail bob@example.com the card 4111 1111 1111 1111 please"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let body: Value = json_body(resp).await;
    let sent = s.anth.requests().await;
    let prompt = sent[0]["body"]["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(prompt, "mail [EMAIL_1] the card [CARD_1] please");
    assert_eq!(
        body["content"][0]["text"],
        format!("echo: {prompt}"),
        "the mock echoes what it got"
    );
    let row = gw.wait_log(&id).await;
    let d = &row["decisions"][0];
    assert_eq!(
        (d["hook"].as_str(), d["outcome"].as_str()),
        (Some("inspect-request"), Some("rewrite")),
        "{row}"
    );
    let found: Vec<(String, u64)> = d["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        found.contains(&("email".into(), 1)) && found.contains(&("card".into(), 1)),
        "{found:?}"
    );
    assert!(
        !row.to_string().contains("bob@example.com"),
        "the log never holds the secret"
    );

    // A secret in a whole answer is redacted for the client, in both APIs (the OpenAI
    // client's answer is translated from the Anthropic provider's).
    let key = gw.key("obs").await;
    let resp = gw.messages(&key, ask(&says_key())).await;
    let body: Value = json_body(resp).await;
    assert_eq!(body["content"][0]["text"], "the key is [AWS_KEY_1] ok");
    let resp = gw
        .chat(&key, serde_json::json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": says_key()}]}))
        .await;
    let body: Value = json_body(resp).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "the key is [AWS_KEY_1] ok"
    );

    // Observe: the stream reaches the client untouched; the verdict is logged.
    let mut streamed = ask(&says_key());
    streamed["stream"] = serde_json::json!(true);
    let resp = gw.messages(&key, streamed.clone()).await;
    let id = request_id(&resp);
    let text = resp.text().await.expect("stream");
    assert_eq!(printed(&text), format!("the key is {KEY} ok"));
    let row = gw.wait_log(&id).await;
    let last = row["decisions"]
        .as_array()
        .and_then(|d| d.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["hook"].as_str(), last["outcome"].as_str()),
        (Some("inspect-response"), Some("observed-rewrite")),
        "{row}"
    );
    assert_eq!(last["findings"][0]["rule"], "aws_key");

    // Buffer: the stream is held, rewritten, and sent well-formed, in both APIs and
    // through a translated provider each way.
    for tenant in ["buf", "buf-anth"] {
        let key = gw.key(tenant).await;
        let resp = gw.messages(&key, streamed.clone()).await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/event-stream")
        );
        let text = resp.text().await.expect("stream");
        assert_eq!(
            printed(&text),
            "the key is [AWS_KEY_1] ok",
            "{tenant}: {text}"
        );
        assert!(
            !text.contains(KEY) && text.contains("message_stop"),
            "{tenant}: {text}"
        );
        let resp = gw
            .chat(
                &key,
                serde_json::json!({"model": "claude-sonnet-4-5", "stream": true,
                "messages": [{"role": "user", "content": says_key()}]}),
            )
            .await;
        let text = resp.text().await.expect("stream");
        assert_eq!(
            printed(&text),
            "the key is [AWS_KEY_1] ok",
            "{tenant}: {text}"
        );
        assert!(
            !text.contains(KEY) && text.ends_with("data: [DONE]\n\n"),
            "{tenant}: {text}"
        );
    }

    // A denial of a buffered stream is an error in the client's shape, billed and
    // logged, naming the rule and never the secret.
    let key = gw.key("deny").await;
    let resp = gw.messages(&key, streamed).await;
    assert_eq!(resp.status(), 502);
    let id = request_id(&resp);
    let body: Value = json_body(resp).await;
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("aws_key") && !msg.contains(KEY), "{body}");
    let row = gw.wait_log(&id).await;
    assert_eq!(row["status"], 502);
    assert!(
        row["usage"]["output_tokens"].as_u64().unwrap_or_default() > 0,
        "billed: {row}"
    );
    assert!(!row.to_string().contains(KEY));
}
