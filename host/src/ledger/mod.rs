//! The usage ledger: per-scope usage counters that budgets and rate limits read on the
//! request path.
//!
//! Everything lives in memory behind one `std::sync::Mutex`, held for a few
//! microseconds and never across an await: [`Ledger::admit`] checks the limits and
//! reserves an estimate in one critical section, so concurrent requests cannot jointly
//! overshoot a cap by more than one estimate; [`Ledger::settle`] swaps the estimate
//! for the actual usage and reports alert thresholds crossed. The log writer persists
//! the same usage ([`persist::write_entries`]) so [`persist::load`] can rebuild the
//! counters after a restart.
//!
//! Windows are UTC calendar buckets ([`calendar`]); rolling windows use the
//! sliding-window-counter approximation (current bucket plus the previous one weighted
//! by the share of it still inside the window).

mod amount;
pub mod calendar;
mod counters;
mod limit;
pub mod persist;
mod scope;
#[cfg(test)]
mod tests;

pub use amount::{Amount, Metric, Reading};
pub use calendar::{
    Period, Window, bucket, bucket_end_ms, bucket_start_ms, rfc3339, window_start_ms,
};
pub use limit::{Exceeded, Limit};
pub use persist::{
    LedgerEntry, MIGRATION, list_alerts, load, prune, record_alert, write_entries, write_limits,
};
pub use scope::{ScopeKey, ScopeKind};

use counters::{Counters, Fired};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The in-memory counters of every scope; `Send + Sync`, share it behind an `Arc`.
#[derive(Default)]
pub struct Ledger {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    scopes: HashMap<ScopeKey, Counters>,
    /// Limits first seen (or changed) since the last [`Ledger::take_new_limits`].
    new_limits: Vec<Limit>,
}

impl State {
    fn counters(&mut self, key: &ScopeKey) -> &mut Counters {
        self.scopes.entry(key.clone()).or_default()
    }

    fn release(&mut self, scopes: &[ScopeKey], estimate: Amount) {
        for key in scopes {
            if let Some(c) = self.scopes.get_mut(key) {
                c.reserved = c.reserved.saturating_sub(estimate);
            }
        }
    }
}

/// Counters are plain numbers, valid even if a holder panicked: ignore poisoning
/// rather than take the request path down with it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held by an admitted request until it is settled; dropping it unsettled (client
/// gone, upstream failed before usage was known) releases the estimate.
pub struct Reservation {
    state: Arc<Mutex<State>>,
    scopes: Arc<[ScopeKey]>,
    estimate: Amount,
    limits: Vec<Limit>,
    settled: bool,
}

impl Reservation {
    /// The scopes the estimate is held under (and the actual usage will count in).
    pub fn scopes(&self) -> &Arc<[ScopeKey]> {
        &self.scopes
    }

    /// What was reserved.
    pub fn estimate(&self) -> Amount {
        self.estimate
    }

    /// The limits checked at admission; their alerts are evaluated at settlement.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("scopes", &self.scopes)
            .field("estimate", &self.estimate)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            lock(&self.state).release(&self.scopes, self.estimate);
        }
    }
}

/// A threshold crossed; sent as a log event and webhook JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub tenant: String,
    /// The limit's name.
    pub budget: String,
    /// The scope's kind label ("team", "metadata.project", ...).
    pub scope: String,
    pub value: String,
    pub metric: Metric,
    pub period: Period,
    pub window: Window,
    pub threshold_pct: u32,
    pub limit: f64,
    /// Settled usage right after the crossing, metric unit.
    pub used: f64,
    pub window_start_ms: i64,
    pub resets_at_ms: i64,
    pub at_ms: i64,
}

impl Ledger {
    /// An empty ledger (start-up uses [`persist::load`] instead).
    pub fn new() -> Self {
        Self::default()
    }

    /// A scope's usage in one window; zero for scopes never counted.
    pub fn read(&self, key: &ScopeKey, period: Period, window: Window, now_ms: i64) -> Reading {
        let state = lock(&self.state);
        match state.scopes.get(key) {
            Some(c) => c.reading(period, window, now_ms),
            None => Counters::default().reading(period, window, now_ms),
        }
    }

