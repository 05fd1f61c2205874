//! Assembling the gateway from its config (the request path's [`Pipeline`], the admin
//! side's [`ControlPlane`], the HTTP front door's [`DataPlane`]) and running it until a
//! clean shutdown. Nothing else builds these; nothing on the request path imports this.

use crate::auth::preauth::PreAuthGate;
use crate::auth::{AdminTokens, KeyCache};
use crate::budget::{AlertSink, Webhook};
use crate::config::{Config, ProviderKind, TenantConfig};
use crate::control::{ControlPlane, ControlSettings};
use crate::http::DataPlane;
/// What [`Gateway::app`] returns: every route behind the request id and the client gate.
pub use crate::http::front_door::FrontDoor;
use crate::pipeline::{LogSampler, Pipeline};
use crate::plugins::{ConfiguredPlugin, PluginRuntime, SandboxLimits};
use crate::pricing::Pricing;
use crate::providers::Providers;
use crate::store::Store;
use crate::tenancy::{
    Pinned, Platform, TenantDirectory, TenantLayer, TenantRuntime, tenant_sandbox,
};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
        Some(
            cfg.plugin_cache_dir
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join("plugin-cache")),
        ),
    )
    .context("starting the plugin runtime")?
    .with_output_limits(crate::plugins::OutputLimits::from_config(cfg))
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
    sandbox: &Arc<crate::plugins::TenantSandbox>,
) -> anyhow::Result<Vec<ConfiguredPlugin>> {
    let mut plugins = Vec::with_capacity(t.plugins.len());
    for (i, p) in t.plugins.iter().enumerate() {
        let label = p.label();
        let path = match (&p.name, &p.path) {
            (Some(name), _) => crate::plugins::first_party_path(plugin_dir, name),
            (None, Some(path)) => path.clone(),
            (None, None) => anyhow::bail!("tenants.{}.plugins[{i}]: no name or path", t.id),
        };
        let loaded = rt
            .load_file(&label, &path)
            .await
            .with_context(|| format!("tenant '{}' plugins[{i}]", t.id))?;
        let config = p.config_json();
        let prepared = rt
            .validate_config(&loaded, &label, &config, Some(sandbox.clone()))
            .await
            .with_context(|| format!("tenant '{}' plugins[{i}]", t.id))?;
        tracing::info!(tenant = %t.id, plugin = %label, version = %loaded.info.version, contract = loaded.contract, hash = %&loaded.hash[..12], "plugin loaded");
        plugins.push(ConfiguredPlugin {
            label: Arc::from(label.as_str()),
            plugin: loaded,
            config: Arc::from(config.as_str()),
            prepared,
            fail_open: p.fail_open,
            reuse_instance: p.reuse_instance,
            response_stream: p.response_stream,
        });
    }
    crate::plugins::budget_prepared(&t.id, &mut plugins);
    Ok(plugins)
}

