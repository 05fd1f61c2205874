"""`Plugin`, `Request` and the hook runners shared by the component glue and `testing`.

Sharing the runners means a native test exercises exactly the config handling and
defaults the component uses; only the host behind `Request` differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import ConfigError, parse_json
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
    RoutePlan,
    Scope,
    Target,
    UsageReport,
    Verdict,
    Window,
)


class Host(Protocol):
    """What a hook may ask of the host during one call (the WIT `host` interface)."""

    def log(self, level: LogLevel, message: str) -> None: ...
    def config(self) -> str: ...
    def now_ms(self) -> int: ...
    def request_body(self) -> str: ...
    def usage(self, scope: Scope, value: str | None, period: Period, window: Window) -> UsageReport: ...


def glob_match(pattern: str, text: str) -> bool:
    """`*` matches any run of characters (including none), `?` one character; the Rust SDK's glob."""
    pi = ti = 0
    star: tuple[int, int] | None = None  # last `*` and the text index it extends to
    while ti < len(text):
        if pi < len(pattern) and pattern[pi] == "*":
            star = (pi, ti)
            pi += 1
        elif pi < len(pattern) and pattern[pi] in ("?", text[ti]):
            pi += 1
            ti += 1
        elif star is not None:
            pi, ti = star[0] + 1, star[1] + 1
            star = (star[0], ti)
        else:
            return False
    return all(c == "*" for c in pattern[pi:])


@dataclass
class Request:
    """The request a hook decides on: the context fields, plus the body and usage on demand."""

    request_id: str = "req_test"
    trace_id: str = "req_test"
    tenant: str = "test"
    key_id: str = "key_test"
    key_name: str = "test"
    team: str | None = None
    user: str | None = None
    metadata: list[tuple[str, str]] = field(default_factory=list)
    model: str = "claude-sonnet-4-5"
    endpoint: Endpoint = Endpoint.MESSAGES
    stream: bool = False
    max_tokens: int | None = None
    body_bytes: int = 0
    prompt_tokens_estimate: int = 0
    message_count: int = 0
    host: Host | None = field(default=None, repr=False, compare=False)
    _body: str | None = field(default=None, repr=False, compare=False)

    def meta(self, key: str) -> str | None:
        """An `x-portkey-metadata` value (case-sensitive; the first if repeated)."""
        return next((v for k, v in self.metadata if k == key), None)

    def has_meta(self, key: str) -> bool:
        return self.meta(key) is not None

    def scope_value(self, scope: Scope) -> str | None:
        """This request's value of `scope`, the one its usage is counted under."""
        if scope.kind == "metadata":
            return self.meta(scope.key or "")
        return {"tenant": self.tenant, "team": self.team, "user": self.user, "key": self.key_id}[scope.kind]

    def usage(self, scope: Scope, period: Period, window: Window = Window.CALENDAR) -> UsageReport:
        """This request's usage of `scope` (a host call per use; includes reservations)."""
        return self.host.usage(scope, None, period, window)

    def usage_of(self, scope: Scope, value: str, period: Period, window: Window = Window.CALENDAR) -> UsageReport:
        """Usage of another value of `scope`, within this request's tenant."""
        return self.host.usage(scope, value, period, window)

    def body(self) -> str:
        """The raw JSON body, copied in from the host on first use: prefer the context fields."""
        if self._body is None:
            self._body = self.host.request_body()
        return self._body

    def body_json(self) -> Any:
        return json.loads(self.body())

    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch, from the host."""
        return self.host.now_ms()

    def log(self, level: LogLevel, message: str) -> None:
        """Writes to the gateway log (stdout and stderr go nowhere in the sandbox)."""
        self.host.log(level, message)

    def log_debug(self, message: str) -> None:
        self.log(LogLevel.DEBUG, message)

    def log_info(self, message: str) -> None:
        self.log(LogLevel.INFO, message)

    def log_warn(self, message: str) -> None:
        self.log(LogLevel.WARN, message)

    def log_error(self, message: str) -> None:
        self.log(LogLevel.ERROR, message)


class Plugin:
    """Base class of a Tollgate plugin: override the hooks you need, every one has a default.

    The host only calls the hooks `describe` lists. Unless `HOOKS` is set, that list is
    the hooks the subclass overrides, so an implemented hook is never skipped and a
    default one never costs a call. The host makes a fresh instance per call: keep no state.
    """

    NAME: str = ""
    VERSION: str = "0.0.0"
    HOOKS: tuple[Hook, ...] | None = None
    CONFIG_SCHEMA: str = '{"type":"object"}'

    def parse_config(self, data: Any) -> Any:
        """Turns the config JSON (`{}` when none was given) into what the hooks receive.

        Raise `ConfigError(path, message)` to reject it; `Fields` names paths for you.
        The default accepts any object and passes it on as a dict.
        """
        if not isinstance(data, dict):
            raise ConfigError("", "invalid type: expected an object")
        return data

    def validate(self, config: Any) -> None:
        """Checks beyond parsing (cross-field rules); raise `ConfigError` naming the field."""

    def policy(self, config: Any, req: Request) -> Decision:
        """Allow or deny before routing. Default: allow."""
        return Decision.allow()

    def route(self, config: Any, req: Request) -> RoutePlan | None:
        """Where to serve an allowed request; None leaves it to later plugins. Default: None."""
        return None

    def budget(self, config: Any, req: Request, target: Target) -> BudgetDecision:
        """The limits the request is held to, given its first target (model resolved). Default: none."""
        return BudgetDecision.allow()

    def inspect_request(self, config: Any, req: Request, conversation: Conversation) -> Verdict:
        """Check, flag or rewrite what the request sends. Default: allow."""
        return Verdict.allow()

    def inspect_response(self, config: Any, req: Request, answer: Answer) -> Verdict:
        """Check, flag or rewrite the model's answer. Default: allow."""
        return Verdict.allow()


