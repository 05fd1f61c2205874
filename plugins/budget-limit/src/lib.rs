//! `budget-limit`: spend, token and request budgets per tenant, team, user, API key or
//! metadata value, with alert thresholds, downgrades to a cheaper target and per-minute
//! rate limits.
//!
//! Config (see `README.md` for the full reference and a TOML example):
//!
//! ```json
//! {
//!   "limits": [
//!     { "name": "team-daily-cost", "scope": "team", "match": ["engineering"],
//!       "metric": "cost", "period": "day", "window": "calendar", "limit": 5.0,
//!       "alert_at": [50, 80, 100],
//!       "downgrade": { "at": 80, "provider": "mock", "model": "claude-haiku-4-5" } }
//!   ],
//!   "rate_limits": [
//!     { "name": "key-rpm", "scope": "key", "requests_per_minute": 60, "tokens_per_minute": 100000 }
//!   ]
//! }
//! ```
//!
//! - `limits[]`: `name` (unique), `scope` (`tenant`, `team`, `user`, `key` or
//!   `metadata.<key>`), optional `match` (globs on the scope's value; absent = every
//!   value gets its own cap), `metric` (`cost` in US dollars, `tokens`, `requests`),
//!   `period` (`minute`, `hour`, `day`, `week`, `month`, `total`), `window`
//!   (`calendar`, the default, or `rolling`), `limit` (above 0), `alert_at`
//!   (percentages 1..=1000) and `downgrade` (`at` percent 1..=99, `provider`, optional
//!   `model`).
//! - `rate_limits[]`: `name`, `scope`, optional `match`, and `requests_per_minute` and/or
//!   `tokens_per_minute`: rolling one-minute limits named `<name>:requests` and
//!   `<name>:tokens`.
//!
//! For each request, every limit whose scope the request has a value for (the tenant
//! always; the team and user when the key is bound to one or the metadata names one;
//! the key's id; a metadata value when sent) and whose `match` accepts that value is
//! granted to the host, with its alert thresholds. If a granted limit has a
//! `downgrade` and its scope's current usage (settled plus reserved, from
//! [`Request::usage`]) is at least `at` percent of the limit, the request is served on
//! the downgrade target instead, unless it is already routed there; the first such
//! limit wins and is recorded as the label `budget_downgrade=<name>`.
//!
//! The plugin never denies a request itself. The usage it can read is a snapshot:
//! between reading it and the request being admitted, concurrent requests of the same
//! scope are admitted too, so a plugin-side "usage < limit" check would let a burst
//! overshoot the budget, and could not reserve anything for the request. The host
//! instead checks every granted limit and reserves the request's estimate in one
//! atomic step, denies with a 429 naming the exhausted budget and when it resets, and
//! raises the alerts (log event and the tenant's webhook: plugins have no network).
//! A downgrade is only a cost-saving hint and may safely act on the snapshot.

#![warn(missing_docs)]

pub mod config;

#[cfg(test)]
mod tests;

pub use config::Config;
use config::Limit;
use tollgate_guest::{BudgetDecision, Plugin, Request, Target};

