"""Deciding what a node-run PATCH does (pure): publish a `CompleteNode`, answer an already-applied
completion idempotently, do nothing, or refuse with 409."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from libs.contracts import v1
from libs.core.errors import ConflictError
from libs.core.run import LogEntry, NodeRun

PatchStatus = Literal["IN_PROGRESS", "COMPLETED"]


class Decision(Enum):
    PUBLISH = "publish"
    """Send `CompleteNode` to the scheduler."""
    ALREADY_APPLIED = "already_applied"
    """The same completion was applied before: answer 200 with the node run, publish nothing."""
    NOTHING = "nothing"
    """Progress without logs: nothing to record."""


@dataclass(frozen=True)
class Patch:
    status: PatchStatus
    result: Literal["SUCCESS", "FAILED", "CANCELLED"] | None = None
    output: Any = None
    output_given: bool = False
    logs: tuple[LogEntry, ...] = ()
    by: str | None = None


def _same(value: Any) -> Any:
    return value


def decide(node_run: NodeRun, patch: Patch, stored_form: Callable[[Any], Any] = _same, *,
           asynchronous: bool = False) -> Decision:
    """ConflictError when the node run is not in a state this patch can apply to. `stored_form` maps
    the patch's output to what it would have been stored as, to recognise a repeat. An
    `asynchronous` node (one that waits for outside completion) may also be completed while still
    RUNNING: a fast callback can arrive before the executor has marked the node run WAITING."""
    if patch.status == "COMPLETED":
        if asynchronous and node_run.status == "RUNNING":
            return Decision.PUBLISH
        return _decide_completion(node_run, patch, stored_form)
    if node_run.status in ("RUNNING", "WAITING"):
        return Decision.PUBLISH if patch.logs else Decision.NOTHING
    if node_run.status == "COMPLETED":
        raise ConflictError(f"node run {node_run.id} is already completed; progress logs can no longer be added")
    raise ConflictError(f"node run {node_run.id} has not started yet, so it cannot report progress")


def _decide_completion(node_run: NodeRun, patch: Patch, stored_form: Callable[[Any], Any]) -> Decision:
    if node_run.status == "WAITING":
        return Decision.PUBLISH
    if node_run.status != "COMPLETED":
        raise ConflictError(f"node run {node_run.id} is not waiting for completion (its status is {node_run.status})")
    same_output = not patch.output_given or node_run.output == stored_form(patch.output)
    if node_run.result == patch.result and same_output:
        return Decision.ALREADY_APPLIED
    what = "result" if node_run.result != patch.result else "output"
    raise ConflictError(f"node run {node_run.id} already completed with a different {what} "
                        f"(result {node_run.result})")


def complete_message(node_run: NodeRun, patch: Patch) -> v1.CompleteNode:
    return v1.CompleteNode(run_id=node_run.run_id, node_run_key=node_run.key, status=patch.status,
                           result=patch.result, output=patch.output, logs=list(patch.logs), by=patch.by)
