//! The SDK's own copies of the WIT types, with helpers and full docs.

/// Hooks a plugin may implement; list yours in [`Plugin::HOOKS`](crate::Plugin::HOOKS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// [`Plugin::policy`](crate::Plugin::policy): allow or deny before routing.
    Policy,
    /// [`Plugin::route`](crate::Plugin::route): choose where an allowed request is served.
    Route,
    /// [`Plugin::budget`](crate::Plugin::budget): grant the limits a routed request is
    /// held to, or downgrade it to a cheaper target.
    Budget,
}

/// Severity of a plugin log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

/// Which API the caller spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/messages` (Anthropic Messages API).
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/chat/completions` (OpenAI Chat Completions API).
    ChatCompletions,
}

/// Why a request is refused; shown to the caller in its API's error shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// HTTP status, 400..=599 (the host clamps anything else to 403).
    pub status: u16,
    /// Error type, e.g. `permission_error` or `invalid_request_error`.
    pub error_type: String,
    /// Message shown to the caller.
    pub message: String,
}

/// The outcome of the policy hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Let the request through and record these `(key, value)` labels in its log row.
    AllowWith(Vec<(String, String)>),
    /// Refuse the request; later plugins do not run.
    Deny(Denial),
}

impl Decision {
    /// Lets the request through.
    pub fn allow() -> Self {
        Decision::Allow
    }

    /// Lets the request through, recording `(key, value)` labels in its log row.
    pub fn allow_with<K, V>(labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Decision::AllowWith(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Refuses the request with any status (400..=599) and error type.
    pub fn deny(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Decision::Deny(Denial {
            status,
            error_type: error_type.into(),
            message: message.into(),
        })
    }

    /// Refuses with `403 permission_error`: the caller may not do this.
    pub fn forbid(message: impl Into<String>) -> Self {
        Self::deny(403, "permission_error", message)
    }

    /// Refuses with `400 invalid_request_error`: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::deny(400, "invalid_request_error", message)
    }

    /// Whether the request is let through (with or without labels).
    pub fn is_allow(&self) -> bool {
        !self.is_deny()
    }

    /// Whether the request is refused.
    pub fn is_deny(&self) -> bool {
        matches!(self, Decision::Deny(_))
    }

    /// The denial, if the request is refused.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Decision::Deny(d) => Some(d),
            _ => None,
        }
    }

    /// The labels of an [`Decision::AllowWith`] (empty otherwise).
    pub fn annotations(&self) -> &[(String, String)] {
        match self {
            Decision::AllowWith(labels) => labels,
            _ => &[],
        }
    }

    /// The value of one label, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How the host walks a [`RoutePlan`]'s targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Only the first target (with its retries).
    Single,
    /// Each target in order until one succeeds.
    Fallback,
    /// One target picked at random by [`Target::weight`]; the others follow as
    /// fallbacks, in order.
    LoadBalance,
}

/// One place a request may be served: a provider id from the gateway config, and
/// optionally the model to ask it for.
///
/// ```
/// use tollgate_guest::Target;
///
/// let t = Target::new("openai").model("gpt-4o").weight(30).max_tokens_cap(1024);
/// assert_eq!((t.provider.as_str(), t.model.as_deref()), ("openai", Some("gpt-4o")));
/// assert_eq!(Target::new("anthropic").weight, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// Provider id from the gateway config.
    pub provider: String,
    /// Model to ask that provider for; `None` keeps the requested model.
    pub model: Option<String>,
    /// Share of traffic under [`Strategy::LoadBalance`] (ignored otherwise; 0 is never
    /// picked first). Default 1.
    pub weight: u32,
    /// Lower the request's `max_tokens` to at most this.
    pub max_tokens_cap: Option<u32>,
}

impl Target {
    /// A target on `provider`, keeping the requested model, weight 1, no token cap.
    pub fn new(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: None,
            weight: 1,
            max_tokens_cap: None,
        }
    }

    /// Asks the provider for `model` instead of the requested one.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the load-balancing weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Lowers the request's `max_tokens` to at most `cap` on this target.
    pub fn max_tokens_cap(mut self, cap: u32) -> Self {
        self.max_tokens_cap = Some(cap);
        self
    }
}

/// Upstream outcomes that end an attempt and move on (retry, then the next target).
///
/// The default, [`RetryOn::transient`], is what most plans want: 429, 500, 502, 503,
/// 504, timeouts and connection errors.
///
/// ```
/// use tollgate_guest::RetryOn;
///
/// let r = RetryOn::statuses([429, 503]).timeout().connect_errors();
/// assert_eq!(r.statuses, vec![429, 503]);
/// assert!(r.timeout && r.connect_error);
/// assert_eq!(RetryOn::default(), RetryOn::transient());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryOn {
    /// Upstream HTTP statuses, e.g. 429, 500, 502, 503, 504.
    pub statuses: Vec<u16>,
    /// No response headers within the attempt timeout.
    pub timeout: bool,
    /// Connection refused, reset or DNS failure.
    pub connect_error: bool,
}

impl RetryOn {
    /// The statuses [`RetryOn::transient`] moves on from.
    pub const TRANSIENT_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

