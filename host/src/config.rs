//! The gateway's TOML configuration: typed, validated once at load, with errors that
//! name the offending field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file, as given.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The text is not TOML, or does not fit the schema.
    /// toml's message already names the line, column and field.
    #[error("{path}: {message}")]
    Parse {
        /// Where the text came from (a file path, or the `origin` given to `parse`).
        path: String,
        /// toml's error message.
        message: String,
    },
    /// A value parsed but is out of range or inconsistent with the rest.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// Where the text came from (a file path, or the `origin` given to `parse`).
        path: String,
        /// Dotted path of the offending field, e.g. `tenants[0].plugins[1].config`.
        field: String,
        /// What is wrong with it and what would be accepted.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the SQLite store and the compiled-plugin cache.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where first-party plugins (`name = "..."`) are looked up.
    #[serde(default)]
    pub plugin_dir: Option<PathBuf>,
    /// Where compiled plugins are kept between starts (default `<data_dir>/plugin-cache`).
    /// Gateways of one version may share it (files are written whole, then renamed);
    /// its files are loaded as machine code, so the gateway refuses a folder another
    /// user owns or others may write to.
    #[serde(default)]
    pub plugin_cache_dir: Option<PathBuf>,
    /// Provider used when a tenant names none.
    #[serde(default)]
    pub default_provider: Option<String>,
    /// Sandbox limits for every plugin call.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Upstream model providers.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Tenants and their plugin chains.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Request-log writer tuning.
    #[serde(default)]
    pub logs: LogConfig,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Prices (USD per million tokens) that override or extend the shipped table.
    #[serde(default)]
    pub pricing: Vec<crate::pricing::PriceOverride>,
    /// What the usage ledger counts.
    #[serde(default)]
    pub usage: UsageConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// OpenTelemetry trace export (off unless an endpoint is set).
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
    /// Caps on what budgets may make the ledger track, and how limits admit.
    #[serde(default)]
    pub budgets: BudgetsConfig,
    /// Connection and client limits of the listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where budgets and rate limits are counted: this process, or Redis for a fleet.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Where tenants, keys, admin tokens and bundles live: the SQLite file, or
    /// PostgreSQL shared by a fleet.
    #[serde(default)]
    pub store: StoreConfig,
}

/// `[store]`: SQLite under `data_dir` (default), or PostgreSQL for a fleet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    #[serde(default)]
    pub kind: StoreKind,
    /// `postgres://user@host:port/db`; required for `kind = "postgres"`.
    pub url: Option<String>,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Longest wait for a connection; past it an admin write fails with 503.
    #[serde(default = "default_store_timeout_ms")]
    pub timeout_ms: u64,
    /// How often a replica checks the shared change counter, in case it missed a
    /// change notification.
    #[serde(default = "default_resync_ms")]
    pub resync_ms: u64,
    /// Request log rows a replica keeps waiting for PostgreSQL (in its local file)
    /// during an outage; past it the oldest are dropped from the shared log, counted
    /// and logged.
    #[serde(default = "default_log_backlog")]
    pub log_backlog: u64,
}

/// Which store holds the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// `data_dir/tollgate.db` (one gateway).
    #[default]
    Sqlite,
    /// PostgreSQL, shared by a fleet of replicas.
    Postgres,
}

fn default_pool_size() -> usize {
    8
}
fn default_store_timeout_ms() -> u64 {
    2_000
}
fn default_resync_ms() -> u64 {
    2_000
}
fn default_log_backlog() -> u64 {
    1_000_000
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            url: None,
            pool_size: default_pool_size(),
            timeout_ms: default_store_timeout_ms(),
            resync_ms: default_resync_ms(),
            log_backlog: default_log_backlog(),
        }
    }
}

impl StoreConfig {
    fn validate(&self, bad: &impl Fn(String, String) -> ConfigError) -> Result<(), ConfigError> {
        if self.kind == StoreKind::Postgres {
            require_url(
                bad,
                "store.url",
                self.url.as_deref(),
                &["postgres://", "postgresql://"],
                "kind = \"postgres\" (e.g. \"postgres://tollgate@127.0.0.1:5432/tollgate\")",
            )?;
        }
        for (field, v) in [
            ("store.pool_size", self.pool_size as u64),
            ("store.timeout_ms", self.timeout_ms),
            ("store.resync_ms", self.resync_ms),
            ("store.log_backlog", self.log_backlog),
        ] {
            if v == 0 {
                return Err(bad(field.into(), "must be greater than zero".into()));
            }
        }
        Ok(())
    }
}

/// `[ledger]`: the in-process ledger (default), or Redis shared by every replica.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `memory` (default) or `redis`.
    #[serde(default)]
    pub kind: LedgerKind,
    /// `redis://host:port[/db]`; required for `kind = "redis"`.
    pub url: Option<String>,
    /// How long a replica's reservation outlives its last renewal: a replica that
    /// dies holding estimates frees them after this.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Longest wait for a connection to Redis.
    #[serde(default = "default_redis_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for one Redis call, connection included; past it the call fails
    /// as if Redis were down.
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
    /// What a request with budget limits gets while Redis is unreachable, unless its
    /// tenant sets `ledger_unavailable`.
    #[serde(default)]
    pub unavailable: crate::ledger::fleet::FaultMode,
    /// Settlements kept while Redis is unreachable, to count when it returns; past
    /// it the oldest are dropped and counted in `tollgate_ledger_backlog_dropped_total`.
    #[serde(default = "default_ledger_backlog")]
    pub max_backlog: usize,
}

