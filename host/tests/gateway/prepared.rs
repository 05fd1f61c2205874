//! Prepared configs: what a plugin keeps when the host checks its config reaches every
//! later call of that tenant's plugin (fresh or warm), and no other tenant's; more than
//! the host keeps is dropped, and the plugin reads its JSON instead.

use crate::support::{MockUpstream, TestGateway, ask, json_body, provider, request_id};
use serde_json::Value;
use tollgate::mock::Flavor;

fn tenant(id: &str, size: u32, extra: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
# Room to copy and parse a megabyte in every hook, on a loaded machine too.
sandbox = {{ deadline_ms = 1000, memory_mib = 32 }}
[[tenants.plugins]]
name = "hostile"
config = {{ mode = "prepared-probe", size = {size} }}
{extra}
"#
    )
}

/// A decision's `prepared.bytes` label (null when it has none).
fn prepared_of(decision: &Value) -> Value {
    decision["annotations"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l[0] == "prepared.bytes"))
        .map_or(Value::Null, |l| l[1].clone())
}

/// The `prepared.bytes` label of the request's log row.
async fn prepared_label(gw: &TestGateway, id: &str) -> Value {
    prepared_of(&gw.wait_log(id).await["decisions"][0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_reads_back_what_its_own_config_check_kept() {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let mut cfg = format!(
        "default_provider = \"up\"\n{}",
        provider("up", "anthropic", &up.url)
    );
    cfg.push_str(&tenant("small", 500, ""));
    cfg.push_str(&tenant("other", 700, ""));
    cfg.push_str(&tenant("warm", 900, "reuse_instance = true"));
    cfg.push_str(&tenant("large", 1 << 20, ""));
    // One byte more than the host keeps: dropped, so the calls parse the JSON.
    cfg.push_str(&tenant("over", (1 << 20) + 1, ""));
    let gw = TestGateway::start("prepared", &cfg).await;
    for (tenant, expected) in [
        ("small", "500"),
        ("other", "700"),
        ("warm", "900"),
        ("large", "1048576"),
        ("over", "none"),
    ] {
        let key = gw.key(tenant).await;
        for _ in 0..3 {
            let resp = gw.messages(&key, ask("hi")).await;
            assert_eq!(resp.status(), 200, "{tenant}");
            let id = request_id(&resp);
            let _: Value = json_body(resp).await;
            assert_eq!(prepared_label(&gw, &id).await, expected, "{tenant}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_keeps_at_most_four_mib_of_prepared_configs() {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let entry = "[[tenants.plugins]]\nname = \"hostile\"\nconfig = { mode = \"prepared-probe\", size = 1048576 }\n";
    let cfg = format!(
        "default_provider = \"up\"\n{}\n[[tenants]]\nid = \"many\"\nsandbox = {{ deadline_ms = 1000, memory_mib = 32 }}\n{}",
        provider("up", "anthropic", &up.url),
        entry.repeat(5)
    );
    let gw = TestGateway::start("prepared-chain", &cfg).await;
    let key = gw.key("many").await;
    let resp = gw.messages(&key, ask("hi")).await;
    let status = resp.status();
    let id = request_id(&resp);
    let body: Value = json_body(resp).await;
    assert_eq!(status, 200, "{body}");
    let row = gw.wait_log(&id).await;
    let seen: Vec<Value> = row["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .take(5) // the policy calls, one per entry
        .map(prepared_of)
        .collect();
    assert_eq!(
        seen,
        ["1048576", "1048576", "1048576", "1048576", "none"],
        "{row}"
    );
}
