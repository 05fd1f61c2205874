//! Spare instances: the next fresh instance of a busy plugin, instantiated before the
//! call that will use it, so that instantiation (the larger part of a fresh call) runs
//! while the gateway would otherwise wait, not between a request and its answer.
//!
//! A spare is exactly as fresh as an instance made for the call: nothing has called into
//! it, no request's data has been near it, and it serves one call and is torn down.
//! Spares are kept per tenant sandbox (its limits built the store) and component, one
//! each; only a pair called twice within [`HOT`] gets one, so a thousand tenants called
//! once each cost nothing. There are at most `cap` pairs, and at most `per_tenant` of
//! them belong to one tenant, so one tenant's many plugins cannot take every other
//! tenant's spares.

use super::abi::Guest;
use super::isolation::TenantSandbox;
use super::sandbox::PluginState;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Store;

/// A pair last called longer ago than this gets no spare built.
pub(super) const HOT: Duration = Duration::from_secs(1);

/// A spare unused this long is dropped (its component may have been replaced).
pub(super) const IDLE_TTL: Duration = Duration::from_secs(30);

/// Building one spare, to completion.
pub(super) type Build = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The thread spares are built on, at `SCHED_IDLE`: it runs only while the core has
/// nothing else to do (a one-connection gateway waiting for its provider or its next
/// request), so a build never delays a request; on a saturated core builds wait, and
/// calls instantiate their own as without spares.
pub(super) struct Builder {
    jobs: SyncSender<Build>,
}

impl Builder {
    /// Starts the thread; it ends when the builder is dropped. `queue` bounds the
    /// builds waiting.
    pub(super) fn start(queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("plugin-spares".into())
            .spawn(move || run(rx))?;
        Ok(Self { jobs })
    }

    /// Queues `build`; hands it back when the queue is full (or the thread is gone).
    pub(super) fn submit(&self, build: Build) -> Result<(), Build> {
        self.jobs.try_send(build).map_err(|e| match e {
            TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
        })
    }
}

fn run(rx: Receiver<Build>) {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    // Where the kernel refuses, builds run at normal priority: still off the request's
    // task, only not deferred to idle time.
    let _ = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    // Instantiation is async (fibers, the epoch deadline's yields); nothing in it needs
    // a reactor.
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        tracing::warn!("spare instances are off: no runtime for their thread");
        return;
    };
    while let Ok(build) = rx.recv() {
        rt.block_on(build);
    }
}

/// An instantiated, never-called instance and its store.
pub(super) struct Spare {
    pub store: Store<PluginState>,
    pub guest: Guest,
}

/// One (tenant sandbox, component) pair the pool tracks.
struct Entry<S> {
    sandbox: Arc<TenantSandbox>,
    hash: Arc<str>,
    spare: Option<(S, Instant)>,
    /// A spare is being built for this pair.
    building: bool,
    /// Building one failed: the pair's calls instantiate inline, as without spares.
    broken: bool,
    last_call: Instant,
}

impl<S> Entry<S> {
    fn is(&self, sandbox: &Arc<TenantSandbox>, hash: &str) -> bool {
        Arc::ptr_eq(&self.sandbox, sandbox) && *self.hash == *hash
    }
}

/// What [`Spares::take`] found.
pub(super) struct Taken<S> {
    /// The pair's spare, if it had one.
    pub spare: Option<S>,
    /// The caller should build the pair's next spare and hand it to [`Spares::put`].
    pub build: bool,
}

/// How the spares have fared since start, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpareCounts {
    /// Calls that ran in a spare.
    pub served: u64,
    /// Spares built.
    pub built: u64,
    /// Builds that failed (their pairs instantiate per call from then on).
    pub failed: u64,
}

/// The gateway's spare instances (`S`: [`Spare`], or a stand-in in tests).
pub(super) struct Spares<S = Spare> {
    entries: Mutex<Vec<Entry<S>>>,
    served: AtomicU64,
    built: AtomicU64,
    failed: AtomicU64,
    /// Spares being built; with the entries' own, at most twice `cap` exist at once.
    building: AtomicUsize,
    cap: usize,
    per_tenant: usize,
}

impl<S> Spares<S> {
    /// At most `cap` pairs, `per_tenant` of them one tenant's; `cap` 0 keeps none.
    /// Instances alive in the pool: at most `2 * cap` (held, and being built).
    pub(super) fn new(cap: usize, per_tenant: usize) -> Self {
        Self {
            entries: Mutex::new(Vec::with_capacity(cap)),
            building: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            built: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cap,
            per_tenant: per_tenant.clamp(1, cap.max(1)),
        }
    }

