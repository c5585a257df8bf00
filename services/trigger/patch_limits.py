"""What a node-run PATCH may add: its output within the node output limit, its log entries within the
node run's log quota. Over a limit the request is refused with 413 before anything is published, so
nothing is half-applied and nothing is silently dropped (libs/core/limits.py)."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from libs.core.limits import Limits, logs_problem, output_problem
from libs.core.run import NodeRun
from services.trigger.completion import Patch


def refuse_over_limits(node_run: NodeRun, patch: Patch, limits: Limits) -> None:
    """HTTPException 413 (`payload_too_large`) naming the field over its limit."""
    if patch.output_given:
        problem = output_problem(patch.output, limits, "field /output")
        if problem is not None:
            raise HTTPException(413, problem)
    if patch.logs:
        stored = [e.model_dump(mode="json") for e in node_run.logs]
        problem = logs_problem(stored, [e.model_dump(mode="json") for e in patch.logs], limits)
        if problem is not None:
            raise HTTPException(413, f"field /logs: {problem}")
