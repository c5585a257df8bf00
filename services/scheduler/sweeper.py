"""The recovery sweeper: turns idle runs and due timers into commands for the scheduler.

It never changes run state itself; it publishes `ReconcileRun` / `FireTimer` on the run-commands
topic, keyed by run id, so the partition owner applies them like any other command.

Reconciling backs off while it achieves nothing. A run idle past its check is reconciled at once;
if it is still at the same `seq` when it comes due again, the next reconcile waits twice as long as
the last interval (`stale_seconds`, 2×, 4×, … up to `max_seconds`), and any progress starts over. And
one `ReconcileRun` is in flight per run: publishing it moves the run's check `max_seconds` ahead
(handling it brings the check back). A run that waits in a backlog (its result queued behind others
on node-results, its command behind others on run-commands) is so not fed another copy of its work
every `stale_seconds`, each of which re-dispatches the run's nodes or re-publishes their results and
makes the backlog longer. A run whose command could not be published is due again at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from libs.bus.publisher import Publisher
from libs.contracts import v1
from libs.core.errors import BusError
from libs.store.ports import Store


def next_check(current: float, now: float, stale_seconds: float) -> float:
    """When a run written at `now` is due for a check: `stale_seconds` ahead, but a check already
    between half of that and all of it ahead stays (moving it re-indexes the run in the store on
    every write; a run that makes progress is then re-indexed once per half of `stale_seconds`, and
    one that stops is checked between half and all of `stale_seconds` after its last change). A check
    further ahead (a reconcile in flight) or already behind is moved."""
    soonest, latest = now + stale_seconds / 2, now + stale_seconds
    return current if soonest <= current <= latest else latest


@dataclass(frozen=True)
class Idle:
    """A run reconciled `count` + 1 times in a row at `seq`; not again before `next_at`."""

    seq: int
    count: int
    next_at: float


class Sweeper:
    def __init__(self, store: Store, publisher: Publisher, *, clock: Callable[[], float], interval: float,
                 stale_seconds: float, batch: int, max_seconds: float | None = None) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.interval = interval
        self.stale_seconds = stale_seconds
        self.max_seconds = max(stale_seconds, max_seconds or stale_seconds)
        """The longest wait between two reconciles of a run that makes no progress."""
        self.batch = batch
        self.idle: dict[str, Idle] = {}

    async def run_forever(self) -> None:
        while True:
            await self.sweep_once()
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> int:
        """One pass; returns how many commands it published."""
        now = self.clock()
        published = 0
        self.idle = {r: i for r, i in self.idle.items() if i.next_at + self.max_seconds > now}
        for run_id in await self.store.runs_due_for_check(now, limit=self.batch):
            if await self._backed_off(run_id, now):
                continue
            await self._reconcile(run_id, now)
            published += 1
        for timer in await self.store.claim_due_timers(now, lease_seconds=self.stale_seconds, limit=self.batch):
            await self.publisher.publish(v1.FireTimer(run_id=timer.run_id, timer_id=timer.id, kind=timer.kind,
                                                      payload=timer.payload))
            published += 1
        return published

    async def _backed_off(self, run_id: str, now: float) -> bool:
        """True (its check postponed) when the run made no progress since its last reconcile and its
        backoff has not run out; else note this reconcile and return False."""
        seq = (await self.store.get_run(run_id)).seq
        last = self.idle.get(run_id)
        if last is not None and last.seq == seq and now < last.next_at:
            await self.store.postpone_check(run_id, last.next_at)
            return True
        count = last.count + 1 if last is not None and last.seq == seq else 0
        self.idle[run_id] = Idle(seq, count, now + min(self.stale_seconds * 2 ** count, self.max_seconds))
        return False

    async def _reconcile(self, run_id: str, now: float) -> None:
        """Publish the run's `ReconcileRun`; when that fails, make the run due again and re-raise."""
        await self.store.postpone_check(run_id, now + self.max_seconds)
        try:
            await self.publisher.publish(v1.ReconcileRun(run_id=run_id))
        except BusError:
            await self.store.postpone_check(run_id, now)
            self.idle.pop(run_id, None)
            raise
