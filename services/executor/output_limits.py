"""A node attempt's output within its limits: at most `max_output_bytes` itself, and the run's
variables (its inputs, trigger and every node's output) at most `max_run_variables_bytes` with it. Over either,
the attempt fails with a clear, non-retryable error and stores no output, so one oversized result
never reaches the run document, the bus or a run response."""

from __future__ import annotations

from libs.contracts import v1
from libs.core.limits import Limits, json_size
from libs.core.run import Outcome


def within_limits(outcome: Outcome, run: v1.RunContext, limits: Limits) -> Outcome:
    """The outcome unchanged, or a non-retryable failure over a limit."""
    if outcome.output is None:
        return outcome
    size = json_size(outcome.output)
    if size > limits.max_output_bytes:
        return _refused(outcome, f"the node's output is {size} bytes, over the limit of "
                                 f"{limits.max_output_bytes} (STEPLINE_MAX_OUTPUT_BYTES)")
    if not _succeeding(outcome):
        return outcome
    total = json_size(run) + size
    if total <= limits.max_run_variables_bytes:
        return outcome
    return _refused(outcome, f"with this output the run's variables would be {total} bytes, over the "
                             f"limit of {limits.max_run_variables_bytes} (STEPLINE_MAX_RUN_VARIABLES_BYTES)")


def _succeeding(outcome: Outcome) -> bool:
    """A success, or a node that started and now waits (its output joins the run's variables too)."""
    return outcome.result == "SUCCESS" or outcome.waiting


def _refused(outcome: Outcome, message: str) -> Outcome:
    """Without the output; a success (or a wait) becomes a non-retryable failure, a failure keeps its own."""
    if not _succeeding(outcome):
        return outcome.model_copy(update={"output": None, "error": f"{outcome.error}; {message}"})
    return outcome.model_copy(update={"result": "FAILED", "output": None, "error": message, "retryable": False,
                                      "branch": None, "waiting": False})
