//! The fleet ledger: budgets and rate limits shared by every replica, in Redis.
//!
//! Each replica keeps its in-process [`Ledger`](super::Ledger) (per-tenant caps, the
//! limits it has seen, what plugins read); with `[ledger] kind = "redis"` every
//! request with budget limits is also admitted here, and Redis decides. One Lua script
//! ([`ledger.lua`](./ledger.lua)) checks every limit of a request and reserves its
//! estimate in one round trip, atomically across the fleet, so concurrent requests on
//! N replicas overshoot a cap by at most the estimates in flight, as on one. Settlement
//! swaps the estimate for the real usage off the request path.
//!
//! A reservation carries a lease the holding replica renews while the request runs;
//! a replica that dies stops renewing and its estimates are released by the next
//! admission in the tenant after the lease ends. Threshold alerts fire once per window
//! across the fleet (the first replica to set the window's marker sends it).
//!
//! When Redis does not answer within `[ledger] timeout_ms`, a tenant's
//! [`FaultMode`] decides: `fail_closed` refuses requests that carry budget limits
//! (503 `overloaded_error`), `fail_open` admits them on the in-process ledger alone.
//! Settlements that cannot reach Redis wait in a bounded backlog and are counted when
//! it answers again; none is dropped silently.

mod history;

pub use history::{PastUsage, UsageHistory};

use super::calendar::{self, Period, Window};
use super::{Admit, Alert, Amount, Exceeded, Limit, Metric, ScopeKey, rolling};
use crate::sync::lock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a tenant's requests with budget limits get while Redis is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Refused with 503 `overloaded_error`: no request runs unbudgeted.
    #[default]
    FailClosed,
    /// Admitted on this replica's own ledger; usage is counted in Redis when it
    /// returns.
    FailOpen,
}

/// Why the fleet ledger did not admit a request.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A limit is exhausted across the fleet.
    #[error("{}", .0.message())]
    Refused(Box<Exceeded>),
    /// Redis did not answer in time, or answered with an error.
    #[error("the budget store (Redis) is unavailable: {0}")]
    Unavailable(String),
}

/// Where fired alerts go (the gateway's alert delivery).
pub type AlertFn = Arc<dyn Fn(Vec<Alert>) + Send + Sync>;

/// How to reach Redis and what to do without it (from `[ledger]`).
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// How long a reservation outlives its last renewal.
    pub lease_ms: u64,
    /// Longest wait for a connection.
    pub connect_timeout_ms: u64,
    /// Longest wait for one call, connection included.
    pub timeout_ms: u64,
    /// The outcome for tenants without their own while Redis is unreachable.
    pub unavailable: FaultMode,
    /// Per-tenant outcomes.
    pub tenant_modes: HashMap<String, FaultMode>,
    /// Settlements kept while Redis is unreachable.
    pub max_backlog: usize,
    /// Rolling request limits up to this cap are exact (one entry per admission).
    pub exact_rate_limit_max: u64,
}

/// Counts exported in `/metrics`.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Calls to Redis that failed or timed out.
    pub unavailable: AtomicU64,
    /// Settlements dropped from a full backlog (their usage is lost to Redis).
    pub backlog_dropped: AtomicU64,
    /// Settlements waiting for Redis.
    pub backlog_len: AtomicU64,
    /// Requests admitted on the local ledger alone (`fail_open` while Redis was down).
    pub admitted_locally: AtomicU64,
}

/// The Redis-backed ledger; shared behind an `Arc`.
pub struct FleetLedger {
    conn: ConnectionManager,
    script: redis::Script,
    lease_ms: i64,
    timeout: Duration,
    exact_max: u64,
    default_mode: FaultMode,
    modes: HashMap<String, FaultMode>,
    /// This process's prefix of reservation ids, unique across the fleet.
    replica: String,
    seq: AtomicU64,
    /// Limits this replica registered in Redis, with when (see [`REGISTERED_TTL_MS`]).
    registered: Mutex<HashMap<String, i64>>,
    /// Reservations this replica holds, per tenant prefix: renewed until settled.
    live: Mutex<HashMap<Arc<str>, HashSet<Arc<str>>>>,
    backlog: Mutex<VecDeque<Backlogged>>,
    max_backlog: usize,
    up: AtomicBool,
    /// Until when (Unix ms) calls fail at once after a failure.
    retry_at_ms: std::sync::atomic::AtomicI64,
    /// Settlements sent and not yet answered.
    settling: AtomicU64,
    alerts: AlertFn,
    /// Failure and backlog counts.
    pub counters: FleetCounters,
    /// Where windows Redis starts counting late read their past (the shared log).
    history: std::sync::OnceLock<Arc<dyn UsageHistory>>,
    /// Windows this replica has seen registered in Redis (seeded or found).
    seen: Mutex<HashSet<String>>,
    /// Windows being seeded now (by an admission or in the background).
    seeding: Mutex<HashSet<String>>,
    /// Seeds running at once, at most (each runs an aggregate over the shared log).
    seed_slots: Arc<tokio::sync::Semaphore>,
}

