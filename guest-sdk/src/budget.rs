//! Budget hook types: scopes, usage readings, limits and the budget decision.

use crate::bindings::tollgate::plugin::types as wit;
use crate::{Denial, Target};
use std::fmt;
use std::str::FromStr;

/// Whose usage is counted. The value comes from the request being decided (its tenant,
/// team, user, key id or a metadata value; see [`Request::scope_value`](crate::Request::scope_value)),
/// always within its tenant.
///
/// Written in config as `tenant`, `team`, `user`, `key` or `metadata.<key>`
/// ([`FromStr`], [`Display`](fmt::Display) and serde's `Deserialize` use that spelling,
/// so a plugin can put a `Scope` straight into its config struct):
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// The tenant the API key belongs to.
    Tenant,
    /// The key's team, else the `team` metadata value.
    Team,
    /// The key's user, else the `user` metadata value.
    User,
    /// The API key, by its public id.
    Key,
    /// The value of an `x-portkey-metadata` key, e.g. `project`.
    Metadata(String),
}

impl Scope {
    /// The scope of the metadata key `key`.
    pub fn metadata(key: impl Into<String>) -> Self {
        Scope::Metadata(key.into())
    }
}

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

impl<'de> serde::Deserialize<'de> for Scope {
    /// Deserializes from a string in the [`FromStr`] spelling, failing with its message.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

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

/// What a [`BudgetLimit`] counts.
///
/// Deserializes from its lower-case name (`cost`, `tokens` or `requests`), so a plugin
/// can put a `Metric` straight into its config struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Metric {
    /// Spend in US dollars, from the served model's prices.
    Cost,
    /// Input, output and cache tokens together.
    Tokens,
    /// Requests admitted.
    Requests,
}

/// The length of a usage window.
///
/// Deserializes from its lower-case name (`minute`, `hour`, `day`, `week`, `month` or
/// `total`), so a plugin can put a `Period` straight into its config struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Period {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
    /// One week (calendar: from Monday; rolling: 7 days).
    Week,
    /// One month (calendar: from the 1st; rolling: 30 days).
    Month,
    /// Everything ever counted (never resets).
    Total,
}

/// How a usage window moves.
///
/// Deserializes from its lower-case name (`calendar` or `rolling`), so a plugin can put
/// a `Window` straight into its config struct (with `#[serde(default)]` for calendar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Window {
    /// Resets at the start of each UTC minute, hour, day, ISO week (Monday) or month.
    #[default]
    Calendar,
    /// The last minute, hour, day, 7 days or 30 days, sliding.
    Rolling,
}

/// One scope's usage in one window, from [`Request::usage`](crate::Request::usage).
///
/// Counts include requests still running at their reserved estimate; the `reserved_*`
/// fields say how much of each count that is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageReport {
    /// The scope's value (e.g. the team name); `None` when the request has none.
    pub value: Option<String>,
    /// Requests admitted, including those still running.
    pub requests: u64,
    /// Input, output and cache tokens, including reservations.
    pub tokens: u64,
    /// Spend in US dollars, including reservations.
    pub cost_usd: f64,
    /// Part of `requests` still running.
    pub reserved_requests: u64,
    /// Part of `tokens` reserved by requests still running.
    pub reserved_tokens: u64,
    /// Part of `cost_usd` reserved by requests still running.
    pub reserved_cost_usd: f64,
    /// When a calendar window resets (ms since the Unix epoch); for a rolling window,
    /// an estimate of when enough old usage has left it to free a request.
    pub resets_at_ms: u64,
}

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

/// A cap the host enforces for one request, atomically with other requests: the
/// request is admitted only while the scope's usage (settled plus reserved) is below
/// `limit`, and reserves its estimate until it ends.
///
/// ```
/// use tollgate_guest::{BudgetLimit, Metric, Period, Scope, Window};
///
/// let l = BudgetLimit::new("team-daily-cost", Scope::Team, Metric::Cost, Period::Day, 5.0)
///     .alert_at([50, 80, 100]);
/// assert_eq!((l.window, l.alert_at.as_slice()), (Window::Calendar, &[50, 80, 100][..]));
/// assert_eq!(l.rolling().window, Window::Rolling);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BudgetLimit {
    /// Shown in denials, alerts and the admin API, e.g. `team-daily-cost`.
    pub name: String,
    /// Whose usage is counted.
    pub scope: Scope,
    /// What is counted.
    pub metric: Metric,
    /// The window's length.
    pub period: Period,
    /// How the window moves (default [`Window::Calendar`]).
    pub window: Window,
    /// The cap, in the metric's unit (US dollars, tokens or requests).
    pub limit: f64,
    /// Percentages of `limit` at which the host raises an alert, once per period.
    pub alert_at: Vec<u32>,
}

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

