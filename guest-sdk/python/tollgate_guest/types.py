"""The contract's records as plain dataclasses, with the Rust SDK's constructors.

They mirror `wit/plugin.wit` field for field, so what a hook returns is what the host
receives; the glue (`tollgate_guest.component`) converts them to and from the
generated bindings, which plugin code never sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar


class Endpoint(Enum):
    """Which API the caller spoke."""

    MESSAGES = "messages"
    COUNT_TOKENS = "count-tokens"
    CHAT_COMPLETIONS = "chat-completions"


class Hook(Enum):
    """Hooks a plugin may implement, in the order `describe` lists them."""

    POLICY = "policy"
    ROUTE = "route"
    BUDGET = "budget"
    INSPECT_REQUEST = "inspect-request"
    INSPECT_RESPONSE = "inspect-response"


class Strategy(Enum):
    """How the host walks a route plan's targets."""

    SINGLE = "single"
    FALLBACK = "fallback"
    LOAD_BALANCE = "load-balance"


class Metric(Enum):
    """What a budget limit counts."""

    COST = "cost"
    TOKENS = "tokens"
    REQUESTS = "requests"


class Period(Enum):
    """The length of a usage window."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


class Window(Enum):
    """Calendar windows reset at each UTC boundary; rolling ones slide."""

    CALENDAR = "calendar"
    ROLLING = "rolling"


class LogLevel(Enum):
    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class Role(Enum):
    """Who wrote a piece of text."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True)
class Annotation:
    """A label recorded in the request log next to the plugin's decision."""

    key: str
    value: str


def _labels(labels) -> list[Annotation]:
    """Accepts annotations, `(key, value)` pairs or a dict, like the Rust SDK's `Into<Annotation>`."""
    if isinstance(labels, dict):
        labels = labels.items()
    return [a if isinstance(a, Annotation) else Annotation(*a) for a in labels]


def _find(labels: list[Annotation], key: str) -> str | None:
    return next((a.value for a in labels if a.key == key), None)


@dataclass(frozen=True)
class Denial:
    """Why a request is refused: status 400..=599 (the host clamps others to 403)."""

    status: int
    error_type: str
    message: str


class _Outcome:
    """What the policy and budget outcomes share: allowed unless they carry a denial."""

    denial: Denial | None
    labels: list[Annotation]

    @classmethod
    def deny(cls, status: int, error_type: str, message: str):
        return cls(denial=Denial(status, error_type, message))

    @property
    def is_allow(self) -> bool:
        return self.denial is None

    @property
    def is_deny(self) -> bool:
        return self.denial is not None

    def annotation(self, key: str) -> str | None:
        return _find(self.labels, key)


@dataclass
class Decision(_Outcome):
    """The policy hook's outcome: allow (with labels) or deny."""

    denial: Denial | None = None
    labels: list[Annotation] = field(default_factory=list)

    @classmethod
    def allow(cls) -> Decision:
        return cls()

    @classmethod
    def allow_with(cls, labels) -> Decision:
        """Allows, recording labels (`Annotation`s, `(key, value)` pairs or a dict) in the log row."""
        return cls(labels=_labels(labels))

    @classmethod
    def forbid(cls, message: str) -> Decision:
        """`403 permission_error`: the caller may not do this."""
        return cls.deny(403, "permission_error", message)

    @classmethod
    def invalid(cls, message: str) -> Decision:
        """`400 invalid_request_error`: the request itself is wrong."""
        return cls.deny(400, "invalid_request_error", message)


@dataclass
class Target:
    """One place a request may be served (the WIT `route-target`); no model keeps the requested one."""

    provider: str
    model: str | None = None
    weight: int = 1
    max_tokens_cap: int | None = None


TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class RetryOn:
    """Upstream outcomes that end an attempt and move on (retry, then the next target)."""

    statuses: list[int] = field(default_factory=list)
    timeout: bool = False
    connect_error: bool = False

    @classmethod
    def on(cls, *statuses: int, timeout: bool = False, connect_error: bool = False) -> RetryOn:
        return cls(list(statuses), timeout, connect_error)

    @classmethod
    def transient(cls) -> RetryOn:
        """429/500/502/503/504, timeouts and connection errors: the default."""
        return cls.on(*TRANSIENT_STATUSES, timeout=True, connect_error=True)

    @classmethod
    def never(cls) -> RetryOn:
        """The first answer is final."""
        return cls()


