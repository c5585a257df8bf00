"""One (topic, group) subscription of `KafkaBus`: an `AIOKafkaConsumer`, a worker per assigned
partition, and a committer.

Fetching
    One task calls `getmany()` and hands each partition's records to that partition's worker
    (libs/bus/kafka_worker.py); workers of different partitions run concurrently, each one record
    at a time. A partition whose backlog reaches `HIGH_WATER` is paused (no more fetching for it)
    until its worker has worked it down to `LOW_WATER`, so memory follows the handlers' pace.

Offsets
    Auto-commit is off. A worker marks `offset + 1` once a record is done (handled or
    dead-lettered) and the committer (libs/bus/kafka_commit.py) commits those marks; a record the
    handler has not finished is never committed. A group that has no committed offset starts at the
    earliest retained record, so messages published before the group first subscribed reach it.

Rebalances
    On partitions revoked (the listener runs before the group re-forms) the workers of those
    partitions finish the record in hand, then their offsets are committed, then the partitions
    are given up; records fetched but not taken are dropped and read again by the next owner. On
    partitions assigned a worker starts for each, reading from the group's committed offset.

Stopping
    Stop fetching, let each worker finish the record in hand, commit, leave the group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError

from libs.bus.kafka_codec import Record
from libs.bus.kafka_commit import Committer
from libs.bus.kafka_delivery import Delivery
from libs.bus.kafka_worker import PartitionWorker, report_crash
from libs.core.errors import BusError

FETCH_WAIT_MS: Final = 500
MAX_RECORDS: Final = 2000
HIGH_WATER: Final = 2000
LOW_WATER: Final = 200
FETCH_ERROR_PAUSE: Final = 1.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap: str
    client_id: str
    session_timeout: float
    commit_timeout: float


class SubscriptionConsumer:
    def __init__(self, delivery: Delivery, settings: ConsumerSettings) -> None:
        self.delivery = delivery
        self._settings = settings
        self._consumer: Any = None
        self._committer: Committer | None = None
        self._workers: dict[Any, PartitionWorker] = {}
        self._paused: set[Any] = set()
        self._fetch_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        return f"{self.delivery.topic}:{self.delivery.group}"

    async def start(self) -> None:
        """Join the group and start fetching; BusError if the broker cannot be reached."""
        consumer = new_consumer(self.delivery.group, self._settings)
        consumer.subscribe([self.delivery.topic], listener=_Listener(self))
        self._consumer = consumer
        self._committer = Committer(consumer, timeout=self._settings.commit_timeout)
        try:
            await consumer.start()
        except (KafkaError, OSError) as exc:
            await _quietly_stop(consumer, self.name)
            self._consumer = None
            raise BusError(f"could not start consuming {self.name}: {exc!r}") from exc
        self._committer.start(f"bus-commit:{self.name}")
        self._fetch_task = asyncio.get_running_loop().create_task(self._fetch(), name=f"bus-fetch:{self.name}")
        self._fetch_task.add_done_callback(report_crash)

    async def stop(self) -> None:
        """Stop fetching, finish the records in hand, commit, leave the group."""
        self._stopping = True
        if self._fetch_task is not None:
            self._fetch_task.cancel()
            await asyncio.wait({self._fetch_task})
        await self.revoked(list(self._workers))
        if self._committer is not None and self._consumer is not None:
            await self._committer.stop()
            await _quietly_stop(self._consumer, self.name)

    async def _fetch(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=MAX_RECORDS)
            except ConsumerStoppedError:
                return
            except Exception as exc:  # KafkaError mostly; never let the fetch loop die
                _log.warning("fetching %s failed (%r); retrying", self.name, exc)
                await asyncio.sleep(FETCH_ERROR_PAUSE)
                continue
            for tp, records in batches.items():
                self._dispatch(tp, records)

    def _dispatch(self, tp: Any, records: list[Record]) -> None:
        worker = self._workers.get(tp)
        if worker is None:  # revoked meanwhile: the partition's next owner reads these again
            return
        if worker.feed(records) >= HIGH_WATER and tp not in self._paused:
            self._paused.add(tp)
            self._consumer.pause(tp)

    def _taken(self, tp: Any, backlog: int) -> None:
        if backlog <= LOW_WATER and tp in self._paused:
            self._paused.discard(tp)
            try:
                self._consumer.resume(tp)
            except IllegalStateError:  # no longer assigned
                pass

    # ---- rebalance callbacks (from _Listener) -----------------------------------------------------

    def assigned(self, tps: Iterable[Any]) -> None:
        if self._stopping or self._committer is None:
            return
        for tp in tps:
            if tp in self._workers:
                continue
            worker = PartitionWorker(tp, self.delivery.process, self._committer.mark, self._taken)
            self._workers[tp] = worker
            worker.start(f"bus:{tp.topic}:{self.delivery.group}:{tp.partition}")
        _log.info("%s: assigned %s", self.name, sorted(tp.partition for tp in tps))

    async def revoked(self, tps: Iterable[Any]) -> None:
        workers = [self._workers.pop(tp) for tp in list(tps) if tp in self._workers]
        self._paused.difference_update(w.tp for w in workers)
        await asyncio.gather(*(worker.close() for worker in workers))
        if self._committer is not None and workers:
            await self._committer.flush([w.tp for w in workers])


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, owner: SubscriptionConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._owner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        self._owner.assigned(assigned)


def new_consumer(group: str, settings: ConsumerSettings) -> Any:
    session_ms = int(settings.session_timeout * 1000)
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(session_ms // 3, 100),
    )


async def _quietly_stop(consumer: Any, name: str) -> None:
    try:
        await consumer.stop()
    except (KafkaError, OSError) as exc:
        _log.warning("closing the consumer of %s failed: %r", name, exc)