/// Which ledger counts usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerKind {
    /// In this process (one gateway).
    #[default]
    Memory,
    /// In Redis, shared by a fleet of replicas.
    Redis,
}

fn default_lease_ms() -> u64 {
    30_000
}
fn default_redis_connect_ms() -> u64 {
    500
}
fn default_redis_timeout_ms() -> u64 {
    1_000
}
fn default_ledger_backlog() -> usize {
    100_000
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            kind: LedgerKind::Memory,
            url: None,
            lease_ms: default_lease_ms(),
            connect_timeout_ms: default_redis_connect_ms(),
            timeout_ms: default_redis_timeout_ms(),
            unavailable: Default::default(),
            max_backlog: default_ledger_backlog(),
        }
    }
}

/// `[budgets]`: bounds on what budget plugins and client traffic may make the ledger
/// keep, and how a limit admits a request.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Most budget limits one request may be held to (across its budget plugins); a
    /// plugin granting more fails the request with an error naming it.
    #[serde(default = "default_limits_per_request")]
    pub max_limits_per_request: usize,
    /// Distinct (limit, scope value) pairs the ledger tracks per tenant.
    #[serde(default = "default_limits_per_tenant")]
    pub max_limits_per_tenant: usize,
    /// Distinct scope values (teams, users, keys, metadata values) counted per tenant.
    #[serde(default = "default_scopes_per_tenant")]
    pub max_scopes_per_tenant: usize,
    /// Rolling request limits of a minute or an hour up to this cap are exact (one
    /// timestamp per admission).
    #[serde(default = "default_exact_rate_limit_max")]
    pub exact_rate_limit_max: u64,
    /// Admission timestamps kept per tenant across its exact limits (8 bytes each);
    /// past it, limits count sub-buckets until the logs shrink.
    #[serde(default = "default_exact_entries")]
    pub max_exact_entries_per_tenant: usize,
    /// `below_cap` (default: admit while usage is below the cap) or `estimate_fits`
    /// (admit only when usage plus the request's estimate fits under it).
    #[serde(default)]
    pub admit: crate::ledger::Admit,
}

fn default_limits_per_request() -> usize {
    32
}
fn default_limits_per_tenant() -> usize {
    10_000
}
fn default_scopes_per_tenant() -> usize {
    200_000
}
fn default_exact_rate_limit_max() -> u64 {
    10_000
}
fn default_exact_entries() -> usize {
    1_000_000
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            max_limits_per_request: default_limits_per_request(),
            max_limits_per_tenant: default_limits_per_tenant(),
            max_scopes_per_tenant: default_scopes_per_tenant(),
            exact_rate_limit_max: default_exact_rate_limit_max(),
            max_exact_entries_per_tenant: default_exact_entries(),
            admit: crate::ledger::Admit::default(),
        }
    }
}

/// A service URL that `what` requires, with one of `schemes`.
fn require_url(
    bad: &impl Fn(String, String) -> ConfigError,
    field: &str,
    url: Option<&str>,
    schemes: &[&str],
    what: &str,
) -> Result<(), ConfigError> {
    match url {
        None => Err(bad(field.into(), format!("required for {what}"))),
        Some(u) if !schemes.iter().any(|s| u.starts_with(s)) => Err(bad(
            field.into(),
            format!("'{u}' must start with {}", schemes.join(" or ")),
        )),
        Some(_) => Ok(()),
    }
}

