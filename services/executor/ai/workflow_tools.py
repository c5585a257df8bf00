"""Stepline workflows as agent tools: a call starts a child run of the workflow (inputs validated
against its SELF_SERVE_TRIGGER, counted against the child-run quotas, nested at most the run depth;
child_runs.py) and awaits its end; the tool result is the child's outcome `{runId, result, outputs}`.

The child run's id is derived from the agent's node run key and the call's number, so a re-performed
attempt that makes the same calls awaits the same children instead of starting new ones; a cancelled
parent run cancels the child it awaits. The parent
node run stays RUNNING while the agent awaits (no child-run batch): the scheduler only links the
child to its parent run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from libs.bus.publisher import Publisher
from libs.contracts import v1
from libs.core.child_runs import CHILD_TRIGGER_TYPE, child_outcome
from libs.core.errors import ActionError, NotFoundError
from libs.core.inputs import input_schema
from libs.core.run import Run, TriggerInfo, derived_id
from libs.store.ports import Store
from services.executor.actions.child_runs import ChildRuns, ChildTarget
from services.executor.ai.models import ToolSpec

POLL_SECONDS = (0.02, 0.5)
"""The first and the longest pause between two reads of an awaited child run (doubling)."""


class WorkflowTools:
    def __init__(self, children: ChildRuns, store: Store, publisher: Publisher, clock: Callable[[], float]) -> None:
        self.children = children
        self.store = store
        self.publisher = publisher
        self.clock = clock

    async def spec(self, name: str, workflow: str) -> tuple[ToolSpec, ChildTarget]:
        target = await self.children.target({"workflowIdentifier": workflow})
        description = f"Runs the Stepline workflow {workflow!r} with these inputs and returns its outputs."
        return ToolSpec(name, description, input_schema(target.user_inputs)), target

    async def call(self, parent: Run, node_run_key: str, number: int, target: ChildTarget,
                   arguments: dict[str, Any]) -> dict[str, Any]:
        inputs = self.children.inputs(target, arguments, "the tool call's arguments")
        run_id = derived_id("wfr_", f"{node_run_key}/tool/{number}")
        if not await self._exists(run_id):
            await self.children.quota.reserve(parent, 1)
            trigger = TriggerInfo(type=CHILD_TRIGGER_TYPE, by=parent.trigger.by, at=self.clock(),
                                  node=target.trigger_node)
            msg = v1.StartRun(run_id=run_id, workflow=target.workflow, version=target.version, trigger=trigger,
                              inputs=inputs, parent_run_id=parent.id, depth=parent.depth + 1)
            await self.publisher.publish(msg)
        return child_outcome(await self._finished(run_id, parent.id))

    async def _exists(self, run_id: str) -> bool:
        try:
            await self.store.get_run(run_id)
        except NotFoundError:
            return False
        return True

    async def _finished(self, run_id: str, parent_id: str) -> Run:
        """The child run once COMPLETED (the node's timeout bounds the wait). When the parent run is
        cancelled meanwhile, the child is cancelled too and the call fails."""
        pause = POLL_SECONDS[0]
        while True:
            try:
                run = await self.store.get_run(run_id)
                if run.status == "COMPLETED":
                    return run
            except NotFoundError:
                pass
            if (await self.store.get_run(parent_id)).cancel_requested:
                await self.publisher.publish(v1.CancelRun(run_id=run_id))
                raise ActionError(f"the run was cancelled while child run {run_id} was running; it is cancelled too")
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_SECONDS[1])
