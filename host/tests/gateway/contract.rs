//! The contract's promise: a plugin built against an older package version
//! (`tollgate:plugin@0.2.0`, from `wit-legacy/`) loads and runs in the same chain as
//! current plugins, its hooks adapted to the current types.

use crate::support::{MockUpstream, TestGateway, ask, json_body, provider, request_id};
use serde_json::Value;
use tollgate::mock::Flavor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_0_2_0_still_loads_and_runs() {
    let a = MockUpstream::start("a", Flavor::Anthropic, None).await;
    let b = MockUpstream::start("b", Flavor::Anthropic, None).await;
    let gw = TestGateway::start(
        "contract",
        &format!(
            r#"
default_provider = "a"
{}{}
[[tenants]]
id = "legacy"
[[tenants.plugins]]
name = "legacy-v0-2"
config = {{ provider = "b" }}
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "annotate" }}
"#,
            provider("a", "anthropic", &a.url),
            provider("b", "anthropic", &b.url)
        ),
    )
    .await;
    let key = gw.key("legacy").await;

    // Its policy runs (with its host calls), and its route serves the request.
    let resp = gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "b");
    let row = gw.wait_log(&request_id(&resp)).await;
    let decisions = outcomes(&row);
    assert_eq!(
        decisions,
        [
            ("legacy-v0-2", "allow"),
            ("chaos", "allow"),
            ("legacy-v0-2", "route")
        ],
        "{row}"
    );
    assert_eq!(
        row["decisions"][0]["annotations"][0],
        serde_json::json!(["abi", "0.2.0"])
    );
    assert_eq!(
        row["decisions"][2]["annotations"][0],
        serde_json::json!(["routed-by", "legacy-v0-2"])
    );
    assert_eq!(row["provider"], "b");
    assert!(a.requests().await.is_empty());
    assert_eq!(b.requests().await.len(), 1);

    // Its denial reaches the client as a current plugin's would.
    let resp = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("x-portkey-metadata", r#"{"block":"yes"}"#)
        .body(ask("hello").to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 403);
    let body: Value = json_body(resp).await;
    assert_eq!(body["error"]["message"], "blocked by a 0.2.0 plugin");
}

/// Each decision of a log row as (plugin, outcome).
fn outcomes(row: &Value) -> Vec<(&str, &str)> {
    row["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            (
                d["plugin"].as_str().unwrap_or_default(),
                d["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// The exact components first-party plugins were shipped as under
/// `tollgate:plugin@0.3.0` (built before 0.4.0 added the guardrail hooks), kept as
/// test fixtures.
fn v0_3_fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v0.3.0")
        .join(format!("tollgate_{name}.wasm"));
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_built_against_0_3_0_still_route_and_budget() {
    let a = MockUpstream::start("a", Flavor::Anthropic, None).await;
    let b = MockUpstream::start("b", Flavor::Anthropic, None).await;
    let gw = TestGateway::start(
        "contract-0-3",
        &format!(
            r#"
default_provider = "a"
{}{}
[[tenants]]
id = "old"
[[tenants.plugins]]
path = {:?}
config = {{ default = {{ targets = [{{ provider = "b" }}] }} }}
[[tenants.plugins]]
path = {:?}
config = {{ limits = [{{ name = "two-a-day", scope = "tenant", metric = "requests", period = "day", limit = 2 }}] }}
[[tenants.plugins]]
name = "hostile"
config = {{ mode = "allow" }}
"#,
            provider("a", "anthropic", &a.url),
            provider("b", "anthropic", &b.url),
            v0_3_fixture("model_router"),
            v0_3_fixture("budget_limit"),
        ),
    )
    .await;
    let key = gw.key("old").await;

    // The 0.3 router's plan and the 0.3 budget's grant both hold, next to a 0.4 plugin
    // whose guardrail hooks run in the same chain.
    for _ in 0..2 {
        let resp = gw.messages(&key, ask("hello")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-tollgate-provider"], "b");
        let row = gw.wait_log(&request_id(&resp)).await;
        let outcomes = outcomes(&row);
        assert_eq!(
            outcomes,
            [
                ("hostile", "allow"),
                ("hostile", "allow"),
                ("tollgate_model_router", "route"),
                ("tollgate_budget_limit", "allow"),
                ("hostile", "allow"),
                ("hostile", "allow"),
            ],
            "{row}"
        );
        assert_eq!(row["decisions"][1]["hook"], "inspect-request");
        assert_eq!(row["decisions"][5]["hook"], "inspect-response");
    }
    let resp = gw.messages(&key, ask("hello")).await;
    assert_eq!(resp.status(), 429, "the 0.3 plugin's limit is enforced");
    let body: Value = json_body(resp).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("two-a-day")),
        "{body}"
    );
    assert!(a.requests().await.is_empty());
    assert_eq!(b.requests().await.len(), 2);
}
