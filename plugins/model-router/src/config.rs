//! The plugin's config: serde types, the custom shapes (matchers, string-or-list) and
//! the checks serde cannot express, each error naming the field path.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer, StrDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use tollgate_guest::{Endpoint, RetryOn, RoutePlan, Strategy};

/// The plugin's config; see the crate docs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requested model -> model to ask for when a target names none.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Rules, tried in order; the first whose `when` holds routes the request.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Route for requests no rule matched; absent = leave them unrouted.
    #[serde(default)]
    pub default: Option<Route>,
}

/// One routing rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Recorded as the `route_rule` label when the rule matches.
    pub name: String,
    /// Conditions, all of which must hold; empty matches every request.
    #[serde(default)]
    pub when: When,
    /// Where matching requests go.
    pub route: Route,
}

/// The conditions of a [`Rule`]; absent conditions always hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// `x-portkey-metadata` key (case-sensitive) -> condition on its value.
    #[serde(default)]
    pub metadata: BTreeMap<String, Matcher>,
    /// The request's team is one of these.
    #[serde(default)]
    pub team: Option<OneOrMany<String>>,
    /// The request's user is one of these.
    #[serde(default)]
    pub user: Option<OneOrMany<String>>,
    /// The API key's id or name is one of these.
    #[serde(default)]
    pub key: Option<OneOrMany<String>>,
    /// The requested model matches one of these globs (`*` any run, `?` one character).
    #[serde(default)]
    pub model: Option<OneOrMany<String>>,
    /// The request came in on one of these endpoints.
    #[serde(default)]
    pub endpoint: Option<OneOrMany<EndpointName>>,
}

/// A condition on one metadata value: an object with exactly one of `equals`, `in`,
/// `not_in`, `exists`, `prefix`, or a plain string meaning `equals`.
///
/// Serializes as that object (`{"in": [...]}`), which both forms read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Matcher {
    /// Present and equal to this.
    Equals(String),
    /// Present and one of these.
    In(Vec<String>),
    /// Absent, or present and none of these.
    NotIn(Vec<String>),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// Present and starting with this.
    Prefix(String),
}

/// The object form of a [`Matcher`], before the exactly-one check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherFields {
    #[serde(default)]
    equals: Option<String>,
    #[serde(default, rename = "in")]
    in_: Option<Vec<String>>,
    #[serde(default)]
    not_in: Option<Vec<String>>,
    #[serde(default)]
    exists: Option<bool>,
    #[serde(default)]
    prefix: Option<String>,
}

const MATCHER_KEYS: &str = "`equals`, `in`, `not_in`, `exists` or `prefix`";

/// [`Matcher`] in a binary format (the prepared config), which cannot guess between a
/// string and an object: the checked matcher, read by its variant.
#[derive(Deserialize)]
enum BinaryMatcher {
    Equals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists(bool),
    Prefix(String),
}

