//! Native tests through the guest SDK's harness: the same code path as the component.

use super::*;
use tollgate_guest::testing::{self, TestRequest};
use tollgate_guest::{Annotation, Decision, Endpoint, Hook, RetryOn, Strategy, Target};

/// The README example.
const DOCUMENTED: &str = r#"{
    "rules": [
        {"name": "engineering",
         "when": {"metadata": {"team": {"equals": "engineering"}}},
         "route": {"strategy": "fallback",
                   "targets": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}],
                   "retry_on": {"statuses": [429, 500, 502, 503, 504], "timeout": true, "connect_error": true}}},
        {"name": "dev",
         "when": {"metadata": {"env": {"equals": "dev"}}},
         "route": {"targets": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]}}
    ],
    "default": {"targets": [{"provider": "anthropic"}]}
}"#;

fn route(req: &TestRequest, config: &str) -> Option<RoutePlan> {
    req.run_route::<ModelRouter>(config)
        .expect("config is valid")
}

/// The rule label of the plan for `req`, or `None` when unrouted.
fn rule(req: TestRequest, config: &str) -> Option<String> {
    route(&req, config).map(|p| {
        p.annotation("route_rule")
            .expect("plans are labelled")
            .to_string()
    })
}

/// The README's TOML examples, as the host hands them over (JSON).
const README_CONFIGS: [&str; 2] = [
    r#"{"rules": [{"name": "engineering", "when": {"metadata": {"team": {"equals": "engineering"}}}, "route": {"strategy": "fallback", "targets": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}], "retry_on": {"statuses": [429, 500, 502, 503, 504], "timeout": true, "connect_error": true}}}, {"name": "dev", "when": {"metadata": {"env": "dev"}}, "route": {"targets": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]}}], "default": {"targets": [{"provider": "anthropic"}]}}"#,
    r#"{"default": {"strategy": "load_balance", "targets": [{"provider": "anthropic", "weight": 70}, {"provider": "anthropic-b", "weight": 30}]}}"#,
];

/// A config with one rule named `hit` whose `when` is `when`, and no default.
fn when(when: &str) -> String {
    format!(
        r#"{{"rules": [{{"name": "hit", "when": {when}, "route": {{"targets": [{{"provider": "p"}}]}}}}]}}"#
    )
}

fn hits(req: TestRequest, when_json: &str) -> bool {
    rule(req, &when(when_json)).as_deref() == Some("hit")
}

fn invalid(config: &str) -> String {
    testing::validate::<ModelRouter>(config).expect_err("config should be rejected")
}

// --- describe and the policy hook --------------------------------------------------

#[test]
fn describe_names_the_route_hook_and_a_schema() {
    let info = testing::describe::<ModelRouter>();
    assert_eq!(info.name, "model-router");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.hooks, vec![Hook::Route]);
    let schema: serde_json::Value =
        serde_json::from_str(&info.config_schema).expect("schema is JSON");
    let mut props: Vec<_> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    props.sort_unstable();
    assert_eq!(props, ["aliases", "default", "rules"]);
    let route = &schema["$defs"]["route"]["properties"];
    for field in [
        "strategy",
        "targets",
        "retry_on",
        "retries",
        "backoff_ms",
        "max_backoff_ms",
        "attempt_timeout_ms",
    ] {
        assert!(route.get(field).is_some(), "schema lacks route.{field}");
    }
}

#[test]
fn policy_allows_everything() {
    assert_eq!(
        TestRequest::new().run::<ModelRouter>(DOCUMENTED),
        Ok(Decision::Allow)
    );
}

// --- the documented example ----------------------------------------------------------

#[test]
fn documented_example_engineering_falls_back_to_openai() {
    let req = TestRequest::new()
        .meta("team", "engineering")
        .meta("env", "prod");
    let plan = route(&req, DOCUMENTED).expect("routed");
    assert_eq!(plan.strategy, Strategy::Fallback);
    assert_eq!(
        plan.targets,
        vec![
            Target::new("anthropic"),
            Target::new("openai").model("gpt-4o")
        ]
    );
    assert_eq!(plan.retry_on, RetryOn::transient());
    assert_eq!(plan.labels, [Annotation::new("route_rule", "engineering")]);
    assert!(req.logs().is_empty());
}

