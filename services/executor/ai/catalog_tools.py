"""Stepline's catalog read tools for agents (`list_blueprints`, `list_entities`, `search_entities`,
`get_entity`), over libs/catalog in the current run's workspace. Read only; results are bounded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from libs.access.secret_scope import current_workspace
from libs.catalog.store import KIND, Catalog
from libs.core.errors import ActionError
from libs.core.workspaces import public, scoped, workspace_of
from libs.store.ports import EntryStore
from services.executor.ai.models import ToolSpec

MAX_RESULTS = 100
SCAN = 1000
_STRING = {"type": "string"}

SPECS: dict[str, ToolSpec] = {
    "list_blueprints": ToolSpec("list_blueprints", "The blueprints (entity kinds) of the catalog.",
                                {"type": "object", "properties": {}}),
    "list_entities": ToolSpec("list_entities", "The entities of one blueprint (at most `limit`).",
                              {"type": "object", "required": ["blueprint"],
                               "properties": {"blueprint": _STRING, "limit": {"type": "integer"}}}),
    "search_entities": ToolSpec("search_entities", "Entities whose identifier, title or properties contain "
                                "`query` (any case), optionally of one blueprint.",
                                {"type": "object", "required": ["query"],
                                 "properties": {"query": _STRING, "blueprint": _STRING}}),
    "get_entity": ToolSpec("get_entity", "One entity by blueprint and identifier.",
                           {"type": "object", "required": ["blueprint", "identifier"],
                            "properties": {"blueprint": _STRING, "identifier": _STRING}}),
}


def _text(arguments: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = arguments.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ActionError(f"argument {name!r} must be a non-empty string")
    return value


class CatalogTools:
    def __init__(self, store: EntryStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def catalog(self) -> Catalog:
        return Catalog(self.store, self.clock, workspace=current_workspace())

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        if name == "list_blueprints":
            return {"blueprints": sorted({e["blueprint"] for e in await self._all()})}
        if name == "list_entities":
            limit = arguments.get("limit", MAX_RESULTS)
            count = min(limit, MAX_RESULTS) if isinstance(limit, int) and limit > 0 else MAX_RESULTS
            return {"entities": await self.catalog().list(_text(arguments, "blueprint") or "", limit=count, offset=0)}
        if name == "search_entities":
            return {"entities": await self._search(_text(arguments, "query") or "",
                                                   _text(arguments, "blueprint", required=False))}
        entity = await self.catalog().get(_text(arguments, "blueprint") or "", _text(arguments, "identifier") or "")
        return {"entity": entity} if entity is not None else {"entity": None, "error": "no such entity"}

    async def _all(self) -> list[dict[str, Any]]:
        """Up to SCAN entities of the current workspace, each with its public `blueprint`."""
        workspace = current_workspace()
        found = []
        for entry in await self.store.list_entries(KIND, prefix=scoped(workspace, ""), limit=SCAN):
            blueprint = entry.key.split("/", 1)[0]
            if workspace_of(blueprint) == workspace:
                found.append({**entry.data, "blueprint": public(blueprint)})
        return found

    async def _search(self, query: str, blueprint: str | None) -> list[dict[str, Any]]:
        needle = query.lower()
        hits = [e for e in await self._all()
                if (blueprint is None or e["blueprint"] == blueprint) and needle in json.dumps(e).lower()]
        return hits[:MAX_RESULTS]
