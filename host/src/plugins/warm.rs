//! Warm instances: for a plugin entry that sets `reuse_instance`, the instance of a
//! finished call is kept and the next call of the same tenant, plugin and config runs
//! in it, skipping instantiation, the store's teardown and the guest's config parse.
//!
//! An instance is only ever reused for the tenant whose request created it, and only
//! after a call that returned normally (a trap, deadline or memory overrun discards it).
//! Idle instances are few (bounded in all and per tenant), the least recently used is
//! dropped for a newcomer, and one idle for [`IDLE_TTL`] or used [`MAX_USES`] times is
//! dropped rather than reused, so a slow leak inside a plugin cannot grow for ever.

use super::abi::Guest;
use super::sandbox::PluginState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Store;

/// Longest an idle instance is kept.
pub(super) const IDLE_TTL: Duration = Duration::from_secs(60);

/// Calls one instance serves before it is replaced by a fresh one.
pub(super) const MAX_USES: u32 = 10_000;

/// What a warm instance may be reused for: the same tenant, component and config.
pub(super) struct WarmKey {
    pub tenant: Arc<str>,
    pub hash: Arc<str>,
    pub label: Arc<str>,
    pub config: Arc<str>,
}

/// An idle instance with its store.
pub(super) struct Warm {
    pub store: Store<PluginState>,
    pub guest: Guest,
    pub uses: u32,
}

struct Idle {
    key: WarmKey,
    warm: Warm,
    since: Instant,
}

/// The idle warm instances of the whole gateway.
pub(super) struct WarmPool {
    idle: Mutex<Vec<Idle>>,
    /// Idle instances kept at most (each holds a slot of the pooling allocator).
    cap: usize,
    /// Idle instances one tenant may hold at most.
    per_tenant: usize,
}

impl WarmPool {
    /// A pool keeping at most `cap` idle instances, `per_tenant` of them per tenant.
    pub(super) fn new(cap: usize, per_tenant: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(cap)),
            cap,
            per_tenant: per_tenant.min(cap),
        }
    }

    /// An idle instance of `tenant`'s plugin `hash` under `label` with `config`, the
    /// most recently used first, with its key (kept for putting it back).
    pub(super) fn take(
        &self,
        tenant: &str,
        hash: &str,
        label: &str,
        config: &str,
    ) -> Option<(WarmKey, Warm)> {
        let mut idle = crate::sync::lock(&self.idle);
        let now = Instant::now();
        let i = idle.iter().rposition(|e| {
            now.duration_since(e.since) < IDLE_TTL
                && *e.key.tenant == *tenant
                && *e.key.hash == *hash
                && *e.key.label == *label
                && *e.key.config == *config
        })?;
        let e = idle.swap_remove(i);
        Some((e.key, e.warm))
    }

    /// Whether an instance that has served `uses` calls may be kept at all.
    pub(super) fn keeps(&self, uses: u32) -> bool {
        self.cap > 0 && uses < MAX_USES
    }

    /// Keeps `warm` for the next call of `key` (the caller checked [`WarmPool::keeps`]);
    /// makes room by dropping expired instances, then the tenant's (or, when the tenant
    /// has room, anyone's) least recently used one. What is dropped is returned to be
    /// dropped outside the lock.
    pub(super) fn put(&self, key: WarmKey, warm: Warm) -> Vec<Warm> {
        let mut dropped = Vec::new();
        let mut idle = crate::sync::lock(&self.idle);
        let now = Instant::now();
        let mut i = 0;
        while i < idle.len() {
            if now.duration_since(idle[i].since) >= IDLE_TTL {
                dropped.push(idle.swap_remove(i).warm);
            } else {
                i += 1;
            }
        }
        let tenant_count = idle.iter().filter(|e| e.key.tenant == key.tenant).count();
        let evict = if tenant_count >= self.per_tenant {
            oldest(&idle, |e| e.key.tenant == key.tenant)
        } else if idle.len() >= self.cap {
            oldest(&idle, |_| true)
        } else {
            None
        };
        if let Some(i) = evict {
            dropped.push(idle.swap_remove(i).warm);
        }
        idle.push(Idle {
            key,
            warm,
            since: now,
        });
        dropped
    }
}

fn oldest(idle: &[Idle], matches: impl Fn(&Idle) -> bool) -> Option<usize> {
    idle.iter()
        .enumerate()
        .filter(|(_, e)| matches(e))
        .min_by_key(|(_, e)| e.since)
        .map(|(i, _)| i)
}
