"""Completing a WAITING node run from outside the executor: an API PATCH or a timeout timer.

Both finish the node run with one conditional update and then apply the stored outcome through the
same path as an executor result, so a race between them resolves to exactly one completion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from libs.contracts import v1
from libs.core import engine_logs
from libs.core.planner import timeout_error
from libs.core.run import FINISHED_BY_TIMEOUT, FINISHED_FROM_OUTSIDE, LogEntry, NodeRun, Outcome
from libs.expressions import evaluate as expressions

if TYPE_CHECKING:
    from services.scheduler.handlers import Scheduler


async def complete_waiting_node(scheduler: Scheduler, msg: v1.CompleteNode) -> None:
    store = scheduler.store
    now = scheduler.clock()
    if msg.status == "IN_PROGRESS":
        await store.append_logs(msg.node_run_key, list(msg.logs), now=now)
        return
    record = await store.get_node_run(msg.node_run_key)
    outcome = await _outcome_of(scheduler, record, msg)
    # From RUNNING too: the executor's own conditional update then loses and it re-publishes this result.
    done = await store.finish_node_run(msg.node_run_key, outcome, now=now, from_statuses=FINISHED_FROM_OUTSIDE)
    await scheduler.apply_stored(done or await store.get_node_run(msg.node_run_key))


async def _outcome_of(scheduler: Scheduler, record: NodeRun, msg: v1.CompleteNode) -> Outcome:
    workflow = await scheduler.definitions.get(record.workflow, (await scheduler.store.get_run(record.run_id)).version)
    result = msg.result or "SUCCESS"
    if result != "SUCCESS":
        return Outcome(result=result, output=msg.output, error=_error_text(msg.output, result),
                       logs=tuple(msg.logs))
    shaped = await expressions.shaped_output(workflow, record.node_id, msg.output)
    return succeeded(shaped, logs=tuple(msg.logs), branch=msg.branch)


def succeeded(shaped: expressions.Shaped, *, logs: tuple[LogEntry, ...] = (), branch: str | None = None) -> Outcome:
    """A success completed from outside the executor: SUCCESS with the shaped output, or FAILED with
    the raw output when the node's `variables` failed."""
    if shaped.error is not None:
        return Outcome(result="FAILED", output=shaped.output, error=shaped.error, logs=logs)
    return Outcome(result="SUCCESS", output=shaped.output, logs=logs, branch=branch)


def _error_text(output: object, result: str) -> str:
    if isinstance(output, dict):
        err = output.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return f"completed with result {result}"


async def time_out_node(scheduler: Scheduler, run_id: str, key: str, seconds: float) -> None:
    now = scheduler.clock()
    outcome = Outcome(result="FAILED", error=timeout_error(seconds, " waiting for completion"),
                      retryable=True, logs=(engine_logs.timed_out(seconds, now, " waiting for completion"),))
    done = await scheduler.store.finish_node_run(key, outcome, now=now, from_statuses=FINISHED_BY_TIMEOUT)
    if done is not None:
        await scheduler.apply_stored(done)