/// A ready-to-serve gateway.
pub struct Gateway {
    /// The request path's state.
    pub pipeline: Arc<Pipeline>,
    /// The admin side's state.
    pub control: Arc<ControlPlane>,
    /// What the HTTP front door adds (client gate, body limits).
    pub http: Arc<DataPlane>,
    /// The validated configuration it was built from.
    pub config: Config,
    log_writer: crate::store::LogWriter,
    shipper: Option<crate::store::postgres::ship::Shipper>,
    _mock: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Opens the store, loads every plugin, starts the embedded mock if a provider uses it,
    /// and restores the stored bundles: after this, the gateway can serve.
    pub async fn build(cfg: Config, admin_token: String) -> anyhow::Result<Self> {
        let mut store = Store::open(&cfg.data_dir)
            .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
        if let crate::config::StoreKind::Postgres = cfg.store.kind {
            let url = cfg.store.url.as_deref().unwrap_or_default();
            let pg = crate::store::postgres::PgControl::connect(
                url,
                cfg.store.pool_size,
                std::time::Duration::from_millis(cfg.store.timeout_ms),
            )
            .await
            .context("connecting to PostgreSQL ([store] url)")?;
            store = store.with_postgres(pg);
        }
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
        let plugin_dir = cfg
            .plugin_dir
            .clone()
            .unwrap_or_else(crate::plugins::default_plugin_dir);
        let mut runtimes = HashMap::new();
        for t in &cfg.tenants {
            store
                .ensure_tenant(&t.id, t.name.as_deref().unwrap_or(&t.id))
                .await?;
            let sandbox = tenant_sandbox(&cfg.sandbox, Some(&t.sandbox));
            let pinned = Pinned {
                plugins: build_chain(&plugins, &plugin_dir, t, &sandbox).await?,
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
                &Platform::default(),
                Arc::new(pinned),
                layer,
                Some(sandbox),
                t.budget_admit.unwrap_or(cfg.budgets.admit),
            );
            runtimes.insert(t.id.clone(), Arc::new(rt));
        }
        let tenants = TenantDirectory::new(
            runtimes,
            TenantRuntime::empty(cfg.budgets.admit),
            cfg.sandbox.clone(),
            cfg.tenants
                .iter()
                .map(|t| (t.id.clone(), t.sandbox.clone()))
                .collect(),
        );
        let keys = KeyCache::load(&store).await?;
        let admin_tokens = AdminTokens::new(store.admin_tokens().await?);
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
        let fleet = match cfg.ledger.kind {
            crate::config::LedgerKind::Memory => None,
            crate::config::LedgerKind::Redis => {
                let sink = alerts.clone();
                let fleet = crate::ledger::fleet::FleetLedger::connect(
                    cfg.ledger
                        .fleet_options(&cfg.tenants, cfg.budgets.exact_rate_limit_max),
                    Arc::new(move |fired| sink.send(fired)),
                )
                .map_err(anyhow::Error::msg)?;
                // Windows Redis starts counting late read their past from the shared log.
                if let Some(pg) = store.postgres() {
                    fleet.set_history(pg.clone());
                }
                fleet.start();
                Some(fleet)
            }
        };
        let metrics = crate::telemetry::Metrics::new();
        let mut writer_opts = writer_options(&cfg, &ledger, &metrics, journal_dir);
        // A fleet replica ships its local log rows to PostgreSQL, where every replica
        // reads them; the writer nudges the shipper after each batch.
        let shipper = match store.postgres() {
            Some(pg) => {
                let shipper = crate::store::postgres::ship::start(
                    pg.clone(),
                    store.path(),
                    crate::store::postgres::ship::ShipOptions {
                        max_backlog: cfg.store.log_backlog,
                        retention: retention(&cfg),
                    },
                )
                .context("starting the request log shipping to PostgreSQL")?;
                writer_opts.observers.push(Box::new(shipper.nudge()));
                Some(shipper)
            }
            None => None,
        };
        let log_writer = store.log_writer(writer_opts)?;
        let default_provider = cfg
            .default_provider
            .clone()
            .or_else(|| (cfg.providers.len() == 1).then(|| cfg.providers[0].id.clone()));
        let pipeline = Arc::new(Pipeline {
            plugins,
            pricing,
            ledger,
            fleet,
            alerts,
            usage_keys: cfg
                .usage
                .metadata_keys
                .iter()
                .map(|k| Arc::from(k.as_str()))
                .collect(),
            providers,
            keys,
            logs: log_writer.sender(),
            default_provider,
            tenants,
            metrics,
            unauthenticated_log: LogSampler::new(cfg.logs.unauthenticated_per_s),
            capture_tenants: cfg
                .tenants
                .iter()
                .filter(|t| t.capture_bodies)
                .map(|t| t.id.clone())
                .collect(),
            max_captured_bytes: cfg.logs.max_captured_bytes,
            afterwork: tokio_util::task::TaskTracker::new(),
        });
        let control = Arc::new(ControlPlane::new(
            pipeline.clone(),
            store,
            admin_tokens,
            ControlSettings {
                admin_token,
                plugin_dir,
                config_tenants: cfg
                    .tenants
                    .iter()
                    .map(|t| (t.id.clone(), t.clone()))
                    .collect(),
                max_component_bytes: cfg.sandbox.max_component_bytes,
                metrics_public: cfg.metrics.public,
                metrics_budget_series: cfg.metrics.max_budget_series_per_tenant,
                // Admin calls queue behind each other, not behind the tenant's traffic.
                admin_queue: Duration::from_millis(cfg.sandbox.queue_ms)
                    .max(Duration::from_secs(10)),
            },
        ));
        let http = Arc::new(DataPlane {
            pipeline: pipeline.clone(),
            preauth: PreAuthGate::new(cfg.server.max_unauthenticated_per_client),
            max_body_bytes: cfg.max_body_bytes,
            body_read_timeout: Duration::from_millis(cfg.server.body_read_timeout_ms),
        });
        // Bundles applied through the admin API outlive restarts: they replace the
        // tenants' own layers and the platform's.
        crate::bundles::activate_stored(&control)
            .await
            .context("activating stored policy bundles")?;
        if let Some(pg) = control.store.postgres() {
            crate::replicas::start(
                control.clone(),
                pg.clone(),
                Duration::from_millis(cfg.store.resync_ms),
            );
        }
        Ok(Self {
            pipeline,
            control,
            http,
            config: cfg,
            log_writer,
            shipper,
            _mock: mock,
        })
    }