/// A settlement, kept in the backlog while it cannot reach Redis.
#[derive(Clone)]
struct Backlogged {
    now_ms: i64,
    payload: String,
    alert_limits: Vec<Limit>,
}

/// An estimate held in Redis for one admitted request; dropping it unsettled releases
/// it (the request never ran to completion).
pub struct Hold {
    id: Arc<str>,
    prefix: Arc<str>,
    fleet: Arc<FleetLedger>,
    done: bool,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("id", &self.id).finish()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.fleet.forget(&self.prefix, &self.id);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // the lease frees it
        };
        let fleet = self.fleet.clone();
        let payload = serde_json::json!({ "p": &*self.prefix, "id": &*self.id }).to_string();
        rt.spawn(async move {
            let now = crate::ids::now_ms();
            if let Err(e) = fleet.call::<i64>("release", now, payload).await {
                tracing::warn!(error = %e, "could not release a reservation in Redis; its lease will");
            }
        });
    }
}

/// How one limit is read in Redis (see `ledger.lua`).
#[derive(Serialize)]
struct Spec {
    /// `c` calendar bucket, `r` rolling sub-buckets, `x` exact admission log.
    k: &'static str,
    key: String,
    /// The scope's reserved totals.
    v: String,
    m: &'static str,
    cap: u64,
    est: u64,
    len: i64,
    w: i64,
    cur: i64,
}

#[derive(Serialize)]
struct AlertSpec {
    #[serde(flatten)]
    spec: Spec,
    /// This settlement's share of the reading, metric unit.
    a: u64,
    ts: Vec<u32>,
    once: String,
    ttl: i64,
}

/// Limits a replica remembers having registered (see [`FleetLedger::to_register`]).
const MAX_REGISTERED: usize = 100_000;

/// After a failed call, how long calls fail at once before trying Redis again.
const FAIL_FAST_MS: i64 = 500;

/// Backlogged settlements sent per tick of the maintenance task.
const DRAIN_PER_TICK: usize = 256;

/// How many of a replica's recent settlements Redis remembers per tenant, so a
/// settlement retried after a timeout (which Redis may have run after all) is not
/// counted twice.
const SETTLED_MEMORY: usize = 10_000;

/// A limit as registered in Redis, so every replica lists the limits any replica
/// enforces.
#[derive(Serialize, Deserialize)]
struct Registered {
    name: String,
    scope: String,
    value: String,
    #[serde(flatten)]
    spec: super::persist::Spec,
}

impl Registered {
    fn of(l: &Limit) -> Self {
        Self {
            name: l.name.clone(),
            scope: l.scope.kind_label().into_owned(),
            value: l.scope.value.to_string(),
            spec: super::persist::Spec::of(l),
        }
    }

    fn limit(self, tenant: &str) -> Option<Limit> {
        let kind = super::ScopeKind::from_label(&self.scope)?;
        let scope = ScopeKey::new(tenant, kind, self.value);
        Some(self.spec.limit(self.name, scope))
    }
}

/// How long a registered limit stays listed after a replica last registered it; each
/// replica registers a limit again a day after it last did.
const REGISTERED_TTL_MS: i64 = 40 * crate::time::DAY_MS;

/// Where settlement counts a scope's usage: its calendar keys' prefix and the hash
/// of windows its limits read.
#[derive(Serialize)]
struct ScopeCounts {
    c: String,
    w: String,
}

#[derive(Serialize)]
struct HoldRecord<'a> {
    /// What is reserved: (reserved-totals key, metric field, amount).
    r: &'a [(&'a str, &'static str, u64)],
    /// The exact logs the admission was entered in.
    x: Vec<&'a str>,
}

fn prefix(tenant: &str) -> String {
    format!("tg:{{{tenant}}}:")
}

/// `kind:value`, with `%` and `:` in the value escaped: values come from clients'
/// metadata, and key names must not collide (`team:a:b` vs `team:a` + `:b…`).
fn scope_id(k: &ScopeKey) -> String {
    format!("{}:{}", k.kind_label(), escape(&k.value))
}

/// `s` with `%` and `:` percent-encoded, for a segment of a key name.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', ':']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.replace('%', "%25").replace(':', "%3A"))
}