impl LedgerConfig {
    /// The fleet ledger's options, with each tenant's own fault outcome.
    pub fn fleet_options(
        &self,
        tenants: &[TenantConfig],
        exact_rate_limit_max: u64,
    ) -> crate::ledger::fleet::FleetOptions {
        crate::ledger::fleet::FleetOptions {
            url: self.url.clone().unwrap_or_default(),
            lease_ms: self.lease_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
            unavailable: self.unavailable,
            tenant_modes: tenants
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.ledger_unavailable?)))
                .collect(),
            max_backlog: self.max_backlog,
            exact_rate_limit_max,
        }
    }

    fn validate(&self, bad: &impl Fn(String, String) -> ConfigError) -> Result<(), ConfigError> {
        if self.kind == LedgerKind::Redis {
            require_url(
                bad,
                "ledger.url",
                self.url.as_deref(),
                &["redis://", "rediss://"],
                "kind = \"redis\" (e.g. \"redis://127.0.0.1:6379\")",
            )?;
        }
        for (field, v) in [
            ("ledger.lease_ms", self.lease_ms),
            ("ledger.connect_timeout_ms", self.connect_timeout_ms),
            ("ledger.timeout_ms", self.timeout_ms),
        ] {
            if v == 0 {
                return Err(bad(field.into(), "must be greater than zero".into()));
            }
        }
        if self.lease_ms < 3 * self.timeout_ms {
            return Err(bad(
                "ledger.lease_ms".into(),
                format!(
                    "{} ms is under three times ledger.timeout_ms ({} ms): a live replica \
                     could not renew its reservations in time",
                    self.lease_ms, self.timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

impl BudgetsConfig {
    /// The ledger's caps.
    pub fn caps(&self) -> crate::ledger::LedgerCaps {
        crate::ledger::LedgerCaps {
            max_limits_per_tenant: self.max_limits_per_tenant,
            max_scopes_per_tenant: self.max_scopes_per_tenant,
            exact_rate_limit_max: self.exact_rate_limit_max,
            max_exact_entries_per_tenant: self.max_exact_entries_per_tenant,
        }
    }
}

/// `[server]`: what one client, or all of them together, may hold of the listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Open connections in all; past it, new connections are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// A connection must send a complete request head within this long of opening or
    /// of its previous response ending (so it is also the keep-alive idle timeout).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Longest a client may take to send a request body once its key is accepted.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Requests from one client address not yet authenticated, at once; more get 429.
    #[serde(default = "default_max_unauthenticated_per_client")]
    pub max_unauthenticated_per_client: usize,
    /// Longest a shutdown waits for requests in flight.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Connections the kernel may hold completed but not yet accepted (capped by
    /// `net.core.somaxconn`). Past it, a burst's handshakes are dropped and retried
    /// seconds later, so the caps above would judge them late.
    #[serde(default = "default_listen_backlog")]
    pub listen_backlog: u32,
}

fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_client() -> usize {
    512
}
fn default_header_read_timeout_ms() -> u64 {
    20_000
}
fn default_body_read_timeout_ms() -> u64 {
    60_000
}
fn default_max_unauthenticated_per_client() -> usize {
    64
}
fn default_drain_timeout_ms() -> u64 {
    30_000
}
fn default_listen_backlog() -> u32 {
    4096
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            max_unauthenticated_per_client: default_max_unauthenticated_per_client(),
            drain_timeout_ms: default_drain_timeout_ms(),
            listen_backlog: default_listen_backlog(),
        }
    }
}

/// `/metrics`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Answer `/metrics` without the platform admin token (label values name tenants,
    /// teams' budgets and models, so it is protected unless this is set).
    #[serde(default)]
    pub public: bool,
    /// Budget gauge series per tenant, its limits closest to their caps first.
    #[serde(default = "default_budget_series")]
    pub max_budget_series_per_tenant: usize,
}

fn default_budget_series() -> usize {
    100
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            public: false,
            max_budget_series_per_tenant: default_budget_series(),
        }
    }
}

/// Where spans go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://otel-collector:4318`; spans are
    /// POSTed as JSON to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// Headers sent with every export (e.g. an API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The resource's `service.name`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_service_name() -> String {
    "tollgate".into()
}

/// The usage ledger's scopes beyond tenant, team, user and key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// Metadata keys whose values get their own counters (e.g. `project`, `env`).
    /// Keys a budget plugin limits are counted too, named here or not.
    #[serde(default)]
    pub metadata_keys: Vec<String>,
}

/// Where a tenant's budget alerts are delivered besides the gateway's log.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// URL that receives each alert as a JSON POST.
    pub webhook_url: String,
    /// HMAC-SHA256 key signing each delivery (`x-tollgate-signature`).
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Environment variable holding the key instead (keeps it out of the file).
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
}

impl AlertConfig {
    /// The signing key, from the file or the environment.
    pub fn secret(&self) -> Option<String> {
        match (&self.webhook_secret, &self.webhook_secret_env) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(var)) => std::env::var(var).ok().filter(|v| !v.is_empty()),
            (None, None) => None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_max_body() -> usize {
    32 * 1024 * 1024
}

/// Limits applied to each plugin call.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// CPU deadline of one plugin call, in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Linear-memory cap of one plugin instance, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Plugin instances that may exist at once across the gateway.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Plugin instances one tenant may hold at once (default: half the CPU cores, at
    /// least one), so one tenant's runaway plugins can occupy neither the whole pool
    /// nor every core. A plugin call takes tens of microseconds, so even one slot
    /// serves thousands of requests a second.
    #[serde(default)]
    pub tenant_max_instances: Option<u32>,
    /// Longest a plugin call waits for an instance slot before its request fails with
    /// 503, in milliseconds.
    #[serde(default = "default_queue_ms")]
    pub queue_ms: u64,
    /// Longest deny message a plugin may return, in bytes (longer ones are cut).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most labels a plugin decision may carry (more are dropped).
    #[serde(default = "default_max_labels")]
    pub max_labels: usize,
    /// Longest label key or value, in bytes (longer ones are cut).
    #[serde(default = "default_max_label_bytes")]
    pub max_label_bytes: usize,
    /// Most lines one plugin call may write to the gateway's log.
    #[serde(default = "default_max_log_lines")]
    pub max_log_lines: u32,
    /// Most bytes one plugin call may write to the gateway's log.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: usize,
    /// Most targets in a route plan (a longer plan fails the request).
    #[serde(default = "default_max_route_targets")]
    pub max_route_targets: usize,
    /// Most upstream attempts one request may make, whatever its plan allows.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Largest plugin component accepted, in bytes.
    #[serde(default = "default_max_component_bytes")]
    pub max_component_bytes: usize,
    /// Longest compiling one uploaded component may take, in milliseconds.
    #[serde(default = "default_compile_timeout_ms")]
    pub compile_timeout_ms: u64,
    /// Most memory compiling one uploaded component may use, in MiB.
    #[serde(default = "default_compile_memory_mib")]
    pub compile_memory_mib: u64,
}

