"""Deciding an APPROVAL node: `POST /v1/workflows/runs/{run}/nodes/{node}/approval`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from libs.access.principal import Principal
from libs.core.errors import ConflictError, ForbiddenError, NotFoundError
from libs.core.run import NodeRun, Run, node_run_key
from libs.store.ports import Entry
from services.trigger import approval
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["approvals"], route_class=StrictJsonRoute)

RunId = Annotated[str, Path(description="A run identifier (wfr_…)")]
NodeRef = Annotated[str, Path(description="The APPROVAL node's identifier (or its node run id, wfnr_…)")]


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    by: str | None = Field(default=None, min_length=1, max_length=200,
                           description="Who decides; it is the API key's user, and a different value is refused.")
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


async def decider(ctx: ApiContext, caller: Principal, run: Run, node_run: NodeRun) -> approval.Decider:
    workflow = await ctx.definitions.get(run.workflow, run.version)
    config = workflow.node(node_run.node_id).config if workflow.has_node(node_run.node_id) else {}
    return approval.Decider(user=caller.user, role=caller.role, started_the_run=run.trigger.by == caller.user,
                            may_self_approve=config.get("allowSelfApproval") is True)


async def _decided_already(ctx: ApiContext, node_run: NodeRun, recorded: Entry) -> ConflictError:
    """The 409 for a second decision; while the node run still waits, the first decision's command
    is sent again (it may have been lost)."""
    if node_run.status == "WAITING":
        earlier = approval.Decision(**recorded.data)
        await ctx.publisher.publish(approval.complete_message(node_run, earlier, ctx.clock()))
    return approval.already_decided(node_run, recorded.data)


@router.post("/runs/{run_id}/nodes/{node}/approval")
async def decide(ctx: Context, caller: Caller, run_id: RunId, node: NodeRef, body: ApprovalBody) -> dict[str, Any]:
    """Approve or reject a waiting APPROVAL node as the API key's user. 403 if that user (or role) is
    not an assignee, if `by` names someone else, or for an approval of one's own run without
    `allowSelfApproval`; 404 unknown run or node; 409 if the node is not waiting for a decision."""
    if body.by is not None and body.by != caller.user:
        raise ForbiddenError(f"by {body.by!r} is not the caller: decisions are made as the API key's user {caller.user!r}")
    run = await scope.run_of(ctx, caller, run_id)
    node_run = await waiting_node_run(ctx, run, node)
    if (recorded := await ctx.store.get_entry(approval.KIND, node_run.key)) is not None:
        raise await _decided_already(ctx, node_run, recorded)  # also while its completion is on its way
    decision = approval.Decision(decision=body.decision, by=caller.user, comment=body.comment, payload=body.payload)
    approval.check(node_run, decision, await decider(ctx, caller, run, node_run))
    entry, inserted = await ctx.store.insert_entry(approval.KIND, node_run.key, decision.as_data(), now=ctx.clock())
    if not inserted:
        raise await _decided_already(ctx, node_run, entry)
    await ctx.publisher.publish(approval.complete_message(node_run, decision, ctx.clock()))
    await ctx.audit(caller, "approval.decided", node_run.id, {"run": run.id, "node": node_run.node_id,
                                                             "decision": body.decision})
    return {"ok": True, "approval": {"workflowRunIdentifier": run.id, "nodeIdentifier": node_run.node_id,
                                     "nodeRunIdentifier": node_run.id, **decision.as_data()}}