    /// Atomically (one lock): if, for every limit, current usage (settled + reserved)
    /// is below `limit.limit`, reserves `estimate` under every key of `scopes`; else
    /// returns the first limit at or over its cap and reserves nothing. Every limit
    /// passed is remembered for [`Ledger::limits_seen`], refused or not. A limit's scope
    /// is normally one of `scopes`, or usage settled later never reaches it.
    #[expect(
        clippy::result_large_err,
        reason = "the API returns Exceeded by value; refusals are rare and build it anyway"
    )]
    pub fn admit(
        &self,
        scopes: Arc<[ScopeKey]>,
        limits: Vec<Limit>,
        estimate: Amount,
        now_ms: i64,
    ) -> Result<Reservation, Exceeded> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let mut refused = None;
        for l in &limits {
            let c = state.scopes.entry(l.scope.clone()).or_default();
            match c.limits.iter_mut().find(|seen| seen.name == l.name) {
                Some(seen) if seen == l => {}
                Some(seen) => {
                    *seen = l.clone();
                    state.new_limits.push(l.clone());
                }
                None => {
                    c.limits.push(l.clone());
                    state.new_limits.push(l.clone());
                }
            }
            if refused.is_none() {
                let r = c.reading(l.period, l.window, now_ms);
                if r.current_units(l.metric) >= l.cap_units() {
                    refused = Some(Exceeded {
                        limit: l.clone(),
                        current: r.current(l.metric),
                        resets_at_ms: limit::resets_at(l, c, now_ms),
                    });
                }
            }
        }
        if let Some(e) = refused {
            return Err(e);
        }
        for key in scopes.iter() {
            state.counters(key).reserved += estimate;
        }
        drop(guard);
        Ok(Reservation {
            state: self.state.clone(),
            scopes,
            estimate,
            limits,
            settled: false,
        })
    }

    /// Releases the reservation and counts `actual` under every scope of it (in the
    /// buckets of `now_ms`); returns the alerts crossed: for each of the reservation's
    /// limits and threshold `t` in `alert_at`, when settled usage went from below `t`%
    /// of the limit to at least `t`%, at most once per (tenant, limit, scope, threshold,
    /// calendar bucket of the limit's period).
    pub fn settle(&self, mut reservation: Reservation, actual: Amount, now_ms: i64) -> Vec<Alert> {
        debug_assert!(Arc::ptr_eq(&self.state, &reservation.state));
        reservation.settled = true;
        let r = &reservation;
        let mut guard = lock(&r.state);
        let state = &mut *guard;
        state.release(&r.scopes, r.estimate);
        let before: Vec<u64> = r
            .limits
            .iter()
            .map(|l| settled_units(state, l, now_ms))
            .collect();
        for key in r.scopes.iter() {
            state.counters(key).add(actual, now_ms);
        }
        let mut alerts = Vec::new();
        for (l, before) in r.limits.iter().zip(before) {
            let cap = u128::from(l.cap_units());
            if l.alert_at.is_empty() || cap == 0 {
                continue;
            }
            let c = state.counters(&l.scope);
            let (after, window_start_ms, resets_at_ms) = c.settled(l.period, l.window, now_ms);
            let (b, a) = (
                u128::from(before) * 100,
                u128::from(after.units(l.metric)) * 100,
            );
            let b_now = bucket(l.period, now_ms);
            c.fired
                .retain(|f| f.bucket >= bucket(f.period, now_ms).saturating_sub(1));
            for &t in &l.alert_at {
                let line = cap * u128::from(t);
                if b >= line || a < line {
                    continue;
                }
                let done = c.fired.iter().any(|f| {
                    f.threshold == t
                        && f.bucket == b_now
                        && f.period == l.period
                        && *f.budget == *l.name
                });
                if done {
                    continue;
                }
                c.fired.push(Fired {
                    budget: l.name.as_str().into(),
                    period: l.period,
                    bucket: b_now,
                    threshold: t,
                });
                alerts.push(Alert {
                    tenant: l.scope.tenant.to_string(),
                    budget: l.name.clone(),
                    scope: l.scope.kind_label(),
                    value: l.scope.value.to_string(),
                    metric: l.metric,
                    period: l.period,
                    window: l.window,
                    threshold_pct: t,
                    limit: l.limit,
                    used: after.metric(l.metric),
                    window_start_ms,
                    resets_at_ms,
                    at_ms: now_ms,
                });
            }
        }
        alerts
    }

    /// Every limit admitted so far with its current reading, for `tenant` (all tenants
    /// when `None`), sorted by tenant, name, value: the admin API's budget view.
    pub fn limits_seen(&self, tenant: Option<&str>, now_ms: i64) -> Vec<(Limit, Reading)> {
        let state = lock(&self.state);
        let mut out: Vec<(Limit, Reading)> = state
            .scopes
            .iter()
            .filter(|(key, _)| tenant.is_none_or(|t| *key.tenant == *t))
            .flat_map(|(_, c)| {
                c.limits
                    .iter()
                    .map(|l| (l.clone(), c.reading(l.period, l.window, now_ms)))
            })
            .collect();
        drop(state);
        out.sort_by(|(a, _), (b, _)| {
            (&a.scope.tenant, &a.name, &a.scope.value)
                .cmp(&(&b.scope.tenant, &b.name, &b.scope.value))
                .then_with(|| a.scope.kind_label().cmp(&b.scope.kind_label()))
        });
        out
    }

    /// Limits first seen (or whose spec changed) since the last call; the writer
    /// persists them so budgets show after a restart.
    pub fn take_new_limits(&self) -> Vec<Limit> {
        std::mem::take(&mut lock(&self.state).new_limits)
    }
}

/// Settled usage of a limit's window, in the metric's integer unit.
fn settled_units(state: &State, l: &Limit, now_ms: i64) -> u64 {
    state.scopes.get(&l.scope).map_or(0, |c| {
        c.settled(l.period, l.window, now_ms).0.units(l.metric)
    })
}
