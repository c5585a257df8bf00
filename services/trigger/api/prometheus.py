"""`GET /metrics`: the Prometheus text exposition of this process's metrics (libs/telemetry/metrics.py),
limited to the series of the caller's workspace. In embedded mode every service runs in this process,
so these are the engine's metrics; in distributed mode each service also serves all of its own on its
health port."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from libs.telemetry import metrics
from services.trigger.api.context import Caller

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def prometheus(caller: Caller) -> Response:
    return Response(metrics.exposition(caller.workspace), media_type=metrics.CONTENT_TYPE)
