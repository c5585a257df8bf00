"""Nodes the engine completes after a wait (libs/core/node_kinds.py): what the scheduler sets up
when one starts waiting, and re-ensures whenever it reconciles the run.

DELAY and APPROVAL get a stored timer (`NodeKind.timed`, delays.py); SUB_WORKFLOW and FOREACH over a
workflow (completed by their child runs) get those started and followed (children.py). Each step is
idempotent, so a redelivered waiting result or a reconciliation changes nothing that was already done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from libs.contracts import v1
from libs.core.errors import NotFoundError
from libs.core.node_kinds import KINDS
from libs.core.run import NodeRun, Run
from services.scheduler import children, delays

if TYPE_CHECKING:
    from services.scheduler.handlers import Scheduler


async def on_waiting(scheduler: Scheduler, msg: v1.NodeResult) -> None:
    """A waiting result was applied: set up whatever will complete the node."""
    run, _ = await scheduler.runs.get(msg.run_id)
    progress = run.nodes.get(msg.node_id)
    if run.status == "COMPLETED" or progress is None or progress.attempt != msg.attempt:
        return
    try:
        record = await scheduler.store.get_node_run(msg.node_run_key)
    except NotFoundError:
        return
    await ensure(scheduler, run, record)


async def ensure(scheduler: Scheduler, run: Run, record: NodeRun) -> None:
    """Re-ensure the timer or child runs of a WAITING node run (no-op for other node types)."""
    if record.status != "WAITING" or run.status == "COMPLETED" or run.cancel_requested:
        return
    kind = KINDS.get(record.node_type)
    if kind is None:
        return
    if kind.timed is not None:
        await delays.ensure_timer(scheduler, record)
    elif kind.completed_by == "child_runs":
        await children.advance(scheduler, record.key)


async def fire(scheduler: Scheduler, msg: v1.FireTimer) -> None:
    await delays.fire(scheduler, msg)
