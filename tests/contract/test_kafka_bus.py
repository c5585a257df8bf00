"""`KafkaBus` against the bus contract on a real broker, and what only Kafka can show: the records on
the wire, poison records, offsets surviving a crashed consumer, a broker that goes away and comes back.

The broker is the session's (`kafka_broker` in conftest.py). Every test uses its own topics and
groups; the dead-letter topic is shared, so watchers filter by topic (bus_contract.DeadLetters).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.bus.dead_letter import DEAD_LETTER_TYPE
from libs.bus.kafka import KafkaBus
from libs.bus.kafka.partitioner import crc32_partitioner
from libs.bus.memory import partition_for
from libs.bus.ports import Bus, ForTypes
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from libs.telemetry.propagation import is_valid
from tests.conftest import free_port
from tests.infra_fixtures import KafkaBroker

from .bus_contract import MARKER_TYPE, BusContract, DeadLetters, Recorder, marker, msg

pytestmark = pytest.mark.kafka

GUARD = 60.0
RETRY_PAUSE = 0.2
REPO = Path(__file__).resolve().parents[2]


class TestKafkaBus(BusContract):
    GUARD = GUARD

    @pytest.fixture(autouse=True)
    def _broker(self, kafka_broker: KafkaBroker) -> None:
        self.bootstrap = kafka_broker.bootstrap

    async def make_bus(self, *, partitions: int = 8, max_deliveries: int = 5,
                       redelivery_backoff: float = 0.0) -> Bus:
        return KafkaBus(self.bootstrap, partitions=partitions, client_id="stepline-tests",
                        max_deliveries=max_deliveries, redelivery_backoff=redelivery_backoff)


# ---- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def name() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:10]
    return lambda base: f"t.{base}.{suffix}"


@pytest.fixture
async def new_bus(kafka_broker: KafkaBroker) -> AsyncIterator[Callable[..., KafkaBus]]:
    made: list[KafkaBus] = []

    def factory(**settings: Any) -> KafkaBus:
        made.append(KafkaBus(kafka_broker.bootstrap, client_id="stepline-tests", **settings))
        return made[-1]

    yield factory
    async with asyncio.timeout(GUARD):
        for bus in made:
            await bus.stop()


def recorder() -> Recorder:
    return Recorder(GUARD)


async def read_records(bootstrap: str, topic: str, count: int) -> list[Any]:
    """The first `count` records of `topic`, read without a group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(GUARD):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def publish_retrying(bus: KafkaBus, topic: str, envelope: Envelope, failures: list[BusError]) -> None:
    """Publish until the broker takes it, as a service would: a retryable BusError means try again
    (after a pause, so that an unreachable broker is not hammered; the pause waits for nothing)."""
    async with asyncio.timeout(GUARD * 2):
        while True:
            try:
                await bus.publish(topic, envelope)
                return
            except BusError as exc:
                assert exc.retryable
                failures.append(exc)
            await asyncio.sleep(RETRY_PAUSE)


# ---- the records on the wire ---------------------------------------------------------------------


async def test_records_carry_key_partition_traceparent_and_type(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], kafka_broker: KafkaBroker
) -> None:
    bus = new_bus(partitions=4)
    source, follow_up = name("wire"), name("wire-follow-up")
    handled = recorder()

    async def forward(envelope: Envelope) -> None:
        await bus.publish(follow_up, msg(envelope.key, envelope.data["n"]))
        await handled.record(envelope)

    bus.subscribe(source, name("g"), forward)
    await bus.start()
    sent = [msg(f"run-{i}", i) for i in range(12)]
    for envelope in sent:
        await bus.publish(source, envelope)
    await handled.wait_for_count(12)

    originals = {r.key: r for r in await read_records(kafka_broker.bootstrap, source, 12)}
    forwarded = await read_records(kafka_broker.bootstrap, follow_up, 12)
    for envelope in sent:
        record = originals[envelope.key.encode()]
        headers = dict(record.headers)
        assert record.partition == partition_for(envelope.key, 4) == bus.partition_of(envelope.key)
        assert Envelope.from_bytes(record.value) == envelope
        assert headers["ce_type"] == envelope.type.encode()
        assert is_valid(headers["traceparent"].decode())
    for record in forwarded:  # a handler's publish continues the trace of what it handles
        parent = dict(originals[record.key].headers)["traceparent"].decode()
        child = dict(record.headers)["traceparent"].decode()
        assert child.split("-")[1] == parent.split("-")[1] and child != parent
    assert len({dict(r.headers)["traceparent"].split(b"-")[1] for r in originals.values()}) == 12


