//! Glue between a [`Plugin`] and the generated `guest` export, shared with [`crate::testing`].

use crate::bindings::exports::tollgate::plugin::guest::Guest;
use crate::bindings::tollgate::plugin::types as wit;
use crate::host::{HostApi, WasmHost};
use crate::{
    BudgetDecision, Decision, Denial, Endpoint, Hook, LogLevel, Plugin, Request, RetryOn,
    RoutePlan, Strategy, Target,
};
use std::marker::PhantomData;

/// Implements the generated `Guest` trait for any [`Plugin`]; named by [`crate::export_plugin!`].
pub struct Adapter<P>(PhantomData<fn() -> P>);

impl<P: Plugin> Guest for Adapter<P> {
    fn describe() -> wit::PluginInfo {
        wit::PluginInfo {
            name: P::NAME.into(),
            version: P::VERSION.into(),
            hooks: P::HOOKS.iter().map(|&h| h.into()).collect(),
            config_schema: P::config_schema().into(),
        }
    }

    fn validate_config(config: String) -> Result<(), String> {
        validate_config::<P>(&config).map(drop)
    }

    fn policy(ctx: wit::RequestContext) -> wit::Decision {
        policy::<P>(ctx, &WasmHost).into()
    }

    fn route(ctx: wit::RequestContext) -> Option<wit::RoutePlan> {
        route::<P>(ctx, &WasmHost).map(Into::into)
    }

    fn budget(ctx: wit::RequestContext, target: wit::RouteTarget) -> wit::BudgetDecision {
        budget::<P>(ctx, target.into(), &WasmHost).into()
    }
}

/// Parses config JSON into `P::Config`; the error starts with `config:` and names the
/// offending field path (e.g. `config: allowed_values.env: invalid type ...`).
pub(crate) fn parse_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let msg = describe_json_error(e.inner());
        if e.inner().is_syntax() || e.inner().is_eof() {
            format!("config: not valid JSON: {msg}")
        } else if matches!(path.as_str(), "" | "." | "?") {
            format!("config: {msg}")
        } else {
            format!("config: {path}: {msg}")
        }
    })?;
    de.end()
        .map_err(|e| format!("config: not valid JSON: {e}"))?;
    Ok(config)
}

/// A serde_json error without the position for data errors: the host re-serialises the
/// tenant's config, so line and column would not point into anything the author wrote.
fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.is_data() {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            return stripped.to_string();
        }
    }
    text
}

/// `validate-config`: parse, then [`Plugin::validate`] (its error prefixed with `config:`).
pub(crate) fn validate_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let config = parse_config::<P>(json)?;
    P::validate(&config).map_err(|e| format!("config: {e}"))?;
    Ok(config)
}

/// Fetches and checks the config for a hook call; on failure logs the detail at error
/// level and returns `None`.
fn hook_config<P: Plugin>(host: &dyn HostApi) -> Option<P::Config> {
    match validate_config::<P>(&host.config()) {
        Ok(c) => Some(c),
        Err(e) => {
            host.log(
                LogLevel::Error,
                &format!("plugin '{}' rejected its config: {e}", P::NAME),
            );
            None
        }
    }
}

/// The `500 api_error` message for a config that fails at request time.
fn misconfigured<P: Plugin>() -> String {
    format!(
        "plugin '{}' is misconfigured; contact the gateway administrator",
        P::NAME
    )
}

/// `policy`: fetch and check the config, then run [`Plugin::policy`].
///
/// A config that no longer parses or validates denies with `500 api_error`; the detail
/// goes to the gateway log, not to the caller.
pub(crate) fn policy<P: Plugin>(ctx: wit::RequestContext, host: &dyn HostApi) -> Decision {
    let Some(config) = hook_config::<P>(host) else {
        return Decision::deny(500, "api_error", misconfigured::<P>());
    };
    let req = Request::new(ctx, host);
    P::policy(&config, &req)
}

