//! The ledger as plugins see it: the `usage` host import (a scope's usage within the
//! request's tenant) and the budget hook's grants turned into ledger limits, with the
//! WIT enums mapped to the ledger's.

use super::wit;
use crate::ledger::fleet::FleetLedger;
use crate::ledger::{Ledger, Limit, Metric, Period, RequestScopes, ScopeKind, Window};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// What a plugin call may read of the ledger: usage within the request's tenant.
#[derive(Clone)]
pub struct UsageView {
    /// The gateway's ledger.
    pub ledger: Arc<Ledger>,
    /// The request's tenant and scopes: all a plugin may ask about.
    pub scopes: Arc<RequestScopes>,
    /// The moment usage is read at (`None`: now); a replay reads as of the request's
    /// own arrival.
    pub at_ms: Option<i64>,
    /// The fleet's shared ledger, read instead of this replica's (never in a replay).
    pub fleet: Option<FleetReads>,
}

/// A request's reads of the fleet ledger.
#[derive(Clone)]
pub struct FleetReads {
    /// The fleet's shared ledger.
    pub ledger: Arc<FleetLedger>,
    /// What this request's reads used so far, shared by its plugin calls.
    pub spent: Arc<ReadsSpent>,
}

/// What one request's fleet reads used.
#[derive(Default)]
pub struct ReadsSpent {
    /// Reads made (see [`MAX_FLEET_READS`]).
    made: AtomicU32,
    /// Microseconds waited (see [`FLEET_READ_WAIT`]).
    waited_us: AtomicU64,
}

/// Fleet reads one request's plugins may make; past it they read this replica's
/// counts. Each read registers a window in Redis, and a plugin may name any value.
const MAX_FLEET_READS: u32 = 16;

/// Longest one request's usage reads wait for the fleet ledger, all together, before
/// they answer with this replica's counts: waits count against the plugins' deadline
/// (5 ms by default).
const FLEET_READ_WAIT: Duration = Duration::from_millis(2);

impl UsageView {
    /// The report for a scope the request has no value of.
    pub fn none() -> wit::UsageReport {
        wit::UsageReport {
            value: None,
            requests: 0,
            tokens: 0,
            cost_usd: 0.0,
            reserved_requests: 0,
            reserved_tokens: 0,
            reserved_cost_usd: 0.0,
            resets_at_ms: 0,
        }
    }

    /// The clock plugins and windows see.
    pub fn now_ms(&self) -> i64 {
        self.at_ms.unwrap_or_else(crate::ids::now_ms)
    }

    /// The `usage` host import: `value` (or the request's own) of `scope` in a window.
    /// A fleet replica reads the fleet's counts; when Redis cannot answer in time, or
    /// no limit or read had asked for the window before (the fleet has no count of its
    /// past), this replica's own.
    pub async fn report(
        &self,
        scope: wit::Scope,
        value: Option<String>,
        period: wit::Period,
        window: wit::Window,
    ) -> wit::UsageReport {
        let kind = scope_kind(scope);
        let key = match value {
            Some(v) => Some(self.scopes.key_with_value(kind, &v)),
            None => self.scopes.key(kind),
        };
        let Some(key) = key else {
            return Self::none();
        };
        let (period, window, now) = (period.into(), window.into(), self.now_ms());
        let left = |f: &FleetReads| {
            FLEET_READ_WAIT.saturating_sub(Duration::from_micros(
                f.spent.waited_us.load(Ordering::Relaxed),
            ))
        };
        let fleet = match &self.fleet {
            Some(f)
                if self.at_ms.is_none()
                    && !left(f).is_zero()
                    && f.spent.made.fetch_add(1, Ordering::Relaxed) < MAX_FLEET_READS =>
            {
                let started = std::time::Instant::now();
                let read = f.ledger.usage(&key, period, window, now, left(f)).await;
                f.spent
                    .waited_us
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                match read {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "plugin usage read from this replica's ledger: the fleet ledger did not answer");
                        None
                    }
                }
            }
            _ => None,
        };
        let r = fleet.unwrap_or_else(|| self.ledger.read(&key, period, window, now));
        let (s, h) = (r.settled, r.reserved);
        wit::UsageReport {
            value: Some(key.value.to_string()),
            requests: s.requests + h.requests,
            tokens: s.tokens + h.tokens,
            cost_usd: usd(s.cost_nano + h.cost_nano),
            reserved_requests: h.requests,
            reserved_tokens: h.tokens,
            reserved_cost_usd: usd(h.cost_nano),
            resets_at_ms: r.resets_at_ms.max(0) as u64,
        }
    }
}

/// The granted limits (with the plugin that granted each) as ledger limits for this
/// request's scope values; a limit on a scope the request has no value for (no team,
/// say) does not apply.
pub fn ledger_limits(
    granted: Vec<(Arc<str>, wit::BudgetLimit)>,
    scopes: &RequestScopes,
) -> Vec<Limit> {
    granted
        .into_iter()
        .filter_map(|(plugin, l)| {
            let scope = scopes.key(scope_kind(l.scope))?;
            Some(Limit {
                name: l.name,
                scope,
                metric: l.metric.into(),
                period: l.period.into(),
                window: l.window.into(),
                limit: l.limit,
                alert_at: l.alert_at,
                plugin,
            })
        })
        .collect()
}

fn usd(nano: u64) -> f64 {
    nano as f64 / 1e9
}

fn scope_kind(s: wit::Scope) -> ScopeKind {
    match s {
        wit::Scope::Tenant => ScopeKind::Tenant,
        wit::Scope::Team => ScopeKind::Team,
        wit::Scope::User => ScopeKind::User,
        wit::Scope::Key => ScopeKind::Key,
        wit::Scope::Metadata(k) => ScopeKind::Metadata(Arc::from(k)),
    }
}

impl From<wit::Metric> for Metric {
    fn from(m: wit::Metric) -> Self {
        match m {
            wit::Metric::Cost => Self::Cost,
            wit::Metric::Tokens => Self::Tokens,
            wit::Metric::Requests => Self::Requests,
        }
    }
}

impl From<wit::Period> for Period {
    fn from(p: wit::Period) -> Self {
        match p {
            wit::Period::Minute => Self::Minute,
            wit::Period::Hour => Self::Hour,
            wit::Period::Day => Self::Day,
            wit::Period::Week => Self::Week,
            wit::Period::Month => Self::Month,
            wit::Period::Total => Self::Total,
        }
    }
}

impl From<wit::Window> for Window {
    fn from(w: wit::Window) -> Self {
        match w {
            wit::Window::Calendar => Self::Calendar,
            wit::Window::Rolling => Self::Rolling,
        }
    }
}
