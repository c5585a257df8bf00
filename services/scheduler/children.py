"""Child runs of SUB_WORKFLOW and FOREACH (`workflowIdentifier`) nodes, seen from the scheduler.

The executor records a `ChildBatch` (libs/core/child_runs.py) and the node waits. Then `advance`
starts children up to the batch's concurrency (`StartRun` with a derived id and the parent link,
published on the child's own partition). When a child run completes, its owner records the child's
outcome in the batch (compare-and-set, so siblings completing on other partitions never lose an
update), starts the next children, and once every child has finished publishes `CompleteNode` for
the parent node run, keyed by the parent run: the parent's own partition completes it, exactly as
an API completion. A crash between any two steps is repaired when the parent run is reconciled:
`advance` re-publishes starts of children that do not exist, records children that completed, and
re-publishes the completion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from libs.contracts import v1
from libs.core.child_runs import CHILD_TRIGGER_TYPE, KIND, ChildBatch, child_outcome
from libs.core.errors import NotFoundError
from libs.core.run import Run, TriggerInfo
from libs.store.races import LOST, Lost, until_won

if TYPE_CHECKING:
    from services.scheduler.handlers import Scheduler

log = logging.getLogger("stepline.scheduler")


def link_parent(run: Run, msg: v1.StartRun) -> None:
    """Carry a child run's link to its parent from the StartRun onto the new run. A child started by
    an agent's workflow tool has a parent run but no waiting parent node run (the agent awaits it)."""
    if msg.parent_run_id is not None:
        run.parent_run_id = msg.parent_run_id
        run.parent_node_run_key = msg.parent_node_run_key
        run.depth = msg.depth


async def on_run_completed(scheduler: Scheduler, run: Run) -> None:
    if run.parent_node_run_key is not None:
        await advance(scheduler, run.parent_node_run_key, finished=run)
    if run.result == "CANCELLED":
        await _cancel_children(scheduler, run)


async def _cancel_children(scheduler: Scheduler, run: Run) -> None:
    """A cancelled run cancels the child runs its nodes were waiting for (each on its own partition)."""
    for entry in await scheduler.store.list_entries(KIND, prefix=f"{run.id}/"):
        batch = ChildBatch.model_validate(entry.data)
        for index in batch.running():
            await scheduler.publisher.publish(v1.CancelRun(run_id=batch.child_id(index), by=run.cancelled_by))


async def advance(scheduler: Scheduler, key: str, *, finished: Run | None = None) -> None:
    """Move the batch of parent node run `key` forward. With `finished`, record that child;
    without, look at every running child (repair)."""
    store = scheduler.store

    async def attempt() -> Lost | None:
        entry = await store.get_entry(KIND, key)
        if entry is None:
            log.error("no child-run batch for node run %s", key)
            return None
        batch = ChildBatch.model_validate(entry.data)
        updated, missing = await _recorded(scheduler, batch, finished)
        updated, started = updated.fill()
        if updated != batch and await store.replace_entry(
                KIND, key, updated.model_dump(mode="json"), expected_rev=entry.rev, now=scheduler.clock()) is None:
            return LOST
        for index in missing + started:
            await _start(scheduler, updated, index)
        if updated.finished:
            await _complete_parent(scheduler, updated)
        return None

    await until_won(attempt, f"the child runs of node run {key}")


async def _recorded(scheduler: Scheduler, batch: ChildBatch, finished: Run | None) -> tuple[ChildBatch, list[int]]:
    """The batch with finished children recorded, and the started children whose run is missing."""
    if finished is not None:
        index = batch.index_of(finished.id)
        return (batch if index is None else batch.record(index, child_outcome(finished))), []
    missing = []
    for index in batch.running():
        try:
            child = await scheduler.store.get_run(batch.child_id(index))
        except NotFoundError:
            missing.append(index)
            continue
        if child.status == "COMPLETED":
            batch = batch.record(index, child_outcome(child))
    return batch, missing


async def _start(scheduler: Scheduler, batch: ChildBatch, index: int) -> None:
    trigger = TriggerInfo(type=CHILD_TRIGGER_TYPE, by=batch.by, at=scheduler.clock(), node=batch.trigger_node)
    msg = v1.StartRun(run_id=batch.child_id(index), workflow=batch.workflow, version=batch.version,
                      trigger=trigger, inputs=batch.inputs[index], parent_run_id=batch.parent_run_id,
                      parent_node_run_key=batch.parent_node_run_key, depth=batch.depth)
    await scheduler.publisher.publish(msg)


async def _complete_parent(scheduler: Scheduler, batch: ChildBatch) -> None:
    result, output = batch.completion()
    msg = v1.CompleteNode(run_id=batch.parent_run_id, node_run_key=batch.parent_node_run_key,
                          status="COMPLETED", result=result, output=output)
    await scheduler.publisher.publish(msg)
