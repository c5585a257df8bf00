"""Run control in the scheduler: cancellation, concurrency admission of queued runs, and the reuse of
an earlier run's successes by a rerun from `failed`.

Like every scheduler write these are conditional (node runs finish only from PENDING/WAITING; run
updates are `seq`-guarded; slots change by compare-and-set), so a redelivered command changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from libs.contracts import v1
from libs.core import engine_logs, planner
from libs.core.definition import Workflow
from libs.core.errors import NotFoundError
from libs.core.run import FINISHED_BY_CANCEL, NodeRun, Outcome, Run, node_run_key
from libs.store.races import LOST, Lost, until_won
from services.scheduler import records

if TYPE_CHECKING:
    from services.scheduler.handlers import Scheduler


async def cancel(scheduler: Scheduler, msg: v1.CancelRun) -> None:
    async def decide(workflow: Workflow, run: Run) -> planner.Decision | None:
        if run.status == "COMPLETED":
            return None
        stopped = [node_id for node_id, p in run.nodes.items()
                   if p.state in FINISHED_BY_CANCEL and await _stop_attempt(scheduler, run, node_id, p.attempt, msg.by)]
        return planner.cancel_run(workflow, run, stopped=stopped, now=scheduler.clock(), by=msg.by)

    await scheduler.update_run(msg.run_id, decide, what="cancelling it", repair=False)


async def _stop_attempt(scheduler: Scheduler, run: Run, node_id: str, attempt: int, by: str | None) -> bool:
    """Cancel the node run unless an executor holds it; True if it is cancelled (or never existed)."""
    key = node_run_key(run.id, node_id, attempt)
    error, now = f"cancelled by {by}" if by else "cancelled", scheduler.clock()
    cancelled = Outcome(result="CANCELLED", error=error, logs=(engine_logs.cancelled(by, now),))
    done = await scheduler.store.finish_node_run(key, cancelled, now=now, from_statuses=FINISHED_BY_CANCEL)
    if done is not None:
        return True
    try:
        record = await scheduler.store.get_node_run(key)
    except NotFoundError:
        return True
    return record.status == "COMPLETED" and record.result == "CANCELLED"


async def admit_others(scheduler: Scheduler, admitted: list[str], *, but: str | None = None) -> None:
    """Tell the owners of runs that just got a slot to start them (on their own partitions)."""
    for run_id in admitted:
        if run_id != but:
            await scheduler.publisher.publish(v1.AdmitRun(run_id=run_id))


async def admit(scheduler: Scheduler, run_id: str) -> None:
    """Start a queued run that holds a slot now. Stale or repeated commands change nothing."""
    async def attempt() -> Lost | None:
        try:
            run, _ = await scheduler.runs.get(run_id, fresh=True)
        except NotFoundError:
            return None
        if not run.queued or run.status == "COMPLETED":
            return None
        if not await scheduler.admission.holds_slot(run.workflow, run.id):
            return None
        workflow = await scheduler.definitions.get(run.workflow, run.version)
        return None if await scheduler.begin(workflow, run, admitting=True) else LOST

    await until_won(attempt, f"run {run_id} (while admitting it)")


async def start_decision(scheduler: Scheduler, workflow: Workflow, run: Run) -> planner.Decision:
    """The decision that starts `run` (new, or queued until now), reusing earlier successes when it
    re-runs a run from `failed`."""
    reused = await reused_nodes(scheduler, workflow, run)
    decision = planner.start_run(workflow, run_id=run.id, version=run.version, trigger=run.trigger,
                                 inputs=run.inputs, now=scheduler.clock(), idempotency_key=run.idempotency_key,
                                 reused={n: r for n, (r, _) in reused.items()}, base=run)
    for node_id, (_, earlier) in reused.items():
        await scheduler.store.insert_node_run(records.reused_node_run(workflow, decision.run, node_id, earlier))
    return decision


async def reused_nodes(scheduler: Scheduler, workflow: Workflow,
                       run: Run) -> dict[str, tuple[planner.ReusedNode, NodeRun]]:
    if run.rerun_of is None or run.rerun_from != "failed":
        return {}
    try:
        earlier = await scheduler.store.get_run(run.rerun_of)
    except NotFoundError:
        return {}
    reused: dict[str, tuple[planner.ReusedNode, NodeRun]] = {}
    for node_id, progress in earlier.nodes.items():
        if progress.state != "SUCCEEDED" or not workflow.has_node(node_id) or workflow.node(node_id).is_trigger:
            continue
        try:
            record = await scheduler.store.get_node_run(node_run_key(earlier.id, node_id, progress.attempt))
        except NotFoundError:
            continue
        reused[node_id] = (planner.ReusedNode(earlier.outputs.get(node_id), progress.branch), record)
    return reused
