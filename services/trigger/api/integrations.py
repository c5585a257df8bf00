"""Port's integration-worker API: workers claim the node runs of INTEGRATION_ACTION nodes that wait for
their installation, acknowledge them, and complete them with the node-run PATCH.

`{org_id}` is accepted as Port sends it and not interpreted: the caller's key decides the workspace,
and only node runs of that workspace are claimed (libs/store/integration_queue.py has the queue)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import Field

from libs.access.principal import Principal
from libs.core.errors import ConflictError, NotFoundError
from libs.core.workspaces import belongs_to
from libs.store import integration_queue
from services.trigger import presenters
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.models import _Body
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/org/{org_id}/workflows/runs", tags=["integration workers"], route_class=StrictJsonRoute)

OrgId = Annotated[str, Path(max_length=200, description="Port's organization id (not interpreted)")]
NODE_RUN_ID = r"^wfnr_[a-zA-Z0-9]{16}$"


class ClaimBody(_Body):
    installationId: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=10, ge=1, le=100)
    visibilityTimeoutMs: int = Field(default=30_000, ge=1000, le=600_000)


class AckBody(_Body):
    nodeRunIdentifier: str = Field(pattern=NODE_RUN_ID)


def verdict_for(ctx: ApiContext, caller: Principal) -> Callable[[str], Awaitable[integration_queue.Verdict]]:
    """Claim a waiting node run of the caller's workspace; skip one still being queued (RUNNING) or of
    another workspace; drop one that is gone or completed."""
    async def verdict(node_run_key: str) -> integration_queue.Verdict:
        try:
            node_run = await ctx.store.get_node_run(node_run_key)
        except NotFoundError:
            return "drop"
        if node_run.status == "COMPLETED":
            return "drop"
        if node_run.status != "WAITING" or not belongs_to(node_run.workflow, caller.workspace):
            return "skip"
        return "claim"
    return verdict


@router.post("/claim-pending")
async def claim_pending(ctx: Context, caller: Caller, org_id: OrgId,
                        body: Annotated[ClaimBody, Body()]) -> dict[str, Any]:
    """Up to `limit` waiting node runs of the installation, each hidden from other claims for
    `visibilityTimeoutMs` unless acknowledged; their `output` is the rendered invocation."""
    claimed = await integration_queue.claim(ctx.store, body.installationId, limit=body.limit,
                                            visibility=body.visibilityTimeoutMs / 1000, now=ctx.clock(),
                                            verdict=verdict_for(ctx, caller))
    shown = []
    for item in claimed:
        node_run = await ctx.store.get_node_run(item.node_run_key)
        shown.append({**presenters.node_run(node_run), "pendingExecution": True,
                      "claimedUntil": presenters.iso(item.claimed_until), "installationId": body.installationId})
    return {"ok": True, "nodeRuns": shown}


@router.patch("/ack")
async def ack(ctx: Context, caller: Caller, org_id: OrgId, body: Annotated[AckBody, Body()]) -> dict[str, Any]:
    """Acknowledge a claimed node run: it is not handed out again. 404 unknown; 409 not (or no longer)
    waiting for an integration worker."""
    node_run = await scope.node_run_of(ctx, caller, body.nodeRunIdentifier)
    installation = node_run.output.get("installationId") if isinstance(node_run.output, dict) else None
    if node_run.node_type != "INTEGRATION_ACTION" or not isinstance(installation, str):
        raise ConflictError(f"node run {body.nodeRunIdentifier!r} is not one of an integration worker")
    if node_run.status != "WAITING":
        raise ConflictError(f"node run {body.nodeRunIdentifier!r} is {node_run.status}, not waiting")
    if await integration_queue.ack(ctx.store, installation, node_run.key, now=ctx.clock()) is None:
        raise NotFoundError(f"node run {body.nodeRunIdentifier!r} is not queued for installation {installation!r}")
    return {"ok": True, "acked": True}
