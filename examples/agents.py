"""Agents for the examples (entry points `examples.agents:<name>`). The server imports them
with the repository root on its import path: `make run` passes `--python-path` for that,
so they are found whatever the server's working directory."""

from __future__ import annotations

import ast
import itertools
import statistics
from typing import Any

from baton import AgentError, StepContext

# Feature Implementation Workflow (the seed's workflowengine-api.md) -----------------------


def architect(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Designs the architecture of a feature: its components and a plan."""
    request = str(value.get("feature_request", "")).strip()
    if not request:
        raise AgentError("feature_request is empty", type="BadRequest", non_retryable=True)
    components = ["api", "storage", "ui"]
    if "oauth" in request.lower() or "auth" in request.lower():
        components += ["identity provider", "token store"]
    ctx.log.info("planned", components=len(components))
    return {
        "architecture_plan": f"{request}: " + ", ".join(components),
        "components": components,
        "plan_complete": True,
    }


def fallback_architect(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A simpler architect used when the main one fails."""
    request = str(value.get("feature_request", "the feature"))
    return {
        "architecture_plan": f"{request}: api, storage",
        "components": ["api", "storage"],
        "plan_complete": True,
    }


def detail(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Turns an architecture plan (`detailed_requirements`) into specifications."""
    plan = str(value.get("detailed_requirements", ""))
    _, _, components = plan.partition(": ")
    specifications = [f"{c}: interfaces, data model, tests" for c in components.split(", ") if c]
    return {"specifications": specifications}


def relationship(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Finds how the specified components depend on each other."""
    names = [str(spec).split(":")[0] for spec in value.get("specs", [])]
    pairs = [{"from": a, "to": b} for a, b in itertools.pairwise(names)]
    return {"relationships": pairs}


# Tools the architect names (tools are registered; agents do not call them yet) -----------


def generate_structure(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A directory per component."""
    return {"directories": [f"src/{c}/" for c in value.get("components", [])]}


def analyze_dependencies(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Each component depends on the one before it."""
    components = list(value.get("components", []))
    return {"edges": [[a, b] for a, b in zip(components[1:], components, strict=False)]}


# Mathematical processing (the seed's agent-workflow-engine-readme.md) --------------------


def summarize_numbers(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Sum, mean and count of `numbers`."""
    numbers = [float(n) for n in value.get("numbers", [])]
    if not numbers:
        raise AgentError("no numbers given", type="BadRequest", non_retryable=True)
    return {"sum": sum(numbers), "mean": statistics.fmean(numbers), "count": len(numbers)}


def scale(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """`value` times the agent's config `factor` (default 2)."""
    factor = float(ctx.config.get("factor", 2))
    return {"result": float(value["value"]) * factor, "operation": f"x{factor:g}"}


def square(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """`value` squared."""
    return {"result": float(value["value"]) ** 2, "operation": "squared"}


def newton_step(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """One step of Newton's method towards the square root of `number`, from the `previous`
    iteration's guess (half the number in the first)."""
    number = float(value["number"])
    if number <= 0:
        raise AgentError("the number must be positive", type="BadRequest", non_retryable=True)
    previous = value.get("previous") or {}
    guess = float(previous.get("guess", number / 2))
    better = (guess + number / guess) / 2
    return {"guess": better, "change": abs(better - guess)}


# Writing with a reviewer: write -> review -> revise until approved -----------------------


def write_draft(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Writes a draft about `topic`, covering each point the reviewer's `feedback` missed."""
    feedback = value.get("feedback") or {}
    covered = [*(feedback.get("covered") or []), *(feedback.get("missing") or [])[:1]]
    text = f"{value['topic']}: " + "; ".join(covered or ["an overview"])
    return {"text": text, "covered": covered}


def review_draft(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Approves a draft once it covers every point in `required`; else says what is missing."""
    covered = list(value.get("covered") or [])
    missing = [point for point in value.get("required", []) if point not in covered]
    return {"approved": not missing, "covered": covered, "missing": missing}


# Code review (the seed's agent-workflow-engine-readme.md) --------------------------------


def code_metrics(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Lines, functions and classes of Python `code`."""
    tree = _parse(value)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    return {
        "lines": len(str(value["code"]).splitlines()),
        "functions": len(functions),
        "classes": len(classes),
    }


def code_issues(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Style problems: long lines, missing docstrings, bare excepts, TODOs."""
    code = str(value["code"])
    tree = _parse(value)
    issues = []
    for number, line in enumerate(code.splitlines(), 1):
        if len(line) > 99:
            issues.append(f"line {number}: longer than 99 characters")
        if "TODO" in line:
            issues.append(f"line {number}: TODO left in")
    for node in ast.walk(tree):
        documented = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if documented and ast.get_docstring(node) is None:
            issues.append(f"line {node.lineno}: {node.name} has no docstring")
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            issues.append(f"line {node.lineno}: bare except")
    return {"issues": issues, "issue_count": len(issues)}


def review_summary(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Joins the per-file reviews of a map: the files with issues, worst first."""
    counted = [
        {"path": file["path"], "issues": review["issue_count"]}
        for file, review in zip(value["files"], value["reviews"], strict=True)
        if review and review["issue_count"]
    ]
    counted.sort(key=lambda entry: -entry["issues"])
    return {"files_with_issues": counted, "total_issues": sum(e["issues"] for e in counted)}


def code_complexity(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A cyclomatic complexity estimate per function (1 + its branches)."""
    tree = _parse(value)
    branches = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.BoolOp, ast.IfExp)
    scores = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            scores[node.name] = 1 + sum(isinstance(n, branches) for n in ast.walk(node))
    return {"complexity": scores, "max_complexity": max(scores.values(), default=0)}


def review_report(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A score out of 10 and a summary from the metrics, issues and complexity."""
    issues = int(value.get("issue_count", 0))
    worst = int(value.get("max_complexity", 0))
    score = max(0, 10 - issues - max(0, worst - 5))
    verdict = "approve" if score >= 8 else "request changes"
    return {
        "score": score,
        "verdict": verdict,
        "summary": f"{value.get('lines', 0)} lines, {value.get('functions', 0)} functions, "
        f"{issues} issues, worst complexity {worst}",
    }


def suggest_fixes(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """One suggestion per issue."""
    return {"suggestions": [f"fix {issue}" for issue in value.get("issues", [])]}


def _parse(value: dict[str, Any]) -> ast.Module:
    try:
        return ast.parse(str(value.get("code", "")))
    except SyntaxError as exc:
        raise AgentError(
            f"the code does not parse: {exc}", type="SyntaxError", non_retryable=True
        ) from None


# The research example's tools (examples/research.py) -------------------------------------

NOTES = {
    "temporal": "Temporal replays a workflow's event history to rebuild its state; "
    "activities are retried by policy and must be idempotent.",
    "langgraph": "LangGraph checkpoints a graph's state after each node; "
    "a ToolNode runs the tools an LLM asked for, in process.",
    "baton": "Baton records each model turn and tool call as events and goes on from the "
    "last one after a crash, so finished tool calls never run twice.",
    "conductor": "Conductor schedules tasks from a JSON workflow definition; "
    "workers poll for tasks in any language.",
}


def search_notes(arguments: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A tool: the ids of the notes that mention every word of `query`."""
    words = [w.lower() for w in str(arguments.get("query", "")).split()]
    found = [k for k, text in NOTES.items() if all(w in f"{k} {text}".lower() for w in words)]
    return {"notes": found}


def read_note(arguments: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A tool: one note's text."""
    note = str(arguments.get("id", ""))
    if note not in NOTES:
        raise AgentError(f"there is no note {note!r}", type="NoSuchNote", non_retryable=True)
    return {"id": note, "text": NOTES[note]}
