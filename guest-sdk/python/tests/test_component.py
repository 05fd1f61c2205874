"""The component glue against real generated bindings, without building wasm.

`componentize-py bindings` writes the same `wit_world` package a build embeds; its host
functions are stubs here, replaced by fakes, so every conversion is exercised natively.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tollgate_guest import (
    BudgetDecision,
    BudgetLimit,
    Decision,
    Metric,
    Period,
    Plugin,
    RetryOn,
    Rewrite,
    RoutePlan,
    Scope,
    Target,
    Verdict,
    Window,
)

WIT = Path(__file__).resolve().parents[3] / "wit" / "plugin.wit"


def componentize_py():
    beside = Path(sys.executable).with_name("componentize-py")
    return str(beside) if beside.exists() else shutil.which("componentize-py")


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """(`tollgate_guest.component`, `wit_world.imports.types`, `wit_world.imports.host`), then unloaded."""
    tool = componentize_py()
    if tool is None:
        pytest.skip("componentize-py is not installed (make venv)")
    out = tmp_path_factory.mktemp("bindings")
    subprocess.run([tool, "-q", "-d", str(WIT), "-w", "plugin", "bindings", str(out / "b")], check=True)
    sys.path.insert(0, str(out / "b"))
    try:
        from componentize_py_types import Err
        from wit_world.imports import host, types

        import tollgate_guest.component as component

        yield component, types, host, Err
    finally:
        sys.path.remove(str(out / "b"))
        for name in list(sys.modules):
            if name.startswith(("wit_world", "componentize_py", "tollgate_guest.component")):
                del sys.modules[name]


class Everything(Plugin):
    NAME = "everything"
    VERSION = "1.2.3"

    def parse_config(self, data):
        if "bad" in data:
            from tollgate_guest import ConfigError

            raise ConfigError("bad", "not allowed")
        return data

    def policy(self, config, req):
        if req.stream:
            return Decision.forbid(f"no streams for {req.team}")
        req.log_warn("allowing")
        return Decision.allow_with({"endpoint": req.endpoint.value, "meta": req.meta("env") or "-"})

    def route(self, config, req):
        return RoutePlan.load_balance(
            [Target("a", weight=3), Target("b", "m", max_tokens_cap=10)],
            retry_on=RetryOn.on(529, connect_error=True),
            attempt_timeout_ms=1000,
        ).label("r", "1")

    def budget(self, config, req, target):
        used = req.usage(Scope.metadata("project"), Period.MONTH, Window.ROLLING)
        limit = BudgetLimit("p", Scope.metadata("project"), Metric.TOKENS, Period.MONTH, 100, Window.ROLLING, [50])
        return BudgetDecision.allow([limit], downgrade=Target(target.provider, "cheap"), labels={"used": str(used.tokens)})

    def inspect_request(self, config, req, conversation):
        rw = Rewrite()
        rw.replace(conversation.parts[0], 0, 2, "yo")
        rw.append("be kind")
        rw.found("greeting", "style")
        return rw.verdict()

    def inspect_response(self, config, req, answer):
        return Verdict.deny(502, "api_error", answer.text(), [])


@pytest.fixture
def guest(glue, monkeypatch):
    component, types, host, _ = glue
    logs, usage_calls = [], []
    monkeypatch.setattr(host, "config", lambda: '{"x": 1}')
    monkeypatch.setattr(host, "log", lambda level, msg: logs.append((level, msg)))
    monkeypatch.setattr(host, "now_ms", lambda: 0)

    def usage(scope, value, period, window):
        usage_calls.append((scope, value, period, window))
        return types.UsageReport("apollo", 1, 42, 0.5, 0, 0, 0.0, 0)

    monkeypatch.setattr(host, "usage", usage)
    return component.adapter(Everything)(), types, logs, usage_calls


def ctx(types, **changes):
    fields = dict(
        request_id="r", trace_id="r", tenant="t", key_id="k", key_name="k", team="eng", user=None,
        metadata=[("env", "prod"), ("project", "apollo")], model="m", endpoint=types.Endpoint.CHAT_COMPLETIONS,
        stream=False, max_tokens=None, body_bytes=0, prompt_tokens_estimate=0, message_count=1,
    )
    fields.update(changes)
    return types.RequestContext(**fields)


def test_describe_and_validate(glue, guest):
    _, _, _, Err = glue
    g, types, _, _ = guest
    assert g.describe() == types.PluginInfo(
        "everything",
        "1.2.3",
        [types.Hook.POLICY, types.Hook.ROUTE, types.Hook.BUDGET, types.Hook.INSPECT_REQUEST, types.Hook.INSPECT_RESPONSE],
        '{"type":"object"}',
    )
    assert g.validate_config("{}") is None
    with pytest.raises(Err) as e:
        g.validate_config('{"bad": 1}')
    assert e.value.value == "config: bad: not allowed"


def test_policy_converts_the_context_and_the_decision(guest):
    g, types, logs, _ = guest
    assert g.policy(ctx(types)) == types.Decision_AllowWith(
        [types.Annotation("endpoint", "chat-completions"), types.Annotation("meta", "prod")]
    )
    assert logs == [(types.LogLevel.WARN, "allowing")]
    assert g.policy(ctx(types, stream=True)) == types.Decision_Deny(
        types.Denial(403, "permission_error", "no streams for eng")
    )


def test_route_budget_and_verdicts_convert(guest):
    g, types, _, usage_calls = guest
    assert g.route(ctx(types)) == types.RoutePlan(
        strategy=types.Strategy.LOAD_BALANCE,
        targets=[types.RouteTarget("a", None, 3, None), types.RouteTarget("b", "m", 1, 10)],
        retry_on=types.RetryOn([529], False, True),
        retries=0,
        backoff_ms=200,
        max_backoff_ms=5000,
        attempt_timeout_ms=1000,
        labels=[types.Annotation("r", "1")],
    )
    d = g.budget(ctx(types), types.RouteTarget("anthropic", "m", 1, None))
    assert d == types.BudgetDecision_Allow(
        types.BudgetGrant(
            limits=[
                types.BudgetLimit(
                    "p", types.Scope_Metadata("project"), types.Metric.TOKENS, types.Period.MONTH,
                    types.Window.ROLLING, 100.0, [50],
                )
            ],
            downgrade=types.RouteTarget("anthropic", "cheap", 1, None),
            labels=[types.Annotation("used", "42")],
        )
    )
    assert usage_calls == [(types.Scope_Metadata("project"), None, types.Period.MONTH, types.Window.ROLLING)]
    convo = types.Conversation([types.TextPart(0, types.Role.USER, 0, "hi there")], [], 0)
    assert g.inspect_request(ctx(types), convo) == types.Verdict_Rewrite(
        types.Rewrite(
            [types.TextEdit(0, 0, 2, "yo")], "be kind", [types.Finding("greeting", "style", 1)]
        )
    )
    ans = types.Answer([types.TextPart(0, types.Role.ASSISTANT, 0, "oops")], [], "end_turn", 1, 2, False)
    assert g.inspect_response(ctx(types), ans) == types.Verdict_Deny(
        types.Refusal(types.Denial(502, "api_error", "oops"), [])
    )


def test_a_config_failing_at_call_time_is_a_500_not_a_crash(guest, glue, monkeypatch):
    _, _, host, _ = glue
    g, types, logs, _ = guest
    monkeypatch.setattr(host, "config", lambda: '{"bad": 1}')
    d = g.policy(ctx(types))
    assert isinstance(d, types.Decision_Deny) and d.value.status == 500
    assert logs[-1][0] == types.LogLevel.ERROR and "config: bad: not allowed" in logs[-1][1]
