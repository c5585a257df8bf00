"""API keys and workspaces. A key is shown once, in the answer that creates it; lists never hold
it. Owners manage every workspace's keys and create workspaces; admins manage their own
workspace's keys (up to admin). Another workspace's key answers 404, as if it did not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from libs.access.keystore import ApiKeyInfo, WorkspaceInfo
from libs.access.principal import Principal, Role
from libs.access.roles import may_grant
from libs.core.errors import ConflictError, ForbiddenError, NotFoundError
from libs.core.workspaces import WORKSPACE_PATTERN
from services.trigger import presenters
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.errors import invalid
from services.trigger.responses import ApiJSONResponse
from services.trigger.strict_json import StrictJsonRoute

keys_router = APIRouter(prefix="/v1/api-keys", tags=["access"], route_class=StrictJsonRoute)
workspaces_router = APIRouter(prefix="/v1/workspaces", tags=["access"], route_class=StrictJsonRoute)

Text = Annotated[str, Field(min_length=1, max_length=200)]


class ApiKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text
    workspace: Annotated[str, Field(pattern=WORKSPACE_PATTERN)]
    role: Role
    user: Text
    expiresAt: Annotated[AwareDatetime, Field(strict=False)] | None = None


class WorkspaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    identifier: Annotated[str, Field(pattern=WORKSPACE_PATTERN)]
    title: Text


def shown_key(info: ApiKeyInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "workspace": info.workspace, "role": info.role,
            "user": info.user, "createdAt": presenters.iso(info.created_at),
            "expiresAt": presenters.iso(info.expires_at)}


def shown_workspace(info: WorkspaceInfo) -> dict[str, Any]:
    return {"identifier": info.identifier, "title": info.title, "createdAt": presenters.iso(info.created_at),
            "createdBy": info.created_by}


def _sees(caller: Principal, workspace: str) -> bool:
    return caller.role == "owner" or caller.workspace == workspace


async def _checked_key_body(ctx: ApiContext, caller: Caller, body: ApiKeyBody) -> float | None:
    if not _sees(caller, body.workspace):
        raise ForbiddenError(f"role {caller.role!r} may create keys only in workspace {caller.workspace!r}")
    if not may_grant(caller.role, body.role):
        raise ForbiddenError(f"role {caller.role!r} may not create a key of role {body.role!r}")
    if await ctx.workspaces.get(body.workspace) is None:
        raise invalid("/workspace", f"workspace {body.workspace!r} does not exist")
    expires = body.expiresAt.timestamp() if isinstance(body.expiresAt, datetime) else None
    if expires is not None and expires <= ctx.clock():
        raise invalid("/expiresAt", "expiresAt must be in the future")
    return expires


@keys_router.post("", status_code=201, response_model=None)
async def create_key(ctx: Context, caller: Caller, body: Annotated[ApiKeyBody, Body()]) -> Response:
    """201 `{apiKey, key}`: the key is in this answer only."""
    expires = await _checked_key_body(ctx, caller, body)
    info, key = await ctx.keys.create(name=body.name, workspace=body.workspace, role=body.role,
                                      user=body.user, expires_at=expires)
    await ctx.audit(caller, "apikey.created", info.id, {"name": info.name, "role": info.role,
                                                        "workspace": info.workspace, "user": info.user})
    return ApiJSONResponse({"ok": True, "apiKey": shown_key(info), "key": key}, status_code=201)


@keys_router.get("")
async def list_keys(ctx: Context, caller: Caller) -> dict[str, Any]:
    """The keys an owner (all) or admin (own workspace) manages; never the keys themselves."""
    infos = await ctx.keys.list(None if caller.role == "owner" else caller.workspace)
    return {"ok": True, "apiKeys": [shown_key(i) for i in infos]}


@keys_router.delete("/{key_id}")
async def revoke_key(ctx: Context, caller: Caller, key_id: Annotated[str, Path(max_length=40)]) -> dict[str, Any]:
    """Revoke a key: every service stops accepting it within a second."""
    info = await ctx.keys.get(key_id)
    if info is None or info.revoked_at is not None or not _sees(caller, info.workspace):
        raise NotFoundError(f"API key {key_id!r} does not exist")
    revoked = await ctx.keys.revoke(key_id)
    if revoked is None:
        raise NotFoundError(f"API key {key_id!r} does not exist")
    await ctx.audit(caller, "apikey.revoked", key_id, {"name": info.name, "workspace": info.workspace})
    return {"ok": True, "apiKey": shown_key(revoked)}


@workspaces_router.post("", status_code=201)
async def create_workspace(ctx: Context, caller: Caller, body: Annotated[WorkspaceBody, Body()]) -> dict[str, Any]:
    info, created = await ctx.workspaces.create(body.identifier, body.title, by=caller.user)
    if not created:
        raise ConflictError(f"workspace {body.identifier!r} exists")
    await ctx.audit(caller, "workspace.created", info.identifier, {"title": info.title})
    return {"ok": True, "workspace": shown_workspace(info)}


@workspaces_router.get("")
async def list_workspaces(ctx: Context, caller: Caller) -> dict[str, Any]:
    """Every workspace for an owner; a key's own workspace for everyone else."""
    infos = [i for i in await ctx.workspaces.list() if _sees(caller, i.identifier)]
    return {"ok": True, "workspaces": [shown_workspace(i) for i in infos]}
