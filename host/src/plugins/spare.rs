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

/// A spare older than this is not used (its component may have been replaced): it is
/// dropped by the next call, build or newcomer that comes across it.
pub(super) const IDLE_TTL: Duration = Duration::from_secs(30);

/// After a failed build, the pair's calls instantiate their own for this long.
pub(super) const RETRY: Duration = Duration::from_secs(10);

/// Building one spare, to completion.
pub(super) type Build = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The thread spares are built on, at nice 5: a build runs beside the request that
/// asked for it (or while the worker waits for a provider), not inside it. Not at
/// `SCHED_IDLE`: a build takes locks the workers take too (the pooling allocator's),
/// and a thread that may not run for as long as the core is busy must not hold them.
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

/// The spare builder's nice value.
const BUILDER_NICE: i32 = 5;

fn run(rx: Receiver<Build>) {
    // Linux's setpriority on a process id of 0 applies to the calling thread. Where it
    // is refused, builds run at the workers' priority.
    let _ = rustix::process::setpriority_process(None, BUILDER_NICE);
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
    /// No build before this (a failed one); `broken` pairs never get one.
    retry_at: Option<Instant>,
    /// The pair's instances are too large to keep idle.
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
    /// When set, the caller should build the pair's next spare and hand it over with
    /// [`Ticket::finish`].
    pub build: Option<Ticket<S>>,
}

/// How a build ended.
pub(super) enum Built<S> {
    /// A spare, ready for the pair's next call.
    Spare(S),
    /// The instance holds more memory than a spare may keep idle: the pair gets none.
    TooLarge,
    /// Instantiation failed (a trap, a full pool): none for [`RETRY`].
    Failed,
}

/// A build the pool asked for. Dropped unfinished (its job never ran: a full queue, a
/// runtime shutting down), it gives the build up, so the pair may ask again.
pub(super) struct Ticket<S> {
    spares: Arc<Spares<S>>,
    sandbox: Arc<TenantSandbox>,
    hash: Arc<str>,
    done: bool,
}

impl<S> Ticket<S> {
    /// Hands over what the build made; returns what is left to tear down (the spare,
    /// when its pair is no longer tracked, and any expired spares found on the way).
    pub(super) fn finish(mut self, built: Built<S>) -> Vec<S> {
        self.done = true;
        self.spares.put(&self.sandbox, &self.hash, built)
    }
}

impl<S> Drop for Ticket<S> {
    fn drop(&mut self) {
        if !self.done {
            self.spares.abandon(&self.sandbox, &self.hash);
        }
    }
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
    /// Builds asked for and not yet finished (queued or running), at most `cap`.
    building: AtomicUsize,
    cap: usize,
    per_tenant: usize,
}

