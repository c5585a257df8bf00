"""Agents and MCP servers: create or replace, read, delete (libs/core/agents.py has the records).

Both are entries of the caller's workspace. An MCP server's `headersSecret` is only a secret's name:
its value stays in the secret store and is read by the executor when it connects.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel
from starlette.responses import Response

from libs.access.principal import Principal
from libs.core.agents import KIND_AGENTS, KIND_MCP_SERVERS, Agent, McpServer
from libs.core.errors import InputError, Issue, NotFoundError
from libs.core.identifiers import MAX_IDENTIFIER_LENGTH
from libs.core.workspaces import scoped
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.responses import ApiJSONResponse
from services.trigger.strict_json import StrictJsonRoute

agents_router = APIRouter(prefix="/v1/agents", tags=["agents"], route_class=StrictJsonRoute)
mcp_router = APIRouter(prefix="/v1/mcp-servers", tags=["agents"], route_class=StrictJsonRoute)

AUDITED = {KIND_AGENTS: "agent", KIND_MCP_SERVERS: "mcp_server"}
"""The audit actions' prefix per kind (`agent.written`, `mcp_server.deleted`, ...)."""

Identifier = Annotated[str, Path(min_length=1, max_length=MAX_IDENTIFIER_LENGTH, pattern=r"^[\w@:-]+$",
                                 description="1–60 letters, digits and @ _ : -")]


async def _put(ctx: ApiContext, caller: Principal, kind: str, identifier: str, record: BaseModel) -> Response:
    key = scoped(caller.workspace, identifier)
    created = await ctx.store.get_entry(kind, key) is None
    data = record.model_dump(mode="json")
    await ctx.store.put_entry(kind, key, data, now=ctx.clock())
    await ctx.audit(caller, f"{AUDITED[kind]}.written", identifier, {"created": created})
    name = "agent" if kind == KIND_AGENTS else "mcpServer"
    return ApiJSONResponse({"ok": True, name: {"identifier": identifier, **data}},
                           status_code=201 if created else 200)


async def _get(ctx: ApiContext, caller: Principal, kind: str, identifier: str) -> dict[str, Any]:
    entry = await ctx.store.get_entry(kind, scoped(caller.workspace, identifier))
    if entry is None:
        raise NotFoundError(f"{'agent' if kind == KIND_AGENTS else 'MCP server'} {identifier!r} does not exist")
    return {"identifier": identifier, **entry.data}


async def _delete(ctx: ApiContext, caller: Principal, kind: str, identifier: str) -> dict[str, Any]:
    if not await ctx.store.delete_entry(kind, scoped(caller.workspace, identifier)):
        raise NotFoundError(f"{'agent' if kind == KIND_AGENTS else 'MCP server'} {identifier!r} does not exist")
    await ctx.audit(caller, f"{AUDITED[kind]}.deleted", identifier, {})
    return {"ok": True}


@agents_router.put("/{identifier}", status_code=201, response_model=None)
async def put_agent(ctx: Context, caller: Caller, identifier: Identifier, body: Annotated[Agent, Body()]) -> Response:
    """Create (201) or replace (200) an agent of the caller's workspace. Its `provider`, when given,
    must be one of the configured providers (STEPLINE_AI_PROVIDERS)."""
    configured = ctx.settings.providers()
    if body.provider is not None and body.provider not in configured:
        names = ", ".join(configured) or "none"
        raise InputError("invalid agent", [Issue("/provider", f"{body.provider!r} is not a configured AI provider "
                                                               f"(configured: {names})")])
    return await _put(ctx, caller, KIND_AGENTS, identifier, body)


@agents_router.get("/{identifier}")
async def get_agent(ctx: Context, caller: Caller, identifier: Identifier) -> dict[str, Any]:
    return {"ok": True, "agent": await _get(ctx, caller, KIND_AGENTS, identifier)}


@agents_router.delete("/{identifier}")
async def delete_agent(ctx: Context, caller: Caller, identifier: Identifier) -> dict[str, Any]:
    return await _delete(ctx, caller, KIND_AGENTS, identifier)


@mcp_router.put("/{identifier}", status_code=201, response_model=None)
async def put_mcp_server(ctx: Context, caller: Caller, identifier: Identifier,
                         body: Annotated[McpServer, Body()]) -> Response:
    """Create (201) or replace (200) an MCP server of the caller's workspace."""
    return await _put(ctx, caller, KIND_MCP_SERVERS, identifier, body)


@mcp_router.get("/{identifier}")
async def get_mcp_server(ctx: Context, caller: Caller, identifier: Identifier) -> dict[str, Any]:
    return {"ok": True, "mcpServer": await _get(ctx, caller, KIND_MCP_SERVERS, identifier)}


@mcp_router.delete("/{identifier}")
async def delete_mcp_server(ctx: Context, caller: Caller, identifier: Identifier) -> dict[str, Any]:
    return await _delete(ctx, caller, KIND_MCP_SERVERS, identifier)
