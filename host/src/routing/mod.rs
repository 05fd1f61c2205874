//! Where a request is served: the route plan a plugin returned (or the tenant's default
//! provider), resolved against the configured providers, and the attempt loop that
//! walks it with retries, backoff and fallbacks.

mod executor;

pub use executor::{IN_FLIGHT, Served, execute};

use crate::error::ApiError;
use crate::plugins::{RoutePlan, RouteTarget, Strategy};
use crate::providers::{Provider, Providers};
use rand::RngExt as _;
use std::sync::Arc;
use std::time::Duration;

/// Most retries of one target a plan may ask for.
const MAX_RETRIES: u32 = 10;
/// Longest wait between two attempts a plan may ask for.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One target of a resolved plan.
#[derive(Clone)]
pub struct Target {
    /// Position in the plan as the plugin wrote it (0-based), for logs and headers.
    pub index: u32,
    pub provider: Arc<Provider>,
    /// Model asked of the provider.
    pub model: String,
    /// Upper bound on the request's max_tokens.
    pub max_tokens_cap: Option<u32>,
}

/// Upstream outcomes that move on to the next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOn {
    pub statuses: Vec<u16>,
    pub timeout: bool,
    pub connect_error: bool,
}

impl Default for RetryOn {
    fn default() -> Self {
        Self {
            statuses: vec![429, 500, 502, 503, 504],
            timeout: true,
            connect_error: true,
        }
    }
}

/// A plan's targets in attempt order; never empty, by construction.
#[derive(Clone)]
pub struct Targets(Vec<Target>);

impl Targets {
    /// Just `target`.
    pub fn one(target: Target) -> Self {
        Self(vec![target])
    }

    /// `targets`, if there is at least one.
    pub fn new(targets: Vec<Target>) -> Option<Self> {
        (!targets.is_empty()).then_some(Self(targets))
    }

    /// The target tried first.
    pub fn first(&self) -> &Target {
        // The vector is never empty: every constructor and `retain` keep one.
        &self.0[0]
    }

    /// The targets in attempt order.
    pub fn iter(&self) -> std::slice::Iter<'_, Target> {
        self.0.iter()
    }

    /// How many targets there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps the targets `keep` accepts; when it accepts none, changes nothing and
    /// returns `false`.
    pub fn retain(&mut self, mut keep: impl FnMut(&Target) -> bool) -> bool {
        let (kept, dropped): (Vec<Target>, Vec<Target>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|t| keep(t));
        if kept.is_empty() {
            // Nothing kept: `dropped` is the whole list, in its order.
            self.0 = dropped;
            return false;
        }
        self.0 = kept;
        true
    }
}

impl<'a> IntoIterator for &'a Targets {
    type Item = &'a Target;
    type IntoIter = std::slice::Iter<'a, Target>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A plan resolved against the configured providers, targets in attempt order.
pub struct Plan {
    pub targets: Targets,
    pub retry_on: RetryOn,
    /// Extra attempts per target.
    pub retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Time allowed for each attempt's response headers; `None` = the provider's timeout.
    pub attempt_timeout: Option<Duration>,
    /// Most upstream attempts in all, whatever the targets and retries allow.
    pub max_attempts: u32,
}

pub use crate::config::DEFAULT_MAX_ATTEMPTS;

impl Plan {
    /// Serve from one provider, asking it for `model`, with no retries.
    pub fn single(provider: Arc<Provider>, model: &str) -> Self {
        Self {
            targets: Targets::one(Target {
                index: 0,
                provider,
                model: model.to_string(),
                max_tokens_cap: None,
            }),
            retry_on: RetryOn::default(),
            retries: 0,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            attempt_timeout: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Resolves a plugin's plan: providers must exist and targets must not be empty.
    /// Under `load-balance`, one target is drawn by weight and the rest follow in order.
    pub fn resolve(
        plan: RoutePlan,
        plugin: &str,
        providers: &Providers,
        requested_model: &str,
        max_attempts: u32,
    ) -> Result<Self, ApiError> {
        let bad = |why: String| {
            ApiError::internal(format!(
                "plugin '{plugin}' returned an unusable route: {why}"
            ))
        };
        let mut targets = Vec::with_capacity(plan.targets.len());
        let mut weights = Vec::with_capacity(plan.targets.len());
        for (i, t) in plan.targets.into_iter().enumerate() {
            let provider = providers
                .get(&t.provider)
                .cloned()
                .ok_or_else(|| bad(format!("unknown provider '{}'", t.provider)))?;
            weights.push(t.weight);
            targets.push(Target {
                index: i as u32,
                provider,
                model: t
                    .model
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| requested_model.to_string()),
                max_tokens_cap: t.max_tokens_cap,
            });
        }
        match plan.strategy {
            Strategy::Single => targets.truncate(1),
            Strategy::Fallback => {}
            Strategy::LoadBalance => {
                let first = pick_weighted(&weights, rand::rng().random::<f64>());
                if first < targets.len() {
                    let chosen = targets.remove(first);
                    targets.insert(0, chosen);
                }
            }
        }
        let targets = Targets::new(targets).ok_or_else(|| bad("no targets".into()))?;
        Ok(Self {
            targets,
            retry_on: RetryOn {
                statuses: plan.retry_on.statuses,
                timeout: plan.retry_on.timeout,
                connect_error: plan.retry_on.connect_error,
            },
            retries: plan.retries.min(MAX_RETRIES),
            backoff: Duration::from_millis(plan.backoff_ms.into()).min(MAX_BACKOFF),
            max_backoff: Duration::from_millis(plan.max_backoff_ms.into()).min(MAX_BACKOFF),
            attempt_timeout: plan
                .attempt_timeout_ms
                .filter(|&ms| ms > 0)
                .map(|ms| Duration::from_millis(ms.into())),
            max_attempts: max_attempts.max(1),
        })
    }

    /// Serves on `target` alone (a budget plugin's cheaper choice), keeping the plan's
    /// retry settings.
    pub fn downgrade(
        &mut self,
        target: RouteTarget,
        plugin: &str,
        providers: &Providers,
        requested_model: &str,
    ) -> Result<(), ApiError> {
        let provider = providers.get(&target.provider).cloned().ok_or_else(|| {
            ApiError::internal(format!(
                "plugin '{plugin}' downgraded to an unknown provider '{}'",
                target.provider
            ))
        })?;
        self.targets = Targets::one(Target {
            index: 0,
            provider,
            model: target
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| requested_model.to_string()),
            max_tokens_cap: target.max_tokens_cap,
        });
        Ok(())
    }

