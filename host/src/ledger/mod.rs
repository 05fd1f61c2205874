//! The usage ledger: per-scope usage counters that budgets and rate limits read on the
//! request path.
//!
//! Counters live in memory, sharded per tenant: each tenant has its own
//! `std::sync::Mutex`, held for a few microseconds and never across an await, so one
//! tenant's traffic or plugins never wait on another's. [`Ledger::admit`] checks the
//! limits and reserves an estimate in one critical section, so concurrent requests
//! cannot jointly overshoot a cap by more than one estimate; [`Ledger::settle`] swaps
//! the estimate for the actual usage and reports alert thresholds crossed. Every
//! lookup is a hash lookup, and what a tenant can make the ledger track is capped
//! ([`LedgerCaps`]). The log writer persists the same usage
//! ([`persist::write_entries`]) so [`persist::load`] can rebuild the counters after a
//! restart.
//!
//! Calendar windows are UTC buckets ([`calendar`]). Rolling windows never admit more
//! than their cap in any window of their length ([`rolling`]): request limits up to
//! [`LedgerCaps::exact_rate_limit_max`] keep each admission's time, others count sixty
//! sub-buckets with the oldest, partial one counted whole.

mod amount;
pub mod calendar;
mod counters;
pub mod fleet;
mod limit;
pub mod persist;
mod request_scopes;
pub mod rolling;
mod scope;
#[cfg(test)]
mod tests;

pub use amount::{Amount, Metric, Reading};
pub use calendar::{
    Period, Window, bucket, bucket_end_ms, bucket_start_ms, rfc3339, window_start_ms,
};
pub use limit::{Admit, Exceeded, Limit};
pub use persist::{
    LedgerEntry, MIGRATION, list_alerts, load, prune, record_alert, write_entries, write_limits,
};
pub use request_scopes::RequestScopes;
pub use scope::{ScopeKey, ScopeKind};

use counters::{Counters, Fired, Tracked};
use rolling::SlidingLog;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// How often a limit still being granted is handed to the store again, so its stored
/// `last_seen_ms` tells live limits from ones no plugin grants any more.
const REPERSIST_MS: i64 = calendar::DAY_MS;

/// What one tenant's traffic and plugins may make the ledger keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerCaps {
    /// Distinct (limit, scope value) pairs tracked per tenant; a request that would add
    /// one more is refused, naming the plugin that granted it.
    pub max_limits_per_tenant: usize,
    /// Distinct scope values (teams, users, keys, metadata values) counted per tenant;
    /// a request that would add one more is refused.
    pub max_scopes_per_tenant: usize,
    /// Rolling request limits of a minute or an hour up to this cap keep every
    /// admission's time and are exact; others count sub-buckets (never over the cap,
    /// refusing at most 1/60 of the window early).
    pub exact_rate_limit_max: u64,
    /// Admission times kept per tenant across its exact limits; past it, limits fall
    /// back to sub-buckets until the logs shrink.
    pub max_exact_entries_per_tenant: usize,
}

impl Default for LedgerCaps {
    fn default() -> Self {
        Self {
            max_limits_per_tenant: 10_000,
            max_scopes_per_tenant: 200_000,
            exact_rate_limit_max: 10_000,
            max_exact_entries_per_tenant: 1_000_000,
        }
    }
}

/// The in-memory counters of every tenant; `Send + Sync`, share it behind an `Arc`.
#[derive(Default)]
pub struct Ledger {
    /// One shard per tenant. The map's lock is held only to find or add a shard.
    shards: RwLock<HashMap<Arc<str>, Arc<Shard>>>,
    caps: LedgerCaps,
    /// Limits first seen (or changed, or due to be re-stored) since the last
    /// [`Ledger::take_new_limits`]; pushed rarely, so one lock is enough.
    new_limits: Mutex<Vec<Limit>>,
}

/// One tenant's counters.
#[derive(Default)]
struct Shard {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    scopes: HashMap<ScopeKey, Counters>,
    /// (limit, scope value) pairs tracked, across `scopes`.
    tracked: usize,
    /// Admission times kept across the exact logs.
    log_entries: usize,
    /// The latest instant seen: the shard's clock never runs backwards, so a request
    /// that read the time before another but took the lock after it cannot slip an
    /// admission past a window's cap.
    clock: i64,
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