_HOOK_METHODS = {
    Hook.POLICY: "policy",
    Hook.ROUTE: "route",
    Hook.BUDGET: "budget",
    Hook.INSPECT_REQUEST: "inspect_request",
    Hook.INSPECT_RESPONSE: "inspect_response",
}


def hooks_of(plugin: type[Plugin]) -> list[Hook]:
    """`HOOKS` if set, else the hook methods `plugin` overrides, in WIT order."""
    if plugin.HOOKS is not None:
        return list(plugin.HOOKS)
    return [h for h, m in _HOOK_METHODS.items() if getattr(plugin, m) is not getattr(Plugin, m)]


def describe(plugin: type[Plugin]) -> PluginInfo:
    return PluginInfo(plugin.NAME, plugin.VERSION, hooks_of(plugin), plugin.CONFIG_SCHEMA)


def validate_config(plugin: type[Plugin], text: str) -> Any:
    """`validate-config`: parse, then `validate`; raises `ConfigError` (message without the prefix)."""
    instance = plugin()
    config = instance.parse_config(parse_json(text))
    instance.validate(config)
    return config


# The last config that parsed, by plugin and JSON: a fresh instance starts empty, a warm
# one (`reuse_instance`) is handed the same JSON every call and parses it once.
_cache: tuple[type, str, Any] | None = None


def forget_config() -> None:
    """Forgets the cached config, as a fresh instance starts (the test harness runs so)."""
    global _cache
    _cache = None


class Misconfigured(Exception):
    """The config failed at request time (the host normally rejects it at startup)."""


def hook_config(plugin: type[Plugin], host: Host) -> Any:
    """The checked config for a hook call; on failure logs the detail and raises `Misconfigured`."""
    global _cache
    text = host.config()
    if _cache is not None and _cache[0] is plugin and _cache[1] == text:
        return _cache[2]
    try:
        config = validate_config(plugin, text)
    except ConfigError as e:
        host.log(LogLevel.ERROR, f"plugin '{plugin.NAME}' rejected its config: config: {e}")
        raise Misconfigured(f"plugin '{plugin.NAME}' is misconfigured") from None
    _cache = (plugin, text, config)
    return config


def _misconfigured(plugin: type[Plugin]) -> str:
    return f"plugin '{plugin.NAME}' is misconfigured; contact the gateway administrator"


def _refusing(plugin: type[Plugin], req: Request, outcome, hook):
    """`hook(instance, config)`, or a `500 api_error` denial of type `outcome` when the
    config fails at request time (the detail goes to the log): an unchecked policy,
    budget or guardrail must not let the request through."""
    try:
        config = hook_config(plugin, req.host)
    except Misconfigured:
        return outcome.deny(500, "api_error", _misconfigured(plugin))
    return hook(plugin(), config)


def run_policy(plugin: type[Plugin], req: Request) -> Decision:
    return _refusing(plugin, req, Decision, lambda p, c: p.policy(c, req))


def run_route(plugin: type[Plugin], req: Request) -> RoutePlan | None:
    """A config failing at request time raises (a trap), so the request never silently
    falls through to the default provider."""
    return plugin().route(hook_config(plugin, req.host), req)


def run_budget(plugin: type[Plugin], req: Request, target: Target) -> BudgetDecision:
    return _refusing(plugin, req, BudgetDecision, lambda p, c: p.budget(c, req, target))


def run_inspect_request(plugin: type[Plugin], req: Request, conversation: Conversation) -> Verdict:
    return _refusing(plugin, req, Verdict, lambda p, c: p.inspect_request(c, req, conversation))


def run_inspect_response(plugin: type[Plugin], req: Request, answer: Answer) -> Verdict:
    return _refusing(plugin, req, Verdict, lambda p, c: p.inspect_response(c, req, answer))