    /// The wait before retry number `n` (1-based) of the same target: exponential from
    /// `backoff` with "equal jitter" (half fixed, half random), capped; an upstream
    /// `retry-after` replaces it, within the cap.
    pub fn wait_before_retry(&self, n: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_backoff.max(self.backoff));
        }
        let exp = self
            .backoff
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16));
        let capped = if self.max_backoff.is_zero() {
            exp
        } else {
            exp.min(self.max_backoff)
        };
        capped.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// Index drawn from `weights` with `unit` in [0, 1); all-zero weights pick the first.
fn pick_weighted(weights: &[u32], unit: f64) -> usize {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return 0;
    }
    let mut point = (unit.clamp(0.0, 1.0) * total as f64) as u64;
    for (i, &w) in weights.iter().enumerate() {
        if point < u64::from(w) {
            return i;
        }
        point -= u64::from(w);
    }
    weights.iter().rposition(|&w| w > 0).unwrap_or(0)
}

/// Parses `retry-after`: delay seconds (whole or fractional), or an HTTP date (the wait
/// until then; zero when it has passed).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

/// [`retry_after`] as seen at `now`.
fn retry_after_at(headers: &http::HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let v = headers
        .get(axum::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Some(d) = v
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    {
        return Some(d);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_never_empty() {
        assert!(Targets::new(Vec::new()).is_none());
        let mut t = Plan::single_for_test().targets;
        assert!(!t.retain(|_| false), "refusing every target keeps the plan");
        assert_eq!(t.len(), 1);
        assert_eq!(t.first().model, "m");
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let w = [70, 30, 0];
        let mut counts = [0u32; 3];
        for i in 0..1000 {
            counts[pick_weighted(&w, i as f64 / 1000.0)] += 1;
        }
        assert_eq!(counts, [700, 300, 0]);
        assert_eq!(pick_weighted(&[0, 0], 0.5), 0);
        assert_eq!(pick_weighted(&[0, 5], 0.999_999), 1);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let plan = Plan {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            retries: 3,
            ..Plan::single_for_test()
        };
        assert_eq!(
            plan.wait_before_retry(1, None, 1.0),
            Duration::from_millis(100)
        );
        assert_eq!(
            plan.wait_before_retry(1, None, 0.0),
            Duration::from_millis(50)
        );
        assert_eq!(
            plan.wait_before_retry(3, None, 1.0),
            Duration::from_millis(400)
        );
        assert_eq!(
            plan.wait_before_retry(9, None, 1.0),
            Duration::from_millis(1000)
        );
        assert_eq!(
            plan.wait_before_retry(1, Some(Duration::from_secs(2)), 0.3),
            Duration::from_millis(1000)
        );
        assert_eq!(
            plan.wait_before_retry(1, Some(Duration::from_millis(300)), 0.3),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn retry_after_parses_seconds() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "0.5".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert("retry-after", "soon".parse().expect("value"));
        assert_eq!(retry_after(&h), None);
        // An HTTP date: the wait until then, or none once it has passed.
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_795_651_200); // 2026-11-26T00:00:00Z
        h.insert(
            "retry-after",
            "Thu, 26 Nov 2026 00:00:30 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            "retry-after",
            "Wed, 25 Nov 2026 23:59:00 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after_at(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", "1e400".parse().expect("value"));
        assert_eq!(retry_after_at(&h, now), None);
    }

    impl Plan {
        fn single_for_test() -> Self {
            let cfg = crate::config::Config::parse(
                "[[providers]]\nid = \"p\"\nkind = \"anthropic\"\n",
                "test",
            )
            .expect("config");
            let provider = Arc::new(
                Provider::new(&cfg.providers[0], "http://127.0.0.1:1".into(), None)
                    .expect("provider"),
            );
            Self {
                targets: Targets::one(Target {
                    index: 0,
                    provider,
                    model: "m".into(),
                    max_tokens_cap: None,
                }),
                retry_on: RetryOn::default(),
                retries: 0,
                backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
                attempt_timeout: None,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
            }
        }
    }
}
