//! One tenant's share of the plugin sandbox.
//!
//! Every plugin call of a tenant's requests (the platform's plugins included) runs under
//! that tenant's limits: its own CPU deadline and memory cap per call, and a bound on how
//! many of its instances may be alive at once. A tenant whose plugin loops, traps or
//! grows without bound therefore holds at most its own instance slots, and only its own
//! requests wait or fail; the pool and the CPU left over serve everybody else.

use super::sandbox::{CallFailure, SandboxLimits};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// A tenant's per-call limits and its instance slots.
#[derive(Debug)]
pub struct TenantSandbox {
    /// What each call may use.
    pub limits: SandboxLimits,
    slots: Semaphore,
    max_instances: u32,
    /// Longest a call waits for one of the tenant's slots before failing.
    queue: Duration,
}

impl TenantSandbox {
    /// A sandbox allowing `max_instances` concurrent calls (at least one).
    pub fn new(limits: SandboxLimits, max_instances: u32, queue: Duration) -> Self {
        let max_instances = max_instances.max(1);
        Self {
            limits,
            slots: Semaphore::new(max_instances as usize),
            max_instances,
            queue,
        }
    }

    /// The most instances the tenant may hold at once.
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Longest a call waits for a slot.
    pub fn queue(&self) -> Duration {
        self.queue
    }

    /// Instances in use right now.
    pub fn in_use(&self) -> u32 {
        self.max_instances
            .saturating_sub(u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX))
    }

    /// Waits (at most the queue time) for one of the tenant's slots.
    pub(super) async fn enter(&self) -> Result<SemaphorePermit<'_>, CallFailure> {
        if let Ok(p) = self.slots.try_acquire() {
            return Ok(p);
        }
        match tokio::time::timeout(self.queue, self.slots.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(CallFailure::Busy {
                instances: self.max_instances,
                waited: self.queue,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_tenant_waits_then_fails_busy_and_others_are_untouched() {
        let limits = SandboxLimits::default();
        let a = TenantSandbox::new(limits, 1, Duration::from_millis(30));
        let b = TenantSandbox::new(limits, 1, Duration::from_millis(30));
        let held = a.enter().await.expect("first slot");
        assert_eq!(a.in_use(), 1);
        match a.enter().await {
            Err(CallFailure::Busy { instances: 1, .. }) => {}
            other => panic!("expected busy, got {other:?}"),
        }
        assert!(b.enter().await.is_ok(), "another tenant still gets a slot");
        drop(held);
        assert!(a.enter().await.is_ok(), "a freed slot is reusable");
    }
}
