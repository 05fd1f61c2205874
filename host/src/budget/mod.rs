//! Budgets around a request: the budget hook's grants become ledger limits, the host
//! reserves an estimate atomically at admission and settles the real cost when the
//! request ends; refusals are 429s in the client's API; crossed thresholds become alerts.

mod alerts;
mod scopes;

pub use alerts::{AlertSink, SIGNATURE_HEADER, Webhook, sign};
pub use scopes::RequestScopes;

use crate::error::{ApiError, ErrorKind};
use crate::ledger::{Amount, Ledger, Limit, Metric, Period, Refused, ScopeKind, Window};
use crate::plugins::wit;
use crate::pricing::Pricing;
use crate::usage::Usage;
use std::sync::Arc;

/// Output tokens reserved for a request that sets no `max_tokens`.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

/// What a plugin call may read of the ledger: usage within the request's tenant.
#[derive(Clone)]
pub struct UsageView {
    pub ledger: Arc<Ledger>,
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

/// What a request is expected to use, reserved while it runs: the prompt estimate in,
/// `max_tokens` (or a default) out, priced at the target's model.
pub fn estimate(
    pricing: &Pricing,
    provider: &str,
    model: &str,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
) -> Amount {
    let input = u64::from(prompt_tokens);
    let output = max_tokens.map_or(DEFAULT_OUTPUT_RESERVE, u64::from);
    Amount {
        requests: 1,
        tokens: input + output,
        cost_nano: pricing.estimate_nano(provider, model, input, output),
    }
}

/// What a finished request used.
pub fn actual(usage: &Usage, cost_nano: u64) -> Amount {
    Amount {
        requests: 1,
        tokens: usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_tokens
            + usage.cache_write_tokens,
        cost_nano,
    }
}

/// The granted limits (with the plugin that granted each) as ledger limits for this
/// request's scope values; a limit on a scope the request has no value for (no team,
/// say) does not apply.
pub fn limits(granted: Vec<(Arc<str>, wit::BudgetLimit)>, scopes: &RequestScopes) -> Vec<Limit> {
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

/// The client's answer when the ledger refuses: for an exhausted limit a 429 that names
/// the budget, says when it resets, and tells SDKs not to retry a budget that will not
/// reset soon; for a tenant at one of the ledger's caps, an error naming the cap.
pub fn refusal(refused: &Refused, now_ms: i64) -> ApiError {
    let e = match refused {
        Refused::Exceeded(e) => e,
        Refused::TooManyLimits {
            tenant,
            plugin,
            cap,
        } => {
            return ApiError::internal(format!(
                "plugin '{plugin}' granted a budget limit beyond tenant '{tenant}'s cap of \
                 {cap} tracked limits ([budgets] max_limits_per_tenant)"
            ));
        }
        Refused::TooManyScopes { tenant, cap } => {
            return ApiError::new(
                ErrorKind::Overloaded,
                format!(
                    "tenant '{tenant}' already counts usage for {cap} distinct teams, users, \
                     keys and metadata values ([budgets] max_scopes_per_tenant); a request \
                     with a new one cannot be counted"
                ),
            );
        }
    };
    let mut err = if e.is_rate_limit() {
        ApiError::new(ErrorKind::RateLimit, e.message())
    } else {
        ApiError::new(ErrorKind::BudgetExceeded, e.message())
    };
    // A total budget never resets: there is nothing to wait for.
    if e.resets_at_ms != i64::MAX {
        err.retry_after = Some(e.retry_after_secs(now_ms));
    }
    if !e.is_rate_limit() {
        err.should_retry = Some(false);
    }
    err
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