    /// Applies `f` to the exact log of each of `limits` that has one, keeping the
    /// tenant's count of log entries.
    fn with_logs(&mut self, limits: &[Limit], mut f: impl FnMut(&mut SlidingLog)) {
        let mut delta: isize = 0;
        for l in limits {
            if let Some(log) = self
                .scopes
                .get_mut(&l.scope)
                .and_then(|c| c.limits.get_mut(l.name.as_str()))
                .and_then(|t| t.log.as_mut())
            {
                let had = log.len();
                f(log);
                delta += log.len() as isize - had as isize;
            }
        }
        self.log_entries = self.log_entries.saturating_add_signed(delta);
    }

    /// `now_ms`, or the shard's clock if that is later; advances the clock.
    fn tick(&mut self, now_ms: i64) -> i64 {
        self.clock = self.clock.max(now_ms);
        self.clock
    }

    /// Makes room for `needed` more scope values by forgetting idle ones, least
    /// recently used first: no estimate reserved, no `Total` limit (its count lives only
    /// here between restarts), and unused for longer than every window of its limits.
    /// At least a twentieth of `cap` goes at once, so a tenant at its cap does not pay
    /// for a scan on every new value. Returns whether there is room now.
    fn evict_scopes(&mut self, needed: usize, cap: usize, now_ms: i64) -> bool {
        let mut idle: Vec<(i64, ScopeKey)> = self
            .scopes
            .iter()
            .filter(|(_, c)| c.evictable(now_ms))
            .map(|(k, c)| (c.last_used_ms, k.clone()))
            .collect();
        let want = needed.max(cap / 20).min(idle.len());
        if want < idle.len() {
            idle.select_nth_unstable_by_key(want, |(t, _)| *t);
        }
        for (_, key) in idle.into_iter().take(want) {
            if let Some(c) = self.scopes.remove(&key) {
                self.tracked = self.tracked.saturating_sub(c.limits.len());
                let entries: usize = c
                    .limits
                    .values()
                    .filter_map(|t| t.log.as_ref())
                    .map(SlidingLog::len)
                    .sum();
                self.log_entries = self.log_entries.saturating_sub(entries);
            }
        }
        self.scopes.len().saturating_add(needed) <= cap
    }

    /// Forgets limits no plugin has granted for longer than their window (plus a
    /// day). Returns how many went.
    fn evict_limits(&mut self, now_ms: i64) -> usize {
        let mut gone = 0;
        let mut entries = 0;
        for c in self.scopes.values_mut() {
            c.limits.retain(|_, t| {
                let keep = !t.stale(now_ms);
                if !keep {
                    gone += 1;
                    entries += t.log.as_ref().map_or(0, SlidingLog::len);
                }
                keep
            });
        }
        self.tracked = self.tracked.saturating_sub(gone);
        self.log_entries = self.log_entries.saturating_sub(entries);
        gone
    }
}

use crate::sync::lock;

/// Why the ledger refused a request.
#[derive(Clone, Debug)]
pub enum Refused {
    /// A limit is exhausted.
    Exceeded(Box<Exceeded>),
    /// Admitting would track more (limit, scope value) pairs than the tenant may.
    TooManyLimits {
        /// The tenant at its cap.
        tenant: Arc<str>,
        /// The plugin that granted the first limit not yet tracked.
        plugin: Arc<str>,
        /// `[budgets] max_limits_per_tenant`.
        cap: usize,
    },
    /// Admitting would count more scope values than the tenant may.
    TooManyScopes {
        /// The tenant at its cap.
        tenant: Arc<str>,
        /// `[budgets] max_scopes_per_tenant`.
        cap: usize,
    },
}

/// Held by an admitted request until it is settled; dropping it unsettled (client
/// gone, upstream failed before usage was known) releases the estimate.
pub struct Reservation {
    shard: Arc<Shard>,
    scopes: Arc<[ScopeKey]>,
    estimate: Amount,
    limits: Vec<Limit>,
    admitted_ms: i64,
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
            let mut st = lock(&self.shard.state);
            st.release(&self.scopes, self.estimate);
            // The request never counted: its admissions leave the exact logs too.
            let at = self.admitted_ms;
            st.with_logs(&self.limits, |log| log.remove(at));
        }
    }
}

