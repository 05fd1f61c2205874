//! The in-process harness: a gateway built from a config string and served on an
//! ephemeral port, mock providers on their own ports, and a client for both APIs and
//! the admin API. Everything runs inside the test's tokio runtime.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::config::Config;
use tollgate::mock::{Flavor, MockConfig};
use tollgate::server::Gateway;

/// The platform admin token every test gateway is built with.
pub const ADMIN: &str = "in-process-admin-token";

/// A directory removed when the test ends.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tollgate-it-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A `[[providers]]` block for `id` of `kind` at `base_url` (an `openai` one lists
/// `gpt-4o` as its model).
pub fn provider(id: &str, kind: &str, base_url: &str) -> String {
    let models = if kind == "openai" {
        "models = [\"gpt-4o\"]\n"
    } else {
        ""
    };
    format!(
        "\n[[providers]]\nid = \"{id}\"\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\n{models}"
    )
}

/// Where `make plugins` put the first-party plugins (`target/wasm32-wasip2/release`),
/// found from the test binary's own path so a custom target directory works too.
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let found = exe
        .ancestors()
        .map(|a| a.join("wasm32-wasip2/release"))
        .find(|d| {
            d.join("tollgate_chaos.wasm").is_file()
                && d.join("tollgate_model_router.wasm").is_file()
        });
    match found {
        Some(d) => d,
        None => panic!(
            "the first-party plugins are not built: run `make plugins` \
             (cargo build --release --target wasm32-wasip2 -p tollgate-chaos ...) first"
        ),
    }
}

