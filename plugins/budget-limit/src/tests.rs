//! Native tests through the guest SDK's harness: the same code path as the component.

use super::*;
use tollgate_guest::testing::{self, TestRequest};
use tollgate_guest::{BudgetLimit, Hook, Metric, Period, Scope, UsageReport, Window};

/// The README's example config, as the host hands it over (JSON).
const DOCUMENTED: &str = r#"{
    "limits": [
        {"name": "team-daily-cost", "scope": "team", "match": ["engineering"],
         "metric": "cost", "period": "day", "window": "calendar", "limit": 5.0,
         "alert_at": [50, 80, 100],
         "downgrade": {"at": 80, "provider": "mock", "model": "claude-haiku-4-5"}},
        {"name": "project-tokens", "scope": "metadata.project", "metric": "tokens",
         "period": "month", "window": "rolling", "limit": 50000000, "alert_at": [80, 100]},
        {"name": "tenant-monthly-cost", "scope": "tenant", "metric": "cost", "period": "month",
         "limit": 500, "alert_at": [50, 90, 100]}
    ],
    "rate_limits": [
        {"name": "key-rpm", "scope": "key", "requests_per_minute": 60, "tokens_per_minute": 100000}
    ]
}"#;

fn routed() -> Target {
    Target::new("anthropic").model("claude-sonnet-4-5")
}

fn run(req: &TestRequest, config: &str) -> BudgetDecision {
    req.run_budget::<BudgetLimiter>(config, &routed())
        .expect("config is valid")
}

/// Names of the limits granted for `req`.
fn granted(req: TestRequest, config: &str) -> Vec<String> {
    run(&req, config)
        .limits()
        .iter()
        .map(|l| l.name.clone())
        .collect()
}

/// A config with one `limits` entry: name `cap`, metric `cost`, period `day`, limit 10,
/// overridden by the JSON object members in `fields` (`null` removes a member).
fn one_limit(fields: &str) -> String {
    let mut limit =
        serde_json::json!({"name": "cap", "metric": "cost", "period": "day", "limit": 10});
    let fields: serde_json::Value =
        serde_json::from_str(&format!("{{{fields}}}")).expect("fields are JSON members");
    for (k, v) in fields.as_object().expect("object") {
        match v {
            serde_json::Value::Null => limit.as_object_mut().expect("object").remove(k),
            v => limit
                .as_object_mut()
                .expect("object")
                .insert(k.clone(), v.clone()),
        };
    }
    serde_json::json!({ "limits": [limit] }).to_string()
}

fn invalid(config: &str) -> String {
    testing::validate::<BudgetLimiter>(config).expect_err("config should be rejected")
}

fn cost(cost_usd: f64, reserved_cost_usd: f64) -> UsageReport {
    UsageReport {
        cost_usd,
        reserved_cost_usd,
        ..Default::default()
    }
}

fn engineering() -> TestRequest {
    TestRequest::new().team("engineering")
}

// --- describe and the README ----------------------------------------------------------

#[test]
fn describe_names_the_budget_hook_and_a_schema() {
    let info = testing::describe::<BudgetLimiter>();
    assert_eq!(info.name, "budget-limit");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.hooks, vec![Hook::Budget]);
    let schema: serde_json::Value =
        serde_json::from_str(&info.config_schema).expect("schema is JSON");
    let mut props: Vec<_> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    props.sort_unstable();
    assert_eq!(props, ["limits", "rate_limits"]);
    let limit = schema["properties"]["limits"]["items"]["properties"]
        .as_object()
        .expect("limit properties");
    for field in [
        "name",
        "scope",
        "match",
        "metric",
        "period",
        "window",
        "limit",
        "alert_at",
        "downgrade",
    ] {
        assert!(limit.contains_key(field), "schema lacks limits[].{field}");
    }
}

#[test]
fn readme_toml_example_is_the_documented_config() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("closed");
    let doc: toml::Value = toml::from_str(&readme[start..end]).expect("README TOML parses");
    let tenant = &doc["tenants"][0];
    assert_eq!(tenant["plugins"][0]["name"].as_str(), Some("budget-limit"));
    assert!(tenant["alerts"]["webhook_url"].as_str().is_some());
    let config = serde_json::to_string(&tenant["plugins"][0]["config"]).expect("JSON");
    assert_eq!(testing::validate::<BudgetLimiter>(&config), Ok(()));
    let documented: serde_json::Value = serde_json::from_str(DOCUMENTED).expect("JSON");
    let from_toml: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    assert_eq!(from_toml, documented);
}

