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
from libs.secrets.vault import MAX_NAME_LENGTH, MAX_VALUE_BYTES, NAME_PATTERN, NO_KEY_MESSAGE, SecretInfo, SecretVault
from services.trigger import presenters
from services.trigger.api.context import Context
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
    return {"name": info.name, "createdAt": presenters.iso(info.created_at),
            "updatedAt": presenters.iso(info.updated_at)}


@router.put("/{name}", status_code=201, response_model=None)
async def put_secret(ctx: Context, request: Request, name: SecretName,
                     body: Annotated[SecretBody, Body()]) -> Response:
    """Create (201) or replace (200) a secret. The answer never holds the value."""
    info, created = await vault_of(request).put(name, body.value, now=ctx.clock())
    return ApiJSONResponse({"ok": True, "secret": _shown(info)}, status_code=201 if created else 200)


@router.get("")
async def list_secrets(request: Request) -> dict[str, Any]:
    """Every secret's name and times, in name order; never a value."""
    return {"ok": True, "secrets": [_shown(info) for info in await vault_of(request).list()]}


@router.delete("/{name}")
async def delete_secret(request: Request, name: SecretName) -> dict[str, Any]:
    """404 if there is no such secret."""
    if not await vault_of(request).delete(name):
        raise NotFoundError(f"secret {name!r} does not exist")
    return {"ok": True}
