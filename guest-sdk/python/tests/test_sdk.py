"""The Python guest SDK natively: types, config reading, hook detection and the test host."""

import pytest

from tollgate_guest import (
    Annotation,
    BudgetDecision,
    BudgetLimit,
    ConfigError,
    Decision,
    Fields,
    Hook,
    LogLevel,
    Metric,
    Period,
    Plugin,
    RetryOn,
    Rewrite,
    Role,
    RoutePlan,
    Scope,
    Strategy,
    Target,
    UsageReport,
    Verdict,
    Window,
    byte_offset,
    glob_match,
)
from tollgate_guest.testing import ConfigRejected, TestRequest, answer, conversation, describe, validate


class Strict(Plugin):
    """`n` at most 10; policy logs and denies streams."""

    NAME = "strict"
    VERSION = "0.1.0"

    def parse_config(self, data):
        return Fields(data, known=("n",)).integer("n", 0)

    def validate(self, n):
        if n > 10:
            raise ConfigError("n", "at most 10")

    def policy(self, n, req):
        req.log_info(f"n={n}")
        return Decision.invalid("no streams") if req.stream else Decision.allow()


class Router(Plugin):
    NAME = "router"

    def route(self, config, req):
        if req.meta("env") == "prod":
            return RoutePlan.fallback([Target("anthropic"), Target("openai", "gpt-4o", max_tokens_cap=4096)], retries=1)
        return None


class Budgeter(Plugin):
    """$5 a day per team; a downgrade from $4, read from the host."""

    NAME = "budgeter"

    def budget(self, config, req, target):
        d = BudgetDecision.allow([BudgetLimit("team-daily", Scope.TEAM, Metric.COST, Period.DAY, 5.0, alert_at=[80])])
        if req.usage(Scope.TEAM, Period.DAY).current(Metric.COST) >= 4.0:
            d.downgrade_to(Target(target.provider, "claude-haiku-4-5")).label("budget", "downgraded")
        return d


class Redactor(Plugin):
    NAME = "redactor"

    def inspect_request(self, config, req, conversation):
        rw = Rewrite()
        for part in conversation.parts_of(Role.USER):
            at = part.text.find("bluebird")
            if at >= 0:
                start = byte_offset(part.text, at)
                rw.replace(part, start, start + len("bluebird"), "[CODENAME]")
                rw.found("codename", "confidential")
        return rw.verdict()

    def inspect_response(self, config, req, answer):
        if "secret" in answer.text():
            return Verdict.deny(400, "invalid_request_error", "no secrets", [])
        return Verdict.allow()


def test_glob_matches_like_the_rust_sdk():
    for p, t in [("claude-*", "claude-sonnet-4-5"), ("claude-*", "claude-"), ("*", ""), ("gpt-4?", "gpt-4o"),
                 ("claude-*-4-*", "claude-opus-4-1"), ("a*b*c", "aXXbYYc"), ("**", "x"), ("?é", "xé")]:
        assert glob_match(p, t), (p, t)
    for p, t in [("claude-*", "claud"), ("gpt-4o", "gpt-4o-mini"), ("gpt-4?", "gpt-4"), ("a*b*c", "aXXbYY"),
                 ("?", ""), ("Claude-*", "claude-x")]:
        assert not glob_match(p, t), (p, t)


def test_describe_lists_only_overridden_hooks():
    assert describe(Strict).hooks == [Hook.POLICY]
    assert describe(Router).hooks == [Hook.ROUTE]
    assert describe(Budgeter).hooks == [Hook.BUDGET]
    assert describe(Redactor).hooks == [Hook.INSPECT_REQUEST, Hook.INSPECT_RESPONSE]
    assert describe(Plugin).config_schema == '{"type":"object"}'

    class Explicit(Strict):
        HOOKS = (Hook.POLICY, Hook.BUDGET)

    assert describe(Explicit).hooks == [Hook.POLICY, Hook.BUDGET]


