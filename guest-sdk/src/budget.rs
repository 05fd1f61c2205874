//! Helpers on the budget hook's types: scope parsing, usage readings, and builders for
//! limits, grants and the budget decision.

use crate::{
    Annotation, BudgetDecision, BudgetGrant, BudgetLimit, Denial, Metric, Period, Scope, Target,
    UsageReport, Window, annotation,
};
use std::fmt;
use std::str::FromStr;

/// A scope's value comes from the request being decided (see
/// [`Request::scope_value`](crate::Request::scope_value)).
///
/// Written in config as `tenant`, `team`, `user`, `key` or `metadata.<key>`
/// ([`FromStr`], [`Display`](fmt::Display) and serde's `Serialize` and `Deserialize`
/// use that spelling, so a plugin can put a `Scope` straight into its config struct):
///
/// ```
/// use tollgate_guest::Scope;
///
/// assert_eq!("team".parse(), Ok(Scope::Team));
/// assert_eq!("metadata.project".parse(), Ok(Scope::metadata("project")));
/// assert_eq!(Scope::metadata("project").to_string(), "metadata.project");
/// assert!("metadata.".parse::<Scope>().is_err());
///
/// #[derive(serde::Deserialize)]
/// struct Config {
///     scope: Scope,
/// }
/// let c: Config = serde_json::from_str(r#"{"scope": "metadata.project"}"#).unwrap();
/// assert_eq!(c.scope, Scope::metadata("project"));
/// ```
impl Scope {
    /// The scope of the metadata key `key`.
    pub fn metadata(key: impl Into<String>) -> Self {
        Scope::Metadata(key.into())
    }
}

/// The config spelling: `tenant`, `team`, `user`, `key` or `metadata.<key>`.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant => f.write_str("tenant"),
            Scope::Team => f.write_str("team"),
            Scope::User => f.write_str("user"),
            Scope::Key => f.write_str("key"),
            Scope::Metadata(key) => write!(f, "metadata.{key}"),
        }
    }
}

impl serde::Serialize for Scope {
    /// Serializes as the [`Display`](fmt::Display) spelling, which `Deserialize` reads.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    /// Deserializes from a string in the [`FromStr`] spelling, failing with its message.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses the config spelling; the error says what was expected.
impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tenant" => Ok(Scope::Tenant),
            "team" => Ok(Scope::Team),
            "user" => Ok(Scope::User),
            "key" => Ok(Scope::Key),
            _ => match s.strip_prefix("metadata.") {
                Some("") => Err("`metadata.` needs a key, e.g. `metadata.project`".into()),
                Some(key) => Ok(Scope::Metadata(key.into())),
                None => Err(format!(
                    "unknown scope `{s}`, expected `tenant`, `team`, `user`, `key` or `metadata.<key>`"
                )),
            },
        }
    }
}

/// Readings by [`Metric`], from [`Request::usage`](crate::Request::usage).
impl UsageReport {
    /// Usage in `metric`'s unit, settled plus reserved: what the host compares with a limit.
    ///
    /// ```
    /// use tollgate_guest::{Metric, UsageReport};
    ///
    /// let u = UsageReport { cost_usd: 4.5, reserved_cost_usd: 0.5, ..Default::default() };
    /// assert_eq!((u.current(Metric::Cost), u.reserved(Metric::Cost), u.settled(Metric::Cost)), (4.5, 0.5, 4.0));
    /// ```
    pub fn current(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Cost => self.cost_usd,
            Metric::Tokens => self.tokens as f64,
            Metric::Requests => self.requests as f64,
        }
    }

    /// The part of [`UsageReport::current`] held by requests still running.
    pub fn reserved(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Cost => self.reserved_cost_usd,
            Metric::Tokens => self.reserved_tokens as f64,
            Metric::Requests => self.reserved_requests as f64,
        }
    }

    /// Usage of finished requests only: current minus reserved.
    pub fn settled(&self, metric: Metric) -> f64 {
        (self.current(metric) - self.reserved(metric)).max(0.0)
    }
}

/// Built with [`BudgetLimit::new`] and chained setters.
///
/// ```
/// use tollgate_guest::{BudgetLimit, Metric, Period, Scope, Window};
///
/// let l = BudgetLimit::new("team-daily-cost", Scope::Team, Metric::Cost, Period::Day, 5.0)
///     .alert_at([50, 80, 100]);
/// assert_eq!((l.window, l.alert_at.as_slice()), (Window::Calendar, &[50, 80, 100][..]));
/// assert_eq!(l.rolling().window, Window::Rolling);
/// ```
impl BudgetLimit {
    /// A limit on a calendar window, without alerts.
    pub fn new(
        name: impl Into<String>,
        scope: Scope,
        metric: Metric,
        period: Period,
        limit: f64,
    ) -> Self {
        Self {
            name: name.into(),
            scope,
            metric,
            period,
            window: Window::Calendar,
            limit,
            alert_at: Vec::new(),
        }
    }

