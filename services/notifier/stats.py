"""Workflow statistics in distributed mode: a faust-streaming app in the notifier that folds
`stepline.run-events.v1` into hourly per-workflow buckets (`libs/core/run_stats.py`, pure).

Two agents:

- `split` reads the run events and sends each one that changes a bucket to an internal topic
  keyed by its bucket (`<workflow>@<hour>`), so one bucket is always folded by one partition owner;
- `fold` applies them, a batch at a time, to the `buckets` table, a faust table whose changelog
  topic lives on Kafka: a notifier that restarts (or another replica taking over the partition)
  recovers the table from it before folding on. An event applies only if its `seq` is above what
  the bucket holds for its run (`run_stats.apply`), so redeliveries and events re-read after a
  restart never count twice.

Every bucket a batch touches is written once to the store (entry kind `workflow-stats`, the view the API
reads its metrics from) and published on `stepline.workflow-stats.v1` (docs/events.md), both
idempotent, so a crash between the table write and either of them is repaired by the redelivery.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import faust

from libs.contracts import topics
from libs.core.instants import to_iso
from libs.core.run_stats import STORE_KIND, Bucket, Change, apply, bucket_stats, change_of
from libs.store.ports import EntryStore
from services.notifier.settings import NotifierSettings

log = logging.getLogger("stepline.notifier.stats")
SOURCE = "stepline/notifier"
STATS_TYPE = "workflow.stats"
FOLD_BATCH = 1000
FOLD_WITHIN = 0.05
"""At most this many changes, gathered for at most this many seconds, are folded together."""


class StatsApp:
    """The faust app; `run()` serves it until cancelled."""

    def __init__(self, settings: NotifierSettings, bootstrap: str, store: EntryStore) -> None:
        self.store = store
        self.scratch = tempfile.TemporaryDirectory(prefix="stepline-stats-")
        """faust's data directory: the tables are in memory and recovered from their changelog topics,
        so nothing in it outlives the process."""
        self.app = faust.App(settings.stats_app_id, broker=[f"kafka://{b}" for b in bootstrap.split(",")],
                             store="memory://", datadir=self.scratch.name,
                             topic_partitions=settings.partitions, topic_replication_factor=1,
                             web_enabled=False, autodiscover=False, consumer_auto_offset_reset="earliest",
                             key_serializer="raw", value_serializer="raw")
        self.events = self.app.topic(topics.RUN_EVENTS, key_type=bytes, value_type=bytes)
        self.changes = self.app.topic(f"{settings.stats_app_id}-changes", partitions=settings.partitions,
                                      internal=True, key_type=bytes, value_type=bytes)
        self.published = self.app.topic(topics.WORKFLOW_STATS, partitions=settings.partitions,
                                        internal=True, compacting=True, key_type=bytes, value_type=bytes)
        self.buckets = self.app.Table("buckets", default=dict, partitions=settings.partitions, key_type=bytes,
                                      use_partitioner=True)
        """Keys raw (the bucket key's bytes), values JSON: faust picks the changelog's serializers
        from `key_type` and `value_type`, in recovery too. A key's changelog partition is the one
        the producer's partitioner gives it, as on the changes topic (same key, same partition
        count), so a batch of several partitions writes each key where its owner recovers it."""
        self.app.agent(self.events, name="split")(self.split)
        self.app.agent(self.changes, name="fold")(self.fold)

    async def run(self) -> None:
        """Serve until cancelled. If faust stops on its own (it crashed), raise: the service's loop
        guard logs it and starts a fresh app, which recovers the table from its changelog."""
        await self.app.start()
        try:
            await self.app.wait_until_stopped()
        finally:
            await self.app.stop()
            self.scratch.cleanup()
        raise RuntimeError("the workflow statistics' stream app stopped")

    async def split(self, stream: Any) -> AsyncIterator[None]:
        async for raw in stream:
            change = parse(raw)
            if change is not None:
                await self.changes.send(key=change.key.encode(), value=json.dumps(
                    {"runId": change.run_id, "entry": change.entry}).encode())
            yield None

    async def fold(self, stream: Any) -> AsyncIterator[None]:
        """Fold the changes a batch at a time: each bucket the batch touches is copied, written to
        the table, the store and the statistics topic once, not once per change (a bucket holds
        every run of its hour, so per change a backlog would cost its square)."""
        async for events in stream.take_events(FOLD_BATCH, within=FOLD_WITHIN):
            for key, changes in by_bucket(events).items():
                held: Bucket = self.buckets[key]
                changed = apply(held, changes)
                if changed is not None:
                    self.buckets[key] = changed
                await self.publish(key.decode(), changed or held)
            yield None

    async def publish(self, key: str, bucket: Bucket) -> None:
        """The store's view of the bucket and its statistics message (both idempotent: a repeat
        writes the same bucket, and the message's id names the bucket's state)."""
        await self.store.put_entry(STORE_KIND, key, {"runs": bucket}, now=time.time())
        envelope = stats_envelope(key, bucket)
        await self.published.send(key=key.encode(), value=json.dumps(envelope, separators=(",", ":")).encode())


def by_bucket(events: Iterable[Any]) -> dict[bytes, list[Change]]:
    """A batch of the changes topic's events (key: the bucket key; value: `runId` and `entry`),
    grouped by bucket in the order they came."""
    grouped: dict[bytes, list[Change]] = {}
    for event in events:
        value = json.loads(event.value)
        grouped.setdefault(event.key, []).append(Change(event.key.decode(), value["runId"], value["entry"]))
    return grouped


def parse(raw: bytes) -> Change | None:
    """The bucket change of one run-events record; None for events that change none, and for a
    record that is no run event (logged: the stream goes on)."""
    try:
        event = json.loads(raw)
        return change_of(str(event["type"]), event["data"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("a run-events record was skipped by the statistics: %s", type(exc).__name__)
        return None


def stats_envelope(key: str, bucket: Bucket) -> dict[str, Any]:
    """The CloudEvent of a bucket's statistics. Its id is `<workflow>@<hour>/<state>`, `state` the
    sum of the entries' `seq`: it grows with every change, so equal ids carry equal numbers."""
    data = bucket_stats(key, bucket)
    return {"id": f"{key}/{sum(int(e[1]) for e in bucket.values())}", "specversion": "1.0",
            "type": STATS_TYPE, "source": SOURCE, "subject": data["workflow"], "time": to_iso(time.time()),
            "datacontenttype": "application/json", "data": data}
