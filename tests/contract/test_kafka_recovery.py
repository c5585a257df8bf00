"""How fast a consumer group recovers, on a real broker (issue 11): static membership gives a
SIGKILLed and restarted replica its partitions back without a rebalance, a restarted replica with
two consumers in one group holds all its partitions, a graceful stop hands partitions over at once,
and a broker restart costs a bounded number of log lines.

Members are OS processes (tests/contract/kafka_members.py) so that they can be SIGKILLed. The
assertions are on partition-assignment events, never on time: the members' session timeout
(`SESSION`) is longer than any wait here (`GUARD`), so whatever the tests see happen, happened
before the broker would have given up on a dead member; with dynamic membership (a new member id per
start) the same waits would fail or see the other member's partitions revoked.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from libs.bus.kafka import KafkaBus
from libs.bus.kafka.outage_log import INTERVAL, QUIET
from libs.bus.memory import partition_for
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from tests.contract.bus_contract import msg
from tests.contract.kafka_members import Event, Member
from tests.infra_fixtures import KafkaBroker

pytestmark = pytest.mark.kafka

GUARD = 40.0
SESSION = 60.0
SHORT_SESSION = 6.0  # the broker's default group.min.session.timeout.ms
ALL = set(range(8))


@pytest.fixture
def name() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:10]
    return lambda base: f"t.recovery.{base}.{suffix}"


@pytest.fixture
async def members() -> AsyncIterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.kill()
        await member.stop()


@pytest.fixture
async def publisher(kafka_broker: KafkaBroker) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(kafka_broker.bootstrap, client_id="stepline-tests")
    yield bus
    await bus.stop()


async def start(members: list[Member], broker: KafkaBroker, replica: str, group: str, topics: list[str],
                session: float = SESSION) -> Member:
    member = await Member.start(broker.bootstrap, replica, group, topics, session=session)
    members.append(member)
    return member


def assigned(topic: str, partitions: set[int] | None = None) -> Callable[[Event], bool]:
    """Matches an assignment of `topic` (to exactly `partitions`, when given)."""
    return lambda e: (e.get("change") == "assigned" and e["topic"] == topic
                      and (partitions is None or set(e["partitions"]) == partitions))


async def split_between(a: Member, b: Member, topic: str) -> tuple[set[int], set[int]]:
    """Once `b` joined `a`'s group: the partitions each holds."""
    async with asyncio.timeout(GUARD):
        of_b = set((await b.wait_for(assigned(topic)))["partitions"])
        await a.wait_for(assigned(topic, ALL - of_b))
    assert of_b and of_b != ALL
    return ALL - of_b, of_b


async def one_per_partition(bus: KafkaBus, topic: str) -> dict[int, Envelope]:
    """Publish one message to every partition of `topic`; {partition: message}."""
    keys = {partition_for(f"run-{i}", 8): f"run-{i}" for i in range(200)}
    sent = {p: msg(keys[p], p) for p in sorted(ALL)}
    for envelope in sent.values():
        await bus.publish(topic, envelope)
    return sent


async def handled(member: Member, envelopes: list[Envelope]) -> None:
    async with asyncio.timeout(GUARD):
        for envelope in envelopes:
            await member.wait_for(handled_event(envelope.id))


def handled_event(envelope_id: str) -> Callable[[Event], bool]:
    return lambda e: e.get("handled") == envelope_id


async def test_a_sigkilled_member_restarted_takes_its_partitions_back_without_a_rebalance(
    kafka_broker: KafkaBroker, name: Callable[[str], str], members: list[Member], publisher: KafkaBus
) -> None:
    topic, group = name("kill"), name("g")
    a = await start(members, kafka_broker, "a", group, [topic])
    async with asyncio.timeout(GUARD):
        await a.wait_for(assigned(topic, ALL))
    b = await start(members, kafka_broker, "b", group, [topic])
    of_a, of_b = await split_between(a, b, topic)
    b_before = len(b.events)

    a.kill()
    await a.stop()
    restarted = await start(members, kafka_broker, "a", group, [topic])
    async with asyncio.timeout(GUARD):
        event = await restarted.wait_for(assigned(topic))
    assert set(event["partitions"]) == of_a  # its own partitions, back before the session ended

    sent = await one_per_partition(publisher, topic)
    await handled(restarted, [sent[p] for p in of_a])
    await handled(b, [sent[p] for p in of_b])
    assert [e for e in b.events[b_before:] if "change" in e] == []  # b never stopped: no rebalance


async def test_a_member_that_does_not_come_back_loses_its_partitions_after_the_session_timeout(
    kafka_broker: KafkaBroker, name: Callable[[str], str], members: list[Member], publisher: KafkaBus
) -> None:
    topic, group = name("gone"), name("g")
    a = await start(members, kafka_broker, "a", group, [topic], SHORT_SESSION)
    async with asyncio.timeout(GUARD):
        await a.wait_for(assigned(topic, ALL))
    b = await start(members, kafka_broker, "b", group, [topic], SHORT_SESSION)
    of_a, _ = await split_between(a, b, topic)
    b_before = len(b.events)

    a.kill()
    await a.stop()
    async with asyncio.timeout(GUARD):
        await b.wait_for(assigned(topic, ALL), after=b_before)
    sent = await one_per_partition(publisher, topic)
    await handled(b, [sent[p] for p in of_a])


