"""Workflow metrics: `GET /v1/workflows/{id}/metrics?from=&to=` (docs/api.md, "Workflow metrics")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from libs.core.run_metrics import Window
from libs.core.workspaces import public
from services.trigger.api import scope
from services.trigger.api.context import Caller, Context
from services.trigger.api.runs import From, Until, instant
from services.trigger.errors import invalid
from services.trigger.strict_json import StrictJsonRoute
from services.trigger.workflow_metrics import DAY, folded_metrics, from_stream, workflow_metrics

router = APIRouter(prefix="/v1/workflows", tags=["metrics"], route_class=StrictJsonRoute)

DEFAULT_SPAN = DAY
MAX_SPAN = 31 * DAY


def window_of(start: float | None, end: float | None, now: float) -> Window:
    """`to` defaults to now, `from` to a day before `to`; at most 31 days, `from` before `to`."""
    end = now if end is None else end
    start = end - DEFAULT_SPAN if start is None else start
    if not start < end:
        raise invalid("/query/from", "from must be before to")
    if end - start > MAX_SPAN:
        raise invalid("/query/from", "the window from..to may span at most 31 days")
    return Window(start, end)


@router.get("/{workflow_id}/metrics")
async def get_metrics(ctx: Context, caller: Caller, workflow_id: Annotated[str, Path()],
                      created_from: From = None, to: Until = None) -> dict[str, Any]:
    """Counts, rates, duration percentiles and runs per hour of the runs created in the window."""
    record = await scope.workflow_of(ctx, caller, workflow_id, include_deleted=True)
    window = window_of(instant("from", created_from), instant("to", to), ctx.clock())
    read = folded_metrics if from_stream(ctx.settings.bus_url) else workflow_metrics
    shown = await read(ctx.store, record.identifier, public(record.identifier), window)
    return {"ok": True, "metrics": shown}