DEFAULT_BACKOFF_MS = 200
DEFAULT_MAX_BACKOFF_MS = 5000


@dataclass
class RoutePlan:
    """Where and how to serve a request; build with `single`, `fallback` or `load_balance`."""

    strategy: Strategy
    targets: list[Target]
    retry_on: RetryOn = field(default_factory=RetryOn.transient)
    retries: int = 0
    backoff_ms: int = DEFAULT_BACKOFF_MS
    max_backoff_ms: int = DEFAULT_MAX_BACKOFF_MS
    attempt_timeout_ms: int | None = None
    labels: list[Annotation] = field(default_factory=list)

    @classmethod
    def single(cls, target: Target, **options) -> RoutePlan:
        """Only `target`, with its retries; `options` set the other fields."""
        return cls(Strategy.SINGLE, [target], **options)

    @classmethod
    def fallback(cls, targets, **options) -> RoutePlan:
        """Each target in order until one succeeds."""
        return cls(Strategy.FALLBACK, list(targets), **options)

    @classmethod
    def load_balance(cls, targets, **options) -> RoutePlan:
        """One target picked by weight; the others follow as fallbacks."""
        return cls(Strategy.LOAD_BALANCE, list(targets), **options)

    def label(self, key: str, value: str) -> RoutePlan:
        self.labels.append(Annotation(key, value))
        return self

    def annotation(self, key: str) -> str | None:
        return _find(self.labels, key)


@dataclass(frozen=True)
class Scope:
    """Whose usage is counted: `Scope.TENANT`, `TEAM`, `USER`, `KEY` or `Scope.metadata(key)`."""

    kind: str
    key: str | None = None

    TENANT: ClassVar[Scope]
    TEAM: ClassVar[Scope]
    USER: ClassVar[Scope]
    KEY: ClassVar[Scope]

    @classmethod
    def metadata(cls, key: str) -> Scope:
        return cls("metadata", key)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`tenant`, `team`, `user`, `key` or `metadata.<key>`, as the Rust SDK prints them."""
        if text in ("tenant", "team", "user", "key"):
            return cls(text)
        if text.startswith("metadata.") and len(text) > len("metadata."):
            return cls.metadata(text[len("metadata.") :])
        raise ValueError(f"unknown scope '{text}', expected tenant, team, user, key or metadata.<key>")

    def __str__(self) -> str:
        return f"metadata.{self.key}" if self.kind == "metadata" else self.kind


Scope.TENANT = Scope("tenant")
Scope.TEAM = Scope("team")
Scope.USER = Scope("user")
Scope.KEY = Scope("key")


@dataclass
class UsageReport:
    """One scope's usage in one window; counts include running requests' reservations."""

    value: str | None = None
    requests: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    reserved_requests: int = 0
    reserved_tokens: int = 0
    reserved_cost_usd: float = 0.0
    resets_at_ms: int = 0

    def current(self, metric: Metric) -> float:
        """Settled plus reserved: what the host compares with a limit."""
        return {Metric.COST: self.cost_usd, Metric.TOKENS: self.tokens, Metric.REQUESTS: self.requests}[metric]

    def reserved(self, metric: Metric) -> float:
        return {
            Metric.COST: self.reserved_cost_usd,
            Metric.TOKENS: self.reserved_tokens,
            Metric.REQUESTS: self.reserved_requests,
        }[metric]

    def settled(self, metric: Metric) -> float:
        return max(self.current(metric) - self.reserved(metric), 0.0)


@dataclass
class BudgetLimit:
    """A cap the host enforces atomically: admitted only while the scope's usage is below `limit`."""

    name: str
    scope: Scope
    metric: Metric
    period: Period
    limit: float
    window: Window = Window.CALENDAR
    alert_at: list[int] = field(default_factory=list)


