//! The plugin chain: a plugin that traps, loops or runs out of memory fails its
//! request closed (500 in the client's shape, the decision logged, nothing sent
//! upstream) unless it is marked fail-open, in which case it is skipped and recorded;
//! a denial carries the plugin's status and message; neighbours keep being served.

use crate::support::{MockUpstream, TestGateway, ask, json_body, request_id};
use serde_json::{Value, json};
use tollgate::mock::Flavor;

async fn setup(label: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let chaos = |mode: &str| {
        format!("[[tenants.plugins]]\nname = \"chaos\"\nconfig = {{ mode = \"{mode}\" }}\n")
    };
    let body = format!(
        r#"
default_provider = "up"

[sandbox]
deadline_ms = 20
memory_mib = 16

[[providers]]
id = "up"
kind = "anthropic"
base_url = "{}"

[[tenants]]
id = "open"

[[tenants]]
id = "trap"
{}
[[tenants]]
id = "loop"
{}
[[tenants]]
id = "oom"
{}
[[tenants]]
id = "failopen"
[[tenants.plugins]]
name = "chaos"
fail_open = true
config = {{ mode = "trap" }}
{}
[[tenants]]
id = "deny"
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "deny", status = 402, message = "pay first" }}
"#,
        up.url,
        chaos("trap"),
        chaos("loop"),
        chaos("oom"),
        chaos("annotate"),
    );
    (TestGateway::start(label, &body).await, up)
}

fn outcomes(row: &Value) -> Vec<String> {
    row["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_fails_its_request_closed_and_only_that_one() {
    let (gw, up) = setup("closed").await;
    let open = gw.key("open").await;
    for (tenant, needle) in [
        ("trap", "trapped"),
        ("loop", "exceeded its CPU deadline"),
        ("oom", "exceeded its memory limit of 16 MiB"),
    ] {
        let key = gw.key(tenant).await;
        let resp = gw.messages(&key, ask("hello")).await;
        assert_eq!(resp.status(), 500, "{tenant}");
        let rid = request_id(&resp);
        let body = json_body(resp).await;
        assert_eq!(body["error"]["type"], "api_error");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("plugin 'chaos'") && message.contains(needle),
            "{tenant}: {message}"
        );
        let row = gw.wait_log(&rid).await;
        assert_eq!(outcomes(&row), ["error"], "{row}");
        assert!(row["attempts"].as_array().is_some_and(Vec::is_empty));

        // The OpenAI front door reports it in its own shape.
        let resp = gw
            .chat(
                &key,
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(resp.status(), 500);
        let body = json_body(resp).await;
        assert_eq!(body["error"]["type"], "server_error", "{body}");

        // The neighbour is served meanwhile.
        assert_eq!(gw.messages(&open, ask("hello")).await.status(), 200);
    }
    // Only the neighbour's requests reached the provider.
    assert_eq!(up.requests().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_plugin_is_skipped_and_the_rest_of_the_chain_runs() {
    let (gw, _up) = setup("open").await;
    let key = gw.key("failopen").await;
    let resp = gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    let row = gw.wait_log(&request_id(&resp)).await;
    assert_eq!(outcomes(&row), ["skipped", "allow"]);
    assert!(
        row["decisions"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("trapped")),
        "{row}"
    );
    assert!(
        row["decisions"][1]["annotations"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_carries_the_plugins_status_and_message() {
    let (gw, up) = setup("deny").await;
    let key = gw.key("deny").await;
    let resp = gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 402);
    let rid = request_id(&resp);
    let body = json_body(resp).await;
    assert_eq!(body["type"], "error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pay first")),
        "{body}"
    );
    let row = gw.wait_log(&rid).await;
    assert_eq!(outcomes(&row), ["deny"]);
    assert_eq!(row["status"], 402);
    assert!(up.requests().await.is_empty());
}
