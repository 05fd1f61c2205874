//! Builders for the route hook's [`RoutePlan`], its [`Target`]s and [`RetryOn`].

use crate::{Annotation, RetryOn, RoutePlan, Strategy, Target, annotation};

/// A target on a provider from the gateway config, optionally with the model to ask it
/// for; built with [`Target::new`] and chained setters.
///
/// ```
/// use tollgate_guest::Target;
///
/// let t = Target::new("openai").model("gpt-4o").weight(30).max_tokens_cap(1024);
/// assert_eq!((t.provider.as_str(), t.model.as_deref()), ("openai", Some("gpt-4o")));
/// assert_eq!(Target::new("anthropic").weight, 1);
/// ```
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

    /// Sets the share of traffic under [`Strategy::LoadBalance`] (0 is never picked first).
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

/// [`RetryOn::transient`].
impl Default for RetryOn {
    fn default() -> Self {
        Self::transient()
    }
}

/// What [`Plugin::route`](crate::Plugin::route) returns.
///
/// Start from [`RoutePlan::single`], [`RoutePlan::fallback`] or
/// [`RoutePlan::load_balance`] and chain the rest. Defaults: retry on
/// [`RetryOn::transient`], no retries of the same target, 200 ms first backoff, 5000 ms
/// cap on any wait, the provider's own attempt timeout, no labels. The host allows at
/// most 10 retries, and fails the request if the targets are empty.
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
impl RoutePlan {
    /// Default [`RoutePlan::backoff_ms`].
    pub const DEFAULT_BACKOFF_MS: u32 = 200;
    /// Default [`RoutePlan::max_backoff_ms`].
    pub const DEFAULT_MAX_BACKOFF_MS: u32 = 5000;

    /// A plan walking `targets` with `strategy`, with the defaults listed above.
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
        self.labels.push(Annotation::new(key, value));
        self
    }

    /// The value of one label, if present (the first if repeated).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        annotation::find(&self.labels, key)
    }
}
