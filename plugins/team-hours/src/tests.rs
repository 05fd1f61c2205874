//! Native tests through the guest SDK's harness (the fixtures in `tests/` run the built
//! component in the real sandbox: `tollgate plugin test plugins/team-hours`).

use super::*;
use tollgate_guest::testing::{self, TestRequest};

const CONFIG: &str = include_str!("../tests/config.json");

/// Monday 2026-12-07 at `hh:mm` UTC.
fn monday(hh: u64, mm: u64) -> u64 {
    1_796_601_600_000 + (hh * 60 + mm) * 60_000
}

fn eng() -> TestRequest {
    TestRequest::new().team("engineering").user("dev@acme.com")
}

fn denial(req: TestRequest) -> String {
    let d = req.run::<TeamHours>(CONFIG).expect("valid config");
    d.denial().expect("a denial").message.clone()
}

#[test]
fn the_clock_helper_is_a_monday() {
    assert_eq!(local(monday(9, 30), 0), (0, 9 * 60 + 30));
    assert_eq!(local(monday(23, 30), 60), (1, 30));
    assert_eq!(local(monday(0, 30), -60), (6, 23 * 60 + 30));
}

#[test]
fn a_team_uses_its_models_in_its_hours() {
    let d = eng()
        .now_ms(monday(9, 0))
        .run::<TeamHours>(CONFIG)
        .expect("valid");
    assert!(d.is_allow(), "{d:?}");
    assert_eq!(d.annotation("team_hours.entry"), Some("engineering"));
    // 19:30 UTC is 20:30 at +01:00: past the end.
    assert_eq!(
        denial(eng().now_ms(monday(19, 30))),
        "team-hours: team 'engineering' is outside its hours; now mon 20:30 at UTC+01:00"
    );
    // Sunday evening UTC is already Monday at +01:00, but before 08:00.
    assert_eq!(
        denial(eng().now_ms(monday(0, 0) - 30 * 60_000)),
        "team-hours: team 'engineering' is outside its hours; now mon 00:30 at UTC+01:00"
    );
    assert_eq!(
        denial(eng().now_ms(monday(9, 0) + 5 * 86_400_000)),
        "team-hours: team 'engineering' is outside its hours; now sat 10:00 at UTC+01:00"
    );
}

#[test]
fn models_and_teams_outside_the_config_are_refused() {
    assert_eq!(
        denial(eng().now_ms(monday(9, 0)).model("gemini-2.5-pro")),
        "team-hours: model 'gemini-2.5-pro' is not allowed for team 'engineering'"
    );
    // Unlisted and absent teams fall to the default entry.
    let d = TestRequest::new()
        .team("sales")
        .model("claude-haiku-4-5")
        .run::<TeamHours>(CONFIG)
        .expect("valid");
    assert_eq!(d.annotation("team_hours.entry"), Some("contractors"));
    assert_eq!(
        denial(TestRequest::new().model("claude-opus-4")),
        "team-hours: model 'claude-opus-4' is not allowed for team '-'"
    );
    let strict = CONFIG.replace(r#""default_team": "contractors","#, "");
    let d = TestRequest::new()
        .team("sales")
        .run::<TeamHours>(&strict)
        .expect("valid");
    assert_eq!(
        d.denial().map(|d| (d.status, d.message.as_str())),
        Some((
            403,
            "team-hours: team 'sales' is not allowed to use the gateway"
        ))
    );
    let d = TestRequest::new().run::<TeamHours>(&strict).expect("valid");
    assert_eq!(
        d.denial().map(|d| d.message.as_str()),
        Some("team-hours: requests without a team are not allowed")
    );
}

#[test]
fn routes_and_budgets_follow_the_entry() {
    let plan = eng()
        .run_route::<TeamHours>(CONFIG)
        .expect("valid")
        .expect("a plan");
    assert_eq!(plan.strategy, tollgate_guest::Strategy::Fallback);
    let targets: Vec<_> = plan
        .targets
        .iter()
        .map(|t| (t.provider.as_str(), t.model.as_deref()))
        .collect();
    assert_eq!(
        targets,
        [
            ("anthropic", Some("claude-sonnet-4-5")),
            ("openai", Some("gpt-4o"))
        ]
    );
    assert_eq!(plan.retry_on.statuses, [429, 500, 502, 503, 529]);
    let plan = TestRequest::new()
        .team("support")
        .run_route::<TeamHours>(CONFIG)
        .expect("valid")
        .expect("a plan");
    assert_eq!(plan.strategy, tollgate_guest::Strategy::Single);
    assert_eq!(plan.targets[0].model, None);
    let none = TestRequest::new()
        .team("sales")
        .run_route::<TeamHours>(CONFIG);
    assert_eq!(none, Ok(None));

    let b = eng()
        .run_budget::<TeamHours>(CONFIG, &Target::new("anthropic"))
        .expect("valid");
    let l = &b.limits()[0];
    assert_eq!(
        (
            l.name.as_str(),
            &l.scope,
            l.metric,
            l.period,
            l.limit,
            l.alert_at.as_slice()
        ),
        (
            "team-hours:engineering:daily",
            &Scope::User,
            Metric::Cost,
            Period::Day,
            50.0,
            &[80][..]
        )
    );
    let b = TestRequest::new()
        .team("support")
        .run_budget::<TeamHours>(CONFIG, &Target::new("anthropic"))
        .expect("valid");
    assert_eq!(b.limits()[0].scope, Scope::Key);
    let b = TestRequest::new()
        .team("sales")
        .run_budget::<TeamHours>(CONFIG, &Target::new("anthropic"))
        .expect("valid");
    assert!(b.is_allow() && b.limits().is_empty());
}

#[test]
fn bad_configs_name_the_field() {
    for (config, error) in [
        (
            r#"{"teams": {}}"#,
            "config: teams: must list at least one team",
        ),
        (
            r#"{"teams": {"a": {"models": []}}}"#,
            "config: teams.a.models: must list at least one model glob",
        ),
        (
            r#"{"teams": {"a": {"models": ["*"], "hours": "20:00-08:00"}}}"#,
            "config: teams.a.hours: expected HH:MM-HH:MM with start before end",
        ),
        (
            r#"{"teams": {"a": {"models": ["*"], "days": ["mon", "fun"]}}}"#,
            "config: teams.a.days[1]: 'fun' is not a day (mon..sun)",
        ),
        (
            r#"{"teams": {"a": {"models": ["*"], "route": [{"provider": ""}]}}}"#,
            "config: teams.a.route[0].provider: must not be empty",
        ),
        (
            r#"{"teams": {"a": {"models": ["*"], "daily_usd": 0}}}"#,
            "config: teams.a.daily_usd: must be a number above 0",
        ),
        (
            r#"{"teams": {"a": {"models": ["*"]}}, "default_team": "b"}"#,
            "config: default_team: 'b' is not one of teams",
        ),
        (
            r#"{"teams": {"a": {"models": ["*"]}}, "utc_offset": "+15:00"}"#,
            "config: utc_offset: expected +HH:MM or -HH:MM, at most 14:00",
        ),
    ] {
        assert_eq!(testing::validate::<TeamHours>(config), Err(error.into()));
    }
    assert!(
        testing::validate::<TeamHours>(r#"{"teams": {"a": {"models": ["*"], "colour": 1}}}"#)
            .is_err_and(|e| e.contains("teams.a") && e.contains("unknown field"))
    );
}
