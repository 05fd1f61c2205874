//! Who may compile a component at once. Compiling takes seconds of a core (a compile
//! bomb takes its whole `compile_timeout_ms`), so the workers are shared out:
//!
//! - the operator's own plugin files compile one at a time in a lane of their own, so
//!   no upload can keep a tenant's bundle of first-party plugins from applying;
//! - uploads share a few workers, at most one per owner (a tenant, or the platform):
//!   one tenant's bomb holds one worker while another tenant's upload takes the next.
//!   A tenant's bundle applies are serialised anyway (and compile their plugins one
//!   after another); the owner's turn also covers what runs beside an apply, such as a
//!   replay of a candidate bundle.

use super::compile::CompileFailure;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Whose bytes a component is, which decides the lane it compiles in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin<'a> {
    /// A file from the operator's plugin folder.
    Operator,
    /// Bytes uploaded by `owner` (`tenant <id>`, or `platform`).
    Upload {
        /// Who uploaded them.
        owner: &'a str,
    },
}

/// The compile workers and who waits for which.
pub(super) struct Lanes {
    operator: Semaphore,
    uploads: Semaphore,
    /// Owners compiling or waiting to, each with its one turn.
    owners: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A compile worker, held while compiling.
pub(super) struct Turn<'a> {
    _worker: SemaphorePermit<'a>,
    _owner: Option<OwnerTurn<'a>>,
}

/// An owner's turn; the owner's entry goes when nobody holds or waits for it.
struct OwnerTurn<'a> {
    lanes: &'a Lanes,
    owner: String,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for OwnerTurn<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.lanes.forget_idle(&self.owner);
    }
}

impl Lanes {
    /// `upload_workers` uploads compile at once (at least one).
    pub(super) fn new(upload_workers: usize) -> Self {
        Self {
            operator: Semaphore::new(1),
            uploads: Semaphore::new(upload_workers.max(1)),
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// Upload workers: one per two cores, and at least two where there are two cores
    /// (each compile runs in a child process at a lower priority, within its CPU and
    /// memory budget; a single core keeps one, or compiles would share it three ways
    /// with the operator's lane and each could run out of wall-clock time).
    pub(super) fn upload_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(n.get().min(2)))
    }

    /// Waits up to `wait` for a worker of `origin`'s lane (an upload first for its
    /// owner's turn); the refusal says what it waited for.
    pub(super) async fn enter(
        &self,
        origin: Origin<'_>,
        wait: Duration,
    ) -> Result<Turn<'_>, CompileFailure> {
        let deadline = tokio::time::Instant::now() + wait;
        let (owner, lane, busy) = match origin {
            Origin::Operator => (
                None,
                &self.operator,
                "the compile worker for the operator's plugins stayed busy; retry shortly",
            ),
            Origin::Upload { owner } => (
                Some(self.owner_turn(owner, deadline).await?),
                &self.uploads,
                "every compile worker stayed busy; retry the upload shortly",
            ),
        };
        let worker = tokio::time::timeout_at(deadline, lane.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| CompileFailure::of_machine(busy))?;
        Ok(Turn {
            _worker: worker,
            _owner: owner,
        })
    }

    /// Waits until `deadline` for `owner`'s one turn.
    async fn owner_turn(
        &self,
        owner: &str,
        deadline: tokio::time::Instant,
    ) -> Result<OwnerTurn<'_>, CompileFailure> {
        let semaphore = crate::sync::lock(&self.owners)
            .entry(owner.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone();
        // Dropped on every way out, which forgets an owner nobody else waits for.
        let mut turn = OwnerTurn {
            lanes: self,
            owner: owner.to_string(),
            permit: None,
        };
        match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => {
                turn.permit = Some(permit);
                Ok(turn)
            }
            _ => Err(CompileFailure::of_machine(
                "another upload of the same tenant (or of the platform) is still \
                 compiling; retry once it is done",
            )),
        }
    }

    /// Drops `owner`'s entry when nobody holds or waits for its turn.
    fn forget_idle(&self, owner: &str) {
        let mut owners = crate::sync::lock(&self.owners);
        if owners.get(owner).is_some_and(|s| Arc::strong_count(s) == 1) {
            owners.remove(owner);
        }
    }

    /// Owners with an entry now.
    #[cfg(test)]
    fn owners(&self) -> usize {
        crate::sync::lock(&self.owners).len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Lanes, Origin};
    use std::time::Duration;

    const WAIT: Duration = Duration::from_millis(50);

    fn upload(owner: &str) -> Origin<'_> {
        Origin::Upload { owner }
    }

    #[tokio::test]
    async fn an_owner_holds_one_upload_worker_and_others_take_the_rest() {
        let lanes = Lanes::new(2);
        let bomb = lanes
            .enter(upload("tenant a"), WAIT)
            .await
            .expect("a's turn");
        // The same owner's next upload waits behind its first, and says so.
        let again = lanes
            .enter(upload("tenant a"), WAIT)
            .await
            .err()
            .expect("refused");
        assert!(
            again.message.contains("another upload of the same tenant"),
            "{}",
            again.message
        );
        assert!(!again.deterministic);
        // Another owner compiles beside it, and the operator's lane is its own.
        let b = lanes
            .enter(upload("tenant b"), WAIT)
            .await
            .expect("b's turn");
        let operator = lanes.enter(Origin::Operator, WAIT).await.expect("operator");
        // With both upload workers held, a third owner waits for one.
        let c = lanes
            .enter(upload("platform"), WAIT)
            .await
            .err()
            .expect("busy");
        assert!(c.message.contains("every compile worker"), "{}", c.message);
        drop((bomb, operator));
        let c = lanes
            .enter(upload("platform"), WAIT)
            .await
            .expect("a worker freed");
        drop((b, c));
        // Owners nobody holds or waits for are forgotten.
        assert_eq!(lanes.owners(), 0);
    }

    #[tokio::test]
    async fn an_owner_waiting_for_its_turn_gets_it_when_the_first_finishes() {
        let lanes = std::sync::Arc::new(Lanes::new(2));
        let first = lanes.enter(upload("tenant a"), WAIT).await.expect("first");
        // A wait given up (its request gone) leaves nothing behind.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(5),
            lanes.enter(upload("tenant a"), Duration::from_secs(10)),
        )
        .await;
        assert!(gave_up.is_err(), "still waiting when dropped");
        assert_eq!(lanes.owners(), 1, "only the first's entry");
        let waiter = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .enter(upload("tenant a"), Duration::from_secs(10))
                    .await
                    .map(drop)
                    .map_err(|e| e.message)
            })
        };
        tokio::task::yield_now().await;
        drop(first);
        waiter.await.expect("joined").expect("its turn came");
        // Neither the wait given up nor the finished ones left a reference behind.
        assert_eq!(lanes.owners(), 0);
    }
}
