"""Glue between a `Plugin` and the bindings componentize-py generates from `wit/plugin.wit`.

Only importable inside a componentize-py build (or next to bindings generated with
`componentize-py bindings`): it is the one place that knows the generated names, so
plugin code and its native tests only ever see `tollgate_guest`'s own types.
"""

from __future__ import annotations

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host as wit_host
from wit_world.imports import types as wit

from . import plugin as sdk
from .config import ConfigError
from .types import (
    Annotation,
    Answer,
    BudgetDecision,
    Conversation,
    Decision,
    Denial,
    Endpoint,
    Finding,
    LogLevel,
    Period,
    Role,
    RoutePlan,
    Scope,
    Target,
    TextPart,
    ToolCall,
    UsageReport,
    Verdict,
    Window,
)

_SCOPES = {
    "tenant": wit.Scope_Tenant,
    "team": wit.Scope_Team,
    "user": wit.Scope_User,
    "key": wit.Scope_Key,
}


def scope_to_wit(scope: Scope) -> wit.Scope:
    return wit.Scope_Metadata(scope.key) if scope.kind == "metadata" else _SCOPES[scope.kind]()


def annotations_to_wit(labels: list[Annotation]) -> list[wit.Annotation]:
    return [wit.Annotation(key=a.key, value=a.value) for a in labels]


def denial_to_wit(d: Denial) -> wit.Denial:
    return wit.Denial(status=d.status, error_type=d.error_type, message=d.message)


def target_to_wit(t: Target) -> wit.RouteTarget:
    return wit.RouteTarget(provider=t.provider, model=t.model, weight=t.weight, max_tokens_cap=t.max_tokens_cap)


def target_from_wit(t: wit.RouteTarget) -> Target:
    return Target(t.provider, t.model, t.weight, t.max_tokens_cap)


def decision_to_wit(d: Decision) -> wit.Decision:
    if d.denial is not None:
        return wit.Decision_Deny(denial_to_wit(d.denial))
    if d.labels:
        return wit.Decision_AllowWith(annotations_to_wit(d.labels))
    return wit.Decision_Allow()


def plan_to_wit(p: RoutePlan | None) -> wit.RoutePlan | None:
    if p is None:
        return None
    return wit.RoutePlan(
        strategy=wit.Strategy[p.strategy.name],
        targets=[target_to_wit(t) for t in p.targets],
        retry_on=wit.RetryOn(
            statuses=list(p.retry_on.statuses),
            timeout=p.retry_on.timeout,
            connect_error=p.retry_on.connect_error,
        ),
        retries=p.retries,
        backoff_ms=p.backoff_ms,
        max_backoff_ms=p.max_backoff_ms,
        attempt_timeout_ms=p.attempt_timeout_ms,
        labels=annotations_to_wit(p.labels),
    )


def budget_to_wit(d: BudgetDecision) -> wit.BudgetDecision:
    if d.denial is not None:
        return wit.BudgetDecision_Deny(denial_to_wit(d.denial))
    limits = [
        wit.BudgetLimit(
            name=l.name,
            scope=scope_to_wit(l.scope),
            metric=wit.Metric[l.metric.name],
            period=wit.Period[l.period.name],
            window=wit.Window[l.window.name],
            limit=float(l.limit),
            alert_at=list(l.alert_at),
        )
        for l in d.limits
    ]
    downgrade = None if d.downgrade is None else target_to_wit(d.downgrade)
    return wit.BudgetDecision_Allow(
        wit.BudgetGrant(limits=limits, downgrade=downgrade, labels=annotations_to_wit(d.labels))
    )


def findings_to_wit(findings: list[Finding]) -> list[wit.Finding]:
    return [wit.Finding(rule=f.rule, kind=f.kind, count=f.count) for f in findings]


def verdict_to_wit(v: Verdict) -> wit.Verdict:
    if v.denial is not None:
        return wit.Verdict_Deny(wit.Refusal(denial=denial_to_wit(v.denial), findings=findings_to_wit(v.findings)))
    if v.rewrite is not None:
        r = v.rewrite
        edits = [wit.TextEdit(part=e.part, start=e.start, end=e.end, replacement=e.replacement) for e in r.edits]
        return wit.Verdict_Rewrite(
            wit.Rewrite(edits=edits, append_system=r.append_system, findings=findings_to_wit(r.findings))
        )
    if v.findings:
        return wit.Verdict_Flag(findings_to_wit(v.findings))
    return wit.Verdict_Allow()


