"""KAFKA nodes in an embedded engine: the message reaches a consumer of the in-memory bus with its
payload and run context, a waiting node is completed by a PATCH, Stepline's own topics are refused
at run time and bad topic names at save time."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from libs.contracts import kafka_node, topics
from libs.contracts.envelope import Envelope
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end, wait_run

WAIT = 10.0


class Inbox:
    """A consumer group on one bus topic that keeps every envelope it is handed."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []
        self.arrived = asyncio.Condition()

    async def handle(self, envelope: Envelope) -> None:
        async with self.arrived:
            self.received.append(envelope)
            self.arrived.notify_all()

    async def next(self, count: int = 1) -> Envelope:
        async def enough() -> Envelope:
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.received) >= count)
                return self.received[count - 1]
        return await asyncio.wait_for(enough(), WAIT)


def listen(engine: Any, topic: str) -> Inbox:
    inbox = Inbox()
    engine.bus.subscribe(topic, "test-consumer", inbox.handle)
    return inbox


def order_trigger() -> dict[str, Any]:
    return {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
        "properties": {"orderId": {"type": "string"}, "topic": {"type": "string"}}}}}


def kafka(identifier: str, **config: Any) -> dict[str, Any]:
    return {"identifier": identifier, "config": {"type": "KAFKA", **config}}


def workflow(identifier: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    definition = chain(identifier, *nodes)
    definition["nodes"][0] = order_trigger()
    return definition


async def test_publishes_the_payload_with_its_run_context(engine: Any, api: httpx.AsyncClient) -> None:
    inbox = listen(engine, "orders.created")
    node = kafka("publish", topic="orders.created", key="{{ .inputs.orderId }}",
                 payload={"order": "{{ .inputs.orderId }}", "items": [1, 2], "note": "order {{ .inputs.orderId }}"})
    await create(api, workflow("kafka-publish", node))
    run = await run_to_end(api, "kafka-publish", {"orderId": "o-17"})
    assert run["result"] == "SUCCESS", run
    message = await inbox.next()
    assert message.type == kafka_node.MESSAGE_TYPE == "dev.stepline.kafka.message.v1"
    assert message.source == "stepline/executor"
    assert message.subject == "o-17"
    node_run = node_runs(run, "publish")[0]
    assert message.data == {
        "payload": {"order": "o-17", "items": [1, 2], "note": "order o-17"},
        "context": {"workflowRunId": run["identifier"], "nodeRunId": node_run["identifier"],
                    "workflow": "kafka-publish", "node": "publish"},
    }
    assert run["variables"]["outputs"]["publish"] == {"topic": "orders.created", "key": "o-17", "messageId": message.id}


async def test_without_a_key_the_message_is_keyed_by_the_run(engine: Any, api: httpx.AsyncClient) -> None:
    inbox = listen(engine, "audit")
    await create(api, workflow("kafka-unkeyed", kafka("publish", topic="audit", payload=["a", "{{ .run.id }}"])))
    run = await run_to_end(api, "kafka-unkeyed")
    message = await inbox.next()
    assert message.subject == run["identifier"]
    assert message.data["payload"] == ["a", run["identifier"]]
    assert run["variables"]["outputs"]["publish"]["key"] == run["identifier"]


async def test_wait_for_completion_waits_for_the_consumer_patch(engine: Any, api: httpx.AsyncClient) -> None:
    inbox = listen(engine, "provision.requests")
    node = kafka("provision", topic="provision.requests", payload={"size": "small"}, waitForCompletion=True)
    after = {"identifier": "after", "config": {"type": "TRANSFORM", "expression": ".outputs.provision.host"}}
    await create(api, workflow("kafka-wait", node, after))
    started = await api.post("/v1/workflows/kafka-wait/runs", json={"inputs": {}})
    assert started.status_code == 201, started.text
    run_id = started.json()["workflowRun"]["identifier"]
    message = await inbox.next()
    context = message.data["context"]
    assert context["workflowRunId"] == run_id
    # The consumer reports back; it may be faster than the executor's record that the node waits.
    done = await api.patch(f"/v1/workflows/nodes/runs/{context['nodeRunId']}",
                           json={"status": "COMPLETED", "result": "SUCCESS", "output": {"host": "vm-1"}})
    assert done.status_code == 200, done.text
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS", run
    assert run["variables"]["outputs"]["provision"] == {"host": "vm-1"}
    assert run["variables"]["outputs"]["after"] == "vm-1"


async def test_an_internal_topic_is_refused_at_run_time_without_retries(engine: Any, api: httpx.AsyncClient) -> None:
    dispatched = listen(engine, topics.NODE_DISPATCH)
    node = kafka("publish", topic="{{ .inputs.topic }}", payload={"x": 1})
    node["retry"] = {"maxAttempts": 3, "initialIntervalSeconds": 0.01}
    await create(api, workflow("kafka-internal", node))
    run = await run_to_end(api, "kafka-internal", {"topic": topics.NODE_DISPATCH})
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "publish")
    assert len(attempts) == 1, "refusing an internal topic is not retryable"
    assert "internal topics" in attempts[0]["error"] and topics.NODE_DISPATCH in attempts[0]["error"]
    await engine.bus.drain()
    assert dispatched.received, "the engine's own dispatches were seen"
    assert all(e.type != kafka_node.MESSAGE_TYPE for e in dispatched.received)


async def test_bad_topics_are_rejected_at_validation(api: httpx.AsyncClient) -> None:
    for topic, said in [("orders created", "Kafka topic name"), ("stepline.run-events.v1", "stepline."),
                        ("x" * 250, "Kafka topic name")]:
        response = await api.post("/v1/workflows", json=workflow("kafka-bad", kafka("publish", topic=topic, payload={})))
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid_definition"
        issue = next(d for d in body["details"] if d["pointer"] == "/nodes/1/config/topic")
        assert said in issue["message"]
