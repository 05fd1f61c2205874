//! A window's past, for windows Redis starts counting late.
//!
//! Redis counts a scope's usage only in the windows some limit (or a plugin's usage
//! read) has asked for, from the moment it first did. The in-process ledger counts
//! every scope's calendar windows from its first request, so a budget granted mid-day
//! there sees the morning's spend. To behave the same, the first replica that meets a
//! window Redis does not count yet seeds it from the shared request log (PostgreSQL):
//! the usage already logged in the window, then the window is registered, both in one
//! script run, so two replicas racing seed it once.
//!
//! What the log does not hold yet is not seeded: requests that finished in the last
//! moments before the seed and whose rows had not been shipped (the shipping lag, a few
//! milliseconds to the log's flush interval).

use super::{FleetLedger, Spec, prefix, window};
use crate::ledger::{Amount, Limit, ScopeKey, calendar};
use crate::sync::lock;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Usage per bucket index, as [`UsageHistory::usage`] answers it.
pub type PastUsage<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<(i64, Amount)>, String>> + Send + 'a>>;

/// Where the fleet's past usage is read from: the shared request log.
pub trait UsageHistory: Send + Sync {
    /// Usage counted under `scope` by requests that ended in `[since_ms, until_ms)`,
    /// summed per `bucket_ms`-wide bucket (by index, `end / bucket_ms`), or in one sum
    /// (index 0) when `bucket_ms` is 0.
    fn usage<'a>(
        &'a self,
        scope: &'a ScopeKey,
        since_ms: i64,
        until_ms: i64,
        bucket_ms: i64,
    ) -> PastUsage<'a>;
}

/// Longest a request waits for its windows' history (its first request per replica
/// only), all windows together; past it they start counting now, as without history.
const HISTORY_WAIT: Duration = Duration::from_secs(1);

/// Seeds running at once on a replica, at most; a window that finds none free starts
/// counting now (a plugin's read) or waits within [`HISTORY_WAIT`] (an admission).
pub(super) const MAX_SEEDS: usize = 4;

/// Windows a replica remembers having seen registered (bounded: forgetting only costs
/// one more check).
const MAX_SEEN: usize = 100_000;

/// A window's id in this replica's sets: its registration key and field.
fn id(w: &str, field: &str) -> String {
    format!("{w}\u{1f}{field}")
}

/// Where a window stands with respect to its past.
pub(super) enum Seeded {
    /// Counted in Redis (seeded or found so), or nothing to seed it from.
    Yes,
    /// Not yet: the caller seeds it.
    Start,
    /// Not yet: another call is seeding it.
    Running,
}

impl FleetLedger {
    /// Reads the past usage from `history` for windows Redis does not count yet.
    pub fn set_history(&self, history: std::sync::Arc<dyn UsageHistory>) {
        let _ = self.history.set(history);
    }

    /// Whether `l`'s window is known to be counted in Redis (always so without a log
    /// to seed from), or else whether the caller should start seeding it: one
    /// background seed at a time per window, whose reads answer locally meanwhile.
    pub(super) fn seeded(&self, l: &Limit, now_ms: i64) -> Seeded {
        if self.history.get().is_none() {
            return Seeded::Yes;
        }
        let Some(id) = self.window_id(l, now_ms) else {
            return Seeded::Yes;
        };
        if lock(&self.seen).contains(&id) {
            return Seeded::Yes;
        }
        let mut running = lock(&self.seeding);
        if running.len() >= MAX_SEEN {
            running.clear();
        }
        if running.insert(id) {
            Seeded::Start
        } else {
            Seeded::Running
        }
    }

    /// Ends a background seed of `l`'s window (seeded or not: a later read retries).
    pub(super) fn forget_seeding(&self, l: &Limit, now_ms: i64) {
        if let Some(id) = self.window_id(l, now_ms) {
            lock(&self.seeding).remove(&id);
        }
    }

    /// The id this replica remembers `l`'s window by; `None` for an exact log.
    fn window_id(&self, l: &Limit, now_ms: i64) -> Option<String> {
        let p = prefix(&l.scope.tenant);
        let s = self.spec(&p, l, Amount::ZERO, now_ms);
        window(&p, l, &s).map(|(w, field, _)| id(&w, &field))
    }

