"""The executor's action table covers exactly the node kinds it runs: every type that is not a
trigger, and nothing else; a table that does not is refused when it is built."""

from __future__ import annotations

import httpx
import pytest

from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.core.node_kinds import TRIGGER_TYPES, known_node_types
from libs.core.secrets import NoSecrets
from libs.store.sqlite import SqliteStore
from services.executor.actions.base import Action
from services.executor.actions.registry import ActionDeps, build_registry, checked
from services.executor.settings import ExecutorSettings


async def _actions() -> dict[str, Action]:
    async with httpx.AsyncClient() as client:
        deps = ActionDeps(client=client, publisher=Publisher(MemoryBus(partitions=1), "stepline/executor"),
                          store=SqliteStore(":memory:"),
                          secrets=NoSecrets(), settings=ExecutorSettings())
        return build_registry(deps)


async def test_every_action_node_type_has_an_action() -> None:
    actions = await _actions()
    assert sorted(actions) == sorted(set(known_node_types()) - TRIGGER_TYPES)


async def test_a_table_missing_a_kind_or_naming_an_unknown_one_is_refused() -> None:
    actions = await _actions()
    without_delay = {t: a for t, a in actions.items() if t != "DELAY"}
    with pytest.raises(RuntimeError, match=r"no action for \['DELAY'\], no node kind for \[\]"):
        checked(without_delay)
    with pytest.raises(RuntimeError, match=r"no action for \[\], no node kind for \['SELF_SERVE_TRIGGER'\]"):
        checked({**actions, "SELF_SERVE_TRIGGER": actions["NOOP"]})
    assert checked(actions) is actions