impl SandboxConfig {
    /// The instance slots of a tenant that sets none.
    pub fn tenant_default_instances(&self) -> u32 {
        self.tenant_max_instances.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            u32::try_from(cores / 2)
                .unwrap_or(u32::MAX)
                .clamp(1, self.max_instances)
        })
    }
}

/// A tenant's own sandbox limits; what is unset comes from `[sandbox]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSandboxConfig {
    /// CPU deadline of one of this tenant's plugin calls, in milliseconds.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// Linear-memory cap of one of this tenant's plugin instances, in MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Plugin instances this tenant may hold at once.
    #[serde(default)]
    pub max_instances: Option<u32>,
}

fn default_deadline_ms() -> u64 {
    5
}
fn default_memory_mib() -> u64 {
    16
}
fn default_max_instances() -> u32 {
    128
}
fn default_queue_ms() -> u64 {
    1_000
}
fn default_max_message_bytes() -> usize {
    1024
}
fn default_max_labels() -> usize {
    16
}
fn default_max_label_bytes() -> usize {
    256
}
fn default_max_log_lines() -> u32 {
    16
}
fn default_max_log_bytes() -> usize {
    8 << 10
}
fn default_max_route_targets() -> usize {
    8
}
/// Upstream attempts a request makes at most unless `[sandbox] max_attempts` says
/// otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_max_component_bytes() -> usize {
    32 << 20
}
fn default_compile_timeout_ms() -> u64 {
    30_000
}
fn default_compile_memory_mib() -> u64 {
    1024
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            deadline_ms: default_deadline_ms(),
            memory_mib: default_memory_mib(),
            max_instances: default_max_instances(),
            tenant_max_instances: None,
            queue_ms: default_queue_ms(),
            max_message_bytes: default_max_message_bytes(),
            max_labels: default_max_labels(),
            max_label_bytes: default_max_label_bytes(),
            max_log_lines: default_max_log_lines(),
            max_log_bytes: default_max_log_bytes(),
            max_route_targets: default_max_route_targets(),
            max_attempts: default_max_attempts(),
            max_component_bytes: default_max_component_bytes(),
            compile_timeout_ms: default_compile_timeout_ms(),
            compile_memory_mib: default_compile_memory_mib(),
        }
    }
}

/// Request-log writer settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Most rows written in one transaction.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest a finished request waits before its row is written, in milliseconds.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// Days request logs (and captured bodies) are kept; 0 (the default, so an upgrade
    /// never deletes history nobody asked to delete) keeps them forever. A tenant's
    /// `log_retention_days` overrides it.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Largest request or response body kept per request when a tenant captures bodies.
    #[serde(default = "default_capture_bytes")]
    pub max_captured_bytes: usize,
    /// Finished requests waiting for the writer, at most; beyond it rows wait in the
    /// usage journal on disk (never dropped) until the writer catches up.
    #[serde(default = "default_max_queued_rows")]
    pub max_queued_rows: usize,
    /// Requests refused before authentication are counted in `/metrics`, not logged
    /// as rows; at most this many a second are written to the gateway's log.
    #[serde(default = "default_unauthenticated_per_s")]
    pub unauthenticated_per_s: u32,
}

fn default_max_queued_rows() -> usize {
    16_384
}
fn default_unauthenticated_per_s() -> u32 {
    1
}

fn default_retention_days() -> u32 {
    0
}
fn default_capture_bytes() -> usize {
    256 << 10
}

fn default_batch() -> usize {
    256
}
fn default_flush_ms() -> u64 {
    200
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            flush_ms: default_flush_ms(),
            retention_days: default_retention_days(),
            max_captured_bytes: default_capture_bytes(),
            max_queued_rows: default_max_queued_rows(),
            unauthenticated_per_s: default_unauthenticated_per_s(),
        }
    }
}

/// The wire protocol an upstream speaks.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Anthropic's API, or any Anthropic-compatible server via `base_url`.
    Anthropic,
    /// OpenAI's Chat Completions API (`https://api.openai.com` unless `base_url` is set).
    Openai,
    /// Any OpenAI-compatible server (vLLM, Ollama, LiteLLM...): `base_url` is required.
    OpenaiCompatible,
    /// The built-in mock upstream, started in-process (offline demo and tests).
    Mock,
}

impl ProviderKind {
    /// The API the provider speaks.
    pub fn api(self) -> crate::api::Api {
        match self {
            Self::Anthropic | Self::Mock => crate::api::Api::Anthropic,
            Self::Openai | Self::OpenaiCompatible => crate::api::Api::OpenAi,
        }
    }

    /// The provider's `gen_ai.provider.name` in OpenTelemetry's GenAI conventions.
    pub fn gen_ai_name(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::Openai => "openai",
            Self::OpenaiCompatible => "openai_compatible",
            Self::Mock => "tollgate.mock",
        }
    }
}