/// A threshold crossed; sent as a log event and webhook JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The tenant whose limit it is.
    pub tenant: String,
    /// The limit's name.
    pub budget: String,
    /// The scope's kind label ("team", "metadata.project", ...).
    pub scope: String,
    /// The scope value the limit applies to, e.g. the team's name.
    pub value: String,
    /// What the limit counts.
    pub metric: Metric,
    /// The limit's window length.
    pub period: Period,
    /// Calendar or rolling.
    pub window: Window,
    /// The threshold crossed, percent of the limit (e.g. 80).
    pub threshold_pct: u32,
    /// The cap, in the metric's unit (USD / tokens / requests).
    pub limit: f64,
    /// Settled usage right after the crossing, metric unit.
    pub used: f64,
    /// Start of the window the usage was read in, Unix ms (as in [`Reading`]).
    pub window_start_ms: i64,
    /// When the window's usage resets, Unix ms (as in [`Reading`]); `i64::MAX`: never.
    pub resets_at_ms: i64,
    /// When the settlement that crossed the threshold happened, Unix ms.
    pub at_ms: i64,
}

impl Alert {
    /// `l`'s threshold `threshold_pct` crossed at `at_ms` with `used` (metric unit) in
    /// the window `(start, resets_at)`.
    pub fn crossed(
        l: &Limit,
        threshold_pct: u32,
        used: f64,
        (window_start_ms, resets_at_ms): (i64, i64),
        at_ms: i64,
    ) -> Self {
        Self {
            tenant: l.scope.tenant.to_string(),
            budget: l.name.clone(),
            scope: l.scope.kind_label().into_owned(),
            value: l.scope.value.to_string(),
            metric: l.metric,
            period: l.period,
            window: l.window,
            threshold_pct,
            limit: l.limit,
            used,
            window_start_ms,
            resets_at_ms,
            at_ms,
        }
    }
}

/// The budget view: limits with their readings, the first `max` of them.
#[derive(Debug, Default)]
pub struct BudgetView {
    /// Limits with their current readings, sorted by tenant, name and scope value.
    pub limits: Vec<(Limit, Reading)>,
    /// How many limits there were before the view was cut to `max`.
    pub total: usize,
}

impl Ledger {
    /// An empty ledger with the default caps (start-up uses [`persist::load`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty ledger with `caps`.
    pub fn with_caps(caps: LedgerCaps) -> Self {
        Self {
            caps,
            ..Self::default()
        }
    }

    /// The caps in force.
    pub fn caps(&self) -> LedgerCaps {
        self.caps
    }

    /// The shard of `tenant`, if it has one.
    fn shard(&self, tenant: &str) -> Option<Arc<Shard>> {
        let shards = crate::sync::read(&self.shards);
        shards.get(tenant).cloned()
    }

    /// The shard of `tenant`, created on first use.
    fn shard_or_new(&self, tenant: &Arc<str>) -> Arc<Shard> {
        if let Some(s) = self.shard(tenant) {
            return s;
        }
        let mut shards = crate::sync::write(&self.shards);
        shards.entry(tenant.clone()).or_default().clone()
    }

