"""team-hours-py against /work/notes/team-hours-spec.md, natively through tollgate_guest.testing."""

import copy
import json

import pytest

from app import TeamHours
from tollgate_guest import (
    BudgetLimit,
    Decision,
    Hook,
    Metric,
    Period,
    RetryOn,
    RoutePlan,
    Scope,
    Strategy,
    Target,
    Window,
    export,
)
from tollgate_guest.testing import ConfigRejected, TestRequest, describe, validate

CONFIG = {
    "utc_offset": "+01:00",
    "default_team": "contractors",
    "teams": {
        "engineering": {
            "models": ["claude-*", "gpt-4o*"],
            "hours": "08:00-20:00",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "route": [
                {"provider": "anthropic", "model": "claude-sonnet-4-5"},
                {"provider": "openai", "model": "gpt-4o"},
            ],
            "daily_usd": 50.0,
        },
        "contractors": {"models": ["claude-haiku-*"]},
    },
}

MONDAY_10_LOCAL = "2026-12-07T09:00:00Z"  # 10:00 at UTC+01:00
SATURDAY_21_14_LOCAL = "2026-12-12T20:14:30Z"


def config(**changes):
    """CONFIG with top-level fields replaced (None removes one)."""
    c = copy.deepcopy(CONFIG)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def engineering(**fields):
    """CONFIG with only an `engineering` team, any model unless `fields` say otherwise."""
    return config(default_team=None, teams={"engineering": {"models": ["*"], **fields}})


def test_describe_lists_the_three_hooks():
    info = describe(TeamHours)
    assert (info.name, info.version) == ("team-hours-py", "0.1.0")
    assert info.hooks == [Hook.POLICY, Hook.ROUTE, Hook.BUDGET]
    assert json.loads(info.config_schema)["required"] == ["teams"]


def test_export_is_nothing_natively():
    assert export(TeamHours) is None


def test_allows_a_listed_team_in_hours_with_the_entry_label():
    req = TestRequest(team="engineering", model="gpt-4o-mini", now=MONDAY_10_LOCAL)
    assert req.run(TeamHours, CONFIG) == Decision.allow_with({"team_hours.entry": "engineering"})


def test_default_team_applies_to_absent_and_unlisted_teams():
    for team in (None, "sales"):
        req = TestRequest(team=team, model="claude-haiku-4-5", now=SATURDAY_21_14_LOCAL)
        assert req.run(TeamHours, CONFIG).annotation("team_hours.entry") == "contractors"


@pytest.mark.parametrize(
    ("team", "message"),
    [
        (None, "team-hours: requests without a team are not allowed"),
        ("sales", "team-hours: team 'sales' is not allowed to use the gateway"),
    ],
)
def test_without_a_default_team_absent_and_unlisted_teams_are_denied(team, message):
    d = TestRequest(team=team, now=MONDAY_10_LOCAL).run(TeamHours, config(default_team=None))
    assert d == Decision.deny(403, "permission_error", message)


@pytest.mark.parametrize(
    ("team", "message"),
    [
        ("engineering", "team-hours: model 'o3' is not allowed for team 'engineering'"),
        ("sales", "team-hours: model 'o3' is not allowed for team 'sales'"),  # the default entry
        (None, "team-hours: model 'o3' is not allowed for team '-'"),
    ],
)
def test_models_outside_the_globs_are_denied(team, message):
    d = TestRequest(team=team, model="o3", now=MONDAY_10_LOCAL).run(TeamHours, CONFIG)
    assert d == Decision.forbid(message)


@pytest.mark.parametrize(
    ("now", "shown"),
    [
        (SATURDAY_21_14_LOCAL, "sat 21:14"),  # wrong day (and hour)
        ("2026-12-07T06:59:59Z", "mon 07:59"),  # a minute before 08:00
        ("2026-12-07T19:00:00Z", "mon 20:00"),  # the end is exclusive
        ("2026-12-06T23:30:00Z", "mon 00:30"),  # Sunday in UTC, Monday locally, but early
    ],
)
def test_outside_hours_or_days_is_denied_with_the_local_time(now, shown):
    d = TestRequest(team="engineering", now=now).run(TeamHours, CONFIG)
    assert d == Decision.forbid(f"team-hours: team 'engineering' is outside its hours; now {shown} at UTC+01:00")


def test_hours_bounds_and_negative_offsets():
    c = config(utc_offset="-05:30")
    c["teams"]["engineering"].update(hours="00:00-24:00", days=["sun"])
    # 2026-12-07T03:00Z is Sunday 21:30 at UTC-05:30.
    assert TestRequest(team="engineering", now="2026-12-07T03:00:00Z").run(TeamHours, c).is_allow
    d = TestRequest(team="engineering", now="2026-12-07T06:00:00Z").run(TeamHours, c)
    assert d.denial.message == "team-hours: team 'engineering' is outside its hours; now mon 00:30 at UTC-05:30"
    # "-00:00" is printed normalized.
    d = TestRequest(team="engineering", now="2026-12-07T06:00:00Z").run(TeamHours, config(utc_offset="-00:00"))
    assert d.denial.message.endswith("now mon 06:00 at UTC+00:00")


