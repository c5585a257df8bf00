"""Workflows: create, list, get, replace (a new immutable version), soft delete; versions and tags."""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from libs.core.errors import NotFoundError
from libs.core.limits import admit_definition
from libs.core.validation import parse_workflow
from libs.core.versioning import VersionRecord, WorkflowRecord, is_valid_tag
from libs.core.workspaces import belongs_to
from libs.store.pausing import is_paused
from services.trigger import presenters
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.models import MAX_VERSION, TagBody
from services.trigger.errors import invalid
from services.trigger.strict_json import StrictJsonRoute
from services.trigger.workflow_metrics import run_summary

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], route_class=StrictJsonRoute)

WorkflowId = Annotated[str, Path(description="The workflow's identifier")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number")]
TagPath = Annotated[str, Path(description="A tag such as $LIVE")]
Definition = Annotated[dict[str, Any], Body(description="A workflow definition (DESIGN §2)")]


def normalized(raw: dict[str, Any], ctx: ApiContext) -> dict[str, Any]:
    """Check quotas and validate a definition (DefinitionError with pointers); what is stored: the
    definition as submitted, so a GET returns what was PUT (Port's `outlets`, connections without
    identifiers, display fields; Terraform-style clients see no drift). Readers parse it again
    (libs/store/definitions.py), which normalises it."""
    admit_definition(raw, ctx.settings.limits())
    parse_workflow(raw)
    return copy.deepcopy(raw)


async def shown(ctx: ApiContext, record: WorkflowRecord, version: VersionRecord | None = None) -> dict[str, Any]:
    """The workflow at `version` (default `$LIVE`) with whether it is paused."""
    if version is None:
        version = await ctx.store.get_version(record.identifier, record.live_version)
    return {**presenters.workflow(record, version), "paused": await is_paused(ctx.store, record.identifier)}


def checked_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise invalid("/path/tag", f"tag {tag!r} must match ^\\$[A-Z_]+$ (at most 60 characters)")
    return tag


def checked_version(record: WorkflowRecord, version: int) -> int:
    if version > record.latest_version:
        raise NotFoundError(f"workflow {record.identifier!r} has no version {version}")
    return version


@router.post("", status_code=201)
async def create_workflow(ctx: Context, caller: Caller, definition: Definition) -> dict[str, Any]:
    """Create a workflow with version 1 and `$LIVE` → 1. 409 if the identifier exists."""
    stored = normalized(definition, ctx)
    now = ctx.clock()
    record = WorkflowRecord(identifier=scope.key(caller, stored["identifier"]), title=stored.get("title"),
                            description=stored.get("description"), owner=stored.get("owner"),
                            created_at=now, updated_at=now, created_by=caller.user, updated_by=caller.user)
    created, version = await ctx.store.create_workflow(record, stored)
    await ctx.audit(caller, "workflow.created", stored["identifier"], {"version": version.version})
    return {"ok": True, "workflow": await shown(ctx, created, version)}


@router.get("")
async def list_workflows(ctx: Context, caller: Caller,
                         is_deleted: Annotated[bool, Query(alias="isDeleted")] = False) -> dict[str, Any]:
    """The workspace's workflows at their `$LIVE` version with a summary of their runs (`lastRun`,
    `lastRunStatus`, `runs7d`, `successRate`); `isDeleted=true` lists the deleted ones instead."""
    records = await ctx.store.list_workflows(include_deleted=is_deleted)
    mine = [r for r in records if r.deleted == is_deleted and belongs_to(r.identifier, caller.workspace)]
    now = ctx.clock()
    return {"ok": True, "workflows": [{**await shown(ctx, r), **await run_summary(ctx.store, r.identifier, now)}
                                      for r in mine]}


@router.get("/{workflow_id}")
async def get_workflow(ctx: Context, caller: Caller, workflow_id: WorkflowId) -> dict[str, Any]:
    record = await scope.workflow_of(ctx, caller, workflow_id)
    return {"ok": True, "workflow": await shown(ctx, record)}


@router.get("/{workflow_id}/nodes/{node}")
async def get_workflow_node(ctx: Context, caller: Caller, workflow_id: WorkflowId,
                            node: Annotated[str, Path(description="A node identifier")]) -> dict[str, Any]:
    """Port's node read: `{workflow, node}` (the `$LIVE` version, the node as stored); 404 unknown node."""
    record = await scope.workflow_of(ctx, caller, workflow_id)
    workflow = await shown(ctx, record)
    nodes = workflow.get("nodes")
    found = next((n for n in nodes if isinstance(n, dict) and n.get("identifier") == node), None) \
        if isinstance(nodes, list) else None
    if found is None:
        raise NotFoundError(f"workflow {workflow_id!r} has no node {node!r}")
    return {"ok": True, "workflow": workflow, "node": found}


@router.put("/{workflow_id}")
async def replace_workflow(ctx: Context, caller: Caller, workflow_id: WorkflowId, definition: Definition) -> dict[str, Any]:
    """Store the body as a new immutable version and move `$LIVE` to it."""
    given = definition.get("identifier", workflow_id)
    if given != workflow_id:
        raise invalid("/identifier", f"identifier {given!r} does not match the workflow {workflow_id!r} in the path")
    stored = normalized({**definition, "identifier": workflow_id}, ctx)
    record = await scope.workflow_of(ctx, caller, workflow_id)
    record, version = await ctx.store.add_version(record.identifier, stored, now=ctx.clock(), by=caller.user,
                                                  title=stored.get("title"), description=stored.get("description"))
    await ctx.audit(caller, "workflow.published", workflow_id, {"version": version.version})
    return {"ok": True, "workflow": await shown(ctx, record, version)}


@router.delete("/{workflow_id}")
async def delete_workflow(ctx: Context, caller: Caller, workflow_id: WorkflowId) -> dict[str, Any]:
    """Soft delete: the workflow disappears from lists; its versions and runs stay readable."""
    record = await ctx.store.delete_workflow(scope.key(caller, workflow_id), now=ctx.clock())
    await ctx.audit(caller, "workflow.deleted", workflow_id, {})
    return {"ok": True, "workflow": await shown(ctx, record)}


@router.get("/{workflow_id}/versions")
async def list_versions(ctx: Context, caller: Caller, workflow_id: WorkflowId) -> dict[str, Any]:
    record = await scope.workflow_of(ctx, caller, workflow_id, include_deleted=True)
    versions = await ctx.store.list_versions(record.identifier)
    return {"ok": True, "versions": [presenters.version_summary(record, v) for v in versions]}


@router.get("/{workflow_id}/versions/{version}")
async def get_version(ctx: Context, caller: Caller, workflow_id: WorkflowId, version: VersionPath) -> dict[str, Any]:
    record = await scope.workflow_of(ctx, caller, workflow_id, include_deleted=True)
    stored = await ctx.store.get_version(record.identifier, checked_version(record, version))
    return {"ok": True, "version": presenters.version_detail(record, stored)}


@router.put("/{workflow_id}/tags/{tag}")
async def set_tag(ctx: Context, caller: Caller, workflow_id: WorkflowId, tag: TagPath, body: TagBody) -> dict[str, Any]:
    """Point `tag` at a version atomically (moving `$LIVE` rolls a workflow back or forward)."""
    name = checked_tag(tag)
    record = await scope.workflow_of(ctx, caller, workflow_id)
    record = await ctx.store.set_tag(record.identifier, name, checked_version(record, body.version), now=ctx.clock())
    await ctx.audit(caller, "tag.moved", workflow_id, {"tag": name, "version": body.version})
    return {"ok": True, "tag": presenters.tag(name, record.tags.get(name, body.version))}


@router.get("/{workflow_id}/tags/{tag}")
async def get_tag(ctx: Context, caller: Caller, workflow_id: WorkflowId, tag: TagPath) -> dict[str, Any]:
    name = checked_tag(tag)
    record = await scope.workflow_of(ctx, caller, workflow_id, include_deleted=True)
    if name not in record.tags:
        raise NotFoundError(f"workflow {workflow_id!r} has no tag {name}")
    return {"ok": True, "tag": presenters.tag(name, record.tags[name])}
