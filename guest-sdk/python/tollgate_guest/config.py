"""Config reading that names the field path in every error, like the Rust SDK's serde errors.

The host refuses to start when a plugin rejects its config, and the operator only sees
the message: `config: teams.eng.hours: ...` points at the line to fix.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

REQUIRED: Any = object()
"""Default for fields that must be present."""


class ConfigError(ValueError):
    """A bad config value; `str()` is `path: message` (the SDK adds the `config: ` prefix)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def join(path: str, key: str | int) -> str:
    """`teams` + `eng` -> `teams.eng`; list items are `models[0]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe_value(value: Any) -> str:
    """A JSON value the way serde names it in `invalid type` errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    return "a sequence" if isinstance(value, list) else "a map"


def _one_of(names) -> str:
    quoted = [f"`{n}`" for n in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return "expected one of " + ", ".join(quoted)


def parse_json(text: str) -> Any:
    """Parses config JSON (empty text is `{}`), rejecting the NaN/Infinity Python would accept."""
    if not text.strip():
        return {}

    def constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_constant=constant)
    except ValueError as e:
        raise ConfigError("", f"not valid JSON: {e}") from None


class Fields:
    """One JSON object of a config being read; every accessor's error names its field.

    `known` lists the accepted keys: any other key is rejected as an unknown field, so a
    typo in the tenant's config is an error rather than silently ignored.
    """

    def __init__(self, data: Any, path: str = "", known: tuple[str, ...] | None = None):
        if not isinstance(data, dict):
            raise ConfigError(path, f"invalid type: {describe_value(data)}, expected an object")
        self.data = data
        self.path = path
        if known is not None:
            for key in data:
                if key not in known:
                    raise ConfigError(join(path, key), f"unknown field `{key}`, {_one_of(known)}")

    def error(self, key: str | int, message: str) -> ConfigError:
        """An error about field `key` of this object."""
        return ConfigError(join(self.path, key), message)

    def get(self, key: str, default: Any = REQUIRED) -> Any:
        """The raw value; an optional field that is absent or null gets `default` (serde's `Option`)."""
        value = self.data.get(key)
        if value is None and default is not REQUIRED:
            return default
        if key not in self.data:
            raise ConfigError(self.path, f"missing field `{key}`")
        return value

    def _typed(self, key: str, default: Any, ok, expected: str) -> Any:
        if self.data.get(key) is None and default is not REQUIRED:
            return default
        value = self.get(key)
        if not ok(value):
            raise self.error(key, f"invalid type: {describe_value(value)}, expected {expected}")
        return value

    def string(self, key: str, default: Any = REQUIRED, *, nonempty: bool = False) -> Any:
        value = self._typed(key, default, lambda v: isinstance(v, str), "a string")
        if nonempty and value == "":
            raise self.error(key, "must not be empty")
        return value

    def boolean(self, key: str, default: Any = REQUIRED) -> Any:
        return self._typed(key, default, lambda v: isinstance(v, bool), "a boolean")

    def integer(self, key: str, default: Any = REQUIRED) -> Any:
        def ok(v):
            return isinstance(v, int) and not isinstance(v, bool)

        return self._typed(key, default, ok, "an integer")

    def number(self, key: str, default: Any = REQUIRED) -> Any:
        """A finite JSON number, as a float."""

        def ok(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        value = self._typed(key, default, ok, "a finite number")
        return float(value) if ok(value) else value

    def array(self, key: str, default: Any = REQUIRED, *, nonempty: str | None = None) -> Any:
        """A list; `nonempty` is the error message when it is empty."""
        value = self._typed(key, default, lambda v: isinstance(v, list), "a sequence")
        if nonempty is not None and value == []:
            raise self.error(key, nonempty)
        return value

    def items(self, key: str, default: Any = REQUIRED, *, nonempty: str | None = None) -> Iterator[tuple[str, Any]]:
        """`(path, item)` for each item of a list, so item errors name `key[i]`."""
        value = self.array(key, default, nonempty=nonempty)
        base = join(self.path, key)
        return ((join(base, i), item) for i, item in enumerate(value or ()))

    def object(self, key: str, default: Any = REQUIRED, known: tuple[str, ...] | None = None) -> Any:
        """A nested object as `Fields` (or `default` when absent)."""
        if self.data.get(key) is None and default is not REQUIRED:
            return default
        return Fields(self.get(key), join(self.path, key), known)


def string_at(path: str, value: Any, *, nonempty: bool = False) -> str:
    """A list item or map value that must be a string."""
    if not isinstance(value, str):
        raise ConfigError(path, f"invalid type: {describe_value(value)}, expected a string")
    if nonempty and not value:
        raise ConfigError(path, "must not be empty")
    return value