def test_config_errors_are_prefixed_and_name_the_path():
    assert validate(Strict, {"n": 3}) is None
    assert validate(Strict, "") is None  # no config is `{}`
    assert validate(Strict, {"n": 11}) == "config: n: at most 10"
    assert validate(Strict, {"n": "x"}) == 'config: n: invalid type: string "x", expected an integer'
    assert validate(Strict, {"n": True}) == "config: n: invalid type: boolean `true`, expected an integer"
    assert validate(Strict, {"m": 1}) == "config: m: unknown field `m`, expected `n`"
    assert validate(Strict, "[1]") == "config: invalid type: a sequence, expected an object"
    assert validate(Strict, '{"n": NaN}').startswith("config: not valid JSON: ")
    assert validate(Strict, "{").startswith("config: not valid JSON: ")
    assert validate(Plugin, {"anything": [1]}) is None


def test_fields_nested_paths_defaults_and_null():
    f = Fields({"a": {"b": [1, "x"]}, "c": None, "d": 2.5, "e": 3})
    items = list(f.object("a", known=("b",)).items("b"))
    assert items == [("a.b[0]", 1), ("a.b[1]", "x")]
    assert f.string("c", "dflt") == "dflt"  # null is absent for an optional field
    assert f.number("d") == 2.5 and f.number("e") == 3.0 and isinstance(f.number("e"), float)
    assert f.object("zz", None) is None
    with pytest.raises(ConfigError, match=r"^a: missing field `q`$"):
        f.object("a").get("q")
    with pytest.raises(ConfigError, match=r"^c: invalid type: null, expected a string$"):
        f.string("c")
    with pytest.raises(ConfigError, match=r"^a\.b: must list one$"):
        Fields({"a": {"b": []}}).object("a").array("b", nonempty="must list one")


def test_policy_runs_with_logs_and_the_request_fields():
    req = TestRequest(stream=True, metadata={"team": "eng", "env": "dev"})
    assert req.request.team == "eng" and req.request.meta("env") == "dev"
    assert req.run(Strict, {"n": 2}) == Decision.deny(400, "invalid_request_error", "no streams")
    assert [(l.level, l.message) for l in req.logs] == [(LogLevel.INFO, "n=2")]
    assert TestRequest().run(Strict, {"n": 2}).is_allow


def test_bad_config_raises_before_the_hook():
    with pytest.raises(ConfigRejected, match="^config: n: at most 10$"):
        TestRequest().run(Strict, {"n": 11})


def test_a_config_failing_at_request_time_denies_500_and_logs():
    """The host checks configs at startup; if one still fails at call time, nothing leaks to the caller."""
    from tollgate_guest import plugin as sdk

    req = TestRequest()
    host_req = req._start(Strict, "{}", Hook.POLICY)
    host_req.host._config = '{"n": 99}'
    d = sdk.run_policy(Strict, host_req)
    assert (d.denial.status, d.denial.error_type) == (500, "api_error")
    assert "plugin 'strict' is misconfigured" in d.denial.message
    assert req.logs[0].level == LogLevel.ERROR and "config: n: at most 10" in req.logs[0].message
    with pytest.raises(sdk.Misconfigured):  # route traps rather than fall through
        sdk.run_route(Strict, host_req)


def test_hooks_a_plugin_lacks_get_the_hosts_defaults():
    assert TestRequest().run(Router) == Decision.allow()
    assert TestRequest().run_route(Strict) is None
    assert TestRequest().run_budget(Strict, "{}", Target("a")) == BudgetDecision.allow()
    assert TestRequest().run_inspect_request(Strict, "{}", conversation([(Role.USER, "x")])) == Verdict.allow()


