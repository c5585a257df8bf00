"""The trigger nodes of every live workflow version, by node type: what event, queue and schedule
ingress match against. Versions are immutable and cached, so a lookup costs one workflow listing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from libs.core.definition import Node, Workflow
from libs.core.errors import DefinitionError
from libs.store.definitions import DefinitionCache
from libs.store.ports import DefinitionStore

_log = logging.getLogger("stepline.trigger")
_reported: set[tuple[str, int]] = set()


@dataclass(frozen=True)
class LiveTrigger:
    workflow: Workflow
    version: int
    node: Node


async def live_triggers(store: DefinitionStore, definitions: DefinitionCache, node_type: str) -> list[LiveTrigger]:
    """Every `node_type` trigger node of the `$LIVE` version of every workflow that is not deleted."""
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
        found.extend(LiveTrigger(workflow, record.live_version, node)
                     for node in workflow.triggers() if node.type == node_type)
    return found


class RecentLiveTriggers:
    """`live_triggers` re-read at most every `ttl` seconds: for handlers that look on every event of a
    busy stream (each run completion), where a lookup per event would list every workflow each time.
    A workflow saved meanwhile is matched once the `ttl` has passed."""

    def __init__(self, store: DefinitionStore, definitions: DefinitionCache, node_type: str, *,
                 ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = (store, definitions, node_type)
        self._ttl = ttl
        self._clock = clock
        self._found: list[LiveTrigger] = []
        self._until = float("-inf")

    async def get(self) -> list[LiveTrigger]:
        now = self._clock()
        if now >= self._until:
            self._found = await live_triggers(*self._lookup)
            self._until = now + self._ttl
        return self._found
