"""Deciding an APPROVAL node: `POST /v1/workflows/runs/{run}/nodes/{node}/approval`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from libs.core.errors import ConflictError, NotFoundError
from libs.core.run import NodeRun, Run, node_run_key
from services.trigger import approval
from services.trigger.api.context import ApiContext, Context
from services.trigger.publishing import send_command
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["approvals"], route_class=StrictJsonRoute)

RunId = Annotated[str, Path(description="A run identifier (wfr_…)")]
NodeRef = Annotated[str, Path(description="The APPROVAL node's identifier (or its node run id, wfnr_…)")]


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    by: str = Field(min_length=1, max_length=200, description="Who decides: one of the node's assignees.")
    comment: str | None = Field(default=None, max_length=10_000)
    payload: Any = None
    """Any JSON the decider adds; it becomes part of the node's output."""


async def waiting_node_run(ctx: ApiContext, run: Run, node: str) -> NodeRun:
    """The current attempt of `node` in `run` (by node identifier, or by node run id)."""
    progress = run.nodes.get(node)
    if progress is not None:
        return await ctx.store.get_node_run(node_run_key(run.id, node, progress.attempt))
    if node.startswith("wfnr_"):
        try:
            found = await ctx.store.get_node_run_by_id(node)
        except NotFoundError:
            found = None
        if found is not None and found.run_id == run.id:
            return found
    workflow = await ctx.definitions.get(run.workflow, run.version)
    if not workflow.has_node(node):
        raise NotFoundError(f"run {run.id} has no node {node!r}")
    raise ConflictError(f"approval node {node!r} has not started yet, so it cannot be decided")


@router.post("/runs/{run_id}/nodes/{node}/approval")
async def decide(ctx: Context, run_id: RunId, node: NodeRef, body: ApprovalBody) -> dict[str, Any]:
    """Approve or reject a waiting APPROVAL node. 403 if `by` is not an assignee; 404 unknown run or
    node; 409 if the node is not waiting for a decision (not started yet, or already decided)."""
    run = await ctx.store.get_run(run_id)
    node_run = await waiting_node_run(ctx, run, node)
    decision = approval.Decision(decision=body.decision, by=body.by, comment=body.comment, payload=body.payload)
    approval.check(node_run, decision)
    entry, inserted = await ctx.store.insert_entry(approval.KIND, node_run.key, decision.as_data(), now=ctx.clock())
    if not inserted:
        earlier = approval.Decision(**entry.data)
        if node_run.status == "WAITING":  # the first decision's command may have been lost: send it again
            await send_command(ctx.bus, approval.complete_message(node_run, earlier))
        raise approval.already_decided(node_run, entry.data)
    await send_command(ctx.bus, approval.complete_message(node_run, decision))
    return {"ok": True, "approval": {"workflowRunIdentifier": run.id, "nodeIdentifier": node_run.node_id,
                                     "nodeRunIdentifier": node_run.id, **decision.as_data()}}
