"""The delivery policy of `KafkaBus`: decode, call the handler, redeliver, dead-letter.

Per record (libs/bus/ports.py semantics, the same as `MemoryBus`):
- a record whose `ce_type` header names a type a `ForTypes` handler does not read is done at once,
  not even decoded (on topics that take outside messages every record is decoded: a foreign
  binary-mode CloudEvent has a `ce_type` of its own);
- a record that is not an envelope is dead-lettered at once with its raw bytes (codec.py), except
  JSON on a topic that accepts outside messages, which arrives as a v1.ExternalMessage envelope;
- the handler runs with the record's `traceparent` as the current trace context;
- a retryable failure (`is_retryable`) is redelivered in-process, after `backoff` seconds doubling
  up to `max_backoff`, while the partition's later records wait; after `max_deliveries` deliveries,
  or at once for a non-retryable error, the message is dead-lettered (libs/bus/dead_letter.py);
- a dead letter is published keyed like the original before the record counts as done; if that
  publish fails it is retried with the same backoff, so a record is never committed unrecorded;
- a dead letter that fails in its own handler is logged and dropped, so dead letters cannot loop.

`process` returns True when the record is done (commit it) and False when it gave up because the
worker is closing (do not commit: the partition's next owner delivers it again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from libs.bus.dead_letter import dead_letter_envelope
from libs.bus.kafka.codec import PoisonMessageError, Record, accepts_external, decode, poison_letter, record_type
from libs.bus.kafka.worker import PartitionWorker
from libs.bus.ports import ForTypes, Handler
from libs.bus.redelivery import GaveUp, Retries, call_handler, redeliver
from libs.bus.tracing import consuming
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.telemetry.propagation import traceparent_from_headers

_log = logging.getLogger(__name__)

PublishLetter = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True)
class Policy(Retries):
    source: str


class Delivery:
    """Handles the records of one (topic, group) subscription."""

    def __init__(self, topic: str, group: str, handler: Handler, policy: Policy, publish: PublishLetter,
                 *, external: bool = False) -> None:
        self.topic = topic
        self.group = group
        self._external = accepts_external(topic, external)
        self._handler = handler
        self._reads = handler.types if isinstance(handler, ForTypes) and not self._external else None
        """The only types the handler reads (None: all)."""
        self._policy = policy
        self._publish = publish

    async def process(self, record: Record, worker: PartitionWorker) -> bool:
        if self._passes_over(record):
            return True
        try:
            envelope = decode(record, external=self._external)
        except PoisonMessageError as exc:
            return await self._poison(record, exc, worker)
        with consuming(self.topic, self.group, envelope, traceparent_from_headers(record.headers)):
            return await self._deliver(envelope, record, worker)

    def _passes_over(self, record: Record) -> bool:
        if self._reads is None:
            return False
        kind = record_type(record)
        return kind is not None and kind not in self._reads

    async def _poison(self, record: Record, error: PoisonMessageError, worker: PartitionWorker) -> bool:
        where = f"{record.topic}[{record.partition}]@{record.offset} group {self.group}"
        if self.topic == topics.DEAD_LETTERS:
            _log.error("dropping undecodable record at %s: %s", where, error)
            return True
        _log.error("dead-lettering undecodable record at %s: %s", where, error)
        letter = poison_letter(record, group=self.group, error=error, source=self._policy.source)
        return await self._send_letter(letter, worker)

    async def _deliver(self, envelope: Envelope, record: Record, worker: PartitionWorker) -> bool:
        error = await call_handler(self._handler, envelope, worker)
        if error is None:
            return True
        outcome = await redeliver(error, lambda: call_handler(self._handler, envelope, worker), self._policy,
                                  stopping=lambda: worker.closing,
                                  log_failure=lambda exc, n: self._log_failure(envelope, record, exc, n))
        if isinstance(outcome, GaveUp):
            return False
        if outcome is not None:
            return await self._dead_letter(envelope, record, outcome.error, outcome.deliveries, worker)
        return True

    async def _dead_letter(
        self, envelope: Envelope, record: Record, error: Exception, deliveries: int, worker: PartitionWorker
    ) -> bool:
        where = f"{record.topic}[{record.partition}]@{record.offset} group {self.group}"
        if self.topic == topics.DEAD_LETTERS:
            _log.error("dropping dead letter %s that failed in %s: %s", envelope.id, where, error)
            return True
        letter = dead_letter_envelope(
            envelope, topic=record.topic, group=self.group, partition=record.partition,
            offset=record.offset, deliveries=deliveries, error=error, source=self._policy.source,
        )
        _log.error("dead-lettering %s %s from %s after %d deliveries: %s: %s",
                   envelope.type, envelope.id, where, deliveries, type(error).__name__, error)
        return await self._send_letter(letter, worker)

    async def _send_letter(self, letter: Envelope, worker: PartitionWorker) -> bool:
        delay = self._policy.backoff
        while True:
            worker.busy = True
            try:
                await self._publish(letter)
                return True
            except Exception as exc:
                _log.warning("publishing dead letter %s failed (%r); retrying", letter.id, exc)
            finally:
                worker.busy = False
            if worker.closing:
                return False
            await asyncio.sleep(delay)
            delay = min(max(delay, 0.05) * 2, self._policy.max_backoff)

    def _log_failure(self, envelope: Envelope, record: Record, error: Exception, deliveries: int) -> None:
        _log.warning(
            "delivery %d of %s %s on %s[%d]@%d to group %s failed (%s: %s); redelivering",
            deliveries, envelope.type, envelope.id, record.topic, record.partition, record.offset,
            self.group, type(error).__name__, error,
        )
