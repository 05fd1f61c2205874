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

/// A fixed number of instance slots, taken for the length of a call.
#[derive(Debug)]
pub(super) struct Slots {
    sem: Semaphore,
    size: u32,
}

impl Slots {
    /// `size` slots (at least one).
    pub(super) fn new(size: u32) -> Self {
        let size = size.max(1);
        Self {
            sem: Semaphore::new(size as usize),
            size,
        }
    }

    /// How many slots there are.
    pub(super) fn size(&self) -> u32 {
        self.size
    }

    /// Slots taken right now.
    fn in_use(&self) -> u32 {
        self.size
            .saturating_sub(u32::try_from(self.sem.available_permits()).unwrap_or(u32::MAX))
    }

    /// A slot, waiting at most `wait` for one; `None` when none came free.
    pub(super) async fn take(&self, wait: Duration) -> Option<SemaphorePermit<'_>> {
        if let Ok(p) = self.sem.try_acquire() {
            return Some(p);
        }
        match tokio::time::timeout(wait, self.sem.acquire()).await {
            Ok(Ok(p)) => Some(p),
            _ => None,
        }
    }
}

/// A tenant's per-call limits and its instance slots.
#[derive(Debug)]
pub struct TenantSandbox {
    /// What each call may use.
    pub limits: SandboxLimits,
    slots: Slots,
    /// Longest a call waits for one of the tenant's slots before failing.
    queue: Duration,
}

impl TenantSandbox {
    /// A sandbox allowing `max_instances` concurrent calls (at least one).
    pub fn new(limits: SandboxLimits, max_instances: u32, queue: Duration) -> Self {
        Self {
            limits,
            slots: Slots::new(max_instances),
            queue,
        }
    }

    /// The most instances the tenant may hold at once.
    pub fn max_instances(&self) -> u32 {
        self.slots.size()
    }

    /// Longest a call waits for a slot.
    pub fn queue(&self) -> Duration {
        self.queue
    }

    /// Instances in use right now.
    pub fn in_use(&self) -> u32 {
        self.slots.in_use()
    }

    /// Waits (at most the queue time) for one of the tenant's slots.
    pub(super) async fn enter(&self) -> Result<SemaphorePermit<'_>, CallFailure> {
        self.slots.take(self.queue).await.ok_or(CallFailure::Busy {
            instances: self.slots.size(),
            waited: self.queue,
        })
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
