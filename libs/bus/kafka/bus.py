"""`KafkaBus`: the bus port (libs/bus/ports.py) on Apache Kafka, through aiokafka.

Publishing
    An idempotent producer (`enable_idempotence=True`, `acks="all"`) writes each envelope as one
    record (libs/bus/kafka/codec.py): key = run id, value = CloudEvents structured JSON, headers
    `traceparent` and `ce_type`. `publish` returns once the broker acknowledged the record; any
    failure, an unreachable broker included (after `publish_timeout` seconds), raises a retryable
    `BusError` (a record too large for the broker: a non-retryable one). The trace context sent is
    the `traceparent` argument, else a child of the one the current handler received, else new.
    `publish` works before `start()` (it connects on first use) and while stopping (so handlers
    finishing during `stop()` can publish); after `stop()` it raises BusError.

Partitions
    `crc32(utf8(key)) % partitions`, the `MemoryBus` rule (libs/bus/kafka/partitioner.py), so a run's
    messages stay in one partition and a key's partition is the same in both adapters.

Topics
    `start()` creates every topic of `libs.contracts.topics.ALL` and every subscribed topic with
    `partitions` partitions (replication `replication`); a topic that already exists is kept as
    is. A topic first met in `publish` is created the same way before the record is sent.

Consuming
    One consumer per `subscribe(topic, group, handler)` (libs/bus/kafka/consumer.py): per partition,
    one record at a time in order, partitions concurrently; offsets committed only once a record's
    handler returned or it was dead-lettered; redelivery, dead letters and poison records as in
    libs/bus/kafka/delivery.py (backoff `redelivery_backoff` doubling up to `MAX_BACKOFF`);
    rebalances finish and commit the records in hand before giving partitions up. `subscribe` after
    `start()` starts that consumer at once (in the background; failures are logged);
    `add_subscription` does the same and returns once it started (or raises why it could not).
    Subscriptions made with `external=True`, and every one to the catalog-events topic, read JSON
    records that are not envelopes as `v1.ExternalMessage` envelopes (libs/bus/kafka/codec.py).

Group membership
    With `instance_id` (the replica's stable id) every consumer is a static group member with its
    own instance id (libs/bus/kafka/membership.py): a replica restarted after a crash takes its
    partitions back at once, without a rebalance; one that does not come back loses them after
    `session_timeout`. Without it membership is dynamic (a new member id on every start).
    `heartbeat_interval` (default a third of the session) and `rebalance_timeout` (default the
    session) are passed to aiokafka as they are.

Stopping
    `stop()` stops fetching, lets every handler in progress finish (its record is committed),
    commits, leaves the groups (static members by instance id, so a scale-down hands partitions
    over at once), then closes the producer. A stopped bus cannot be started again.

Reconnecting
    aiokafka reconnects by itself when the broker comes back; consumers keep their loop running and
    rejoin their groups. Records handled but not yet committed when the broker went away may be
    delivered again (at least once), never skipped. The producer is replaced after any failed send
    (libs/bus/kafka/producer.py: aiokafka's idempotent producer can wedge after an outage).
    `start()` that raises (broker unreachable) leaves a bus to be stopped, not started again.
    While the broker is away the process logs at most one Kafka warning per second and one line
    when it is back (libs/bus/kafka/outage_log.py); replacement producers and failed fetches back
    off exponentially with jitter (libs/bus/kafka/backoff.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Final

from libs.bus.kafka.codec import encode
from libs.bus.kafka.consumer import ConsumerSettings, SubscriptionConsumer
from libs.bus.kafka.delivery import Delivery, Policy
from libs.bus.kafka.membership import GroupAdmin
from libs.bus.kafka.outage_log import install as quiet_outages
from libs.bus.kafka.producer import Outgoing, Publisher
from libs.bus.kafka.topics import TopicCreator
from libs.bus.memory import partition_for
from libs.bus.ports import Handler
from libs.bus.tracing import producing
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from libs.telemetry.propagation import outgoing_traceparent

SOURCE: Final = "stepline.bus.kafka"
MAX_BACKOFF: Final = 5.0
LEAVE_TIMEOUT: Final = 5.0

_log = logging.getLogger(__name__)


class KafkaBus:
    """The Kafka `Bus`; see the module docstring for its semantics."""

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 8,
        client_id: str,
        max_deliveries: int = 5,
        redelivery_backoff: float = 0.2,
        replication: int = 1,
        publish_timeout: float = 10.0,
        session_timeout: float = 10.0,
        heartbeat_interval: float | None = None,
        rebalance_timeout: float | None = None,
        instance_id: str | None = None,
    ) -> None:
        if partitions < 1 or max_deliveries < 1 or redelivery_backoff < 0 or publish_timeout <= 0:
            raise ValueError("need partitions, max_deliveries >= 1, redelivery_backoff >= 0, publish_timeout > 0")
        quiet_outages()
        self._groups = GroupAdmin(bootstrap, client_id, timeout=min(publish_timeout, LEAVE_TIMEOUT))
        self._partitions = partitions
        self._policy = Policy(max_deliveries, redelivery_backoff, max(MAX_BACKOFF, redelivery_backoff), SOURCE)
        self._consumer_settings = ConsumerSettings(bootstrap, client_id, session_timeout, publish_timeout,
                                                   heartbeat_interval, rebalance_timeout, instance_id)
        self._subscriptions: dict[tuple[str, str], SubscriptionConsumer] = {}
        self._late_starts: set[asyncio.Task[None]] = set()
        self._publisher = Publisher(bootstrap, client_id=client_id, timeout=publish_timeout)
        self._topics = TopicCreator(bootstrap, client_id=client_id, partitions=partitions,
                                    replication=replication, timeout=publish_timeout)
        self._started = self._stopping = self._closed = False
        self._stopped = asyncio.Event()

    # ---- the port ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the topics and start every subscription's consumer; a no-op if already started."""
        self._check_not_stopping("start")
        if self._started:
            return
        self._started = True
        await self._topics.ensure([*topics.ALL, *(topic for topic, _ in self._subscriptions)])
        await asyncio.gather(*(sub.start() for sub in self._subscriptions.values()))

    async def stop(self) -> None:
        """Stop consuming (finishing the records in hand), then close the producer."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self._late_starts:
            await asyncio.wait(self._late_starts)
        results = await asyncio.gather(*(s.stop() for s in self._subscriptions.values()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                _log.error("bus consumer failed while stopping", exc_info=result)
        await self._groups.leave(self._static_members())
        self._closed = True
        await self._publisher.close()
        await self._topics.close()
        await self._groups.close()
        self._stopped.set()

    async def publish(self, topic: str, envelope: Envelope, *, traceparent: str | None = None) -> None:
        """Send `envelope` to `topic` and await the broker's acknowledgement; BusError if it fails."""
        self._check_open(topic)
        with producing(topic, envelope, traceparent) as sent_traceparent:
            await self._send([(topic, envelope, sent_traceparent)])

    async def publish_all(self, messages: Sequence[tuple[str, Envelope]]) -> None:
        """Send `messages` in this order and await their acknowledgements together."""
        if not messages:
            return
        self._check_open(messages[0][0])
        with ExitStack() as spans:
            await self._send([(topic, envelope, spans.enter_context(producing(topic, envelope, None)))
                              for topic, envelope in messages])

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        """Register `handler` for `topic` in `group`; ValueError if that group already has one."""
        self._check_not_stopping("subscribe")
        if (topic, group) in self._subscriptions:
            raise ValueError(f"group {group!r} already subscribes to {topic}")
        consumer = self._register(topic, group, handler, external=False)
        if self._started:
            self._start_late(consumer)

    async def add_subscription(self, topic: str, group: str, handler: Handler, *, external: bool = False) -> None:
        """Subscribe at runtime: once started, create the topic if needed and start its consumer (a
        new one for this topic and group) before returning. With `external`, JSON records that are
        not envelopes arrive as `v1.ExternalMessage` envelopes (libs/bus/kafka/codec.py)."""
        self._check_not_stopping("subscribe")
        if (topic, group) in self._subscriptions:
            raise ValueError(f"group {group!r} already subscribes to {topic}")
        consumer = self._register(topic, group, handler, external=external)
        if not self._started:
            return
        task = asyncio.get_running_loop().create_task(self._start_consumer(consumer), name=f"bus-start:{consumer.name}")
        self._late_starts.add(task)
        task.add_done_callback(self._late_started)
        try:
            await asyncio.shield(task)
        except Exception:
            self._subscriptions.pop((topic, group), None)  # so that a later call may try again
            raise

    # ---- beyond the port --------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        return self._partitions

    def partition_of(self, key: str) -> int:
        """The partition messages keyed `key` go to, on topics with `partitions` partitions."""
        return partition_for(key, self._partitions)

    # ---- internals --------------------------------------------------------------------------

    def _check_open(self, topic: str) -> None:
        if self._closed:
            raise BusError(f"the bus is stopped; cannot publish to {topic}")

    async def _send(self, sends: list[tuple[str, Envelope, str]]) -> None:
        """Send each (topic, envelope, traceparent) as one record, in this order."""
        missing = [topic for topic in {topic for topic, _, _ in sends} if not self._topics.is_ready(topic)]
        if missing:
            await self._topics.ensure(missing)
        await self._publisher.send([Outgoing(topic, *encode(envelope, traceparent), f"{envelope.type} {envelope.id}")
                                    for topic, envelope, traceparent in sends])

    async def _publish_letter(self, letter: Envelope) -> None:
        """Dead letters go out even while stopping: a handler finishing during stop may fail."""
        await self._send([(topics.DEAD_LETTERS, letter, outgoing_traceparent())])

    def _register(self, topic: str, group: str, handler: Handler, *, external: bool) -> SubscriptionConsumer:
        delivery = Delivery(topic, group, handler, self._policy, self._publish_letter, external=external)
        consumer = SubscriptionConsumer(delivery, self._consumer_settings, self._groups)
        self._subscriptions[(topic, group)] = consumer
        return consumer

    async def _start_consumer(self, consumer: SubscriptionConsumer) -> None:
        await self._topics.ensure([consumer.delivery.topic])
        await consumer.start()

    def _start_late(self, consumer: SubscriptionConsumer) -> None:
        task = asyncio.get_running_loop().create_task(self._start_consumer(consumer), name=f"bus-start:{consumer.name}")
        self._late_starts.add(task)
        task.add_done_callback(self._late_started)

    def _late_started(self, task: asyncio.Task[None]) -> None:
        self._late_starts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("starting a consumer failed", exc_info=task.exception())

    def _static_members(self) -> dict[str, list[str]]:
        """{group: instance ids} of the static members this bus joined."""
        members: dict[str, list[str]] = {}
        for (_topic, group), consumer in self._subscriptions.items():
            if consumer.joined and consumer.static_id is not None:
                members.setdefault(group, []).append(consumer.static_id)
        return members

    def _check_not_stopping(self, what: str) -> None:
        if self._stopping:
            raise BusError(f"the bus is stopped; cannot {what}")