/// `budget`: fetch and check the config, then run [`Plugin::budget`] on `target`.
///
/// Like `policy`, a config that no longer parses or validates denies with
/// `500 api_error` (an unchecked budget must not let spend through) and logs the detail.
pub(crate) fn budget<P: Plugin>(
    ctx: wit::RequestContext,
    target: Target,
    host: &dyn HostApi,
) -> BudgetDecision {
    let Some(config) = hook_config::<P>(host) else {
        return BudgetDecision::deny(500, "api_error", misconfigured::<P>());
    };
    let req = Request::new(ctx, host);
    P::budget(&config, &req, &target)
}

/// `route`: fetch and check the config, then run [`Plugin::route`].
///
/// A config that no longer parses or validates logs the detail and then panics (a trap
/// in wasm), so the host fails the request (or skips the plugin if it is fail-open)
/// rather than silently serving it from the default provider.
pub(crate) fn route<P: Plugin>(ctx: wit::RequestContext, host: &dyn HostApi) -> Option<RoutePlan> {
    let Some(config) = hook_config::<P>(host) else {
        panic!("plugin '{}' is misconfigured", P::NAME);
    };
    let req = Request::new(ctx, host);
    P::route(&config, &req)
}

impl From<Hook> for wit::Hook {
    fn from(h: Hook) -> Self {
        match h {
            Hook::Policy => wit::Hook::Policy,
            Hook::Route => wit::Hook::Route,
            Hook::Budget => wit::Hook::Budget,
        }
    }
}

impl From<LogLevel> for wit::LogLevel {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Trace => wit::LogLevel::Trace,
            LogLevel::Debug => wit::LogLevel::Debug,
            LogLevel::Info => wit::LogLevel::Info,
            LogLevel::Warn => wit::LogLevel::Warn,
            LogLevel::Error => wit::LogLevel::Error,
        }
    }
}

impl From<wit::Endpoint> for Endpoint {
    fn from(e: wit::Endpoint) -> Self {
        match e {
            wit::Endpoint::Messages => Endpoint::Messages,
            wit::Endpoint::CountTokens => Endpoint::CountTokens,
            wit::Endpoint::ChatCompletions => Endpoint::ChatCompletions,
        }
    }
}

impl From<Endpoint> for wit::Endpoint {
    fn from(e: Endpoint) -> Self {
        match e {
            Endpoint::Messages => wit::Endpoint::Messages,
            Endpoint::CountTokens => wit::Endpoint::CountTokens,
            Endpoint::ChatCompletions => wit::Endpoint::ChatCompletions,
        }
    }
}

impl From<Decision> for wit::Decision {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Allow => wit::Decision::Allow,
            Decision::AllowWith(labels) => wit::Decision::AllowWith(
                labels
                    .into_iter()
                    .map(|(key, value)| wit::Annotation { key, value })
                    .collect(),
            ),
            Decision::Deny(d) => wit::Decision::Deny(d.into()),
        }
    }
}

impl From<Denial> for wit::Denial {
    fn from(d: Denial) -> Self {
        wit::Denial {
            status: d.status,
            error_type: d.error_type,
            message: d.message,
        }
    }
}

impl From<Strategy> for wit::Strategy {
    fn from(s: Strategy) -> Self {
        match s {
            Strategy::Single => wit::Strategy::Single,
            Strategy::Fallback => wit::Strategy::Fallback,
            Strategy::LoadBalance => wit::Strategy::LoadBalance,
        }
    }
}

impl From<Target> for wit::RouteTarget {
    fn from(t: Target) -> Self {
        wit::RouteTarget {
            provider: t.provider,
            model: t.model,
            weight: t.weight,
            max_tokens_cap: t.max_tokens_cap,
        }
    }
}

impl From<wit::RouteTarget> for Target {
    fn from(t: wit::RouteTarget) -> Self {
        Target {
            provider: t.provider,
            model: t.model,
            weight: t.weight,
            max_tokens_cap: t.max_tokens_cap,
        }
    }
}

impl From<RetryOn> for wit::RetryOn {
    fn from(r: RetryOn) -> Self {
        wit::RetryOn {
            statuses: r.statuses,
            timeout: r.timeout,
            connect_error: r.connect_error,
        }
    }
}