    /// Moves on from these statuses only (add [`RetryOn::timeout`] and
    /// [`RetryOn::connect_errors`] as needed).
    pub fn statuses(statuses: impl IntoIterator<Item = u16>) -> Self {
        Self {
            statuses: statuses.into_iter().collect(),
            timeout: false,
            connect_error: false,
        }
    }

    /// Never moves on: the first target's first answer is final.
    pub fn never() -> Self {
        Self::statuses([])
    }

    /// 429, 500, 502, 503, 504, timeouts and connection errors (the default).
    pub fn transient() -> Self {
        Self::statuses(Self::TRANSIENT_STATUSES)
            .timeout()
            .connect_errors()
    }

    /// Also moves on when no response headers arrive within the attempt timeout.
    pub fn timeout(mut self) -> Self {
        self.timeout = true;
        self
    }

    /// Also moves on when the connection is refused or reset, or DNS fails.
    pub fn connect_errors(mut self) -> Self {
        self.connect_error = true;
        self
    }
}

impl Default for RetryOn {
    fn default() -> Self {
        Self::transient()
    }
}

/// Where and how to serve a request: what [`Plugin::route`](crate::Plugin::route) returns.
///
/// Start from [`RoutePlan::single`], [`RoutePlan::fallback`] or
/// [`RoutePlan::load_balance`] and chain the rest. Defaults: retry on
/// [`RetryOn::transient`], no retries of the same target, 200 ms first backoff, 5000 ms
/// cap on any wait, the provider's own attempt timeout, no labels.
///
/// ```
/// use tollgate_guest::{RetryOn, RoutePlan, Strategy, Target};
///
/// let plan = RoutePlan::fallback([
///     Target::new("anthropic"),
///     Target::new("openai").model("gpt-4o"),
/// ])
/// .retry_on(RetryOn::statuses([429, 500]).timeout().connect_errors())
/// .retries(2)
/// .backoff_ms(100)
/// .attempt_timeout_ms(30_000)
/// .label("route_rule", "engineering");
/// assert_eq!(plan.strategy, Strategy::Fallback);
/// assert_eq!(plan.targets.len(), 2);
/// assert_eq!(plan.annotation("route_rule"), Some("engineering"));
/// ```
///
/// The targets must not be empty: the host fails the request if they are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutePlan {
    /// How the targets are walked.
    pub strategy: Strategy,
    /// Targets, in order.
    pub targets: Vec<Target>,
    /// Outcomes that move on to the next attempt.
    pub retry_on: RetryOn,
    /// Extra attempts on the same target before moving on (the host allows at most 10).
    pub retries: u32,
    /// First wait between retries, in ms; doubles each time, with jitter. An upstream
    /// `retry-after` (up to [`RoutePlan::max_backoff_ms`]) takes precedence.
    pub backoff_ms: u32,
    /// Cap on any single wait between attempts, in ms.
    pub max_backoff_ms: u32,
    /// Time allowed for each attempt to return response headers, in ms; `None` = the
    /// provider's default.
    pub attempt_timeout_ms: Option<u32>,
    /// `(key, value)` labels recorded in the request log, e.g. which rule matched.
    pub labels: Vec<(String, String)>,
}

impl RoutePlan {
    /// Default [`RoutePlan::backoff_ms`].
    pub const DEFAULT_BACKOFF_MS: u32 = 200;
    /// Default [`RoutePlan::max_backoff_ms`].
    pub const DEFAULT_MAX_BACKOFF_MS: u32 = 5000;

    /// A plan walking `targets` with `strategy`, with the defaults listed on [`RoutePlan`].
    pub fn new(strategy: Strategy, targets: impl IntoIterator<Item = Target>) -> Self {
        Self {
            strategy,
            targets: targets.into_iter().collect(),
            retry_on: RetryOn::default(),
            retries: 0,
            backoff_ms: Self::DEFAULT_BACKOFF_MS,
            max_backoff_ms: Self::DEFAULT_MAX_BACKOFF_MS,
            attempt_timeout_ms: None,
            labels: Vec::new(),
        }
    }

    /// Serve from one target only.
    pub fn single(target: Target) -> Self {
        Self::new(Strategy::Single, [target])
    }

    /// Try each target in order until one succeeds.
    pub fn fallback(targets: impl IntoIterator<Item = Target>) -> Self {
        Self::new(Strategy::Fallback, targets)
    }

    /// Pick one target at random by weight; the others follow as fallbacks, in order.
    pub fn load_balance(targets: impl IntoIterator<Item = Target>) -> Self {
        Self::new(Strategy::LoadBalance, targets)
    }

    /// Sets which upstream outcomes move on to the next attempt.
    pub fn retry_on(mut self, retry_on: RetryOn) -> Self {
        self.retry_on = retry_on;
        self
    }

    /// Sets how many extra attempts each target gets before moving on.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the first wait between retries, in ms.
    pub fn backoff_ms(mut self, ms: u32) -> Self {
        self.backoff_ms = ms;
        self
    }

    /// Sets the cap on any single wait between attempts, in ms.
    pub fn max_backoff_ms(mut self, ms: u32) -> Self {
        self.max_backoff_ms = ms;
        self
    }

    /// Sets the time each attempt has to return response headers, in ms.
    pub fn attempt_timeout_ms(mut self, ms: u32) -> Self {
        self.attempt_timeout_ms = Some(ms);
        self
    }

    /// Adds a label recorded in the request log.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// The value of one label, if present (the first if repeated).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
