"""SCHEDULE_TRIGGER: the lease loop (services/trigger/schedules.py) over a real SQLite store and
memory bus with a hand-driven clock, and the embedded engine firing a one-second interval, with two
trigger-worker instances over one store firing each tick once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from libs.core.validation import parse_workflow
from libs.core.versioning import WorkflowRecord
from libs.store.definitions import DefinitionCache
from libs.store.pausing import pause, resume
from libs.store.ports import RunFilter, Store
from libs.store.sqlite import SqliteStore
from services.trigger.live_triggers import LiveTriggers
from services.trigger.schedules import KIND, ScheduleLoop, ScheduleTiming
from services.trigger.starting import RunStarter
from services.trigger.workers import build_trigger_workers

GUARD = 20.0
TIMING = ScheduleTiming(poll=0.5, grace=30.0, retry=10.0)


def scheduled(identifier: str, **config: Any) -> dict[str, Any]:
    return {"identifier": identifier,
            "nodes": [{"identifier": "tick", "config": {"type": "SCHEDULE_TRIGGER", **config}},
                      {"identifier": "work", "config": {"type": "NOOP"}}],
            "connections": [{"sourceIdentifier": "tick", "targetIdentifier": "work"}]}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyBus(MemoryBus):
    """A memory bus whose next `fail` publishes to run-commands fail, as a broker outage would."""

    fail = 0

    async def publish(self, topic: str, envelope: Envelope) -> None:
        if topic == topics.RUN_COMMANDS and self.fail:
            self.fail -= 1
            raise BusError("broker unreachable")
        await super().publish(topic, envelope)


class World:
    def __init__(self, store: Store, bus: FlakyBus, clock: Clock) -> None:
        self.store, self.bus, self.clock = store, bus, clock
        self.starts: list[v1.StartRun] = []

    async def record(self, envelope: Envelope) -> None:
        message = envelope.message()
        if isinstance(message, v1.StartRun):
            self.starts.append(message)

    def replica(self) -> ScheduleLoop:
        definitions = DefinitionCache(self.store)
        starter = RunStarter(self.store, Publisher(self.bus, "stepline/trigger"), definitions, self.clock,
                             accept_timeout=1.0)
        return ScheduleLoop(self.store, starter, LiveTriggers(self.store, definitions), self.clock, TIMING)

    async def create(self, definition: dict[str, Any]) -> None:
        workflow = parse_workflow(definition)
        record = WorkflowRecord(identifier=workflow.identifier, created_at=self.clock(), updated_at=self.clock())
        await self.store.create_workflow(record, workflow.model_dump(mode="json", exclude_none=True))

    async def passes(self, *loops: ScheduleLoop) -> list[v1.StartRun]:
        """Run one pass of every replica concurrently; the StartRuns published meanwhile."""
        before = len(self.starts)
        await asyncio.gather(*(loop.pass_once() for loop in loops))
        await self.bus.drain()
        return self.starts[before:]

    async def lease(self, key: str = "nightly/tick") -> dict[str, Any]:
        entry = await self.store.get_entry(KIND, key)
        assert entry is not None
        return entry.data


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SqliteStore(str(tmp_path / "stepline.db"))
    await store.open()
    bus = FlakyBus(partitions=2)
    w = World(store, bus, Clock(1_000_000.2))
    bus.subscribe(topics.RUN_COMMANDS, "watch", w.record)
    await bus.start()
    yield w
    await bus.stop()
    await store.close()


async def test_a_new_schedule_starts_at_the_next_tick_and_fires_each_tick_once(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=60))
    a, b = world.replica(), world.replica()
    assert await world.passes(a, b) == []
    assert await world.lease() == {"nextTick": 1_000_020, "lastTick": None, "version": 1, "pending": None}

    world.clock.now = 1_000_019.9
    assert await world.passes(a, b) == []
    world.clock.now = 1_000_020.3
    fired = await world.passes(a, b)
    assert len(fired) == 1
    start = fired[0]
    assert (start.workflow, start.version, start.trigger.type, start.trigger.node) == ("nightly", 1, "SCHEDULE", "tick")
    assert start.inputs == {"scheduledAt": "1970-01-12T13:47:00+00:00", "tick": 1_000_020}
    assert start.idempotency_key == "tick:tick:1000020"
    assert await world.passes(a, b) == []  # the same tick never again
    assert await world.lease() == {"nextTick": 1_000_080, "lastTick": 1_000_020, "version": 1, "pending": None}

    world.clock.now = 1_000_080.1
    assert [s.inputs["tick"] for s in await world.passes(b, a)] == [1_000_080]


async def test_skip_fires_nothing_after_downtime_and_once_fires_one(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=60))
    await world.create(scheduled("catchup", intervalSeconds=60, missedTicks="once"))
    loop = world.replica()
    await world.passes(loop)
    world.clock.now += 3600  # an hour down: 60 ticks missed
    fired = await world.passes(loop)
    assert [(s.workflow, s.inputs["tick"]) for s in fired] == [("catchup", 1_003_560)]
    assert (await world.lease())["nextTick"] == 1_003_620
    assert (await world.lease("catchup/tick"))["nextTick"] == 1_003_620
    world.clock.now = 1_003_620.5  # and then both continue on time
    assert sorted(s.workflow for s in await world.passes(loop)) == ["catchup", "nightly"]


async def test_a_new_live_version_recomputes_the_next_tick(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=3600))
    loop = world.replica()
    await world.passes(loop)
    assert (await world.lease())["nextTick"] == 1_000_800
    await world.store.add_version("nightly", scheduled("nightly", intervalSeconds=7), now=world.clock())
    assert await world.passes(loop) == []
    assert await world.lease() == {"nextTick": 1_000_006, "lastTick": None, "version": 2, "pending": None}
    world.clock.now = 1_000_006.1
    fired = await world.passes(loop)
    assert [(s.version, s.inputs["tick"]) for s in fired] == [(2, 1_000_006)]


async def test_a_paused_workflow_skips_its_ticks(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=60))
    loop = world.replica()
    await world.passes(loop)
    await pause(world.store, "nightly", by="ops", now=world.clock())
    world.clock.now = 1_000_020.1
    assert await world.passes(loop) == []
    assert (await world.lease())["nextTick"] == 1_000_080  # advanced without firing
    await resume(world.store, "nightly")
    world.clock.now = 1_000_080.1
    assert [s.inputs["tick"] for s in await world.passes(loop)] == [1_000_080]


async def test_a_claimed_tick_whose_start_failed_is_published_again_by_any_replica(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=60))
    a, b = world.replica(), world.replica()
    await world.passes(a)
    world.clock.now = 1_000_020.1
    world.bus.fail = 1
    assert await world.passes(a) == []  # claimed, then the publish failed
    lease = await world.lease()
    assert (lease["nextTick"], lease["pending"]["tick"]) == (1_000_080, 1_000_020)
    world.clock.now += 5
    assert await world.passes(a, b) == []  # its claimer may still be at it
    world.clock.now += 6
    fired = await world.passes(b, a)
    assert [(s.inputs["tick"], s.idempotency_key) for s in fired] == [(1_000_020, "tick:tick:1000020")]
    assert (await world.lease())["pending"] is None


async def test_an_invalid_stored_schedule_never_fires_and_others_still_do(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=60))
    broken = scheduled("broken", intervalSeconds=60)
    record = WorkflowRecord(identifier="broken", created_at=world.clock(), updated_at=world.clock())
    broken["nodes"][0]["config"]["timezone"] = "Nowhere/Special"  # stored past validation
    await world.store.create_workflow(record, broken)
    loop = world.replica()
    await world.passes(loop)
    world.clock.now = 1_000_020.1
    assert [s.workflow for s in await world.passes(loop)] == ["nightly"]
    assert await world.store.get_entry(KIND, "broken/tick") is None


async def test_the_lease_of_a_deleted_schedule_is_removed(world: World) -> None:
    await world.create(scheduled("nightly", intervalSeconds=60))
    loop = world.replica()
    await world.passes(loop)
    await world.store.delete_workflow("nightly", now=world.clock())
    world.clock.now += 1
    await world.passes(loop)
    assert await world.store.get_entry(KIND, "nightly/tick") is None


# ---- the embedded engine, real time ----------------------------------------------------------------


async def wait_until(check: Callable[[], Awaitable[bool]], guard: float = GUARD) -> None:
    async with asyncio.timeout(guard):
        while not await check():
            await asyncio.sleep(0.05)


async def runs_of(engine: Any, workflow: str) -> list[Any]:
    runs, _ = await engine.store.list_runs(RunFilter(workflows=(workflow,)), limit=1000, offset=0)
    return list(runs)


async def test_an_interval_schedule_starts_runs_in_the_engine(engine: Any, api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows", json=scheduled("every-second", intervalSeconds=1))
    assert response.status_code == 201, response.text

    async def two_completed() -> bool:
        completed = [r for r in await runs_of(engine, "every-second") if r.status == "COMPLETED"]
        return len(completed) >= 2

    await wait_until(two_completed)
    runs = await runs_of(engine, "every-second")
    ticks = [r.inputs["tick"] for r in runs]
    assert len(ticks) == len(set(ticks))
    run = runs[0]
    assert (run.trigger.type, run.trigger.node, run.idempotency_key) == ("SCHEDULE", "tick", f"tick:tick:{run.inputs['tick']}")
    assert run.outputs["tick"] == run.inputs
    assert run.inputs["scheduledAt"].endswith("+00:00")


async def test_two_trigger_worker_instances_fire_each_tick_once(engine: Any, api: httpx.AsyncClient) -> None:
    second = build_trigger_workers(engine.settings, engine.store, engine.bus, clock=engine.clock)
    published: Counter[str] = Counter()

    async def watch(envelope: Envelope) -> None:
        message = envelope.message()
        if isinstance(message, v1.StartRun) and message.workflow == "twice":
            published[message.idempotency_key or ""] += 1

    engine.bus.subscribe(topics.RUN_COMMANDS, "test-watch", watch)
    second.start_loops()
    try:
        response = await api.post("/v1/workflows", json=scheduled("twice", intervalSeconds=1))
        assert response.status_code == 201, response.text

        async def three_runs() -> bool:
            return len(await runs_of(engine, "twice")) >= 3

        await wait_until(three_runs)
    finally:
        await second.stop_loops()
    await engine.bus.drain()
    assert len(published) >= 3
    assert set(published.values()) == {1}, published  # each tick claimed by one instance only


async def test_a_paused_schedule_starts_no_runs_in_the_engine(engine: Any, api: httpx.AsyncClient) -> None:
    await pause(engine.store, "quiet", by="ops", now=engine.clock())
    response = await api.post("/v1/workflows", json=scheduled("quiet", intervalSeconds=1))
    assert response.status_code == 201, response.text
    first = engine.clock()

    async def ticks_passed() -> bool:  # the lease moved past two ticks: they were claimed, not fired
        entry = await engine.store.get_entry(KIND, "quiet/tick")
        return entry is not None and entry.data["lastTick"] is None and entry.data["nextTick"] >= first + 3

    await wait_until(ticks_passed)
    assert await runs_of(engine, "quiet") == []


@pytest.mark.parametrize(("config", "pointer"), [
    ({"cron": "0 0 31 2 * *"}, "/nodes/0/config/cron"),
    ({"cron": "99 * * * *"}, "/nodes/0/config/cron"),
    ({"intervalSeconds": 60, "timezone": "Europe/Atlantis"}, "/nodes/0/config/timezone"),
    ({"timezone": "UTC"}, "/nodes/0/config"),
])
async def test_bad_schedules_are_refused_with_a_pointer(api: httpx.AsyncClient, config: dict[str, Any],
                                                        pointer: str) -> None:
    response = await api.post("/v1/workflows", json=scheduled("bad", **config))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["ok"] is False
    assert pointer in {d.get("pointer") for d in body["details"]}, body
