"""Write Tollgate plugins in Python: subclass `Plugin`, then `Guest = export(MyPlugin)`.

The package is pure Python; `componentize-py` turns the plugin module into a
WebAssembly component targeting `tollgate:plugin@0.4.0`, and `tollgate_guest.testing`
runs the same code natively under pytest.
"""

from __future__ import annotations

import importlib.util

from .config import REQUIRED, ConfigError, Fields, string_at
from .plugin import Plugin, Request, glob_match
from .types import (
    Annotation,
    Answer,
    BudgetDecision,
    BudgetLimit,
    Conversation,
    Decision,
    Denial,
    Endpoint,
    Finding,
    Hook,
    LogLevel,
    Metric,
    Period,
    PluginInfo,
    RetryOn,
    Rewrite,
    Role,
    RoutePlan,
    Scope,
    Strategy,
    Target,
    TextEdit,
    TextPart,
    ToolCall,
    UsageReport,
    Verdict,
    Window,
    byte_offset,
)


def export(plugin: type[Plugin]) -> type | None:
    """The component's `Guest` export for `plugin`: write `Guest = export(MyPlugin)` in the app module.

    componentize-py looks up `Guest` there. Natively there are no WIT bindings, so this
    returns None and the module imports cleanly in tests (like Rust's `export_plugin!`,
    which expands to nothing off wasm).
    """
    if importlib.util.find_spec("wit_world") is None:
        return None
    from .component import adapter

    return adapter(plugin)


__all__ = [
    "REQUIRED",
    "Annotation",
    "Answer",
    "BudgetDecision",
    "BudgetLimit",
    "ConfigError",
    "Conversation",
    "Decision",
    "Denial",
    "Endpoint",
    "Fields",
    "Finding",
    "Hook",
    "LogLevel",
    "Metric",
    "Period",
    "Plugin",
    "PluginInfo",
    "Request",
    "RetryOn",
    "Rewrite",
    "Role",
    "RoutePlan",
    "Scope",
    "Strategy",
    "Target",
    "TextEdit",
    "TextPart",
    "ToolCall",
    "UsageReport",
    "Verdict",
    "Window",
    "byte_offset",
    "export",
    "glob_match",
    "string_at",
]
