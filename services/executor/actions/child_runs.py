"""What SUB_WORKFLOW and FOREACH (`workflowIdentifier`) share: resolve the child workflow version,
validate each child's inputs, and record the `ChildBatch` whose children the scheduler starts once
the node waits. Every problem here is the definition's or the data's, so it is not retryable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libs.access.secret_scope import current_workspace
from libs.core.child_runs import KIND, ChildBatch, resolve_version
from libs.core.errors import ActionError, InputError, NotFoundError
from libs.core.inputs import validate_inputs
from libs.core.limits import Limits
from libs.core.run import Run
from libs.core.workspaces import public, scoped
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store
from services.executor.actions.base import ActionInput
from services.executor.actions.child_quota import ChildQuota
from services.executor.actions.values import describe

SELF_SERVE = "SELF_SERVE_TRIGGER"


@dataclass(frozen=True)
class ChildTarget:
    workflow: str
    version: int
    trigger_node: str
    user_inputs: dict[str, Any]


class ChildRuns:
    def __init__(self, store: Store, clock: Callable[[], float], limits: Limits = Limits()) -> None:
        self.store = store
        self.clock = clock
        self.definitions = DefinitionCache(store)
        self.quota = ChildQuota(store, clock, limits)
        self.max_depth = limits.max_run_depth

    async def parent(self, data: ActionInput) -> Run:
        parent = await self.store.get_run(data.run_id)
        if parent.depth + 1 > self.max_depth:
            raise ActionError(f"child runs nest at most {self.max_depth} levels deep (STEPLINE_MAX_RUN_DEPTH); "
                              f"run {parent.id} is at depth "
                              f"{parent.depth} (does a workflow start itself?)")
        return parent

    async def target(self, config: dict[str, Any]) -> ChildTarget:
        identifier = config.get("workflowIdentifier")
        if not isinstance(identifier, str) or not identifier:
            raise ActionError(f"config.workflowIdentifier must render to a workflow identifier, got {describe(identifier)}")
        version, tag = config.get("version"), config.get("tag")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ActionError(f"config.version must render to an integer, got {describe(version)}")
        if tag is not None and not isinstance(tag, str):
            raise ActionError(f"config.tag must render to a tag name, got {describe(tag)}")
        identifier = scoped(current_workspace(), identifier)  # a child of the parent run's workspace
        try:
            record = await self.store.get_workflow(identifier)
            number = resolve_version(record, version, tag)
            definition = await self.definitions.get(identifier, number)
        except NotFoundError as exc:
            raise ActionError(f"cannot start a child run: {exc.message}") from None
        trigger = next((n for n in definition.nodes if n.type == SELF_SERVE), None)
        if trigger is None:
            raise ActionError(f"workflow {public(identifier)!r} version {number} has no {SELF_SERVE} node, so it cannot "
                              "run as a child")
        user_inputs = trigger.config.get("userInputs")
        return ChildTarget(identifier, number, trigger.identifier, user_inputs if isinstance(user_inputs, dict) else {})

    def inputs(self, target: ChildTarget, inputs: Any, what: str) -> dict[str, Any]:
        """`inputs` validated against the child's `userInputs`, defaults applied."""
        try:
            return validate_inputs(target.user_inputs, inputs)
        except InputError as exc:
            first = exc.issues[0] if exc.issues else None
            detail = f"{first.pointer}: {first.message}" if first else exc.message
            more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
            raise ActionError(f"{what} do not match the inputs of workflow {target.workflow!r} version "
                              f"{target.version}: {detail}{more}") from None

    async def record(self, data: ActionInput, parent: Run, target: ChildTarget, inputs: list[dict[str, Any]], *,
                     mode: str, concurrency: int) -> ChildBatch:
        """Insert the batch unless this attempt recorded it before (a re-claimed attempt); a new batch
        is first counted against the child-run quotas (child_quota.py)."""
        recorded = await self.store.get_entry(KIND, data.node_run_key)
        if recorded is not None:
            return ChildBatch.model_validate(recorded.data)
        await self.quota.reserve(parent, len(inputs))
        batch = ChildBatch.new(parent_run_id=parent.id, parent_node_run_key=data.node_run_key, mode=mode,
                               workflow=target.workflow, version=target.version, trigger_node=target.trigger_node,
                               depth=parent.depth + 1, by=parent.trigger.by, inputs=inputs, concurrency=concurrency)
        entry, _ = await self.store.insert_entry(KIND, data.node_run_key, batch.model_dump(mode="json"), now=self.clock())
        return ChildBatch.model_validate(entry.data)