/// What the budget hook lets through: limits for the host to enforce, an optional
/// cheaper target and log labels.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BudgetGrant {
    /// Caps to enforce (the host skips those whose scope the request has no value for).
    pub limits: Vec<BudgetLimit>,
    /// Serve the request here instead of the routed plan (e.g. a cheaper model).
    pub downgrade: Option<Target>,
    /// `(key, value)` labels recorded in the request log.
    pub labels: Vec<(String, String)>,
}

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
        self.labels.push((key.into(), value.into()));
        self
    }
}

/// The outcome of the budget hook: what [`Plugin::budget`](crate::Plugin::budget) returns.
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
#[derive(Clone, Debug, PartialEq)]
pub enum BudgetDecision {
    /// Let the request through, subject to the grant's limits.
    Allow(BudgetGrant),
    /// Refuse the request; later plugins do not run.
    Deny(Denial),
}

impl Default for BudgetDecision {
    fn default() -> Self {
        Self::allow()
    }
}

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
        BudgetDecision::Deny(Denial {
            status,
            error_type: error_type.into(),
            message: message.into(),
        })
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
    pub fn annotations(&self) -> &[(String, String)] {
        self.grant().map_or(&[], |g| &g.labels)
    }

    /// The value of one label, if present (the first if repeated).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

// --- Conversions to and from the generated WIT types --------------------------------

impl From<&Scope> for wit::Scope {
    fn from(s: &Scope) -> Self {
        match s {
            Scope::Tenant => wit::Scope::Tenant,
            Scope::Team => wit::Scope::Team,
            Scope::User => wit::Scope::User,
            Scope::Key => wit::Scope::Key,
            Scope::Metadata(key) => wit::Scope::Metadata(key.clone()),
        }
    }
}

impl From<Metric> for wit::Metric {
    fn from(m: Metric) -> Self {
        match m {
            Metric::Cost => wit::Metric::Cost,
            Metric::Tokens => wit::Metric::Tokens,
            Metric::Requests => wit::Metric::Requests,
        }
    }
}

impl From<Period> for wit::Period {
    fn from(p: Period) -> Self {
        match p {
            Period::Minute => wit::Period::Minute,
            Period::Hour => wit::Period::Hour,
            Period::Day => wit::Period::Day,
            Period::Week => wit::Period::Week,
            Period::Month => wit::Period::Month,
            Period::Total => wit::Period::Total,
        }
    }
}

impl From<Window> for wit::Window {
    fn from(w: Window) -> Self {
        match w {
            Window::Calendar => wit::Window::Calendar,
            Window::Rolling => wit::Window::Rolling,
        }
    }
}

impl From<wit::UsageReport> for UsageReport {
    fn from(u: wit::UsageReport) -> Self {
        UsageReport {
            value: u.value,
            requests: u.requests,
            tokens: u.tokens,
            cost_usd: u.cost_usd,
            reserved_requests: u.reserved_requests,
            reserved_tokens: u.reserved_tokens,
            reserved_cost_usd: u.reserved_cost_usd,
            resets_at_ms: u.resets_at_ms,
        }
    }
}

impl From<BudgetLimit> for wit::BudgetLimit {
    fn from(l: BudgetLimit) -> Self {
        wit::BudgetLimit {
            name: l.name,
            scope: (&l.scope).into(),
            metric: l.metric.into(),
            period: l.period.into(),
            window: l.window.into(),
            limit: l.limit,
            alert_at: l.alert_at,
        }
    }
}

impl From<BudgetDecision> for wit::BudgetDecision {
    fn from(d: BudgetDecision) -> Self {
        match d {
            BudgetDecision::Allow(g) => wit::BudgetDecision::Allow(wit::BudgetGrant {
                limits: g.limits.into_iter().map(Into::into).collect(),
                downgrade: g.downgrade.map(Into::into),
                labels: g
                    .labels
                    .into_iter()
                    .map(|(key, value)| wit::Annotation { key, value })
                    .collect(),
            }),
            BudgetDecision::Deny(d) => wit::BudgetDecision::Deny(d.into()),
        }
    }
}
