"""The caller's workspace applied to what a route reads or changes (libs/core/workspaces.py).

Every lookup goes through here: an object of another workspace answers exactly as an absent one
(404 with the same message), so a caller cannot learn that it exists."""

from __future__ import annotations

from libs.access.principal import Principal
from libs.access.trigger_permissions import may_view
from libs.core.errors import NotFoundError
from libs.core.run import NodeRun, Run
from libs.core.versioning import WorkflowRecord
from libs.core.workspaces import belongs_to, scoped
from services.trigger.api.context import ApiContext


def key(caller: Principal, identifier: str) -> str:
    """The store key of a workflow, secret or blueprint named `identifier` in the caller's workspace."""
    return scoped(caller.workspace, identifier)


async def workflow_of(ctx: ApiContext, caller: Principal, workflow_id: str, *,
                      include_deleted: bool = False) -> WorkflowRecord:
    return await ctx.store.get_workflow(key(caller, workflow_id), include_deleted=include_deleted)


async def visible(ctx: ApiContext, caller: Principal, run: Run) -> bool:
    """In the caller's workspace, and readable under its trigger's `allowAnyoneToViewRuns`."""
    if not belongs_to(run.workflow, caller.workspace):
        return False
    if not run.trigger.node:
        return True
    workflow = await ctx.definitions.get(run.workflow, run.version)
    if not workflow.has_node(run.trigger.node):
        return True
    return may_view(workflow.node(run.trigger.node).config, caller, run.trigger.by)


async def run_of(ctx: ApiContext, caller: Principal, run_id: str) -> Run:
    run = await ctx.store.get_run(run_id)
    if not await visible(ctx, caller, run):
        raise NotFoundError(f"run {run_id!r} not found")
    return run


async def node_run_of(ctx: ApiContext, caller: Principal | None, node_run_id: str) -> NodeRun:
    """A node run by its public id; with a caller, only one of a run the caller may read."""
    node_run = await ctx.store.get_node_run_by_id(node_run_id)
    if caller is not None and not await visible(ctx, caller, await ctx.store.get_run(node_run.run_id)):
        raise NotFoundError(f"node run {node_run_id!r} not found")
    return node_run
