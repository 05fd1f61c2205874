//! What the request path reads: everything admission, routing and logging need, and
//! nothing the admin API alone uses. Built once at start-up (`server`); the tenants'
//! runtimes inside change by snapshot, never under a lock a request waits on.

use crate::auth::KeyCache;
use crate::budget::AlertSink;
use crate::ledger::Ledger;
use crate::plugins::PluginRuntime;
use crate::pricing::Pricing;
use crate::providers::Providers;
use crate::store::LogSender;
use crate::telemetry::Metrics;
use crate::tenancy::{TenantDirectory, TenantRuntime};
use std::collections::HashSet;
use std::sync::Arc;

/// The request path's state.
pub struct Pipeline {
    /// The plugin engine every chain runs in.
    pub plugins: Arc<PluginRuntime>,
    /// Model prices, for every request's cost and reservation estimate.
    pub pricing: Pricing,
    /// Usage counters per scope and window, backed by the store.
    pub ledger: Arc<Ledger>,
    /// The fleet's shared ledger (`[ledger] kind = "redis"`), which admits every
    /// request with budget limits as well.
    pub fleet: Option<Arc<crate::ledger::fleet::FleetLedger>>,
    /// Where crossed budget thresholds go.
    pub alerts: AlertSink,
    /// Metadata keys the ledger counts for every request.
    pub usage_keys: Vec<Arc<str>>,
    /// Upstream providers by id.
    pub providers: Providers,
    /// API keys by secret hash.
    pub keys: KeyCache,
    /// Where finished requests are logged (through the usage journal).
    pub logs: LogSender,
    /// Provider of requests no route and no tenant default chose.
    pub default_provider: Option<String>,
    /// Every tenant's layers, as a snapshot.
    pub tenants: TenantDirectory,
    /// Request, plugin and upstream metrics, and the protection counters.
    pub metrics: Arc<Metrics>,
    /// Lines written to the gateway's log about unauthenticated requests.
    pub unauthenticated_log: super::LogSampler,
    /// Tenants whose request and response bodies are kept with their log rows.
    pub capture_tenants: HashSet<String>,
    /// Largest body kept per request when a tenant captures bodies.
    pub max_captured_bytes: usize,
    /// Work requests do after their response ended (guardrails observing a delivered
    /// stream, then the request's log row); shutdown waits for it before the last flush.
    pub afterwork: tokio_util::task::TaskTracker,
}

impl Pipeline {
    /// The runtime deciding `tenant_id`'s next request.
    pub fn tenant(&self, tenant_id: &str) -> Arc<TenantRuntime> {
        self.tenants.get(tenant_id)
    }

    /// Whether the admin enabled body capture for `tenant_id`.
    pub fn captures_bodies(&self, tenant_id: &str) -> bool {
        self.capture_tenants.contains(tenant_id)
    }
}
