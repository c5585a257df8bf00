"""Workflows: create, list, get, replace (a new immutable version), soft delete; versions and tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from libs.core.errors import NotFoundError
from libs.core.validation import parse_workflow
from libs.core.versioning import VersionRecord, WorkflowRecord, is_valid_tag
from libs.store.pausing import is_paused
from services.trigger import presenters
from services.trigger.api.context import ApiContext, Context, User
from services.trigger.api.models import MAX_VERSION, TagBody
from services.trigger.errors import invalid
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], route_class=StrictJsonRoute)

WorkflowId = Annotated[str, Path(description="The workflow's identifier")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number")]
TagPath = Annotated[str, Path(description="A tag such as $LIVE")]
Definition = Annotated[dict[str, Any], Body(description="A workflow definition (DESIGN §2)")]


def normalized(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a definition (DefinitionError with pointers) and return the normalised form we store."""
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
async def create_workflow(ctx: Context, user: User, definition: Definition) -> dict[str, Any]:
    """Create a workflow with version 1 and `$LIVE` → 1. 409 if the identifier exists."""
    stored = normalized(definition)
    now = ctx.clock()
    record = WorkflowRecord(identifier=stored["identifier"], title=stored.get("title"),
                            description=stored.get("description"), owner=stored.get("owner"),
                            created_at=now, updated_at=now, created_by=user, updated_by=user)
    created, version = await ctx.store.create_workflow(record, stored)
    return {"ok": True, "workflow": await shown(ctx, created, version)}


@router.get("")
async def list_workflows(ctx: Context, is_deleted: Annotated[bool, Query(alias="isDeleted")] = False) -> dict[str, Any]:
    """Workflows at their `$LIVE` version; `isDeleted=true` lists the deleted ones instead."""
    records = await ctx.store.list_workflows(include_deleted=is_deleted)
    return {"ok": True, "workflows": [await shown(ctx, r) for r in records if r.deleted == is_deleted]}


@router.get("/{workflow_id}")
async def get_workflow(ctx: Context, workflow_id: WorkflowId) -> dict[str, Any]:
    record = await ctx.store.get_workflow(workflow_id)
    return {"ok": True, "workflow": await shown(ctx, record)}


@router.put("/{workflow_id}")
async def replace_workflow(ctx: Context, user: User, workflow_id: WorkflowId, definition: Definition) -> dict[str, Any]:
    """Store the body as a new immutable version and move `$LIVE` to it."""
    given = definition.get("identifier", workflow_id)
    if given != workflow_id:
        raise invalid("/identifier", f"identifier {given!r} does not match the workflow {workflow_id!r} in the path")
    stored = normalized({**definition, "identifier": workflow_id})
    await ctx.store.get_workflow(workflow_id)
    record, version = await ctx.store.add_version(workflow_id, stored, now=ctx.clock(), by=user,
                                                  title=stored.get("title"), description=stored.get("description"))
    return {"ok": True, "workflow": await shown(ctx, record, version)}


@router.delete("/{workflow_id}")
async def delete_workflow(ctx: Context, workflow_id: WorkflowId) -> dict[str, Any]:
    """Soft delete: the workflow disappears from lists; its versions and runs stay readable."""
    record = await ctx.store.delete_workflow(workflow_id, now=ctx.clock())
    return {"ok": True, "workflow": await shown(ctx, record)}


@router.get("/{workflow_id}/versions")
async def list_versions(ctx: Context, workflow_id: WorkflowId) -> dict[str, Any]:
    record = await ctx.store.get_workflow(workflow_id, include_deleted=True)
    versions = await ctx.store.list_versions(workflow_id)
    return {"ok": True, "versions": [presenters.version_summary(record, v) for v in versions]}


@router.get("/{workflow_id}/versions/{version}")
async def get_version(ctx: Context, workflow_id: WorkflowId, version: VersionPath) -> dict[str, Any]:
    record = await ctx.store.get_workflow(workflow_id, include_deleted=True)
    stored = await ctx.store.get_version(workflow_id, checked_version(record, version))
    return {"ok": True, "version": presenters.version_detail(record, stored)}


@router.put("/{workflow_id}/tags/{tag}")
async def set_tag(ctx: Context, workflow_id: WorkflowId, tag: TagPath, body: TagBody) -> dict[str, Any]:
    """Point `tag` at a version atomically (moving `$LIVE` rolls a workflow back or forward)."""
    name = checked_tag(tag)
    record = await ctx.store.get_workflow(workflow_id)
    record = await ctx.store.set_tag(workflow_id, name, checked_version(record, body.version), now=ctx.clock())
    return {"ok": True, "tag": presenters.tag(name, record.tags.get(name, body.version))}


@router.get("/{workflow_id}/tags/{tag}")
async def get_tag(ctx: Context, workflow_id: WorkflowId, tag: TagPath) -> dict[str, Any]:
    name = checked_tag(tag)
    record = await ctx.store.get_workflow(workflow_id, include_deleted=True)
    if name not in record.tags:
        raise NotFoundError(f"workflow {workflow_id!r} has no tag {name}")
    return {"ok": True, "tag": presenters.tag(name, record.tags[name])}
