"""CEL conditions (step `when`, handoff triggers), compiled once with a maintained CEL library
(`common-expression-language`, bindings to the Rust cel implementation)."""

from __future__ import annotations

import functools
import re

import cel

_STEP_REFERENCE = re.compile(
    r"""\bsteps\s*(?:\.\s*(?P<dotted>[A-Za-z_][A-Za-z0-9_]*)|\[\s*(?P<q>["'])(?P<quoted>.*?)(?P=q)\s*\])"""
)


# Variables bound by macros such as `list.exists(x, x > 1)`: not free variables.
_MACRO_VARIABLE = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*(?P<var>[A-Za-z_][A-Za-z0-9_]*)\s*,"
)


class ConditionError(ValueError):
    """A condition that does not compile."""


@functools.lru_cache(maxsize=4096)
def compile_condition(source: str) -> cel.Program:
    """Compiles a CEL expression; the result is cached, so each source compiles once."""
    try:
        return cel.compile(source)
    except ValueError as exc:
        # The library's message carries a caret diagram; the first line is the useful part.
        raise ConditionError(str(exc).splitlines()[0]) from None


def free_variables(source: str) -> set[str]:
    """The top-level variables a condition reads (e.g. `input`, `steps`), macro variables
    excluded."""
    refs = compile_condition(source).references()
    bound = {m.group("var") for m in _MACRO_VARIABLE.finditer(source)}
    return set(refs["variables"]) - bound


def referenced_steps(source: str) -> set[str]:
    """The step ids a condition reads through `steps.<id>` or `steps["<id>"]`."""
    return {m.group("dotted") or m.group("quoted") for m in _STEP_REFERENCE.finditer(source)}
