"""Every node type that is not a trigger has an action in the executor."""

from __future__ import annotations

import httpx

from libs.bus.memory import MemoryBus
from libs.core.definition import TRIGGER_TYPES
from libs.core.node_types import known_node_types
from libs.core.secrets import NoSecrets
from libs.store.sqlite import SqliteStore
from services.executor.actions.registry import ActionDeps, build_registry
from services.executor.settings import ExecutorSettings


async def test_every_action_node_type_has_an_action() -> None:
    async with httpx.AsyncClient() as client:
        deps = ActionDeps(client=client, bus=MemoryBus(partitions=1), store=SqliteStore(":memory:"),
                          secrets=NoSecrets(), settings=ExecutorSettings())
        actions = build_registry(deps)
    assert sorted(actions) == sorted(set(known_node_types()) - TRIGGER_TYPES)
