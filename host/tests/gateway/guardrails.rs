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
