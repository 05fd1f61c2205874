//! Policy bundles through the admin API: hot-swapped under concurrent traffic with no
//! failed request and every row naming the version that decided it; broken bundles
//! refused with nothing changed; history, diff and rollback; the platform, pinned and
//! own layers run in that order and a tenant cannot lift its pins; bundles outlive a
//! restart.

use crate::support::{MockUpstream, TestGateway, ask, json_body, provider, request_id};
use serde_json::{Value, json};
use tollgate::mock::Flavor;

struct Setup {
    gw: TestGateway,
    _a: MockUpstream,
    _b: MockUpstream,
}

async fn setup(label: &str) -> Setup {
    let a = MockUpstream::start("a", Flavor::Anthropic, None).await;
    let b = MockUpstream::start("b", Flavor::Anthropic, None).await;
    let body = format!(
        r#"
default_provider = "a"
{}{}
[[tenants]]
id = "swap"

[[tenants]]
id = "pinned"
allowed_providers = ["a"]
[[tenants.plugins]]
name = "chaos"
config = {{ mode = "annotate" }}
"#,
        provider("a", "anthropic", &a.url),
        provider("b", "anthropic", &b.url)
    );
    Setup {
        gw: TestGateway::start(label, &body).await,
        _a: a,
        _b: b,
    }
}

fn route_to(provider: &str) -> Value {
    json!({"plugins": [{"name": "model-router",
        "config": {"default": {"targets": [{"provider": provider}]}}}]})
}

