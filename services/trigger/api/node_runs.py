"""Completing (or reporting progress on) a waiting node run — both Port paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path

from libs.core.definition import Node
from libs.core.errors import NotFoundError
from libs.core.redaction import redact_text, redact_value, secret_values
from libs.core.run import LogEntry, NodeRun
from services.trigger import presenters
from services.trigger.approval import refuse_patch
from services.trigger.api.context import ApiContext, Context, User
from services.trigger.api.models import NodeRunPatch
from services.trigger.completion import Decision, Patch, as_stored, complete_message, decide
from services.trigger.publishing import send_command
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["node runs"], route_class=StrictJsonRoute)

NodeRunId = Annotated[str, Path(description="A node run identifier (wfnr_…)")]
RunId = Annotated[str, Path(description="A run identifier (wfr_…)")]


def to_patch(body: NodeRunPatch, by: str | None, now: float) -> Patch:
    logs = tuple(LogEntry(logLevel=e.logLevel, log=e.log, tags=e.tags, createdAt=now) for e in body.logs)
    return Patch(status=body.effective_status, result=body.result, output=body.output,
                 output_given=body.output_given, logs=logs, by=by)


async def node_of(ctx: ApiContext, node_run: NodeRun) -> Node | None:
    """The node run's node, in the version its run pinned."""
    run = await ctx.store.get_run(node_run.run_id)
    workflow = await ctx.definitions.get(node_run.workflow, run.version)
    try:
        return workflow.node(node_run.node_id)
    except KeyError:
        return None


async def node_variables(ctx: ApiContext, node_run: NodeRun) -> dict[str, Any]:
    node = await node_of(ctx, node_run)
    return dict(node.variables) if node is not None else {}


async def stored_form(ctx: ApiContext, node_run: NodeRun, patch: Patch) -> Callable[[Any], Any]:
    """How the patch's output would have been stored, needed only to recognise a repeated completion."""
    if node_run.status != "COMPLETED" or patch.status != "COMPLETED" or not patch.output_given:
        return lambda output: output
    variables = await node_variables(ctx, node_run)
    return lambda output: as_stored(variables, patch.result, output)


async def masked(ctx: ApiContext, patch: Patch) -> Patch:
    """The patch with every stored secret's value masked in its output and logs: what an outside
    system reports is stored and published like an executor's completion, never with a secret."""
    if ctx.secrets is None or (not patch.output_given and not patch.logs):
        return patch
    values = secret_values([v for name in await ctx.secrets.names() if (v := await ctx.secrets.reveal(name))])
    if not values:
        return patch
    logs = tuple(e.model_copy(update={"log": redact_text(e.log, values),
                                      "tags": redact_value(e.tags, values)}) for e in patch.logs)
    return replace(patch, output=redact_value(patch.output, values), logs=logs)


async def apply_patch(ctx: ApiContext, node_run: NodeRun, body: NodeRunPatch, user: str | None) -> dict[str, Any]:
    patch = await masked(ctx, to_patch(body, user, ctx.clock()))
    if patch.status == "COMPLETED":
        refuse_patch(node_run)
    asynchronous = False
    if node_run.status == "RUNNING" and patch.status == "COMPLETED":
        node = await node_of(ctx, node_run)
        asynchronous = node is not None and node.waits_for_completion
    decision = decide(node_run, patch, await stored_form(ctx, node_run, patch), asynchronous=asynchronous)
    if decision is Decision.ALREADY_APPLIED:
        return {"ok": True, "nodeRun": presenters.node_run(node_run)}
    if decision is Decision.PUBLISH:
        await send_command(ctx.bus, complete_message(node_run, patch))
    return {"ok": True}


@router.patch("/nodes/runs/{node_run_id}")
async def patch_node_run(ctx: Context, user: User, node_run_id: NodeRunId, body: NodeRunPatch) -> dict[str, Any]:
    """Complete a WAITING node run (`result` required with COMPLETED), or append progress logs with
    IN_PROGRESS. 404 unknown; 409 not waiting or completed differently; a repeat answers 200."""
    node_run = await ctx.store.get_node_run_by_id(node_run_id)
    return await apply_patch(ctx, node_run, body, user)


@router.patch("/runs/{run_id}/nodes/{node_run_id}")
async def patch_run_node_run(ctx: Context, user: User, run_id: RunId, node_run_id: NodeRunId,
                             body: NodeRunPatch) -> dict[str, Any]:
    """The same, addressed through its run; a node run of another run is 404."""
    node_run = await ctx.store.get_node_run_by_id(node_run_id)
    if node_run.run_id != run_id:
        raise NotFoundError(f"run {run_id} has no node run {node_run_id}")
    return await apply_patch(ctx, node_run, body, user)