@dataclass
class BudgetDecision(_Outcome):
    """The budget hook's outcome: allow with limits (and a downgrade), or deny."""

    denial: Denial | None = None
    limits: list[BudgetLimit] = field(default_factory=list)
    downgrade: Target | None = None
    labels: list[Annotation] = field(default_factory=list)

    @classmethod
    def allow(cls, limits=(), *, downgrade: Target | None = None, labels=()) -> BudgetDecision:
        return cls(limits=list(limits), downgrade=downgrade, labels=_labels(labels))

    @classmethod
    def rate_limited(cls, message: str) -> BudgetDecision:
        return cls.deny(429, "rate_limit_error", message)

    @classmethod
    def over_budget(cls, message: str) -> BudgetDecision:
        """What the host itself sends for an exhausted limit."""
        return cls.deny(429, "budget_exceeded_error", message)

    def limit(self, limit: BudgetLimit) -> BudgetDecision:
        self.limits.append(limit)
        return self

    def downgrade_to(self, target: Target) -> BudgetDecision:
        self.downgrade = target
        return self

    def label(self, key: str, value: str) -> BudgetDecision:
        self.labels.append(Annotation(key, value))
        return self


@dataclass
class TextPart:
    """One piece of text; edits name it by `id`."""

    id: int
    role: Role
    message: int | None
    text: str


@dataclass
class ToolCall:
    name: str
    arguments: str


@dataclass
class Conversation:
    """What a request sends to the model, the same for both APIs."""

    parts: list[TextPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    other_parts: int = 0

    def parts_of(self, role: Role) -> list[TextPart]:
        return [p for p in self.parts if p.role == role]


@dataclass
class Answer:
    """The model's answer; `delivered` means a denial or edit is only recorded."""

    parts: list[TextPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    delivered: bool = False

    def text(self) -> str:
        return "".join(p.text for p in self.parts)


@dataclass
class Finding:
    """What a guardrail found, for the log: never the matched text."""

    rule: str
    kind: str
    count: int = 1


@dataclass
class TextEdit:
    """Replace bytes `start..end` (UTF-8 offsets) of part `part`'s text."""

    part: int
    start: int
    end: int
    replacement: str


@dataclass
class Rewrite:
    """Collects edits and findings while scanning, then `verdict()` picks rewrite, flag or allow."""

    edits: list[TextEdit] = field(default_factory=list)
    append_system: str | None = None
    findings: list[Finding] = field(default_factory=list)

    def replace(self, part: TextPart, start: int, end: int, replacement: str) -> None:
        """`start`/`end` are UTF-8 byte offsets, as the host counts them (see `byte_offset`)."""
        self.edits.append(TextEdit(part.id, start, end, replacement))

    def append(self, text: str) -> None:
        """Adds `text` at the end of the system prompt (requests only)."""
        self.append_system = text if self.append_system is None else f"{self.append_system}\n\n{text}"

    def found(self, rule: str, kind: str, count: int = 1) -> None:
        """Counts findings of the same rule and kind together."""
        if count <= 0:
            return
        for f in self.findings:
            if f.rule == rule and f.kind == kind:
                f.count += count
                return
        self.findings.append(Finding(rule, kind, count))

    def verdict(self) -> Verdict:
        if self.edits or self.append_system is not None:
            return Verdict(findings=self.findings, rewrite=self)
        return Verdict(findings=list(self.findings))


def byte_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of character `index`: Python slices by character, the host by byte."""
    return len(text[:index].encode())


@dataclass
class Verdict:
    """A guardrail hook's outcome: allow, flag (findings only), deny or rewrite."""

    denial: Denial | None = None
    findings: list[Finding] = field(default_factory=list)
    rewrite: Rewrite | None = None

    @classmethod
    def allow(cls) -> Verdict:
        return cls()

    @classmethod
    def flag(cls, findings) -> Verdict:
        return cls(findings=list(findings))

    @classmethod
    def deny(cls, status: int, error_type: str, message: str, findings=()) -> Verdict:
        return cls(denial=Denial(status, error_type, message), findings=list(findings))

    @property
    def is_flag(self) -> bool:
        return self.denial is None and self.rewrite is None and bool(self.findings)

    @property
    def is_allow(self) -> bool:
        return self.denial is None and self.rewrite is None and not self.findings


@dataclass
class PluginInfo:
    """What `describe` reports."""

    name: str
    version: str
    hooks: list[Hook]
    config_schema: str
