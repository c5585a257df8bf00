"""QUEUE_TRIGGER in distributed mode: the trigger workers over `KafkaBus` on a real broker
(`kafka_broker`) subscribe to a topic named by a live definition, and plain JSON written to it by a raw
aiokafka producer becomes a `StartRun` with the JSON as trigger output."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from libs.bus.kafka import KafkaBus
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.validation import parse_workflow
from libs.core.versioning import WorkflowRecord
from libs.store.sqlite import SqliteStore
from services.trigger.settings import TriggerSettings
from services.trigger.workers import build_trigger_workers
from tests.infra_fixtures import KafkaBroker

pytestmark = pytest.mark.kafka

GUARD = 60.0


async def test_plain_json_on_a_queue_topic_starts_a_run(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    topic, workflow = f"t.queue.{suffix}", f"on-queue-{suffix}"
    store = SqliteStore(str(tmp_path / "stepline.db"))
    await store.open()
    definition = parse_workflow({
        "identifier": workflow,
        "nodes": [{"identifier": "message", "config": {"type": "QUEUE_TRIGGER", "topic": topic}},
                  {"identifier": "work", "config": {"type": "NOOP"}}],
        "connections": [{"sourceIdentifier": "message", "targetIdentifier": "work"}]})
    await store.create_workflow(WorkflowRecord(identifier=workflow, created_at=0.0, updated_at=0.0),
                                definition.model_dump(mode="json", exclude_none=True))

    bus = KafkaBus(kafka_broker.bootstrap, client_id="stepline-tests", partitions=2)
    starts: asyncio.Queue[v1.StartRun] = asyncio.Queue()

    async def watch(envelope: Envelope) -> None:
        message = envelope.message()
        if isinstance(message, v1.StartRun) and message.workflow == workflow:
            await starts.put(message)

    bus.subscribe(topics.RUN_COMMANDS, f"watch.{suffix}", watch)
    workers = build_trigger_workers(TriggerSettings(queue_reconcile_seconds=0.2), store, bus)
    workers.register(bus)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        async with asyncio.timeout(GUARD):
            await bus.start()
            workers.start_loops()
            await producer.start()
            await producer.send_and_wait(topic, value=b'{"order": 7, "lines": 2}', key=b"order-7")
            first = await starts.get()
            assert (first.trigger.type, first.trigger.node, first.inputs) == ("QUEUE", "message",
                                                                              {"order": 7, "lines": 2})
            assert first.idempotency_key is not None and first.idempotency_key.startswith(f"queue:message:{topic}/")
            await producer.send_and_wait(topic, value=b'"just text"', key=b"order-8")
            second = await starts.get()
            assert second.inputs == {"value": "just text"}
    finally:
        await producer.stop()
        await workers.stop_loops()
        await bus.stop()
        await store.close()
