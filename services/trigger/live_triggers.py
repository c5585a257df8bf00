"""The trigger nodes of every live workflow version, by node type: what event, queue, run and
schedule ingress match against, read again only when a workflow changed."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from libs.core.definition import Node, Workflow
from libs.core.errors import DefinitionError
from libs.store.definitions import DefinitionCache
from libs.store.ports import DefinitionStore

_log = logging.getLogger("stepline.trigger")
_reported: set[tuple[str, int]] = set()
MAX_AGE_SECONDS = 30.0


@dataclass(frozen=True)
class LiveTrigger:
    workflow: Workflow
    version: int
    node: Node


class LiveTriggers:
    """The trigger nodes of every live workflow version, by node type, as of the store's definitions
    stamp (`DefinitionStore.definitions_stamp`): a lookup costs one entry read while no workflow has
    changed, and one listing of the workflows (their versions cached) when one has. Re-read at least
    every `MAX_AGE_SECONDS`, the bound on a stale view after a crash between a workflow write and its
    stamp."""

    def __init__(self, store: DefinitionStore, definitions: DefinitionCache,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._definitions = definitions
        self._clock = clock
        self._stamp: int | None = None
        self._read_at = -math.inf
        self._by_type: dict[str, list[LiveTrigger]] = {}
        self._reading = asyncio.Lock()
        """One listing at a time: lookups that find the view stale together wait for one listing."""

    async def of_type(self, node_type: str) -> list[LiveTrigger]:
        """Every `node_type` trigger node of the `$LIVE` version of every workflow that is not deleted."""
        stamp = await self._store.definitions_stamp()
        if self._stale(stamp):
            async with self._reading:
                if self._stale(stamp):
                    now = self._clock()
                    self._by_type = by_type(await _read(self._store, self._definitions))
                    self._stamp, self._read_at = stamp, now  # the stamp read before the listing: a later write moves it
        return self._by_type.get(node_type, [])

    def _stale(self, stamp: int) -> bool:
        """Behind `stamp` (stamps only grow: a view read at a newer one is not read again for an older)
        or too old."""
        return self._stamp is None or stamp > self._stamp or self._clock() - self._read_at >= MAX_AGE_SECONDS


def by_type(triggers: list[LiveTrigger]) -> dict[str, list[LiveTrigger]]:
    grouped: dict[str, list[LiveTrigger]] = {}
    for trigger in triggers:
        grouped.setdefault(trigger.node.type, []).append(trigger)
    return grouped


async def _read(store: DefinitionStore, definitions: DefinitionCache) -> list[LiveTrigger]:
    found: list[LiveTrigger] = []
    for record in await store.list_workflows():
        try:
            workflow = await definitions.get(record.identifier, record.live_version)
        except DefinitionError as exc:  # stored before a validation rule it breaks: it cannot fire
            if (record.identifier, record.live_version) not in _reported:
                _reported.add((record.identifier, record.live_version))
                _log.warning("workflow %s version %d is not valid (%s); its triggers are ignored",
                             record.identifier, record.live_version, exc)
            continue
        found.extend(LiveTrigger(workflow, record.live_version, node) for node in workflow.triggers())
    return found
