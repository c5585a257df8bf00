"""One assigned partition of one consumer: its records, handled in order, one at a time.

The consumer's fetch loop `feed`s records; the worker's task hands them to `process` (the delivery
policy, libs/bus/kafka/delivery.py) one by one and marks `offset + 1` for commit when `process`
says the record is done (handled or dead-lettered). `busy` is true while a handler runs or a dead
letter is being published; `close()` cancels a worker that is not busy (waiting for records or
sitting out a redelivery backoff) and otherwise waits for the record in hand. Records fed but not
yet taken are dropped on close: they were not committed, so whoever owns the partition next reads
them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from libs.bus.kafka.codec import Record

FAIR_BATCH: Final = 128

_log = logging.getLogger(__name__)


class PartitionWorker:
    def __init__(
        self,
        tp: Any,
        process: Callable[[Record, PartitionWorker], Awaitable[bool]],
        mark: Callable[[Any, int], None],
        taken: Callable[[Any, int], None],
    ) -> None:
        self.tp = tp
        self.busy = False
        self.closing = False
        self._process = process
        self._mark = mark
        self._taken = taken  # told the backlog after each take, for flow control
        self._records: deque[Record] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.position: int | None = None
        """The offset of the next record to handle (None until a record was fetched): consumer lag
        is the partition's high watermark minus this (libs/bus/kafka/lag.py)."""

    def start(self, name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)
        self._task.add_done_callback(report_crash)

    def feed(self, records: Iterable[Record]) -> int:
        """Queue `records`; the backlog after that."""
        self._records.extend(records)
        if self.position is None and self._records:
            self.position = self._records[0].offset
        self._ready.set()
        return len(self._records)

    async def close(self) -> None:
        """Finish the record in hand (if any), then end; never raises."""
        self.closing = True
        task = self._task
        if task is None or task.done():
            return
        if not self.busy:
            task.cancel()
        await asyncio.wait({task})

    async def _run(self) -> None:
        streak = 0
        while not self.closing:
            if not self._records:
                streak = 0
                self._ready.clear()
                await self._ready.wait()
                continue
            record = self._records.popleft()
            self._taken(self.tp, len(self._records))
            if not await self._process(record, self):
                return
            self._mark(self.tp, record.offset + 1)
            self.position = record.offset + 1
            streak += 1
            if streak >= FAIR_BATCH:  # a handler that never suspends must not starve the loop
                streak = 0
                await asyncio.sleep(0)


def report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("bus task %s crashed", task.get_name(), exc_info=task.exception())
