"""The KAFKA node's action publishing through `KafkaBus` to a real broker (`kafka_broker`), read back
by a consumer group: what a QUEUE_TRIGGER or an outside consumer gets in distributed mode."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from libs.bus.kafka import KafkaBus
from libs.bus.publisher import Publisher
from libs.contracts import kafka_node
from libs.contracts.envelope import Envelope
from libs.core.definition import Node
from services.executor.actions.base import ActionInput
from services.executor.actions.kafka import KafkaAction
from tests.infra_fixtures import KafkaBroker

pytestmark = pytest.mark.kafka

GUARD = 60.0


def attempt(config: dict[str, object]) -> ActionInput:
    node = Node(identifier="publish", config={"type": "KAFKA", **config})
    return ActionInput(node=node, config=node.config, context={"run": {"id": "wfr_1", "workflow": "wf"}},
                       run_id="wfr_1", node_run_id="wfnr_1", node_run_key="wfr_1/publish/1", attempt=1, timeout=30)


async def test_the_message_goes_through_kafka_and_reads_back(kafka_broker: KafkaBroker) -> None:
    topic = f"t.kafka-node.{uuid.uuid4().hex[:10]}"
    bus = KafkaBus(kafka_broker.bootstrap, client_id="stepline-tests", partitions=2)
    received: asyncio.Queue[Envelope] = asyncio.Queue()
    bus.subscribe(topic, f"g.{uuid.uuid4().hex[:10]}", received.put)
    try:
        async with asyncio.timeout(GUARD):
            action = KafkaAction(Publisher(bus, "stepline/executor"))
            result = await action.execute(attempt({"topic": topic, "key": "order-9", "payload": {"n": 9}}))
            await bus.start()
            message = await received.get()
    finally:
        async with asyncio.timeout(GUARD):
            await bus.stop()
    assert result.output == {"topic": topic, "key": "order-9", "messageId": message.id}
    assert (message.type, message.source, message.subject) == (kafka_node.MESSAGE_TYPE, "stepline/executor", "order-9")
    assert message.data == {"payload": {"n": 9}, "context": {"workflowRunId": "wfr_1", "nodeRunId": "wfnr_1",
                                                             "workflow": "wf", "node": "publish"}}