/// One upstream provider.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name tenants and routes refer to.
    pub id: String,
    /// Protocol.
    pub kind: ProviderKind,
    /// Base URL without `/v1`, e.g. `https://api.anthropic.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the upstream API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Connect timeout in milliseconds.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the response headers, or for a whole non-streamed body, in seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Longest silence inside a stream before it is cut, in seconds.
    #[serde(default = "default_idle_s")]
    pub stream_idle_timeout_s: u64,
    /// Extra headers sent on every upstream request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Models this provider serves, advertised by `GET /v1/models`.
    #[serde(default)]
    pub models: Vec<String>,
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_timeout_s() -> u64 {
    600
}
fn default_idle_s() -> u64 {
    300
}

impl ProviderConfig {
    /// The effective base URL, trailing slash removed.
    pub fn base_url(&self) -> String {
        let url = self.base_url.as_deref().unwrap_or(match self.kind {
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Openai => "https://api.openai.com",
            ProviderKind::OpenaiCompatible | ProviderKind::Mock => "http://127.0.0.1",
        });
        url.trim_end_matches('/').to_string()
    }
}

/// One tenant and its policy chain.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Stable id (`[a-z0-9_-]+`).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Provider serving this tenant's requests.
    #[serde(default)]
    pub default_provider: Option<String>,
    /// The operator's plugins for this tenant, run in order on every request after the
    /// platform bundle's and before the tenant's own bundle; a tenant bundle cannot
    /// remove them (the platform bundle's section for the tenant replaces them).
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// Model names advertised to this tenant by `GET /v1/models` (e.g. the aliases its
    /// router serves); empty = the models its providers list.
    #[serde(default)]
    pub models: Vec<String>,
    /// Budget alert delivery.
    #[serde(default)]
    pub alerts: Option<AlertConfig>,
    /// This tenant's plugin limits (CPU deadline, memory, concurrent instances).
    #[serde(default)]
    pub sandbox: TenantSandboxConfig,
    /// Keep each request's request and response bodies with its log row (shown in the
    /// console's log detail and used by bundle replays). Off unless the admin enables it.
    #[serde(default)]
    pub capture_bodies: bool,
    /// Days this tenant's request logs are kept (default: `logs.retention_days`).
    #[serde(default)]
    pub log_retention_days: Option<u32>,
    /// Providers this tenant may be served by, whatever its bundle or routing plugins
    /// say (absent: any configured provider). Pinned: only the config file or the
    /// platform bundle can change it.
    #[serde(default)]
    pub allowed_providers: Option<Vec<String>>,
    /// Model globs this tenant may be served (absent: any model). Pinned like
    /// `allowed_providers`.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// How this tenant's budget limits admit (default: `budgets.admit`).
    #[serde(default)]
    pub budget_admit: Option<crate::ledger::Admit>,
    /// With `[ledger] kind = "redis"`: this tenant's outcome while Redis is
    /// unreachable (default: `[ledger] unavailable`).
    #[serde(default)]
    pub ledger_unavailable: Option<crate::ledger::fleet::FaultMode>,
}

/// How a tenant's response guardrail treats streamed answers (`response_stream` on the
/// plugin entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// Relay the stream untouched; the hook runs on the assembled answer afterwards,
    /// and what it says is only recorded.
    #[default]
    Observe,
    /// Hold the answer until the hook has decided, then send it (rewritten, or an error
    /// instead) as a stream in the client's shape.
    Buffer,
}

impl StreamMode {
    /// Whether this is the default (left out of stored bundles).
    pub fn is_default(&self) -> bool {
        *self == Self::Observe
    }
}

/// A plugin in a tenant's chain.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// A first-party plugin, looked up in `plugin_dir` as `tollgate_<name>.wasm`.
    #[serde(default)]
    pub name: Option<String>,
    /// A plugin component on disk.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The plugin's config, handed to it as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// When the plugin fails (trap, deadline, memory), skip it instead of failing the request.
    #[serde(default)]
    pub fail_open: bool,
    /// Keep the plugin's instance between this tenant's requests instead of starting a
    /// fresh one per call (README, "Instance reuse"): the config is parsed once and no
    /// instantiation is paid, but the plugin's globals persist from one of the tenant's
    /// requests to the next.
    #[serde(default)]
    pub reuse_instance: bool,
    /// How the plugin's response guardrail treats streamed answers: `observe` (relay
    /// untouched, inspect afterwards; the default) or `buffer` (hold the answer until
    /// the plugin has decided).
    #[serde(default)]
    pub response_stream: StreamMode,
}