    /// Every tenant's shard, sorted by tenant.
    fn shards(&self, tenant: Option<&str>) -> Vec<(Arc<str>, Arc<Shard>)> {
        let shards = crate::sync::read(&self.shards);
        let mut v: Vec<_> = shards
            .iter()
            .filter(|(t, _)| tenant.is_none_or(|want| &***t == want))
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A scope's usage in one window; zero for scopes never counted. A rolling read of
    /// a scope without rolling limits counts the previous calendar bucket whole.
    pub fn read(&self, key: &ScopeKey, period: Period, window: Window, now_ms: i64) -> Reading {
        let Some(shard) = self.shard(&key.tenant) else {
            return Counters::default().reading(period, window, now_ms);
        };
        let st = lock(&shard.state);
        let now_ms = st.clock.max(now_ms);
        match st.scopes.get(key) {
            Some(c) => c.reading(period, window, now_ms),
            None => Counters::default().reading(period, window, now_ms),
        }
    }

    /// Atomically (one lock, the tenant's): if every limit admits the request under
    /// `mode`, reserves `estimate` under every key of `scopes`; else returns the first
    /// limit that refuses and reserves nothing. Every limit passed is remembered for
    /// [`Ledger::limits_seen`], refused or not. `scopes` and the limits' scopes belong
    /// to one tenant (the first scope's); a limit's scope is normally one of `scopes`,
    /// or usage settled later never reaches it. When the tenant is at one of its caps,
    /// idle scope values and stale limits are forgotten first to make room.
    pub fn admit(
        &self,
        scopes: Arc<[ScopeKey]>,
        limits: Vec<Limit>,
        estimate: Amount,
        now_ms: i64,
        mode: Admit,
    ) -> Result<Reservation, Refused> {
        let tenant: Arc<str> = scopes
            .first()
            .or_else(|| limits.first().map(|l| &l.scope))
            .map_or_else(|| Arc::from(""), |k| k.tenant.clone());
        let limits: Vec<Limit> = limits
            .into_iter()
            .filter(|l| l.scope.tenant == tenant)
            .collect();
        let shard = self.shard_or_new(&tenant);
        let mut guard = lock(&shard.state);
        let st = &mut *guard;
        let now_ms = st.tick(now_ms);
        // The caps can only refuse a request whose scopes and limits could take the
        // tenant past them; far from a cap, neither scan below runs.
        let cap = self.caps.max_scopes_per_tenant;
        if st.scopes.len() + scopes.len() + limits.len() > cap {
            let mut unseen: Vec<&ScopeKey> = Vec::new();
            for k in scopes.iter().chain(limits.iter().map(|l| &l.scope)) {
                if !st.scopes.contains_key(k) && !unseen.contains(&k) {
                    unseen.push(k);
                }
            }
            if !unseen.is_empty()
                && st.scopes.len().saturating_add(unseen.len()) > cap
                && !st.evict_scopes(unseen.len(), cap, now_ms)
            {
                return Err(Refused::TooManyScopes { tenant, cap });
            }
        }
        let cap = self.caps.max_limits_per_tenant;
        if st.tracked.saturating_add(limits.len()) > cap {
            let new_limits: Vec<&Limit> = limits
                .iter()
                .filter(|l| {
                    !st.scopes
                        .get(&l.scope)
                        .is_some_and(|c| c.limits.contains_key(l.name.as_str()))
                })
                .collect();
            if let Some(first) = new_limits.first()
                && st.tracked.saturating_add(new_limits.len()) > cap
                && (st.evict_limits(now_ms) == 0
                    || st.tracked.saturating_add(new_limits.len()) > cap)
            {
                return Err(Refused::TooManyLimits {
                    tenant,
                    plugin: first.plugin.clone(),
                    cap,
                });
            }
        }
        let mut refused = None;
        let mut logged = false;
        for l in &limits {
            let c = st.scopes.entry(l.scope.clone()).or_default();
            let (is_new, changed) = track(c, l, now_ms, &self.new_limits);
            c.last_used_ms = now_ms;
            if is_new {
                st.tracked += 1;
            }
            let exact = self.exact(l);
            if l.window == Window::Rolling && l.period != Period::Total {
                let seed = c.ring(l.period, now_ms).map(|r| r.parts(now_ms));
                let reserved = c.reserved.requests;
                let mut delta: isize = 0;
                if let (Some(t), Some(len)) = (
                    c.limits.get_mut(l.name.as_str()),
                    rolling::window_len_ms(l.period),
                ) {
                    let cap = usize::try_from(l.cap_units()).unwrap_or(usize::MAX);
                    let had = t.log.as_ref().map_or(0, SlidingLog::len);
                    let room = st.log_entries < self.caps.max_exact_entries_per_tenant;
                    match (&t.log, exact && room) {
                        (Some(log), true) if log.fits(len, cap) && !changed => {}
                        (_, true) => {
                            let mut log = SlidingLog::new(len, cap);
                            log.seed(&seed.unwrap_or_default());
                            log.seed(&[(
                                now_ms,
                                Amount {
                                    requests: reserved,
                                    ..Amount::ZERO
                                },
                            )]);
                            t.log = Some(log);
                        }
                        (_, false) => t.log = None,
                    }
                    let has = t.log.as_ref().map_or(0, SlidingLog::len);
                    delta = has as isize - had as isize;
                }
                st.log_entries = st.log_entries.saturating_add_signed(delta);
            }
            if refused.is_none() {
                refused = check(c, l, estimate, now_ms, mode).err();
            }
            logged |= exact;
        }
        if let Some(e) = refused {
            return Err(Refused::Exceeded(e));
        }
        for key in scopes.iter() {
            let c = st.counters(key);
            c.reserved += estimate;
            c.last_used_ms = now_ms;
        }
        if logged {
            st.with_logs(&limits, |log| log.push(now_ms));
        }
        drop(guard);
        Ok(Reservation {
            shard,
            scopes,
            estimate,
            limits,
            admitted_ms: now_ms,
            settled: false,
        })
    }

    /// Whether `l` is counted exactly by an admission log: rolling request limits of a
    /// minute or an hour, up to the exact cap.
    fn exact(&self, l: &Limit) -> bool {
        l.window == Window::Rolling
            && matches!(l.period, Period::Minute | Period::Hour)
            && l.metric == Metric::Requests
            && l.cap_units() <= self.caps.exact_rate_limit_max
    }

    /// Releases the reservation and counts `actual` under every scope of it (at
    /// `now_ms`); returns the alerts crossed: for each of the reservation's limits and
    /// threshold `t` in `alert_at`, when settled usage went from below `t`% of the limit
    /// to at least `t`%, at most once per (tenant, limit, scope, threshold, calendar
    /// bucket of the limit's period).
    pub fn settle(&self, mut reservation: Reservation, actual: Amount, now_ms: i64) -> Vec<Alert> {
        reservation.settled = true;
        let r = &reservation;
        let mut guard = lock(&r.shard.state);
        let state = &mut *guard;
        let now_ms = state.tick(now_ms);
        state.release(&r.scopes, r.estimate);
        let before: Vec<u64> = r
            .limits
            .iter()
            .map(|l| settled_units(state, l, now_ms))
            .collect();
        for key in r.scopes.iter() {
            let c = state.counters(key);
            c.add(actual, now_ms);
            c.last_used_ms = now_ms;
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
                alerts.push(Alert::crossed(
                    l,
                    t,
                    after.metric(l.metric),
                    (window_start_ms, resets_at_ms),
                    now_ms,
                ));
            }
        }
        alerts
    }

