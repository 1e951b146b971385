"""CEL conditions (step `when`, handoff triggers), compiled once with a maintained CEL library
(`common-expression-language`, bindings to the Rust cel implementation).

The parser never sees unbounded or hostile text: `check_source` first bounds a condition's
length, bracket nesting and operator count (the parser recurses over the syntax tree and
overflows its stack on deep input) and refuses characters CEL never accepts outside string
literals and malformed escapes inside them (the parser's error report grows with the square
of their number)."""

from __future__ import annotations

import functools
import re

import cel

from baton_server.limits import (
    MAX_CONDITION_CHARS,
    MAX_CONDITION_NESTING,
    MAX_CONDITION_OPERATORS,
)

_STEP_REFERENCE = re.compile(
    r"""\bsteps\s*(?:\.\s*(?P<dotted>[A-Za-z_][A-Za-z0-9_]*)|\[\s*(?P<q>["'])(?P<quoted>.*?)(?P=q)\s*\])"""
)


# Variables bound by macros such as `list.exists(x, x > 1)`: not free variables.
_MACRO_VARIABLE = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*(?P<var>[A-Za-z_][A-Za-z0-9_]*)\s*,"
)

_CODE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ \t\r\n.,()[]{}+-*/%!=<>&|?:"
)
_OPERATORS = frozenset(".([+-*/%!=<>&|?:")
_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")
_SIMPLE_ESCAPES = frozenset("\\?\"'`abfnrtv")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}


class ConditionError(ValueError):
    """A condition that does not compile."""


def check_source(source: str) -> None:
    """Raises ConditionError unless `source` is within the bounds the parser is safe on."""
    if len(source) > MAX_CONDITION_CHARS:
        raise ConditionError(f"is {len(source)} characters long; at most {MAX_CONDITION_CHARS}")
    depth = operators = 0
    i, end = 0, len(source)
    while i < end:
        c = source[i]
        if c in "\"'":
            i = _skip_string(source, i)
            continue
        if c == "/" and source.startswith("//", i):
            newline = source.find("\n", i)
            i = end if newline < 0 else newline + 1
            continue
        if c not in _CODE_CHARS:
            raise ConditionError(f"unexpected character {c!r} at offset {i}")
        if c in _OPENING:
            depth += 1
            if depth > MAX_CONDITION_NESTING:
                raise ConditionError(f"nests brackets more than {MAX_CONDITION_NESTING} deep")
        elif c in _CLOSING:
            depth -= 1
        if c in _OPERATORS:
            operators += 1
            if operators > MAX_CONDITION_OPERATORS:
                raise ConditionError(f"has more than {MAX_CONDITION_OPERATORS} operators")
        i += 1


def _skip_string(source: str, start: int) -> int:
    """The offset just after the string literal that starts at `start`; checks its escapes."""
    quote = source[start]
    raw = start > 0 and source[start - 1] in "rR"
    triple = source.startswith(quote * 3, start)
    closing = quote * 3 if triple else quote
    i = start + len(closing)
    while i < len(source):
        if source.startswith(closing, i):
            return i + len(closing)
        c = source[i]
        if c == "\n" and not triple:
            break
        if c == "\\" and not raw:
            i = _skip_escape(source, i)
            continue
        i += 1
    raise ConditionError(f"unterminated string literal at offset {start}")


def _skip_escape(source: str, start: int) -> int:
    kind = source[start + 1 : start + 2]
    if kind in _SIMPLE_ESCAPES and kind:
        return start + 2
    digits = _ESCAPE_DIGITS.get(kind)
    if digits is not None:
        value = source[start + 2 : start + 2 + digits]
        if len(value) == digits and all(d in _HEX for d in value):
            return start + 2 + digits
    elif kind in "0123" and kind:
        value = source[start + 1 : start + 4]
        if len(value) == 3 and all(d in "01234567" for d in value):
            return start + 4
    raise ConditionError(f"invalid escape sequence at offset {start}")


@functools.lru_cache(maxsize=4096)
def compile_condition(source: str) -> cel.Program:
    """Compiles a CEL expression after `check_source`; cached, so each source compiles once."""
    check_source(source)
    try:
        return cel.compile(source)
    except ValueError as exc:
        # The library's message carries a caret diagram; the first line is the useful part.
        raise ConditionError(str(exc).splitlines()[0][:500]) from None


def free_variables(source: str) -> set[str]:
    """The top-level variables a condition reads (e.g. `input`, `steps`), macro variables
    excluded."""
    refs = compile_condition(source).references()
    bound = {m.group("var") for m in _MACRO_VARIABLE.finditer(source)}
    return set(refs["variables"]) - bound


def referenced_steps(source: str) -> set[str]:
    """The step ids a condition reads through `steps.<id>` or `steps["<id>"]`."""
    return {m.group("dotted") or m.group("quoted") for m in _STEP_REFERENCE.finditer(source)}
