"""The contract every `Bus` adapter passes (libs/bus/ports.py), through the port only.

Subclass `BusContract` as `Test<Tech>Bus` and implement `make_bus(...)`: a new, unstarted bus. Buses
of one test need not share messages (each `MemoryBus` is a world of its own). The contract stops
every bus it made at the end of the test, and uses topic and group names unique to the test, so
adapters with a shared broker need no cleanup between tests. The dead-letter topic is the one shared
name: watchers keep only the letters of their own test's topic (`DeadLetters`).

Nothing here sleeps to wait for something to happen: tests await conditions (`Recorder.wait_for`)
with `GUARD` as the bound that a bug would otherwise make endless. Absence ("no dead letter was
published") is shown by ordering: a marker published afterwards to the same partition arrives, and
nothing came before it (`DeadLetters.settled`). `asyncio.sleep(0)` appears only as a plain yield.

The partition of a key is `libs.bus.memory.partition_for(key, partitions)` in every adapter.
"""

from __future__ import annotations

import abc
import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from libs.bus.dead_letter import DEAD_LETTER_TYPE
from libs.bus.memory import partition_for
from libs.bus.ports import Bus, ForTypes
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.errors import ActionError, BusError, ConcurrentUpdateError, ConflictError

MARKER_TYPE = "dev.stepline.test.marker.v1"
BusFactory = Callable[..., Awaitable[Bus]]


def msg(key: str, n: int = 0) -> Envelope:
    return Envelope(type="dev.stepline.test.v1", source="tests", subject=key, data={"n": n})


def marker(key: str, n: int = 0) -> Envelope:
    return Envelope(type=MARKER_TYPE, source="tests", subject=key, data={"n": n})


def keys_in_partition(partitions: int, partition: int, count: int) -> list[str]:
    keys = (f"run-{i}" for i in range(10_000))
    return [k for k in keys if partition_for(k, partitions) == partition][:count]


class Recorder:
    """A handler that records what it sees and lets tests await what it has seen."""

    def __init__(self, guard: float) -> None:
        self.seen: list[Envelope] = []
        self.guard = guard
        self._changed = asyncio.Condition()

    async def __call__(self, envelope: Envelope) -> None:
        await self.record(envelope)

    async def record(self, envelope: Envelope) -> None:
        async with self._changed:
            self.seen.append(envelope)
            self._changed.notify_all()

    async def wait_for(self, done: Callable[[list[Envelope]], bool]) -> list[Envelope]:
        async with asyncio.timeout(self.guard), self._changed:
            await self._changed.wait_for(lambda: done(self.seen))
        return self.seen

    async def wait_for_count(self, count: int) -> list[Envelope]:
        return await self.wait_for(lambda seen: len(seen) >= count)

    async def wait_for_ids(self, ids: set[str]) -> list[Envelope]:
        return await self.wait_for(lambda seen: ids <= {e.id for e in seen})

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


class DeadLetters(Recorder):
    """Watches the dead-letter topic for the letters from one topic (and this watcher's markers)."""

    def __init__(self, topic: str, guard: float) -> None:
        super().__init__(guard)
        self.topic = topic

    async def __call__(self, envelope: Envelope) -> None:
        if self.concerns(envelope.data):
            await self.record(envelope)

    def concerns(self, data: dict[str, Any]) -> bool:
        """A letter from this topic, a letter of such a letter, or one of this watcher's markers."""
        if data.get("topic") == topics.DEAD_LETTERS and isinstance(data.get("envelope"), dict):
            return self.concerns(data["envelope"].get("data") or {})
        return data.get("topic") == self.topic or data.get("marker") == self.topic

    @property
    def letters(self) -> list[Envelope]:
        return [e for e in self.seen if e.type == DEAD_LETTER_TYPE]

    async def settled(self, bus: Bus, key: str) -> list[Envelope]:
        """The letters keyed `key` published so far: those seen before a marker sent now."""
        marker = Envelope(type=MARKER_TYPE, source="tests", subject=key, data={"marker": self.topic})
        await bus.publish(topics.DEAD_LETTERS, marker)
        seen = await self.wait_for(lambda seen: marker.id in {e.id for e in seen})
        before = seen[: [e.id for e in seen].index(marker.id)]
        return [e for e in before if e.type == DEAD_LETTER_TYPE and e.subject == key]


