"""A cache of parsed workflow versions. Versions are immutable, so an entry never goes stale."""

from __future__ import annotations

from collections import OrderedDict

from libs.core.definition import Workflow
from libs.core.validation import parse_workflow
from libs.store.ports import DefinitionStore


class DefinitionCache:
    def __init__(self, store: DefinitionStore, *, size: int = 512) -> None:
        self._store = store
        self._size = size
        self._entries: OrderedDict[tuple[str, int], Workflow] = OrderedDict()

    async def get(self, workflow: str, version: int) -> Workflow:
        """The parsed definition of `workflow` at `version`; NotFoundError if absent."""
        key = (workflow, version)
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        record = await self._store.get_version(workflow, version)
        parsed = parse_workflow(record.definition)
        if parsed.identifier != workflow:  # stored under a workspace's key (libs/core/workspaces.py)
            parsed = parsed.model_copy(update={"identifier": workflow})
        self._entries[key] = parsed
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return parsed