def test_no_hours_or_days_means_always():
    c = engineering()
    assert TestRequest(team="engineering", now=SATURDAY_21_14_LOCAL).run(TeamHours, c).is_allow


def test_route_falls_back_over_the_listed_targets():
    plan = TestRequest(team="engineering").run_route(TeamHours, CONFIG)
    assert plan == RoutePlan(
        Strategy.FALLBACK,
        [Target("anthropic", "claude-sonnet-4-5"), Target("openai", "gpt-4o")],
        retry_on=RetryOn([429, 500, 502, 503, 529], timeout=True, connect_error=True),
        retries=0,
        backoff_ms=0,
        max_backoff_ms=0,
        attempt_timeout_ms=None,
    ).label("team_hours.entry", "engineering")


def test_route_with_one_target_is_single():
    plan = TestRequest(team="engineering").run_route(TeamHours, engineering(route=[{"provider": "p"}]))
    assert plan.strategy == Strategy.SINGLE
    assert plan.targets == [Target("p", None, weight=1, max_tokens_cap=None)]
    assert plan.annotation("team_hours.entry") == "engineering"


def test_no_route_without_an_entry_or_a_route():
    assert TestRequest(team="sales").run_route(TeamHours, CONFIG) is None  # contractors: no route
    assert TestRequest(team="sales").run_route(TeamHours, config(default_team=None)) is None


def test_budget_grants_a_daily_cost_limit_per_user_else_per_key():
    for user, scope in (("dev@acme.com", Scope.USER), (None, Scope.KEY)):
        d = TestRequest(team="engineering", user=user).run_budget(TeamHours, CONFIG, Target("anthropic"))
        assert d.is_allow and d.downgrade is None and d.labels == []
        assert d.limits == [
            BudgetLimit(
                "team-hours:engineering:daily",
                scope,
                Metric.COST,
                Period.DAY,
                50.0,
                window=Window.CALENDAR,
                alert_at=[80],
            )
        ]


def test_budget_without_daily_usd_or_entry_has_no_limits():
    assert TestRequest(team="sales").run_budget(TeamHours, CONFIG, Target("a")).limits == []
    d = TestRequest(team="sales").run_budget(TeamHours, config(default_team=None), Target("a"))
    assert d.is_allow and d.limits == []


@pytest.mark.parametrize(
    ("cfg", "error"),
    [
        (config(teams={}), "config: teams: must list at least one team"),
        (config(teams=None), "config: missing field `teams`"),
        (config(default_team="x"), "config: default_team: 'x' is not one of teams"),
        (config(utc_offset="+14:30"), "config: utc_offset: expected +HH:MM or -HH:MM, at most 14:00"),
        (config(utc_offset="1:00"), "config: utc_offset: expected +HH:MM or -HH:MM, at most 14:00"),
        (config(extra=1), "config: extra: unknown field `extra`, expected one of `utc_offset`, `default_team`, `teams`"),
        (engineering(models=[]), "config: teams.engineering.models: must list at least one model glob"),
        (engineering(models=["a", ""]), "config: teams.engineering.models[1]: must not be empty"),
        (engineering(models="claude-*"), 'config: teams.engineering.models: invalid type: string "claude-*", expected a sequence'),
        (engineering(hours="20:00-08:00"), "config: teams.engineering.hours: expected HH:MM-HH:MM with start before end"),
        (engineering(hours="08:00-24:01"), "config: teams.engineering.hours: expected HH:MM-HH:MM with start before end"),
        (engineering(hours="8:00-20:00"), "config: teams.engineering.hours: expected HH:MM-HH:MM with start before end"),
        (engineering(days=[]), "config: teams.engineering.days: must list at least one day"),
        (engineering(days=["mon", "Tue"]), "config: teams.engineering.days[1]: 'Tue' is not a day (mon..sun)"),
        (engineering(days=["mon", "mon"]), "config: teams.engineering.days[1]: 'mon' is listed twice"),
        (engineering(route=[]), "config: teams.engineering.route: must list at least one target"),
        (engineering(route=[{"provider": ""}]), "config: teams.engineering.route[0].provider: must not be empty"),
        (engineering(route=[{"provider": "p", "model": ""}]), "config: teams.engineering.route[0].model: must not be empty"),
        (engineering(route=[{"model": "m"}]), "config: teams.engineering.route[0]: missing field `provider`"),
        (engineering(daily_usd=0), "config: teams.engineering.daily_usd: must be a number above 0"),
        (engineering(daily_usd="5"), 'config: teams.engineering.daily_usd: invalid type: string "5", expected a finite number'),
        (engineering(hrs="x"), "config: teams.engineering.hrs: unknown field `hrs`, expected one of `models`, `hours`, `days`, `route`, `daily_usd`"),
    ],
)
def test_config_errors_name_the_field(cfg, error):
    assert validate(TeamHours, cfg) == error
    with pytest.raises(ConfigRejected, match="^config: "):
        TestRequest().run(TeamHours, cfg)


def test_valid_configs_are_accepted():
    assert validate(TeamHours, CONFIG) is None
    assert validate(TeamHours, engineering(hours="00:00-24:00", days=None, daily_usd=0.01)) is None
    assert validate(TeamHours, config(utc_offset="-14:00", default_team=None)) is None
    assert validate(TeamHours, "") is not None  # `{}`: teams is required
