//! Warm instances (`reuse_instance = true`): a tenant's calls run in the instance its
//! previous call left, never in another tenant's, never after a trap, and never for an
//! entry that did not opt in. The chaos plugin's `count` mode labels each decision with
//! the number of calls its instance has served.

use crate::support::{MockUpstream, TestGateway, ask, provider, request_id};
use serde_json::{Value, json};
use tollgate::mock::Flavor;

fn counter(reuse: bool, trap_at: Option<u32>) -> String {
    let trap = trap_at.map_or(String::new(), |n| format!(", trap_at = {n}"));
    format!(
        "[[tenants.plugins]]\nname = \"chaos\"\nfail_open = true\nreuse_instance = {reuse}\n\
         config = {{ mode = \"count\"{trap} }}\n"
    )
}

/// The instance call count the chaos plugin reported for a request, or `None` when it
/// did not decide (skipped after a trap).
async fn calls(gw: &TestGateway, key: &str) -> Option<u32> {
    let resp = gw.messages(key, ask("count")).await;
    assert_eq!(resp.status(), 200);
    let row = gw.wait_log(&request_id(&resp)).await;
    let decision = &row["decisions"][0];
    decision["annotations"]
        .as_array()?
        .iter()
        .find(|a| a[0] == "chaos.calls")
        .and_then(|a| a[1].as_str())
        .and_then(|n| n.parse().ok())
        .or_else(|| {
            assert_eq!(decision["outcome"], Value::from("skipped"), "{row}");
            None
        })
}

#[tokio::test]
async fn warm_instances_serve_only_their_tenant_and_never_after_a_trap() {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let body = format!(
        "default_provider = \"up\"\n{}\n[[tenants]]\nid = \"warm-a\"\n{}\n[[tenants]]\nid = \"warm-b\"\n{}\n\
         [[tenants]]\nid = \"fresh\"\n{}\n[[tenants]]\nid = \"trapping\"\n{}\n\
         [[tenants]]\nid = \"bundled\"\n",
        provider("up", "anthropic", &up.url),
        counter(true, None),
        counter(true, None),
        counter(false, None),
        counter(true, Some(3)),
    );
    let gw = TestGateway::start("warm", &body).await;
    let (a, b, fresh, trapping) = (
        gw.key("warm-a").await,
        gw.key("warm-b").await,
        gw.key("fresh").await,
        gw.key("trapping").await,
    );

    // One tenant's requests share its warm instance; the other tenant's count apart.
    assert_eq!(calls(&gw, &a).await, Some(1));
    assert_eq!(calls(&gw, &a).await, Some(2));
    assert_eq!(calls(&gw, &b).await, Some(1));
    assert_eq!(calls(&gw, &a).await, Some(3));
    assert_eq!(calls(&gw, &b).await, Some(2));

    // Without the option every call gets a fresh instance.
    for _ in 0..3 {
        assert_eq!(calls(&gw, &fresh).await, Some(1));
    }

    // An instance that trapped is discarded: the next call starts over in a fresh one.
    assert_eq!(calls(&gw, &trapping).await, Some(1));
    assert_eq!(calls(&gw, &trapping).await, Some(2));
    assert_eq!(calls(&gw, &trapping).await, None);
    assert_eq!(calls(&gw, &trapping).await, Some(1));

    // A tenant's own bundle may opt in too; a new bundle version starts fresh instances.
    let bundled = gw.key("bundled").await;
    let apply = |reuse: bool| {
        json!({"plugins": [{"name": "chaos", "reuse_instance": reuse, "fail_open": true,
                            "config": {"mode": "count"}}]})
    };
    let (status, body) = gw
        .admin("PUT", "/tenants/bundled/bundle", Some(apply(true)))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(calls(&gw, &bundled).await, Some(1));
    assert_eq!(calls(&gw, &bundled).await, Some(2));
    let (status, body) = gw
        .admin("PUT", "/tenants/bundled/bundle", Some(apply(false)))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(calls(&gw, &bundled).await, Some(1));
    assert_eq!(calls(&gw, &bundled).await, Some(1));
}