    /// Takes the pair's spare (if any) for a call, and says whether to build its next.
    /// What is dropped to make room is returned, to be torn down off the caller's path.
    pub(super) fn take(
        &self,
        sandbox: &Arc<TenantSandbox>,
        hash: &Arc<str>,
        dropped: &mut Vec<S>,
    ) -> Taken<S> {
        let none = Taken {
            spare: None,
            build: false,
        };
        if self.cap == 0 {
            return none;
        }
        let now = Instant::now();
        let mut entries = crate::sync::lock(&self.entries);
        if let Some(e) = entries.iter_mut().find(|e| e.is(sandbox, hash)) {
            let hot = now.duration_since(e.last_call) < HOT;
            e.last_call = now;
            let spare =
                e.spare
                    .take()
                    .and_then(|(s, since)| match now.duration_since(since) < IDLE_TTL {
                        true => Some(s),
                        false => {
                            dropped.push(s);
                            None
                        }
                    });
            if spare.is_some() {
                self.served.fetch_add(1, Ordering::Relaxed);
            }
            let build = (spare.is_some() || hot)
                && !e.building
                && !e.broken
                && self.building.load(Ordering::Relaxed) < self.cap;
            if build {
                e.building = true;
                self.building.fetch_add(1, Ordering::Relaxed);
            }
            return Taken { spare, build };
        }
        // A first call: remember the pair, build nothing yet.
        let tenant_count = entries
            .iter()
            .filter(|e| Arc::ptr_eq(&e.sandbox, sandbox))
            .count();
        if entries.len() >= self.cap || tenant_count >= self.per_tenant {
            // The least recently called pair goes: the tenant's own when it is at its
            // share, else anyone's. A spare still being built for it is handed back
            // by `put` and torn down.
            let own = tenant_count >= self.per_tenant;
            let victim = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !own || Arc::ptr_eq(&e.sandbox, sandbox))
                .min_by_key(|(_, e)| e.last_call)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    if let Some((s, _)) = entries.swap_remove(i).spare {
                        dropped.push(s);
                    }
                }
                None => return none,
            }
        }
        entries.push(Entry {
            sandbox: sandbox.clone(),
            hash: hash.clone(),
            spare: None,
            building: false,
            broken: false,
            last_call: now,
        });
        none
    }

    /// Hands over the spare built for the pair after [`Spares::take`] said to build it
    /// (`None`: building failed). Returns what is left to tear down: the spare, when
    /// the pair is no longer tracked, or one it replaces.
    pub(super) fn put(
        &self,
        sandbox: &Arc<TenantSandbox>,
        hash: &str,
        spare: Option<S>,
    ) -> Option<S> {
        self.building.fetch_sub(1, Ordering::Relaxed);
        let counter = match spare {
            Some(_) => &self.built,
            None => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut entries = crate::sync::lock(&self.entries);
        let Some(e) = entries.iter_mut().find(|e| e.is(sandbox, hash)) else {
            return spare;
        };
        e.building = false;
        match spare {
            Some(s) => {
                let old = e.spare.replace((s, Instant::now()));
                old.map(|(s, _)| s)
            }
            None => {
                e.broken = true;
                None
            }
        }
    }

    /// Gives up a build [`Spares::take`] asked for without trying it (no room to run
    /// it): the pair's next call may ask again.
    pub(super) fn abandon(&self, sandbox: &Arc<TenantSandbox>, hash: &str) {
        self.building.fetch_sub(1, Ordering::Relaxed);
        let mut entries = crate::sync::lock(&self.entries);
        if let Some(e) = entries.iter_mut().find(|e| e.is(sandbox, hash)) {
            e.building = false;
        }
    }

    /// How the spares have fared since start.
    pub(super) fn counts_since_start(&self) -> SpareCounts {
        SpareCounts {
            served: self.served.load(Ordering::Relaxed),
            built: self.built.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Pairs tracked, and how many of them hold a spare.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let entries = crate::sync::lock(&self.entries);
        let held = entries.iter().filter(|e| e.spare.is_some()).count();
        (entries.len(), held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::SandboxLimits;

    fn sandbox() -> Arc<TenantSandbox> {
        Arc::new(TenantSandbox::new(
            SandboxLimits::default(),
            4,
            Duration::from_millis(10),
        ))
    }

    #[test]
    fn a_pair_gets_a_build_only_once_it_is_called_again_and_one_at_a_time() {
        let spares = Spares::<u32>::new(8, 4);
        let (t, h): (_, Arc<str>) = (sandbox(), Arc::from("h1"));
        let mut dropped = vec![];
        let first = spares.take(&t, &h, &mut dropped);
        assert!(
            first.spare.is_none() && !first.build,
            "a first call builds nothing"
        );
        let second = spares.take(&t, &h, &mut dropped);
        assert!(second.spare.is_none() && second.build, "a hot pair builds");
        let third = spares.take(&t, &h, &mut dropped);
        assert!(!third.build, "one build at a time");
        assert!(spares.put(&t, &h, Some(7)).is_none());
        assert_eq!(spares.counts(), (1, 1));
        let hit = spares.take(&t, &h, &mut dropped);
        assert_eq!(hit.spare, Some(7), "the spare serves one call");
        assert!(hit.build, "and its successor is built");
        assert!(spares.take(&t, &h, &mut dropped).spare.is_none());
        // A failed build stops building for the pair.
        assert!(spares.put(&t, &h, None).is_none());
        assert!(!spares.take(&t, &h, &mut dropped).build);
        assert!(dropped.is_empty());
        assert_eq!(spares.counts(), (1, 0));
        assert_eq!(spares.building.load(Ordering::Relaxed), 0);
        assert_eq!(
            spares.counts_since_start(),
            SpareCounts {
                served: 1,
                built: 1,
                failed: 1
            }
        );
    }

    #[test]
    fn pairs_are_bounded_overall_and_per_tenant() {
        let spares = Spares::<u32>::new(4, 2);
        let (a, b) = (sandbox(), sandbox());
        let mut dropped = vec![];
        for i in 0..10 {
            spares.take(&a, &Arc::from(format!("a{i}")), &mut dropped);
        }
        assert_eq!(spares.counts().0, 2, "tenant a holds its share only");
        for i in 0..10 {
            spares.take(&b, &Arc::from(format!("b{i}")), &mut dropped);
        }
        assert_eq!(spares.counts().0, 4);
        let entries = crate::sync::lock(&spares.entries);
        assert_eq!(
            entries
                .iter()
                .filter(|e| Arc::ptr_eq(&e.sandbox, &a))
                .count(),
            2,
            "tenant b's pairs did not push out tenant a's"
        );
    }

    #[test]
    fn a_spare_is_only_for_its_own_pair_and_handed_back_once_its_pair_is_gone() {
        let spares = Spares::<u32>::new(1, 1);
        let (a, b) = (sandbox(), sandbox());
        let h: Arc<str> = Arc::from("h");
        let mut dropped = vec![];
        spares.take(&a, &h, &mut dropped);
        assert!(spares.take(&a, &h, &mut dropped).build);
        assert!(spares.put(&a, &h, Some(1)).is_none());
        // Another tenant's call of the same component does not get a's spare; its
        // pair replaces a's, whose spare goes to be torn down.
        let other = spares.take(&b, &h, &mut dropped);
        assert!(other.spare.is_none());
        assert_eq!(dropped, vec![1]);
        assert!(spares.take(&b, &h, &mut dropped).build);
        // b's pair goes in turn while its spare is being built: `put` hands it back.
        spares.take(&a, &h, &mut dropped);
        assert_eq!(spares.put(&b, &h, Some(2)), Some(2));
        assert_eq!(spares.counts(), (1, 0));
    }

    #[test]
    fn an_expired_spare_is_not_used() {
        let spares = Spares::<u32>::new(2, 2);
        let (t, h): (_, Arc<str>) = (sandbox(), Arc::from("h"));
        let mut dropped = vec![];
        spares.take(&t, &h, &mut dropped);
        assert!(spares.take(&t, &h, &mut dropped).build);
        spares.put(&t, &h, Some(3));
        if let Some(e) = crate::sync::lock(&spares.entries).first_mut() {
            let (_, since) = e.spare.as_mut().expect("held");
            *since = since.checked_sub(IDLE_TTL).unwrap_or(*since);
        }
        let taken = spares.take(&t, &h, &mut dropped);
        assert!(taken.spare.is_none());
        assert_eq!(dropped, vec![3]);
    }
}