#[test]
fn readme_example_requests() {
    let req = || engineering().meta("project", "apollo");
    assert_eq!(
        granted(req(), DOCUMENTED),
        [
            "team-daily-cost",
            "project-tokens",
            "tenant-monthly-cost",
            "key-rpm:requests",
            "key-rpm:tokens"
        ]
    );
    assert_eq!(
        granted(TestRequest::new().team("research"), DOCUMENTED),
        ["tenant-monthly-cost", "key-rpm:requests", "key-rpm:tokens"]
    );
    let spent = req().usage(Scope::Team, Period::Day, Window::Calendar, cost(4.1, 0.0));
    let d = run(&spent, DOCUMENTED);
    assert_eq!(
        d.downgrade_target(),
        Some(&Target::new("mock").model("claude-haiku-4-5"))
    );
    assert_eq!(d.annotation("budget_downgrade"), Some("team-daily-cost"));
    assert_eq!(
        d.limits().len(),
        5,
        "the downgraded request is still limited"
    );
}

#[test]
fn empty_config_limits_nothing() {
    let req = engineering();
    let d = run(&req, "{}");
    assert_eq!(d, BudgetDecision::allow());
    assert_eq!(req.usage_reads(), 0);
}

// --- granted limits ---------------------------------------------------------------------

#[test]
fn limits_carry_their_fields_and_alerts() {
    let d = run(&engineering(), DOCUMENTED);
    assert_eq!(
        d.limits()[0],
        BudgetLimit::new(
            "team-daily-cost",
            Scope::Team,
            Metric::Cost,
            Period::Day,
            5.0
        )
        .alert_at([50, 80, 100])
    );
    assert_eq!(
        d.limits()[1],
        BudgetLimit::new(
            "tenant-monthly-cost",
            Scope::Tenant,
            Metric::Cost,
            Period::Month,
            500.0
        )
        .alert_at([50, 90, 100])
    );
    let d = run(&engineering().meta("project", "x"), DOCUMENTED);
    assert_eq!(
        d.limits()[1],
        BudgetLimit::new(
            "project-tokens",
            Scope::metadata("project"),
            Metric::Tokens,
            Period::Month,
            5e7
        )
        .rolling()
        .alert_at([80, 100])
    );
    assert!(d.annotations().is_empty());
}

#[test]
fn scopes_resolve_from_the_request() {
    let config = r#"{"limits": [
        {"name": "tenant", "scope": "tenant", "metric": "cost", "period": "day", "limit": 1},
        {"name": "team", "scope": "team", "metric": "cost", "period": "day", "limit": 1},
        {"name": "user", "scope": "user", "metric": "cost", "period": "day", "limit": 1},
        {"name": "key", "scope": "key", "metric": "cost", "period": "day", "limit": 1},
        {"name": "env", "scope": "metadata.env", "metric": "cost", "period": "day", "limit": 1}
    ]}"#;
    // Tenant and key are always present; the rest only when the request has them.
    assert_eq!(granted(TestRequest::new(), config), ["tenant", "key"]);
    assert_eq!(
        granted(
            TestRequest::new().team("t").user("u").meta("env", "prod"),
            config
        ),
        ["tenant", "team", "user", "key", "env"]
    );
    // Team and user also come from metadata; metadata keys are case-sensitive.
    assert_eq!(
        granted(
            TestRequest::new().meta("team", "t").meta("Env", "prod"),
            config
        ),
        ["tenant", "team", "key"]
    );
    assert_eq!(
        granted(TestRequest::new().meta("user", "u"), config),
        ["tenant", "user", "key"]
    );
}