impl From<BinaryMatcher> for Matcher {
    fn from(m: BinaryMatcher) -> Self {
        match m {
            BinaryMatcher::Equals(v) => Matcher::Equals(v),
            BinaryMatcher::In(v) => Matcher::In(v),
            BinaryMatcher::NotIn(v) => Matcher::NotIn(v),
            BinaryMatcher::Exists(v) => Matcher::Exists(v),
            BinaryMatcher::Prefix(v) => Matcher::Prefix(v),
        }
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return BinaryMatcher::deserialize(d).map(Matcher::from);
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Matcher;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a string or an object with one of {MATCHER_KEYS}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Matcher, E> {
                Ok(Matcher::Equals(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Matcher, A::Error> {
                let f = MatcherFields::deserialize(MapAccessDeserializer::new(map))?;
                let mut found = Vec::with_capacity(1);
                if let Some(v) = f.equals {
                    found.push(Matcher::Equals(v));
                }
                if let Some(v) = f.in_ {
                    if v.is_empty() {
                        return Err(de::Error::custom("`in` must list at least one value"));
                    }
                    found.push(Matcher::In(v));
                }
                if let Some(v) = f.not_in {
                    found.push(Matcher::NotIn(v));
                }
                if let Some(v) = f.exists {
                    found.push(Matcher::Exists(v));
                }
                if let Some(v) = f.prefix {
                    found.push(Matcher::Prefix(v));
                }
                match found.len() {
                    1 => Ok(found.remove(0)),
                    0 => Err(de::Error::custom(format!(
                        "a matcher needs one of {MATCHER_KEYS}"
                    ))),
                    _ => Err(de::Error::custom(format!(
                        "a matcher takes exactly one of {MATCHER_KEYS}; write one rule per condition"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A non-empty list that may also be written as a single value; serializes as the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> OneOrMany<T> {
    /// The values.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Vec::<T>::deserialize(d).map(OneOrMany);
        }
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(StrDeserializer::<E>::new(v)).map(|t| OneOrMany(vec![t]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let items = Vec::<T>::deserialize(SeqAccessDeserializer::new(seq))?;
                if items.is_empty() {
                    return Err(de::Error::custom("list must not be empty"));
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An endpoint as written in config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointName {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/chat/completions`.
    ChatCompletions,
}

impl From<EndpointName> for Endpoint {
    fn from(e: EndpointName) -> Self {
        match e {
            EndpointName::Messages => Endpoint::Messages,
            EndpointName::CountTokens => Endpoint::CountTokens,
            EndpointName::ChatCompletions => Endpoint::ChatCompletions,
        }
    }
}

/// A strategy as written in config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// Only the first target.
    Single,
    /// Each target in order until one succeeds.
    Fallback,
    /// One target by weight, the others as fallbacks.
    LoadBalance,
}

/// Where and how matching requests are served.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Absent: `single` for one target, else `fallback`.
    #[serde(default)]
    pub strategy: Option<StrategyName>,
    /// Targets, in order; must not be empty.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Upstream outcomes that move on to the next attempt.
    #[serde(default)]
    pub retry_on: RetryOnConfig,
    /// Extra attempts on the same target before moving on.
    #[serde(default)]
    pub retries: u32,
    /// First wait between retries, in ms.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u32,
    /// Cap on any wait between attempts, in ms.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u32,
    /// Time allowed for each attempt's response headers, in ms (absent = provider default).
    #[serde(default)]
    pub attempt_timeout_ms: Option<u32>,
}

fn default_backoff_ms() -> u32 {
    RoutePlan::DEFAULT_BACKOFF_MS
}

fn default_max_backoff_ms() -> u32 {
    RoutePlan::DEFAULT_MAX_BACKOFF_MS
}

impl Route {
    /// The strategy, explicit or implied by the number of targets.
    pub fn strategy(&self) -> Strategy {
        match self.strategy {
            Some(StrategyName::Single) => Strategy::Single,
            Some(StrategyName::Fallback) => Strategy::Fallback,
            Some(StrategyName::LoadBalance) => Strategy::LoadBalance,
            None if self.targets.len() == 1 => Strategy::Single,
            None => Strategy::Fallback,
        }
    }
}

/// One target of a [`Route`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Provider id from the gateway config.
    pub provider: String,
    /// Model to ask for (absent: `models`, then `aliases`, then the requested model).
    #[serde(default)]
    pub model: Option<String>,
    /// Requested model -> model to ask this provider for; wins over `model`.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Share of traffic under `load_balance`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Lower the request's `max_tokens` to at most this.
    #[serde(default)]
    pub max_tokens_cap: Option<u32>,
}

fn default_weight() -> u32 {
    1
}

/// `retry_on` as written in config; each absent field takes its default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOnConfig {
    /// Upstream statuses (default 429, 500, 502, 503, 504).
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
    /// Move on when no response headers arrive in time (default true).
    #[serde(default = "yes")]
    pub timeout: bool,
    /// Move on when the connection fails (default true).
    #[serde(default = "yes")]
    pub connect_error: bool,
}

fn default_statuses() -> Vec<u16> {
    RetryOn::TRANSIENT_STATUSES.to_vec()
}

fn yes() -> bool {
    true
}

impl Default for RetryOnConfig {
    fn default() -> Self {
        Self {
            statuses: default_statuses(),
            timeout: true,
            connect_error: true,
        }
    }
}

impl From<&RetryOnConfig> for RetryOn {
    fn from(c: &RetryOnConfig) -> Self {
        let mut r = RetryOn::statuses(c.statuses.iter().copied());
        r.timeout = c.timeout;
        r.connect_error = c.connect_error;
        r
    }
}

/// Checks what serde cannot; the error starts with the field path.
pub fn validate(c: &Config) -> Result<(), String> {
    for (from, to) in &c.aliases {
        if from.is_empty() {
            return Err("aliases: model name must not be empty".into());
        }
        if to.is_empty() {
            return Err(format!("aliases.{from}: must not be empty"));
        }
    }
    for (i, rule) in c.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if rule.name.is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        if rule.name == "default" {
            return Err(format!(
                "{at}.name: \"default\" is reserved for the default route's label"
            ));
        }
        if let Some(j) = c.rules[..i].iter().position(|r| r.name == rule.name) {
            return Err(format!(
                "{at}.name: '{}' is already the name of rules[{j}]",
                rule.name
            ));
        }
        validate_when(&rule.when, &format!("{at}.when"))?;
        validate_route(&rule.route, &format!("{at}.route"))?;
    }
    if let Some(route) = &c.default {
        validate_route(route, "default")?;
    }
    Ok(())
}

fn validate_when(w: &When, at: &str) -> Result<(), String> {
    if w.metadata.keys().any(String::is_empty) {
        return Err(format!("{at}.metadata: key must not be empty"));
    }
    for (field, values) in [
        ("team", &w.team),
        ("user", &w.user),
        ("key", &w.key),
        ("model", &w.model),
    ] {
        if let Some(i) = values
            .iter()
            .flat_map(|v| v.iter())
            .position(String::is_empty)
        {
            return Err(format!("{at}.{field}[{i}]: must not be empty"));
        }
    }
    Ok(())
}

fn validate_route(r: &Route, at: &str) -> Result<(), String> {
    if r.targets.is_empty() {
        return Err(format!("{at}.targets: must not be empty"));
    }
    for (j, t) in r.targets.iter().enumerate() {
        let at = format!("{at}.targets[{j}]");
        if t.provider.is_empty() {
            return Err(format!("{at}.provider: must not be empty"));
        }
        if t.model.as_deref() == Some("") {
            return Err(format!(
                "{at}.model: must not be empty (omit it to keep the requested model)"
            ));
        }
        for (from, to) in &t.models {
            if from.is_empty() {
                return Err(format!("{at}.models: model name must not be empty"));
            }
            if to.is_empty() {
                return Err(format!("{at}.models.{from}: must not be empty"));
            }
        }
        if t.max_tokens_cap == Some(0) {
            return Err(format!("{at}.max_tokens_cap: must be at least 1"));
        }
    }
    match r.strategy {
        Some(StrategyName::LoadBalance) if r.targets.iter().all(|t| t.weight == 0) => {
            return Err(format!(
                "{at}.targets: load_balance needs at least one target with a weight above 0"
            ));
        }
        Some(StrategyName::Single) if r.targets.len() > 1 => {
            return Err(format!(
                "{at}.strategy: single uses only the first of {} targets; use fallback or load_balance, or list one target",
                r.targets.len()
            ));
        }
        _ => {}
    }
    if let Some((k, s)) = r
        .retry_on
        .statuses
        .iter()
        .enumerate()
        .find(|(_, s)| !(100..=599).contains(*s))
    {
        return Err(format!(
            "{at}.retry_on.statuses[{k}]: {s} is not an HTTP status (100..=599)"
        ));
    }
    if r.max_backoff_ms < r.backoff_ms {
        return Err(format!(
            "{at}.max_backoff_ms: must be at least backoff_ms ({})",
            r.backoff_ms
        ));
    }
    if r.attempt_timeout_ms == Some(0) {
        return Err(format!(
            "{at}.attempt_timeout_ms: must be at least 1 (omit it for the provider's timeout)"
        ));
    }
    Ok(())
}
