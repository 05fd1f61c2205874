//! The SDK seen from a plugin author's side: config parsing, the request wrapper,
//! decisions, route plans and the testing harness.

use serde::Deserialize;
use std::collections::BTreeMap;
use tollgate_guest::testing::{self, LogLine, TestRequest};
use tollgate_guest::{
    Decision, Denial, Endpoint, Hook, LogLevel, NoConfig, Plugin, Request, RetryOn, RoutePlan,
    Strategy, Target,
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

impl Plugin for Echo {
    const NAME: &'static str = "echo";
    const VERSION: &'static str = "1.2.3";
    const HOOKS: &'static [Hook] = &[Hook::Policy];
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

impl Plugin for Inert {
    const NAME: &'static str = "inert";
    const VERSION: &'static str = "0.0.1";
    const HOOKS: &'static [Hook] = &[];
    type Config = NoConfig;
}

/// Overrides `policy` but forgets to declare it: the host would never call it.
struct Undeclared;

impl Plugin for Undeclared {
    const NAME: &'static str = "undeclared";
    const VERSION: &'static str = "0.0.1";
    const HOOKS: &'static [Hook] = &[];
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

impl Plugin for TeamRouter {
    const NAME: &'static str = "team-router";
    const VERSION: &'static str = "0.2.0";
    const HOOKS: &'static [Hook] = &[Hook::Policy, Hook::Route];
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

/// Overrides `route` but forgets to declare it.
struct UndeclaredRouter;

impl Plugin for UndeclaredRouter {
    const NAME: &'static str = "undeclared-router";
    const VERSION: &'static str = "0.0.1";
    const HOOKS: &'static [Hook] = &[Hook::Policy];
    type Config = NoConfig;

    fn route(_: &NoConfig, _: &Request) -> Option<RoutePlan> {
        Some(RoutePlan::single(Target::new("never")))
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
    assert_eq!(d.annotation("endpoint"), Some("ChatCompletions"));
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
fn undeclared_hooks_are_skipped_like_the_host_does() {
    assert_eq!(TestRequest::new().run::<Inert>("{}"), Ok(Decision::Allow));
    assert_eq!(
        TestRequest::new().run::<Undeclared>("{}"),
        Ok(Decision::Allow)
    );
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
        &[
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string())
        ]
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
fn undeclared_route_is_skipped_like_the_host_does() {
    assert_eq!(
        TestRequest::new().run_route::<UndeclaredRouter>("{}"),
        Ok(None)
    );
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
