"""One (topic, group) subscription of `KafkaBus`: an `AIOKafkaConsumer`, a worker per assigned
partition, and a committer.

Fetching
    One task calls `getmany()` and hands each partition's records to that partition's worker
    (libs/bus/kafka/worker.py); workers of different partitions run concurrently, each one record
    at a time. A partition whose backlog reaches `HIGH_WATER` is paused (no more fetching for it)
    until its worker has worked it down to `LOW_WATER`, so memory follows the handlers' pace.

Offsets
    Auto-commit is off. A worker marks `offset + 1` once a record is done (handled or
    dead-lettered) and the committer (libs/bus/kafka/commit.py) commits those marks; a record the
    handler has not finished is never committed. A group that has no committed offset starts at the
    earliest retained record, so messages published before the group first subscribed reach it.

Membership
    With a replica id the consumer is a static member of its group (libs/bus/kafka/membership.py:
    instance id `{replica}--{topic}`), so a restarted replica takes its partitions back without a
    rebalance; `KafkaBus.stop()` then removes it from the group explicitly. Before rejoining it
    checks that no other live process took its instance id over (else it rejoins as a dynamic
    member: `check_identity`). Session timeout, heartbeat interval and rebalance timeout come from
    the settings (STEPLINE_KAFKA_*).

Rebalances
    On partitions revoked (the listener runs before the group re-forms) the workers of those
    partitions finish the record in hand, then their offsets are committed, then the partitions
    are given up; records fetched but not taken are dropped and read again by the next owner. On
    partitions assigned a worker starts for each, reading from the group's committed offset.

Stopping
    Stop fetching, let each worker finish the record in hand, commit, leave the group (a static
    member is left by `KafkaBus.stop()`, after every consumer closed).

Each assignment and revocation is logged at INFO with `extra={"kafka_partitions": (topic, group,
"assigned"|"revoked", partitions)}`, which recovery tests and measurements read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError

from libs.bus.kafka import lag
from libs.bus.kafka.backoff import Backoff
from libs.bus.kafka.codec import Record
from libs.bus.kafka.commit import Committer
from libs.bus.kafka.delivery import Delivery
from libs.bus.kafka.membership import GroupAdmin, static_id
from libs.bus.kafka.worker import PartitionWorker, report_crash
from libs.contracts import topics
from libs.core.errors import BusError

FETCH_WAIT_MS: Final = 500
MAX_RECORDS: Final = 2000
HIGH_WATER: Final = 2000
LOW_WATER: Final = 200
FETCH_ERROR_PAUSE: Final = 1.0
"""The longest pause after failed fetches (they back off exponentially up to it)."""
FOLLOWER_TOPICS: Final = frozenset({topics.RUN_EVENTS})
FOLLOWER_FETCH: Final[dict[str, int]] = {"fetch_min_bytes": 64 * 1024, "fetch_max_wait_ms": 50}
"""The readers of run events follow runs (notifications, metrics, long-poll wake-ups, runs a
completion starts): their fetches wait up to 50 ms to gather records instead of answering each
record alone, a fraction of the broker round trips under a trickle of events (bench_distributed: the
trigger's CPU per node fell by a quarter). Commands and results are fetched as soon as one is there."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap: str
    client_id: str
    session_timeout: float
    commit_timeout: float
    heartbeat_interval: float | None = None
    """None: a third of the session timeout."""
    rebalance_timeout: float | None = None
    """None: the session timeout."""
    replica: str | None = None
    """The replica's stable id: static membership with one instance id per consumer; None: dynamic."""


class SubscriptionConsumer:
    def __init__(self, delivery: Delivery, settings: ConsumerSettings, groups: GroupAdmin) -> None:
        self.delivery = delivery
        self._settings = settings
        self._groups = groups
        self._member_id: str | None = None
        """The group's member id for this consumer when it was last assigned partitions."""
        self._demoted = False
        self._consumer: Any = None
        self._committer: Committer | None = None
        self._workers: dict[Any, PartitionWorker] = {}
        self._paused: set[Any] = set()
        self._fetch_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.joined = False
        """Started (joined its group) at least once: only then is there a membership to end."""

    @property
    def name(self) -> str:
        return f"{self.delivery.topic}:{self.delivery.group}"

    @property
    def kafka_consumer(self) -> Any:
        """The aiokafka consumer while started (None before)."""
        return self._consumer

    @property
    def workers(self) -> dict[Any, PartitionWorker]:
        """The worker of each partition this consumer owns now."""
        return self._workers

    @property
    def static_id(self) -> str | None:
        """The group instance id, for static membership; None for a dynamic member."""
        replica = self._settings.replica
        return None if replica is None or self._demoted else static_id(replica, self.delivery.topic)

    async def start(self) -> None:
        """Join the group and start fetching; BusError if the broker cannot be reached."""
        consumer = new_consumer(self.delivery.topic, self.delivery.group, self._settings, self.static_id)
        consumer.subscribe([self.delivery.topic], listener=_Listener(self))
        self._consumer = consumer
        self._committer = Committer(consumer, timeout=self._settings.commit_timeout)
        try:
            await consumer.start()
        except (KafkaError, OSError) as exc:
            await _quietly_stop(consumer, self.name)
            self._consumer = None
            raise BusError(f"could not start consuming {self.name}: {exc!r}") from exc
        self.joined = True
        lag.watch(self)
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
        backoff = Backoff(ceiling=FETCH_ERROR_PAUSE)
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=MAX_RECORDS)
            except ConsumerStoppedError:
                return
            except Exception as exc:  # KafkaError mostly; never let the fetch loop die
                _log.warning("fetching %s failed (%r); retrying", self.name, exc)
                await asyncio.sleep(backoff.failed())
                continue
            backoff.succeeded()
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
        self._member_id = getattr(getattr(self._consumer, "_coordinator", None), "member_id", None)
        self._log_partitions("assigned", tps)

    async def revoked(self, tps: Iterable[Any]) -> None:
        workers = [self._workers.pop(tp) for tp in list(tps) if tp in self._workers]
        self._paused.difference_update(w.tp for w in workers)
        await asyncio.gather(*(worker.close() for worker in workers))
        if self._committer is not None and workers:
            await self._committer.flush([w.tp for w in workers])
        if workers:
            self._log_partitions("revoked", [w.tp for w in workers])

    async def check_identity(self) -> None:
        """Before rejoining: if a live process took this consumer's instance id over, rejoin as a
        dynamic member rather than fence it back (libs/bus/kafka/membership.py)."""
        instance_id, member_id = self.static_id, self._member_id
        if instance_id is None or not member_id or self._stopping:
            return
        holder = await self._groups.taken_over(self.delivery.group, instance_id, member_id)
        coordinator: Any = getattr(self._consumer, "_coordinator", None)
        if holder is None or not hasattr(coordinator, "_group_instance_id"):
            return
        _log.error("%s: instance id %s was taken over by another live process (member %s); continuing as a "
                   "dynamic member. Give every replica its own STEPLINE_INSTANCE_ID.", self.name, instance_id,
                   holder, extra={"kafka_duplicate": instance_id})
        coordinator._group_instance_id = None  # aiokafka has no public way to change it
        self._demoted = True

    def _log_partitions(self, change: str, tps: Iterable[Any]) -> None:
        partitions = sorted(tp.partition for tp in tps)
        event = (self.delivery.topic, self.delivery.group, change, partitions)
        _log.info("%s: %s %s", self.name, change, partitions, extra={"kafka_partitions": event})


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, owner: SubscriptionConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._owner.revoked(revoked)
        await self._owner.check_identity()

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        self._owner.assigned(assigned)


def new_consumer(topic: str, group: str, settings: ConsumerSettings, instance_id: str | None) -> Any:
    session_ms = int(settings.session_timeout * 1000)
    heartbeat = settings.heartbeat_interval
    rebalance = settings.rebalance_timeout
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        group_id=group,
        group_instance_id=instance_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(session_ms // 3 if heartbeat is None else int(heartbeat * 1000), 100),
        rebalance_timeout_ms=session_ms if rebalance is None else int(rebalance * 1000),
        **(FOLLOWER_FETCH if topic in FOLLOWER_TOPICS else {}),
    )


async def _quietly_stop(consumer: Any, name: str) -> None:
    try:
        await consumer.stop()
    except (KafkaError, OSError) as exc:
        _log.warning("closing the consumer of %s failed: %r", name, exc)