class BusContract(abc.ABC):
    GUARD: ClassVar[float] = 5.0
    """Seconds: only bounds waits that a bug would make endless."""

    @abc.abstractmethod
    async def make_bus(self, *, partitions: int = 8, max_deliveries: int = 5,
                       redelivery_backoff: float = 0.0) -> Bus:
        """A new, unstarted bus with these settings."""

    @pytest.fixture
    async def new_bus(self) -> AsyncIterator[BusFactory]:
        made: list[Bus] = []

        async def factory(**settings: Any) -> Bus:
            made.append(await self.make_bus(**settings))
            return made[-1]

        yield factory
        async with asyncio.timeout(self.GUARD):  # a test that fails may leave a handler blocked
            for bus in made:
                await bus.stop()

    @pytest.fixture
    def name(self) -> Callable[[str], str]:
        """`name("order")`: a topic or group name unique to this test."""
        suffix = uuid.uuid4().hex[:10]
        return lambda base: f"t.{base}.{suffix}"

    def recorder(self) -> Recorder:
        return Recorder(self.GUARD)

    def dead_letters(self, bus: Bus, topic: str, name: Callable[[str], str]) -> DeadLetters:
        watch = DeadLetters(topic, self.GUARD)
        bus.subscribe(topics.DEAD_LETTERS, name("dlq-watch"), watch)
        return watch

    async def test_bus_implements_the_port(self, new_bus: BusFactory) -> None:
        bus: Bus = await new_bus()
        for method in ("start", "stop", "publish", "subscribe", "add_subscription"):
            assert callable(getattr(bus, method))

    # ---- partitioning and ordering ---------------------------------------------------------------

    async def test_messages_of_one_key_are_handled_in_order_one_at_a_time(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=4)
        seen: dict[str, list[int]] = defaultdict(list)
        active: dict[int, int] = defaultdict(int)
        max_active: dict[int, int] = defaultdict(int)
        done = self.recorder()

        async def handler(envelope: Envelope) -> None:
            part = partition_for(envelope.key, 4)
            active[part] += 1
            max_active[part] = max(max_active[part], active[part])
            await asyncio.sleep(0)  # yield, so that other partitions' handlers interleave
            seen[envelope.key].append(envelope.data["n"])
            active[part] -= 1
            await done.record(envelope)

        topic = name("order")
        bus.subscribe(topic, name("g"), handler)
        await bus.start()
        keys = [f"run-{k}" for k in range(20)]
        for n in range(50):  # one key's messages one after another; keys side by side
            await asyncio.gather(*(bus.publish(topic, msg(key, n)) for key in keys))
        await done.wait_for_count(1000)

        assert {key: seen[key] for key in keys} == {key: list(range(50)) for key in keys}
        assert set(max_active.values()) == {1}  # never two handlers at once on one partition
        assert len(max_active) == 4  # and every partition was used

    async def test_every_group_gets_every_message(self, new_bus: BusFactory, name: Callable[[str], str]) -> None:
        bus = await new_bus()
        topic = name("groups")
        groups = {group: self.recorder() for group in ("scheduler", "notifier", "audit")}
        for group, recorder in groups.items():
            bus.subscribe(topic, name(group), recorder)
        await bus.start()
        sent = [msg(f"run-{i % 7}", i) for i in range(100)]
        await asyncio.gather(*(bus.publish(topic, envelope) for envelope in sent))

        for recorder in groups.values():
            await recorder.wait_for_count(100)
            assert sorted(recorder.ids) == sorted(e.id for e in sent)

    async def test_publish_all_hands_over_every_message_in_order_across_topics(
            self, new_bus: BusFactory, name: Callable[[str], str]) -> None:
        bus = await new_bus()
        first, second = name("all-a"), name("all-b")
        seen = {topic: self.recorder() for topic in (first, second)}
        for topic, recorder in seen.items():
            bus.subscribe(topic, name("g"), recorder)
        await bus.start()
        batch = [(first if i % 3 else second, msg("run-1", i)) for i in range(30)]
        await bus.publish_all(batch)
        await bus.publish_all([])

        for topic, recorder in seen.items():
            expected = [e.id for t, e in batch if t == topic]
            await recorder.wait_for_count(len(expected))
            assert recorder.ids == expected

    async def test_a_handler_for_some_types_sees_only_those_in_order(
            self, new_bus: BusFactory, name: Callable[[str], str]) -> None:
        bus = await new_bus()
        topic, wanted, everything = name("typed"), self.recorder(), self.recorder()
        bus.subscribe(topic, name("typed-only"), ForTypes(frozenset({MARKER_TYPE}), wanted))
        bus.subscribe(topic, name("typed-all"), everything)
        await bus.start()
        sent = [msg("run-1", i) if i % 3 else marker("run-1", i) for i in range(30)]
        for envelope in sent:
            await bus.publish(topic, envelope)
        await everything.wait_for_count(30)
        await wanted.wait_for_count(10)
        assert wanted.ids == [e.id for e in sent if e.type == MARKER_TYPE]

    # ---- subscribing at runtime -----------------------------------------------------------------

    async def test_add_subscription_after_start_gets_earlier_and_later_messages(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=2)
        bus.subscribe(name("other"), name("g"), self.recorder())
        await bus.start()
        topic, group = name("late"), name("g")
        before = msg("run-a", 1)
        await bus.publish(topic, before)
        recorder = self.recorder()
        await bus.add_subscription(topic, group, recorder)
        after = [msg(f"run-{k}", 2) for k in "abcd"]
        for envelope in after:
            await bus.publish(topic, envelope)

        await recorder.wait_for_count(5)
        assert sorted(recorder.ids) == sorted([before.id, *(e.id for e in after)])
        with pytest.raises(ValueError):
            await bus.add_subscription(topic, group, self.recorder())
        second = self.recorder()  # another group on the same topic gets everything too
        await bus.add_subscription(topic, name("g2"), second)
        await second.wait_for_count(5)

    async def test_one_group_added_to_several_topics_at_runtime_gets_each_topic(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=2)
        await bus.start()
        group = name("queue-group")
        recorders = {name(t): self.recorder() for t in ("orders", "invoices", "refunds")}
        sent: dict[str, list[str]] = {}
        for topic, recorder in recorders.items():  # each one joins while the others consume
            await bus.add_subscription(topic, group, recorder)
            envelopes = [msg(f"run-{k}", k) for k in range(4)]
            for envelope in envelopes:
                await bus.publish(topic, envelope)
            sent[topic] = [e.id for e in envelopes]
        for topic, recorder in recorders.items():
            await recorder.wait_for_count(4)
            assert sorted(recorder.ids) == sorted(sent[topic])

    async def test_add_subscription_before_start_is_subscribe_and_after_stop_fails(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus()
        topic = name("early")
        recorder = self.recorder()
        await bus.add_subscription(topic, name("g"), recorder)
        await bus.start()
        sent = msg("run-e", 1)
        await bus.publish(topic, sent)
        assert (await recorder.wait_for_count(1))[0].id == sent.id
        await bus.stop()
        with pytest.raises(BusError):
            await bus.add_subscription(name("after"), name("g"), self.recorder())

    async def test_a_blocked_partition_holds_back_only_its_own_keys(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=8)
        blocked, neighbour = keys_in_partition(8, 0, 2)
        [other] = keys_in_partition(8, 1, 1)
        release, started, other_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        order = self.recorder()

        async def handler(envelope: Envelope) -> None:
            if envelope.key == blocked:
                started.set()
                await release.wait()
            await order.record(envelope)
            if envelope.key == other:
                other_done.set()

        topic = name("independent")
        bus.subscribe(topic, name("g"), handler)
        await bus.start()
        for key in (blocked, neighbour, other):
            await bus.publish(topic, msg(key))
        async with asyncio.timeout(self.GUARD):
            await started.wait()
            await other_done.wait()  # another partition goes on while `blocked` is in its handler
        assert [e.key for e in order.seen] == [other]
        release.set()
        await order.wait_for_count(3)
        assert [e.key for e in order.seen] == [other, blocked, neighbour]

    async def test_a_busy_partition_does_not_starve_the_others(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=2)
        [busy] = keys_in_partition(2, 0, 1)
        [quiet] = keys_in_partition(2, 1, 1)
        seen: list[str] = []
        finished = asyncio.Event()

        async def handler(envelope: Envelope) -> None:  # never suspends
            seen.append(envelope.key)
            if len(seen) == 1001:
                finished.set()

        topic = name("fair")
        bus.subscribe(topic, name("g"), handler)
        await asyncio.gather(*(bus.publish(topic, msg(busy, n)) for n in range(1000)))
        await bus.publish(topic, msg(quiet))
        await bus.start()
        async with asyncio.timeout(self.GUARD):
            await finished.wait()
        assert seen.index(quiet) < 500

    # ---- redelivery and dead letters -------------------------------------------------------------

    async def test_retryable_error_redelivers_while_later_messages_wait(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1, redelivery_backoff=0)
        topic = name("retry")
        dlq = self.dead_letters(bus, topic, name)
        first, second, third = msg("run-a", 1), msg("run-b", 2), msg("run-a", 3)
        seen = self.recorder()
        failures = iter([ConcurrentUpdateError("lost a race"), BusError("broker hiccup")])

        async def handler(envelope: Envelope) -> None:
            await seen.record(envelope)
            if envelope.id == first.id:
                error = next(failures, None)
                if error is not None:
                    raise error

        bus.subscribe(topic, name("g"), handler)
        for envelope in (first, second, third):
            await bus.publish(topic, envelope)
        await bus.start()
        await seen.wait_for_count(5)

        assert seen.ids == [first.id, first.id, first.id, second.id, third.id]
        assert await dlq.settled(bus, "run-a") == []

    async def test_non_retryable_error_goes_straight_to_dead_letters(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1, redelivery_backoff=0)
        topic, group = name("fatal"), name("scheduler")
        dlq = self.dead_letters(bus, topic, name)
        bad, good = msg("run-a", 1), msg("run-a", 2)
        seen = self.recorder()

        async def handler(envelope: Envelope) -> None:
            await seen.record(envelope)
            if envelope.id == bad.id:
                raise ConflictError("node run run-a/n1/1 is not waiting")

        bus.subscribe(topic, group, handler)
        await bus.start()
        await bus.publish(topic, bad)
        await bus.publish(topic, good)
        await seen.wait_for_count(2)
        [letter] = await dlq.wait_for(lambda seen: len(seen) >= 1)

        assert seen.ids == [bad.id, good.id]
        assert (letter.type, letter.subject) == (DEAD_LETTER_TYPE, bad.subject)
        assert letter.data == {
            "envelope": bad.model_dump(mode="json"),
            "topic": topic,
            "group": group,
            "partition": 0,
            "offset": 0,
            "deliveries": 1,
            "error_type": "ConflictError",
            "error_code": "conflict",
            "error_message": "node run run-a/n1/1 is not waiting",
        }
        assert Envelope.model_validate(letter.data["envelope"]) == bad
        assert await dlq.settled(bus, "run-a") == [letter]

    async def test_dead_letter_carries_only_str_of_the_error(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1)
        topic = name("secret")
        dlq = self.dead_letters(bus, topic, name)

        async def handler(envelope: Envelope) -> None:
            raise ActionError("POST failed with 401", output={"authorization": "Bearer s3cr3t-token"})

        bus.subscribe(topic, name("executor"), handler)
        await bus.start()
        await bus.publish(topic, msg("run-a"))
        [letter] = await dlq.wait_for(lambda seen: len(seen) >= 1)

        assert letter.data["error_message"] == "POST failed with 401"
        assert "s3cr3t" not in json.dumps(letter.data)

    async def test_exceeding_max_deliveries_dead_letters_and_moves_on(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1, max_deliveries=3, redelivery_backoff=0)
        topic = name("flaky")
        dlq = self.dead_letters(bus, topic, name)
        flaky, after = msg("run-a", 1), msg("run-a", 2)
        seen = self.recorder()

        async def handler(envelope: Envelope) -> None:
            await seen.record(envelope)
            if envelope.id == flaky.id:
                raise RuntimeError("driver exploded")  # not a SteplineError: retried

        bus.subscribe(topic, name("g"), handler)
        await bus.start()
        await bus.publish(topic, flaky)
        await bus.publish(topic, after)
        await seen.wait_for_count(4)
        [letter] = await dlq.wait_for(lambda seen: len(seen) >= 1)

        assert seen.ids == [flaky.id, flaky.id, flaky.id, after.id]
        assert letter.data["deliveries"] == 3
        assert (letter.data["error_type"], letter.data["error_code"]) == ("RuntimeError", None)
        assert letter.data["error_message"] == "driver exploded"

    async def test_failing_dead_letter_handler_does_not_loop(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1, max_deliveries=2, redelivery_backoff=0)
        topic = name("loop")
        watch = DeadLetters(topic, self.GUARD)  # everything of this test the dlq group sees

        async def failing(envelope: Envelope) -> None:
            raise ConflictError("no")

        async def failing_dlq(envelope: Envelope) -> None:
            await watch(envelope)
            if envelope.type == DEAD_LETTER_TYPE and envelope.data.get("topic") == topic:
                raise RuntimeError("dlq consumer broken")

        bus.subscribe(topic, name("g"), failing)
        bus.subscribe(topics.DEAD_LETTERS, name("dlq"), failing_dlq)
        await bus.start()
        await bus.publish(topic, msg("run-a"))
        await watch.wait_for(lambda seen: len(seen) >= 2)  # max_deliveries of the letter
        await watch.settled(bus, "run-a")  # the dlq group is past the letter: dropped or re-lettered
        letters = await watch.settled(bus, "run-a")  # and anything it published meanwhile is seen

        assert len(letters) == 2  # one letter, delivered twice; no letter of the letter
        assert letters[0].id == letters[1].id

    async def test_stop_cancels_a_pending_redelivery_backoff(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1, redelivery_backoff=30)
        failed = asyncio.Event()
        calls = 0

        async def handler(envelope: Envelope) -> None:
            nonlocal calls
            calls += 1
            failed.set()
            raise BusError("try later")

        topic = name("backoff")
        bus.subscribe(topic, name("g"), handler)
        await bus.start()
        await bus.publish(topic, msg("run-a"))
        async with asyncio.timeout(self.GUARD):
            await failed.wait()
            await bus.stop()  # does not sit out the 30 s backoff
        assert calls == 1

    async def test_a_retryable_failure_while_stopping_is_not_redelivered(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=1, redelivery_backoff=30)
        started, release = asyncio.Event(), asyncio.Event()
        calls = 0

        async def handler(envelope: Envelope) -> None:
            nonlocal calls
            calls += 1
            started.set()
            await release.wait()
            raise BusError("broker went away")

        topic = name("stop-retry")
        bus.subscribe(topic, name("g"), handler)
        await bus.start()
        await bus.publish(topic, msg("run-a"))
        async with asyncio.timeout(self.GUARD):
            await started.wait()
        stopping = asyncio.create_task(bus.stop())
        await asyncio.sleep(0)  # one loop turn: stop() begins and waits for the handler
        release.set()
        async with asyncio.timeout(self.GUARD):
            await stopping
        assert calls == 1

    # ---- start/subscribe order -------------------------------------------------------------------

    async def test_messages_published_before_subscribe_and_start_are_delivered(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus()
        topic = name("early")
        early = [msg(f"run-{i}", i) for i in range(5)]
        late = [msg(f"run-{i}", i) for i in range(5, 8)]
        for envelope in early:
            await bus.publish(topic, envelope)
        before_start, after_start = self.recorder(), self.recorder()
        bus.subscribe(topic, name("before-start"), before_start)
        await bus.start()
        for envelope in late:
            await bus.publish(topic, envelope)
        bus.subscribe(topic, name("after-start"), after_start)  # starts at the oldest message

        everything = sorted(e.id for e in early + late)
        assert sorted(e.id for e in await before_start.wait_for_count(8)) == everything
        assert sorted(e.id for e in await after_start.wait_for_count(8)) == everything

    async def test_a_group_subscribes_to_a_topic_once(self, new_bus: BusFactory, name: Callable[[str], str]) -> None:
        bus = await new_bus()
        bus.subscribe(name("twice"), "g", self.recorder())
        with pytest.raises(ValueError, match="already subscribes"):
            bus.subscribe(name("twice"), "g", self.recorder())

    # ---- stopping --------------------------------------------------------------------------------

    async def test_stop_lets_the_handler_in_progress_finish(
        self, new_bus: BusFactory, name: Callable[[str], str]
    ) -> None:
        bus = await new_bus(partitions=4)
        started, release = asyncio.Event(), asyncio.Event()
        finished: list[str] = []
        cancelled: list[str] = []
        topic, follow_up = name("stop"), name("follow-up")

        async def handler(envelope: Envelope) -> None:
            started.set()
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append(envelope.id)
                raise
            await bus.publish(follow_up, msg(envelope.key))  # still allowed while stopping
            finished.append(envelope.id)

        bus.subscribe(topic, name("g"), handler)
        await bus.start()
        in_hand = msg("run-a")
        await bus.publish(topic, in_hand)
        async with asyncio.timeout(self.GUARD):
            await started.wait()

        stopping = asyncio.create_task(bus.stop())
        await asyncio.sleep(0)  # one loop turn: stop() begins, then waits for the handler
        assert not stopping.done()
        release.set()
        async with asyncio.timeout(self.GUARD):
            await stopping

        assert finished == [in_hand.id]
        assert cancelled == []

    async def test_a_stopped_bus_refuses_work(self, new_bus: BusFactory, name: Callable[[str], str]) -> None:
        bus = await new_bus()
        topic = name("closed")
        bus.subscribe(topic, name("g"), self.recorder())
        await bus.start()
        await bus.stop()
        await bus.stop()  # idempotent

        with pytest.raises(BusError):
            await bus.publish(topic, msg("run-a"))
        with pytest.raises(BusError):
            await bus.publish_all([(topic, msg("run-a"))])
        with pytest.raises(BusError):
            await bus.start()
        with pytest.raises(BusError):
            bus.subscribe(topic, name("other"), self.recorder())