    /// Limits admitted so far with their current readings, for `tenant` (all tenants
    /// when `None`), sorted by tenant, name, value, scope: the first `max` of them (the
    /// admin API's budget view).
    pub fn limits_seen(&self, tenant: Option<&str>, now_ms: i64, max: usize) -> BudgetView {
        let mut out = Vec::new();
        for (_, shard) in self.shards(tenant) {
            let st = lock(&shard.state);
            for c in st.scopes.values() {
                for t in c.limits.values() {
                    out.push((t.limit.clone(), limit_reading(c, t, now_ms)));
                }
            }
        }
        let total = out.len();
        let order = |(a, _): &(Limit, Reading), (b, _): &(Limit, Reading)| {
            (&a.scope.tenant, &a.name, &a.scope.value)
                .cmp(&(&b.scope.tenant, &b.name, &b.scope.value))
                .then_with(|| a.scope.kind_label().cmp(&b.scope.kind_label()))
        };
        if out.len() > max {
            out.select_nth_unstable_by(max, order);
            out.truncate(max);
        }
        out.sort_by(order);
        BudgetView { limits: out, total }
    }

    /// For each tenant, its `per_tenant` limits closest to (or over) their caps, with
    /// how many it had in all: the metrics' budget gauges.
    pub fn busiest_limits(&self, now_ms: i64, per_tenant: usize) -> Vec<(Arc<str>, BudgetView)> {
        let mut out = Vec::new();
        for (tenant, shard) in self.shards(None) {
            let st = lock(&shard.state);
            let mut v: Vec<(f64, Limit, Reading)> = Vec::new();
            for c in st.scopes.values() {
                for t in c.limits.values() {
                    let r = limit_reading(c, t, now_ms);
                    let ratio = if t.limit.limit > 0.0 {
                        r.current(t.limit.metric) / t.limit.limit
                    } else {
                        f64::INFINITY
                    };
                    v.push((ratio, t.limit.clone(), r));
                }
            }
            drop(st);
            let total = v.len();
            let busiest = |a: &(f64, Limit, Reading), b: &(f64, Limit, Reading)| {
                b.0.total_cmp(&a.0)
                    .then_with(|| (&a.1.name, &a.1.scope.value).cmp(&(&b.1.name, &b.1.scope.value)))
            };
            if v.len() > per_tenant {
                v.select_nth_unstable_by(per_tenant, busiest);
                v.truncate(per_tenant);
            }
            v.sort_by(busiest);
            let limits = v.into_iter().map(|(_, l, r)| (l, r)).collect();
            out.push((tenant, BudgetView { limits, total }));
        }
        out
    }

