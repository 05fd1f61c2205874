//! Ledger behaviour end to end, with shared fixtures.

mod admission;
mod caps;
mod persistence;
mod windows;

use super::calendar::{DAY_MS, days_from_civil};
use super::*;
use rusqlite::Connection;

/// Wednesday 2026-11-25 12:00 UTC.
const T0: i64 = 20_782 * DAY_MS + 12 * 3_600_000;

fn key(kind: ScopeKind, value: &str) -> ScopeKey {
    ScopeKey::new("acme", kind, value)
}

fn team() -> ScopeKey {
    key(ScopeKind::Team, "engineering")
}

fn scopes() -> Arc<[ScopeKey]> {
    Arc::from(vec![
        key(ScopeKind::Tenant, "acme"),
        team(),
        key(ScopeKind::Key, "key_1"),
        key(ScopeKind::Metadata("project".into()), "apollo"),
    ])
}

fn limit(
    name: &str,
    scope: ScopeKey,
    metric: Metric,
    period: Period,
    window: Window,
    cap: f64,
) -> Limit {
    Limit {
        name: name.into(),
        scope,
        metric,
        period,
        window,
        limit: cap,
        alert_at: vec![50, 80, 100],
        plugin: "budget-limit".into(),
    }
}

fn usd(dollars: f64) -> Amount {
    Amount {
        requests: 1,
        tokens: 1_000,
        cost_nano: Metric::Cost.units_of(dollars),
    }
}

fn one() -> Amount {
    usd(0.001)
}

fn db() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory db");
    conn.execute_batch(MIGRATION).expect("migration");
    conn
}

/// The exhausted limit of a refusal.
fn exceeded(r: Refused) -> Exceeded {
    match r {
        Refused::Exceeded(e) => *e,
        other => panic!("expected an exhausted limit, got {other:?}"),
    }
}