async def test_concurrent_publishes_of_one_run_keep_call_order(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str]
) -> None:
    bus = new_bus(partitions=2)
    topic = name("call-order")
    seen = recorder()
    bus.subscribe(topic, name("g"), seen)
    await bus.start()
    sent = [msg("run-o", n) for n in range(3000)]  # more than a producer batch holds
    await asyncio.gather(*(bus.publish(topic, envelope) for envelope in sent))

    await seen.wait_for_count(3000)
    assert [e.data["n"] for e in seen.seen] == list(range(3000))


# ---- poison records ------------------------------------------------------------------------------


async def test_a_poison_record_is_dead_lettered_and_its_partition_moves_on(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], kafka_broker: KafkaBroker
) -> None:
    bus = new_bus(partitions=2)
    topic, group = name("poison"), name("g")
    dlq = DeadLetters(topic, GUARD)
    bus.subscribe(topics.DEAD_LETTERS, name("dlq-watch"), dlq)
    handled = recorder()
    bus.subscribe(topic, group, handled)
    await bus.start()

    raw = [b"\xffnot json at all", b'{"json": "but not an envelope"}']
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, partitioner=crc32_partitioner)
    await producer.start()
    try:
        for value in raw:
            await producer.send_and_wait(topic, value=value, key=b"run-p")
    finally:
        await producer.stop()
    good = msg("run-p", 1)
    await bus.publish(topic, good)

    assert [e.id for e in await handled.wait_for_count(1)] == [good.id]
    letters = await dlq.wait_for(lambda seen: len(seen) >= 2)
    for offset, (letter, value) in enumerate(zip(letters, raw, strict=False)):
        assert (letter.type, letter.subject) == (DEAD_LETTER_TYPE, "run-p")
        assert base64.b64decode(letter.data["raw_base64"]) == value
        assert letter.data | {"raw_base64": None, "error_message": None} == {
            "envelope": None, "raw_base64": None, "topic": topic, "group": group,
            "partition": partition_for("run-p", 2), "offset": offset, "deliveries": 0,
            "error_type": "PoisonMessageError", "error_code": "poison_message", "error_message": None,
        }


async def test_a_typed_handler_passes_over_other_types_by_their_header_without_decoding(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], kafka_broker: KafkaBroker
) -> None:
    """A record whose ce_type header names a type the handler does not read is done without its value
    being read: even an undecodable one is not dead-lettered. A record without the header is decoded."""
    bus = new_bus(partitions=1)
    topic, group = name("typed-header"), name("g")
    dlq = DeadLetters(topic, GUARD)
    bus.subscribe(topics.DEAD_LETTERS, name("dlq-watch"), dlq)
    wanted = recorder()
    bus.subscribe(topic, group, ForTypes(frozenset({MARKER_TYPE}), wanted))
    await bus.start()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, partitioner=crc32_partitioner)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"\xffnot json", key=b"run-t", headers=[("ce_type", b"other.type")])
        await producer.send_and_wait(topic, value=b"\xffno header either", key=b"run-t")
    finally:
        await producer.stop()
    read = marker("run-t", 1)
    await bus.publish(topic, read)

    assert [e.id for e in await wanted.wait_for_count(1)] == [read.id]
    letters = await dlq.settled(bus, "run-t")
    assert [(letter.data["offset"], letter.data["group"]) for letter in letters] == [(1, group)]


