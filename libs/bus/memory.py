"""`MemoryBus`: the bus port (libs/bus/ports.py) in one asyncio process, for the embedded engine.

Partitions
    Every topic has `partitions` partitions. A message goes to `crc32(utf8(key)) % partitions`
    (`partition_for`): stable across bus instances and processes, unlike the salted `hash()`.

Logs and offsets
    A partition is an append-only log. Each (topic, group) keeps its own committed offset per
    partition. A group starts at the oldest message its partition still holds, which is offset 0
    unless the log was trimmed, so messages published before `start()` or before the group
    subscribed are delivered to it. Trimming: once every group of a partition has consumed a chunk
    (`TRIM_CHUNK`) of messages, they are dropped, so memory follows the backlog, not the history. A
    partition no group subscribes to keeps only its newest `retention` messages (plus at most a
    chunk), and a group subscribing later starts at the oldest of those.

Consumers
    `start()` runs one task per (topic, group, partition). It hands the handler one message at a
    time, in order, and commits (advances the offset) only after the handler returns. An idle
    consumer awaits its partition's `asyncio.Event`; nothing polls. Every `FAIR_BATCH` messages a
    consumer yields to the event loop, so a partition whose handler never suspends cannot starve
    the others. `subscribe` after `start()` starts that group's consumers at once.

Redelivery and dead letters
    If the handler raises a retryable error (`SteplineError.retryable`, or any other exception) the
    same message is delivered again after `redelivery_backoff` seconds, doubling up to
    `max(1 s, redelivery_backoff)`, while later messages of the partition wait behind it. After
    `max_deliveries` deliveries, or at once for a non-retryable `SteplineError`, the message is
    published to `topics.DEAD_LETTERS` (format in libs/bus/dead_letter.py), is committed, and the
    partition moves on. A dead letter that fails in its own handler is logged and dropped rather
    than dead-lettered again, so dead letters cannot loop.

Stopping
    `stop()` cancels consumers that are waiting (for a message or for a backoff) and lets handlers in
    progress return; their messages are committed, and they may still publish meanwhile. A handler
    that fails during stop is dead-lettered if it would be anyway, otherwise not redelivered. Once
    `stop()` has returned, `publish` raises BusError; `start`, `subscribe` and `drain` raise it as
    soon as stopping begins. A stopped bus cannot be started again.

Not durable
    Everything lives in memory: uncommitted messages are lost with the process. Envelopes are shared
    between groups, not copied: handlers must treat them (including `data`) as read-only.

Tracing
    With an OpenTelemetry SDK configured, publishing and handling are PRODUCER and CONSUMER spans
    linked as on Kafka (libs/bus/tracing.py), the `traceparent` kept beside the log by envelope
    id (the newest `TRACED_IDS`), so an embedded run is one trace too. Untraced, a delivery costs one
    lookup in an empty dict.

Beyond the port
    `drain()` waits until every group has consumed all messages published before the call;
    `stats()` gives per-topic counters; `partition_of(key)` names a key's partition.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Sequence
from typing import Final

from libs.bus import tracing as kafka_tracing
from libs.bus.dead_letter import dead_letter_envelope
from libs.bus.ports import ForTypes, Handler
from libs.bus.redelivery import GaveUp, Retries, call_handler, redeliver
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from libs.telemetry.spans import tracer

SOURCE: Final = "stepline.bus.memory"
MAX_BACKOFF: Final = 1.0
TRIM_CHUNK: Final = 128
"""Small: every retained envelope is objects the cyclic garbage collector walks in each full
collection (1,024 kept ~9,000 envelopes in chain-10's bench and doubled the collector's time);
a trim moves only the unconsumed rest of the log, which keeping up keeps short."""
FAIR_BATCH: Final = 128
TRACED_IDS: Final = 100_000

_log = logging.getLogger(__name__)


def partition_for(key: str, partitions: int) -> int:
    """The partition of `key`: CRC-32 of its UTF-8 bytes modulo `partitions`."""
    return zlib.crc32(key.encode()) % partitions


class _Counters:
    __slots__ = ("published", "delivered", "dead_lettered")

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0  # handler calls, redeliveries included
        self.dead_lettered = 0


class _Partition:
    """One append-only log; `log[i]` holds offset `base + i`."""

    __slots__ = ("index", "log", "base", "event", "consumers", "retention")

    def __init__(self, index: int, retention: int) -> None:
        self.index = index
        self.log: list[Envelope] = []
        self.base = 0
        self.event = asyncio.Event()
        self.consumers: list[_Consumer] = []
        self.retention = retention

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def append(self, envelope: Envelope) -> None:
        self.log.append(envelope)
        if not self.consumers and len(self.log) >= self.retention + TRIM_CHUNK:
            self._drop(len(self.log) - self.retention)
        self.event.set()

    def trim(self) -> None:
        """Drop what every group has consumed, once that is at least a chunk."""
        consumed = min(c.offset for c in self.consumers) - self.base
        if consumed >= TRIM_CHUNK:
            self._drop(consumed)

    def _drop(self, count: int) -> None:
        del self.log[:count]
        self.base += count


class _Topic:
    __slots__ = ("name", "partitions", "groups", "counters")

    def __init__(self, name: str, partitions: int, retention: int) -> None:
        self.name = name
        self.partitions = [_Partition(i, retention) for i in range(partitions)]
        self.groups: dict[str, list[_Consumer]] = {}
        self.counters = _Counters()

    def retained(self) -> int:
        return sum(len(p.log) for p in self.partitions)


class _Consumer:
    """Consumes one partition of one topic for one group."""

    __slots__ = ("bus", "topic", "part", "group", "handler", "types", "offset", "busy", "task", "waiters")

    def __init__(self, bus: MemoryBus, topic: _Topic, part: _Partition, group: str, handler: Handler) -> None:
        self.bus = bus
        self.topic = topic
        self.part = part
        self.group = group
        self.handler = handler
        self.types = handler.types if isinstance(handler, ForTypes) else None
        """The only message types delivered; the others are committed as they are reached."""
        self.offset = part.base  # the next offset to handle; everything before is committed
        self.busy = False  # a handler call is in progress
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []

    def start(self) -> None:
        name = f"bus:{self.topic.name}:{self.group}:{self.part.index}"
        self.task = asyncio.get_running_loop().create_task(self.run(), name=name)
        self.task.add_done_callback(_report_crash)

    async def run(self) -> None:
        part, bus, streak = self.part, self.bus, 0
        while not bus._stopping:
            index = self.offset - part.base
            if index >= len(part.log):
                streak = 0
                part.event.clear()
                await part.event.wait()
                continue
            envelope = part.log[index]
            if (self.types is None or envelope.type in self.types) and not await self._handle(envelope):
                return
            self._commit()
            streak += 1
            if streak >= FAIR_BATCH:
                streak = 0
                await asyncio.sleep(0)

    def _commit(self) -> None:
        self.offset += 1
        if self.offset - self.part.base >= TRIM_CHUNK:
            self.part.trim()
        if self.waiters:
            self.release_waiters()

    async def _handle(self, envelope: Envelope) -> bool:
        """Handle or dead-letter `envelope` (True), or give up on it because the bus stops (False)."""
        error = await self._deliver(envelope)
        if error is None:
            return True
        bus = self.bus
        outcome = await redeliver(error, lambda: self._deliver(envelope), bus._retries,
                                  stopping=lambda: bus._stopping,
                                  log_failure=lambda exc, n: self._log_failure(envelope, exc, n))
        if isinstance(outcome, GaveUp):
            return False
        if outcome is not None:
            bus._dead_letter(self, envelope, outcome.error, outcome.deliveries)
        return True

    async def _deliver(self, envelope: Envelope) -> Exception | None:
        self.topic.counters.delivered += 1
        traceparent = self.bus._traceparents.get(envelope.id) if self.bus._traceparents else None
        if traceparent is None:
            return await call_handler(self.handler, envelope, self)
        with kafka_tracing.consuming(self.topic.name, self.group, envelope, traceparent, system="memory"):
            return await call_handler(self.handler, envelope, self)

    def _log_failure(self, envelope: Envelope, error: Exception, deliveries: int) -> None:
        _log.warning(
            "delivery %d of %s %s on %s[%d] to group %s failed (%s: %s); redelivering",
            deliveries, envelope.type, envelope.id, self.topic.name, self.part.index, self.group,
            type(error).__name__, error,
        )

    def wait_for(self, offset: int) -> asyncio.Future[None]:
        """A future resolved once this consumer has committed every message before `offset`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((offset, future))
        return future

    def release_waiters(self, everyone: bool = False) -> None:
        waiting = []
        for target, future in self.waiters:
            if everyone or self.offset >= target:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((target, future))
        self.waiters = waiting


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("bus consumer %s crashed", task.get_name(), exc_info=task.exception())


