"""What every service looks like to a runtime: bus subscriptions plus background loops.

The embedded runtime registers all four services on one bus; `python -m services.<name>` runs one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from libs.bus.ports import Bus, Handler

log = logging.getLogger("stepline.runtime")


@dataclass(frozen=True)
class Subscription:
    topic: str
    group: str
    handler: Handler


@dataclass
class Service:
    name: str
    subscriptions: list[Subscription] = field(default_factory=list)
    loops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Background coroutines (sweepers); each runs until cancelled."""
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Called after consuming stopped, to finish in-flight work."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def register(self, bus: Bus) -> None:
        for s in self.subscriptions:
            bus.subscribe(s.topic, s.group, s.handler)

    def start_loops(self) -> None:
        for loop in self.loops:
            self._tasks.append(asyncio.create_task(_guarded(self.name, loop), name=f"{self.name}-loop"))

    async def stop_loops(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def finish(self) -> None:
        for hook in self.on_stop:
            await hook()


async def _guarded(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive across unexpected errors (logged), until cancelled."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s background loop failed; restarting it", name)
            await asyncio.sleep(1.0)
