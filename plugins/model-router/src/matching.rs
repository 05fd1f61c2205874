//! Which rule a request matches, and the route plan that follows from it.

use crate::config::{Config, Matcher, OneOrMany, Route, When};
use std::collections::BTreeMap;
use tollgate_guest::{Endpoint, Request, RetryOn, RoutePlan, Target, glob_match};

/// The label key naming the rule that routed the request (or `default`).
pub const RULE_LABEL: &str = "route_rule";

/// The plan for `req`: the first matching rule's route, else the default route, else
/// `None`. The plan carries the label `route_rule=<rule name>` (or `default`).
pub fn plan(config: &Config, req: &Request) -> Option<RoutePlan> {
    let (name, route) = config
        .rules
        .iter()
        .find(|r| r.when.matches(req))
        .map(|r| (r.name.as_str(), &r.route))
        .or_else(|| config.default.as_ref().map(|d| ("default", d)))?;
    Some(build(route, &config.aliases, req.model()).label(RULE_LABEL, name))
}

/// Turns a configured route into a plan for a request that asked for `requested`.
fn build(route: &Route, aliases: &BTreeMap<String, String>, requested: &str) -> RoutePlan {
    let targets = route.targets.iter().map(|t| {
        let mut target = Target::new(t.provider.as_str()).weight(t.weight);
        target.model = t
            .models
            .get(requested)
            .or(t.model.as_ref())
            .or_else(|| aliases.get(requested))
            .cloned();
        target.max_tokens_cap = t.max_tokens_cap;
        target
    });
    let mut plan = RoutePlan::new(route.strategy(), targets)
        .retry_on(RetryOn::from(&route.retry_on))
        .retries(route.retries)
        .backoff_ms(route.backoff_ms)
        .max_backoff_ms(route.max_backoff_ms);
    plan.attempt_timeout_ms = route.attempt_timeout_ms;
    plan
}

impl When {
    /// Whether every present condition holds for `req`.
    pub fn matches(&self, req: &Request) -> bool {
        self.metadata.iter().all(|(k, m)| m.matches(req.meta(k)))
            && one_of(&self.team, req.team())
            && one_of(&self.user, req.user())
            && self.key.as_ref().is_none_or(|keys| {
                keys.iter()
                    .any(|k| k == req.key_id() || k == req.key_name())
            })
            && self
                .model
                .as_ref()
                .is_none_or(|pats| pats.iter().any(|p| glob_match(p, req.model())))
            && self
                .endpoint
                .as_ref()
                .is_none_or(|eps| eps.iter().any(|&e| Endpoint::from(e) == req.endpoint()))
    }
}

/// An absent condition holds; a present one needs a value equal to one of its entries.
fn one_of(allowed: &Option<OneOrMany<String>>, value: Option<&str>) -> bool {
    allowed
        .as_ref()
        .is_none_or(|list| value.is_some_and(|v| list.iter().any(|a| a == v)))
}

impl Matcher {
    /// Whether a metadata value (`None` when the key is absent) satisfies the matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Matcher::Exists(want), v) => v.is_some() == *want,
            // A missing key is not in the list.
            (Matcher::NotIn(_), None) => true,
            (Matcher::NotIn(list), Some(v)) => !list.iter().any(|a| a == v),
            (_, None) => false,
            (Matcher::Equals(want), Some(v)) => v == want,
            (Matcher::In(list), Some(v)) => list.iter().any(|a| a == v),
            (Matcher::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_on_present_and_absent_values() {
        let list = || vec!["prod".to_string(), "staging".to_string()];
        let cases = [
            (Matcher::Equals("prod".into()), [true, false, false]),
            (Matcher::In(list()), [true, false, false]),
            (Matcher::NotIn(list()), [false, true, true]),
            (Matcher::Exists(true), [true, true, false]),
            (Matcher::Exists(false), [false, false, true]),
            (Matcher::Prefix("pro".into()), [true, false, false]),
        ];
        for (m, [prod, dev, absent]) in cases {
            assert_eq!(m.matches(Some("prod")), prod, "{m:?} on prod");
            assert_eq!(m.matches(Some("dev")), dev, "{m:?} on dev");
            assert_eq!(m.matches(None), absent, "{m:?} on absent");
        }
        assert!(Matcher::Prefix("eu-".into()).matches(Some("eu-west-1")));
        assert!(!Matcher::Prefix("eu-".into()).matches(Some("EU-west-1")));
        assert!(!Matcher::Equals("prod".into()).matches(Some("Prod")));
    }
}