class MemoryBus:
    """The in-memory `Bus`; see the module docstring for its semantics."""

    def __init__(
        self,
        partitions: int = 8,
        *,
        max_deliveries: int = 5,
        redelivery_backoff: float = 0.05,
        retention: int = 10_000,
    ) -> None:
        if partitions < 1 or max_deliveries < 1 or redelivery_backoff < 0 or retention < 0:
            raise ValueError("need partitions, max_deliveries >= 1 and redelivery_backoff, retention >= 0")
        self._partitions = partitions
        self._retries = Retries(max_deliveries=max_deliveries, backoff=redelivery_backoff,
                                max_backoff=max(MAX_BACKOFF, redelivery_backoff))
        self._retention = retention
        self._stopping = False
        self._topics: dict[str, _Topic] = {}
        self._consumers: list[_Consumer] = []
        self._started = False
        self._closed = False
        self._stopped = asyncio.Event()
        self._traceparents: dict[str, str] = {}
        """envelope id → the `traceparent` of its PRODUCER span (only while traced)."""

    # ---- the port ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming for every subscription; a no-op if already started."""
        self._check_not_stopping("start")
        if self._started:
            return
        self._started = True
        for consumer in self._consumers:
            consumer.start()

    async def stop(self) -> None:
        """Cancel waiting consumers, let handlers in progress return, then close the bus."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        results = await asyncio.gather(*self._interrupt_idle(), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                _log.error("bus consumer failed while stopping", exc_info=result)
        self._closed = True
        for consumer in self._consumers:
            consumer.release_waiters(everyone=True)
        self._stopped.set()

    async def publish(self, topic: str, envelope: Envelope) -> None:
        """Append `envelope` to its key's partition of `topic`; BusError once the bus is stopped."""
        if self._closed:
            raise BusError(f"the bus is stopped; cannot publish to {topic}")
        if tracer() is None:
            self._append(topic, envelope)
            return
        with kafka_tracing.producing(topic, envelope, None, system="memory") as traceparent:
            self._traceparents[envelope.id] = traceparent
            if len(self._traceparents) > TRACED_IDS:
                for old in list(self._traceparents)[: TRACED_IDS // 10]:
                    del self._traceparents[old]
            self._append(topic, envelope)

    async def publish_all(self, messages: Sequence[tuple[str, Envelope]]) -> None:
        """Each message as `publish` would, in this order."""
        for topic, envelope in messages:
            await self.publish(topic, envelope)

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        """Register `handler` for `topic` in `group`; ValueError if that group already has one."""
        self._check_not_stopping("subscribe")
        subscribed = self._topic(topic)
        if group in subscribed.groups:
            raise ValueError(f"group {group!r} already subscribes to {topic}")
        consumers = [_Consumer(self, subscribed, part, group, handler) for part in subscribed.partitions]
        subscribed.groups[group] = consumers
        for consumer in consumers:
            consumer.part.consumers.append(consumer)
        self._consumers.extend(consumers)
        if self._started:
            for consumer in consumers:
                consumer.start()

    async def add_subscription(self, topic: str, group: str, handler: Handler, *, external: bool = False) -> None:
        """`subscribe`, at any time; its consumers start at once if the bus runs. `external` changes
        nothing here: everything on this bus is an envelope already."""
        self.subscribe(topic, group, handler)

    # ---- beyond the port --------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every group has consumed (handled or dead-lettered) each message published
        before this call. Later messages, such as those its handlers publish, are not waited for.
        BusError if the bus is not running, or stops before that."""
        self._check_not_stopping("drain")
        if not self._started:
            raise BusError("the bus is not started; nothing would consume")
        targets = [(c, c.part.end) for c in self._consumers if c.offset < c.part.end]
        if not targets:
            return
        await asyncio.wait([c.wait_for(end) for c, end in targets])
        if any(c.offset < end for c, end in targets):
            raise BusError("the bus stopped before it drained")

    def stats(self) -> dict[str, dict[str, int]]:
        """Per topic: messages `published`, handler calls (`delivered`, redeliveries included),
        `dead_lettered` from it, and messages `retained` in memory."""
        return {
            name: {
                "published": topic.counters.published,
                "delivered": topic.counters.delivered,
                "dead_lettered": topic.counters.dead_lettered,
                "retained": topic.retained(),
            }
            for name, topic in self._topics.items()
        }

    @property
    def partitions(self) -> int:
        return self._partitions

    def partition_of(self, key: str) -> int:
        """The partition messages keyed `key` go to (the same on every topic)."""
        return partition_for(key, self._partitions)

    # ---- internals --------------------------------------------------------------------------

    def _dead_letter(
        self, consumer: _Consumer, envelope: Envelope, error: Exception, deliveries: int
    ) -> None:
        """Publish `envelope`'s dead letter, past the closed check: handlers finish during stop."""
        topic = consumer.topic
        where = f"{topic.name}[{consumer.part.index}] group {consumer.group}"
        if topic.name == topics.DEAD_LETTERS:
            _log.error("dropping dead letter %s that failed in %s: %s", envelope.id, where, error)
            return
        letter = dead_letter_envelope(
            envelope, topic=topic.name, group=consumer.group, partition=consumer.part.index,
            offset=consumer.offset, deliveries=deliveries, error=error, source=SOURCE,
        )
        topic.counters.dead_lettered += 1
        self._append(topics.DEAD_LETTERS, letter)
        _log.error(
            "dead-lettered %s %s from %s after %d deliveries: %s: %s",
            envelope.type, envelope.id, where, deliveries, type(error).__name__, error,
        )

    def _append(self, topic: str, envelope: Envelope) -> None:
        target = self._topics.get(topic) or self._topic(topic)
        target.partitions[partition_for(envelope.key, self._partitions)].append(envelope)
        target.counters.published += 1

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name, self._partitions, self._retention)
        return topic

    def _interrupt_idle(self) -> list[asyncio.Task[None]]:
        """Cancel consumers not inside a handler; return every consumer task to wait for."""
        me = asyncio.current_task()
        tasks = []
        for consumer in self._consumers:
            task = consumer.task
            if task is None or task is me:
                continue
            if not consumer.busy:
                task.cancel()
            tasks.append(task)
        return tasks

    def _check_not_stopping(self, what: str) -> None:
        if self._stopping:
            raise BusError(f"the bus is stopped; cannot {what}")
