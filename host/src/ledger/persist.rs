//! The ledger in SQLite: usage per stored bucket, fired alerts and limits seen, so
//! budgets survive a restart. Rows use the same bucket numbers as the in-memory
//! windows ([`bucket`]); names are stored lowercase and rows that do not parse are
//! skipped on load rather than failing start-up.

use super::calendar::{DAY_MS, Period, Window, bucket, bucket_end_ms, bucket_start_ms};
use super::counters::{Fired, Tracked};
use super::{
    Alert, Amount, Ledger, LedgerCaps, Limit, Metric, ScopeKey, ScopeKind, Shard, State, rolling,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// SQL for the ledger tables, run once as a schema migration by the store.
pub const MIGRATION: &str = r#"
CREATE TABLE usage_ledger (
    tenant_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    value      TEXT NOT NULL,
    period     TEXT NOT NULL,
    bucket     INTEGER NOT NULL,
    requests   INTEGER NOT NULL DEFAULT 0,
    tokens     INTEGER NOT NULL DEFAULT 0,
    cost_nano  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, scope, value, period, bucket)
) WITHOUT ROWID;
CREATE INDEX usage_ledger_period_bucket ON usage_ledger(period, bucket);
CREATE TABLE budget_alerts (
    tenant_id   TEXT NOT NULL,
    budget      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    value       TEXT NOT NULL,
    period      TEXT NOT NULL,
    bucket      INTEGER NOT NULL,
    threshold   INTEGER NOT NULL,
    fired_at_ms INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, budget, scope, value, period, bucket, threshold)
) WITHOUT ROWID;
CREATE INDEX budget_alerts_period_bucket ON budget_alerts(period, bucket);
CREATE INDEX budget_alerts_fired ON budget_alerts(fired_at_ms DESC);
CREATE INDEX budget_alerts_tenant_fired ON budget_alerts(tenant_id, fired_at_ms DESC);
CREATE TABLE budget_limits (
    tenant_id    TEXT NOT NULL,
    budget       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    value        TEXT NOT NULL,
    spec         TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, budget, scope, value)
) WITHOUT ROWID;
"#;

/// How far back day/week/month buckets are kept for reporting.
const HISTORY_MS: i64 = 400 * DAY_MS;
/// How far back minute and hour buckets are kept: enough to seed a rolling hour (from
/// minutes) and a rolling day (from hours) after a restart.
const MINUTES_KEPT_MS: i64 = 2 * 3_600_000;
const HOURS_KEPT_MS: i64 = 26 * 3_600_000;
/// Limits no plugin has granted for this long leave the budget view.
const LIMITS_KEPT_MS: i64 = 40 * DAY_MS;

/// A finished request's usage, as the log writer receives it. `ts_ms` must be the
/// instant given to [`Ledger::settle`] so both land in the same buckets.
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    /// Every scope the usage counts under (the reservation's scopes).
    pub scopes: Arc<[ScopeKey]>,
    /// What the request actually used.
    pub amount: Amount,
    /// The settlement instant, Unix ms.
    pub ts_ms: i64,
}

/// The stored JSON of a limit; the row's key columns (or, in Redis, the fleet's
/// registration) hold its name and scope.
#[derive(Serialize, Deserialize)]
pub(super) struct Spec {
    metric: Metric,
    period: Period,
    window: Window,
    limit: f64,
    #[serde(default)]
    alert_at: Vec<u32>,
    #[serde(default)]
    plugin: Option<String>,
}

impl Spec {
    /// `l`'s spec.
    pub(super) fn of(l: &Limit) -> Self {
        Self {
            metric: l.metric,
            period: l.period,
            window: l.window,
            limit: l.limit,
            alert_at: l.alert_at.clone(),
            plugin: Some(l.plugin.to_string()),
        }
    }

    /// The limit named `name` on `scope` with this spec.
    pub(super) fn limit(self, name: String, scope: ScopeKey) -> Limit {
        Limit {
            name,
            scope,
            metric: self.metric,
            period: self.period,
            window: self.window,
            limit: self.limit,
            alert_at: self.alert_at,
            plugin: self.plugin.unwrap_or_default().into(),
        }
    }
}

