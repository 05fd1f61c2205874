//! Who decides a tenant's requests: the immutable snapshot of each tenant's layers
//! (the platform bundle, the operator's pinned rules, the tenant's own bundle) and the
//! directory the request path reads them from.
//!
//! A request reads its tenant's runtime without taking any lock (an `arc-swap`
//! snapshot) and keeps that `Arc` to its end, so a bundle activated meanwhile decides
//! the next request, never half of this one. Writers (activations, a tenant's first
//! request) serialise on one mutex and publish a new snapshot.

use crate::config::{SandboxConfig, TenantSandboxConfig};
use crate::plugins::{ConfiguredPlugin, PolicyChain, SandboxLimits, TenantSandbox};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

    /// A tenant with no rules of its own or pinned on it, admitting budgets by `admit`.
    pub fn empty(admit: crate::ledger::Admit) -> Self {
        Self {
            admit,
            ..Self::default()
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

/// Every tenant's runtime, the platform bundle they share, and how a tenant nobody
/// configured is served.
#[derive(Clone, Default)]
struct Snapshot {
    by_id: HashMap<String, Arc<TenantRuntime>>,
    platform: Platform,
    /// Tenants with no config and no bundle: the platform's plugins only.
    no_tenant: Arc<TenantRuntime>,
}

/// The tenants' runtimes, read by every request and replaced by activations.
pub struct TenantDirectory {
    snapshot: ArcSwap<Snapshot>,
    /// Serialises writers; readers never take it.
    writer: Mutex<()>,
    /// Sandbox limits every tenant starts from.
    sandbox: SandboxConfig,
    /// The config file's per-tenant sandbox limits.
    own_sandboxes: HashMap<String, TenantSandboxConfig>,
}

/// A tenant's sandbox share from the gateway's `[sandbox]` and the tenant's own limits.
pub fn tenant_sandbox(
    base: &SandboxConfig,
    own: Option<&TenantSandboxConfig>,
) -> Arc<TenantSandbox> {
    Arc::new(TenantSandbox::new(
        sandbox_limits(base, own),
        own.and_then(|o| o.max_instances)
            .unwrap_or_else(|| base.tenant_default_instances()),
        Duration::from_millis(base.queue_ms),
    ))
}

/// A tenant's per-call limits: its own where set, else the gateway's.
pub fn sandbox_limits(base: &SandboxConfig, own: Option<&TenantSandboxConfig>) -> SandboxLimits {
    let deadline_ms = own.and_then(|o| o.deadline_ms).unwrap_or(base.deadline_ms);
    let memory_mib = own.and_then(|o| o.memory_mib).unwrap_or(base.memory_mib);
    SandboxLimits {
        deadline: Duration::from_millis(deadline_ms),
        memory_bytes: (memory_mib as usize) << 20,
    }
}

impl TenantDirectory {
    /// A directory of the configured tenants' runtimes (`by_id`), serving unconfigured
    /// tenants like `no_tenant`; sandboxes come from `sandbox` and `own_sandboxes`.
    pub fn new(
        by_id: HashMap<String, Arc<TenantRuntime>>,
        no_tenant: TenantRuntime,
        sandbox: SandboxConfig,
        own_sandboxes: HashMap<String, TenantSandboxConfig>,
    ) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Snapshot {
                by_id,
                platform: Platform::default(),
                no_tenant: Arc::new(no_tenant),
            }),
            writer: Mutex::new(()),
            sandbox,
            own_sandboxes,
        }
    }

    /// The runtime of `tenant_id`; tenants created through the admin API and absent from
    /// the config get the platform's plugins (and any rules it pins on them) and the
    /// default provider, in a sandbox share of their own, from their first request on.
    pub fn get(&self, tenant_id: &str) -> Arc<TenantRuntime> {
        if let Some(rt) = self.snapshot.load().by_id.get(tenant_id) {
            return rt.clone();
        }
        let _w = crate::sync::lock(&self.writer);
        let cur = self.snapshot.load_full();
        if let Some(rt) = cur.by_id.get(tenant_id) {
            return rt.clone();
        }
        let rt = Arc::new(self.unconfigured(tenant_id, &cur));
        let mut next = (*cur).clone();
        next.by_id.insert(tenant_id.to_string(), rt.clone());
        self.snapshot.store(Arc::new(next));
        rt
    }

    /// The runtime of a tenant that is neither configured nor bundled.
    fn unconfigured(&self, tenant_id: &str, cur: &Snapshot) -> TenantRuntime {
        if cur.platform.pinned.contains_key(tenant_id) {
            TenantRuntime::compose(
                tenant_id,
                &cur.platform,
                Arc::default(),
                cur.no_tenant.layer(),
                Some(self.sandbox_of(tenant_id)),
                cur.no_tenant.admit,
            )
        } else {
            cur.no_tenant.for_sandbox(self.sandbox_of(tenant_id))
        }
    }

    /// Every tenant with a runtime so far (configured, bundled or seen), by id.
    pub fn runtimes(&self) -> Vec<(String, Arc<TenantRuntime>)> {
        let snap = self.snapshot.load();
        let mut v: Vec<_> = snap
            .by_id
            .iter()
            .map(|(id, rt)| (id.clone(), rt.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The platform bundle in force.
    pub fn platform(&self) -> Platform {
        self.snapshot.load().platform.clone()
    }

    /// A new sandbox share for `tenant_id`, from its config.
    fn sandbox_of(&self, tenant_id: &str) -> Arc<TenantSandbox> {
        tenant_sandbox(&self.sandbox, self.own_sandboxes.get(tenant_id))
    }

    /// The limits admin work on `tenant_id`'s plugins runs under (its own).
    pub fn limits_of(&self, tenant_id: &str) -> SandboxLimits {
        sandbox_limits(&self.sandbox, self.own_sandboxes.get(tenant_id))
    }

    /// Activates a tenant's new own layer (composed on the current platform and the
    /// operator's pinned rules): the next request uses it, requests in flight keep theirs.
    pub fn set_tenant(&self, tenant_id: &str, layer: TenantLayer) {
        let _w = crate::sync::lock(&self.writer);
        let cur = self.snapshot.load_full();
        // The tenant keeps its slots across versions: requests of the old version
        // still hold some.
        let current = cur.by_id.get(tenant_id).cloned();
        let sandbox = current
            .as_ref()
            .and_then(|rt| rt.chain.sandbox().cloned())
            .unwrap_or_else(|| self.sandbox_of(tenant_id));
        let (config_pinned, admit) = match &current {
            Some(rt) => (rt.config_pinned.clone(), rt.admit),
            None => (Arc::default(), cur.no_tenant.admit),
        };
        let rt = TenantRuntime::compose(
            tenant_id,
            &cur.platform,
            config_pinned,
            layer,
            Some(sandbox),
            admit,
        );
        let mut next = (*cur).clone();
        next.by_id.insert(tenant_id.to_string(), Arc::new(rt));
        self.snapshot.store(Arc::new(next));
    }

    /// Activates a new platform bundle: every tenant's chain is recomposed at once.
    pub fn set_platform(&self, platform: Platform) {
        let _w = crate::sync::lock(&self.writer);
        let cur = self.snapshot.load_full();
        let mut by_id: HashMap<String, Arc<TenantRuntime>> = cur
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
                    cur.no_tenant.layer(),
                    Some(self.sandbox_of(id)),
                    cur.no_tenant.admit,
                );
                by_id.insert(id.clone(), Arc::new(rt));
            }
        }
        let no_tenant = Arc::new(cur.no_tenant.recompose("", &platform));
        self.snapshot.store(Arc::new(Snapshot {
            by_id,
            platform,
            no_tenant,
        }));
    }
}
