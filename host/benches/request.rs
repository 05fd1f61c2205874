//! One whole request through the gateway's router, in process: the front door (request
//! id and client gate), key auth, metadata, the tenant's plugin chain (none, or
//! metadata-policy + model-router + budget-limit), ledger admission and settlement,
//! forwarding, the answer and the journalled log row. The client side uses no socket;
//! the upstream is the built-in mock on a loopback port, so the figure includes one
//! loopback round trip (the load bench, `make bench-load`, measures the real thing).
//!
//! Needs the first-party plugins built (`make plugins`).

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::path::PathBuf;
use tollgate::config::Config;
use tollgate::mock::{Flavor, MockConfig};
use tollgate::server::{FrontDoor, Gateway};

const ADMIN: &str = "bench-admin-token";

fn plugin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("wasm32-wasip2/release")
}

const PLUGINS: &str = r#"
[[tenants.plugins]]
name = "metadata-policy"
config = { required = ["env", "team"], allowed_values = { env = ["prod", "staging", "dev"] }, team_models = { engineering = ["claude-*"] } }

[[tenants.plugins]]
name = "model-router"
config = { rules = [{ name = "engineering", when = { metadata = { team = { equals = "engineering" } } }, route = { targets = [{ provider = "upstream" }] } }], default = { targets = [{ provider = "upstream" }] } }

[[tenants.plugins]]
name = "budget-limit"
config = { limits = [{ name = "team-daily-cost", scope = "team", metric = "cost", period = "day", limit = 1000000, alert_at = [80, 100] }], rate_limits = [{ name = "key-rpm", scope = "key", requests_per_minute = 100000000 }] }
"#;

fn request(path: &str, key: &str, body: &'static str) -> axum::http::Request<Body> {
    axum::http::Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header(
            "x-portkey-metadata",
            r#"{"user":"dev@acme.com","team":"engineering","env":"prod"}"#,
        )
        .body(Body::from(body))
        .expect("request")
}

async fn send(app: &FrontDoor, req: axum::http::Request<Body>) -> (u16, bytes::Bytes) {
    let resp = app.clone().handle(req).await;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let dir = std::env::temp_dir().join(format!("tollgate-bench-request-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let app = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let upstream = format!("http://{}", listener.local_addr().expect("address"));
        let mock = MockConfig {
            name: "upstream".into(),
            flavor: Flavor::Both,
            ..Default::default()
        };
        tokio::spawn(async move {
            let _ = tollgate::mock::serve(listener, mock).await;
        });
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nplugin_dir = {:?}\n\
             [[providers]]\nid = \"upstream\"\nkind = \"anthropic\"\nbase_url = \"{upstream}\"\n\
             [[tenants]]\nid = \"bare\"\ndefault_provider = \"upstream\"\n\
             [[tenants]]\nid = \"acme\"\ndefault_provider = \"upstream\"\n{PLUGINS}",
            dir.join("data").display().to_string(),
            plugin_dir().display().to_string(),
        );
        let cfg = Config::parse(&text, "bench config").expect("config");
        Gateway::build(cfg, ADMIN.into())
            .await
            .unwrap_or_else(|e| panic!("{e:#}: build the plugins first (make plugins)"))
            .app()
            // A connection's front door: the per-address gate runs as it does served.
            .for_peer(SocketAddr::from(([127, 0, 0, 1], 40_000)))
    });
    let key = |tenant: &str| {
        let req = axum::http::Request::post(format!("/admin/v1/tenants/{tenant}/keys"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"name":"bench"}"#))
            .expect("request");
        let (status, body) = rt.block_on(send(&app, req));
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        v["secret"].as_str().expect("secret").to_string()
    };
    const BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Say hello in five words."}]}"#;
    let mut group = c.benchmark_group("request");
    for (tenant, label) in [
        ("bare", "messages, no plugins"),
        ("acme", "messages, three plugins"),
    ] {
        let secret = key(tenant);
        let (status, body) = rt.block_on(send(&app, request("/v1/messages", &secret, BODY)));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        group.bench_function(label, |b| {
            b.iter(|| rt.block_on(send(&app, request("/v1/messages", &secret, BODY))))
        });
    }
    group.finish();
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