/// SQLite integers are signed; counters beyond `i64::MAX` stick there.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored counter, tolerating what SQLite may have turned it into (an overflowing
/// `x + y` becomes REAL) and NULL or garbage (0).
fn counter(row: &Row<'_>, i: usize) -> u64 {
    match row.get_ref(i) {
        Ok(ValueRef::Integer(v)) => u64::try_from(v).unwrap_or(0),
        Ok(ValueRef::Real(v)) => v as u64, // saturates; NaN and negatives give 0
        _ => 0,
    }
}

/// Adds entries to the stored buckets of every period and the total, coalesced per
/// row first (many requests share a bucket), inside the caller's transaction.
pub fn write_entries(tx: &Transaction<'_>, entries: &[LedgerEntry]) -> rusqlite::Result<()> {
    // A minute lies within one bucket of every longer period, and a batch's requests
    // mostly share theirs: summing per scope and minute first hashes each request's
    // scopes once, then each distinct scope and minute once per period, instead of
    // every scope of every request once per period (those hashes were a sixth of the
    // log writer's time).
    let mut minutes: HashMap<(&ScopeKey, i64), Amount> = HashMap::new();
    for e in entries.iter().filter(|e| e.amount != Amount::ZERO) {
        let minute = bucket(Period::Minute, e.ts_ms);
        for key in e.scopes.iter() {
            *minutes.entry((key, minute)).or_default() += e.amount;
        }
    }
    let mut rows: HashMap<(&ScopeKey, Period, i64), Amount> = HashMap::new();
    for ((key, minute), a) in minutes {
        let ts_ms = bucket_start_ms(Period::Minute, minute);
        for p in Period::ALL {
            *rows.entry((key, p, bucket(p, ts_ms))).or_default() += a;
        }
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO usage_ledger
             (tenant_id, scope, value, period, bucket, requests, tokens, cost_nano)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant_id, scope, value, period, bucket) DO UPDATE SET
             requests = requests + excluded.requests,
             tokens = tokens + excluded.tokens,
             cost_nano = cost_nano + excluded.cost_nano",
    )?;
    for ((key, p, b), a) in rows {
        stmt.execute(params![
            &*key.tenant,
            key.kind_label(),
            &*key.value,
            p.as_str(),
            b,
            to_i64(a.requests),
            to_i64(a.tokens),
            to_i64(a.cost_nano),
        ])?;
    }
    Ok(())
}

/// Stores limits first seen (upserting spec and `last_seen_ms`), so the budget view
/// lists them after a restart.
pub fn write_limits(tx: &Transaction<'_>, limits: &[Limit], now_ms: i64) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO budget_limits (tenant_id, budget, scope, value, spec, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant_id, budget, scope, value) DO UPDATE SET
             spec = excluded.spec, last_seen_ms = excluded.last_seen_ms",
    )?;
    for l in limits {
        let spec = serde_json::to_string(&Spec::of(l)).map_err(to_sql_err)?;
        stmt.execute(params![
            &*l.scope.tenant,
            l.name,
            l.scope.kind_label(),
            &*l.scope.value,
            spec,
            now_ms
        ])?;
    }
    Ok(())
}

