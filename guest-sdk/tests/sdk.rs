//! The SDK seen from a plugin author's side: config parsing, the request wrapper,
//! decisions, route plans, budget decisions and the testing harness.

use serde::Deserialize;
use std::collections::BTreeMap;
use tollgate_guest::testing::{self, LogLine, TestRequest};
use tollgate_guest::{
    Annotation, BudgetDecision, BudgetGrant, BudgetLimit, Decision, Denial, Endpoint, Hook,
    LogLevel, Metric, NoConfig, Period, Plugin, Request, RetryOn, RoutePlan, Scope, Strategy,
    Target, UsageReport, Window,
};

/// Echoes what it sees into annotations.
struct Echo;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoConfig {
    #[serde(default)]
    labels: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    read_body: bool,
}

#[tollgate_guest::plugin]
impl Plugin for Echo {
    const NAME: &'static str = "echo";
    const VERSION: &'static str = "1.2.3";
    type Config = EchoConfig;

    fn config_schema() -> &'static str {
        r#"{"type":"object","properties":{"limit":{"type":"integer"}}}"#
    }

    fn validate(config: &EchoConfig) -> Result<(), String> {
        if config.limit == Some(0) {
            return Err("limit: must be at least 1".into());
        }
        Ok(())
    }

    fn policy(config: &EchoConfig, req: &Request) -> Decision {
        req.log_debug(format!("model {}", req.model()));
        if let (Some(limit), Some(max)) = (config.limit, req.max_tokens())
            && max > limit
        {
            return Decision::invalid(format!("max_tokens {max} exceeds {limit}"));
        }
        let mut labels = vec![
            ("tenant".to_string(), req.tenant().to_string()),
            ("team".into(), req.team().unwrap_or("-").into()),
            ("user".into(), req.user().unwrap_or("-").into()),
            ("endpoint".into(), format!("{:?}", req.endpoint())),
            ("stream".into(), req.is_stream().to_string()),
            ("body_bytes".into(), req.body_bytes().to_string()),
            ("now".into(), req.now_ms().to_string()),
            ("env".into(), req.meta("env").unwrap_or("-").into()),
            ("has_Env".into(), req.has_meta("Env").to_string()),
            ("meta_count".into(), req.metadata().count().to_string()),
            ("label_keys".into(), config.labels.len().to_string()),
        ];
        if config.read_body {
            // Twice, to check the body is fetched once.
            let len = req.body().len();
            let model = req
                .body_json()
                .ok()
                .and_then(|v| v["model"].as_str().map(String::from));
            labels.push(("body_len".into(), len.to_string()));
            labels.push(("body_model".into(), model.unwrap_or_default()));
        }
        Decision::allow_with(labels)
    }
}

/// Implements nothing: the default hook allows.
struct Inert;

#[tollgate_guest::plugin]
impl Plugin for Inert {
    const NAME: &'static str = "inert";
    const VERSION: &'static str = "0.0.1";
    type Config = NoConfig;
}

/// Overrides `policy` only.
struct PolicyOnly;

#[tollgate_guest::plugin]
impl Plugin for PolicyOnly {
    const NAME: &'static str = "policy-only";
    const VERSION: &'static str = "0.0.1";
    type Config = NoConfig;

    fn policy(_: &NoConfig, _: &Request) -> Decision {
        Decision::forbid("never")
    }
}

/// Policy and route: routes `team` metadata to a provider of the same name.
struct TeamRouter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamRouterConfig {
    #[serde(default)]
    empty: bool,
}

#[tollgate_guest::plugin]
impl Plugin for TeamRouter {
    const NAME: &'static str = "team-router";
    const VERSION: &'static str = "0.2.0";
    type Config = TeamRouterConfig;

    fn policy(_: &TeamRouterConfig, req: &Request) -> Decision {
        match req.team() {
            Some(_) => Decision::allow(),
            None => Decision::forbid("team required"),
        }
    }

