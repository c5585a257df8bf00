"""Long polls (`GET /v1/workflows/runs/{id}?wait=S`) woken by the run's completion, and start
requests woken by their run's first event (the scheduler has inserted it).

The trigger consumes the run-events topic (its own consumer group per replica, so every replica sees
every completion) and sets the event of the runs someone waits for; a waiter re-reads the run when
woken, and at the latest every `recheck_seconds` (a lost event costs at most that). At most `limit`
requests wait at once per replica; one more is refused with 429 instead of holding a connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from libs.contracts import v1
from libs.contracts.envelope import Envelope
from libs.core.run import Run
from libs.store.ports import RunStore
from services.trigger.errors import TooManyRequestsError

WAITERS_GROUP = "stepline-trigger-waiters"
"""Suffixed with the replica's instance id: one group per replica."""
WAKING: frozenset[str] = frozenset({v1.RunQueued.TYPE, v1.RunStarted.TYPE, v1.RunCompleted.TYPE})
"""The events that can wake someone: a run's first (`run.queued` or `run.started`) and its last."""


@dataclass
class _Waiting:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0


class RunWaiters:
    def __init__(self, *, limit: int = 1000, recheck_seconds: float = 1.0) -> None:
        self.limit = limit
        self.recheck_seconds = recheck_seconds
        self._runs: dict[str, _Waiting] = {}
        self._starting: dict[str, asyncio.Event] = {}
        self._total = 0

    @property
    def waiting(self) -> int:
        return self._total

    async def handle(self, envelope: Envelope) -> None:
        """The run-events handler: wake the start of a run that has an event, and the waiters of a run
        that completed."""
        if (started := self._starting.get(envelope.subject)) is not None:
            started.set()
        if envelope.type == v1.RunCompleted.TYPE and (waiting := self._runs.get(envelope.subject)) is not None:
            waiting.event.set()

    @contextlib.contextmanager
    def starting(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set by the first event of run `run_id`, while the block runs (enter it before
        publishing the start, so no event passes unseen)."""
        self._starting[run_id] = started = asyncio.Event()
        try:
            yield started
        finally:
            self._starting.pop(run_id, None)

    async def wait_for_completion(self, store: RunStore, run_id: str, timeout: float, *,
                                  read: Run | None = None) -> Run:
        """The run as soon as it is COMPLETED, or as it is after `timeout` seconds; NotFoundError at
        once for an unknown run; TooManyRequestsError (429) when `limit` requests wait already. `read`:
        the run as the caller has just read it (one store read fewer)."""
        run = read or await store.get_run(run_id)
        if run.status == "COMPLETED" or timeout <= 0:
            return run
        if self._total >= self.limit:
            raise TooManyRequestsError(f"{self.limit} requests are waiting for runs already; retry, or read "
                                      "the run without ?wait")
        waiting = self._enter(run_id)
        try:
            return await self._until_completed(store, run_id, waiting.event, timeout)
        finally:
            self._leave(run_id, waiting)

    async def _until_completed(self, store: RunStore, run_id: str, event: asyncio.Event, timeout: float) -> Run:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                await asyncio.wait_for(event.wait(), min(self.recheck_seconds, max(remaining, 0)))
            except TimeoutError:
                pass
            run = await store.get_run(run_id)
            if run.status == "COMPLETED" or deadline - loop.time() <= 0:
                return run

    def _enter(self, run_id: str) -> _Waiting:
        waiting = self._runs.setdefault(run_id, _Waiting())
        waiting.count += 1
        self._total += 1
        return waiting

    def _leave(self, run_id: str, waiting: _Waiting) -> None:
        waiting.count -= 1
        self._total -= 1
        if waiting.count == 0:
            self._runs.pop(run_id, None)