def parts_from_wit(parts: list[wit.TextPart]) -> list[TextPart]:
    return [TextPart(p.id, Role[p.role.name], p.message, p.text) for p in parts]


def calls_from_wit(calls: list[wit.ToolCall]) -> list[ToolCall]:
    return [ToolCall(c.name, c.arguments) for c in calls]


class WitHost:
    """The real host, through the component's `tollgate:plugin/host` imports."""

    def log(self, level: LogLevel, message: str) -> None:
        wit_host.log(wit.LogLevel[level.name], message)

    def config(self) -> str:
        return wit_host.config()

    def now_ms(self) -> int:
        return wit_host.now_ms()

    def request_body(self) -> str:
        return wit_host.request_body()

    def usage(self, scope: Scope, value: str | None, period: Period, window: Window) -> UsageReport:
        r = wit_host.usage(scope_to_wit(scope), value, wit.Period[period.name], wit.Window[window.name])
        return UsageReport(
            r.value,
            r.requests,
            r.tokens,
            r.cost_usd,
            r.reserved_requests,
            r.reserved_tokens,
            r.reserved_cost_usd,
            r.resets_at_ms,
        )


HOST = WitHost()


def request_from_wit(ctx: wit.RequestContext) -> sdk.Request:
    return sdk.Request(
        request_id=ctx.request_id,
        trace_id=ctx.trace_id,
        tenant=ctx.tenant,
        key_id=ctx.key_id,
        key_name=ctx.key_name,
        team=ctx.team,
        user=ctx.user,
        metadata=[tuple(kv) for kv in ctx.metadata],
        model=ctx.model,
        endpoint=Endpoint[ctx.endpoint.name],
        stream=ctx.stream,  # WIT `%stream`: the escape is dropped in the bindings
        max_tokens=ctx.max_tokens,
        body_bytes=ctx.body_bytes,
        prompt_tokens_estimate=ctx.prompt_tokens_estimate,
        message_count=ctx.message_count,
        host=HOST,
    )


def adapter(plugin: type[sdk.Plugin]) -> type:
    """The generated `Guest` protocol implemented for `plugin`."""

    class Guest(exports.Guest):
        def describe(self) -> wit.PluginInfo:
            info = sdk.describe(plugin)
            return wit.PluginInfo(
                name=info.name,
                version=info.version,
                hooks=[wit.Hook[h.name] for h in info.hooks],
                config_schema=info.config_schema,
            )

        def validate_config(self, config: str) -> None:
            try:
                sdk.validate_config(plugin, config)
            except ConfigError as e:
                raise Err(f"config: {e}") from None

        def policy(self, ctx: wit.RequestContext) -> wit.Decision:
            return decision_to_wit(sdk.run_policy(plugin, request_from_wit(ctx)))

        def route(self, ctx: wit.RequestContext) -> wit.RoutePlan | None:
            return plan_to_wit(sdk.run_route(plugin, request_from_wit(ctx)))

        def budget(self, ctx: wit.RequestContext, target: wit.RouteTarget) -> wit.BudgetDecision:
            return budget_to_wit(sdk.run_budget(plugin, request_from_wit(ctx), target_from_wit(target)))

        def inspect_request(self, ctx: wit.RequestContext, conversation: wit.Conversation) -> wit.Verdict:
            convo = Conversation(
                parts_from_wit(conversation.parts),
                calls_from_wit(conversation.tool_calls),
                conversation.other_parts,
            )
            return verdict_to_wit(sdk.run_inspect_request(plugin, request_from_wit(ctx), convo))

        def inspect_response(self, ctx: wit.RequestContext, answer: wit.Answer) -> wit.Verdict:
            a = Answer(
                parts_from_wit(answer.parts),
                calls_from_wit(answer.tool_calls),
                answer.stop_reason,
                answer.input_tokens,
                answer.output_tokens,
                answer.delivered,
            )
            return verdict_to_wit(sdk.run_inspect_response(plugin, request_from_wit(ctx), a))

    Guest.__qualname__ = f"Guest[{plugin.__name__}]"
    return Guest
