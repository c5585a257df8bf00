"""A node attempt's output within its limits: at most `max_output_bytes` itself, and the run's
variables (its inputs, trigger and every node's output) at most `max_run_variables_bytes` with it. Over either,
the attempt fails with a clear, non-retryable error and stores no output, so one oversized result
never reaches the run document, the bus or a run response."""

from __future__ import annotations

from dataclasses import replace

from libs.contracts import v1
from libs.core.limits import Limits, json_size
from libs.store.ports import Completion
from services.executor.actions.base import ActionResult


def within_limits(result: ActionResult | None, completion: Completion, run: v1.RunContext,
                  limits: Limits) -> tuple[ActionResult | None, Completion]:
    """`(result, completion)` unchanged, or `(None, a non-retryable failure)` over a limit."""
    if completion.output is None:
        return result, completion
    size = json_size(completion.output)
    if size > limits.max_output_bytes:
        return None, _refused(completion, f"the node's output is {size} bytes, over the limit of "
                                          f"{limits.max_output_bytes} (STEPLINE_MAX_OUTPUT_BYTES)")
    if completion.result != "SUCCESS":
        return result, completion
    total = json_size(run) + size
    if total <= limits.max_run_variables_bytes:
        return result, completion
    return None, _refused(completion, f"with this output the run's variables would be {total} bytes, over the "
                                      f"limit of {limits.max_run_variables_bytes} (STEPLINE_MAX_RUN_VARIABLES_BYTES)")


def _refused(completion: Completion, message: str) -> Completion:
    """Without the output; a success becomes a non-retryable failure, a failure keeps its own."""
    if completion.result != "SUCCESS":
        return replace(completion, output=None, error=f"{completion.error}; {message}")
    return replace(completion, result="FAILED", output=None, error=message, retryable=False, branch=None)
