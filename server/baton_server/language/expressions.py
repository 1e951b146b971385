"""Mapping expressions: `${input.a.b}`, `${steps.<id>.output.x}`, `${execution.id}`, `${output.x}`,
and in loops `${steps.<id>.iterations[0]}`, `${loop.iteration}` and `${loop.last}`.

A string that is exactly one expression stands for the value itself (keeping its JSON type);
any other string has its expressions interpolated. `$${` writes a literal `${`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from baton_server.limits import MAX_LIST_INDEX_DIGITS, MAX_PATH_SEGMENTS, shorten

Path = tuple[str | int, ...]

_SEGMENT = re.compile(
    r"""\.?(?P<name>[A-Za-z_][A-Za-z0-9_-]*)      # .name
      | \[(?P<index>[0-9]+)\]                       # [0]
      | \[(?P<quote>["'])(?P<key>.*?)(?P=quote)\]   # ["key"]
    """,
    re.VERBOSE,
)
EXECUTION_FIELDS = frozenset({"id", "workflow", "workflow_revision", "priority", "labels"})


class ExpressionError(ValueError):
    """An expression that cannot be parsed or names something that does not exist."""


@dataclass(frozen=True)
class Expression:
    """One `${...}` reference: its root (`input`, `steps`, `execution`, `output`) and path."""

    source: str
    path: Path

    @property
    def root(self) -> str:
        """The first segment."""
        return str(self.path[0])

    @property
    def step_id(self) -> str | None:
        """For `${steps.<id>...}`, the step id."""
        return str(self.path[1]) if self.root == "steps" else None


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and expressions, in order."""

    parts: tuple[str | Expression, ...]

    @property
    def expressions(self) -> list[Expression]:
        """The expressions, in order."""
        return [p for p in self.parts if isinstance(p, Expression)]

    @property
    def single(self) -> Expression | None:
        """The expression when the whole string is exactly one, else None."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return self.parts[0]
        return None


def parse_template(text: str) -> Template:
    """Splits a string into literals and expressions. Raises ExpressionError."""
    parts: list[str | Expression] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            literal.append("${")
            i += 3
        elif text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise ExpressionError(f"unterminated '${{' at offset {i} in {shorten(text)!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            source = text[i + 2 : end].strip()
            parts.append(Expression(source, parse_path(source)))
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))


def parse_path(source: str) -> Path:
    """Parses `a.b[0]["c"]` into ('a', 'b', 0, 'c') and checks the root's shape."""
    if not source:
        raise ExpressionError("empty expression '${}'")
    path: list[str | int] = []
    pos = 0
    shown = shorten(source)
    while pos < len(source):
        if len(path) >= MAX_PATH_SEGMENTS:
            raise ExpressionError(f"{shown!r} has more than {MAX_PATH_SEGMENTS} segments")
        match = _SEGMENT.match(source, pos)
        if match is None or (pos == 0 and source[0] in ".["):
            raise ExpressionError(f"cannot parse {shown!r} at offset {pos}")
        if match.group("name") is not None:
            if pos > 0 and source[pos] != ".":
                raise ExpressionError(f"expected '.' or '[' in {shown!r} at offset {pos}")
            path.append(match.group("name"))
        elif match.group("index") is not None:
            digits = match.group("index")
            if len(digits) > MAX_LIST_INDEX_DIGITS:
                raise ExpressionError(f"list index too large in {shown!r} at offset {pos}")
            path.append(int(digits))
        else:
            path.append(match.group("key"))
        pos = match.end()
    _check_shape(shown, tuple(path))
    return tuple(path)


def _check_shape(source: str, path: Path) -> None:
    root = path[0]
    if root == "steps":
        if len(path) < 3 or path[2] not in ("output", "iterations"):
            raise ExpressionError(
                f"{source!r}: write steps.<step id>.output[...] (or .iterations[i] in a loop)"
            )
    elif root == "execution":
        if len(path) < 2 or path[1] not in EXECUTION_FIELDS:
            fields = ", ".join(sorted(EXECUTION_FIELDS))
            raise ExpressionError(f"{source!r}: execution has only {fields}")
    elif root == "loop":
        if len(path) < 2 or path[1] not in ("iteration", "last"):
            raise ExpressionError(f"{source!r}: loop has only iteration and last")
    elif root not in ("input", "output", "item", "index"):
        raise ExpressionError(
            f"{source!r}: an expression starts with input, steps, execution or output"
        )


def walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yields (field path, string) for every string inside a JSON value, e.g. `a.b[2]`."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{index}]")