#[test]
fn match_filters_scope_values_with_globs() {
    let config = one_limit(r#""scope": "team", "match": ["engineering", "eng-*", "ops?"]"#);
    for (team, limited) in [
        ("engineering", true),
        ("eng-platform", true),
        ("ops1", true),
        ("ops12", false),
        ("Engineering", false),
        ("research", false),
    ] {
        let names = granted(TestRequest::new().team(team), &config);
        assert_eq!(!names.is_empty(), limited, "{team}");
    }
    // Absent match: every value.
    let config = one_limit(r#""scope": "metadata.project""#);
    assert_eq!(
        granted(TestRequest::new().meta("project", "any"), &config),
        ["cap"]
    );
    // A match on a scope the request has no value for never applies.
    let config = one_limit(r#""scope": "user", "match": ["*"]"#);
    assert!(granted(TestRequest::new(), &config).is_empty());
    assert_eq!(granted(TestRequest::new().user(""), &config), ["cap"]);
}

#[test]
fn rate_limits_expand_to_rolling_minute_limits() {
    let config = r#"{"rate_limits": [
        {"name": "key-rpm", "scope": "key", "requests_per_minute": 60, "tokens_per_minute": 100000},
        {"name": "team-tpm", "scope": "team", "match": ["eng*"], "tokens_per_minute": 5000},
        {"name": "user-rpm", "scope": "user", "requests_per_minute": 10}
    ]}"#;
    let d = run(&engineering().key_id("key_1"), config);
    assert_eq!(
        d.limits(),
        [
            BudgetLimit::new(
                "key-rpm:requests",
                Scope::Key,
                Metric::Requests,
                Period::Minute,
                60.0
            )
            .rolling(),
            BudgetLimit::new(
                "key-rpm:tokens",
                Scope::Key,
                Metric::Tokens,
                Period::Minute,
                1e5
            )
            .rolling(),
            BudgetLimit::new(
                "team-tpm:tokens",
                Scope::Team,
                Metric::Tokens,
                Period::Minute,
                5000.0
            )
            .rolling(),
        ]
    );
    assert_eq!(
        granted(TestRequest::new().team("research").user("ann"), config),
        ["key-rpm:requests", "key-rpm:tokens", "user-rpm:requests"]
    );
}

// --- downgrades -------------------------------------------------------------------------

#[test]
fn downgrades_from_the_threshold_on() {
    let at = |spent: f64, reserved: f64| {
        let req = engineering().usage(
            Scope::Team,
            Period::Day,
            Window::Calendar,
            cost(spent, reserved),
        );
        let d = run(&req, DOCUMENTED);
        assert_eq!(req.usage_reads(), 1, "one reading, for the one downgrade");
        d
    };
    assert_eq!(at(0.0, 0.0).downgrade_target(), None);
    assert_eq!(at(3.99, 0.0).downgrade_target(), None);
    assert!(at(3.99, 0.0).annotations().is_empty());
    for (spent, reserved) in [(4.0, 0.0), (4.0, 1.0), (7.5, 0.0)] {
        let d = at(spent, reserved);
        assert_eq!(
            d.downgrade_target(),
            Some(&Target::new("mock").model("claude-haiku-4-5")),
            "{spent}"
        );
        assert_eq!(d.annotation("budget_downgrade"), Some("team-daily-cost"));
        assert!(
            d.is_allow(),
            "the plugin never denies; the host enforces the limit"
        );
    }
    // Reserved usage counts: $3.50 settled plus $0.50 running reaches 80% of $5.
    let d = at(4.0, 0.5);
    assert!(d.downgrade_target().is_some());

    let req = engineering().usage(Scope::Team, Period::Day, Window::Calendar, cost(4.2, 0.0));
    run(&req, DOCUMENTED);
    let log = req.logs();
    assert!(
        log.iter()
            .any(|l| l.message.contains("'team-daily-cost' is at 84%")),
        "{log:?}"
    );
}

#[test]
fn downgrade_reads_the_limits_own_window_and_metric() {
    let config = one_limit(
        r#""scope": "key", "metric": "tokens", "period": "hour", "window": "rolling", "limit": 1000,
           "downgrade": {"at": 50, "provider": "cheap"}"#,
    );
    let tokens = |n| UsageReport {
        tokens: n,
        cost_usd: 1e9,
        ..Default::default()
    };
    let wrong_window =
        TestRequest::new().usage(Scope::Key, Period::Hour, Window::Calendar, tokens(900));
    assert_eq!(run(&wrong_window, &config).downgrade_target(), None);
    let req = TestRequest::new().usage(Scope::Key, Period::Hour, Window::Rolling, tokens(500));
    assert_eq!(
        run(&req, &config).downgrade_target(),
        Some(&Target::new("cheap")),
        "no model: the requested model on the downgrade provider"
    );
    let req = TestRequest::new().usage(Scope::Key, Period::Hour, Window::Rolling, tokens(499));
    assert_eq!(run(&req, &config).downgrade_target(), None);
}

#[test]
fn no_downgrade_when_already_on_the_target() {
    let spent = || engineering().usage(Scope::Team, Period::Day, Window::Calendar, cost(4.9, 0.0));
    let req = spent();
    let on_cheap = Target::new("mock").model("claude-haiku-4-5");
    let d = req
        .run_budget::<BudgetLimiter>(DOCUMENTED, &on_cheap)
        .unwrap();
    assert_eq!(d.downgrade_target(), None);
    assert!(d.annotations().is_empty());
    assert_eq!(req.usage_reads(), 0, "no reading needed");
    assert_eq!(d.limits().len(), 4, "still limited");

    // Same provider, other model: downgraded.
    let d = spent()
        .run_budget::<BudgetLimiter>(DOCUMENTED, &Target::new("mock").model("claude-sonnet-4-5"))
        .unwrap();
    assert!(d.downgrade_target().is_some());

    // A downgrade without a model keeps the requested one: a target serving the
    // requested model on that provider is already there.
    let config = one_limit(r#""scope": "tenant", "downgrade": {"at": 10, "provider": "mock"}"#);
    let req = TestRequest::new().model("claude-haiku-4-5").usage(
        Scope::Tenant,
        Period::Day,
        Window::Calendar,
        cost(9.0, 0.0),
    );
    let on = |t: Target| {
        req.run_budget::<BudgetLimiter>(&config, &t)
            .unwrap()
            .downgrade_target()
            .cloned()
    };
    assert_eq!(
        on(Target::new("mock")),
        None,
        "model resolved to the requested one"
    );
    assert_eq!(on(Target::new("mock").model("claude-haiku-4-5")), None);
    assert_eq!(
        on(Target::new("mock").model("claude-opus-4-1")),
        Some(Target::new("mock"))
    );
    assert_eq!(on(Target::new("anthropic")), Some(Target::new("mock")));
}

#[test]
fn first_downgrading_limit_wins() {
    let config = r#"{"limits": [
        {"name": "unmatched", "scope": "team", "match": ["sales"], "metric": "cost", "period": "day",
         "limit": 1, "downgrade": {"at": 10, "provider": "never"}},
        {"name": "low", "scope": "tenant", "metric": "cost", "period": "day", "limit": 100,
         "downgrade": {"at": 90, "provider": "a"}},
        {"name": "team", "scope": "team", "metric": "cost", "period": "day", "limit": 10,
         "downgrade": {"at": 50, "provider": "b"}},
        {"name": "user", "scope": "user", "metric": "cost", "period": "day", "limit": 10,
         "downgrade": {"at": 50, "provider": "c"}}
    ]}"#;
    let day = |scope, spent| (scope, Period::Day, Window::Calendar, cost(spent, 0.0));
    let preset = |req: TestRequest, (s, p, w, u): (Scope, Period, Window, UsageReport)| {
        req.usage(s, p, w, u)
    };
    let req = preset(
        preset(
            preset(engineering().user("ann"), day(Scope::Tenant, 50.0)),
            day(Scope::Team, 6.0),
        ),
        day(Scope::User, 9.0),
    );
    let d = run(&req, config);
    assert_eq!(d.downgrade_target(), Some(&Target::new("b")));
    assert_eq!(d.annotation("budget_downgrade"), Some("team"));
    assert_eq!(d.annotations().len(), 1);
    assert_eq!(
        req.usage_reads(),
        2,
        "unmatched limits are not read, nor any after the first downgrade"
    );
    assert_eq!(d.limits().len(), 3);
}