    fn route(c: &TeamRouterConfig, req: &Request) -> Option<RoutePlan> {
        if c.empty {
            return Some(RoutePlan::fallback([]));
        }
        req.log_info("routing");
        let team = req.team()?;
        Some(
            RoutePlan::fallback([Target::new(team), Target::new("shared").model("gpt-4o")])
                .label("team", team),
        )
    }
}

/// Overrides `route` only.
struct RouteOnly;

#[tollgate_guest::plugin]
impl Plugin for RouteOnly {
    const NAME: &'static str = "route-only";
    const VERSION: &'static str = "0.0.1";
    type Config = NoConfig;

    fn route(_: &NoConfig, _: &Request) -> Option<RoutePlan> {
        Some(RoutePlan::single(Target::new("routed")))
    }
}

/// Budget: a per-`scope` cap of `limit` dollars a day; labels what it read; denies
/// when `deny` is set; downgrades to `cheap` at `limit - 1`.
struct Budgeted;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetedConfig {
    scope: String,
    limit: f64,
    #[serde(default)]
    deny: bool,
    #[serde(default)]
    other: Option<String>,
}

#[tollgate_guest::plugin]
impl Plugin for Budgeted {
    const NAME: &'static str = "budgeted";
    const VERSION: &'static str = "0.3.0";
    type Config = BudgetedConfig;

    fn validate(c: &BudgetedConfig) -> Result<(), String> {
        c.scope
            .parse::<Scope>()
            .map(drop)
            .map_err(|e| format!("scope: {e}"))
    }

    fn budget(c: &BudgetedConfig, req: &Request, target: &Target) -> BudgetDecision {
        if c.deny {
            return BudgetDecision::over_budget("no budget");
        }
        let Ok(scope) = c.scope.parse::<Scope>() else {
            return BudgetDecision::deny(500, "api_error", "unreachable");
        };
        let used = req.usage(&scope, Period::Day, Window::Calendar);
        let mut d = BudgetDecision::allow()
            .limit(BudgetLimit::new(
                "daily",
                scope.clone(),
                Metric::Cost,
                Period::Day,
                c.limit,
            ))
            .label(
                "target",
                format!(
                    "{}/{}",
                    target.provider,
                    target.model.as_deref().unwrap_or("-")
                ),
            )
            .label("value", used.value.as_deref().unwrap_or("-"))
            .label("cost", used.current(Metric::Cost).to_string())
            .label("own", req.scope_value(&scope).unwrap_or("-"));
        if let Some(other) = &c.other {
            let o = req.usage_of(&scope, other, Period::Day, Window::Rolling);
            d = d.label(
                "other",
                format!("{}={}", o.value.unwrap_or_default(), o.requests),
            );
        }
        if used.current(Metric::Cost) >= c.limit - 1.0 {
            d = d.downgrade(Target::new("cheap"));
        }
        d
    }
}

tollgate_guest::export_plugin!(Echo);

