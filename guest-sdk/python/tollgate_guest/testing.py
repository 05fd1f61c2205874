"""Run a plugin's hooks in plain CPython, without wasm or a gateway.

`TestRequest` builds a request, plays the host (config, clock, body, log, usage
readings) and runs a hook through the same runners the component uses, so config
errors, defaults and skipped hooks behave as in the gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable

from . import plugin as sdk
from .config import ConfigError
from .plugin import Plugin, Request
from .types import (
    Answer,
    BudgetDecision,
    Conversation,
    Decision,
    Endpoint,
    Hook,
    LogLevel,
    Period,
    PluginInfo,
    Role,
    RoutePlan,
    Scope,
    Target,
    TextPart,
    UsageReport,
    Verdict,
    Window,
)

DEFAULT_NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday


class ConfigRejected(Exception):
    """`validate-config` would reject the config; `str()` is the host's message (`config: ...`)."""


@dataclass
class LogLine:
    level: LogLevel
    message: str


def describe(plugin: type[Plugin]) -> PluginInfo:
    """What `describe` reports to the host."""
    return sdk.describe(plugin)


def validate(plugin: type[Plugin], config: str | dict) -> str | None:
    """The `validate-config` answer: None when accepted, else the error (`config: <path>: ...`)."""
    try:
        sdk.validate_config(plugin, _json(config))
    except ConfigError as e:
        return f"config: {e}"
    return None


def _json(config: str | dict) -> str:
    return config if isinstance(config, str) else json.dumps(config)


def to_ms(when: str | int | datetime) -> int:
    """Epoch milliseconds from an RFC 3339 string (`2026-12-07T10:00:00Z`), a datetime or ms."""
    if isinstance(when, int):
        return when
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("give the time zone, e.g. 2026-12-07T10:00:00Z")
    return round(when.timestamp() * 1000)


