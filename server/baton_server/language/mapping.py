"""Evaluating mappings at run time: `${...}` expressions resolved against an execution's
input, its finished steps' outputs and the execution itself. A missing path is an error."""

from __future__ import annotations

import functools
import json
from typing import Any

from baton_server.language.expressions import Expression, Path, Template, parse_template


class MappingError(ValueError):
    """An expression named something that is not there."""


_parse = functools.lru_cache(maxsize=8192)(parse_template)


def render(value: Any, scope: dict[str, Any]) -> Any:
    """Resolves every expression inside a JSON value; returns a new value."""
    if isinstance(value, str):
        return _render_string(value, scope)
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    return value


def _render_string(text: str, scope: dict[str, Any]) -> Any:
    if "${" not in text:
        return text
    template: Template = _parse(text)
    single = template.single
    if single is not None:
        return resolve(single, scope)
    parts = []
    for part in template.parts:
        if isinstance(part, Expression):
            found = resolve(part, scope)
            parts.append(found if isinstance(found, str) else json.dumps(found))
        else:
            parts.append(part)
    return "".join(parts)


def resolve(expression: Expression, scope: dict[str, Any]) -> Any:
    """The value at an expression's path."""
    return lookup(scope, expression.path, expression.source)


def lookup(scope: Any, path: Path, source: str) -> Any:
    """Follows `path` into `scope`; raises MappingError naming the first missing part."""
    current = scope
    walked: list[str] = []
    for part in path:
        if isinstance(part, int):
            if not isinstance(current, list) or part >= len(current):
                raise MappingError(
                    f"${{{source}}}: {'.'.join(walked) or 'value'} has no item [{part}]"
                )
            current = current[part]
            walked.append(f"[{part}]")
        else:
            if not isinstance(current, dict) or part not in current:
                where = ".".join(walked) or "the scope"
                raise MappingError(f"${{{source}}}: {where} has no key {part!r}")
            current = current[part]
            walked.append(part)
    return current