impl From<RoutePlan> for wit::RoutePlan {
    fn from(p: RoutePlan) -> Self {
        wit::RoutePlan {
            strategy: p.strategy.into(),
            targets: p.targets.into_iter().map(Into::into).collect(),
            retry_on: p.retry_on.into(),
            retries: p.retries,
            backoff_ms: p.backoff_ms,
            max_backoff_ms: p.max_backoff_ms,
            attempt_timeout_ms: p.attempt_timeout_ms,
            labels: p
                .labels
                .into_iter()
                .map(|(key, value)| wit::Annotation { key, value })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BudgetLimit, Metric, Period, Scope, UsageReport, Window};
    use std::cell::RefCell;

    struct Strict;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StrictConfig {
        #[serde(default)]
        n: u8,
    }

    impl Plugin for Strict {
        const NAME: &'static str = "strict";
        const VERSION: &'static str = "0.1.0";
        const HOOKS: &'static [Hook] = &[Hook::Policy];
        type Config = StrictConfig;

        fn validate(c: &StrictConfig) -> Result<(), String> {
            if c.n > 10 {
                Err("n: at most 10".into())
            } else {
                Ok(())
            }
        }
    }

    /// Routes everything to one provider; `n` becomes the retry count.
    struct Router;

    impl Plugin for Router {
        const NAME: &'static str = "router";
        const VERSION: &'static str = "0.1.0";
        const HOOKS: &'static [Hook] = &[Hook::Route];
        type Config = StrictConfig;

        fn validate(c: &StrictConfig) -> Result<(), String> {
            Strict::validate(c)
        }

        fn route(c: &StrictConfig, req: &Request) -> Option<RoutePlan> {
            Some(RoutePlan::single(Target::new("anthropic").model(req.model())).retries(c.n.into()))
        }
    }

    /// Caps the tenant at `n` dollars a day; downgrades on the host's reading.
    struct Budgeter;

    impl Plugin for Budgeter {
        const NAME: &'static str = "budgeter";
        const VERSION: &'static str = "0.1.0";
        const HOOKS: &'static [Hook] = &[Hook::Budget];
        type Config = StrictConfig;

        fn validate(c: &StrictConfig) -> Result<(), String> {
            Strict::validate(c)
        }

        fn budget(c: &StrictConfig, req: &Request, target: &Target) -> BudgetDecision {
            let limit = BudgetLimit::new(
                "daily",
                Scope::Tenant,
                Metric::Cost,
                Period::Day,
                c.n.into(),
            )
            .alert_at([80]);
            let used = req.usage(&Scope::Tenant, Period::Day, Window::Calendar);
            BudgetDecision::allow()
                .limit(limit)
                .downgrade(Target::new(target.provider.as_str()).model("cheap"))
                .label(
                    "used",
                    format!("{}@{}", used.cost_usd, used.value.unwrap_or_default()),
                )
        }
    }

    struct FakeHost {
        config: &'static str,
        logs: RefCell<Vec<(LogLevel, String)>>,
    }

    impl HostApi for FakeHost {
        fn log(&self, level: LogLevel, message: &str) {
            self.logs.borrow_mut().push((level, message.into()));
        }
        fn config(&self) -> String {
            self.config.into()
        }
        fn now_ms(&self) -> u64 {
            0
        }
        fn request_body(&self) -> String {
            String::new()
        }
        fn usage(&self, _: &Scope, value: Option<&str>, _: Period, _: Window) -> UsageReport {
            UsageReport {
                value: value.map(String::from),
                cost_usd: 2.5,
                ..UsageReport::default()
            }
        }
    }

    fn ctx() -> wit::RequestContext {
        wit::RequestContext {
            request_id: "r".into(),
            trace_id: "r".into(),
            tenant: "t".into(),
            key_id: "k".into(),
            key_name: "k".into(),
            team: None,
            user: None,
            metadata: vec![],
            model: "m".into(),
            endpoint: wit::Endpoint::Messages,
            stream: false,
            max_tokens: None,
            body_bytes: 0,
            prompt_tokens_estimate: 0,
            message_count: 0,
        }
    }

    #[test]
    fn bad_config_at_policy_time_denies_500_and_logs_detail() {
        for (config, detail) in [
            (r#"{"n": "x"}"#, "config: n: invalid type"),
            (r#"{"n": 11}"#, "config: n: at most 10"),
        ] {
            let host = FakeHost {
                config,
                logs: RefCell::new(vec![]),
            };
            let d = policy::<Strict>(ctx(), &host);
            let denial = d.denial().expect("denied");
            assert_eq!(
                (denial.status, denial.error_type.as_str()),
                (500, "api_error")
            );
            assert!(
                denial.message.contains("plugin 'strict'"),
                "{}",
                denial.message
            );
            let logs = host.logs.borrow();
            assert_eq!(logs.len(), 1);
            assert_eq!(logs[0].0, LogLevel::Error);
            assert!(logs[0].1.contains(detail), "{}", logs[0].1);
        }
    }

    #[test]
    fn good_config_reaches_the_hook() {
        let host = FakeHost {
            config: r#"{"n": 3}"#,
            logs: RefCell::new(vec![]),
        };
        assert_eq!(policy::<Strict>(ctx(), &host), Decision::Allow);
        assert!(host.logs.borrow().is_empty());
    }

    #[test]
    fn describe_and_decisions_convert_to_wit() {
        let info = <Adapter<Strict> as Guest>::describe();
        assert_eq!(info.name, "strict");
        assert!(matches!(info.hooks.as_slice(), [wit::Hook::Policy]));
        assert!(<Adapter<Strict> as Guest>::validate_config(r#"{"n": 11}"#.into()).is_err());
        match wit::Decision::from(Decision::allow_with([("k", "v")])) {
            wit::Decision::AllowWith(a) => {
                assert_eq!((a[0].key.as_str(), a[0].value.as_str()), ("k", "v"))
            }
            _ => panic!("expected allow-with"),
        }
        match wit::Decision::from(Decision::forbid("no")) {
            wit::Decision::Deny(d) => assert_eq!(
                (d.status, d.error_type.as_str(), d.message.as_str()),
                (403, "permission_error", "no")
            ),
            _ => panic!("expected deny"),
        }
        for e in [
            Endpoint::Messages,
            Endpoint::CountTokens,
            Endpoint::ChatCompletions,
        ] {
            assert_eq!(Endpoint::from(wit::Endpoint::from(e)), e);
        }
    }

    #[test]
    fn route_runs_with_a_good_config() {
        let host = FakeHost {
            config: r#"{"n": 2}"#,
            logs: RefCell::new(vec![]),
        };
        let plan = route::<Router>(ctx(), &host).expect("routed");
        assert_eq!(plan.retries, 2);
        assert_eq!(plan.targets, vec![Target::new("anthropic").model("m")]);
        // The default `route` routes nothing.
        assert_eq!(route::<Strict>(ctx(), &host), None);
        assert!(host.logs.borrow().is_empty());
    }

    #[test]
    fn budget_runs_with_a_good_config_and_converts_to_wit() {
        let host = FakeHost {
            config: r#"{"n": 5}"#,
            logs: RefCell::new(vec![]),
        };
        let target = wit::RouteTarget {
            provider: "anthropic".into(),
            model: Some("m".into()),
            weight: 1,
            max_tokens_cap: None,
        };
        let d = budget::<Budgeter>(ctx(), target.into(), &host);
        assert_eq!(d.annotation("used"), Some("2.5@"));
        match wit::BudgetDecision::from(d) {
            wit::BudgetDecision::Allow(g) => {
                let l = &g.limits[0];
                assert_eq!(
                    (l.name.as_str(), l.limit, l.alert_at.as_slice()),
                    ("daily", 5.0, &[80][..])
                );
                assert!(matches!(l.scope, wit::Scope::Tenant));
                assert!(matches!(
                    (l.metric, l.period, l.window),
                    (wit::Metric::Cost, wit::Period::Day, wit::Window::Calendar)
                ));
                let t = g.downgrade.expect("downgrade");
                assert_eq!(
                    (t.provider.as_str(), t.model.as_deref()),
                    ("anthropic", Some("cheap"))
                );
                assert_eq!(g.labels[0].key, "used");
            }
            wit::BudgetDecision::Deny(_) => panic!("expected allow"),
        }
        // The default `budget` allows with no limits.
        assert_eq!(
            budget::<Strict>(ctx(), Target::new("a"), &host),
            BudgetDecision::allow()
        );
        let info = <Adapter<Budgeter> as Guest>::describe();
        assert!(matches!(info.hooks.as_slice(), [wit::Hook::Budget]));
    }

    #[test]
    fn bad_config_at_budget_time_denies_500_and_logs_detail() {
        let host = FakeHost {
            config: r#"{"n": 11}"#,
            logs: RefCell::new(vec![]),
        };
        let d = budget::<Budgeter>(ctx(), Target::new("a"), &host);
        let denial = d.denial().expect("denied");
        assert_eq!(
            (denial.status, denial.error_type.as_str()),
            (500, "api_error")
        );
        assert!(host.logs.borrow()[0].1.contains("config: n: at most 10"));
        match wit::BudgetDecision::from(BudgetDecision::rate_limited("slow")) {
            wit::BudgetDecision::Deny(d) => assert_eq!(
                (d.status, d.error_type.as_str(), d.message.as_str()),
                (429, "rate_limit_error", "slow")
            ),
            wit::BudgetDecision::Allow(_) => panic!("expected deny"),
        }
        let scope = wit::Scope::from(&Scope::metadata("project"));
        assert!(matches!(scope, wit::Scope::Metadata(k) if k == "project"));
    }

    #[test]
    fn bad_config_at_route_time_logs_then_traps() {
        let host = FakeHost {
            config: r#"{"n": 11}"#,
            logs: RefCell::new(vec![]),
        };
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route::<Router>(ctx(), &host)
        }));
        assert!(
            caught.is_err(),
            "a misconfigured router must not fall through"
        );
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, LogLevel::Error);
        assert!(logs[0].1.contains("config: n: at most 10"), "{}", logs[0].1);
    }

    #[test]
    fn route_plans_convert_to_wit() {
        let info = <Adapter<Router> as Guest>::describe();
        assert!(matches!(info.hooks.as_slice(), [wit::Hook::Route]));
        let plan = RoutePlan::load_balance([
            Target::new("a").weight(70).max_tokens_cap(512),
            Target::new("b").model("gpt-4o").weight(30),
        ])
        .retry_on(RetryOn::statuses([429]).connect_errors())
        .retries(1)
        .backoff_ms(50)
        .max_backoff_ms(900)
        .attempt_timeout_ms(1500)
        .label("route_rule", "x");
        let w = wit::RoutePlan::from(plan);
        assert!(matches!(w.strategy, wit::Strategy::LoadBalance));
        assert_eq!(w.targets.len(), 2);
        let (a, b) = (&w.targets[0], &w.targets[1]);
        assert_eq!(
            (
                a.provider.as_str(),
                a.model.as_deref(),
                a.weight,
                a.max_tokens_cap
            ),
            ("a", None, 70, Some(512))
        );
        assert_eq!(
            (
                b.provider.as_str(),
                b.model.as_deref(),
                b.weight,
                b.max_tokens_cap
            ),
            ("b", Some("gpt-4o"), 30, None)
        );
        assert_eq!(
            (
                w.retry_on.statuses.as_slice(),
                w.retry_on.timeout,
                w.retry_on.connect_error
            ),
            (&[429u16][..], false, true)
        );
        assert_eq!(
            (
                w.retries,
                w.backoff_ms,
                w.max_backoff_ms,
                w.attempt_timeout_ms
            ),
            (1, 50, 900, Some(1500))
        );
        assert_eq!(
            (w.labels[0].key.as_str(), w.labels[0].value.as_str()),
            ("route_rule", "x")
        );
        for (s, expected) in [
            (Strategy::Single, wit::Strategy::Single),
            (Strategy::Fallback, wit::Strategy::Fallback),
        ] {
            assert_eq!(wit::Strategy::from(s) as u8, expected as u8);
        }
    }
}
