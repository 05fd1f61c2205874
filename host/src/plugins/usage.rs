//! The ledger as plugins see it: the `usage` host import (a scope's usage within the
//! request's tenant) and the budget hook's grants turned into ledger limits, with the
//! WIT enums mapped to the ledger's.

use super::wit;
use crate::ledger::{Ledger, Limit, Metric, Period, RequestScopes, ScopeKind, Window};
use std::sync::Arc;

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
}

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
    pub fn report(
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
        let r = self
            .ledger
            .read(&key, period.into(), window.into(), self.now_ms());
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