    /// Counts over a sliding window instead of a calendar one.
    pub fn rolling(self) -> Self {
        self.window(Window::Rolling)
    }

    /// Sets the window.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Sets the percentages of `limit` at which the host raises an alert.
    pub fn alert_at(mut self, percents: impl IntoIterator<Item = u32>) -> Self {
        self.alert_at = percents.into_iter().collect();
        self
    }
}

/// Built with [`BudgetGrant::new`] and chained setters, or through [`BudgetDecision`]'s.
impl BudgetGrant {
    /// No limits, no downgrade, no labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a limit.
    pub fn limit(mut self, limit: BudgetLimit) -> Self {
        self.limits.push(limit);
        self
    }

    /// Serves the request on `target` instead of the routed plan.
    pub fn downgrade(mut self, target: Target) -> Self {
        self.downgrade = Some(target);
        self
    }

    /// Adds a label recorded in the request log.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push(Annotation::new(key, value));
        self
    }
}

/// An allow without limits.
impl Default for BudgetDecision {
    fn default() -> Self {
        Self::allow()
    }
}

/// What [`Plugin::budget`](crate::Plugin::budget) returns: constructors, builders that
/// act on an allow's grant, and accessors.
///
/// ```
/// use tollgate_guest::{BudgetDecision, BudgetLimit, Metric, Period, Scope, Target};
///
/// let d = BudgetDecision::allow()
///     .limit(BudgetLimit::new("key-rpm", Scope::Key, Metric::Requests, Period::Minute, 60.0).rolling())
///     .downgrade(Target::new("anthropic").model("claude-haiku-4-5"))
///     .label("budget_downgrade", "key-rpm");
/// assert_eq!(d.limits().len(), 1);
/// assert_eq!(d.downgrade_target().and_then(|t| t.model.as_deref()), Some("claude-haiku-4-5"));
/// assert_eq!(BudgetDecision::rate_limited("slow down").denial().map(|d| d.status), Some(429));
/// ```
impl BudgetDecision {
    /// Lets the request through with no limits (chain `limit`, `downgrade`, `label`).
    pub fn allow() -> Self {
        BudgetDecision::Allow(BudgetGrant::new())
    }

    /// Lets the request through with this grant.
    pub fn allow_with(grant: BudgetGrant) -> Self {
        BudgetDecision::Allow(grant)
    }

    /// Refuses the request with any status (400..=599) and error type.
    pub fn deny(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        BudgetDecision::Deny(Denial::new(status, error_type, message))
    }

    /// Refuses with `429 rate_limit_error`: the caller is sending too fast.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::deny(429, "rate_limit_error", message)
    }

    /// Refuses with `429 budget_exceeded_error`, as the host does for an exhausted limit.
    pub fn over_budget(message: impl Into<String>) -> Self {
        Self::deny(429, "budget_exceeded_error", message)
    }

    /// Applies `f` to the grant; a denial is returned unchanged.
    fn map_grant(self, f: impl FnOnce(BudgetGrant) -> BudgetGrant) -> Self {
        match self {
            BudgetDecision::Allow(g) => BudgetDecision::Allow(f(g)),
            deny => deny,
        }
    }

    /// Adds a limit to an allow (a denial is unchanged).
    pub fn limit(self, limit: BudgetLimit) -> Self {
        self.map_grant(|g| g.limit(limit))
    }

    /// Serves an allowed request on `target` instead of the routed plan (a denial is
    /// unchanged).
    pub fn downgrade(self, target: Target) -> Self {
        self.map_grant(|g| g.downgrade(target))
    }

    /// Adds a log label to an allow (a denial is unchanged).
    pub fn label(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.map_grant(|g| g.label(key, value))
    }

    /// Whether the request is let through.
    pub fn is_allow(&self) -> bool {
        matches!(self, BudgetDecision::Allow(_))
    }

    /// Whether the request is refused.
    pub fn is_deny(&self) -> bool {
        !self.is_allow()
    }

    /// The grant, if the request is let through.
    pub fn grant(&self) -> Option<&BudgetGrant> {
        match self {
            BudgetDecision::Allow(g) => Some(g),
            BudgetDecision::Deny(_) => None,
        }
    }

    /// The denial, if the request is refused.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            BudgetDecision::Deny(d) => Some(d),
            BudgetDecision::Allow(_) => None,
        }
    }

    /// The granted limits (empty for a denial).
    pub fn limits(&self) -> &[BudgetLimit] {
        self.grant().map_or(&[], |g| &g.limits)
    }

    /// The downgrade target, if any.
    pub fn downgrade_target(&self) -> Option<&Target> {
        self.grant().and_then(|g| g.downgrade.as_ref())
    }

    /// The grant's labels (empty for a denial).
    pub fn annotations(&self) -> &[Annotation] {
        self.grant().map_or(&[], |g| &g.labels)
    }

    /// The value of one label, if present (the first if repeated).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        annotation::find(self.annotations(), key)
    }
}