    /// Limits first seen (or whose spec changed, or due to be stored again) since the
    /// last call; the writer persists them so budgets show after a restart.
    pub fn take_new_limits(&self) -> Vec<Limit> {
        std::mem::take(&mut *lock(&self.new_limits))
    }
}

/// Remembers `l` on its scope (and that it was granted now): (whether it is new,
/// whether it is new or its spec changed). Limits to store are queued on `pending`.
fn track(c: &mut Counters, l: &Limit, now_ms: i64, pending: &Mutex<Vec<Limit>>) -> (bool, bool) {
    match c.limits.get_mut(l.name.as_str()) {
        Some(t) if t.limit == *l => {
            t.seen_ms = now_ms;
            if now_ms.saturating_sub(t.persisted_ms) >= REPERSIST_MS {
                t.persisted_ms = now_ms;
                lock(pending).push(l.clone());
            }
            (false, false)
        }
        Some(t) => {
            t.limit = l.clone();
            t.persisted_ms = now_ms;
            t.seen_ms = now_ms;
            lock(pending).push(l.clone());
            (false, true)
        }
        None => {
            c.limits.insert(
                Arc::from(l.name.as_str()),
                Tracked {
                    limit: l.clone(),
                    log: None,
                    persisted_ms: now_ms,
                    seen_ms: now_ms,
                },
            );
            lock(pending).push(l.clone());
            (true, true)
        }
    }
}

/// Whether `l` admits a request of `estimate` now, else why not.
fn check(
    c: &Counters,
    l: &Limit,
    estimate: Amount,
    now_ms: i64,
    mode: Admit,
) -> Result<(), Box<Exceeded>> {
    let cap = l.cap_units();
    let est = estimate.units(l.metric);
    let log = c.limits.get(l.name.as_str()).and_then(|t| t.log.as_ref());
    let (current_units, current) = match log {
        Some(log) => {
            let n = log.count(now_ms) as u64;
            (n, n as f64)
        }
        None => {
            let r = c.reading(l.period, l.window, now_ms);
            (r.current_units(l.metric), r.current(l.metric))
        }
    };
    let (over, target) = match mode {
        Admit::BelowCap => (current_units >= cap, cap as i64 - 1),
        Admit::EstimateFits => (
            current_units.saturating_add(est) > cap,
            cap as i64 - est.min(i64::MAX as u64) as i64,
        ),
    };
    if !over {
        return Ok(());
    }
    Err(Box::new(Exceeded {
        limit: l.clone(),
        current,
        resets_at_ms: limit::resets_at(l, c, log, target, now_ms),
    }))
}

/// A tracked limit's reading: the exact admission count for logged rate limits, else
/// its window's; `resets_at_ms` says when an exhausted limit admits again, or when the
/// usage now in a rolling window has left it.
fn limit_reading(c: &Counters, t: &Tracked, now_ms: i64) -> Reading {
    let l = &t.limit;
    let mut r = c.reading(l.period, l.window, now_ms);
    if l.window == Window::Rolling && l.period != Period::Total {
        if let Some(log) = &t.log {
            let n = log.count(now_ms) as u64;
            r.settled = Amount {
                requests: n.saturating_sub(r.reserved.requests),
                ..r.settled
            };
        }
        let exhausted = r.current_units(l.metric) >= l.cap_units();
        r.resets_at_ms = match (&t.log, exhausted) {
            (Some(log), false) => log.empties_at(now_ms),
            (log, true) => limit::resets_at(l, c, log.as_ref(), l.cap_units() as i64 - 1, now_ms),
            (None, false) => limit::resets_at(l, c, None, 0, now_ms),
        };
    }
    r
}

/// Settled usage of a limit's window, in the metric's integer unit.
fn settled_units(state: &State, l: &Limit, now_ms: i64) -> u64 {
    state.scopes.get(&l.scope).map_or(0, |c| {
        c.settled(l.period, l.window, now_ms).0.units(l.metric)
    })
}
