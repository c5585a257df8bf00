"""`LiveTriggers` (services/trigger/live_triggers.py): the live trigger nodes by type, listed from the
store only when the definitions stamp moved or the view is older than `MAX_AGE_SECONDS`, so an event,
queue message or run completion costs one entry read however many workflows are stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from libs.core.versioning import WorkflowRecord
from libs.store.definitions import DefinitionCache
from libs.store.sqlite.store import SqliteStore
from services.trigger.live_triggers import MAX_AGE_SECONDS, LiveTriggers

NOW = 1_700_000_000.0


class CountingStore(SqliteStore):
    """The SQLite store, counting how often the workflows are listed."""

    listings = 0

    async def list_workflows(self, *, include_deleted: bool = False) -> list[WorkflowRecord]:
        self.listings += 1
        return await super().list_workflows(include_deleted=include_deleted)


def definition(identifier: str, *triggers: str) -> dict[str, Any]:
    on_runs = {"source": "run", "workflow": "x", "events": ["run.completed"]}
    nodes = [{"identifier": f"t{i}", "config": {"type": kind, "event": on_runs}
              if kind == "EVENT_TRIGGER" else {"type": kind, "userInputs": {"properties": {}}}}
             for i, kind in enumerate(triggers)]
    return {"identifier": identifier, "nodes": [*nodes, {"identifier": "n", "config": {"type": "NOOP"}}],
            "connections": [{"sourceIdentifier": n["identifier"], "targetIdentifier": "n"} for n in nodes]}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    async with CountingStore(str(tmp_path / "stepline.db")) as opened:
        yield opened


def names(found: list[Any]) -> list[tuple[str, str]]:
    return sorted((t.workflow.identifier, t.node.identifier) for t in found)


async def test_lookups_list_the_workflows_once_until_a_definition_changes(store: CountingStore) -> None:
    for i in range(20):
        await store.create_workflow(WorkflowRecord(identifier=f"w{i}", created_at=NOW),
                                    definition(f"w{i}", "SELF_SERVE_TRIGGER"))
    await store.create_workflow(WorkflowRecord(identifier="watcher", created_at=NOW),
                                definition("watcher", "EVENT_TRIGGER", "SELF_SERVE_TRIGGER"))
    live = LiveTriggers(store, DefinitionCache(store), clock=lambda: NOW)
    for _ in range(5):
        assert names(await live.of_type("EVENT_TRIGGER")) == [("watcher", "t0")]
        assert len(await live.of_type("SELF_SERVE_TRIGGER")) == 21
    assert await live.of_type("QUEUE_TRIGGER") == []
    assert store.listings == 1

    await store.add_version("w3", definition("w3", "EVENT_TRIGGER"), now=NOW)
    assert names(await live.of_type("EVENT_TRIGGER")) == [("w3", "t0"), ("watcher", "t0")]
    await store.set_tag("w3", "$LIVE", 1, now=NOW)
    assert names(await live.of_type("EVENT_TRIGGER")) == [("watcher", "t0")], "rolled back to version 1"
    await store.delete_workflow("watcher", now=NOW)
    assert await live.of_type("EVENT_TRIGGER") == []
    assert store.listings == 4


async def test_the_view_is_read_again_once_it_is_older_than_its_bound(store: CountingStore) -> None:
    await store.create_workflow(WorkflowRecord(identifier="a", created_at=NOW), definition("a", "EVENT_TRIGGER"))
    now = [NOW]
    live = LiveTriggers(store, DefinitionCache(store), clock=lambda: now[0])
    await live.of_type("EVENT_TRIGGER")
    now[0] += MAX_AGE_SECONDS - 1
    await live.of_type("EVENT_TRIGGER")
    assert store.listings == 1
    now[0] += 1
    await live.of_type("EVENT_TRIGGER")
    assert store.listings == 2