impl PluginRef {
    /// How the plugin is named in logs and errors.
    pub fn label(&self) -> String {
        match (&self.name, &self.path) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            (None, None) => "unnamed".into(),
        }
    }

    /// The config as JSON text (`{}` when absent).
    pub fn config_json(&self) -> String {
        match &self.config {
            Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "{}".into()),
            None => "{}".into(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            field,
            message,
        };
        let mut provider_ids = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let field = format!("providers[{i}]");
            if !valid_id(&p.id) {
                return Err(bad(
                    format!("{field}.id"),
                    format!("'{}' must match [A-Za-z0-9_.-]+", p.id),
                ));
            }
            if !provider_ids.insert(p.id.as_str()) {
                return Err(bad(
                    format!("{field}.id"),
                    format!("duplicate provider id '{}'", p.id),
                ));
            }
            if p.kind == ProviderKind::OpenaiCompatible && p.base_url.is_none() {
                return Err(bad(
                    format!("{field}.base_url"),
                    "required for kind \"openai-compatible\" (e.g. \"http://localhost:11434\")"
                        .into(),
                ));
            }
            let url = p.base_url();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(
                    format!("{field}.base_url"),
                    format!("'{url}' must start with http:// or https://"),
                ));
            }
            if url.ends_with("/v1") {
                return Err(bad(
                    format!("{field}.base_url"),
                    format!("'{url}' must not end in /v1: the gateway appends the API path"),
                ));
            }
            if let Err(e) = reqwest::Url::parse(&url) {
                return Err(bad(
                    format!("{field}.base_url"),
                    format!("'{url}' is not a valid URL: {e}"),
                ));
            }
            // The providers' client takes an `http::Uri`, which is stricter (no
            // international host names: give their punycode form).
            if let Err(e) = url.parse::<axum::http::Uri>() {
                return Err(bad(
                    format!("{field}.base_url"),
                    format!("'{url}' is not a valid URL: {e}"),
                ));
            }
            if p.timeout_s == 0 || p.connect_timeout_ms == 0 || p.stream_idle_timeout_s == 0 {
                return Err(bad(field, "timeouts must be greater than zero".into()));
            }
        }
        let check_provider = |field: String, id: &Option<String>| match id {
            Some(id) if !provider_ids.contains(id.as_str()) => Err(bad(
                field,
                format!(
                    "unknown provider '{id}' (known: {})",
                    join_sorted(&provider_ids)
                ),
            )),
            _ => Ok(()),
        };
        check_provider("default_provider".into(), &self.default_provider)?;
        self.ledger.validate(&bad)?;
        self.store.validate(&bad)?;
        let mut tenant_ids = std::collections::HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let field = format!("tenants[{i}]");
            if !valid_id(&t.id) {
                return Err(bad(
                    format!("{field}.id"),
                    format!("'{}' must match [A-Za-z0-9_.-]+", t.id),
                ));
            }
            if !tenant_ids.insert(t.id.as_str()) {
                return Err(bad(
                    format!("{field}.id"),
                    format!("duplicate tenant id '{}'", t.id),
                ));
            }
            check_provider(format!("{field}.default_provider"), &t.default_provider)?;
            if let Some(allowed) = &t.allowed_providers {
                for (j, id) in allowed.iter().enumerate() {
                    check_provider(format!("{field}.allowed_providers[{j}]"), &Some(id.clone()))?;
                }
                if let Some(d) = &t.default_provider
                    && !allowed.contains(d)
                {
                    return Err(bad(
                        format!("{field}.default_provider"),
                        format!("'{d}' is not in the tenant's allowed_providers"),
                    ));
                }
            }
            if let Some(models) = &t.allowed_models
                && let Some(j) = models.iter().position(|m| m.is_empty() || m.len() > 256)
            {
                return Err(bad(
                    format!("{field}.allowed_models[{j}]"),
                    "must be a model name or glob of 1 to 256 bytes".into(),
                ));
            }
            if let Some(a) = &t.alerts {
                let url = a.webhook_url.as_str();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(
                        format!("{field}.alerts.webhook_url"),
                        format!("'{url}' must start with http:// or https://"),
                    ));
                }
                if a.webhook_secret.is_some() == a.webhook_secret_env.is_some() {
                    return Err(bad(
                        format!("{field}.alerts.webhook_secret"),
                        "set exactly one of webhook_secret or webhook_secret_env: deliveries are signed"
                            .into(),
                    ));
                }
                if a.secret().is_none() {
                    return Err(bad(
                        format!("{field}.alerts.webhook_secret_env"),
                        "the environment variable is unset or empty".into(),
                    ));
                }
            }
            for (j, p) in t.plugins.iter().enumerate() {
                let pf = format!("{field}.plugins[{j}]");
                match (&p.name, &p.path) {
                    (Some(_), Some(_)) => {
                        return Err(bad(pf, "set either name or path, not both".into()));
                    }
                    (None, None) => {
                        return Err(bad(
                            pf,
                            "set name (first-party plugin) or path (wasm file)".into(),
                        ));
                    }
                    _ => {}
                }
                if let Some(c) = &p.config
                    && !c.is_table()
                {
                    return Err(bad(format!("{pf}.config"), "must be a table".into()));
                }
            }
        }
        let s = &self.sandbox;
        check_sandbox(
            "sandbox",
            Some(s.deadline_ms),
            Some(s.memory_mib),
            Some(s.max_instances),
            10_000,
        )
        .map_err(|(f, m)| bad(f, m))?;
        if let Some(n) = s.tenant_max_instances {
            check_sandbox("sandbox", None, None, Some(n), s.max_instances)
                .map_err(|(_, m)| bad("sandbox.tenant_max_instances".into(), m))?;
        }
        if !(1..=600_000).contains(&s.queue_ms) {
            return Err(bad(
                "sandbox.queue_ms".into(),
                "must be between 1 and 600000".into(),
            ));
        }
        for (i, t) in self.tenants.iter().enumerate() {
            let ts = &t.sandbox;
            check_sandbox(
                &format!("tenants[{i}].sandbox"),
                ts.deadline_ms,
                ts.memory_mib,
                ts.max_instances,
                s.max_instances,
            )
            .map_err(|(f, m)| bad(f, m))?;
        }
        if let Err(e) = crate::pricing::Pricing::new(&self.pricing) {
            let (field, message) = e.split_once(": ").unwrap_or(("pricing", e.as_str()));
            return Err(bad(field.into(), message.into()));
        }
        for (i, k) in self.usage.metadata_keys.iter().enumerate() {
            if k.is_empty() || k.len() > crate::metadata::MAX_KEY_LEN {
                return Err(bad(
                    format!("usage.metadata_keys[{i}]"),
                    format!("must be 1 to {} bytes", crate::metadata::MAX_KEY_LEN),
                ));
            }
        }
        if let Some(o) = &self.otlp
            && !(o.endpoint.starts_with("http://") || o.endpoint.starts_with("https://"))
        {
            return Err(bad(
                "otlp.endpoint".into(),
                format!("'{}' must start with http:// or https://", o.endpoint),
            ));
        }
        if self.logs.batch_size == 0 {
            return Err(bad("logs.batch_size".into(), "must be at least 1".into()));
        }
        let ranges: [(&str, u64, u64, u64); 24] = [
            (
                "sandbox.max_message_bytes",
                s.max_message_bytes as u64,
                16,
                1 << 20,
            ),
            ("sandbox.max_labels", s.max_labels as u64, 0, 1_000),
            (
                "sandbox.max_label_bytes",
                s.max_label_bytes as u64,
                8,
                64 << 10,
            ),
            (
                "sandbox.max_log_lines",
                u64::from(s.max_log_lines),
                0,
                10_000,
            ),
            ("sandbox.max_log_bytes", s.max_log_bytes as u64, 0, 16 << 20),
            (
                "sandbox.max_route_targets",
                s.max_route_targets as u64,
                1,
                1_000,
            ),
            ("sandbox.max_attempts", u64::from(s.max_attempts), 1, 1_000),
            (
                "sandbox.max_component_bytes",
                s.max_component_bytes as u64,
                1 << 10,
                1 << 30,
            ),
            (
                "sandbox.compile_timeout_ms",
                s.compile_timeout_ms,
                100,
                600_000,
            ),
            (
                "sandbox.compile_memory_mib",
                s.compile_memory_mib,
                64,
                65_536,
            ),
            (
                "budgets.max_limits_per_request",
                self.budgets.max_limits_per_request as u64,
                0,
                10_000,
            ),
            (
                "budgets.max_limits_per_tenant",
                self.budgets.max_limits_per_tenant as u64,
                1,
                100_000_000,
            ),
            (
                "budgets.max_scopes_per_tenant",
                self.budgets.max_scopes_per_tenant as u64,
                1,
                100_000_000,
            ),
            (
                "budgets.exact_rate_limit_max",
                self.budgets.exact_rate_limit_max,
                0,
                1_000_000,
            ),
            (
                "budgets.max_exact_entries_per_tenant",
                self.budgets.max_exact_entries_per_tenant as u64,
                0,
                1_000_000_000,
            ),
            (
                "server.max_connections",
                self.server.max_connections as u64,
                1,
                10_000_000,
            ),
            (
                "server.max_connections_per_client",
                self.server.max_connections_per_client as u64,
                1,
                10_000_000,
            ),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
                100,
                3_600_000,
            ),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
                100,
                3_600_000,
            ),
            (
                "server.max_unauthenticated_per_client",
                self.server.max_unauthenticated_per_client as u64,
                1,
                10_000_000,
            ),
            (
                "server.listen_backlog",
                u64::from(self.server.listen_backlog),
                1,
                65_535,
            ),
            (
                "server.drain_timeout_ms",
                self.server.drain_timeout_ms,
                0,
                3_600_000,
            ),
            (
                "logs.max_queued_rows",
                self.logs.max_queued_rows as u64,
                1,
                100_000_000,
            ),
            (
                "logs.unauthenticated_per_s",
                u64::from(self.logs.unauthenticated_per_s),
                0,
                1_000_000,
            ),
        ];
        for (field, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Err(bad(field.into(), format!("must be between {lo} and {hi}")));
            }
        }
        Ok(())
    }
}

