"""Runs one of the examples against a Baton server (start one with `make run`):

    python examples/run.py feature | math | converge | review-loop | code-review
        | code-review-files [--server HOST:PORT]

It applies the example's definitions (examples/*.yaml), starts an execution with a sample
input, and watches it to the end with the `baton` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from baton.cli import main as baton

HERE = Path(__file__).resolve().parent
SAMPLE_CODE = '''def total(items):
    result = 0
    for item in items:
        if item > 0:
            result += item
    return result


class Cart:
    """A shopping cart."""

    def add(self, item):
        try:
            self.items.append(item)
        except:
            pass  # TODO: handle a missing list
'''
EXAMPLES = {
    "feature": (
        "feature.yaml",
        "feature-implementation",
        {"feature_request": "Implement user authentication with OAuth support"},
    ),
    "math": ("math.yaml", "math-processing", {"numbers": [12, 30, 45.5, 20]}),
    "converge": ("math.yaml", "math-convergence", {"number": 2}),
    "review-loop": (
        "review_loop.yaml",
        "review-until-approved",
        {"topic": "Durable agents", "required": ["retries", "signals", "loops"]},
    ),
    "code-review": ("code_review.yaml", "code-review", {"code": SAMPLE_CODE}),
    "code-review-files": (
        "code_review.yaml",
        "code-review-files",
        {
            "files": [
                {"path": "cart.py", "code": SAMPLE_CODE},
                {"path": "ok.py", "code": '"""Fine."""\n'},
                {"path": "todo.py", "code": "x = 1  # TODO: name it\n"},
            ]
        },
    ),
}


def run(example: str, server: str) -> int:
    """Applies and runs one example; returns the exit status of the watched run."""
    definitions, workflow, sample = EXAMPLES[example]
    status = baton(["--server", server, "apply", "-f", str(HERE / definitions)])
    if status:
        return status
    return baton(["--server", server, "run", workflow, "--input", json.dumps(sample), "--watch"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("example", choices=sorted(EXAMPLES))
    parser.add_argument("--server", default="localhost:50051")
    arguments = parser.parse_args()
    sys.exit(run(arguments.example, arguments.server))
