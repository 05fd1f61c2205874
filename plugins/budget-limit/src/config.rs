//! The plugin's config: serde types and the checks serde cannot express, each error
//! naming the field path.

use serde::{Deserialize, Serialize};
use tollgate_guest::{BudgetLimit, Metric, Period, Scope, Target, Window, glob_match};

/// The plugin's config; see the crate docs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Budgets, in order (the first one that downgrades wins).
    #[serde(default)]
    pub limits: Vec<Limit>,
    /// Per-minute request and token limits (sugar for rolling one-minute limits).
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
}

/// One budget.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Unique name, shown in denials, alerts and the admin API.
    pub name: String,
    /// Whose usage is counted.
    pub scope: Scope,
    /// Only these scope values (globs); absent = every value, each with its own cap.
    #[serde(default, rename = "match")]
    pub matches: Option<Vec<String>>,
    /// What is counted.
    pub metric: Metric,
    /// The window's length.
    pub period: Period,
    /// How the window moves (default calendar).
    #[serde(default)]
    pub window: Window,
    /// The cap, in the metric's unit (US dollars, tokens or requests).
    pub limit: f64,
    /// Percentages of `limit` at which the gateway raises an alert, once per period.
    #[serde(default)]
    pub alert_at: Vec<u32>,
    /// Serve on a cheaper target from a share of the limit on.
    #[serde(default)]
    pub downgrade: Option<Downgrade>,
}

impl Limit {
    /// The limit as granted to the host.
    pub fn budget_limit(&self) -> BudgetLimit {
        BudgetLimit::new(
            self.name.as_str(),
            self.scope.clone(),
            self.metric,
            self.period,
            self.limit,
        )
        .window(self.window)
        .alert_at(self.alert_at.iter().copied())
    }
}

/// Where a [`Limit`] sends requests once its usage reaches `at` percent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downgrade {
    /// Percentage of the limit (1..=99) from which requests are downgraded.
    pub at: u32,
    /// Provider id from the gateway config.
    pub provider: String,
    /// Model to ask that provider for; absent = the requested model.
    #[serde(default)]
    pub model: Option<String>,
}

impl Downgrade {
    /// The target requests are downgraded to.
    pub fn target(&self) -> Target {
        let target = Target::new(self.provider.as_str());
        match &self.model {
            Some(model) => target.model(model.as_str()),
            None => target,
        }
    }
}

/// Per-minute limits on one scope: rolling one-minute `requests` and `tokens` limits
/// named `<name>:requests` and `<name>:tokens`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Prefix of the generated limits' names.
    pub name: String,
    /// Whose usage is counted.
    pub scope: Scope,
    /// Only these scope values (globs); absent = every value.
    #[serde(default, rename = "match")]
    pub matches: Option<Vec<String>>,
    /// Requests admitted per rolling minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens per rolling minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

impl RateLimit {
    /// The limits this expands to, requests first.
    pub fn budget_limits(&self) -> impl Iterator<Item = BudgetLimit> + '_ {
        [
            ("requests", Metric::Requests, self.requests_per_minute),
            ("tokens", Metric::Tokens, self.tokens_per_minute),
        ]
        .into_iter()
        .filter_map(move |(suffix, metric, cap)| {
            let name = format!("{}:{suffix}", self.name);
            let scope = self.scope.clone();
            cap.map(|cap| {
                BudgetLimit::new(name, scope, metric, Period::Minute, cap as f64).rolling()
            })
        })
    }
}

/// Whether a scope value passes an optional `match` list of globs.
pub fn matches(patterns: Option<&[String]>, value: &str) -> bool {
    patterns.is_none_or(|ps| ps.iter().any(|p| glob_match(p, value)))
}

/// Checks what serde cannot; the error starts with the field path.
pub fn validate(c: &Config) -> Result<(), String> {
    // Every granted name with the path that defines it, for the uniqueness check.
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, l) in c.limits.iter().enumerate() {
        let at = format!("limits[{i}]");
        validate_name(&l.name, &at, &l.name, &mut names)?;
        validate_match(l.matches.as_deref(), &at)?;
        if !l.limit.is_finite() || l.limit <= 0.0 {
            return Err(format!("{at}.limit: must be a number above 0"));
        }
        if l.period == Period::Total && l.window == Window::Rolling {
            return Err(format!(
                "{at}.window: a `total` period has no rolling window; omit `window`"
            ));
        }
        for (k, pct) in l.alert_at.iter().enumerate() {
            if !(1..=1000).contains(pct) {
                return Err(format!(
                    "{at}.alert_at[{k}]: {pct} is not a percentage from 1 to 1000"
                ));
            }
            if l.alert_at[..k].contains(pct) {
                return Err(format!("{at}.alert_at[{k}]: {pct} is listed twice"));
            }
        }
        if let Some(d) = &l.downgrade {
            if !(1..=99).contains(&d.at) {
                return Err(format!(
                    "{at}.downgrade.at: must be a percentage from 1 to 99 (at 100 the limit denies)"
                ));
            }
            if d.provider.is_empty() {
                return Err(format!("{at}.downgrade.provider: must not be empty"));
            }
            if d.model.as_deref() == Some("") {
                return Err(format!(
                    "{at}.downgrade.model: must not be empty (omit it to keep the requested model)"
                ));
            }
        }
    }
    for (i, r) in c.rate_limits.iter().enumerate() {
        let at = format!("rate_limits[{i}]");
        if r.name.is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        validate_match(r.matches.as_deref(), &at)?;
        if r.requests_per_minute.is_none() && r.tokens_per_minute.is_none() {
            return Err(format!(
                "{at}: set requests_per_minute, tokens_per_minute or both"
            ));
        }
        for (field, cap) in [
            ("requests_per_minute", r.requests_per_minute),
            ("tokens_per_minute", r.tokens_per_minute),
        ] {
            if cap == Some(0) {
                return Err(format!("{at}.{field}: must be at least 1"));
            }
        }
        for l in r.budget_limits() {
            validate_name(&l.name, &at, &r.name, &mut names)?;
        }
    }
    Ok(())
}

/// Checks that `name` (granted by the entry at `at`, written as `written`) is non-empty
/// and unused, then records it.
fn validate_name(
    name: &str,
    at: &str,
    written: &str,
    names: &mut Vec<(String, String)>,
) -> Result<(), String> {
    if written.is_empty() {
        return Err(format!("{at}.name: must not be empty"));
    }
    if let Some((_, other)) = names.iter().find(|(n, _)| n == name) {
        return Err(format!(
            "{at}.name: '{name}' is already the name of {other}"
        ));
    }
    names.push((name.to_string(), at.to_string()));
    Ok(())
}

fn validate_match(patterns: Option<&[String]>, at: &str) -> Result<(), String> {
    match patterns {
        Some([]) => Err(format!(
            "{at}.match: must not be empty (omit it to limit every value)"
        )),
        Some(ps) => match ps.iter().position(String::is_empty) {
            Some(k) => Err(format!("{at}.match[{k}]: must not be empty")),
            None => Ok(()),
        },
        None => Ok(()),
    }
}
