"""Liveness and readiness."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from services.trigger.api.context import Context
from services.trigger.errors import error_response
from services.trigger.strict_json import StrictJsonRoute

logger = logging.getLogger("stepline.trigger.api")
router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"ok": True}


@router.get("/readyz", response_model=None)
async def readyz(ctx: Context) -> dict[str, Any] | Response:
    """200 when the store answers, else 503."""
    try:
        ready = await ctx.store.ping()
    except Exception:
        logger.warning("readiness check: store ping raised", exc_info=True)
        ready = False
    if not ready:
        return error_response(503, "store_unavailable", "the store does not answer; not ready")
    return {"ok": True}