impl<S> Spares<S> {
    /// At most `cap` pairs, `per_tenant` of them one tenant's; `cap` 0 keeps none.
    /// At most `cap` builds are asked for at once (queued for the one builder thread).
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
    /// What is dropped on the way (expired, or to make room) goes into `dropped`.
    pub(super) fn take(
        self: &Arc<Self>,
        sandbox: &Arc<TenantSandbox>,
        hash: &Arc<str>,
        dropped: &mut Vec<S>,
    ) -> Taken<S> {
        let none = Taken {
            spare: None,
            build: None,
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
                && e.retry_at.is_none_or(|t| now >= t)
                && self.building.load(Ordering::Relaxed) < self.cap;
            if !build {
                return Taken { spare, build: None };
            }
            e.building = true;
            self.building.fetch_add(1, Ordering::Relaxed);
            let ticket = Ticket {
                spares: self.clone(),
                sandbox: sandbox.clone(),
                hash: hash.clone(),
                done: false,
            };
            return Taken {
                spare,
                build: Some(ticket),
            };
        }
        // A first call: remember the pair, build nothing yet.
        sweep(&mut entries, now, dropped);
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
            retry_at: None,
            broken: false,
            last_call: now,
        });
        none
    }

    /// What a build for the pair made (see [`Ticket::finish`]).
    fn put(&self, sandbox: &Arc<TenantSandbox>, hash: &str, built: Built<S>) -> Vec<S> {
        self.building.fetch_sub(1, Ordering::Relaxed);
        let counter = match built {
            Built::Spare(_) => &self.built,
            Built::TooLarge | Built::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut entries = crate::sync::lock(&self.entries);
        let mut dropped = Vec::new();
        sweep(&mut entries, now, &mut dropped);
        let Some(e) = entries.iter_mut().find(|e| e.is(sandbox, hash)) else {
            if let Built::Spare(s) = built {
                dropped.push(s);
            }
            return dropped;
        };
        e.building = false;
        match built {
            Built::Spare(s) => dropped.extend(e.spare.replace((s, now)).map(|(s, _)| s)),
            Built::TooLarge => e.broken = true,
            Built::Failed => e.retry_at = Some(now + RETRY),
        }
        dropped
    }

    /// Gives up a build [`Spares::take`] asked for without trying it: the pair's next
    /// call may ask again.
    fn abandon(&self, sandbox: &Arc<TenantSandbox>, hash: &str) {
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

/// Moves spares older than [`IDLE_TTL`] out of `entries` into `dropped`.
fn sweep<S>(entries: &mut [Entry<S>], now: Instant, dropped: &mut Vec<S>) {
    for e in entries {
        if e.spare
            .as_ref()
            .is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_TTL)
            && let Some((s, _)) = e.spare.take()
        {
            dropped.push(s);
        }
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

    fn pool(cap: usize, per_tenant: usize) -> Arc<Spares<u32>> {
        Arc::new(Spares::new(cap, per_tenant))
    }

    #[test]
    fn a_pair_gets_a_build_only_once_it_is_called_again_and_one_at_a_time() {
        let spares = pool(8, 4);
        let (t, h): (_, Arc<str>) = (sandbox(), Arc::from("h1"));
        let mut dropped = vec![];
        let first = spares.take(&t, &h, &mut dropped);
        assert!(
            first.spare.is_none() && first.build.is_none(),
            "a first call builds nothing"
        );
        let ticket = spares
            .take(&t, &h, &mut dropped)
            .build
            .expect("a hot pair builds");
        assert!(
            spares.take(&t, &h, &mut dropped).build.is_none(),
            "one build at a time"
        );
        assert!(ticket.finish(Built::Spare(7)).is_empty());
        assert_eq!(spares.counts(), (1, 1));
        let hit = spares.take(&t, &h, &mut dropped);
        assert_eq!(hit.spare, Some(7), "the spare serves one call");
        let ticket = hit.build.expect("and its successor is built");
        assert!(spares.take(&t, &h, &mut dropped).spare.is_none());
        // A build that fails waits before the pair tries again.
        assert!(ticket.finish(Built::Failed).is_empty());
        assert!(spares.take(&t, &h, &mut dropped).build.is_none());
        if let Some(e) = crate::sync::lock(&spares.entries).first_mut() {
            e.retry_at = Some(Instant::now());
        }
        let ticket = spares.take(&t, &h, &mut dropped).build.expect("retried");
        // Too large to keep idle: never again for the pair.
        assert!(ticket.finish(Built::TooLarge).is_empty());
        if let Some(e) = crate::sync::lock(&spares.entries).first_mut() {
            e.retry_at = None;
        }
        assert!(spares.take(&t, &h, &mut dropped).build.is_none());
        assert!(dropped.is_empty());
        assert_eq!(spares.counts(), (1, 0));
        assert_eq!(spares.building.load(Ordering::Relaxed), 0);
        assert_eq!(
            spares.counts_since_start(),
            SpareCounts {
                served: 1,
                built: 1,
                failed: 2
            }
        );
    }

    #[test]
    fn a_build_that_never_runs_is_given_up() {
        let spares = pool(8, 4);
        let (t, h): (_, Arc<str>) = (sandbox(), Arc::from("h"));
        let mut dropped = vec![];
        spares.take(&t, &h, &mut dropped);
        drop(spares.take(&t, &h, &mut dropped).build.expect("build"));
        assert_eq!(spares.building.load(Ordering::Relaxed), 0);
        assert!(
            spares.take(&t, &h, &mut dropped).build.is_some(),
            "asked again"
        );
    }

    #[test]
    fn pairs_are_bounded_overall_and_per_tenant() {
        let spares = pool(4, 2);
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
        let spares = pool(1, 1);
        let (a, b) = (sandbox(), sandbox());
        let h: Arc<str> = Arc::from("h");
        let mut dropped = vec![];
        spares.take(&a, &h, &mut dropped);
        let ticket = spares.take(&a, &h, &mut dropped).build.expect("build");
        assert!(ticket.finish(Built::Spare(1)).is_empty());
        // Another tenant's call of the same component does not get a's spare; its
        // pair replaces a's, whose spare goes to be torn down.
        let other = spares.take(&b, &h, &mut dropped);
        assert!(other.spare.is_none());
        assert_eq!(dropped, vec![1]);
        let ticket = spares.take(&b, &h, &mut dropped).build.expect("build");
        // b's pair goes in turn while its spare is being built: it is handed back.
        spares.take(&a, &h, &mut dropped);
        assert_eq!(ticket.finish(Built::Spare(2)), vec![2]);
        assert_eq!(spares.counts(), (1, 0));
    }

    #[test]
    fn an_expired_spare_is_not_used_and_is_swept() {
        let spares = pool(4, 4);
        let (t, h): (_, Arc<str>) = (sandbox(), Arc::from("h"));
        let mut dropped = vec![];
        spares.take(&t, &h, &mut dropped);
        let ticket = spares.take(&t, &h, &mut dropped).build.expect("build");
        ticket.finish(Built::Spare(3));
        let age = |spares: &Spares<u32>| {
            for e in crate::sync::lock(&spares.entries).iter_mut() {
                if let Some((_, since)) = e.spare.as_mut() {
                    *since = since.checked_sub(IDLE_TTL).unwrap_or(*since);
                }
            }
        };
        age(&spares);
        let taken = spares.take(&t, &h, &mut dropped);
        assert!(taken.spare.is_none());
        assert_eq!(dropped, vec![3]);
        // An idle pair's old spare goes when anyone else's build finishes.
        let other: Arc<str> = Arc::from("other");
        spares.take(&t, &other, &mut dropped);
        let for_other = spares.take(&t, &other, &mut dropped).build.expect("build");
        taken.build.expect("build").finish(Built::Spare(4));
        age(&spares);
        assert_eq!(for_other.finish(Built::Spare(5)), vec![4]);
    }
}
