"""Workflow input schemas (JSON Schema): checked when a workflow is written, applied to the
input of every execution, within bounds.

- Patterns (`pattern`, `patternProperties`) run on RE2, which never backtracks; a pattern
  RE2 cannot run (lookaround, backreferences) is refused when the workflow is written.
- `$ref` may point only inside the schema (`#...`): nothing is ever fetched, so a schema
  can read neither the server's files nor its network.
- `uniqueItems` is checked in O(n log n), not jsonschema's O(n²) for objects.
- Applying a schema has a time budget: a schema that would take longer (for example
  references that fan out exponentially) rejects the input instead of stalling.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import orjson
import re2
import referencing
import referencing.exceptions

from baton_server.limits import MAX_SCHEMA_PATTERN_CHARS, shorten

MAX_SCHEMA_SECONDS = 2.0
"""Time budget for applying an input schema to one input."""
MAX_PROBLEMS = 5

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 8 << 20
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("schema_deadline")

Keyword = Callable[[Any, Any, Any, dict[str, Any]], Iterator[jsonschema.ValidationError]]


class SchemaBudgetExceededError(Exception):
    """Applying the schema took longer than its budget."""


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def schema_violations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(path inside the schema, problem) for every reason the schema cannot be used."""
    found: list[tuple[str, str]] = []
    for path, key, value in _walk(schema, ""):
        if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
            found.append((path, "only references inside the schema (#/...) are allowed"))
        elif key == "pattern" and isinstance(value, str):
            found += _pattern_problems(path, value)
        elif key == "patternProperties" and isinstance(value, dict):
            for pattern in value:
                found += _pattern_problems(f"{path}[{shorten(pattern, 40)!r}]", pattern)
    if found:
        return found
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        found.append(("", f"is not a valid JSON Schema: {shorten(exc.message, 300)}"))
    except RecursionError:
        found.append(("", "is nested too deeply"))
    return found


def _pattern_problems(path: str, pattern: str) -> list[tuple[str, str]]:
    if len(pattern) > MAX_SCHEMA_PATTERN_CHARS:
        return [(path, f"is {len(pattern)} characters long; at most {MAX_SCHEMA_PATTERN_CHARS}")]
    try:
        _regex(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return [(path, f"is not a pattern RE2 can run ({shorten(str(detail), 120)})")]
    return []


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Yields (path, key, value) for every key of every object in the schema."""
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}"
            yield inner, key, item
            yield from _walk(item, inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{shorten(instance)!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = _regex(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _unique_items(validator: Any, unique: bool, instance: Any, schema: dict[str, Any]) -> Any:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[bytes] = set()
    for item in instance:
        # Payloads hold whole numbers as int, so 1 and 1.0 are already one value.
        canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        if canonical in seen:
            yield jsonschema.ValidationError("has non-unique elements")
            return
        seen.add(canonical)


def _budgeted(keyword: Keyword) -> Keyword:
    def run(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
        if time.monotonic() > _deadline.get():
            raise SchemaBudgetExceededError
        yield from keyword(validator, value, instance, schema)

    return run


def _no_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


class InputSchema:
    """A workflow's input schema, ready to apply."""

    def __init__(self, schema: dict[str, Any]) -> None:
        base = jsonschema.validators.validator_for(schema)
        keywords = dict(base.VALIDATORS)
        keywords.update(
            pattern=_pattern, patternProperties=_pattern_properties, uniqueItems=_unique_items
        )
        cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
            base, {name: _budgeted(keyword) for name, keyword in keywords.items()}
        )
        registry: referencing.Registry[Any] = referencing.Registry(
            retrieve=_no_retrieval  # type: ignore[call-arg]
        )
        self._validator = cls(schema, registry=registry)

    def problems(self, value: dict[str, Any]) -> list[str]:
        """Where `value` does not satisfy the schema ([] when it does); blocking: run it in
        a thread."""
        token = _deadline.set(time.monotonic() + MAX_SCHEMA_SECONDS)
        try:
            errors = itertools.islice(self._validator.iter_errors(value), MAX_PROBLEMS)
            return [
                f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {shorten(e.message, 200)}"
                for e in errors
            ]
        except SchemaBudgetExceededError:
            return [f"(root): checking the input took longer than {MAX_SCHEMA_SECONDS:g}s"]
        except RecursionError:
            return ["(root): the schema refers to itself without end"]
        except (jsonschema.exceptions.UnknownType, referencing.exceptions.Unresolvable) as exc:
            return [f"(root): the schema cannot be applied: {shorten(str(exc), 200)}"]
        finally:
            _deadline.reset(token)
