"""Port's node-permission routes: `/v1/workflows/{wf}/nodes/{node}/permissions` read and change the
`{combinator, rules}` policy of a SELF_SERVE_TRIGGER node (its `config.permissions.policy`, enforced
when a run starts: libs/access/trigger_permissions.py). Each change is a new workflow version with
`$LIVE` moved to it, as a PUT of the whole workflow would be. Answers are Port's `{ok, workflow}`,
`workflow` being the policy."""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from libs.core.errors import ConflictError, NotFoundError
from libs.core.permission_policy import policy_issues
from libs.core.versioning import WorkflowRecord
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.workflows import normalized
from services.trigger.errors import RequestInvalidError
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], route_class=StrictJsonRoute)

WorkflowId = Annotated[str, Path(description="The workflow's identifier")]
NodeId = Annotated[str, Path(description="A SELF_SERVE_TRIGGER node's identifier")]
Policy = Annotated[dict[str, Any], Body(description="`{combinator: and|or, rules: [...]}` (Port's shape)")]
PATH = "/{workflow_id}/nodes/{node}/permissions"
SELF_SERVE = "SELF_SERVE_TRIGGER"


async def live_definition(ctx: ApiContext, record: WorkflowRecord) -> dict[str, Any]:
    version = await ctx.store.get_version(record.identifier, record.live_version)
    return copy.deepcopy(version.definition)


def trigger_config(definition: dict[str, Any], workflow_id: str, node: str) -> dict[str, Any]:
    """The node's config; 404 for an unknown node, 409 for a node that is not a SELF_SERVE_TRIGGER
    (only those have permissions)."""
    nodes = definition.get("nodes")
    found = next((n for n in nodes if isinstance(n, dict) and n.get("identifier") == node), None) \
        if isinstance(nodes, list) else None
    config = found.get("config") if found is not None else None
    if not isinstance(config, dict):
        raise NotFoundError(f"workflow {workflow_id!r} has no node {node!r}")
    if config.get("type") != SELF_SERVE:
        raise ConflictError(f"node {node!r} of {workflow_id!r} is a {config.get('type')}; only "
                            f"{SELF_SERVE} nodes have permissions")
    return config


def policy_of(config: dict[str, Any], workflow_id: str, node: str) -> dict[str, Any]:
    permissions = config.get("permissions")
    policy = permissions.get("policy") if isinstance(permissions, dict) else None
    if not isinstance(policy, dict):
        raise NotFoundError(f"node {node!r} of {workflow_id!r} has no permissions policy; create one with "
                            f"POST /v1/workflows/{workflow_id}/nodes/{node}/permissions")
    return policy


def checked(body: dict[str, Any]) -> dict[str, Any]:
    found = policy_issues(body)
    if found:
        raise RequestInvalidError(found)
    return body


async def publish(ctx: ApiContext, caller: Caller, record: WorkflowRecord, definition: dict[str, Any]) -> None:
    stored = normalized(definition, ctx)
    _, version = await ctx.store.add_version(record.identifier, stored, now=ctx.clock(), by=caller.user,
                                             title=stored.get("title"), description=stored.get("description"))
    await ctx.audit(caller, "workflow.published", str(stored["identifier"]), {"version": version.version})


async def change(ctx: ApiContext, caller: Caller, workflow_id: str, node: str,
                 policy: dict[str, Any] | None, *, exists: bool | None) -> dict[str, Any]:
    """Set (or, `policy` None, remove) the node's policy as a new version. `exists`: True requires
    one (404 otherwise), False requires none (409 otherwise), None either."""
    record = await scope.workflow_of(ctx, caller, workflow_id)
    definition = await live_definition(ctx, record)
    config = trigger_config(definition, workflow_id, node)
    found = config.get("permissions")
    permissions: dict[str, Any] = found if isinstance(found, dict) else {}
    before = permissions.get("policy")
    if exists is True:
        before = policy_of(config, workflow_id, node)
    if exists is False and isinstance(before, dict):
        raise ConflictError(f"node {node!r} of {workflow_id!r} already has a permissions policy; change it "
                            "with PATCH")
    rest = {k: v for k, v in permissions.items() if k != "policy"}
    config["permissions"] = rest if policy is None else {**rest, "policy": policy}
    await publish(ctx, caller, record, definition)
    return {"ok": True, "workflow": policy if policy is not None else before}


@router.get(PATH)
async def get_node_permissions(ctx: Context, caller: Caller, workflow_id: WorkflowId, node: NodeId) -> dict[str, Any]:
    """The node's policy at `$LIVE`; 404 when it has none."""
    record = await scope.workflow_of(ctx, caller, workflow_id)
    config = trigger_config(await live_definition(ctx, record), workflow_id, node)
    return {"ok": True, "workflow": policy_of(config, workflow_id, node)}


@router.post(PATH, status_code=201)
async def create_node_permissions(ctx: Context, caller: Caller, workflow_id: WorkflowId, node: NodeId,
                                  body: Policy) -> dict[str, Any]:
    """Give the node a policy (409 when it has one)."""
    return await change(ctx, caller, workflow_id, node, checked(body), exists=False)


@router.patch(PATH)
async def update_node_permissions(ctx: Context, caller: Caller, workflow_id: WorkflowId, node: NodeId,
                                  body: Policy) -> dict[str, Any]:
    """Replace the node's policy (404 when it has none)."""
    return await change(ctx, caller, workflow_id, node, checked(body), exists=True)


@router.delete(PATH)
async def delete_node_permissions(ctx: Context, caller: Caller, workflow_id: WorkflowId,
                                  node: NodeId) -> dict[str, Any]:
    """Remove the node's policy (its `users` and `roles` stay); answers the removed policy."""
    return await change(ctx, caller, workflow_id, node, None, exists=True)