fn http() -> reqwest::Client {
    tollgate::providers::client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A built-in mock provider on an ephemeral port.
pub struct MockUpstream {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    task: JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a mock named `name` speaking `flavor`; requests must carry `api_key` when set.
    pub async fn start(name: &str, flavor: Flavor, api_key: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let url = format!("http://{}", listener.local_addr().expect("mock address"));
        let cfg = MockConfig {
            name: name.into(),
            api_key: api_key.map(str::to_string),
            flavor,
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            let _ = tollgate::mock::serve(listener, cfg).await;
        });
        Self { url, task }
    }

    /// Scripts the mock's next answers (`times` of them, or all when absent).
    pub async fn behave(&self, behavior: Value) {
        let r = http()
            .post(format!("{}/_mock/behavior", self.url))
            .header("content-type", "application/json")
            .body(behavior.to_string())
            .send()
            .await
            .expect("script the mock");
        assert!(r.status().is_success(), "mock refused {behavior}");
    }

    /// The requests the mock received, oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        let resp = http()
            .get(format!("{}/_mock/requests", self.url))
            .send()
            .await
            .expect("mock requests");
        let v = json_body(resp).await;
        match v {
            Value::Array(a) => a,
            other => other
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway in front of two mock providers: `anthropic` (Anthropic API) and `openai`
/// (OpenAI API, model `gpt-4o`).
pub struct BothApis {
    /// The gateway.
    pub gw: TestGateway,
    /// The Anthropic mock.
    pub anth: MockUpstream,
    /// The OpenAI mock.
    pub oai: MockUpstream,
}

impl BothApis {
    /// Starts both mocks and a gateway with their two providers followed by `rest`
    /// (more providers, tenants).
    pub async fn start(label: &str, rest: &str) -> Self {
        let anth = MockUpstream::start("anth", Flavor::Anthropic, None).await;
        let oai = MockUpstream::start("oai", Flavor::OpenAi, None).await;
        let body = format!(
            "{}{}\n{rest}",
            provider("anthropic", "anthropic", &anth.url),
            provider("openai", "openai", &oai.url)
        );
        Self {
            gw: TestGateway::start(label, &body).await,
            anth,
            oai,
        }
    }
}

/// `body` with what the harness adds: a listener, the data dir and the plugin dir.
fn config_text(dir: &TempDir, body: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nplugin_dir = {:?}\n{body}\n",
        dir.0.join("data").display().to_string(),
        plugin_dir().display().to_string(),
    )
}

/// A gateway served in process.
pub struct TestGateway {
    /// Base URL of its listener.
    pub url: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    config: String,
    dir: TempDir,
}

impl TestGateway {
    /// Builds and serves a gateway from `body` (providers, tenants and any other
    /// section); the harness adds the data dir, the plugin dir and a fast log flush.
    pub async fn start(label: &str, body: &str) -> Self {
        let dir = TempDir::new(label);
        let text = config_text(&dir, body);
        let text = if text.contains("[logs]") {
            text
        } else {
            format!("{text}\n[logs]\nflush_ms = 20\n")
        };
        Self::serve(dir, text).await
    }

    async fn serve(dir: TempDir, config: String) -> Self {
        let cfg = Config::parse(&config, "in-process test config").expect("valid test config");
        let gateway = Gateway::build(cfg, ADMIN.into())
            .await
            .expect("gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = rx.await;
        }));
        Self {
            url,
            client: http(),
            shutdown: Some(tx),
            task: Some(task),
            config,
            dir,
        }
    }

    /// Stops cleanly and starts again on the same config and data directory (on a
    /// new port).
    pub async fn restart(mut self) -> Self {
        self.stop_serving().await;
        let config = std::mem::take(&mut self.config);
        let dir = TempDir(std::mem::take(&mut self.dir.0));
        Self::serve(dir, config).await
    }

    /// Drains in-flight requests and writes pending logs; fails the test when the
    /// shutdown is not clean.
    async fn stop_serving(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("clean shutdown");
        }
    }

    /// The HTTP client the harness uses.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// An admin API call with `token`: status and JSON body (`null` when not JSON).
    pub async fn admin_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}/admin/v1{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("admin call");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// An admin API call as the platform admin.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.admin_as(ADMIN, method, path, body).await
    }

    /// A new API key of `tenant` (its secret).
    pub async fn key(&self, tenant: &str) -> String {
        let (status, body) = self
            .admin(
                "POST",
                &format!("/tenants/{tenant}/keys"),
                Some(json!({"name": format!("{tenant}-key")})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().expect("secret").to_string()
    }

    /// POSTs an Anthropic Messages request.
    pub async fn messages(&self, key: &str, body: Value) -> reqwest::Response {
        self.messages_request(key, body)
            .send()
            .await
            .expect("messages call")
    }

    /// POSTs an Anthropic Messages request carrying `metadata` as `x-portkey-metadata`.
    pub async fn messages_with_metadata(
        &self,
        key: &str,
        metadata: &str,
        body: Value,
    ) -> reqwest::Response {
        self.messages_request(key, body)
            .header("x-portkey-metadata", metadata)
            .send()
            .await
            .expect("messages call")
    }

    fn messages_request(&self, key: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/messages", self.url))
            .bearer_auth(key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// POSTs an OpenAI Chat Completions request.
    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("chat call")
    }

    /// The log row of `request_id`, which must be written within ten seconds.
    pub async fn wait_log(&self, request_id: &str) -> Value {
        for _ in 0..500 {
            let (status, body) = self
                .admin("GET", &format!("/logs?request_id={request_id}"), None)
                .await;
            assert_eq!(status, 200, "{body}");
            if let Some(row) = body["data"].as_array().and_then(|d| d.first()) {
                return row.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no log row for {request_id}");
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A response's body as JSON; fails the test when it is not JSON.
pub async fn json_body(resp: reqwest::Response) -> Value {
    let text = resp.text().await.expect("response body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The request id a response carries.
pub fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id header")
        .to_string()
}

/// A short Anthropic Messages body.
pub fn ask(text: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]})
}

/// A model-router tenant plugin entry routing by `config`.
pub fn router(config: Value) -> String {
    format!(
        "[[tenants.plugins]]\nname = \"model-router\"\nconfig = {}\n",
        toml_inline(&config)
    )
}

/// A JSON value as a TOML inline value.
pub fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{k:?} = {}", toml_inline(x)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(toml_inline).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}