async def test_plain_json_on_an_external_subscription_arrives_as_an_external_message(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], kafka_broker: KafkaBroker
) -> None:
    bus = new_bus(partitions=2)
    topic = name("queue")
    dlq = DeadLetters(topic, GUARD)
    bus.subscribe(topics.DEAD_LETTERS, name("dlq-watch"), dlq)
    await bus.start()
    good = msg("order-1", 1)
    await bus.publish(topic, good)  # creates the topic (two partitions); offset 0 of the key's partition

    raw = [b'{"order": 1, "items": ["a"]}', b"42", b"\xffnot json at all"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, partitioner=crc32_partitioner)
    await producer.start()
    try:
        for value in raw:
            await producer.send_and_wait(topic, value=value, key=b"order-1")
        await producer.send_and_wait(topic, value=b'{"no": "key"}')
    finally:
        await producer.stop()
    handled = recorder()
    await bus.add_subscription(topic, name("g"), handled, external=True)  # after start and after the records

    seen = await handled.wait_for_count(4)
    partition = partition_for("order-1", 2)
    by_id = {e.id: e for e in seen}
    assert good.id in by_id
    first = by_id[f"{topic}/{partition}/1"]
    assert (first.type, first.subject) == (v1.ExternalMessage.TYPE, "order-1")
    assert first.message() == v1.ExternalMessage(run_id="order-1", topic=topic, partition=partition, offset=1,
                                                 key="order-1", value={"order": 1, "items": ["a"]})
    assert by_id[f"{topic}/{partition}/2"].data["value"] == 42
    keyless = [e for e in seen if e.data.get("value") == {"no": "key"}]
    assert len(keyless) == 1 and keyless[0].data["key"] is None and keyless[0].subject == keyless[0].id
    letters = await dlq.wait_for(lambda seen: len(seen) >= 1)
    assert base64.b64decode(letters[0].data["raw_base64"]) == raw[2]
    assert letters[0].data["error_code"] == "poison_message"


# ---- offsets: committed only after the handler ---------------------------------------------------

