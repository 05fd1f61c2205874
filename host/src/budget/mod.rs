//! Budgets around a request: the budget hook's grants become ledger limits, the host
//! reserves an estimate atomically at admission and settles the real cost when the
//! request ends; refusals are 429s in the client's API; crossed thresholds become alerts.

mod alerts;

pub use alerts::{AlertSink, Webhook};

use crate::error::{ApiError, ErrorKind};
use crate::ledger::{Amount, Refused};
use crate::pricing::Pricing;
use crate::usage::Usage;

/// Output tokens reserved for a request that sets no `max_tokens`.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

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