#[test]
fn describe_reports_consts_and_schema() {
    let info = testing::describe::<Echo>();
    assert_eq!(info.name, "echo");
    assert_eq!(info.version, "1.2.3");
    assert_eq!(info.hooks, vec![Hook::Policy]);
    serde_json::from_str::<serde_json::Value>(&info.config_schema).expect("schema is JSON");
    let inert = testing::describe::<Inert>();
    assert!(inert.hooks.is_empty());
    assert_eq!(inert.config_schema, r#"{"type":"object"}"#);
}

#[test]
fn config_errors_name_the_field() {
    let err = testing::validate::<Echo>(r#"{"limt": 3}"#).unwrap_err();
    assert!(
        err.starts_with("config: limt: unknown field `limt`, expected one of"),
        "{err}"
    );
    assert!(!err.contains("line"), "{err}");

    let err = testing::validate::<Echo>(r#"{"labels": {"env": "prod"}}"#).unwrap_err();
    assert!(
        err.starts_with("config: labels.env: invalid type: string \"prod\""),
        "{err}"
    );

    let err = testing::validate::<Echo>(r#"{"labels": {"env": ["a", 1]}}"#).unwrap_err();
    assert!(
        err.starts_with("config: labels.env[1]: invalid type"),
        "{err}"
    );

    let err = testing::validate::<Echo>(r#"{"limit": -1}"#).unwrap_err();
    assert!(err.starts_with("config: limit: invalid value"), "{err}");

    let err = testing::validate::<Echo>(r#"{"limit": 3"#).unwrap_err();
    assert!(
        err.starts_with("config: not valid JSON: EOF while parsing an object at line 1"),
        "{err}"
    );

    let err = testing::validate::<Echo>(r#"{} {}"#).unwrap_err();
    assert!(
        err.starts_with("config: not valid JSON: trailing characters"),
        "{err}"
    );

    let err = testing::validate::<Echo>(r#""x""#).unwrap_err();
    assert_eq!(
        err,
        "config: invalid type: string \"x\", expected struct EchoConfig"
    );
}

#[test]
fn validate_runs_after_parsing() {
    assert_eq!(
        testing::validate::<Echo>(r#"{"limit": 0}"#),
        Err("config: limit: must be at least 1".into())
    );
    assert_eq!(testing::validate::<Echo>(r#"{"limit": 5}"#), Ok(()));
    // Blank config is treated as `{}`.
    assert_eq!(testing::validate::<Echo>("  "), Ok(()));
    assert_eq!(testing::validate::<Inert>("{}"), Ok(()));
    assert!(testing::validate::<Inert>(r#"{"x": 1}"#).is_err());
}

#[test]
fn run_returns_config_errors() {
    let err = TestRequest::new()
        .run::<Echo>(r#"{"limit": 0}"#)
        .unwrap_err();
    assert_eq!(err, "config: limit: must be at least 1");
}

#[test]
fn request_helpers_see_the_context() {
    let req = TestRequest::new()
        .tenant("acme")
        .meta("env", "prod")
        .meta("team", "eng")
        .meta("env", "shadowed")
        .endpoint(Endpoint::ChatCompletions)
        .stream(true)
        .now_ms(42);
    let d = req.run::<Echo>("{}").unwrap();
    assert_eq!(d.annotation("tenant"), Some("acme"));
    assert_eq!(
        d.annotation("team"),
        Some("eng"),
        "team falls back to metadata"
    );
    assert_eq!(d.annotation("user"), Some("-"));
    assert_eq!(d.annotation("endpoint"), Some("Endpoint::ChatCompletions"));
    assert_eq!(d.annotation("stream"), Some("true"));
    assert_eq!(d.annotation("now"), Some("42"));
    assert_eq!(d.annotation("env"), Some("prod"), "first value wins");
    assert_eq!(
        d.annotation("has_Env"),
        Some("false"),
        "keys are case-sensitive"
    );
    assert_eq!(d.annotation("meta_count"), Some("3"));
    assert_eq!(req.body_reads(), 0, "body is not fetched unless asked for");
    assert_eq!(
        req.logs(),
        vec![LogLine {
            level: LogLevel::Debug,
            message: "model claude-sonnet-4-5".into()
        }]
    );
}

#[test]
fn bound_team_wins_over_metadata() {
    let d = TestRequest::new()
        .team("platform")
        .user("ann")
        .meta("team", "eng")
        .meta("user", "bob")
        .run::<Echo>("{}")
        .unwrap();
    assert_eq!(d.annotation("team"), Some("platform"));
    assert_eq!(d.annotation("user"), Some("ann"));
}

#[test]
fn body_is_fetched_once_and_sized() {
    let req = TestRequest::new().model("claude-x");
    let d = req.run::<Echo>(r#"{"read_body": true}"#).unwrap();
    assert_eq!(req.body_reads(), 1);
    assert_eq!(
        d.annotation("body_model"),
        Some("claude-x"),
        "default body follows the model"
    );
    assert_eq!(d.annotation("body_len"), d.annotation("body_bytes"));

    let req = TestRequest::new().body(r#"{"model":"m"}"#).body_bytes(9000);
    let d = req.run::<Echo>(r#"{"read_body": true}"#).unwrap();
    assert_eq!(d.annotation("body_len"), Some("13"));
    assert_eq!(d.annotation("body_bytes"), Some("9000"));
}

#[test]
fn plugin_decisions_pass_through() {
    let d = TestRequest::new()
        .max_tokens(Some(4096))
        .run::<Echo>(r#"{"limit": 1000}"#)
        .unwrap();
    assert_eq!(
        d,
        Decision::Deny(Denial {
            status: 400,
            error_type: "invalid_request_error".into(),
            message: "max_tokens 4096 exceeds 1000".into(),
        })
    );
    let d = TestRequest::new()
        .max_tokens(None)
        .run::<Echo>(r#"{"limit": 1000}"#)
        .unwrap();
    assert!(d.is_allow());
}

#[test]
fn hooks_are_derived_from_the_methods_the_impl_defines() {
    assert_eq!(testing::describe::<PolicyOnly>().hooks, [Hook::Policy]);
    assert_eq!(
        TestRequest::new().run::<PolicyOnly>("{}"),
        Ok(Decision::forbid("never")),
        "an overridden policy is called"
    );
    // Overriding nothing lists nothing, and the default hooks are never entered.
    assert_eq!(testing::describe::<Inert>().hooks, []);
    assert_eq!(TestRequest::new().run::<Inert>("{}"), Ok(Decision::Allow));
}

#[test]
fn decision_helpers() {
    assert_eq!(Decision::allow(), Decision::Allow);
    let d = Decision::forbid("no");
    assert!(d.is_deny() && !d.is_allow());
    assert_eq!(
        d.denial().map(|d| (d.status, d.error_type.as_str())),
        Some((403, "permission_error"))
    );
    let d = Decision::invalid("bad");
    assert_eq!(
        d.denial().map(|d| (d.status, d.error_type.as_str())),
        Some((400, "invalid_request_error"))
    );
    let d = Decision::deny(429, "rate_limit_error", "slow down");
    assert_eq!(d.denial().map(|d| d.message.as_str()), Some("slow down"));
    assert!(d.annotations().is_empty());
    let d = Decision::allow_with([("a", "1"), ("b", "2")]);
    assert!(d.is_allow());
    assert_eq!(
        d.annotations(),
        &[Annotation::new("a", "1"), Annotation::new("b", "2")]
    );
    assert_eq!(
        Decision::allow_with([Annotation::new("a", "1"), ("b", "2").into()]),
        d,
        "labels are annotations or (key, value) pairs"
    );
    assert_eq!(d.annotation("b"), Some("2"));
    assert_eq!(d.annotation("c"), None);
    assert!(d.denial().is_none());
}

#[test]
fn route_hook_runs_through_the_harness() {
    assert_eq!(
        testing::describe::<TeamRouter>().hooks,
        vec![Hook::Policy, Hook::Route]
    );
    let req = TestRequest::new().meta("team", "research");
    let plan = req.run_route::<TeamRouter>("{}").unwrap().expect("routed");
    assert_eq!(plan.strategy, Strategy::Fallback);
    assert_eq!(
        plan.targets,
        vec![
            Target::new("research"),
            Target::new("shared").model("gpt-4o")
        ]
    );
    assert_eq!(plan.annotation("team"), Some("research"));
    assert_eq!(req.logs().len(), 1, "route logs like policy does");
    // The same request through the policy hook.
    assert!(req.run::<TeamRouter>("{}").unwrap().is_allow());
    assert!(req.logs().is_empty(), "each run clears the log");
    // No team: no plan.
    assert_eq!(TestRequest::new().run_route::<TeamRouter>("{}"), Ok(None));
}

#[test]
fn route_harness_reports_config_errors_and_empty_plans() {
    let err = TestRequest::new()
        .run_route::<TeamRouter>(r#"{"nope": 1}"#)
        .unwrap_err();
    assert!(err.starts_with("config: nope: unknown field"), "{err}");
    let err = TestRequest::new()
        .run_route::<TeamRouter>(r#"{"empty": true}"#)
        .unwrap_err();
    assert!(err.contains("without targets"), "{err}");
}

#[test]
fn a_plugin_overriding_route_reports_the_route_hook() {
    // Before the hook list was derived, forgetting `Hook::Route` here meant the host
    // never routed through this plugin.
    let info = testing::describe::<RouteOnly>();
    assert_eq!(info.hooks, [Hook::Route]);
    assert_eq!(
        TestRequest::new().run_route::<RouteOnly>("{}"),
        Ok(Some(RoutePlan::single(Target::new("routed"))))
    );
    assert_eq!(
        TestRequest::new().run::<RouteOnly>("{}"),
        Ok(Decision::Allow),
        "no policy hook"
    );
    // Plugins without a route method are skipped, like the host does.
    assert_eq!(TestRequest::new().run_route::<Echo>("{}"), Ok(None));
    assert_eq!(TestRequest::new().run_route::<Inert>("{}"), Ok(None));
}

#[test]
fn route_plan_builders_and_defaults() {
    let plan = RoutePlan::single(Target::new("anthropic"));
    assert_eq!(plan.strategy, Strategy::Single);
    assert_eq!(plan.targets, vec![Target::new("anthropic")]);
    assert_eq!(plan.retry_on, RetryOn::transient());
    assert_eq!(plan.retry_on.statuses, vec![429, 500, 502, 503, 504]);
    assert!(plan.retry_on.timeout && plan.retry_on.connect_error);
    assert_eq!(
        (plan.retries, plan.backoff_ms, plan.max_backoff_ms),
        (0, 200, 5000)
    );
    assert_eq!(plan.attempt_timeout_ms, None);
    assert!(plan.labels.is_empty());

    let t = Target::new("openai");
    assert_eq!(
        (t.model.as_deref(), t.weight, t.max_tokens_cap),
        (None, 1, None)
    );
    let t = t.model("gpt-4o").weight(0).max_tokens_cap(256);
    assert_eq!(
        (t.model.as_deref(), t.weight, t.max_tokens_cap),
        (Some("gpt-4o"), 0, Some(256))
    );

    let plan = RoutePlan::load_balance([Target::new("a").weight(3), Target::new("b")])
        .retry_on(RetryOn::statuses([429, 500]).timeout().connect_errors())
        .retries(2)
        .backoff_ms(100)
        .max_backoff_ms(1000)
        .attempt_timeout_ms(30_000)
        .label("k", "v1")
        .label("k", "v2");
    assert_eq!(plan.strategy, Strategy::LoadBalance);
    assert_eq!(plan.targets[0].weight, 3);
    assert_eq!(
        plan.retry_on,
        RetryOn::statuses([429, 500]).timeout().connect_errors()
    );
    assert_eq!(
        (
            plan.retries,
            plan.backoff_ms,
            plan.max_backoff_ms,
            plan.attempt_timeout_ms
        ),
        (2, 100, 1000, Some(30_000))
    );
    assert_eq!(plan.annotation("k"), Some("v1"), "first label wins");
    assert_eq!(plan.labels.len(), 2);
    assert_eq!(plan.annotation("x"), None);

    let never = RetryOn::never();
    assert!(never.statuses.is_empty() && !never.timeout && !never.connect_error);
    let plan = RoutePlan::new(Strategy::Fallback, vec![Target::new("a")]);
    assert_eq!(plan, RoutePlan::fallback([Target::new("a")]));
}

// --- Budget hook ---------------------------------------------------------------------

const TEAM_BUDGET: &str = r#"{"scope": "team", "limit": 5}"#;

fn spent(cost_usd: f64) -> UsageReport {
    UsageReport {
        cost_usd,
        ..Default::default()
    }
}

#[test]
fn budget_hook_runs_through_the_harness() {
    assert_eq!(testing::describe::<Budgeted>().hooks, vec![Hook::Budget]);
    let req = TestRequest::new().model("claude-x").team("eng");
    let d = req
        .run_budget::<Budgeted>(TEAM_BUDGET, &Target::new("anthropic"))
        .unwrap();
    assert!(d.is_allow() && !d.is_deny());
    assert_eq!(
        d.limits(),
        &[BudgetLimit::new(
            "daily",
            Scope::Team,
            Metric::Cost,
            Period::Day,
            5.0
        )]
    );
    assert_eq!(
        d.annotation("target"),
        Some("anthropic/claude-x"),
        "the harness resolves the target's model like the host"
    );
    assert_eq!(d.annotation("value"), Some("eng"));
    assert_eq!(d.annotation("cost"), Some("0"), "unset usage is zero");
    assert_eq!(d.downgrade_target(), None);
    assert_eq!(req.usage_reads(), 1);
    let d = req
        .run_budget::<Budgeted>(TEAM_BUDGET, &Target::new("openai").model("gpt-4o"))
        .unwrap();
    assert_eq!(d.annotation("target"), Some("openai/gpt-4o"));
}

#[test]
fn usage_presets_answer_the_requests_own_value() {
    let req = TestRequest::new()
        .team("eng")
        .usage(Scope::Team, Period::Day, Window::Calendar, spent(3.0))
        .usage(Scope::Team, Period::Day, Window::Calendar, spent(4.5))
        .usage(Scope::Team, Period::Hour, Window::Calendar, spent(100.0))
        .usage(Scope::Team, Period::Day, Window::Rolling, spent(100.0));
    let d = req
        .run_budget::<Budgeted>(TEAM_BUDGET, &Target::new("a"))
        .unwrap();
    assert_eq!(d.annotation("cost"), Some("4.5"), "the last preset wins");
    assert_eq!(d.downgrade_target(), Some(&Target::new("cheap")));
    assert_eq!(d.grant().map(|g| g.labels.len()), Some(4));

    // No team: the host reports nothing and no value.
    let d = TestRequest::new()
        .usage(Scope::Team, Period::Day, Window::Calendar, spent(4.5))
        .run_budget::<Budgeted>(TEAM_BUDGET, &Target::new("a"))
        .unwrap();
    assert_eq!(
        (
            d.annotation("value"),
            d.annotation("cost"),
            d.annotation("own")
        ),
        (Some("-"), Some("0"), Some("-"))
    );

    // Metadata, key and tenant scopes take their values from the request.
    for (scope, own) in [
        ("metadata.project", "apollo"),
        ("key", "key_test"),
        ("tenant", "test"),
    ] {
        let config = format!(r#"{{"scope": "{scope}", "limit": 5}}"#);
        let d = TestRequest::new()
            .meta("project", "apollo")
            .usage(
                scope.parse().unwrap(),
                Period::Day,
                Window::Calendar,
                spent(1.0),
            )
            .run_budget::<Budgeted>(&config, &Target::new("a"))
            .unwrap();
        assert_eq!(
            (d.annotation("own"), d.annotation("value")),
            (Some(own), Some(own))
        );
        assert_eq!(d.annotation("cost"), Some("1"), "{scope}");
    }
}

#[test]
fn usage_of_reads_another_value() {
    let config = r#"{"scope": "team", "limit": 5, "other": "research"}"#;
    let rolling = |requests| UsageReport {
        requests,
        ..Default::default()
    };
    let req = TestRequest::new()
        .team("eng")
        .usage_of(
            Scope::Team,
            "research",
            Period::Day,
            Window::Rolling,
            rolling(7),
        )
        .usage_of(
            Scope::Team,
            "eng",
            Period::Day,
            Window::Calendar,
            spent(2.0),
        );
    let d = req
        .run_budget::<Budgeted>(config, &Target::new("a"))
        .unwrap();
    assert_eq!(d.annotation("other"), Some("research=7"));
    assert_eq!(
        d.annotation("cost"),
        Some("2"),
        "a preset for the request's own value answers `usage` too"
    );
    assert_eq!(req.usage_reads(), 2);
    let d = TestRequest::new()
        .team("eng")
        .run_budget::<Budgeted>(config, &Target::new("a"))
        .unwrap();
    assert_eq!(d.annotation("other"), Some("research=0"));
}

#[test]
fn budget_harness_reports_config_errors_denials_and_missing_hooks() {
    let err = TestRequest::new()
        .run_budget::<Budgeted>(r#"{"scope": "org", "limit": 1}"#, &Target::new("a"))
        .unwrap_err();
    assert!(
        err.starts_with("config: scope: unknown scope `org`"),
        "{err}"
    );
    let err = testing::validate::<Budgeted>(r#"{"scope": "metadata.", "limit": 1}"#).unwrap_err();
    assert!(err.contains("needs a key"), "{err}");
    let d = TestRequest::new()
        .run_budget::<Budgeted>(
            r#"{"scope": "team", "limit": 1, "deny": true}"#,
            &Target::new("a"),
        )
        .unwrap();
    assert_eq!(
        d,
        BudgetDecision::Deny(Denial {
            status: 429,
            error_type: "budget_exceeded_error".into(),
            message: "no budget".into(),
        })
    );
    assert!(d.limits().is_empty() && d.annotations().is_empty() && d.grant().is_none());
    // No budget method: the host skips the hook, so nothing is limited.
    for result in [
        TestRequest::new().run_budget::<Echo>("{}", &Target::new("a")),
        TestRequest::new().run_budget::<Inert>("{}", &Target::new("a")),
        TestRequest::new().run_budget::<TeamRouter>("{}", &Target::new("a")),
    ] {
        assert_eq!(result, Ok(BudgetDecision::allow()));
    }
    assert_eq!(
        TestRequest::new().run::<Budgeted>(TEAM_BUDGET),
        Ok(Decision::Allow),
        "a budget-only plugin has no policy"
    );
}

#[test]
fn budget_builders_and_helpers() {
    let l = BudgetLimit::new("k", Scope::Key, Metric::Requests, Period::Minute, 60.0);
    assert_eq!((l.window, l.alert_at.len()), (Window::Calendar, 0));
    let l = l.rolling().alert_at([50, 100]);
    assert_eq!(
        (l.window, l.alert_at.clone()),
        (Window::Rolling, vec![50, 100])
    );
    assert_eq!(l.clone().window(Window::Calendar).window, Window::Calendar);

    let grant = BudgetGrant::new()
        .limit(l.clone())
        .downgrade(Target::new("b"))
        .label("x", "1");
    let d = BudgetDecision::allow_with(grant.clone());
    assert_eq!(d.grant(), Some(&grant));
    assert_eq!(
        d,
        BudgetDecision::allow()
            .limit(l.clone())
            .downgrade(Target::new("b"))
            .label("x", "1")
    );
    assert_eq!(d.annotation("x"), Some("1"));
    assert_eq!(BudgetDecision::default(), BudgetDecision::allow());

    // Builders leave a denial alone.
    let deny = BudgetDecision::rate_limited("slow down");
    assert_eq!(
        deny.clone()
            .limit(l)
            .downgrade(Target::new("b"))
            .label("x", "1"),
        deny
    );
    assert_eq!(
        deny.denial().map(|d| (d.status, d.error_type.as_str())),
        Some((429, "rate_limit_error"))
    );
    let d = BudgetDecision::deny(402, "payment_required", "top up");
    assert_eq!(d.denial().map(|d| d.status), Some(402));

    let u = UsageReport {
        requests: 10,
        tokens: 900,
        cost_usd: 1.25,
        reserved_requests: 2,
        reserved_tokens: 100,
        reserved_cost_usd: 0.25,
        ..Default::default()
    };
    assert_eq!(
        (u.current(Metric::Requests), u.settled(Metric::Requests)),
        (10.0, 8.0)
    );
    assert_eq!(
        (u.current(Metric::Tokens), u.reserved(Metric::Tokens)),
        (900.0, 100.0)
    );
    assert_eq!(u.settled(Metric::Cost), 1.0);
}

#[test]
fn scopes_parse_and_print() {
    for (text, scope) in [
        ("tenant", Scope::Tenant),
        ("team", Scope::Team),
        ("user", Scope::User),
        ("key", Scope::Key),
        ("metadata.env", Scope::metadata("env")),
        ("metadata.a.b", Scope::Metadata("a.b".into())),
    ] {
        assert_eq!(text.parse::<Scope>(), Ok(scope.clone()));
        assert_eq!(scope.to_string(), text);
    }
    for bad in ["", "Team", "metadata", "metadata.", "org"] {
        assert!(bad.parse::<Scope>().is_err(), "{bad}");
    }
}
