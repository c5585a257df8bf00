"""The catalog: read entities, and accept catalog events from other systems (→ catalog-events topic,
whose consumer applies them to the stored entities and matches EVENT_TRIGGERs against them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from starlette.responses import Response

from libs.catalog.entities import iso_time
from libs.catalog.events import InvalidCatalogEventError, parse_event
from libs.catalog.store import Catalog
from libs.core.catalog import is_blueprint_identifier
from libs.core.errors import NotFoundError
from services.trigger.api.context import Caller, Context
from services.trigger.errors import RequestInvalidError, invalid
from services.trigger.responses import ApiJSONResponse
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1", tags=["catalog"], route_class=StrictJsonRoute)

MAX_OFFSET = 2_147_483_647
Blueprint = Annotated[str, Path(max_length=200)]


def _blueprint(blueprint: str) -> str:
    if not is_blueprint_identifier(blueprint):
        raise invalid("/path/blueprint", "blueprint must be a blueprint identifier: letters, digits and @ _ = - only")
    return blueprint


@router.get("/blueprints/{blueprint}/entities")
async def list_entities(ctx: Context, caller: Caller, blueprint: Blueprint,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    """The blueprint's entities in identifier order."""
    catalog = Catalog(ctx.store, ctx.clock, workspace=caller.workspace)
    entities = await catalog.list(_blueprint(blueprint), limit=limit, offset=offset)
    return {"ok": True, "entities": entities, "limit": limit, "offset": offset}


@router.get("/blueprints/{blueprint}/entities/{identifier:path}")
async def get_entity(ctx: Context, caller: Caller, blueprint: Blueprint,
                     identifier: Annotated[str, Path(max_length=1000)]) -> dict[str, Any]:
    """One entity; 404 if the blueprint has no such entity."""
    entity = await Catalog(ctx.store, ctx.clock, workspace=caller.workspace).get(_blueprint(blueprint), identifier)
    if entity is None:
        raise NotFoundError(f"blueprint {blueprint!r} has no entity {identifier!r}")
    return {"ok": True, "entity": entity}


@router.post("/catalog/events", status_code=202, response_model=None)
async def post_event(ctx: Context, caller: Caller, body: Annotated[dict[str, Any], Body()]) -> Response:
    """Publish a catalog event in Port's shape to the catalog-events topic, whose consumer applies it
    to the stored entity and then starts a run of every live EVENT_TRIGGER it matches. An absent `id`
    is generated; sending the same `id` again changes and starts nothing new."""
    try:
        event = parse_event({**body, "workspace": caller.workspace}, timestamp=iso_time(ctx.clock()))
    except InvalidCatalogEventError as exc:
        raise RequestInvalidError(exc.issues) from None
    await ctx.publisher.publish(event)
    return ApiJSONResponse({"ok": True, "event": event.port_event()}, status_code=202)