#[test]
fn documented_example_dev_gets_the_cheaper_model() {
    let plan = route(
        &TestRequest::new()
            .meta("team", "research")
            .meta("env", "dev"),
        DOCUMENTED,
    )
    .expect("routed");
    assert_eq!(plan.strategy, Strategy::Single, "one target implies single");
    assert_eq!(
        plan.targets,
        vec![Target::new("anthropic").model("claude-haiku-4-5")]
    );
    assert_eq!(plan.annotation("route_rule"), Some("dev"));
}

#[test]
fn documented_example_everyone_else_gets_the_default() {
    let plan = route(
        &TestRequest::new().meta("team", "sales").meta("env", "prod"),
        DOCUMENTED,
    )
    .expect("routed");
    assert_eq!(plan.targets, vec![Target::new("anthropic")]);
    assert_eq!(plan.annotation("route_rule"), Some("default"));
    // No metadata at all: also the default.
    assert_eq!(
        rule(TestRequest::new(), DOCUMENTED).as_deref(),
        Some("default")
    );
}

// --- rule selection ---------------------------------------------------------------

#[test]
fn first_matching_rule_wins() {
    let cfg = r#"{"rules": [
        {"name": "a", "when": {"metadata": {"env": "prod"}}, "route": {"targets": [{"provider": "pa"}]}},
        {"name": "b", "when": {"team": "eng"}, "route": {"targets": [{"provider": "pb"}]}},
        {"name": "c", "route": {"targets": [{"provider": "pc"}]}}
    ]}"#;
    let both = TestRequest::new().team("eng").meta("env", "prod");
    let plan = route(&both, cfg).expect("routed");
    assert_eq!(
        (
            plan.targets[0].provider.as_str(),
            plan.annotation("route_rule")
        ),
        ("pa", Some("a"))
    );
    assert_eq!(
        rule(TestRequest::new().team("eng"), cfg).as_deref(),
        Some("b")
    );
    // An empty `when` matches everything, so later rules and the default never run.
    assert_eq!(rule(TestRequest::new(), cfg).as_deref(), Some("c"));
}

#[test]
fn no_match_and_no_default_leaves_the_request_unrouted() {
    let cfg = when(r#"{"team": "eng"}"#);
    assert_eq!(
        TestRequest::new()
            .team("sales")
            .run_route::<ModelRouter>(&cfg),
        Ok(None)
    );
    assert_eq!(TestRequest::new().run_route::<ModelRouter>("{}"), Ok(None));
    assert_eq!(TestRequest::new().run_route::<ModelRouter>(""), Ok(None));
}

#[test]
fn default_applies_when_no_rule_matches() {
    let cfg = r#"{"rules": [{"name": "eng", "when": {"team": "eng"}, "route": {"targets": [{"provider": "a"}]}}],
                  "default": {"targets": [{"provider": "b"}, {"provider": "c"}], "retries": 3}}"#;
    let plan = route(&TestRequest::new().team("ops"), cfg).expect("routed");
    assert_eq!(
        plan.strategy,
        Strategy::Fallback,
        "two targets imply fallback"
    );
    assert_eq!(plan.targets, vec![Target::new("b"), Target::new("c")]);
    assert_eq!(plan.retries, 3);
    assert_eq!(plan.annotation("route_rule"), Some("default"));
    // Default alone.
    let plan = route(
        &TestRequest::new(),
        r#"{"default": {"targets": [{"provider": "x"}]}}"#,
    )
    .expect("routed");
    assert_eq!(plan.annotation("route_rule"), Some("default"));
}

// --- each condition -------------------------------------------------------------------

