"""Workflows: create, list, get, replace (a new immutable version), soft delete; versions and tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from libs.access.workspaces import belongs_to
from libs.core.errors import NotFoundError
from libs.core.limits import admit_definition
from libs.core.validation import parse_workflow
from libs.core.versioning import VersionRecord, WorkflowRecord, is_valid_tag
from libs.store.pausing import is_paused
from services.trigger import presenters
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.models import MAX_VERSION, TagBody
from services.trigger.errors import invalid
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], route_class=StrictJsonRoute)

WorkflowId = Annotated[str, Path(description="The workflow's identifier")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number")]
TagPath = Annotated[str, Path(description="A tag such as $LIVE")]
Definition = Annotated[dict[str, Any], Body(description="A workflow definition (DESIGN §2)")]


def normalized(raw: dict[str, Any], ctx: ApiContext) -> dict[str, Any]:
    """Check quotas and validate a definition (DefinitionError with pointers); the normalised form."""
    admit_definition(raw, ctx.settings.limits())
    return parse_workflow(raw).model_dump(mode="json", exclude_none=True)


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
    """The workspace's workflows at their `$LIVE` version; `isDeleted=true` lists the deleted ones instead."""
    records = await ctx.store.list_workflows(include_deleted=is_deleted)
    mine = [r for r in records if r.deleted == is_deleted and belongs_to(r.identifier, caller.workspace)]
    return {"ok": True, "workflows": [await shown(ctx, r) for r in mine]}


@router.get("/{workflow_id}")
async def get_workflow(ctx: Context, caller: Caller, workflow_id: WorkflowId) -> dict[str, Any]:
    record = await scope.workflow_of(ctx, caller, workflow_id)
    return {"ok": True, "workflow": await shown(ctx, record)}


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