    /// Every route of the gateway behind its front door: the data plane, the admin API
    /// and `/metrics`, the console; the fallbacks answer in the client's API shape;
    /// every response gets a request id; unauthenticated requests are capped per
    /// client address ([`FrontDoor`]).
    pub fn app(&self) -> FrontDoor {
        let routes = crate::http::router(self.http.clone())
            .merge(crate::admin::router(self.control.clone()))
            .merge(crate::console::router())
            .fallback(crate::http::not_found)
            .method_not_allowed_fallback(crate::http::method_not_allowed)
            .layer(axum::extract::DefaultBodyLimit::max(
                self.config.max_body_bytes,
            ));
        FrontDoor::new(
            routes,
            self.http.preauth.clone(),
            self.pipeline.metrics.clone(),
        )
    }

    /// Serves on `listener` until `shutdown` resolves (see [`shutdown_signal`]), then
    /// drains in-flight requests and writes every pending log row.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.app();
        crate::http::listener::serve(
            listener,
            app,
            &self.config.server,
            self.pipeline.metrics.clone(),
            shutdown,
        )
        .await
        .context("serving")?;
        tracing::info!("shutting down: writing pending request logs");
        // Streams that ended just now may still be with their observing guardrails:
        // their rows (and settlements) come before the last flush.
        self.pipeline.afterwork.close();
        if tokio::time::timeout(Duration::from_secs(5), self.pipeline.afterwork.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "guardrails still observing streams after 5 s; their requests are logged as cut"
            );
        }
        if let Some(fleet) = &self.pipeline.fleet {
            // Settlements still on their way to Redis are usage the fleet must count.
            fleet.flush(Duration::from_secs(5)).await;
        }
        let Self {
            pipeline,
            control,
            http,
            log_writer,
            shipper,
            ..
        } = self;
        drop((pipeline, control, http));
        tokio::task::spawn_blocking(move || log_writer.shutdown()).await?;
        if let Some(shipper) = shipper {
            shipper.finish(Duration::from_secs(5)).await;
        }
        Ok(())
    }
}

/// How long request logs are kept, per tenant.
fn retention(cfg: &Config) -> crate::store::Retention {
    crate::store::Retention {
        default_days: cfg.logs.retention_days,
        tenants: cfg
            .tenants
            .iter()
            .filter_map(|t| t.log_retention_days.map(|d| (t.id.clone(), d)))
            .collect(),
        keep_newest_row: cfg.store.kind == crate::config::StoreKind::Postgres,
    }
}

/// The log writer's settings for `cfg`, feeding the metrics (and the OTLP exporter when
/// configured) from every written row.
fn writer_options(
    cfg: &Config,
    ledger: &Arc<crate::ledger::Ledger>,
    metrics: &Arc<crate::telemetry::Metrics>,
    journal_dir: std::path::PathBuf,
) -> crate::store::WriterOptions {
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
    crate::store::WriterOptions {
        batch_size: cfg.logs.batch_size,
        flush: Duration::from_millis(cfg.logs.flush_ms),
        ledger: ledger.clone(),
        retention: retention(cfg),
        observers,
        max_queued: cfg.logs.max_queued_rows,
        journal_dir: Some(journal_dir),
        counters: metrics.writer.clone(),
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
