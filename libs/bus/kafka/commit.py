"""Offset commits for one consumer, coalesced and in order.

A partition worker `mark`s `offset + 1` after a message's handler returned (or after its dead letter
was published); nothing else ever reaches the committer, so a committed offset never passes an
unhandled message. A background task commits whatever was marked, one commit at a time: while one
is in flight, and for `COMMIT_INTERVAL` after it, newer marks pile up and go in the next, so a
consumer costs at most one commit round trip per interval rather than one per message (a trickle of
messages was a commit each: bench_distributed). A crash re-delivers at most that interval's handled
messages more, which at-least-once delivery allows and the handlers' idempotence absorbs. `flush`
commits synchronously (before partitions are given up and on stop). A lock keeps commits in the
order their offsets were taken, so an older offset can never overwrite a newer one.

A commit that fails because the group rebalanced (`CommitFailedError`, or the partition is no longer
assigned) is dropped: the partition's new owner re-reads from the last committed offset, so those
messages are delivered again, which at-least-once allows. Other failures are retried by the next
commit, with the offsets marked meanwhile taking precedence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any, Final

from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

_log = logging.getLogger(__name__)

RETRY_PAUSE: Final = 0.5
COMMIT_INTERVAL: Final = 0.1
"""Seconds between the background commits of one consumer."""

Offsets = dict[Any, int]  # TopicPartition -> next offset to read


class Committer:
    def __init__(self, consumer: Any, *, timeout: float) -> None:
        self._consumer = consumer
        self._timeout = timeout
        self._pending: Offsets = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    def mark(self, tp: Any, offset: int) -> None:
        self._pending[tp] = offset
        self._wake.set()

    async def flush(self, tps: Collection[Any] | None = None) -> None:
        """Commit what is marked (for `tps`, or all) now; logs rather than raises on failure."""
        async with self._lock:
            await self._commit(self._take(tps))

    async def stop(self) -> None:
        """Flush everything, then end the background task."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._lock:
                failed = await self._commit(self._take(None))
            await asyncio.sleep(RETRY_PAUSE if failed else COMMIT_INTERVAL)

    def _take(self, tps: Collection[Any] | None) -> Offsets:
        if tps is None:
            taken, self._pending = self._pending, {}
            return taken
        return {tp: self._pending.pop(tp) for tp in tps if tp in self._pending}

    async def _commit(self, offsets: Offsets) -> bool:
        """Commit `offsets`; True if it failed in a way worth retrying (then they are marked again)."""
        if not offsets:
            return False
        try:
            async with asyncio.timeout(self._timeout):
                await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            _log.warning("dropped offsets %s: the group rebalanced (%s)", _show(offsets), exc)
        except (KafkaError, TimeoutError, OSError) as exc:
            _log.warning("committing offsets %s failed (%r); will retry", _show(offsets), exc)
            self._remark(offsets)
            return True
        return False

    def _remark(self, offsets: Offsets) -> None:
        for tp, offset in offsets.items():
            self._pending.setdefault(tp, offset)
        self._wake.set()


def _show(offsets: Offsets) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]={offset}" for tp, offset in offsets.items())
