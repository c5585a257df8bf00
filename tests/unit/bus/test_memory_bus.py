"""MemoryBus: partitioning, ordering, groups, redelivery, dead letters, draining, trimming, stopping.

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
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from libs.bus.dead_letter import DEAD_LETTER_TYPE
from libs.bus.memory import TRIM_CHUNK, MemoryBus, partition_for
from libs.bus.ports import Bus
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.errors import ActionError, BusError, ConcurrentUpdateError, ConflictError

BusFactory = Callable[..., MemoryBus]
GUARD = 5.0  # seconds; only bounds waits that a bug would make endless


def msg(key: str, n: int = 0) -> Envelope:
    return Envelope(type="dev.stepline.test.v1", source="tests", subject=key, data={"n": n})


def keys_in_partition(bus: MemoryBus, partition: int, count: int) -> list[str]:
    keys = (f"run-{i}" for i in range(10_000))
    return [k for k in keys if bus.partition_of(k) == partition][:count]


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


async def test_messages_of_one_key_are_handled_in_order_one_at_a_time(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    seen: dict[str, list[int]] = defaultdict(list)
    active: dict[int, int] = defaultdict(int)
    max_active: dict[int, int] = defaultdict(int)

    async def handler(envelope: Envelope) -> None:
        part = bus.partition_of(envelope.key)
        active[part] += 1
        max_active[part] = max(max_active[part], active[part])
        await asyncio.sleep(0)  # yield, so that other partitions' handlers interleave
        seen[envelope.key].append(envelope.data["n"])
        active[part] -= 1

    bus.subscribe("t.order", "g", handler)
    await bus.start()
    keys = [f"run-{k}" for k in range(20)]
    for n in range(50):
        for key in keys:
            await bus.publish("t.order", msg(key, n))
    await bus.drain()

    assert {key: seen[key] for key in keys} == {key: list(range(50)) for key in keys}
    assert set(max_active.values()) == {1}  # never two handlers at once on one partition
    assert len(max_active) == 4  # and every partition was used


async def test_every_group_gets_every_message(make_bus: BusFactory) -> None:
    bus = make_bus()
    groups = {name: Recorder() for name in ("scheduler", "notifier", "audit")}
    for name, recorder in groups.items():
        bus.subscribe("t.groups", name, recorder)
    await bus.start()
    sent = [msg(f"run-{i % 7}", i) for i in range(100)]
    for envelope in sent:
        await bus.publish("t.groups", envelope)
    await bus.drain()

    for recorder in groups.values():
        assert sorted(recorder.ids) == sorted(e.id for e in sent)
    assert bus.stats()["t.groups"]["published"] == 100
    assert bus.stats()["t.groups"]["delivered"] == 300


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


async def test_a_blocked_partition_holds_back_only_its_own_keys(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=8)
    blocked, neighbour = keys_in_partition(bus, 0, 2)
    [other] = keys_in_partition(bus, 1, 1)
    release, started, other_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def handler(envelope: Envelope) -> None:
        if envelope.key == blocked:
            started.set()
            await release.wait()
        order.append(envelope.key)
        if envelope.key == other:
            other_done.set()

    bus.subscribe("t.independent", "g", handler)
    await bus.start()
    for key in (blocked, neighbour, other):
        await bus.publish("t.independent", msg(key))
    async with asyncio.timeout(GUARD):
        await started.wait()
        await other_done.wait()  # another partition goes on while `blocked` is in its handler
    assert order == [other]
    release.set()
    await bus.drain()
    assert order == [other, blocked, neighbour]


async def test_a_busy_partition_does_not_starve_the_others(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=2)
    [busy] = keys_in_partition(bus, 0, 1)
    [quiet] = keys_in_partition(bus, 1, 1)
    order = Recorder()  # never suspends
    bus.subscribe("t.fair", "g", order)
    for n in range(1000):
        await bus.publish("t.fair", msg(busy, n))
    await bus.publish("t.fair", msg(quiet))
    await bus.start()
    await bus.drain()
    assert [e.key for e in order.seen].index(quiet) < 500


# ---- redelivery and dead letters -----------------------------------------------------------------


async def dead_letters(bus: MemoryBus) -> Recorder:
    recorder = Recorder()
    bus.subscribe(topics.DEAD_LETTERS, "dlq-watch", recorder)
    return recorder


async def test_retryable_error_redelivers_while_later_messages_wait(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, redelivery_backoff=0)
    dlq = await dead_letters(bus)
    first, second, third = msg("run-a", 1), msg("run-b", 2), msg("run-a", 3)
    seen: list[str] = []
    failures = iter([ConcurrentUpdateError("lost a race"), BusError("broker hiccup")])

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.id)
        if envelope.id == first.id:
            error = next(failures, None)
            if error is not None:
                raise error

    bus.subscribe("t.retry", "g", handler)
    for envelope in (first, second, third):
        await bus.publish("t.retry", envelope)
    await bus.start()
    await bus.drain()

    assert seen == [first.id, first.id, first.id, second.id, third.id]
    assert bus.stats()["t.retry"] == {"published": 3, "delivered": 5, "dead_lettered": 0, "retained": 3}
    assert dlq.seen == []


async def test_non_retryable_error_goes_straight_to_dead_letters(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, redelivery_backoff=0)
    dlq = await dead_letters(bus)
    bad, good = msg("run-a", 1), msg("run-a", 2)
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.id)
        if envelope.id == bad.id:
            raise ConflictError("node run run-a/n1/1 is not waiting")

    bus.subscribe("t.fatal", "scheduler", handler)
    await bus.start()
    await bus.publish("t.fatal", bad)
    await bus.publish("t.fatal", good)
    await bus.drain()  # handles both; the dead letter was published meanwhile
    await bus.drain()  # lets the watcher see the dead letter

    assert seen == [bad.id, good.id]
    [letter] = dlq.seen
    assert (letter.type, letter.subject) == (DEAD_LETTER_TYPE, bad.subject)
    assert letter.data == {
        "envelope": bad.model_dump(mode="json"),
        "topic": "t.fatal",
        "group": "scheduler",
        "partition": 0,
        "offset": 0,
        "deliveries": 1,
        "error_type": "ConflictError",
        "error_code": "conflict",
        "error_message": "node run run-a/n1/1 is not waiting",
    }
    assert Envelope.model_validate(letter.data["envelope"]) == bad
    assert bus.stats()["t.fatal"]["dead_lettered"] == 1


async def test_dead_letter_carries_only_str_of_the_error(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1)
    dlq = await dead_letters(bus)

    async def handler(envelope: Envelope) -> None:
        raise ActionError("POST failed with 401", output={"authorization": "Bearer s3cr3t-token"})

    bus.subscribe("t.secret", "executor", handler)
    await bus.start()
    await bus.publish("t.secret", msg("run-a"))
    await bus.drain()
    await bus.drain()

    [letter] = dlq.seen
    assert letter.data["error_message"] == "POST failed with 401"
    assert "s3cr3t" not in json.dumps(letter.data)


async def test_exceeding_max_deliveries_dead_letters_and_moves_on(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, max_deliveries=3, redelivery_backoff=0)
    dlq = await dead_letters(bus)
    flaky, after = msg("run-a", 1), msg("run-a", 2)
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.id)
        if envelope.id == flaky.id:
            raise RuntimeError("driver exploded")  # not a SteplineError: retried

    bus.subscribe("t.flaky", "g", handler)
    await bus.start()
    await bus.publish("t.flaky", flaky)
    await bus.publish("t.flaky", after)
    await bus.drain()
    await bus.drain()

    assert seen == [flaky.id, flaky.id, flaky.id, after.id]
    [letter] = dlq.seen
    assert letter.data["deliveries"] == 3
    assert (letter.data["error_type"], letter.data["error_code"]) == ("RuntimeError", None)
    assert letter.data["error_message"] == "driver exploded"


async def test_failing_dead_letter_handler_does_not_loop(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, max_deliveries=2, redelivery_backoff=0)
    dlq_calls: list[str] = []

    async def failing(envelope: Envelope) -> None:
        raise ConflictError("no")

    async def failing_dlq(envelope: Envelope) -> None:
        dlq_calls.append(envelope.id)
        raise RuntimeError("dlq consumer broken")

    bus.subscribe("t.loop", "g", failing)
    bus.subscribe(topics.DEAD_LETTERS, "dlq", failing_dlq)
    await bus.start()
    await bus.publish("t.loop", msg("run-a"))
    for _ in range(3):
        await bus.drain()

    assert len(dlq_calls) == 2  # max_deliveries, then dropped
    stats = bus.stats()[topics.DEAD_LETTERS]
    assert (stats["published"], stats["dead_lettered"]) == (1, 0)


async def test_stop_cancels_a_pending_redelivery_backoff(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, redelivery_backoff=30)
    failed = asyncio.Event()
    calls = 0

    async def handler(envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        failed.set()
        raise BusError("try later")

    bus.subscribe("t.backoff", "g", handler)
    await bus.start()
    await bus.publish("t.backoff", msg("run-a"))
    async with asyncio.timeout(GUARD):
        await failed.wait()
        await bus.stop()  # does not sit out the 30 s backoff
    assert calls == 1


async def test_a_retryable_failure_while_stopping_is_not_redelivered(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=1, redelivery_backoff=30)
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def handler(envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        raise BusError("broker went away")

    bus.subscribe("t.stop-retry", "g", handler)
    await bus.start()
    await bus.publish("t.stop-retry", msg("run-a"))
    await started.wait()
    stopping = asyncio.create_task(bus.stop())
    await asyncio.sleep(0)  # one loop turn: stop() begins and waits for the handler
    release.set()
    async with asyncio.timeout(GUARD):
        await stopping
    assert calls == 1
    assert bus.stats()["t.stop-retry"]["dead_lettered"] == 0


# ---- log, start/subscribe order, drain, trimming -------------------------------------------------


async def test_messages_published_before_subscribe_and_start_are_delivered(make_bus: BusFactory) -> None:
    bus = make_bus()
    early = [msg(f"run-{i}", i) for i in range(5)]
    late = [msg(f"run-{i}", i) for i in range(5, 8)]
    for envelope in early:
        await bus.publish("t.early", envelope)
    before_start, after_start = Recorder(), Recorder()
    bus.subscribe("t.early", "before-start", before_start)
    await bus.start()
    for envelope in late:
        await bus.publish("t.early", envelope)
    bus.subscribe("t.early", "after-start", after_start)  # starts at offset 0 of each partition
    await bus.drain()

    everything = sorted(e.id for e in early + late)
    assert sorted(before_start.ids) == everything
    assert sorted(after_start.ids) == everything


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


# ---- subscribing, stopping -----------------------------------------------------------------------


async def test_a_group_subscribes_to_a_topic_once(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.subscribe("t.twice", "g", Recorder())
    with pytest.raises(ValueError, match="already subscribes"):
        bus.subscribe("t.twice", "g", Recorder())


async def test_stop_lets_the_handler_in_progress_finish(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []
    cancelled: list[str] = []
    follow_up = Recorder()

    async def handler(envelope: Envelope) -> None:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(envelope.id)
            raise
        await bus.publish("t.follow-up", msg(envelope.key))  # still allowed while stopping
        finished.append(envelope.id)

    bus.subscribe("t.stop", "g", handler)
    bus.subscribe("t.follow-up", "g", follow_up)
    await bus.start()
    in_hand = msg("run-a")
    await bus.publish("t.stop", in_hand)
    await started.wait()

    stopping = asyncio.create_task(bus.stop())
    await asyncio.sleep(0)  # one loop turn: stop() cancels the idle consumers, then waits
    assert not stopping.done()
    release.set()
    async with asyncio.timeout(GUARD):
        await stopping

    assert finished == [in_hand.id]
    assert cancelled == []
    assert bus.stats()["t.follow-up"]["published"] == 1


async def test_a_stopped_bus_refuses_work(make_bus: BusFactory) -> None:
    bus = make_bus()
    bus.subscribe("t.closed", "g", Recorder())
    await bus.start()
    await bus.stop()
    await bus.stop()  # idempotent

    with pytest.raises(BusError):
        await bus.publish("t.closed", msg("run-a"))
    with pytest.raises(BusError):
        await bus.start()
    with pytest.raises(BusError):
        bus.subscribe("t.closed", "other", Recorder())
    with pytest.raises(BusError):
        await bus.drain()