/// The plugin; exported as the component's `guest` interface.
pub struct BudgetLimiter;

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "budget-limit",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "limits": {
      "description": "Budgets, in order; the first one that downgrades a request wins.",
      "type": "array",
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "scope", "metric", "period", "limit"],
        "properties": {
          "name": {"description": "Unique; shown in denials, alerts and the admin API.", "type": "string", "minLength": 1},
          "scope": {"$ref": "#/$defs/scope"},
          "match": {"$ref": "#/$defs/match"},
          "metric": {"description": "cost in US dollars, tokens, or requests.", "enum": ["cost", "tokens", "requests"]},
          "period": {"enum": ["minute", "hour", "day", "week", "month", "total"]},
          "window": {"description": "calendar resets at each UTC period start; rolling slides.", "enum": ["calendar", "rolling"], "default": "calendar"},
          "limit": {"description": "The cap, in the metric's unit.", "type": "number", "exclusiveMinimum": 0},
          "alert_at": {
            "description": "Percentages of limit at which the gateway raises an alert, once per period.",
            "type": "array", "uniqueItems": true,
            "items": {"type": "integer", "minimum": 1, "maximum": 1000},
            "default": []
          },
          "downgrade": {
            "description": "From `at` percent of the limit, serve on this target instead.",
            "type": "object",
            "additionalProperties": false,
            "required": ["at", "provider"],
            "properties": {
              "at": {"type": "integer", "minimum": 1, "maximum": 99},
              "provider": {"description": "Provider id from the gateway config.", "type": "string", "minLength": 1},
              "model": {"description": "Absent: the requested model.", "type": "string", "minLength": 1}
            }
          }
        }
      }
    },
    "rate_limits": {
      "description": "Rolling one-minute limits named <name>:requests and <name>:tokens.",
      "type": "array",
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "scope"],
        "anyOf": [{"required": ["requests_per_minute"]}, {"required": ["tokens_per_minute"]}],
        "properties": {
          "name": {"type": "string", "minLength": 1},
          "scope": {"$ref": "#/$defs/scope"},
          "match": {"$ref": "#/$defs/match"},
          "requests_per_minute": {"type": "integer", "minimum": 1},
          "tokens_per_minute": {"type": "integer", "minimum": 1}
        }
      }
    }
  },
  "$defs": {
    "scope": {
      "description": "tenant, team, user, key (API key id) or metadata.<key>.",
      "type": "string",
      "pattern": "^(tenant|team|user|key|metadata\\..+)$"
    },
    "match": {
      "description": "Only these scope values (globs: * any run, ? one character); absent = every value.",
      "type": "array", "minItems": 1,
      "items": {"type": "string", "minLength": 1}
    }
  }
}"##;

#[tollgate_guest::plugin]
impl Plugin for BudgetLimiter {
    const NAME: &'static str = "budget-limit";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn config_schema() -> &'static str {
        SCHEMA
    }

    fn validate(c: &Config) -> Result<(), String> {
        config::validate(c)
    }

    /// The checked config in postcard: a fresh instance reads it back without parsing
    /// the JSON or validating it again.
    fn prepare(c: &Config) -> Option<Vec<u8>> {
        postcard::to_allocvec(c).ok()
    }

    fn from_prepared(data: &[u8]) -> Option<Config> {
        postcard::from_bytes(data).ok()
    }

    fn budget(c: &Config, req: &Request, target: &Target) -> BudgetDecision {
        let mut decision = BudgetDecision::allow();
        let mut downgrade = None;
        for limit in &c.limits {
            let Some(value) = req.scope_value(&limit.scope) else {
                continue;
            };
            if !config::matches(limit.matches.as_deref(), value) {
                continue;
            }
            if downgrade.is_none() {
                downgrade = downgrade_for(limit, req, target).map(|t| (t, &limit.name));
            }
            decision = decision.limit(limit.budget_limit());
        }
        for rate in &c.rate_limits {
            let applies = req
                .scope_value(&rate.scope)
                .is_some_and(|v| config::matches(rate.matches.as_deref(), v));
            if applies {
                for limit in rate.budget_limits() {
                    decision = decision.limit(limit);
                }
            }
        }
        match downgrade {
            Some((to, name)) => decision
                .downgrade(to)
                .label("budget_downgrade", name.as_str()),
            None => decision,
        }
    }
}

/// The downgrade target of a granted `limit`, if its usage has reached the threshold
/// and `target` is not already that target. Reads usage only for limits with a downgrade.
fn downgrade_for(limit: &Limit, req: &Request, target: &Target) -> Option<Target> {
    let d = limit.downgrade.as_ref()?;
    let served = |model: Option<&str>| model.unwrap_or(req.model()).to_string();
    if target.provider == d.provider
        && served(target.model.as_deref()) == served(d.model.as_deref())
    {
        return None;
    }
    let used = req
        .usage(&limit.scope, limit.period, limit.window)
        .current(limit.metric);
    if used * 100.0 < f64::from(d.at) * limit.limit {
        return None;
    }
    req.log_info(format!(
        "budget '{}' is at {:.0}% of its limit ({} of {}): serving on {}/{}",
        limit.name,
        used * 100.0 / limit.limit,
        used,
        limit.limit,
        d.provider,
        served(d.model.as_deref()),
    ));
    Some(d.target())
}

tollgate_guest::export_plugin!(BudgetLimiter);
