"""Reading typed fields out of a JSON body: a wrong type is a 422 that names the field."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from chronos.errors import RequestRefused

__all__ = ["choice", "field", "optional_mapping", "string_list"]

_T = TypeVar("_T")

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object",
               list: "an array"}


def field(body: Mapping[str, Any], name: str, kind: type[_T], default: _T) -> _T:
    """`body[name]` if it is a `kind` (a missing or null field gives `default`)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RequestRefused(422, f"field {name!r} must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value


def optional_mapping(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An object field, `{}` when absent."""
    return dict(field(body, name, dict, {}))


def choice(body: Mapping[str, Any], name: str, allowed: Collection[str], default: str) -> str:
    """A string field that must be one of `allowed`."""
    value = field(body, name, str, default)
    if value not in allowed:
        raise RequestRefused(422, f"field {name!r} must be one of {sorted(allowed)}, not {value!r}")
    return value


def string_list(body: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A string or an array of strings, as a tuple (empty when absent)."""
    value = body.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RequestRefused(422, f"field {name!r} must be a string or an array of strings")
