//! What the admin side holds: the request path's state, plus what only admin work
//! needs (the store, admin tokens, bundle activation locks, admin sandboxes, replays).
//! The admin API, bundles and the console read it; the request path never does.

use crate::auth::AdminTokens;
use crate::config::TenantConfig;
use crate::pipeline::Pipeline;
use crate::plugins::TenantSandbox;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The admin side's state.
pub struct ControlPlane {
    /// The request path's state (tenants, plugins, providers, ledger, keys).
    pub pipeline: Arc<Pipeline>,
    /// Tenants, keys, logs, bundles and the audit log.
    pub store: Store,
    /// Tenant admin tokens (the platform's is `settings.admin_token`).
    pub admin_tokens: AdminTokens,
    /// What the config file sets for the admin side.
    pub settings: ControlSettings,
    /// Serialises bundle activations per scope (never held by requests, and never
    /// across scopes).
    bundle_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One instance slot per tenant for admin work on its plugins (smoke tests,
    /// replays): under the tenant's limits, apart from its traffic, and never more than
    /// one pool slot per tenant however many admin calls run.
    admin_sandboxes: Mutex<HashMap<String, Arc<TenantSandbox>>>,
    /// Tenants with a bundle replay running (one at a time each).
    pub replays: Mutex<HashSet<String>>,
}

impl std::ops::Deref for ControlPlane {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// The admin side's settings, from the config.
pub struct ControlSettings {
    /// The platform admin token.
    pub admin_token: String,
    /// Where first-party plugins (`name = "..."`) are found.
    pub plugin_dir: PathBuf,
    /// The config file's tenants: what a bundle that sets no default provider or
    /// models falls back to.
    pub config_tenants: HashMap<String, TenantConfig>,
    /// Largest uploaded plugin component accepted.
    pub max_component_bytes: usize,
    /// `/metrics` answers without the admin token.
    pub metrics_public: bool,
    /// Budget gauge series per tenant in `/metrics`.
    pub metrics_budget_series: usize,
    /// Longest admin work waits for a tenant's admin slot.
    pub admin_queue: Duration,
}

impl ControlPlane {
    /// The admin side over `pipeline` and `store`.
    pub fn new(
        pipeline: Arc<Pipeline>,
        store: Store,
        admin_tokens: AdminTokens,
        s: ControlSettings,
    ) -> Self {
        Self {
            pipeline,
            store,
            admin_tokens,
            settings: s,
            bundle_locks: Mutex::default(),
            admin_sandboxes: Mutex::default(),
            replays: Mutex::default(),
        }
    }

    /// The slot admin work on `tenant_id`'s plugins runs in (see `admin_sandboxes`).
    pub fn admin_sandbox(&self, tenant_id: &str) -> Arc<TenantSandbox> {
        let mut m = crate::sync::lock(&self.admin_sandboxes);
        m.entry(tenant_id.to_string())
            .or_insert_with(|| {
                // Admin calls queue behind each other, not behind the tenant's traffic.
                Arc::new(TenantSandbox::new(
                    self.pipeline.tenants.limits_of(tenant_id),
                    1,
                    self.settings.admin_queue,
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
}