/// Checks sandbox limits under `at`; instances may not exceed `max_instances`.
fn check_sandbox(
    at: &str,
    deadline_ms: Option<u64>,
    memory_mib: Option<u64>,
    instances: Option<u32>,
    max_instances: u32,
) -> Result<(), (String, String)> {
    if let Some(d) = deadline_ms
        && !(1..=60_000).contains(&d)
    {
        return Err((
            format!("{at}.deadline_ms"),
            "must be between 1 and 60000".into(),
        ));
    }
    if let Some(m) = memory_mib
        && !(1..=4096).contains(&m)
    {
        return Err((
            format!("{at}.memory_mib"),
            "must be between 1 and 4096".into(),
        ));
    }
    if let Some(n) = instances
        && !(1..=max_instances).contains(&n)
    {
        return Err((
            format!("{at}.max_instances"),
            format!("must be between 1 and {max_instances}"),
        ));
    }
    Ok(())
}

/// Whether `s` is usable as a tenant or provider id.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn join_sorted(set: &std::collections::HashSet<&str>) -> String {
    let mut v: Vec<_> = set.iter().copied().collect();
    v.sort_unstable();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse("", "t.toml").expect("empty config is valid");
        assert_eq!(c.listen.port(), 8787);
        assert_eq!(c.sandbox.deadline_ms, 5);
        assert_eq!(c.sandbox.memory_mib, 16);
    }

    #[test]
    fn fleet_services_are_checked_by_field() {
        let cases = [
            ("[ledger]\nkind = \"redis\"\n", "ledger.url: required"),
            (
                "[ledger]\nkind = \"redis\"\nurl = \"http://x\"\n",
                "ledger.url: 'http://x' must start with redis://",
            ),
            (
                "[ledger]\nkind = \"redis\"\nurl = \"redis://x\"\nlease_ms = 1000\n",
                "ledger.lease_ms: 1000 ms is under three times",
            ),
            ("[store]\nkind = \"postgres\"\n", "store.url: required"),
            (
                "[store]\nkind = \"postgres\"\nurl = \"mysql://x\"\n",
                "store.url: 'mysql://x' must start with postgres://",
            ),
            (
                "[store]\npool_size = 0\n",
                "store.pool_size: must be greater than zero",
            ),
        ];
        for (text, want) in cases {
            let msg = Config::parse(text, "t.toml").expect_err(text).to_string();
            assert!(msg.contains(want), "{text}: {msg}");
        }
        let ok = "[store]\nkind = \"postgres\"\nurl = \"postgres://tg@db/tg\"\n\n[ledger]\nkind = \"redis\"\nurl = \"redis://cache:6379\"\n";
        let c = Config::parse(ok, "t.toml").expect("a fleet config");
        assert_eq!(
            (c.store.kind, c.ledger.kind),
            (StoreKind::Postgres, LedgerKind::Redis)
        );
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let err = Config::parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n", "t.toml")
            .expect_err("unknown field");
        let msg = err.to_string();
        assert!(msg.contains("listen_port"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn unknown_provider_is_named() {
        let text = r#"
[[providers]]
id = "anthropic"
kind = "anthropic"

[[tenants]]
id = "acme"
default_provider = "openai"
"#;
        let msg = Config::parse(text, "t.toml")
            .expect_err("bad provider")
            .to_string();
        assert!(msg.contains("tenants[0].default_provider"), "{msg}");
        assert!(msg.contains("unknown provider 'openai'"), "{msg}");
    }

    #[test]
    fn plugin_needs_name_or_path() {
        let text = "[[tenants]]\nid = \"a\"\n[[tenants.plugins]]\nfail_open = true\n";
        let msg = Config::parse(text, "t.toml")
            .expect_err("bad plugin")
            .to_string();
        assert!(msg.contains("tenants[0].plugins[0]"), "{msg}");
    }

    #[test]
    fn tenant_sandbox_limits_are_checked_against_the_pool() {
        let text = "[sandbox]\nmax_instances = 8\n[[tenants]]\nid = \"a\"\nsandbox = { max_instances = 9 }\n";
        let msg = Config::parse(text, "t.toml")
            .expect_err("too many")
            .to_string();
        assert!(msg.contains("tenants[0].sandbox.max_instances"), "{msg}");
        assert!(msg.contains("between 1 and 8"), "{msg}");
        let text = "[[tenants]]\nid = \"a\"\nsandbox = { deadline_ms = 0 }\n";
        let msg = Config::parse(text, "t.toml").expect_err("zero").to_string();
        assert!(msg.contains("tenants[0].sandbox.deadline_ms"), "{msg}");
        let ok = Config::parse(
            "[sandbox]\nmax_instances = 8\n[[tenants]]\nid = \"a\"\nsandbox = { memory_mib = 32, max_instances = 2 }\n",
            "t.toml",
        )
        .expect("valid");
        assert_eq!(ok.tenants[0].sandbox.max_instances, Some(2));
        assert!((1..=8).contains(&ok.sandbox.tenant_default_instances()));
    }

    #[test]
    fn base_url_with_v1_is_refused() {
        let text = "[[providers]]\nid = \"a\"\nkind = \"anthropic\"\nbase_url = \"http://x/v1\"\n";
        let msg = Config::parse(text, "t.toml").expect_err("v1").to_string();
        assert!(msg.contains("providers[0].base_url"), "{msg}");
    }

    #[test]
    fn a_base_url_that_is_not_a_url_is_refused_at_load() {
        let text =
            "[[providers]]\nid = \"a\"\nkind = \"anthropic\"\nbase_url = \"http://exa mple\"\n";
        let msg = Config::parse(text, "t.toml").expect_err("url").to_string();
        assert!(
            msg.contains("providers[0].base_url") && msg.contains("not a valid URL"),
            "{msg}"
        );
    }
}