#[test]
fn metadata_equals_and_string_shorthand() {
    for w in [
        r#"{"metadata": {"env": {"equals": "prod"}}}"#,
        r#"{"metadata": {"env": "prod"}}"#,
    ] {
        assert!(hits(TestRequest::new().meta("env", "prod"), w), "{w}");
        assert!(!hits(TestRequest::new().meta("env", "dev"), w), "{w}");
        assert!(!hits(TestRequest::new(), w), "{w}: absent");
        assert!(
            !hits(TestRequest::new().meta("Env", "prod"), w),
            "{w}: keys are case-sensitive"
        );
        assert!(
            !hits(TestRequest::new().meta("env", "Prod"), w),
            "{w}: values are exact"
        );
    }
}

#[test]
fn metadata_in() {
    let w = r#"{"metadata": {"env": {"in": ["prod", "staging"]}}}"#;
    assert!(hits(TestRequest::new().meta("env", "prod"), w));
    assert!(hits(TestRequest::new().meta("env", "staging"), w));
    assert!(!hits(TestRequest::new().meta("env", "dev"), w));
    assert!(!hits(TestRequest::new(), w));
}

#[test]
fn metadata_not_in_matches_a_missing_key() {
    let w = r#"{"metadata": {"env": {"not_in": ["prod", "staging"]}}}"#;
    assert!(hits(TestRequest::new().meta("env", "dev"), w));
    assert!(hits(TestRequest::new(), w), "absent is not in the list");
    assert!(!hits(TestRequest::new().meta("env", "prod"), w));
    assert!(hits(
        TestRequest::new(),
        r#"{"metadata": {"env": {"not_in": []}}}"#
    ));
}

#[test]
fn metadata_exists() {
    let yes = r#"{"metadata": {"project": {"exists": true}}}"#;
    let no = r#"{"metadata": {"project": {"exists": false}}}"#;
    assert!(hits(TestRequest::new().meta("project", ""), yes));
    assert!(!hits(TestRequest::new(), yes));
    assert!(hits(TestRequest::new(), no));
    assert!(hits(TestRequest::new().meta("Project", "x"), no));
    assert!(!hits(TestRequest::new().meta("project", "x"), no));
}

#[test]
fn metadata_prefix() {
    let w = r#"{"metadata": {"region": {"prefix": "eu-"}}}"#;
    assert!(hits(TestRequest::new().meta("region", "eu-west-1"), w));
    assert!(hits(TestRequest::new().meta("region", "eu-"), w));
    assert!(!hits(TestRequest::new().meta("region", "us-east-1"), w));
    assert!(!hits(TestRequest::new().meta("region", "EU-west-1"), w));
    assert!(!hits(TestRequest::new(), w));
}

#[test]
fn metadata_uses_the_first_value_of_a_repeated_key() {
    let w = r#"{"metadata": {"env": "prod"}}"#;
    assert!(hits(
        TestRequest::new().meta("env", "prod").meta("env", "dev"),
        w
    ));
    assert!(!hits(
        TestRequest::new().meta("env", "dev").meta("env", "prod"),
        w
    ));
}

