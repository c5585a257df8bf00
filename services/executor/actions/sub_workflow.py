"""SUB_WORKFLOW: check the child workflow and its inputs, record the child, and wait.

The scheduler starts the child run (its id derived from this node run's key, so a re-performed
attempt starts no second child) once the node waits, and completes the node when the child run
completes: SUCCESS with `{runId, result, outputs}`, or FAILED.
"""

from __future__ import annotations

from libs.core.errors import ActionError
from libs.core.workspaces import public
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.child_runs import ChildRuns


class SubWorkflowAction:
    def __init__(self, children: ChildRuns) -> None:
        self.children = children

    async def execute(self, data: ActionInput) -> ActionResult:
        parent = await self.children.parent(data)
        target = await self.children.target(data.config)
        inputs = data.config.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            raise ActionError("config.inputs must render to an object")
        validated = self.children.inputs(target, inputs or {}, "config.inputs")
        batch = await self.children.record(data, parent, target, [validated], mode="single", concurrency=1)
        return ActionResult(output={"runId": batch.child_id(0), "workflowIdentifier": public(target.workflow),
                                    "version": target.version}, waiting=True)
