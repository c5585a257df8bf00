"""MemoryBus beyond the port: stable partitions, `drain()`, `stats()`, trimming of its logs.

What every bus adapter does (ordering, groups, redelivery, dead letters, stopping) is the bus
contract, tests/contract/bus_contract.py, which tests/contract/test_memory_bus_contract.py runs on
`MemoryBus`.

Nothing here sleeps to wait for something to happen: tests await events, `drain()` or the bus's own
futures. `asyncio.sleep(0)` appears only as a plain yield to the event loop (inside handlers, to let
other tasks interleave, and once to let a just-created `stop()` task take its first step).
`asyncio.timeout` only bounds a wait so that a bug fails fast instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from libs.bus.memory import TRIM_CHUNK, MemoryBus, partition_for
from libs.bus.ports import Bus
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError, ConcurrentUpdateError, ConflictError

BusFactory = Callable[..., MemoryBus]
GUARD = 5.0  # seconds; only bounds waits that a bug would make endless


def msg(key: str, n: int = 0) -> Envelope:
    return Envelope(type="dev.stepline.test.v1", source="tests", subject=key, data={"n": n})


class Recorder:
    """A handler that records what it sees."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


@pytest.fixture
async def make_bus() -> AsyncIterator[BusFactory]:
    buses: list[MemoryBus] = []

    def make(*args: Any, **kwargs: Any) -> MemoryBus:
        buses.append(MemoryBus(*args, **kwargs))
        return buses[-1]

    yield make
    async with asyncio.timeout(GUARD):  # a test that fails may leave a handler blocked
        for bus in buses:
            await bus.stop()


def test_memory_bus_implements_the_port() -> None:
    bus: Bus = MemoryBus()
    assert isinstance(bus, MemoryBus)


# ---- partitioning and ordering -------------------------------------------------------------------


def test_partition_of_a_key_is_stable_across_instances_and_processes() -> None:
    sample = [f"run-{i}" for i in range(200)] + ["", "ünïcode-run", "0" * 300]
    here = [partition_for(k, 8) for k in sample]
    assert [MemoryBus(8).partition_of(k) for k in sample] == here
    assert [MemoryBus(8).partition_of(k) for k in sample] == here
    assert len(set(here)) == 8
    script = (
        "import json, sys; from libs.bus.memory import MemoryBus; "
        "print(json.dumps([MemoryBus(8).partition_of(k) for k in json.loads(sys.stdin.read())]))"
    )
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], input=json.dumps(sample), env=env,
            capture_output=True, text=True, check=True, timeout=60,
        )
        assert json.loads(out.stdout) == here


# ---- stats -------------------------------------------------------------------------------------


async def dead_letters(bus: MemoryBus) -> Recorder:
    recorder = Recorder()
    bus.subscribe(topics.DEAD_LETTERS, "dlq-watch", recorder)
    return recorder


async def test_stats_count_published_delivered_and_dead_lettered(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, max_deliveries=2, redelivery_backoff=0)
    dlq = await dead_letters(bus)
    ok, flaky, fatal = msg("run-a", 1), msg("run-a", 2), msg("run-a", 3)
    retried = False

    async def handler(envelope: Envelope) -> None:
        nonlocal retried
        if envelope.id == flaky.id and not retried:
            retried = True
            raise ConcurrentUpdateError("lost a race")
        if envelope.id == fatal.id:
            raise ConflictError("no")

    bus.subscribe("t.stats", "a", handler)
    bus.subscribe("t.stats", "b", Recorder())
    await bus.start()
    for envelope in (ok, flaky, fatal):
        await bus.publish("t.stats", envelope)
    await bus.drain()
    await bus.drain()

    assert bus.stats()["t.stats"] == {"published": 3, "delivered": 7, "dead_lettered": 1, "retained": 3}
    assert [e.data["envelope"]["id"] for e in dlq.seen] == [fatal.id]
    assert bus.stats()[topics.DEAD_LETTERS]["published"] == 1


async def test_a_failing_dead_letter_is_dropped_not_dead_lettered_again(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, max_deliveries=2, redelivery_backoff=0)

    async def failing(envelope: Envelope) -> None:
        raise ConflictError("no")

    bus.subscribe("t.loop", "g", failing)
    bus.subscribe(topics.DEAD_LETTERS, "dlq", failing)
    await bus.start()
    await bus.publish("t.loop", msg("run-a"))
    for _ in range(3):
        await bus.drain()

    stats = bus.stats()[topics.DEAD_LETTERS]
    assert (stats["published"], stats["delivered"], stats["dead_lettered"]) == (1, 1, 0)


# ---- log, start/subscribe order, drain, trimming -------------------------------------------------


async def test_drain_waits_for_every_group_and_partition(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    handled: list[int] = []

    async def slow(envelope: Envelope) -> None:
        for _ in range(3):
            await asyncio.sleep(0)  # yield: each message takes several loop turns
        handled.append(envelope.data["n"])

    bus.subscribe("t.drain", "a", slow)
    bus.subscribe("t.drain", "b", slow)
    with pytest.raises(BusError, match="not started"):
        await bus.drain()
    await bus.start()
    await bus.drain()  # nothing published: returns at once
    for n in range(500):
        await bus.publish("t.drain", msg(f"run-{n % 13}", n))
    await bus.drain()
    assert sorted(handled) == sorted(list(range(500)) * 2)


async def test_consumed_messages_are_trimmed_but_not_before_every_group_has_them(
    make_bus: BusFactory,
) -> None:
    bus = make_bus(partitions=2, retention=10)  # retention must not apply while groups lag
    total = 10 * TRIM_CHUNK
    release, slow_started, fast_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    fast_count = slow_count = 0

    async def fast(envelope: Envelope) -> None:
        nonlocal fast_count
        fast_count += 1
        if fast_count == total:
            fast_done.set()

    async def slow(envelope: Envelope) -> None:
        nonlocal slow_count
        slow_started.set()
        await release.wait()
        slow_count += 1

    bus.subscribe("t.trim", "fast", fast)
    bus.subscribe("t.trim", "slow", slow)
    await bus.start()
    for n in range(total):
        await bus.publish("t.trim", msg(f"run-{n % 10}", n))
    async with asyncio.timeout(GUARD):
        await slow_started.wait()
        await fast_done.wait()  # the fast group runs to the end meanwhile
    assert bus.stats()["t.trim"]["retained"] == total  # the slow group still needs them all
    release.set()
    async with asyncio.timeout(GUARD):
        await bus.drain()

    assert slow_count == total
    assert bus.stats()["t.trim"]["retained"] <= 2 * TRIM_CHUNK  # at most a chunk per partition


async def test_topic_without_groups_keeps_only_its_newest_messages(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, retention=10)
    sent = [msg("run-a", n) for n in range(TRIM_CHUNK + 20)]
    for envelope in sent:
        await bus.publish("t.unread", envelope)
    retained = bus.stats()["t.unread"]["retained"]
    assert 10 <= retained < 10 + TRIM_CHUNK

    recorder = Recorder()
    bus.subscribe("t.unread", "late", recorder)
    await bus.start()
    await bus.drain()
    assert recorder.ids == [e.id for e in sent[-retained:]]


# ---- stopping ----------------------------------------------------------------------------------


async def test_a_stopped_bus_refuses_to_drain(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.subscribe("t.closed", "g", Recorder())
    await bus.start()
    await bus.stop()
    with pytest.raises(BusError):
        await bus.drain()
