"""Secrets: create or replace, list (names and times, never values), delete.

Values are sealed by the vault (libs/secrets) before they reach the store. A trigger service
started without a secrets key answers 409 on every route here.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from starlette.responses import Response

from libs.core.errors import ConflictError, NotFoundError
from libs.core.workspaces import belongs_to, public, scoped
from libs.secrets.vault import MAX_NAME_LENGTH, MAX_VALUE_BYTES, NAME_PATTERN, NO_KEY_MESSAGE, SecretInfo, SecretVault
from services.trigger import presenters
from services.trigger.api.context import Caller, Context
from services.trigger.responses import ApiJSONResponse
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/secrets", tags=["secrets"], route_class=StrictJsonRoute)

SecretName = Annotated[str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN,
                                 description="1–60 characters of letters, digits and @ _ : . -")]


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: StrictStr = Field(min_length=1)

    @field_validator("value")
    @classmethod
    def _at_most_64_kib(cls, value: str) -> str:
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise ValueError(f"value must be at most {MAX_VALUE_BYTES} bytes (UTF-8)")
        return value


def vault_of(request: Request) -> SecretVault:
    """The app's vault; 409 when the service has no secrets key."""
    vault = cast(SecretVault | None, getattr(request.app.state, "secrets", None))
    if vault is None:
        raise ConflictError(NO_KEY_MESSAGE)
    return vault


def _shown(info: SecretInfo) -> dict[str, Any]:
    return {"name": public(info.name), "createdAt": presenters.iso(info.created_at),
            "updatedAt": presenters.iso(info.updated_at)}


@router.put("/{name}", status_code=201, response_model=None)
async def put_secret(ctx: Context, caller: Caller, request: Request, name: SecretName,
                     body: Annotated[SecretBody, Body()]) -> Response:
    """Create (201) or replace (200) a secret of the caller's workspace. The answer never holds the value."""
    info, created = await vault_of(request).put(scoped(caller.workspace, name), body.value, now=ctx.clock())
    await ctx.audit(caller, "secret.written", name, {"created": created})
    return ApiJSONResponse({"ok": True, "secret": _shown(info)}, status_code=201 if created else 200)


@router.get("")
async def list_secrets(caller: Caller, request: Request) -> dict[str, Any]:
    """The workspace's secrets' names and times, in name order; never a value."""
    infos = [i for i in await vault_of(request).list() if belongs_to(i.name, caller.workspace)]
    return {"ok": True, "secrets": [_shown(info) for info in infos]}


@router.delete("/{name}")
async def delete_secret(ctx: Context, caller: Caller, request: Request, name: SecretName) -> dict[str, Any]:
    """404 if there is no such secret."""
    if not await vault_of(request).delete(scoped(caller.workspace, name)):
        raise NotFoundError(f"secret {name!r} does not exist")
    await ctx.audit(caller, "secret.deleted", name, {})
    return {"ok": True}