fn field(m: Metric) -> &'static str {
    match m {
        Metric::Requests => "r",
        Metric::Tokens => "t",
        Metric::Cost => "c",
    }
}

fn amounts(a: Amount) -> [u64; 3] {
    [a.requests, a.tokens, a.cost_nano]
}

/// A count in `m`'s integer unit from Redis, in the metric's unit (USD for cost).
fn display(m: Metric, units: i64) -> f64 {
    Amount::of(m, units.max(0) as u64).metric(m)
}

impl FleetLedger {
    /// A ledger on the Redis at `cfg.url`. Connects lazily: a gateway starts while
    /// Redis is down and uses it once it answers. Call [`FleetLedger::start`] on the
    /// runtime to renew leases and drain the backlog.
    pub fn connect(cfg: FleetOptions, alerts: AlertFn) -> Result<Arc<Self>, String> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| format!("[ledger] url: {e}"))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(cfg.timeout_ms)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(cfg.connect_timeout_ms));
        let conn = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| format!("[ledger] redis: {e}"))?;
        Ok(Arc::new(Self {
            conn,
            script: redis::Script::new(include_str!("ledger.lua")),
            lease_ms: cfg.lease_ms as i64,
            timeout: Duration::from_millis(cfg.timeout_ms),
            exact_max: cfg.exact_rate_limit_max,
            default_mode: cfg.unavailable,
            modes: cfg.tenant_modes,
            replica: format!("{:016x}", rand::random::<u64>()),
            seq: AtomicU64::new(0),
            registered: Mutex::default(),
            live: Mutex::default(),
            backlog: Mutex::default(),
            max_backlog: cfg.max_backlog,
            up: AtomicBool::new(true),
            retry_at_ms: std::sync::atomic::AtomicI64::new(0),
            settling: AtomicU64::new(0),
            alerts,
            counters: FleetCounters::default(),
            history: std::sync::OnceLock::new(),
            seen: Mutex::default(),
            seeding: Mutex::default(),
            seed_slots: Arc::new(tokio::sync::Semaphore::new(history::MAX_SEEDS)),
        }))
    }

    /// Starts the task that renews this replica's leases and counts backlogged
    /// settlements once Redis answers; it ends when the ledger is dropped.
    pub fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = Duration::from_millis((self.lease_ms / 3).clamp(50, 1_000) as u64);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(fleet) = weak.upgrade() else { return };
                if !fleet.is_up() {
                    fleet.probe().await;
                }
                fleet.renew().await;
                fleet.drain().await;
            }
        });
    }

    /// The outcome for `tenant`'s requests while Redis is unreachable.
    pub fn mode(&self, tenant: &str) -> FaultMode {
        self.modes.get(tenant).copied().unwrap_or(self.default_mode)
    }

    /// Counts a request admitted on the local ledger alone (`fail_open`).
    pub fn admitted_locally(&self) {
        self.counters
            .admitted_locally
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Settlements sent to Redis and not yet answered.
    pub fn settling(&self) -> u64 {
        self.settling.load(Ordering::Relaxed)
    }

    /// Whether no settlement waits for Redis to come back.
    pub fn backlog_is_empty(&self) -> bool {
        lock(&self.backlog).is_empty()
    }

    /// Whether the last call to Redis succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        op: &str,
        now_ms: i64,
        payload: String,
    ) -> Result<T, String> {
        // While Redis is known to be down, calls fail at once instead of each waiting
        // for the timeout (a partitioned Redis would otherwise hold every budgeted
        // request for `timeout_ms`); the maintenance task's probe finds it back.
        if !self.is_up() && crate::ids::now_ms() < self.retry_at_ms.load(Ordering::Relaxed) {
            self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            return Err("it did not answer a moment ago; retrying shortly".into());
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.script.arg(op);
        invocation.arg(now_ms).arg(payload);
        let out = self.bounded(invocation.invoke_async(&mut conn)).await;
        self.record(out.as_ref().err())?;
        out
    }

    /// `call`, failing as unavailable past `[ledger] timeout_ms`.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// Pings Redis past the fail-fast window (the maintenance task, while it is down).
    async fn probe(&self) {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING").clone();
        let out = self.bounded(ping.query_async::<String>(&mut conn)).await;
        let _ = self.record(out.as_ref().err());
    }

    /// Notes the outcome of a call: the up/down state, its log lines and counters, and
    /// the end of the fail-fast window after a failure.
    fn record(&self, failure: Option<&String>) -> Result<(), String> {
        let ok = failure.is_none();
        if !ok {
            self.retry_at_ms
                .store(crate::ids::now_ms() + FAIL_FAST_MS, Ordering::Relaxed);
        }
        if self.up.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                // Registrations made while it was down never landed, and a Redis that
                // restarted without its data lost the rest: register again.
                lock(&self.registered).clear();
                // Likewise the windows seen counted there: check (and seed) them again.
                lock(&self.seen).clear();
                tracing::info!("the budget store (Redis) answers again");
            } else if let Some(e) = failure {
                tracing::error!(error = %e, "the budget store (Redis) is unavailable");
            }
        }
        match failure {
            None => Ok(()),
            Some(e) => {
                self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
                Err(e.clone())
            }
        }
    }

    fn spec(&self, p: &str, l: &Limit, estimate: Amount, now_ms: i64) -> Spec {
        let sid = scope_id(&l.scope);
        let mut s = Spec {
            k: "c",
            key: String::new(),
            v: format!("{p}v:{sid}"),
            m: field(l.metric),
            cap: l.cap_units(),
            est: estimate.units(l.metric),
            len: 0,
            w: 0,
            cur: 0,
        };
        let rolling_len = match l.window {
            Window::Rolling => rolling::window_len_ms(l.period),
            Window::Calendar => None,
        };
        match rolling_len {
            Some(len)
                if l.metric == Metric::Requests
                    && matches!(l.period, Period::Minute | Period::Hour)
                    && s.cap <= self.exact_max =>
            {
                s.k = "x";
                s.len = len;
                s.key = format!("{p}x:{sid}:{}", escape(&l.name));
            }
            Some(len) => {
                s.k = "r";
                s.len = len;
                s.w = len / 60;
                s.cur = now_ms.div_euclid(s.w);
                s.key = format!("{p}r:{sid}:{}", l.period.as_str());
            }
            None => {
                let b = calendar::bucket(l.period, now_ms);
                s.key = format!("{p}c:{sid}:{}:{b}", l.period.as_str());
            }
        }
        s
    }

    /// Checks every limit and reserves `estimate` under every scope, atomically across
    /// the fleet. `Ok(None)`: no limits, nothing to hold (usage is still counted at
    /// settlement).
    pub async fn admit(
        self: &Arc<Self>,
        scopes: &[ScopeKey],
        limits: &[Limit],
        estimate: Amount,
        now_ms: i64,
        mode: Admit,
    ) -> Result<Option<Hold>, FleetError> {
        let Some(tenant) = scopes.first().map(|s| s.tenant.clone()) else {
            return Ok(None);
        };
        if limits.is_empty() {
            return Ok(None);
        }
        let p = prefix(&tenant);
        let specs: Vec<Spec> = limits
            .iter()
            .map(|l| self.spec(&p, l, estimate, now_ms))
            .collect();
        self.seed(&p, limits, &specs, now_ms).await;
        // The estimate is held only where a limit reads it: under each limited scope,
        // in the limit's metric (an exact log already counts the admission itself).
        let mut held: Vec<(&str, &'static str, u64)> = Vec::with_capacity(specs.len());
        for s in specs.iter().filter(|s| s.k != "x" && s.est > 0) {
            if !held.iter().any(|(v, m, _)| *v == s.v && *m == s.m) {
                held.push((&s.v, s.m, s.est));
            }
        }
        let hold = serde_json::to_string(&HoldRecord {
            r: &held,
            x: specs
                .iter()
                .filter(|s| s.k == "x")
                .map(|s| s.key.as_str())
                .collect(),
        })
        .map_err(|e| FleetError::Unavailable(e.to_string()))?;
        let id: Arc<str> = format!(
            "{}-{}",
            self.replica,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
        .into();
        let reg = self.to_register(&p, limits, now_ms);
        let payload = serde_json::json!({
            "p": p,
            "reg": reg,
            "ttl": REGISTERED_TTL_MS,
            "id": &*id,
            "until": now_ms + self.lease_ms,
            "fits": mode == Admit::EstimateFits,
            "r": held,
            "hold": hold,
            "limits": specs,
        })
        .to_string();
        // Registered before the call so a renewal racing it cannot miss the lease.
        let prefix: Arc<str> = p.into();
        lock(&self.live)
            .entry(prefix.clone())
            .or_default()
            .insert(id.clone());
        let mut hold = Hold {
            id,
            prefix,
            fleet: self.clone(),
            done: false,
        };
        let out: Vec<i64> = match self.call("admit", now_ms, payload).await {
            Ok(out) => out,
            Err(e) => {
                // Nothing was reserved (or the lease will free it).
                hold.done = true;
                self.forget(&hold.prefix, &hold.id);
                return Err(FleetError::Unavailable(e));
            }
        };
        if out.first() == Some(&1) {
            return Ok(Some(hold));
        }
        hold.done = true;
        self.forget(&hold.prefix, &hold.id);
        let (i, used, resets) = match out.as_slice() {
            [_, i, used, resets] => (*i, *used, *resets),
            other => {
                return Err(FleetError::Unavailable(format!(
                    "unexpected answer from the ledger script: {other:?}"
                )));
            }
        };
        let Some(l) = usize::try_from(i - 1).ok().and_then(|i| limits.get(i)) else {
            return Err(FleetError::Unavailable(format!(
                "the ledger script named limit {i} of {}",
                limits.len()
            )));
        };
        let resets_at_ms = match (l.window, l.period, resets) {
            (_, Period::Total, _) => i64::MAX,
            (Window::Calendar, p, _) => calendar::bucket_end_ms(p, calendar::bucket(p, now_ms)),
            (Window::Rolling, p, r) if r < 0 => {
                now_ms + rolling::window_len_ms(p).unwrap_or(crate::time::DAY_MS)
            }
            (Window::Rolling, _, r) => r,
        };
        Err(FleetError::Refused(Box::new(Exceeded {
            limit: l.clone(),
            current: display(l.metric, used),
            resets_at_ms,
        })))
    }

    /// `[field, spec]` pairs of the limits this replica has not registered in the last
    /// day (for every replica's budget view); marked registered now (a failed admission
    /// only delays the listing).
    fn to_register(&self, p: &str, limits: &[Limit], now_ms: i64) -> Vec<(String, String)> {
        let mut done = lock(&self.registered);
        if done.len() >= MAX_REGISTERED {
            // Bounded: forgetting only costs registering again (one HSET each).
            done.clear();
        }
        let mut out = Vec::new();
        for l in limits {
            let field = format!(
                "{}\u{1f}{}\u{1f}{}",
                l.name,
                l.scope.kind_label(),
                l.scope.value
            );
            let key = format!("{p}{field}");
            let due = done
                .get(&key)
                .is_none_or(|&at| now_ms - at >= crate::time::DAY_MS);
            if due && let Ok(spec) = serde_json::to_string(&Registered::of(l)) {
                done.insert(key, now_ms);
                out.push((field, spec));
            }
        }
        out
    }

    /// `[windows key, field, width]` triples naming the windows `limits` read, which
    /// settlement counts usage in: `c:<period>` for a calendar window, a rolling key with
    /// its sub-bucket width (an exact log counts admissions, not settlements).
    fn windows(&self, p: &str, limits: &[Limit], now_ms: i64) -> Vec<(String, String, i64)> {
        let mut out: Vec<(String, String, i64)> = Vec::with_capacity(limits.len());
        for l in limits {
            let s = self.spec(p, l, Amount::ZERO, now_ms);
            if let Some(entry) = window(p, l, &s)
                && !out.contains(&entry)
            {
                out.push(entry);
            }
        }
        out
    }

    /// Every limit any replica registered for `tenant`, sorted by name and value.
    pub async fn limits(&self, tenant: &str) -> Result<Vec<Limit>, String> {
        let mut conn = self.conn.clone();
        let key = format!("{}limits", prefix(tenant));
        let cmd = redis::cmd("HVALS").arg(key).clone();
        let specs: Vec<String> = self.bounded(cmd.query_async(&mut conn)).await?;
        let mut out: Vec<Limit> = specs
            .iter()
            .filter_map(|s| serde_json::from_str::<Registered>(s).ok()?.limit(tenant))
            .collect();
        out.sort_by(|a, b| (&a.name, &a.scope.value).cmp(&(&b.name, &b.scope.value)));
        Ok(out)
    }

    fn forget(&self, prefix: &Arc<str>, id: &Arc<str>) {
        let mut live = lock(&self.live);
        if let Some(ids) = live.get_mut(prefix) {
            ids.remove(id);
            if ids.is_empty() {
                live.remove(prefix);
            }
        }
    }

    /// Swaps `hold`'s estimate (if any) for `actual` under every scope and fires the
    /// thresholds crossed, off the request path. Usage that cannot reach Redis waits in
    /// the backlog.
    pub fn settle(
        self: &Arc<Self>,
        hold: Option<Hold>,
        scopes: &[ScopeKey],
        limits: &[Limit],
        actual: Amount,
        now_ms: i64,
    ) {
        let Some(job) = self.settlement(hold, scopes, limits, actual, now_ms) else {
            return;
        };
        let fleet = self.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.enqueue(job);
            return;
        };
        self.settling.fetch_add(1, Ordering::Relaxed);
        rt.spawn(async move {
            if let Err(job) = fleet.send_settlement(job).await {
                fleet.enqueue(job);
            }
            fleet.settling.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// The settlement [`FleetLedger::settle`] sends: `None` without scopes.
    fn settlement(
        &self,
        hold: Option<Hold>,
        scopes: &[ScopeKey],
        limits: &[Limit],
        actual: Amount,
        now_ms: i64,
    ) -> Option<Backlogged> {
        let tenant = scopes.first().map(|s| s.tenant.clone())?;
        let p = prefix(&tenant);
        let id = hold.map(|mut h| {
            h.done = true;
            self.forget(&h.prefix, &h.id);
            h.id.clone()
        });
        let counts: Vec<ScopeCounts> = scopes
            .iter()
            .map(|s| {
                let sid = scope_id(s);
                ScopeCounts {
                    c: format!("{p}c:{sid}:"),
                    w: format!("{p}rw:{sid}"),
                }
            })
            .collect();
        // Each calendar period's current bucket and how long its counter is kept.
        let cal: HashMap<&str, (i64, i64)> = Period::ALL
            .iter()
            .map(|&period| {
                let b = calendar::bucket(period, now_ms);
                let ttl = match period {
                    Period::Total => 0,
                    _ => calendar::bucket_end_ms(period, b) - now_ms + crate::time::DAY_MS,
                };
                (period.as_str(), (b, ttl))
            })
            .collect();
        let alert_limits: Vec<Limit> = limits
            .iter()
            .filter(|l| !l.alert_at.is_empty() && l.cap_units() > 0)
            .cloned()
            .collect();
        let specs: Vec<AlertSpec> = alert_limits
            .iter()
            .map(|l| {
                let spec = self.spec(&p, l, Amount::ZERO, now_ms);
                // An exact log counts admissions, which may jump past a threshold
                // between settlements: its crossing is decided by the count alone
                // (the fleet-wide marker keeps it to once per window).
                let a = if spec.k == "x" {
                    0
                } else {
                    actual.units(l.metric)
                };
                let b = calendar::bucket(l.period, now_ms);
                AlertSpec {
                    a,
                    ts: l.alert_at.clone(),
                    once: format!(
                        "{p}a:{}:{}:{}:{b}:",
                        scope_id(&l.scope),
                        escape(&l.name),
                        l.period.as_str()
                    ),
                    ttl: match l.period {
                        Period::Total => 0,
                        period => calendar::bucket_end_ms(period, b) - now_ms + crate::time::DAY_MS,
                    },
                    spec,
                }
            })
            .collect();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let payload = serde_json::json!({
            "p": p,
            "id": id.as_deref(),
            "done": format!("{p}done:{}", self.replica),
            "seq": seq,
            "keep": SETTLED_MEMORY,
            "a": amounts(actual),
            "scopes": counts,
            "cal": cal,
            "win": self.windows(&p, limits, now_ms),
            "ttl": REGISTERED_TTL_MS,
            "alerts": specs,
        })
        .to_string();
        Some(Backlogged {
            now_ms,
            payload,
            alert_limits,
        })
    }

    async fn send_settlement(&self, job: Backlogged) -> Result<(), Backlogged> {
        match self
            .call::<Vec<Vec<i64>>>("settle", job.now_ms, job.payload.clone())
            .await
        {
            Ok(fired) => {
                let fired = fired_alerts(&job.alert_limits, &fired, job.now_ms);
                if !fired.is_empty() {
                    (self.alerts)(fired);
                }
                Ok(())
            }
            Err(_) => Err(job),
        }
    }

    fn enqueue(&self, job: Backlogged) {
        let mut q = lock(&self.backlog);
        if q.len() >= self.max_backlog {
            q.pop_front();
            let n = self
                .counters
                .backlog_dropped
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                tracing::error!(
                    dropped = n,
                    "the ledger backlog is full ([ledger] max_backlog): the oldest settlement \
                     was dropped and its usage will not reach Redis"
                );
            }
        }
        q.push_back(job);
        self.counters
            .backlog_len
            .store(q.len() as u64, Ordering::Relaxed);
    }

    /// Counts backlogged settlements, oldest first, while Redis answers: at most
    /// [`DRAIN_PER_TICK`] at a time, so lease renewals are never starved by a long backlog.
    async fn drain(&self) {
        for _ in 0..DRAIN_PER_TICK {
            let Some(job) = lock(&self.backlog).pop_front() else {
                self.counters.backlog_len.store(0, Ordering::Relaxed);
                return;
            };
            if let Err(job) = self.send_settlement(job).await {
                let mut q = lock(&self.backlog);
                q.push_front(job);
                self.counters
                    .backlog_len
                    .store(q.len() as u64, Ordering::Relaxed);
                return;
            }
        }
        self.counters
            .backlog_len
            .store(lock(&self.backlog).len() as u64, Ordering::Relaxed);
    }

    /// At shutdown: waits for settlements in flight and counts the backlog, until both
    /// are done or `within` has passed; returns how many settlements did not reach
    /// Redis (logged, as they are lost to the fleet's counts).
    pub async fn flush(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.settling() == 0 && self.backlog_is_empty() {
                return 0;
            }
            self.drain().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = lock(&self.backlog).len() + self.settling() as usize;
        if left > 0 {
            tracing::error!(
                settlements = left,
                "shutting down with settlements Redis never counted (it did not answer in time)"
            );
        }
        left
    }

    /// Pushes the leases of every reservation this replica holds forward.
    async fn renew(&self) {
        let live: Vec<(Arc<str>, Vec<Arc<str>>)> = lock(&self.live)
            .iter()
            .map(|(p, ids)| (p.clone(), ids.iter().cloned().collect()))
            .collect();
        for (p, ids) in live {
            let now = crate::ids::now_ms();
            let ids: Vec<&str> = ids.iter().map(|i| &**i).collect();
            let payload = serde_json::json!({ "p": &*p, "until": now + self.lease_ms, "ids": ids })
                .to_string();
            if let Err(e) = self.call::<i64>("renew", now, payload).await {
                tracing::warn!(error = %e, "could not renew reservation leases in Redis");
                return;
            }
        }
    }

    /// The budget view across the fleet: every limit any replica registered for
    /// `tenants`, with readings from Redis; the first `max` by tenant, name and value.
    pub async fn view(
        &self,
        tenants: &[String],
        now_ms: i64,
        max: usize,
    ) -> Result<super::BudgetView, String> {
        let mut limits = Vec::new();
        for t in tenants {
            limits.extend(self.limits(t).await?);
        }
        let total = limits.len();
        limits.truncate(max);
        let readings = self.readings(&limits, now_ms).await?;
        let limits = limits
            .into_iter()
            .zip(readings)
            .map(|(l, (settled, held))| {
                let r = reading(&l, settled, held, now_ms);
                (l, r)
            })
            .collect();
        Ok(super::BudgetView { limits, total })
    }

    /// Fleet-wide readings of `limits` (settled, reserved), in each limit's metric unit.
    pub async fn readings(&self, limits: &[Limit], now_ms: i64) -> Result<Vec<(u64, u64)>, String> {
        if limits.is_empty() {
            return Ok(Vec::new());
        }
        let specs: Vec<Spec> = limits
            .iter()
            .map(|l| self.spec(&prefix(&l.scope.tenant), l, Amount::ZERO, now_ms))
            .collect();
        let mut purge: Vec<String> = limits.iter().map(|l| prefix(&l.scope.tenant)).collect();
        purge.sort_unstable();
        purge.dedup();
        let payload = serde_json::json!({ "limits": specs, "purge": purge }).to_string();
        let out: Vec<(i64, i64)> = self.call("read", now_ms, payload).await?;
        Ok(out
            .into_iter()
            .map(|(s, h)| (s.max(0) as u64, h.max(0) as u64))
            .collect())
    }

    /// A scope's fleet-wide usage in one window, every metric (the plugins' `usage`
    /// import), waiting at most `wait`. The window is registered on the scope, so every
    /// settlement counts in it from now on; `Ok(None)` when it was not registered
    /// before (no limit or read had asked for it: the fleet has no count of the past).
    pub async fn usage(
        self: &Arc<Self>,
        scope: &ScopeKey,
        period: Period,
        window: Window,
        now_ms: i64,
        wait: Duration,
    ) -> Result<Option<super::Reading>, String> {
        let p = prefix(&scope.tenant);
        // A limit no cap can reach reads the window's counters (never an exact log).
        let limits: Vec<Limit> = [Metric::Requests, Metric::Tokens, Metric::Cost]
            .into_iter()
            .map(|metric| Limit {
                name: String::new(),
                scope: scope.clone(),
                metric,
                period,
                window,
                limit: f64::MAX,
                alert_at: Vec::new(),
                plugin: Arc::from(""),
            })
            .collect();
        // A window this replica has not seen counted in Redis gets its logged past
        // first, in the background (the log may take longer than a read may wait);
        // until then the replica's own counts answer.
        // (Not a metadata scope: settlements count one only where a limit reads it, so
        // a seeded count of one no limit reads would never move again.)
        if !matches!(scope.kind, super::ScopeKind::Metadata(_)) {
            match self.seeded(&limits[0], now_ms) {
                history::Seeded::Yes => {}
                history::Seeded::Running => return Ok(None),
                history::Seeded::Start => {
                    let (fleet, l, p) = (self.clone(), limits[0].clone(), p.clone());
                    let spec = self.spec(&p, &l, Amount::ZERO, now_ms);
                    tokio::spawn(async move {
                        fleet
                            .seed(
                                &p,
                                std::slice::from_ref(&l),
                                std::slice::from_ref(&spec),
                                now_ms,
                            )
                            .await;
                        fleet.forget_seeding(&l, now_ms);
                    });
                    return Ok(None);
                }
            }
        }
        let specs: Vec<Spec> = limits
            .iter()
            .map(|l| self.spec(&p, l, Amount::ZERO, now_ms))
            .collect();
        let payload = serde_json::json!({
            "p": p,
            "win": self.windows(&p, &limits[..1], now_ms),
            "ttl": REGISTERED_TTL_MS,
            "limits": specs,
        })
        .to_string();
        let out = tokio::time::timeout(wait, self.call::<redis::Value>("usage", now_ms, payload))
            .await
            .map_err(|_| format!("no answer within {wait:?}"))??;
        let parts = match out {
            redis::Value::Array(v) => v,
            other => return Err(format!("unexpected reply {other:?}")),
        };
        let known: i64 = parts
            .first()
            .map(redis::from_redis_value_ref)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        if known == 0 {
            return Ok(None);
        }
        let mut settled = Amount::ZERO;
        let mut held = Amount::ZERO;
        for (l, v) in limits.iter().zip(parts.iter().skip(1)) {
            let (s, h): (i64, i64) = redis::from_redis_value_ref(v).map_err(|e| e.to_string())?;
            settled += Amount::of(l.metric, s.max(0) as u64);
            held += Amount::of(l.metric, h.max(0) as u64);
        }
        let (window_start_ms, resets_at_ms) = window_bounds(&limits[0], now_ms);
        Ok(Some(super::Reading {
            settled,
            reserved: held,
            window_start_ms,
            resets_at_ms,
        }))
    }
}

/// Where `l`'s window is registered on its scope (see [`FleetLedger::windows`]):
/// `[windows key, field, width]`, `None` for an exact log.
fn window(p: &str, l: &Limit, s: &Spec) -> Option<(String, String, i64)> {
    let w = format!("{p}rw:{}", scope_id(&l.scope));
    match s.k {
        "c" => Some((w, format!("c:{}", l.period.as_str()), 0)),
        "r" => Some((w, s.key.clone(), s.w)),
        _ => None,
    }
}

/// A limit's reading from its fleet counts: `settled` and `held` are in the metric's
/// integer unit. A rolling window's reset is its length from now (the sub-buckets'
/// ages stay in Redis).
fn reading(l: &Limit, settled: u64, held: u64, now_ms: i64) -> super::Reading {
    let (window_start_ms, resets_at_ms) = window_bounds(l, now_ms);
    super::Reading {
        settled: Amount::of(l.metric, settled),
        reserved: Amount::of(l.metric, held),
        window_start_ms,
        resets_at_ms,
    }
}

/// Where `l`'s window started and when it resets, as of `now_ms`.
fn window_bounds(l: &Limit, now_ms: i64) -> (i64, i64) {
    let b = calendar::bucket(l.period, now_ms);
    match (l.period, l.window) {
        (Period::Total, _) => (0, i64::MAX),
        (p, Window::Calendar) => (
            calendar::bucket_start_ms(p, b),
            calendar::bucket_end_ms(p, b),
        ),
        (p, Window::Rolling) => (
            calendar::window_start_ms(p, Window::Rolling, now_ms),
            now_ms + rolling::window_len_ms(p).unwrap_or(0),
        ),
    }
}

/// The alerts Redis says this settlement fired: `[limit index, threshold, after]`.
fn fired_alerts(limits: &[Limit], fired: &[Vec<i64>], now_ms: i64) -> Vec<Alert> {
    fired
        .iter()
        .filter_map(|f| {
            let [i, t, after] = f.as_slice() else {
                return None;
            };
            let l = limits.get(usize::try_from(*i - 1).ok()?)?;
            Some(Alert::crossed(
                l,
                u32::try_from(*t).ok()?,
                display(l.metric, *after),
                window_bounds(l, now_ms),
                now_ms,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
