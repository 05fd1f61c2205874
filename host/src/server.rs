//! Assembling the gateway from its config and running it until a clean shutdown.

use crate::auth::KeyCache;
use crate::budget::{AlertSink, Webhook};
use crate::config::{Config, ProviderKind, TenantConfig};
use crate::ledger::Ledger;
use crate::plugins::{ConfiguredPlugin, PluginRuntime, PolicyChain, SandboxLimits, TenantSandbox};
use crate::pricing::Pricing;
use crate::providers::Providers;
use crate::store::{LogSender, Store};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Rules the operator pins on one tenant: plugins that run for every request of the
/// tenant after the platform's and before the tenant's own, and the providers and
/// models it may be served by. A tenant's bundle cannot change them; only the config
/// file or the platform bundle (platform token) can.
#[derive(Clone, Debug, Default)]
pub struct Pinned {
    pub plugins: Vec<ConfiguredPlugin>,
    /// Providers the tenant may be served by (`None`: any configured provider).
    pub allowed_providers: Option<Vec<String>>,
    /// Model globs the tenant may be served (`None`: any model).
    pub allowed_models: Option<Vec<String>>,
    /// Where the rules come from: `config`, or `platform bundle v<n>`.
    pub source: String,
}

impl Pinned {
    /// Whether the tenant may be served `model` by `provider`; else why not.
    pub fn allows(&self, provider: &str, model: &str) -> Result<(), String> {
        self.allows_provider(provider)?;
        if let Some(m) = &self.allowed_models
            && !m.iter().any(|g| crate::glob::matches(g, model))
        {
            return Err(format!(
                "model '{model}' is not allowed for this tenant (allowed: {})",
                m.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether the tenant may be served by `provider`; else why not.
    pub fn allows_provider(&self, provider: &str) -> Result<(), String> {
        match &self.allowed_providers {
            Some(p) if !p.iter().any(|a| a == provider) => Err(format!(
                "provider '{provider}' is not allowed for this tenant (allowed: {})",
                p.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// Whether the pins restrict anything.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty() && self.allowed_providers.is_none() && self.allowed_models.is_none()
    }
}

/// What the gateway knows about one tenant at request time: one immutable snapshot per
/// bundle activation, so a request keeps the version it started with.
#[derive(Clone, Debug, Default)]
pub struct TenantRuntime {
    /// Provider that serves this tenant unless a route says otherwise.
    pub default_provider: Option<String>,
    /// The platform's plugins, then the operator's pinned ones, then the tenant's own.
    pub chain: PolicyChain,
    /// Models advertised by `GET /v1/models` (empty = the providers' lists).
    pub models: Vec<String>,
    /// The tenant bundle version in force (`None`: the config file's chain).
    pub version: Option<u32>,
    /// The platform bundle version in force, if any.
    pub platform_version: Option<u32>,
    /// The tenant's own plugins (the chain without the platform's and the pinned ones).
    pub own: Vec<ConfiguredPlugin>,
    /// The operator's rules for this tenant in force (the platform bundle's section
    /// for it, else the config file's).
    pub pinned: Arc<Pinned>,
    /// The config file's rules for this tenant, in force when the platform bundle has
    /// no section for it.
    config_pinned: Arc<Pinned>,
    /// How the tenant's budget limits admit requests.
    pub admit: crate::ledger::Admit,
}

/// The platform bundle: plugins every tenant's chain starts with, which a tenant's
/// bundle cannot remove, and the rules it pins on single tenants.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    pub plugins: Vec<ConfiguredPlugin>,
    pub version: Option<u32>,
    /// Per-tenant pinned rules, replacing the config file's for those tenants.
    pub pinned: HashMap<String, Arc<Pinned>>,
}

/// The parts of a tenant's runtime that its own bundle decides.
pub struct TenantLayer {
    pub default_provider: Option<String>,
    pub models: Vec<String>,
    pub own: Vec<ConfiguredPlugin>,
    pub version: Option<u32>,
}

impl TenantRuntime {
    /// Tenant `id`'s runtime: `platform`'s plugins, the pinned rules in force (the
    /// platform's section for `id`, else `config_pinned`), then the tenant's `layer`,
    /// run in `sandbox`.
    pub fn compose(
        id: &str,
        platform: &Platform,
        config_pinned: Arc<Pinned>,
        layer: TenantLayer,
        sandbox: Option<Arc<TenantSandbox>>,
        admit: crate::ledger::Admit,
    ) -> Self {
        let pinned = platform
            .pinned
            .get(id)
            .cloned()
            .unwrap_or_else(|| config_pinned.clone());
        let mut all = platform.plugins.clone();
        all.extend(pinned.plugins.iter().cloned());
        all.extend(layer.own.iter().cloned());
        Self {
            default_provider: layer.default_provider,
            chain: PolicyChain::new(all, sandbox),
            models: layer.models,
            version: layer.version,
            platform_version: platform.version,
            own: layer.own,
            pinned,
            config_pinned,
            admit,
        }
    }

    /// The tenant's own layer.
    pub fn layer(&self) -> TenantLayer {
        TenantLayer {
            default_provider: self.default_provider.clone(),
            models: self.models.clone(),
            own: self.own.clone(),
            version: self.version,
        }
    }

    /// The same tenant with another own layer (a replay's candidate), in `sandbox`.
    pub fn with_layer(
        &self,
        id: &str,
        platform: &Platform,
        layer: TenantLayer,
        sandbox: Option<Arc<TenantSandbox>>,
    ) -> Self {
        Self::compose(
            id,
            platform,
            self.config_pinned.clone(),
            layer,
            sandbox,
            self.admit,
        )
    }

    /// The same tenant under another platform bundle.
    fn recompose(&self, id: &str, platform: &Platform) -> Self {
        Self::compose(
            id,
            platform,
            self.config_pinned.clone(),
            self.layer(),
            self.chain.sandbox().cloned(),
            self.admit,
        )
    }

    /// The same chain in another tenant's sandbox.
    fn for_sandbox(&self, sandbox: Arc<TenantSandbox>) -> Self {
        let mut rt = self.clone();
        rt.chain = self.chain.with_sandbox(sandbox);
        rt
    }
}

/// Every tenant's current runtime and the platform bundle they share.
#[derive(Default)]
struct Tenants {
    by_id: HashMap<String, Arc<TenantRuntime>>,
    platform: Platform,
    /// Tenants with no config and no bundle: the platform's plugins only.
    no_tenant: Arc<TenantRuntime>,
}

/// Shared state of the running gateway.
pub struct AppState {
    pub plugins: Arc<PluginRuntime>,
    /// Model prices, for every request's cost and reservation estimate.
    pub pricing: Pricing,
    /// Usage counters per scope and window, backed by the store.
    pub ledger: Arc<Ledger>,
    /// Where crossed budget thresholds go.
    pub alerts: AlertSink,
    /// Metadata keys the ledger counts for every request.
    pub usage_keys: Vec<Arc<str>>,
    pub providers: Providers,
    pub keys: KeyCache,
    pub store: Store,
    pub logs: LogSender,
    pub default_provider: Option<String>,
    pub admin_token: String,
    pub max_body_bytes: usize,
    /// Where first-party plugins (`name = "..."`) are found.
    pub plugin_dir: PathBuf,
    /// The config file's tenants: what a bundle that sets no default provider or
    /// models falls back to.
    pub config_tenants: HashMap<String, TenantConfig>,
    /// Tenant admin tokens (the platform's is `admin_token`).
    pub admin_tokens: crate::admin::AdminTokens,
    /// Serialises bundle activations per scope (admin path only; never held by
    /// requests, and never across scopes).
    bundle_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sandbox limits every tenant starts from.
    pub sandbox: crate::config::SandboxConfig,
    /// Request, plugin and upstream metrics (fed by the log writer).
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Unauthenticated requests in flight per client address.
    pub preauth: Arc<crate::http::client_gate::PreAuthGate>,
    /// Longest a request body may take to arrive once its key is accepted.
    pub body_read_timeout: Duration,
    /// Lines written to the gateway's log about unauthenticated requests.
    pub unauthenticated_log: crate::pipeline::LogSampler,
    /// `/metrics` answers without the admin token.
    pub metrics_public: bool,
    /// Budget gauge series per tenant in `/metrics`.
    pub metrics_budget_series: usize,
    /// Largest body kept per request when a tenant captures bodies.
    pub max_captured_bytes: usize,
    /// One instance slot per tenant for admin work on its plugins (smoke tests,
    /// replays): under the tenant's limits, apart from its traffic, and never more than
    /// one pool slot per tenant however many admin calls run.
    admin_sandboxes: std::sync::Mutex<HashMap<String, Arc<TenantSandbox>>>,
    /// Tenants with a bundle replay running (one at a time each).
    pub replays: std::sync::Mutex<std::collections::HashSet<String>>,
    tenants: RwLock<Tenants>,
}

/// A tenant's sandbox share from the gateway's `[sandbox]` and the tenant's own limits.
pub fn tenant_sandbox(
    base: &crate::config::SandboxConfig,
    own: Option<&crate::config::TenantSandboxConfig>,
) -> Arc<TenantSandbox> {
    Arc::new(TenantSandbox::new(
        tenant_limits(base, own),
        own.and_then(|o| o.max_instances)
            .unwrap_or_else(|| base.tenant_default_instances()),
        Duration::from_millis(base.queue_ms),
    ))
}

/// A tenant's per-call limits: its own where set, else the gateway's.
fn tenant_limits(
    base: &crate::config::SandboxConfig,
    own: Option<&crate::config::TenantSandboxConfig>,
) -> SandboxLimits {
    let deadline_ms = own.and_then(|o| o.deadline_ms).unwrap_or(base.deadline_ms);
    let memory_mib = own.and_then(|o| o.memory_mib).unwrap_or(base.memory_mib);
    SandboxLimits {
        deadline: Duration::from_millis(deadline_ms),
        memory_bytes: (memory_mib as usize) << 20,
    }
}

impl AppState {
    /// The runtime of `tenant_id`; tenants created through the admin API and absent from
    /// the config get the platform's plugins and the default provider, in a sandbox
    /// share of their own. The lock is held only to clone an `Arc` (or, once per new
    /// tenant, to add its entry).
    pub fn tenant(&self, tenant_id: &str) -> Arc<TenantRuntime> {
        {
            let t = crate::sync::read(&self.tenants);
            if let Some(rt) = t.by_id.get(tenant_id) {
                return rt.clone();
            }
        }
        let mut t = crate::sync::write(&self.tenants);
        if let Some(rt) = t.by_id.get(tenant_id) {
            return rt.clone();
        }
        let rt = if t.platform.pinned.contains_key(tenant_id) {
            Arc::new(TenantRuntime::compose(
                tenant_id,
                &t.platform,
                Arc::default(),
                t.no_tenant.layer(),
                Some(self.sandbox_of(tenant_id)),
                t.no_tenant.admit,
            ))
        } else {
            Arc::new(t.no_tenant.for_sandbox(self.sandbox_of(tenant_id)))
        };
        t.by_id.insert(tenant_id.to_string(), rt.clone());
        rt
    }

    /// Every tenant with a runtime so far (configured, bundled or seen), by id.
    pub fn tenant_runtimes(&self) -> Vec<(String, Arc<TenantRuntime>)> {
        let t = crate::sync::read(&self.tenants);
        let mut v: Vec<_> = t
            .by_id
            .iter()
            .map(|(id, rt)| (id.clone(), rt.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The slot admin work on `tenant_id`'s plugins runs in (see `admin_sandboxes`).
    pub fn admin_sandbox(&self, tenant_id: &str) -> Arc<TenantSandbox> {
        let mut m = crate::sync::lock(&self.admin_sandboxes);
        m.entry(tenant_id.to_string())
            .or_insert_with(|| {
                let own = self.config_tenants.get(tenant_id).map(|t| &t.sandbox);
                // Admin calls queue behind each other, not behind the tenant's traffic.
                let queue =
                    Duration::from_millis(self.sandbox.queue_ms).max(Duration::from_secs(10));
                Arc::new(TenantSandbox::new(
                    tenant_limits(&self.sandbox, own),
                    1,
                    queue,
                ))
            })
            .clone()
    }

    /// The lock serialising bundle activations of one scope (a tenant id, or the
    /// platform's scope name).
    pub fn bundle_lock(&self, scope: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = crate::sync::lock(&self.bundle_locks);
        m.entry(scope.to_string()).or_default().clone()
    }

    /// Whether the admin enabled body capture for `tenant_id`.
    pub fn captures_bodies(&self, tenant_id: &str) -> bool {
        self.config_tenants
            .get(tenant_id)
            .is_some_and(|t| t.capture_bodies)
    }

    /// A new sandbox share for `tenant_id`, from its config.
    fn sandbox_of(&self, tenant_id: &str) -> Arc<TenantSandbox> {
        tenant_sandbox(
            &self.sandbox,
            self.config_tenants.get(tenant_id).map(|t| &t.sandbox),
        )
    }

    /// The platform bundle in force.
    pub fn platform(&self) -> Platform {
        let t = crate::sync::read(&self.tenants);
        t.platform.clone()
    }

    /// Activates a tenant's new own layer (composed on the current platform and the
    /// operator's pinned rules): the next request uses it, requests in flight keep theirs.
    pub fn set_tenant(&self, tenant_id: &str, layer: TenantLayer) {
        let mut t = crate::sync::write(&self.tenants);
        // The tenant keeps its slots across versions: requests of the old version
        // still hold some.
        let current = t.by_id.get(tenant_id).cloned();
        let sandbox = current
            .as_ref()
            .and_then(|rt| rt.chain.sandbox().cloned())
            .unwrap_or_else(|| self.sandbox_of(tenant_id));
        let (config_pinned, admit) = match &current {
            Some(rt) => (rt.config_pinned.clone(), rt.admit),
            None => (Arc::default(), t.no_tenant.admit),
        };
        let rt = TenantRuntime::compose(
            tenant_id,
            &t.platform,
            config_pinned,
            layer,
            Some(sandbox),
            admit,
        );
        t.by_id.insert(tenant_id.to_string(), Arc::new(rt));
    }

    /// Activates a new platform bundle: every tenant's chain is recomposed at once.
    pub fn set_platform(&self, platform: Platform) {
        let mut t = crate::sync::write(&self.tenants);
        let mut by_id: HashMap<String, Arc<TenantRuntime>> = t
            .by_id
            .iter()
            .map(|(id, rt)| (id.clone(), Arc::new(rt.recompose(id, &platform))))
            .collect();
        // Tenants the new bundle pins that have not been seen yet get a runtime now.
        for id in platform.pinned.keys() {
            if !by_id.contains_key(id) {
                let rt = TenantRuntime::compose(
                    id,
                    &platform,
                    Arc::default(),
                    t.no_tenant.layer(),
                    Some(self.sandbox_of(id)),
                    t.no_tenant.admit,
                );
                by_id.insert(id.clone(), Arc::new(rt));
            }
        }
        t.by_id = by_id;
        t.no_tenant = Arc::new(t.no_tenant.recompose("", &platform));
        t.platform = platform;
    }
}

/// Where first-party plugins are looked for when the config names no `plugin_dir`:
/// `$TOLLGATE_PLUGIN_DIR`, then the wasm target dir next to this binary
/// (`target/wasm32-wasip2/release` in a checkout), then `./plugins`.
pub fn default_plugin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TOLLGATE_PLUGIN_DIR") {
        return PathBuf::from(d);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(target) = exe.parent().and_then(Path::parent)
    {
        let dir = target.join("wasm32-wasip2").join("release");
        if dir.is_dir() {
            return dir;
        }
    }
    PathBuf::from("plugins")
}

/// Path of a first-party plugin's wasm file.
pub fn first_party_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("tollgate_{}.wasm", name.replace('-', "_")))
}

/// Builds the plugin runtime for `cfg`.
pub fn plugin_runtime(cfg: &Config) -> anyhow::Result<Arc<PluginRuntime>> {
    let limits = SandboxLimits {
        deadline: Duration::from_millis(cfg.sandbox.deadline_ms),
        memory_bytes: (cfg.sandbox.memory_mib as usize) << 20,
    };
    let largest = cfg
        .tenants
        .iter()
        .filter_map(|t| t.sandbox.memory_mib)
        .map(|m| (m as usize) << 20)
        .max()
        .unwrap_or(0);
    let rt = PluginRuntime::with_pool(
        limits,
        cfg.sandbox.max_instances,
        largest,
        Some(cfg.data_dir.join("plugin-cache")),
    )
    .context("starting the plugin runtime")?
    .with_output_limits(cfg.output_limits())
    .with_compiler(
        crate::plugins::Compiler::isolated_if_possible(
            Duration::from_millis(cfg.sandbox.compile_timeout_ms),
            cfg.sandbox.compile_memory_mib << 20,
        ),
        cfg.sandbox.max_component_bytes,
    );
    Ok(Arc::new(rt))
}

/// Loads, describes and validates one tenant's chain; errors name tenant and plugin.
async fn build_chain(
    rt: &PluginRuntime,
    plugin_dir: &Path,
    t: &TenantConfig,
) -> anyhow::Result<Vec<ConfiguredPlugin>> {
    let mut plugins = Vec::with_capacity(t.plugins.len());
    for (i, p) in t.plugins.iter().enumerate() {
        let label = p.label();
        let path = match (&p.name, &p.path) {
            (Some(name), _) => first_party_path(plugin_dir, name),
            (None, Some(path)) => path.clone(),
            (None, None) => anyhow::bail!("tenants.{}.plugins[{i}]: no name or path", t.id),
        };
        let loaded = rt
            .load_file(&label, &path)
            .await
            .with_context(|| format!("tenant '{}' plugins[{i}]", t.id))?;
        let config = p.config_json();
        rt.validate_config(&loaded, &label, &config)
            .await
            .with_context(|| format!("tenant '{}' plugins[{i}]", t.id))?;
        tracing::info!(tenant = %t.id, plugin = %label, version = %loaded.info.version, hash = %&loaded.hash[..12], "plugin loaded");
        plugins.push(ConfiguredPlugin {
            label: Arc::from(label.as_str()),
            plugin: loaded,
            config: Arc::from(config.as_str()),
            fail_open: p.fail_open,
        });
    }
    Ok(plugins)
}

/// A ready-to-serve gateway.
pub struct Gateway {
    pub state: Arc<AppState>,
    pub config: Config,
    log_writer: crate::store::LogWriter,
    _mock: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Opens the store, loads every plugin, starts the embedded mock if a provider uses it.
    pub async fn build(cfg: Config, admin_token: String) -> anyhow::Result<Self> {
        let store = Store::open(&cfg.data_dir)
            .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
        let (mock_url, mock) = if cfg.providers.iter().any(|p| p.kind == ProviderKind::Mock) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let handle = tokio::spawn(async move {
                let cfg = crate::mock::MockConfig {
                    name: "embedded-mock".into(),
                    ..Default::default()
                };
                if let Err(e) = crate::mock::serve(listener, cfg).await {
                    tracing::error!(error = %e, "embedded mock upstream stopped");
                }
            });
            (Some(url), Some(handle))
        } else {
            (None, None)
        };
        let providers = Providers::from_config(&cfg, mock_url.as_deref())?;
        let plugins = plugin_runtime(&cfg)?;
        let plugin_dir = cfg.plugin_dir.clone().unwrap_or_else(default_plugin_dir);
        let mut tenants = Tenants {
            no_tenant: Arc::new(TenantRuntime {
                admit: cfg.budgets.admit,
                ..TenantRuntime::default()
            }),
            ..Tenants::default()
        };
        for t in &cfg.tenants {
            store.ensure_tenant(&t.id, t.name.as_deref().unwrap_or(&t.id))?;
            let pinned = Pinned {
                plugins: build_chain(&plugins, &plugin_dir, t).await?,
                allowed_providers: t.allowed_providers.clone(),
                allowed_models: t.allowed_models.clone(),
                source: "config".into(),
            };
            let layer = TenantLayer {
                default_provider: t.default_provider.clone(),
                models: t.models.clone(),
                own: Vec::new(),
                version: None,
            };
            let rt = TenantRuntime::compose(
                &t.id,
                &tenants.platform,
                Arc::new(pinned),
                layer,
                Some(tenant_sandbox(&cfg.sandbox, Some(&t.sandbox))),
                t.budget_admit.unwrap_or(cfg.budgets.admit),
            );
            tenants.by_id.insert(t.id.clone(), Arc::new(rt));
        }
        let keys = KeyCache::load(&store)?;
        let admin_tokens = crate::admin::AdminTokens::new(store.admin_tokens_blocking()?);
        let pricing = Pricing::new(&cfg.pricing).map_err(anyhow::Error::msg)?;
        // Rows a previous run journaled but never wrote (it crashed, or its disk was
        // full) go in first, so the ledger below counts them.
        let journal_dir = cfg.data_dir.join("journal");
        store
            .recover_journal(&journal_dir)
            .context("writing request logs left in the usage journal")?;
        let ledger = Arc::new(
            store
                .with_conn_blocking(|c| {
                    crate::ledger::load(c, crate::ids::now_ms(), cfg.budgets.caps())
                        .map_err(Into::into)
                })
                .context("loading the usage ledger")?,
        );
        let mut webhooks = HashMap::new();
        for t in &cfg.tenants {
            if let Some(a) = &t.alerts {
                let secret = a.secret().with_context(|| {
                    format!("tenant '{}': alerts webhook secret is not set", t.id)
                })?;
                webhooks.insert(
                    t.id.clone(),
                    Webhook {
                        url: a.webhook_url.clone(),
                        secret,
                    },
                );
            }
        }
        let alerts = AlertSink::start(store.clone(), webhooks);
        let metrics = crate::telemetry::Metrics::new();
        let mut observers: Vec<Box<dyn crate::store::LogObserver>> =
            vec![Box::new(crate::telemetry::MetricsObserver(metrics.clone()))];
        if let Some(o) = &cfg.otlp {
            observers.push(Box::new(crate::telemetry::otlp::start(
                crate::telemetry::OtlpTarget {
                    endpoint: o.endpoint.clone(),
                    headers: o.headers.clone().into_iter().collect(),
                    service_name: o.service_name.clone(),
                    provider_names: cfg
                        .providers
                        .iter()
                        .map(|p| (p.id.clone(), p.kind.gen_ai_name().to_string()))
                        .collect(),
                },
            )));
            tracing::info!(endpoint = %o.endpoint, "exporting traces over OTLP");
        }
        let retention = crate::store::Retention {
            default_days: cfg.logs.retention_days,
            tenants: cfg
                .tenants
                .iter()
                .filter_map(|t| t.log_retention_days.map(|d| (t.id.clone(), d)))
                .collect(),
        };
        let log_writer = store.log_writer(crate::store::WriterOptions {
            batch_size: cfg.logs.batch_size,
            flush: Duration::from_millis(cfg.logs.flush_ms),
            ledger: ledger.clone(),
            retention,
            observers,
            max_queued: cfg.logs.max_queued_rows,
            journal_dir: Some(journal_dir),
            metrics: metrics.clone(),
        })?;
        let default_provider = cfg
            .default_provider
            .clone()
            .or_else(|| (cfg.providers.len() == 1).then(|| cfg.providers[0].id.clone()));
        let state = Arc::new(AppState {
            plugins,
            pricing,
            ledger,
            alerts,
            usage_keys: cfg
                .usage
                .metadata_keys
                .iter()
                .map(|k| Arc::from(k.as_str()))
                .collect(),
            providers,
            keys,
            store,
            logs: log_writer.sender(),
            default_provider,
            admin_token,
            max_body_bytes: cfg.max_body_bytes,
            plugin_dir,
            config_tenants: cfg
                .tenants
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
            admin_tokens,
            bundle_locks: Default::default(),
            sandbox: cfg.sandbox.clone(),
            metrics,
            preauth: crate::http::client_gate::PreAuthGate::new(
                cfg.server.max_unauthenticated_per_client,
            ),
            body_read_timeout: Duration::from_millis(cfg.server.body_read_timeout_ms),
            unauthenticated_log: crate::pipeline::LogSampler::new(cfg.logs.unauthenticated_per_s),
            metrics_public: cfg.metrics.public,
            metrics_budget_series: cfg.metrics.max_budget_series_per_tenant,
            max_captured_bytes: cfg.logs.max_captured_bytes,
            admin_sandboxes: Default::default(),
            replays: Default::default(),
            tenants: RwLock::new(tenants),
        });
        // Bundles applied through the admin API outlive restarts: they replace the
        // config file's chains.
        crate::bundles::activate_stored(&state)
            .await
            .context("activating stored policy bundles")?;
        Ok(Self {
            state,
            config: cfg,
            log_writer,
            _mock: mock,
        })
    }

    /// Serves on `listener` until `shutdown` resolves (see [`shutdown_signal`]), then
    /// drains in-flight requests and writes every pending log row.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = crate::http::router(self.state.clone());
        crate::http::listener::serve(
            listener,
            app,
            &self.config.server,
            self.state.metrics.clone(),
            shutdown,
        )
        .await
        .context("serving")?;
        tracing::info!("shutting down: writing pending request logs");
        drop(self.state);
        let writer = self.log_writer;
        tokio::task::spawn_blocking(move || writer.shutdown()).await?;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: call it before announcing the listener, so a signal
/// sent right after the announcement still shuts down cleanly.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