async fn put(gw: &TestGateway, tenant: Option<&str>, body: Value) -> (u16, Value) {
    let path = match tenant {
        Some(t) => format!("/tenants/{t}/bundle"),
        None => "/bundle".into(),
    };
    gw.admin("PUT", &path, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_swap_under_traffic_drops_nothing_and_each_row_names_its_version() {
    let s = setup("swap").await;
    let key = s.gw.key("swap").await;
    let (status, v_a) = put(&s.gw, Some("swap"), route_to("a")).await;
    assert_eq!(status, 201, "{v_a}");
    let traffic = {
        let url = s.gw.url.clone();
        let client = s.gw.client().clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..60 {
                let resp = client
                    .post(format!("{url}/v1/messages"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(ask("[[mock tokens=4]] hi").to_string())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(resp.status(), 200, "a request failed during a swap");
                let provider = resp.headers()["x-tollgate-provider"]
                    .to_str()
                    .expect("provider")
                    .to_string();
                seen.push((request_id(&resp), provider));
            }
            seen
        })
    };
    let mut versions = vec![(v_a["version"].as_u64().expect("version"), "a")];
    for i in 0..6 {
        let p = if i % 2 == 0 { "b" } else { "a" };
        let (status, v) = put(&s.gw, Some("swap"), route_to(p)).await;
        assert_eq!(status, 201, "{v}");
        versions.push((v["version"].as_u64().expect("version"), p));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    let seen = traffic.await.expect("traffic");
    for (rid, provider) in seen.iter().step_by(7) {
        let row = s.gw.wait_log(rid).await;
        let v = row["bundle_version"].as_u64().expect("bundle version");
        let routed = versions
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, p)| *p)
            .expect("a known version");
        assert_eq!(routed, provider, "row {rid} says version {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_bundles_are_refused_and_history_diff_rollback_work() {
    let s = setup("broken").await;
    let (_, v1) = put(&s.gw, Some("swap"), route_to("a")).await;
    let (_, v2) = put(&s.gw, Some("swap"), route_to("b")).await;
    let (v1, v2) = (v1["version"].as_u64(), v2["version"].as_u64());
    for (bad, needle) in [
        (
            json!({"plugins": [{"name": "no-such-plugin"}]}),
            "no-such-plugin",
        ),
        (
            json!({"plugins": [{"name": "chaos", "config": {"mode": "explode"}}]}),
            "explode",
        ),
        (
            json!({"plugins": [], "default_provider": "nowhere"}),
            "nowhere",
        ),
    ] {
        let (status, body) = put(&s.gw, Some("swap"), bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "{body}"
        );
    }
    let (_, active) = s.gw.admin("GET", "/tenants/swap/bundle", None).await;
    assert_eq!(active["version"].as_u64(), v2, "{active}");

    let (status, hist) =
        s.gw.admin("GET", "/tenants/swap/bundle/versions", None)
            .await;
    assert_eq!(status, 200);
    assert_eq!(hist["data"].as_array().map(Vec::len), Some(2), "{hist}");
    let (status, diff) =
        s.gw.admin(
            "GET",
            &format!(
                "/tenants/swap/bundle/diff?from={}&to={}",
                v1.unwrap_or(0),
                v2.unwrap_or(0)
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let changes: Vec<&str> = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(changes.len(), 1, "{diff}");
    assert!(
        changes[0].contains("provider") && changes[0].contains("\"a\" -> \"b\""),
        "{diff}"
    );

    let (status, rolled) =
        s.gw.admin(
            "POST",
            "/tenants/swap/bundle/rollback",
            Some(json!({"version": v1})),
        )
        .await;
    assert_eq!(status, 201, "{rolled}");
    let key = s.gw.key("swap").await;
    let resp = s.gw.messages(&key, ask("hi")).await;
    assert_eq!(resp.headers()["x-tollgate-provider"], "a");
    let (status, _) =
        s.gw.admin(
            "POST",
            "/tenants/swap/bundle/rollback",
            Some(json!({"version": 99999})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_run_platform_then_pinned_then_own_and_pins_hold() {
    let s = setup("layers").await;
    let policy = json!({"plugins": [{"name": "metadata-policy", "config": {"required": ["env"]}}]});
    let (status, p) = put(&s.gw, None, policy).await;
    assert_eq!(status, 201, "{p}");
    let (status, own) = put(&s.gw, Some("pinned"), route_to("a")).await;
    assert_eq!(status, 201, "{own}");
    let key = s.gw.key("pinned").await;

    // The platform's policy applies to every tenant, before anything of theirs.
    let resp = s.gw.messages(&key, ask("hi")).await;
    assert_eq!(resp.status(), 400);
    let resp =
        s.gw.messages_with_metadata(&key, r#"{"env":"prod"}"#, ask("hi"))
            .await;
    assert_eq!(resp.status(), 200);
    let row = s.gw.wait_log(&request_id(&resp)).await;
    let order: Vec<&str> = row["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter_map(|d| d["plugin"].as_str())
        .collect();
    assert_eq!(order, ["metadata-policy", "chaos", "model-router"], "{row}");
    assert_eq!(row["platform_version"], p["version"]);
    assert_eq!(row["bundle_version"], own["version"]);

    // The tenant's view shows which layers it cannot change.
    let (_, t) = s.gw.admin("GET", "/tenants/pinned", None).await;
    assert_eq!(
        t["layers"],
        json!({
            "platform": {"version": p["version"], "plugins": ["metadata-policy"]},
            "pinned": {"source": "config", "plugins": ["chaos"], "allowed_providers": ["a"],
                "allowed_models": null},
            "own": {"version": own["version"], "plugins": ["model-router"], "default_provider": null},
        }),
        "{t}"
    );

    // Its own bundle routing to a provider outside its pins is held to them.
    let (status, _) = put(&s.gw, Some("pinned"), route_to("b")).await;
    assert_eq!(status, 201);
    let resp =
        s.gw.messages_with_metadata(&key, r#"{"env":"prod"}"#, ask("hi"))
            .await;
    assert_eq!(resp.status(), 403);
    let body = json_body(resp).await;
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_outlive_a_restart() {
    let s = setup("restart").await;
    let (status, v) = put(&s.gw, Some("swap"), route_to("b")).await;
    assert_eq!(status, 201);
    let gw = s.gw.restart().await;
    let key = gw.key("swap").await;
    let resp = gw.messages(&key, ask("hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "b");
    let row = gw.wait_log(&request_id(&resp)).await;
    assert_eq!(row["bundle_version"], v["version"]);
}
