"""The trigger nodes of every live workflow version, by node type: what event, queue and schedule
ingress match against. Versions are immutable and cached, so a lookup costs one workflow listing."""

from __future__ import annotations

import logging
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
