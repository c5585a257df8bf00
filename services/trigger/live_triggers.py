"""The trigger nodes of every live workflow version, by node type: what event, queue and schedule
ingress match against. Versions are immutable and cached, so a lookup costs one workflow listing."""

from __future__ import annotations

from dataclasses import dataclass

from libs.core.definition import Node, Workflow
from libs.store.definitions import DefinitionCache
from libs.store.ports import DefinitionStore


@dataclass(frozen=True)
class LiveTrigger:
    workflow: Workflow
    version: int
    node: Node


async def live_triggers(store: DefinitionStore, definitions: DefinitionCache, node_type: str) -> list[LiveTrigger]:
    """Every `node_type` trigger node of the `$LIVE` version of every workflow that is not deleted."""
    found: list[LiveTrigger] = []
    for record in await store.list_workflows():
        workflow = await definitions.get(record.identifier, record.live_version)
        found.extend(LiveTrigger(workflow, record.live_version, node)
                     for node in workflow.triggers() if node.type == node_type)
    return found