// --- config validation ------------------------------------------------------------------

#[test]
fn the_documented_config_is_valid() {
    assert_eq!(testing::validate::<BudgetLimiter>(DOCUMENTED), Ok(()));
    assert_eq!(testing::validate::<BudgetLimiter>("{}"), Ok(()));
}

#[test]
fn serde_errors_name_the_field() {
    for (config, prefix) in [
        (r#"{"limit": []}"#.to_string(), "config: limit: unknown field `limit`"),
        (
            one_limit(r#""scope": "org""#),
            "config: limits[0].scope: unknown scope `org`, expected `tenant`, `team`, `user`, `key` or `metadata.<key>`",
        ),
        (
            one_limit(r#""scope": "metadata.""#),
            "config: limits[0].scope: `metadata.` needs a key",
        ),
        (
            one_limit(r#""scope": "team", "window": "sliding""#),
            "config: limits[0].window: unknown variant `sliding`",
        ),
        (
            one_limit(r#""scope": "team", "alert_at": [50, -1]"#),
            "config: limits[0].alert_at[1]: invalid value",
        ),
        (
            one_limit(r#""scope": "team", "downgrade": {"at": 50}"#),
            "config: limits[0].downgrade: missing field `provider`",
        ),
        (
            one_limit(r#""scope": "team", "downgrade": {"at": 50, "provider": "p", "cap": 1}"#),
            "config: limits[0].downgrade.cap: unknown field `cap`",
        ),
        (
            r#"{"limits": [{"name": "x", "scope": "team", "metric": "usd", "period": "day", "limit": 1}]}"#.into(),
            "config: limits[0].metric: unknown variant `usd`, expected one of `cost`, `tokens`, `requests`",
        ),
        (
            r#"{"limits": [{"name": "x", "scope": "team", "metric": "cost", "period": "year", "limit": 1}]}"#.into(),
            "config: limits[0].period: unknown variant `year`",
        ),
        (
            one_limit(r#""scope": "team", "limit": null"#),
            "config: limits[0]: missing field `limit`",
        ),
        (
            r#"{"rate_limits": [{"name": "r", "scope": "key", "rpm": 5}]}"#.into(),
            "config: rate_limits[0].rpm: unknown field `rpm`",
        ),
    ] {
        let err = invalid(&config);
        assert!(err.starts_with(prefix), "{err}\n  expected: {prefix}");
    }
}

#[test]
fn validate_checks_ranges_and_names() {
    for (config, expected) in [
        (one_limit(r#""scope": "team", "limit": 0"#), "config: limits[0].limit: must be a number above 0"),
        (one_limit(r#""scope": "team", "limit": -5"#), "config: limits[0].limit: must be a number above 0"),
        (
            one_limit(r#""scope": "team", "alert_at": [50, 0]"#),
            "config: limits[0].alert_at[1]: 0 is not a percentage from 1 to 1000",
        ),
        (
            one_limit(r#""scope": "team", "alert_at": [1001]"#),
            "config: limits[0].alert_at[0]: 1001 is not a percentage from 1 to 1000",
        ),
        (
            one_limit(r#""scope": "team", "alert_at": [80, 100, 80]"#),
            "config: limits[0].alert_at[2]: 80 is listed twice",
        ),
        (
            one_limit(r#""scope": "team", "match": []"#),
            "config: limits[0].match: must not be empty (omit it to limit every value)",
        ),
        (
            one_limit(r#""scope": "team", "match": ["a", ""]"#),
            "config: limits[0].match[1]: must not be empty",
        ),
        (
            one_limit(r#""scope": "team", "period": "total", "window": "rolling""#),
            "config: limits[0].window: a `total` period has no rolling window; omit `window`",
        ),
        (
            one_limit(r#""scope": "team", "downgrade": {"at": 0, "provider": "p"}"#),
            "config: limits[0].downgrade.at: must be a percentage from 1 to 99 (at 100 the limit denies)",
        ),
        (
            one_limit(r#""scope": "team", "downgrade": {"at": 100, "provider": "p"}"#),
            "config: limits[0].downgrade.at: must be a percentage from 1 to 99 (at 100 the limit denies)",
        ),
        (
            one_limit(r#""scope": "team", "downgrade": {"at": 80, "provider": ""}"#),
            "config: limits[0].downgrade.provider: must not be empty",
        ),
        (
            one_limit(r#""scope": "team", "downgrade": {"at": 80, "provider": "p", "model": ""}"#),
            "config: limits[0].downgrade.model: must not be empty (omit it to keep the requested model)",
        ),
        (
            one_limit(r#""scope": "team", "name": """#),
            "config: limits[0].name: must not be empty",
        ),
        (
            r#"{"limits": [
                {"name": "a", "scope": "team", "metric": "cost", "period": "day", "limit": 1},
                {"name": "a", "scope": "user", "metric": "cost", "period": "day", "limit": 1}]}"#.into(),
            "config: limits[1].name: 'a' is already the name of limits[0]",
        ),
        (
            r#"{"limits": [{"name": "r:tokens", "scope": "team", "metric": "cost", "period": "day", "limit": 1}],
                "rate_limits": [{"name": "r", "scope": "key", "requests_per_minute": 1, "tokens_per_minute": 1}]}"#.into(),
            "config: rate_limits[0].name: 'r:tokens' is already the name of limits[0]",
        ),
        (
            r#"{"rate_limits": [{"name": "r", "scope": "key", "requests_per_minute": 1},
                                {"name": "r", "scope": "team", "requests_per_minute": 2}]}"#.into(),
            "config: rate_limits[1].name: 'r:requests' is already the name of rate_limits[0]",
        ),
        (
            r#"{"rate_limits": [{"name": "", "scope": "key", "requests_per_minute": 1}]}"#.into(),
            "config: rate_limits[0].name: must not be empty",
        ),
        (
            r#"{"rate_limits": [{"name": "r", "scope": "key"}]}"#.into(),
            "config: rate_limits[0]: set requests_per_minute, tokens_per_minute or both",
        ),
        (
            r#"{"rate_limits": [{"name": "r", "scope": "key", "tokens_per_minute": 0}]}"#.into(),
            "config: rate_limits[0].tokens_per_minute: must be at least 1",
        ),
        (
            r#"{"rate_limits": [{"name": "r", "scope": "key", "match": [], "requests_per_minute": 1}]}"#.into(),
            "config: rate_limits[0].match: must not be empty (omit it to limit every value)",
        ),
    ] {
        assert_eq!(invalid(&config), expected, "{config}");
    }
}

#[test]
fn non_finite_limits_are_rejected() {
    let mut c: Config = serde_json::from_str(&one_limit(r#""scope": "team""#)).expect("parses");
    assert_eq!(config::validate(&c), Ok(()));
    for bad in [f64::INFINITY, f64::NAN] {
        c.limits[0].limit = bad;
        assert_eq!(
            config::validate(&c),
            Err("limits[0].limit: must be a number above 0".into())
        );
    }
}

#[test]
fn a_rejected_config_fails_the_harness_run() {
    let err = TestRequest::new()
        .run_budget::<BudgetLimiter>(&one_limit(r#""scope": "team", "limit": 0"#), &routed())
        .unwrap_err();
    assert_eq!(err, "config: limits[0].limit: must be a number above 0");
}

#[test]
fn the_prepared_config_reads_back_as_checked() {
    testing::assert_prepared_reads_back::<BudgetLimiter>(
        r#"{"limits": [
              {"name": "team-daily-cost", "scope": "team", "match": ["eng*"], "metric": "cost",
               "period": "day", "window": "rolling", "limit": 5.5, "alert_at": [50, 80, 100],
               "downgrade": {"at": 80, "provider": "mock", "model": "claude-haiku-4-5"}},
              {"name": "project-tokens", "scope": "metadata.project", "metric": "tokens",
               "period": "month", "limit": 1000000, "downgrade": {"at": 90, "provider": "cheap"}}],
            "rate_limits": [
              {"name": "key-rpm", "scope": "key", "requests_per_minute": 60, "tokens_per_minute": 100000},
              {"name": "user-rpm", "scope": "user", "match": ["*@acme.com"], "requests_per_minute": 10}]}"#,
    );
    testing::assert_prepared_reads_back::<BudgetLimiter>("{}");
}
