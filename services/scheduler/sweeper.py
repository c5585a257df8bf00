"""The recovery sweeper: turns idle runs and due timers into commands for the scheduler.

It never changes run state itself; it publishes `ReconcileRun` / `FireTimer` on the run-commands
topic, keyed by run id, so the partition owner applies them like any other command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from libs.bus.ports import Bus
from libs.contracts import topics, v1, wrap
from libs.store.ports import Store

SOURCE = "stepline/scheduler-sweeper"


class Sweeper:
    def __init__(self, store: Store, bus: Bus, *, clock: Callable[[], float], interval: float,
                 stale_seconds: float, batch: int) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.interval = interval
        self.stale_seconds = stale_seconds
        self.batch = batch

    async def run_forever(self) -> None:
        while True:
            await self.sweep_once()
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> int:
        """One pass; returns how many commands it published."""
        now = self.clock()
        published = 0
        for run_id in await self.store.runs_due_for_check(now, limit=self.batch):
            await self.store.postpone_check(run_id, now + self.stale_seconds)
            await self.bus.publish(topics.RUN_COMMANDS, wrap(v1.ReconcileRun(run_id=run_id), source=SOURCE))
            published += 1
        for timer in await self.store.claim_due_timers(now, lease_seconds=self.stale_seconds, limit=self.batch):
            msg = v1.FireTimer(run_id=timer.run_id, timer_id=timer.id, kind=timer.kind, payload=timer.payload)
            await self.bus.publish(topics.RUN_COMMANDS, wrap(msg, source=SOURCE))
            published += 1
        return published
