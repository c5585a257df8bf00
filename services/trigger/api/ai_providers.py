"""`GET /v1/ai/providers`: the model providers AI steps may name (settings `STEPLINE_AI_PROVIDERS`),
the first being the default. Names of their key secrets are shown, never a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.trigger.api.context import Context
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/ai", tags=["ai"], route_class=StrictJsonRoute)


@router.get("/providers")
async def list_providers(ctx: Context) -> dict[str, Any]:
    """The configured providers in order: `{name, kind, baseUrl, model, apiKeySecret}`."""
    providers = list(ctx.settings.providers().values())
    return {"ok": True, "providers": [p.public() for p in providers],
            "default": providers[0].name if providers else None}
