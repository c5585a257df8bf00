"""The lease renewal of one executor's attempts: one loop, not a timer or a task per attempt.

Every third of the lease the loop renews each attempt that has been held for at least that long
(most actions end sooner, so most attempts are never renewed and cost only a dictionary entry).
An attempt held just after a pass is renewed at the second pass after it, less than two thirds of
a lease after its claim, so it never expires while it runs. The loop ends when nothing is held and
starts again with the next attempt. A store that is briefly unavailable only delays a renewal (the
lease has time left); a renewal that finds the lease lost drops the attempt, whose completion this
executor then cannot record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from libs.core.errors import StoreError
from libs.store.ports import NodeRunStore

log = logging.getLogger("stepline.executor")


class Leases:
    def __init__(self, store: NodeRunStore, *, owner: str, clock: Callable[[], float],
                 lease_seconds: float) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        """The store's clock: the lease's new end."""
        self.period = lease_seconds / 3
        self.lease_seconds = lease_seconds
        self.held: dict[str, float] = {}
        """Node-run key → when it was taken (the event loop's monotonic time)."""
        self.loop: asyncio.Task[None] | None = None

    def hold(self, key: str) -> None:
        self.held[key] = asyncio.get_running_loop().time()
        if self.loop is None or self.loop.done():
            self.loop = asyncio.create_task(self._renewing())

    def release(self, key: str) -> None:
        self.held.pop(key, None)

    async def _renewing(self) -> None:
        running = asyncio.get_running_loop()
        while self.held:
            await asyncio.sleep(self.period)
            due = running.time() - self.period
            for key in [key for key, since in self.held.items() if since <= due]:
                if not await self._renew(key):
                    self.release(key)

    async def _renew(self, key: str) -> bool:
        """False when the lease is no longer this executor's."""
        try:
            renewed = await self.store.renew_lease(key, owner=self.owner, lease_until=self.clock() + self.lease_seconds)
        except StoreError as exc:
            log.warning("could not renew the lease on %s (%s); trying again", key, exc.code)
            return True
        if not renewed:
            log.warning("lost the lease on %s; its completion will not be recorded by this executor", key)
        return renewed
