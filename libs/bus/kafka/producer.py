"""The producer side of `KafkaBus`: one idempotent `AIOKafkaProducer`, replaced after a failed send.

`send` hands over one record or several (a relay's run events) and awaits the broker's
acknowledgements (`acks="all"`) together, so records sent together share produce requests; it turns
every failure into `BusError`:
retryable, except for a record too large for the broker. Records enter the producer one at a time,
in the order `send` was called (a FIFO lock around aiokafka's enqueueing, which on its own may
reorder concurrent sends that wait for buffer space), so concurrent publishes of one run's
messages reach its partition in call order, as with `MemoryBus`, unless one of them fails.

Why replace the producer: an idempotent producer numbers its records per partition, and the broker
accepts only the next number. When the broker goes away, aiokafka may drop batches that waited too
long for a leader without rewinding those numbers; once the broker is back every later batch is
refused with OUT_OF_ORDER_SEQUENCE_NUMBER, for good (aio-libs/aiokafka#1017), or the producer's
sender task dies and sends nothing more. So after any failed send the producer is dropped: the next
send starts a new one, which gets a new producer id and numbers from zero. The old one is closed in
the background, within `timeout`; records it still delivers meanwhile arrive once more than their
publishers know, which at-least-once delivery allows.

While the broker is away, sends keep failing and each would open a new producer at once: a client
spinning on connection attempts (and log lines) per failed publish. So after a failure the next
producer is opened only after a backoff, exponential with jitter up to `REOPEN_CEILING` (1 s;
libs/bus/kafka/backoff.py), reset by the first acknowledged send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from libs.bus.kafka.backoff import Backoff
from libs.bus.kafka.codec import Header
from libs.bus.kafka.partitioner import crc32_partitioner
from libs.core.errors import BusError

_log = logging.getLogger(__name__)

BATCH_BYTES: Final = 256 * 1024
"""Per-partition batch buffer (aiokafka's default is 16 KiB). An idempotent producer has one batch
in flight per partition; a larger buffer lets concurrent publishes pile into the next one instead of
waiting for room, roughly doubling throughput. Records are not held back for it (`linger_ms=0`)."""
REOPEN_CEILING: Final = 1.0


@dataclass(frozen=True)
class Outgoing:
    """One record to send; `what` names it in errors."""

    topic: str
    key: bytes
    value: bytes
    headers: list[Header]
    what: str


class Publisher:
    def __init__(self, bootstrap: str, *, client_id: str, timeout: float) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._timeout = timeout
        self._producer: Any = None
        self._lock = asyncio.Lock()
        self._enqueue = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._backoff = Backoff(ceiling=REOPEN_CEILING)
        self._reopen_at = 0.0

    async def send(self, records: Sequence[Outgoing]) -> None:
        """Send `records`, in this order, and await their acknowledgements together (records that are
        ready together share produce requests); BusError if one fails (the others may have gone)."""
        producer: Any = None
        pending: list[tuple[Outgoing, asyncio.Future[Any]]] = []
        record = records[0]
        try:
            async with asyncio.timeout(self._timeout + 5):  # the producer itself gives up at _timeout
                async with self._enqueue:  # FIFO: records enter the producer in call order
                    producer = await self._current()
                    for record in records:
                        pending.append((record, await producer.send(
                            record.topic, value=record.value, key=record.key, headers=record.headers)))
                for record, delivered in pending:  # noqa: B007 (`record` names the failure below)
                    await delivered
        except MessageSizeTooLargeError as exc:
            raise BusError(f"{record.what} is too large for {record.topic}", retryable=False) from exc
        except (KafkaError, TimeoutError, OSError) as exc:
            if producer is not None:
                self._discard(producer)
            raise BusError(f"could not publish {record.what} to {record.topic}: {exc!r}") from exc
        finally:
            _observe(delivered for _, delivered in pending)
        self._backoff.succeeded()

    async def close(self) -> None:
        """Close the producer (flushing what it holds, within the timeout) and any being replaced."""
        async with self._lock:
            if self._producer is not None:
                self._discard(self._producer)
        if self._closing:
            await asyncio.wait(self._closing)

    async def _current(self) -> Any:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                await asyncio.sleep(max(0.0, self._reopen_at - asyncio.get_running_loop().time()))
                self._producer = await self._open()
            return self._producer

    def _failed(self) -> None:
        self._reopen_at = asyncio.get_running_loop().time() + self._backoff.failed()

    async def _open(self) -> Any:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id, enable_idempotence=True,
            acks="all", partitioner=crc32_partitioner, request_timeout_ms=int(self._timeout * 1000),
            max_batch_size=BATCH_BYTES,
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            self._failed()
            await close_producer(producer, self._timeout)
            raise BusError(f"could not connect to Kafka at {self._bootstrap}: {exc!r}") from exc
        return producer

    def _discard(self, producer: Any) -> None:
        if self._producer is not producer:
            return  # already replaced after another failed send
        self._producer = None
        self._failed()
        task = asyncio.get_running_loop().create_task(close_producer(producer, self._timeout))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _observe(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Retrieve the outcome of acknowledgements left unawaited after a failure, so none is reported as
    an exception nobody retrieved."""
    for future in futures:
        future.add_done_callback(lambda done: done.cancelled() or done.exception())


async def close_producer(producer: Any, timeout: float) -> None:
    """Stop `producer`, flushing pending records for up to `timeout` seconds, then abandon them."""
    try:
        async with asyncio.timeout(timeout):
            await producer.stop()
        return
    except TimeoutError:
        _log.warning("the Kafka producer did not flush within %.1f s; dropping its pending records", timeout)
    except (KafkaError, OSError) as exc:
        _log.warning("stopping the Kafka producer failed: %r", exc)
    await _force_close(producer)


async def _force_close(producer: Any) -> None:
    """aiokafka has no public way to close a producer without flushing: end its sender task, then
    its connections."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task})
    try:
        await producer.client.close()
    except (KafkaError, OSError) as exc:
        _log.warning("closing the Kafka producer's connections failed: %r", exc)
