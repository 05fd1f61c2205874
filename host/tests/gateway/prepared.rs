//! Prepared configs: what a plugin keeps when the host checks its config reaches every
//! later call of that tenant's plugin, and only that; more than the host keeps refuses
//! the config.

use crate::support::{MockUpstream, TestGateway, ask, json_body, provider, request_id};
use serde_json::Value;
use tollgate::mock::Flavor;

fn tenant(id: &str, mode: &str, size: u32) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
[[tenants.plugins]]
name = "hostile"
config = {{ mode = "{mode}", size = {size} }}
"#
    )
}

/// The `prepared.bytes` label of the request's log row.
async fn prepared_label(gw: &TestGateway, id: &str) -> Value {
    let row = gw.wait_log(id).await;
    let labels = &row["decisions"][0]["annotations"];
    labels
        .as_array()
        .and_then(|a| a.iter().find(|l| l[0] == "prepared.bytes"))
        .map(|l| l[1].clone())
        .unwrap_or_else(|| panic!("no prepared.bytes label in {row}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_reads_back_what_its_config_check_kept() {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let mut cfg = format!(
        "default_provider = \"up\"\n{}",
        provider("up", "anthropic", &up.url)
    );
    cfg.push_str(&tenant("small", "prepared-probe", 500));
    cfg.push_str(&tenant("large", "prepared-probe", 1 << 20));
    cfg.push_str(&tenant("none", "allow", 500));
    let gw = TestGateway::start("prepared", &cfg).await;
    for (tenant, expected) in [("small", "500"), ("large", "1048576")] {
        let key = gw.key(tenant).await;
        for _ in 0..2 {
            let resp = gw.messages(&key, ask("hi")).await;
            assert_eq!(resp.status(), 200, "{tenant}");
            let id = request_id(&resp);
            let _: Value = json_body(resp).await;
            assert_eq!(prepared_label(&gw, &id).await, expected, "{tenant}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_the_host_keeps_refuses_the_config() {
    let why = TestGateway::refused(
        "prepared-big",
        &tenant("big", "prepared-probe", (1 << 20) + 1),
    )
    .await;
    assert!(
        why.contains(
            "the plugin prepared 1048577 bytes from this config; the host keeps at most 1048576"
        ),
        "{why}"
    );
}