def test_route_plans_and_builders():
    plan = TestRequest(metadata={"env": "prod"}).run_route(Router)
    assert plan.strategy == Strategy.FALLBACK and plan.retries == 1
    assert plan.targets[1] == Target("openai", "gpt-4o", weight=1, max_tokens_cap=4096)
    assert (plan.retry_on, plan.backoff_ms, plan.max_backoff_ms) == (RetryOn.transient(), 200, 5000)
    assert RetryOn.transient() == RetryOn([429, 500, 502, 503, 504], True, True)
    assert TestRequest().run_route(Router) is None
    single = RoutePlan.single(Target("a")).label("rule", "x")
    assert single.strategy == Strategy.SINGLE and single.annotation("rule") == "x"


def test_budget_reads_preset_usage():
    report = UsageReport(cost_usd=4.5, reserved_cost_usd=0.5)
    req = TestRequest(team="eng").with_usage(Scope.TEAM, Period.DAY, report)
    d = req.run_budget(Budgeter, "{}", Target("anthropic"))
    assert d.limits[0] == BudgetLimit("team-daily", Scope.TEAM, Metric.COST, Period.DAY, 5.0, Window.CALENDAR, [80])
    assert d.downgrade == Target("anthropic", "claude-haiku-4-5") and d.annotation("budget") == "downgraded"
    assert req.usage_reads == 1
    # Another team's preset, or another window, is not this request's reading.
    other = TestRequest(team="ops").with_usage(Scope.TEAM, Period.DAY, report, value="eng")
    assert other.run_budget(Budgeter, "{}", Target("a")).downgrade is None
    rolling = TestRequest(team="eng").with_usage(Scope.TEAM, Period.DAY, report, Window.ROLLING)
    assert rolling.run_budget(Budgeter, "{}", Target("a")).downgrade is None
    assert report.settled(Metric.COST) == 4.0


def test_scopes_print_and_parse_like_the_rust_sdk():
    assert [str(s) for s in (Scope.TENANT, Scope.KEY, Scope.metadata("project"))] == ["tenant", "key", "metadata.project"]
    assert Scope.parse("metadata.project") == Scope.metadata("project") and Scope.parse("user") == Scope.USER
    with pytest.raises(ValueError):
        Scope.parse("metadata.")
    req = TestRequest(user="u", metadata=[("project", "apollo"), ("project", "b")])
    assert [req.request.scope_value(s) for s in (Scope.USER, Scope.KEY, Scope.metadata("project"))] == ["u", "key_test", "apollo"]


def test_guardrail_verdicts():
    convo = conversation([(Role.SYSTEM, "be brief"), (Role.USER, "é bluebird?")])
    assert (convo.parts[1].id, convo.parts[1].message, convo.parts[0].message) == (1, 0, None)
    v = TestRequest().run_inspect_request(Redactor, "{}", convo)
    assert v.rewrite.edits[0].start == 3 and v.rewrite.edits[0].end == 11  # UTF-8 bytes: é is two
    assert [(f.rule, f.count) for f in v.findings] == [("codename", 1)]
    assert TestRequest().run_inspect_request(Redactor, "{}", conversation([(Role.USER, "hi")])).is_allow
    d = TestRequest().run_inspect_response(Redactor, "{}", answer(["a sec", "ret"]))
    assert d.denial.message == "no secrets"
    rw = Rewrite()
    rw.found("email", "pii", 2)
    rw.found("email", "pii", 1)
    assert rw.verdict().is_flag and rw.verdict().findings[0].count == 3


def test_body_is_fetched_once_on_demand():
    class Body(Plugin):
        def policy(self, config, req):
            return Decision.allow_with([("model", req.body_json()["model"]), ("again", str(len(req.body())))])

    req = TestRequest(model="m")
    d = req.run(Body)
    assert d.labels[0] == Annotation("model", "m") and req.body_reads == 1
    assert TestRequest().run(Strict).is_allow and req.body_reads == 1  # counters belong to each request


def test_the_clock_takes_rfc3339_or_ms():
    class Clock(Plugin):
        def policy(self, config, req):
            return Decision.allow_with({"now": str(req.now_ms())})

    assert TestRequest(now="2026-12-07T10:00:00Z").run(Clock).annotation("now") == "1796637600000"
    assert TestRequest().at(5).run(Clock).annotation("now") == "5"