CRASHER = """
import asyncio, os, sys
from libs.bus.kafka import KafkaBus

async def main() -> None:
    bootstrap, topic, group, crash_id = sys.argv[1:5]
    bus = KafkaBus(bootstrap, client_id="crasher", partitions=1, session_timeout=6.0)

    async def handler(envelope):
        print(envelope.id, flush=True)
        if envelope.id == crash_id:
            os._exit(17)  # the process dies inside the handler: nothing is committed for it

    bus.subscribe(topic, group, handler)
    await bus.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await consumer.stop()


async def test_a_consumer_that_dies_in_a_handler_leaves_that_message_for_the_next(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], kafka_broker: KafkaBroker
) -> None:
    topic, group = name("crash"), name("g")
    publisher = new_bus(partitions=1)
    first, doomed, last = msg("run-c", 1), msg("run-c", 2), msg("run-c", 3)
    for envelope in (first, doomed, last):
        await publisher.publish(topic, envelope)

    crasher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHER, kafka_broker.bootstrap, topic, group, doomed.id,
        cwd=REPO, stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(GUARD):
        out, _ = await crasher.communicate()
    assert crasher.returncode == 17
    assert out.decode().split() == [first.id, doomed.id]
    assert await committed_offset(kafka_broker.bootstrap, group, topic) in (None, 1)  # never past it

    successor = new_bus(partitions=1)
    seen = recorder()
    successor.subscribe(topic, group, seen)
    await successor.start()
    await seen.wait_for_ids({doomed.id, last.id})
    assert seen.ids[-2:] == [doomed.id, last.id]
    assert seen.ids in ([first.id, doomed.id, last.id], [doomed.id, last.id])


async def test_a_second_consumer_joining_mid_stream_loses_nothing(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str]
) -> None:
    topic, group = name("rebalance"), name("g")
    first_bus, second_bus = new_bus(partitions=4), new_bus(partitions=4)
    seen = recorder()
    half = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        await asyncio.sleep(0.002)  # a handler that takes a little while: records are in hand
        await seen.record(envelope)
        if len(seen.seen) >= 100:
            half.set()

    first_bus.subscribe(topic, group, slow)
    second_bus.subscribe(topic, group, slow)
    await first_bus.start()
    sent = [msg(f"run-{i % 16}", i) for i in range(400)]
    await asyncio.gather(*(first_bus.publish(topic, envelope) for envelope in sent))
    async with asyncio.timeout(GUARD):
        await half.wait()
    await second_bus.start()  # the group rebalances: partitions move while records are in hand

    await seen.wait_for_ids({e.id for e in sent})
    # A revoked partition's record in hand was finished and committed before the partition moved,
    # and records fetched but not taken were left for the new owner: nothing twice, order kept.
    assert len(seen.ids) == len(set(seen.ids)) == 400
    by_key: dict[str, list[int]] = {}
    for envelope in seen.seen:
        by_key.setdefault(envelope.key, []).append(envelope.data["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())


# ---- an unavailable broker -----------------------------------------------------------------------


async def test_publish_to_an_unreachable_broker_raises_a_retryable_bus_error() -> None:
    bus = KafkaBus(f"127.0.0.1:{free_port()}", client_id="stepline-tests", publish_timeout=2.0)
    try:
        async with asyncio.timeout(GUARD):
            with pytest.raises(BusError) as raised:
                await bus.publish("t.nowhere", msg("run-a"))
        assert raised.value.retryable
    finally:
        await bus.stop()


@pytest.fixture
def own_broker(kafka_broker: KafkaBroker) -> Any:
    if kafka_broker.server is None:
        pytest.skip("needs a broker this session started (not STEPLINE_TEST_KAFKA_BOOTSTRAP)")
    yield kafka_broker.server
    if not kafka_broker.server.running:  # a failed test must not leave the next without a broker
        kafka_broker.server.start()


async def test_a_stopped_broker_fails_publish_retryably_and_consumers_resume_after_it(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], own_broker: Any
) -> None:
    bus = new_bus(partitions=2, publish_timeout=3.0)
    topic = name("outage")
    seen = recorder()
    bus.subscribe(topic, name("g"), seen)
    await bus.start()
    before = msg("run-a", 1)
    await bus.publish(topic, before)
    await seen.wait_for_ids({before.id})

    await asyncio.to_thread(own_broker.stop)
    with pytest.raises(BusError) as raised:
        await bus.publish(topic, msg("run-a", 2))
    assert raised.value.retryable
    await asyncio.to_thread(own_broker.start)

    after = [msg(f"run-{i}", i) for i in range(3, 13)]
    for envelope in after:
        await publish_retrying(bus, topic, envelope, [])
    await seen.wait_for_ids({e.id for e in after})


async def test_every_message_is_handled_across_a_broker_restart(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], own_broker: Any
) -> None:
    bus = new_bus(partitions=4, publish_timeout=3.0)
    topic = name("restart")
    seen = recorder()
    bus.subscribe(topic, name("g"), seen)
    await bus.start()
    sent = [msg(f"run-{i % 16}", i) for i in range(600)]
    failures: list[BusError] = []

    async def publish_all() -> None:
        for envelope in sent:
            await publish_retrying(bus, topic, envelope, failures)

    publishing = asyncio.create_task(publish_all())
    await seen.wait_for_count(100)  # mid-stream
    await asyncio.to_thread(own_broker.restart)
    async with asyncio.timeout(GUARD * 2):
        await publishing
    await seen.wait_for_ids({e.id for e in sent})  # at least once: none lost
    logging.getLogger(__name__).info("restart: %d publish failures, %d duplicate deliveries",
                                     len(failures), len(seen.seen) - len(sent))


# ---- throughput ----------------------------------------------------------------------------------


async def test_ten_thousand_messages_end_to_end(
    new_bus: Callable[..., KafkaBus], name: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    bus = new_bus(partitions=8)
    topic = name("throughput")
    done = asyncio.Event()
    count = 0

    async def trivial(envelope: Envelope) -> None:
        nonlocal count
        count += 1
        if count == 10_000:
            done.set()

    bus.subscribe(topic, name("g"), trivial)
    await bus.start()
    sent = [msg(f"run-{i % 500}", i) for i in range(10_000)]
    began = time.perf_counter()
    for chunk in range(0, len(sent), 1000):
        await asyncio.gather(*(bus.publish(topic, e) for e in sent[chunk:chunk + 1000]))
    published = time.perf_counter() - began
    async with asyncio.timeout(GUARD):
        await done.wait()
    elapsed = time.perf_counter() - began
    with capsys.disabled():
        print(f"\nKafkaBus: 10,000 messages, 8 partitions: published in {published:.2f} s, "
              f"handled in {elapsed:.2f} s ({10_000 / elapsed:,.0f} messages/s end to end)")