class TestRequest:
    """A request to run hooks on. Defaults: tenant `test`, key `key_test`, no team, user or
    metadata, `claude-sonnet-4-5` on Messages, `max_tokens` 1024, the clock at
    2026-01-01T00:00:00Z and zero usage everywhere. Like the host, a `team`/`user`
    metadata entry also sets the team/user when none is given.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        model: str = "claude-sonnet-4-5",
        team: str | None = None,
        user: str | None = None,
        metadata: dict[str, str] | Iterable[tuple[str, str]] = (),
        tenant: str = "test",
        key_id: str = "key_test",
        key_name: str = "test",
        endpoint: Endpoint = Endpoint.MESSAGES,
        stream: bool = False,
        max_tokens: int | None = 1024,
        message_count: int = 1,
        request_id: str = "req_test",
        body: str | None = None,
        now: str | int | datetime = DEFAULT_NOW_MS,
    ):
        pairs = list(metadata.items() if isinstance(metadata, dict) else metadata)
        meta = dict(reversed(pairs))  # the first of a repeated key wins, as in `Request.meta`
        self.request = Request(
            request_id=request_id,
            trace_id=request_id,
            tenant=tenant,
            key_id=key_id,
            key_name=key_name,
            team=team if team is not None else meta.get("team"),
            user=user if user is not None else meta.get("user"),
            metadata=pairs,
            model=model,
            endpoint=endpoint,
            stream=stream,
            max_tokens=max_tokens,
            message_count=message_count,
        )
        self.body = body if body is not None else self._default_body()
        self.now_ms = to_ms(now)
        self._usage: list[tuple[Scope, str | None, Period, Window, UsageReport]] = []
        self.logs: list[LogLine] = []
        self.body_reads = 0
        self.usage_reads = 0

    def at(self, when: str | int | datetime) -> TestRequest:
        """Sets the host clock (`now-ms`)."""
        self.now_ms = to_ms(when)
        return self

    def with_usage(
        self,
        scope: Scope,
        period: Period,
        report: UsageReport,
        window: Window = Window.CALENDAR,
        *,
        value: str | None = None,
    ) -> TestRequest:
        """Presets what the host reports for `scope` (this request's value, or `value`); a later preset wins."""
        self._usage.append((scope, value, period, window, report))
        return self

    def _default_body(self) -> str:
        r = self.request
        body: dict[str, Any] = {"model": r.model, "messages": [{"role": "user", "content": "Hello"}]}
        if r.max_tokens is not None:
            body["max_tokens"] = r.max_tokens
        if r.stream:
            body["stream"] = True
        return json.dumps(body)

    def _start(self, plugin: type[Plugin], config: str | dict, hook: Hook) -> Request | None:
        """Checks the config like the host does first; None when the plugin lacks the hook.

        Every run starts as a fresh instance does: nothing cached from the last one.
        """
        self.logs, self.body_reads, self.usage_reads = [], 0, 0
        sdk.forget_config()
        text = _json(config)
        error = validate(plugin, text)
        if error is not None:
            raise ConfigRejected(error)
        if hook not in sdk.hooks_of(plugin):
            return None
        size = len(self.body.encode())
        return replace(
            self.request,
            body_bytes=size,
            prompt_tokens_estimate=size // 4,
            host=_TestHost(self, text),
        )

    def run(self, plugin: type[Plugin], config: str | dict = "{}") -> Decision:
        """The policy hook's decision (allow when the plugin has none); raises `ConfigRejected`."""
        req = self._start(plugin, config, Hook.POLICY)
        return Decision.allow() if req is None else sdk.run_policy(plugin, req)

    def run_route(self, plugin: type[Plugin], config: str | dict = "{}") -> RoutePlan | None:
        """The route hook's plan; a plan without targets raises, as the host would fail the request."""
        req = self._start(plugin, config, Hook.ROUTE)
        plan = None if req is None else sdk.run_route(plugin, req)
        if plan is not None and not plan.targets:
            raise AssertionError(f"plugin '{plugin.NAME}' returned a route plan without targets")
        return plan

    def run_budget(self, plugin: type[Plugin], config: str | dict, target: Target) -> BudgetDecision:
        """The budget hook's decision on `target`; a target without a model gets the requested one."""
        req = self._start(plugin, config, Hook.BUDGET)
        if req is None:
            return BudgetDecision.allow()
        if target.model is None:
            target = replace(target, model=req.model)
        return sdk.run_budget(plugin, req, target)

    def run_inspect_request(self, plugin: type[Plugin], config: str | dict, conversation: Conversation) -> Verdict:
        req = self._start(plugin, config, Hook.INSPECT_REQUEST)
        return Verdict.allow() if req is None else sdk.run_inspect_request(plugin, req, conversation)

    def run_inspect_response(self, plugin: type[Plugin], config: str | dict, answer: Answer) -> Verdict:
        req = self._start(plugin, config, Hook.INSPECT_RESPONSE)
        return Verdict.allow() if req is None else sdk.run_inspect_response(plugin, req, answer)

    def _report(self, scope: Scope, value: str | None, period: Period, window: Window) -> UsageReport:
        own = self.request.scope_value(scope)
        value = value if value is not None else own
        for s, v, p, w, report in reversed(self._usage):
            if value is not None and (s, p, w) == (scope, period, window) and (v if v is not None else own) == value:
                return replace(report, value=value)
        return UsageReport(value=value)


class _TestHost:
    """The host as played by a `TestRequest`."""

    def __init__(self, req: TestRequest, config: str):
        self.req = req
        self._config = config

    def log(self, level: LogLevel, message: str) -> None:
        self.req.logs.append(LogLine(level, message))

    def config(self) -> str:
        return self._config

    def now_ms(self) -> int:
        return self.req.now_ms

    def request_body(self) -> str:
        self.req.body_reads += 1
        return self.req.body

    def usage(self, scope: Scope, value: str | None, period: Period, window: Window) -> UsageReport:
        self.req.usage_reads += 1
        return self.req._report(scope, value, period, window)


def conversation(parts: Iterable[tuple[Role, str]]) -> Conversation:
    """Parts numbered as the host numbers them: each its own message, the system prompt none."""
    out, message = [], 0
    for i, (role, text) in enumerate(parts):
        msg = None
        if role != Role.SYSTEM:
            msg, message = message, message + 1
        out.append(TextPart(i, role, msg, text))
    return Conversation(out)


def answer(texts: Iterable[str]) -> Answer:
    """A whole, undelivered answer, one part per text."""
    return Answer([TextPart(i, Role.ASSISTANT, 0, t) for i, t in enumerate(texts)])