#[test]
fn all_conditions_must_hold() {
    let w = r#"{"metadata": {"env": {"in": ["prod", "staging"]}, "region": {"prefix": "eu-"}},
               "team": "eng", "model": "claude-*", "endpoint": "messages"}"#;
    let full = || {
        TestRequest::new()
            .team("eng")
            .meta("env", "prod")
            .meta("region", "eu-west-1")
            .model("claude-sonnet-4-5")
    };
    assert!(hits(full(), w));
    assert!(!hits(full().meta("region", "ignored").model("gpt-4o"), w));
    assert!(!hits(full().endpoint(Endpoint::ChatCompletions), w));
    assert!(!hits(TestRequest::new().team("eng").meta("env", "prod"), w));
    assert!(hits(full(), "{}"), "empty when matches all");
    assert!(hits(full(), r#"{"metadata": {}}"#));
}

#[test]
fn team_single_or_list() {
    assert!(hits(TestRequest::new().team("eng"), r#"{"team": "eng"}"#));
    assert!(hits(
        TestRequest::new().meta("team", "eng"),
        r#"{"team": "eng"}"#
    ));
    assert!(hits(
        TestRequest::new().team("ops"),
        r#"{"team": ["eng", "ops"]}"#
    ));
    assert!(!hits(
        TestRequest::new().team("sales"),
        r#"{"team": ["eng", "ops"]}"#
    ));
    assert!(!hits(TestRequest::new(), r#"{"team": "eng"}"#), "no team");
    assert!(!hits(TestRequest::new().team("Eng"), r#"{"team": "eng"}"#));
}

#[test]
fn user_single_or_list() {
    assert!(hits(
        TestRequest::new().user("ann@example.com"),
        r#"{"user": "ann@example.com"}"#
    ));
    assert!(hits(
        TestRequest::new().meta("user", "bob"),
        r#"{"user": ["ann", "bob"]}"#
    ));
    assert!(!hits(TestRequest::new(), r#"{"user": ["ann", "bob"]}"#));
}

#[test]
fn key_matches_id_or_name() {
    let req = || TestRequest::new().key_id("key_abc").key_name("ci");
    assert!(hits(req(), r#"{"key": "key_abc"}"#));
    assert!(hits(req(), r#"{"key": "ci"}"#));
    assert!(hits(req(), r#"{"key": ["other", "ci"]}"#));
    assert!(!hits(req(), r#"{"key": ["other", "key_ab"]}"#));
}

#[test]
fn model_globs() {
    let req = |m: &str| TestRequest::new().model(m);
    assert!(hits(req("claude-sonnet-4-5"), r#"{"model": "claude-*"}"#));
    assert!(hits(
        req("gpt-4o"),
        r#"{"model": ["claude-opus-*", "gpt-4o"]}"#
    ));
    assert!(hits(
        req("claude-opus-4-1"),
        r#"{"model": ["claude-opus-*", "gpt-4o"]}"#
    ));
    assert!(!hits(
        req("gpt-4o-mini"),
        r#"{"model": ["claude-opus-*", "gpt-4o"]}"#
    ));
    assert!(hits(req("gpt-4o"), r#"{"model": "gpt-4?"}"#));
    assert!(!hits(req("gpt-4"), r#"{"model": "gpt-4?"}"#));
    assert!(hits(req("anything"), r#"{"model": "*"}"#));
}

#[test]
fn endpoint_single_or_list() {
    let req = |e| TestRequest::new().endpoint(e);
    assert!(hits(req(Endpoint::Messages), r#"{"endpoint": "messages"}"#));
    assert!(!hits(
        req(Endpoint::CountTokens),
        r#"{"endpoint": "messages"}"#
    ));
    let list = r#"{"endpoint": ["count_tokens", "chat_completions"]}"#;
    assert!(hits(req(Endpoint::CountTokens), list));
    assert!(hits(req(Endpoint::ChatCompletions), list));
    assert!(!hits(req(Endpoint::Messages), list));
}

// --- the plan --------------------------------------------------------------------------

#[test]
fn models_map_then_model_then_alias_then_requested() {
    let cfg = r#"{
        "aliases": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "fast": "claude-haiku-4-5"},
        "default": {"targets": [
            {"provider": "a", "model": "fixed", "models": {"claude-opus-4-1": "gpt-4o"}},
            {"provider": "b", "models": {"claude-opus-4-1": "o3"}},
            {"provider": "c"}
        ]}
    }"#;
    let models = |requested: &str| -> Vec<Option<String>> {
        route(&TestRequest::new().model(requested), cfg)
            .expect("routed")
            .targets
            .into_iter()
            .map(|t| t.model)
            .collect()
    };
    let s = |m: &str| Some(m.to_string());
    // The models map wins over model; without a map entry, b and c fall to the alias.
    assert_eq!(models("claude-opus-4-1"), vec![s("gpt-4o"), s("o3"), None]);
    assert_eq!(
        models("claude-sonnet-4-5"),
        vec![
            s("fixed"),
            s("claude-sonnet-4-5-20250929"),
            s("claude-sonnet-4-5-20250929")
        ]
    );
    assert_eq!(
        models("fast"),
        vec![s("fixed"), s("claude-haiku-4-5"), s("claude-haiku-4-5")]
    );
    // Neither map, model nor alias: None keeps the requested model.
    assert_eq!(models("gpt-4o-mini"), vec![s("fixed"), None, None]);
}

#[test]
fn aliases_apply_to_rule_routes_too() {
    let cfg = r#"{"aliases": {"sonnet": "claude-sonnet-4-5"},
                  "rules": [{"name": "r", "route": {"targets": [{"provider": "a"}]}}]}"#;
    let plan = route(&TestRequest::new().model("sonnet"), cfg).expect("routed");
    assert_eq!(plan.targets[0].model.as_deref(), Some("claude-sonnet-4-5"));
}

#[test]
fn load_balance_plan_carries_weights_in_order() {
    let cfg = r#"{"default": {"strategy": "load_balance", "targets": [
        {"provider": "anthropic", "weight": 70},
        {"provider": "anthropic-b", "weight": 30, "max_tokens_cap": 1024},
        {"provider": "openai", "model": "gpt-4o", "weight": 0},
        {"provider": "spare"}
    ]}}"#;
    let plan = route(&TestRequest::new(), cfg).expect("routed");
    assert_eq!(plan.strategy, Strategy::LoadBalance);
    assert_eq!(
        plan.targets,
        vec![
            Target::new("anthropic").weight(70),
            Target::new("anthropic-b").weight(30).max_tokens_cap(1024),
            Target::new("openai").model("gpt-4o").weight(0),
            Target::new("spare").weight(1),
        ]
    );
}

#[test]
fn route_defaults() {
    let plan = route(
        &TestRequest::new(),
        r#"{"default": {"targets": [{"provider": "a"}]}}"#,
    )
    .expect("routed");
    assert_eq!(plan.strategy, Strategy::Single);
    assert_eq!(plan.targets, vec![Target::new("a")]);
    assert_eq!(plan.targets[0].weight, 1);
    assert_eq!(plan.retry_on.statuses, vec![429, 500, 502, 503, 504]);
    assert!(plan.retry_on.timeout && plan.retry_on.connect_error);
    assert_eq!(
        (
            plan.retries,
            plan.backoff_ms,
            plan.max_backoff_ms,
            plan.attempt_timeout_ms
        ),
        (0, 200, 5000, None)
    );
}

#[test]
fn route_settings_pass_through() {
    let cfg = r#"{"default": {
        "strategy": "fallback", "targets": [{"provider": "a"}],
        "retry_on": {"statuses": [429], "timeout": false, "connect_error": true},
        "retries": 2, "backoff_ms": 50, "max_backoff_ms": 3000, "attempt_timeout_ms": 30000
    }}"#;
    let plan = route(&TestRequest::new(), cfg).expect("routed");
    assert_eq!(plan.strategy, Strategy::Fallback, "explicit strategy wins");
    assert_eq!(plan.retry_on, RetryOn::statuses([429]).connect_errors());
    assert_eq!(
        (
            plan.retries,
            plan.backoff_ms,
            plan.max_backoff_ms,
            plan.attempt_timeout_ms
        ),
        (2, 50, 3000, Some(30_000))
    );
    // Absent retry_on fields keep their defaults.
    let cfg = r#"{"default": {"targets": [{"provider": "a"}], "retry_on": {"statuses": [503]}}}"#;
    let plan = route(&TestRequest::new(), cfg).expect("routed");
    assert_eq!(
        plan.retry_on,
        RetryOn::statuses([503]).timeout().connect_errors()
    );
    let cfg = r#"{"default": {"targets": [{"provider": "a"}], "retry_on": {"timeout": false}}}"#;
    let plan = route(&TestRequest::new(), cfg).expect("routed");
    assert_eq!(
        plan.retry_on,
        RetryOn::statuses(RetryOn::TRANSIENT_STATUSES).connect_errors()
    );
}

// --- validation -------------------------------------------------------------------------

#[test]
fn valid_configs_pass() {
    for cfg in [
        "{}",
        DOCUMENTED,
        r#"{"aliases": {"a": "b"}}"#,
        r#"{"rules": []}"#,
        r#"{"rules": [{"name": "x", "when": {}, "route": {"targets": [{"provider": "p"}]}}]}"#,
        r#"{"default": {"strategy": "load_balance", "targets": [{"provider": "p", "weight": 0}, {"provider": "q"}]}}"#,
        r#"{"default": {"targets": [{"provider": "p"}], "retry_on": {"statuses": [100, 599]}}}"#,
    ] {
        assert_eq!(testing::validate::<ModelRouter>(cfg), Ok(()), "{cfg}");
    }
}

#[test]
fn readme_examples_are_valid_and_route_as_documented() {
    for cfg in README_CONFIGS {
        assert_eq!(testing::validate::<ModelRouter>(cfg), Ok(()), "{cfg}");
    }
    let [routed, balanced] = README_CONFIGS;
    for (meta, expected) in [
        (
            vec![("team", "engineering"), ("env", "prod")],
            "engineering",
        ),
        (vec![("team", "research"), ("env", "dev")], "dev"),
        (vec![("team", "sales")], "default"),
        (vec![], "default"),
    ] {
        let req = meta
            .iter()
            .fold(TestRequest::new(), |r, (k, v)| r.meta(k, v));
        assert_eq!(rule(req, routed).as_deref(), Some(expected), "{meta:?}");
    }
    let plan = route(&TestRequest::new(), balanced).expect("routed");
    let weights: Vec<_> = plan.targets.iter().map(|t| t.weight).collect();
    assert_eq!(weights, [70, 30]);
}

#[test]
fn empty_targets_name_the_rule() {
    let cfg = r#"{"rules": [
        {"name": "a", "route": {"targets": [{"provider": "p"}]}},
        {"name": "b", "route": {"targets": []}}
    ]}"#;
    assert_eq!(
        invalid(cfg),
        "config: rules[1].route.targets: must not be empty"
    );
    assert_eq!(
        invalid(r#"{"rules": [{"name": "a", "route": {}}]}"#),
        "config: rules[0].route.targets: must not be empty"
    );
    assert_eq!(
        invalid(r#"{"default": {"targets": []}}"#),
        "config: default.targets: must not be empty"
    );
}

#[test]
fn unknown_strategy_lists_the_valid_ones() {
    let err =
        invalid(r#"{"default": {"strategy": "round_robin", "targets": [{"provider": "p"}]}}"#);
    assert_eq!(
        err,
        "config: default.strategy: unknown variant `round_robin`, expected one of `single`, `fallback`, `load_balance`"
    );
}

#[test]
fn load_balance_needs_a_positive_weight() {
    let err = invalid(
        r#"{"rules": [{"name": "lb", "route": {"strategy": "load_balance", "targets": [{"provider": "a", "weight": 0}, {"provider": "b", "weight": 0}]}}]}"#,
    );
    assert_eq!(
        err,
        "config: rules[0].route.targets: load_balance needs at least one target with a weight above 0"
    );
    // Zero weights are fine for strategies that ignore weights.
    assert_eq!(
        testing::validate::<ModelRouter>(
            r#"{"default": {"targets": [{"provider": "a", "weight": 0}, {"provider": "b", "weight": 0}]}}"#
        ),
        Ok(())
    );
}

#[test]
fn statuses_must_be_http_statuses() {
    assert_eq!(
        invalid(
            r#"{"default": {"targets": [{"provider": "p"}], "retry_on": {"statuses": [429, 99]}}}"#
        ),
        "config: default.retry_on.statuses[1]: 99 is not an HTTP status (100..=599)"
    );
    assert_eq!(
        invalid(
            r#"{"rules": [{"name": "r", "route": {"targets": [{"provider": "p"}], "retry_on": {"statuses": [600]}}}]}"#
        ),
        "config: rules[0].route.retry_on.statuses[0]: 600 is not an HTTP status (100..=599)"
    );
    let err = invalid(
        r#"{"default": {"targets": [{"provider": "p"}], "retry_on": {"statuses": [70000]}}}"#,
    );
    assert!(
        err.starts_with("config: default.retry_on.statuses[0]: invalid value"),
        "{err}"
    );
}

#[test]
fn matcher_shape_errors_name_the_key() {
    let err = invalid(&when(r#"{"metadata": {"env": {}}}"#));
    assert_eq!(
        err,
        "config: rules[0].when.metadata.env: a matcher needs one of `equals`, `in`, `not_in`, `exists` or `prefix`"
    );
    let err = invalid(&when(
        r#"{"metadata": {"env": {"equals": "a", "prefix": "b"}}}"#,
    ));
    assert!(
        err.starts_with("config: rules[0].when.metadata.env: a matcher takes exactly one of"),
        "{err}"
    );
    let err = invalid(&when(r#"{"metadata": {"env": {"eq": "a"}}}"#));
    assert!(
        err.starts_with("config: rules[0].when.metadata.env.eq: unknown field `eq`"),
        "{err}"
    );
    let err = invalid(&when(r#"{"metadata": {"env": 3}}"#));
    assert!(
        err.starts_with("config: rules[0].when.metadata.env: invalid type: integer `3`, expected a string or an object"),
        "{err}"
    );
    let err = invalid(&when(r#"{"metadata": {"env": {"in": []}}}"#));
    assert_eq!(
        err,
        "config: rules[0].when.metadata.env: `in` must list at least one value"
    );
    let err = invalid(&when(r#"{"metadata": {"env": {"exists": "yes"}}}"#));
    assert!(
        err.starts_with("config: rules[0].when.metadata.env.exists: invalid type"),
        "{err}"
    );
}

#[test]
fn condition_errors_name_the_field() {
    let err = invalid(&when(r#"{"team": []}"#));
    assert_eq!(err, "config: rules[0].when.team: list must not be empty");
    let err = invalid(&when(r#"{"model": ["claude-*", 4]}"#));
    assert!(
        err.starts_with("config: rules[0].when.model[1]: invalid type: integer `4`"),
        "{err}"
    );
    let err = invalid(&when(r#"{"user": ["a", ""]}"#));
    assert_eq!(err, "config: rules[0].when.user[1]: must not be empty");
    let err = invalid(&when(r#"{"endpoint": "completions"}"#));
    assert_eq!(
        err,
        "config: rules[0].when.endpoint: unknown variant `completions`, expected one of `messages`, `count_tokens`, `chat_completions`"
    );
    let err = invalid(&when(r#"{"endpoint": ["messages", "embeddings"]}"#));
    assert!(
        err.starts_with("config: rules[0].when.endpoint[1]: unknown variant `embeddings`"),
        "{err}"
    );
    let err = invalid(&when(r#"{"metadata": {"": "x"}}"#));
    assert_eq!(err, "config: rules[0].when.metadata: key must not be empty");
    let err = invalid(&when(r#"{"tem": "eng"}"#));
    assert!(
        err.starts_with("config: rules[0].when.tem: unknown field `tem`"),
        "{err}"
    );
}

#[test]
fn rule_and_target_errors_name_the_field() {
    let target = |t: &str| format!(r#"{{"default": {{"targets": [{{"provider": "ok"}}, {t}]}}}}"#);
    for (cfg, expected) in [
        (
            target(r#"{"provider": ""}"#),
            "config: default.targets[1].provider: must not be empty",
        ),
        (
            target(r#"{"provider": "p", "model": ""}"#),
            "config: default.targets[1].model: must not be empty (omit it to keep the requested model)",
        ),
        (
            target(r#"{"provider": "p", "models": {"a": ""}}"#),
            "config: default.targets[1].models.a: must not be empty",
        ),
        (
            target(r#"{"provider": "p", "max_tokens_cap": 0}"#),
            "config: default.targets[1].max_tokens_cap: must be at least 1",
        ),
        (
            r#"{"rules": [{"name": "", "route": {"targets": [{"provider": "p"}]}}]}"#.into(),
            "config: rules[0].name: must not be empty",
        ),
        (
            r#"{"rules": [{"name": "default", "route": {"targets": [{"provider": "p"}]}}]}"#.into(),
            "config: rules[0].name: \"default\" is reserved for the default route's label",
        ),
        (
            r#"{"rules": [{"name": "x", "route": {"targets": [{"provider": "p"}]}}, {"name": "x", "route": {"targets": [{"provider": "p"}]}}]}"#.into(),
            "config: rules[1].name: 'x' is already the name of rules[0]",
        ),
        (
            r#"{"default": {"strategy": "single", "targets": [{"provider": "a"}, {"provider": "b"}]}}"#.into(),
            "config: default.strategy: single uses only the first of 2 targets; use fallback or load_balance, or list one target",
        ),
        (
            r#"{"default": {"targets": [{"provider": "a"}], "backoff_ms": 10000}}"#.into(),
            "config: default.max_backoff_ms: must be at least backoff_ms (10000)",
        ),
        (
            r#"{"default": {"targets": [{"provider": "a"}], "attempt_timeout_ms": 0}}"#.into(),
            "config: default.attempt_timeout_ms: must be at least 1 (omit it for the provider's timeout)",
        ),
        (
            r#"{"aliases": {"a": ""}}"#.into(),
            "config: aliases.a: must not be empty",
        ),
    ] {
        assert_eq!(invalid(&cfg), expected, "{cfg}");
    }
}

#[test]
fn serde_errors_name_the_field() {
    for (cfg, prefix) in [
        (r#"{"rule": []}"#, "config: rule: unknown field `rule`"),
        (
            r#"{"rules": [{"route": {"targets": [{"provider": "p"}]}}]}"#,
            "config: rules[0]: missing field `name`",
        ),
        (
            r#"{"rules": [{"name": "x"}]}"#,
            "config: rules[0]: missing field `route`",
        ),
        (
            r#"{"default": {"targets": [{"model": "m"}]}}"#,
            "config: default.targets[0]: missing field `provider`",
        ),
        (
            r#"{"default": {"targets": [{"provider": "p", "weight": -1}]}}"#,
            "config: default.targets[0].weight: invalid value",
        ),
        (
            r#"{"default": {"targets": [{"provider": "p"}], "retry_on": {"connect_errors": true}}}"#,
            "config: default.retry_on.connect_errors: unknown field `connect_errors`",
        ),
        (
            r#"{"default": {"targets": [{"provider": "p"}], "retries": "2"}}"#,
            "config: default.retries: invalid type",
        ),
        (
            r#"{"aliases": {"a": 1}}"#,
            "config: aliases.a: invalid type",
        ),
    ] {
        let err = invalid(cfg);
        assert!(err.starts_with(prefix), "{cfg}: {err}");
    }
}

#[test]
fn bad_config_is_reported_by_the_harness_before_routing() {
    let err = TestRequest::new()
        .run_route::<ModelRouter>(r#"{"default": {"targets": []}}"#)
        .unwrap_err();
    assert_eq!(err, "config: default.targets: must not be empty");
}

#[test]
fn the_prepared_config_reads_back_as_checked() {
    // Every matcher form, list-or-one field and route setting.
    testing::assert_prepared_reads_back::<ModelRouter>(
        r#"{"aliases": {"fast": "claude-haiku-4-5"},
            "rules": [
              {"name": "all", "when": {
                 "metadata": {"env": "prod", "a": {"equals": "x"}, "b": {"in": ["1", "2"]},
                              "c": {"not_in": ["3"]}, "d": {"exists": false}, "e": {"prefix": "p-"}},
                 "team": "eng", "user": ["u1", "u2"], "key": "k", "model": ["claude-*"],
                 "endpoint": ["messages", "chat_completions"]},
               "route": {"strategy": "load_balance",
                         "targets": [{"provider": "a", "model": "m", "weight": 70, "max_tokens_cap": 512,
                                      "models": {"claude-sonnet-4-5": "claude-haiku-4-5"}},
                                     {"provider": "b", "weight": 30}],
                         "retry_on": {"statuses": [429], "timeout": false, "connect_error": true},
                         "retries": 2, "backoff_ms": 50, "max_backoff_ms": 400, "attempt_timeout_ms": 3000}}],
            "default": {"targets": [{"provider": "anthropic"}]}}"#,
    );
    testing::assert_prepared_reads_back::<ModelRouter>(DOCUMENTED);
    testing::assert_prepared_reads_back::<ModelRouter>("{}");
}
