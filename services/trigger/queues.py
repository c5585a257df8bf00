"""QUEUE_TRIGGER ingress: every message on a live QUEUE_TRIGGER's topic starts one run.

The topics come from live definitions, so they change at runtime: every `reconcile` seconds the
trigger subscribes (group `stepline-trigger-queue`, `Bus.add_subscription(external=True)`) to each
topic a live QUEUE_TRIGGER names that it does not consume yet. A topic no longer named stays
subscribed; its messages start nothing. A new subscription reads from the oldest retained message.

For each message, every live QUEUE_TRIGGER of that topic (in a workflow that is not paused) gets a
`StartRun` before the handler returns, so the bus commits the message only once the runs are
accepted; a failure to publish is redelivered. The idempotency key `queue:{node}:{message id}`
makes a redelivered message start nothing new. One rule (libs/contracts/cloudevents.py) for what a
message yields:
- a CloudEvent (structured or binary mode, the KAFKA node's messages included): its `data` is the
  run's trigger output and its attributes are the run's `.trigger.event`; its `id` is the message id,
  so a producer re-sending an event starts nothing new either;
- plain JSON: the value is the output, and the message id is `{topic}/{partition}/{offset}`.
An output that is not an object becomes `{"value": output}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from libs.bus.ports import Bus, Handler
from libs.contracts import cloudevents
from libs.contracts.envelope import Envelope
from libs.core.limits import topic_allowed
from libs.core.workspaces import DEFAULT_WORKSPACE, belongs_to
from libs.store.pausing import is_paused
from libs.store.ports import Store
from services.trigger.live_triggers import LiveTrigger, LiveTriggers
from services.trigger.polling import every
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter, TriggerStart

NODE_TYPE: Final = "QUEUE_TRIGGER"
GROUP: Final = "stepline-trigger-queue"

log = logging.getLogger("stepline.trigger.queue")


def message_output(message: cloudevents.Incoming) -> dict[str, Any]:
    """A queue message as its run's trigger output."""
    payload = message.payload
    return payload if isinstance(payload, dict) else {"value": payload}


def message_workspace(message: cloudevents.Incoming) -> str:
    """The workspace whose QUEUE_TRIGGERs a message starts: its payload's `workspace` field, else a
    CloudEvent's `workspace` extension attribute, else `default`."""
    for holder in (message.payload, message.attributes):
        workspace = holder.get("workspace") if isinstance(holder, dict) else None
        if isinstance(workspace, str) and workspace:
            return workspace
    return DEFAULT_WORKSPACE


def trigger_topic(trigger: LiveTrigger) -> str | None:
    topic = trigger.node.config.get("topic")
    return topic if isinstance(topic, str) and topic else None


class QueueIngress:
    def __init__(self, store: Store, bus: Bus, starter: RunStarter, live: LiveTriggers,
                 reconcile_seconds: float, topics_allow: tuple[str, ...] = ("*",)) -> None:
        self._store = store
        self._topics_allow = topics_allow
        self._bus = bus
        self._starter = starter
        self._live = live
        self._reconcile_seconds = reconcile_seconds
        self._subscribed: set[str] = set()
        self._refused: set[str] = set()

    @property
    def topics(self) -> frozenset[str]:
        """The topics consumed so far."""
        return frozenset(self._subscribed)

    async def run(self) -> None:
        """Reconcile until cancelled; a failed pass is logged and the next one retries."""
        await every(self._reconcile_seconds, self.reconcile, "reconciling queue topics")

    async def reconcile(self) -> None:
        """Subscribe to every topic of a live QUEUE_TRIGGER not consumed yet."""
        live = await self._live.of_type(NODE_TYPE)
        wanted = {topic for topic in map(trigger_topic, live) if topic is not None}
        for topic in sorted(wanted - self._subscribed - self._refused):
            if not topic_allowed(topic, self._topics_allow):
                log.warning("not consuming queue topic %s: STEPLINE_KAFKA_TOPICS_ALLOW does not allow it", topic)
                self._refused.add(topic)
                continue
            try:
                await self._bus.add_subscription(topic, GROUP, self._handler(topic), external=True)
            except ValueError:
                pass  # this group consumes it already (another trigger instance on the same bus)
            self._subscribed.add(topic)
            log.info("consuming queue topic %s", topic)

    def _handler(self, topic: str) -> Handler:
        async def handle(envelope: Envelope) -> None:
            await self.handle(topic, envelope)

        return handle

    async def handle(self, topic: str, envelope: Envelope) -> None:
        """Start a run of every live QUEUE_TRIGGER of `topic` for `envelope`; return once published."""
        message = cloudevents.incoming(envelope)
        output = message_output(message)
        workspace = message_workspace(message)
        triggers = [t for t in await self._live.of_type(NODE_TYPE)
                    if trigger_topic(t) == topic and belongs_to(t.workflow.identifier, workspace)]
        for trigger in triggers:
            workflow, node = trigger.workflow.identifier, trigger.node.identifier
            if await is_paused(self._store, workflow):
                log.info("queue message %s on %s starts no run of %s: the workflow is paused",
                         envelope.id, topic, workflow)
                continue
            await self._starter.fire(TriggerStart(
                workflow=workflow, version=trigger.version, node=node, trigger_type="QUEUE", output=output,
                idempotency_key=f"queue:{node}:{message.id}", wait=False, event=message.attributes))


def queue_loop(settings: TriggerSettings, store: Store, bus: Bus, starter: RunStarter,
               live: LiveTriggers) -> Callable[[], Awaitable[None]]:
    """The trigger workers' queue-topic reconcile loop (a `Service` loop)."""
    return QueueIngress(store, bus, starter, live, settings.queue_reconcile_seconds,
                        settings.limits().kafka_topics_allow).run