    /// Seeds the windows `limits` read that this replica has not seen registered: those
    /// Redis does not count yet get their logged past first. Failures only leave a
    /// window to start counting now (the behaviour without history).
    /// `specs` are the limits' specs under prefix `p` (the caller has them already).
    pub(super) async fn seed(&self, p: &str, limits: &[Limit], specs: &[Spec], now_ms: i64) {
        let Some(history) = self.history.get() else {
            return;
        };
        // Redis away (fail fast), or settlements still waiting to reach it: those may
        // already be in the log, and would count twice.
        if !self.is_up() || !self.backlog_is_empty() {
            return;
        }
        // Each window once per replica: (registration key, field) with its spec.
        let mut todo: Vec<(String, String, &Limit, &Spec)> = Vec::new();
        {
            let seen = lock(&self.seen);
            for (l, s) in limits.iter().zip(specs) {
                let Some((w, field, _)) = window(p, l, s) else {
                    continue;
                };
                if seen.contains(&id(&w, &field))
                    || todo.iter().any(|(a, b, ..)| *a == w && *b == field)
                {
                    continue;
                }
                todo.push((w, field, l, s));
            }
        }
        if todo.is_empty() {
            return;
        }
        // A few seeds at a time on this replica (each is an aggregate over the log).
        let Ok(Ok(_slot)) =
            tokio::time::timeout(HISTORY_WAIT, self.seed_slots.clone().acquire_owned()).await
        else {
            return;
        };
        let deadline = tokio::time::Instant::now() + HISTORY_WAIT;
        // Which of them Redis already counts (another replica, or an earlier run).
        let mut pipe = redis::pipe();
        for (w, field, ..) in &todo {
            pipe.cmd("HEXISTS").arg(w).arg(field);
        }
        let mut conn = self.conn.clone();
        let known: Vec<bool> = match self.bounded(pipe.query_async(&mut conn)).await {
            Ok(k) => k,
            Err(e) => {
                let _ = self.record(Some(&e));
                return;
            }
        };
        let mut pending = Vec::new();
        for ((w, field, l, s), known) in todo.iter().zip(known) {
            if known {
                self.remember(w, field);
            } else {
                pending.push((w, field, *l, s));
            }
        }
        if pending.is_empty() {
            return;
        }
        // Every window's past at once, within one deadline.
        let reads = pending.iter().map(|(_, _, l, s)| {
            let (since, bucket_ms) = match s.k {
                "c" => (
                    calendar::bucket_start_ms(l.period, calendar::bucket(l.period, now_ms)),
                    0,
                ),
                // The sub-buckets a read sums: the current one and sixty before it.
                _ => ((s.cur - 60) * s.w, s.w),
            };
            history.usage(&l.scope, since, now_ms + 1, bucket_ms)
        });
        let pasts = match tokio::time::timeout_at(deadline, futures_util::future::join_all(reads))
            .await
        {
            Ok(pasts) => pasts,
            Err(_) => {
                tracing::warn!(
                    "reading budget windows' past from the request log took too long; they count from now"
                );
                return;
            }
        };
        let mut seeds = Vec::new();
        for ((w, field, l, s), past) in pending.iter().zip(pasts) {
            let past = match past {
                Ok(past) => past,
                Err(e) => {
                    tracing::warn!(error = %e, budget = %l.name, "cannot read a budget window's past from the request log; it counts from now");
                    continue;
                }
            };
            let ttl = match (s.k, l.period) {
                ("c", calendar::Period::Total) => 0,
                ("c", period) => {
                    calendar::bucket_end_ms(period, calendar::bucket(period, now_ms)) - now_ms
                        + crate::time::DAY_MS
                }
                _ => s.w * 122,
            };
            // As text, exact whatever the sum (Lua's numbers are doubles).
            let amounts: Vec<(i64, [String; 3])> = past
                .into_iter()
                .filter(|(_, a)| *a != Amount::ZERO)
                .map(|(i, a)| {
                    (
                        i,
                        [
                            a.requests.to_string(),
                            a.tokens.to_string(),
                            a.cost_nano.to_string(),
                        ],
                    )
                })
                .collect();
            seeds.push(serde_json::json!({
                "w": w,
                "f": field,
                "v": if s.k == "r" { s.w } else { 0 },
                "k": s.k,
                "key": s.key,
                "ttl": ttl,
                "a": amounts,
            }));
        }
        if seeds.is_empty() {
            return;
        }
        let payload =
            serde_json::json!({ "seeds": seeds, "ttl": super::REGISTERED_TTL_MS }).to_string();
        if self.call::<i64>("seed", now_ms, payload).await.is_ok() {
            for (w, field, ..) in &pending {
                self.remember(w, field);
            }
        }
    }

    fn remember(&self, w: &str, field: &str) {
        let id = id(w, field);
        let mut seen = lock(&self.seen);
        if seen.len() >= MAX_SEEN {
            seen.clear();
        }
        seen.insert(id);
    }
}