fn to_sql_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Records a fired alert under the calendar bucket of its period at `at_ms` (the key
/// the ledger deduplicates on); false when it was already recorded (another process,
/// or a restart that lost the in-memory record).
pub fn record_alert(conn: &Connection, alert: &Alert) -> rusqlite::Result<bool> {
    let payload = serde_json::to_string(alert).map_err(to_sql_err)?;
    let n = conn.execute(
        "INSERT INTO budget_alerts
             (tenant_id, budget, scope, value, period, bucket, threshold, fired_at_ms, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT DO NOTHING",
        params![
            alert.tenant,
            alert.budget,
            alert.scope,
            alert.value,
            alert.period.as_str(),
            bucket(alert.period, alert.at_ms),
            alert.threshold_pct,
            alert.at_ms,
            payload
        ],
    )?;
    Ok(n == 1)
}

/// Fired alerts, newest first (admin API), optionally for one tenant; at most `limit`.
/// Payloads that no longer parse are skipped.
pub fn list_alerts(
    conn: &Connection,
    tenant: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<Alert>> {
    let mut stmt = conn.prepare(if tenant.is_some() {
        "SELECT payload FROM budget_alerts WHERE tenant_id = ?1
         ORDER BY fired_at_ms DESC LIMIT ?2"
    } else {
        "SELECT payload FROM budget_alerts ORDER BY fired_at_ms DESC LIMIT ?1"
    })?;
    let rows = match tenant {
        Some(t) => stmt.query_map(params![t, limit], alert_of)?,
        None => stmt.query_map(params![limit], alert_of)?,
    };
    let mut out = Vec::new();
    for alert in rows {
        out.extend(alert?);
    }
    Ok(out)
}

fn alert_of(row: &Row<'_>) -> rusqlite::Result<Option<Alert>> {
    let payload = row.get_ref(0)?.as_str().ok();
    Ok(payload.and_then(|p| serde_json::from_str(p).ok()))
}

/// The scope a row's key columns name, if they parse.
fn scope_of(row: &Row<'_>, tenant: usize, scope: usize, value: usize) -> Option<ScopeKey> {
    let kind = ScopeKind::from_label(row.get_ref(scope).ok()?.as_str().ok()?)?;
    Some(ScopeKey {
        tenant: row.get_ref(tenant).ok()?.as_str().ok()?.into(),
        kind,
        value: row.get_ref(value).ok()?.as_str().ok()?.into(),
    })
}

/// Oldest and newest bucket any calendar window reads at `now_ms`.
fn live_buckets(p: Period, now_ms: i64) -> (i64, i64) {
    let b = bucket(p, now_ms);
    (b.saturating_sub(1), b)
}

/// The stored period a rolling window of `p` is rebuilt from after a restart.
fn finer(p: Period) -> Period {
    match p {
        Period::Minute | Period::Hour => Period::Minute,
        Period::Day => Period::Hour,
        _ => Period::Day,
    }
}

/// Rebuilds the in-memory ledger at start-up: the current and previous bucket of
/// every period for every stored scope, totals, the alerts fired in those buckets
/// (so they do not fire again), the limits seen (so budgets show after a restart; the
/// most recently granted `caps.max_limits_per_tenant` per tenant), and for every
/// rolling limit its window, rebuilt from finer stored buckets with each bucket's usage
/// counted at its last instant (never earlier than it happened). Totals are loaded for
/// the scopes in use or limited, not for every value ever counted.
pub fn load(conn: &Connection, now_ms: i64, caps: LedgerCaps) -> rusqlite::Result<Ledger> {
    let mut tenants: HashMap<Arc<str>, State> = HashMap::new();
    let mut limits = conn.prepare(
        "SELECT tenant_id, scope, value, budget, spec, last_seen_ms FROM budget_limits
         ORDER BY tenant_id, last_seen_ms DESC",
    )?;
    let rows = limits.query_map([], |row| {
        let limit = || {
            let spec: Spec = serde_json::from_str(row.get_ref(4).ok()?.as_str().ok()?).ok()?;
            let limit = spec.limit(row.get(3).ok()?, scope_of(row, 0, 1, 2)?);
            Some((limit, row.get::<_, i64>(5).ok()?))
        };
        Ok(limit())
    })?;
    // (scope, period) pairs whose rolling window is rebuilt below.
    let mut rolling: HashMap<Period, HashSet<ScopeKey>> = HashMap::new();
    for row in rows {
        let Some((l, seen_ms)) = row? else { continue };
        let st = tenants.entry(l.scope.tenant.clone()).or_default();
        if st.tracked >= caps.max_limits_per_tenant {
            continue;
        }
        if l.window == Window::Rolling && l.period != Period::Total {
            rolling.entry(l.period).or_default().insert(l.scope.clone());
        }
        let c = st.counters(&l.scope);
        if !c.limits.contains_key(l.name.as_str()) {
            c.limits.insert(
                Arc::from(l.name.as_str()),
                Tracked {
                    limit: l,
                    log: None,
                    persisted_ms: seen_ms,
                    seen_ms,
                },
            );
            st.tracked += 1;
        }
    }

    let mut usage = conn.prepare(
        "SELECT tenant_id, scope, value, bucket, requests, tokens, cost_nano
         FROM usage_ledger WHERE period = ?1 AND bucket BETWEEN ?2 AND ?3 ORDER BY bucket",
    )?;
    let amount_of = |row: &Row<'_>| Amount {
        requests: counter(row, 4),
        tokens: counter(row, 5),
        cost_nano: counter(row, 6),
    };
    let mut alerts = conn.prepare(
        "SELECT tenant_id, scope, value, bucket, budget, threshold
         FROM budget_alerts WHERE period = ?1 AND bucket BETWEEN ?2 AND ?3",
    )?;
    for p in Period::ALL {
        let (lo, hi) = live_buckets(p, now_ms);
        let rows = usage.query_map(params![p.as_str(), lo, hi], |row| {
            Ok(scope_of(row, 0, 1, 2)
                .zip(row.get::<_, i64>(3).ok())
                .map(|(k, b)| (k, b, amount_of(row))))
        })?;
        for row in rows {
            if let Some((key, b, amount)) = row? {
                let st = tenants.entry(key.tenant.clone()).or_default();
                // Every scope ever counted has a total: only those in use now (or with
                // limits) are loaded, so the cap on scope values holds at start-up too.
                if p == Period::Total && !st.scopes.contains_key(&key) {
                    continue;
                }
                st.counters(&key).add_bucket(p, b, amount);
            }
        }
        let rows = alerts.query_map(params![p.as_str(), lo, hi], |row| {
            let fired = || {
                Some(Fired {
                    budget: row.get_ref(4).ok()?.as_str().ok()?.into(),
                    period: p,
                    bucket: row.get(3).ok()?,
                    threshold: u32::try_from(row.get::<_, i64>(5).ok()?).ok()?,
                })
            };
            Ok(scope_of(row, 0, 1, 2).zip(fired()))
        })?;
        for row in rows {
            if let Some((key, fired)) = row? {
                let st = tenants.entry(key.tenant.clone()).or_default();
                st.counters(&key).fired.push(fired);
            }
        }
    }

    for (period, keys) in &rolling {
        let (Some(len), src) = (rolling::window_len_ms(*period), finer(*period)) else {
            continue;
        };
        let (lo, hi) = (bucket(src, now_ms.saturating_sub(len)), bucket(src, now_ms));
        let mut seeds: HashMap<ScopeKey, Vec<(i64, Amount)>> = HashMap::new();
        let rows = usage.query_map(params![src.as_str(), lo, hi], |row| {
            Ok(scope_of(row, 0, 1, 2)
                .zip(row.get::<_, i64>(3).ok())
                .map(|(k, b)| (k, b, amount_of(row))))
        })?;
        for row in rows {
            if let Some((key, b, amount)) = row?
                && keys.contains(&key)
            {
                let latest = bucket_end_ms(src, b).saturating_sub(1).min(now_ms);
                seeds.entry(key).or_default().push((latest, amount));
            }
        }
        for key in keys {
            let st = tenants.entry(key.tenant.clone()).or_default();
            let parts = seeds.remove(key).unwrap_or_default();
            st.counters(key).seed_ring(*period, &parts);
        }
    }

    let ledger = Ledger::with_caps(caps);
    {
        let mut shards = crate::sync::write(&ledger.shards);
        for (tenant, state) in tenants {
            shards.insert(
                tenant,
                Arc::new(Shard {
                    state: Mutex::new(state),
                }),
            );
        }
    }
    Ok(ledger)
}

/// Deletes what no window reads any more: minute buckets older than two hours and hour
/// buckets older than 26 (kept to rebuild rolling windows after a restart),
/// day/week/month buckets older than ~400 days (kept for reporting), non-`Total` alerts
/// fired before then, and limits no plugin has granted for 40 days. Totals and `Total`
/// alerts stay. Returns the number of rows deleted.
pub fn prune(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    let mut stmt =
        conn.prepare_cached("DELETE FROM usage_ledger WHERE period = ?1 AND bucket < ?2")?;
    let mut deleted = 0;
    for p in Period::ALL {
        let keep_from = match p {
            Period::Minute => bucket(p, now_ms.saturating_sub(MINUTES_KEPT_MS)),
            Period::Hour => bucket(p, now_ms.saturating_sub(HOURS_KEPT_MS)),
            Period::Day | Period::Week | Period::Month => live_buckets(p, now_ms)
                .0
                .min(bucket(p, now_ms.saturating_sub(HISTORY_MS))),
            Period::Total => continue,
        };
        deleted += stmt.execute(params![p.as_str(), keep_from])?;
    }
    deleted += conn.execute(
        "DELETE FROM budget_alerts WHERE period <> 'total' AND fired_at_ms < ?1",
        params![now_ms.saturating_sub(HISTORY_MS)],
    )?;
    deleted += conn.execute(
        "DELETE FROM budget_limits WHERE last_seen_ms < ?1",
        params![now_ms.saturating_sub(LIMITS_KEPT_MS)],
    )?;
    Ok(deleted)
}