async def test_a_restarted_replica_with_two_consumers_in_one_group_holds_all_its_partitions(
    kafka_broker: KafkaBroker, name: Callable[[str], str], members: list[Member], publisher: KafkaBus
) -> None:
    commands, results, group = name("commands"), name("results"), name("g")  # the scheduler's shape
    first = await start(members, kafka_broker, "scheduler", group, [commands, results])
    async with asyncio.timeout(GUARD):
        for topic in (commands, results):
            await first.wait_for(assigned(topic, ALL))

    first.kill()
    await first.stop()
    restarted = await start(members, kafka_broker, "scheduler", group, [commands, results])
    async with asyncio.timeout(GUARD):
        for topic in (commands, results):
            event = await restarted.wait_for(assigned(topic))
            assert set(event["partitions"]) == ALL  # no dead incarnation holds half of them
    sent = await one_per_partition(publisher, commands)
    await handled(restarted, list(sent.values()))


async def test_a_graceful_stop_hands_partitions_over_at_once(
    kafka_broker: KafkaBroker, name: Callable[[str], str], members: list[Member], publisher: KafkaBus
) -> None:
    topic, group = name("scale-down"), name("g")
    a = await start(members, kafka_broker, "a", group, [topic])
    async with asyncio.timeout(GUARD):
        await a.wait_for(assigned(topic, ALL))
    b = await start(members, kafka_broker, "b", group, [topic])
    of_a, _ = await split_between(a, b, topic)
    b_before = len(b.events)

    assert await a.stop() == 0
    assert any(e.get("stopped") for e in a.events)
    async with asyncio.timeout(GUARD):  # < SESSION: the stopped member left; nobody waited for it
        await b.wait_for(assigned(topic, ALL), after=b_before)
    sent = await one_per_partition(publisher, topic)
    await handled(b, [sent[p] for p in of_a])


# ---- quiet outages -------------------------------------------------------------------------------


class Lines(logging.Handler):
    """Every WARNING-or-worse line that reaches the root logger, and an event for the "back" line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.back = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.getMessage().startswith("Kafka reachable again"):
            self.back.set()


@pytest.fixture
def own_broker(kafka_broker: KafkaBroker) -> Any:
    if kafka_broker.server is None:
        pytest.skip("needs a broker this session started (not STEPLINE_TEST_KAFKA_BOOTSTRAP)")
    yield kafka_broker.server
    if not kafka_broker.server.running:
        kafka_broker.server.start()


async def test_a_broker_restart_logs_at_most_one_kafka_line_per_second(
    kafka_broker: KafkaBroker, name: Callable[[str], str], own_broker: Any
) -> None:
    bus = KafkaBus(kafka_broker.bootstrap, partitions=8, client_id="stepline-tests", publish_timeout=2.0)
    seen: list[str] = []

    async def handle(envelope: Envelope) -> None:
        seen.append(envelope.id)

    for topic in (name("quiet-a"), name("quiet-b")):
        bus.subscribe(topic, name("g"), handle)
    lines = Lines()
    root = logging.getLogger()
    try:
        await bus.start()
        root.addHandler(lines)
        began = time.monotonic()
        await asyncio.to_thread(own_broker.restart)
        await keep_publishing_until_it_works(bus, name("quiet-a"))
        async with asyncio.timeout(GUARD):
            await lines.back.wait()
        lasted = time.monotonic() - began
    finally:
        root.removeHandler(lines)
        await bus.stop()
    kafka_lines = [r for r in lines.records if r.name.startswith(("aiokafka", "libs.bus"))]
    assert len(kafka_lines) <= lasted / INTERVAL + 2, [r.getMessage() for r in kafka_lines]
    assert sum(r.getMessage().startswith("Kafka reachable again") for r in kafka_lines) == 1
    assert lasted > QUIET


async def keep_publishing_until_it_works(bus: KafkaBus, topic: str) -> None:
    async with asyncio.timeout(GUARD):
        while True:
            try:
                await bus.publish(topic, msg("run-q", 1))
                return
            except BusError as exc:
                assert exc.retryable


async def test_two_live_replicas_with_one_id_do_not_take_the_group_from_each_other(
    kafka_broker: KafkaBroker, name: Callable[[str], str], members: list[Member]
) -> None:
    """A misconfiguration (or a frozen process resuming after its replacement started): the newer
    process takes the member over; the older one, finding its instance id held by another member
    when it would rejoin, joins as a dynamic member instead of fencing the newer one back (which
    would have the two take the group from each other at every heartbeat)."""
    topic, group = name("twins"), name("g")
    older = await start(members, kafka_broker, "twin", group, [topic])
    async with asyncio.timeout(GUARD):
        await older.wait_for(assigned(topic, ALL))
    newer = await start(members, kafka_broker, "twin", group, [topic])
    async with asyncio.timeout(GUARD):
        await newer.wait_for(assigned(topic, ALL))  # the member taken over, as after a restart
        await older.wait_for(lambda e: "duplicate" in e)
        await until_shared([older, newer], topic)

    third = await start(members, kafka_broker, "third", group, [topic])  # heartbeats pass meanwhile
    async with asyncio.timeout(GUARD):
        await third.wait_for(assigned(topic))
        await until_shared([older, newer, third], topic)
    taken_whole = [e for e in newer.events if e.get("change") == "assigned" and set(e["partitions"]) == ALL]
    assert len(taken_whole) == 1  # taken over once, never fenced back
    assert [e for e in newer.events if "duplicate" in e] == []
    assert sum("duplicate" in e for e in older.events) == 1


async def until_shared(members: list[Member], topic: str) -> None:
    """Until the members hold disjoint non-empty shares of every partition."""
    while True:
        shares = [m.assigned(topic) for m in members]
        if all(shares) and set().union(*shares) == ALL and sum(map(len, shares)) == len(ALL):
            return
        progress = [asyncio.ensure_future(m.wait_for(lambda e: "change" in e, after=len(m.events))) for m in members]
        _, pending = await asyncio.wait(progress, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
