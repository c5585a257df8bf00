"""The catalog on the entry store: entities are entries of kind `entity` keyed `{blueprint}/{identifier}`.

An upsert reads the entity and writes it back with `replace_entry` (compare-and-set on `rev`), or
inserts it if absent, and starts over when another writer got there first: concurrent upserts of one
entity never lose each other's fields. Entries of kind `entity-change` remember, per node run, the
change an UPSERT_ENTITY made, so a re-executed attempt republishes that change instead of making
another. Entries of kind `catalog-event-applied` (keyed `{workspace}/{event id}`) remember the catalog
events from outside that `apply` wrote, so a redelivered or re-sent event id changes nothing again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from libs.catalog.entities import EntityPatch, iso_time, merged, mirrored, same_content
from libs.contracts import v1
from libs.core.catalog import entity_key
from libs.core.workspaces import DEFAULT_WORKSPACE, scoped
from libs.store.ports import EntryStore
from libs.store.races import LOST, Lost, until_won

KIND = "entity"
CHANGE_KIND = "entity-change"
APPLIED_KIND = "catalog-event-applied"


@dataclass(frozen=True)
class Change:
    action: Literal["CREATE", "UPDATE"] | None
    """None when the upsert changed nothing (and wrote nothing)."""
    before: dict[str, Any] | None
    after: dict[str, Any]


class Catalog:
    def __init__(self, store: EntryStore, clock: Callable[[], float], *, workspace: str = DEFAULT_WORKSPACE) -> None:
        self._store = store
        self._clock = clock
        self._workspace = workspace

    def _key(self, blueprint: str, identifier: str) -> str:
        """Entities of another workspace live under `<workspace>~<blueprint>/…` (libs/core/workspaces.py)."""
        return entity_key(scoped(self._workspace, blueprint), identifier)

    async def get(self, blueprint: str, identifier: str) -> dict[str, Any] | None:
        entry = await self._store.get_entry(KIND, self._key(blueprint, identifier))
        return entry.data if entry is not None else None

    async def list(self, blueprint: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        """The blueprint's entities in identifier order."""
        entries = await self._store.list_entries(KIND, prefix=self._key(blueprint, ""), limit=limit, offset=offset)
        return [e.data for e in entries]

    async def upsert(self, blueprint: str, patch: EntityPatch) -> Change:
        """Create the entity or apply `patch` to it; ConcurrentUpdateError (retryable) if it kept
        losing the compare-and-set."""
        key = self._key(blueprint, patch.identifier)

        async def attempt() -> Change | Lost:
            now = self._clock()
            current = await self._store.get_entry(KIND, key)
            if current is None:
                created = merged(None, blueprint, patch, iso_time(now))
                _, inserted = await self._store.insert_entry(KIND, key, created, now=now)
                return Change("CREATE", None, created) if inserted else LOST
            after = merged(current.data, blueprint, patch, iso_time(now))
            if same_content(current.data, after):
                return Change(None, current.data, current.data)
            if await self._store.replace_entry(KIND, key, after, expected_rev=current.rev, now=now) is not None:
                return Change("UPDATE", current.data, after)
            return LOST

        return await until_won(attempt, f"entity {key!r}")

    async def recorded_change(self, token: str) -> dict[str, Any] | None:
        """What `record_change(token, ...)` stored, if anything."""
        entry = await self._store.get_entry(CHANGE_KIND, token)
        return entry.data if entry is not None else None

    async def record_change(self, token: str, data: dict[str, Any]) -> dict[str, Any]:
        """Remember `data` under `token` (first writer wins); returns what is stored."""
        entry, _ = await self._store.insert_entry(CHANGE_KIND, token, data, now=self._clock())
        return entry.data

    async def apply(self, event: v1.CatalogEvent) -> bool:
        """Make the stored entity what an outside catalog event says it became: CREATE and UPDATE store
        `diff.after`, DELETE removes the entity. Once per event id (False when it was applied before);
        an event applied but not yet remembered (a crash in between) is applied again, which rewrites
        the same entity."""
        marker = f"{self._workspace}/{event.id}"
        if await self._store.get_entry(APPLIED_KIND, marker) is not None:
            return False
        blueprint, identifier = event.context.blueprintIdentifier, event.context.entityIdentifier
        if event.action == "DELETE" or event.diff.after is None:
            await self._store.delete_entry(KIND, self._key(blueprint, identifier))
        else:
            await self._mirror(blueprint, identifier, event.diff.after)
        await self._store.insert_entry(APPLIED_KIND, marker, {"entity": entity_key(blueprint, identifier)},
                                       now=self._clock())
        return True

    async def _mirror(self, blueprint: str, identifier: str, after: dict[str, Any]) -> None:
        key = self._key(blueprint, identifier)
        now = self._clock()
        current = await self._store.get_entry(KIND, key)
        entity = mirrored(current.data if current is not None else None, blueprint, identifier, after, iso_time(now))
        if current is None or not same_content(current.data, entity):
            await self._store.put_entry(KIND, key, entity, now=now)
