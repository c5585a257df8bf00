"""KAFKA: publish the rendered `payload` through the bus, as a `dev.stepline.kafka.message.v1`
envelope (libs/contracts/kafka_node.py). Output `{topic, key, messageId}`. Without `topic` (Port's
nodes) it publishes to the runs topic, the executor's `kafka_runs_topic` setting (Port: `<org>.runs`).

The bus is the deployment's: the in-memory bus in embedded mode (consumers in the same process),
Kafka in distributed mode. With `waitForCompletion: true` the node then waits for a PATCH of its node
run, which the consumer sends using `context.nodeRunId`.
"""

from __future__ import annotations

from typing import Any

from libs.bus.publisher import Publisher
from libs.contracts import kafka_node
from libs.contracts.envelope import Envelope
from libs.core.errors import ActionError, BusError
from libs.core.limits import Limits, topic_problem
from services.executor.actions.base import ActionInput, ActionResult

DEFAULT_RUNS_TOPIC = "port.runs"


class KafkaAction:
    def __init__(self, publisher: Publisher, limits: Limits = Limits(), runs_topic: str = DEFAULT_RUNS_TOPIC) -> None:
        """`publisher`: the executor's, for its bus and source. `runs_topic`: where a node without
        `topic` publishes (Port's `<org>.runs`)."""
        self.publisher = publisher
        self.limits = limits
        self.runs_topic = runs_topic

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        topic = cfg.get("topic", self.runs_topic)
        problem = kafka_node.topic_problem(topic)
        if problem is not None or not isinstance(topic, str):
            raise ActionError(f"config.topic {problem}; got {_short(topic)}")
        not_allowed = topic_problem(topic, self.limits)
        if not_allowed is not None:
            raise ActionError(f"config.topic: {not_allowed}")
        key = _key(cfg.get("key")) or data.run_id
        envelope = Envelope(type=kafka_node.MESSAGE_TYPE, source=self.publisher.source, subject=key,
                            data={"payload": cfg.get("payload"), "context": _context(data)})
        try:
            await self.publisher.bus.publish(topic, envelope)
        except BusError as exc:
            raise ActionError(f"publishing to {topic} failed: {exc.message}", retryable=exc.retryable) from None
        output = {"topic": topic, "key": key, "messageId": envelope.id}
        return ActionResult(output=output, waiting=cfg.get("waitForCompletion") is True)


def _key(value: Any) -> str | None:
    """The rendered key as text; None (use the run id) when it is absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ActionError(f"config.key must render to a string, got {type(value).__name__}")
    return str(value)


def _context(data: ActionInput) -> dict[str, Any]:
    return {"workflowRunId": data.run_id, "nodeRunId": data.node_run_id,
            "workflow": data.context.get("run", {}).get("workflow"), "node": data.node.identifier}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
