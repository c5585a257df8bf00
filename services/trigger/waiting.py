"""Waiting on the store: for the scheduler to accept a run (woken by the run's first event when the
caller has one, else polling), and for a cancel to be recorded (short waits, bounded by the accept
timeout). Long polls for a run's completion are woken by events (run_waiters.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from libs.core.errors import NotFoundError
from libs.core.run import Run
from libs.store.ports import RunStore

FIRST_DELAY = 0.001
MAX_DELAY = 0.05
WOKEN_RECHECK = 0.05
"""With a wake-up event, the store is re-read this often anyway (a lost event, or a run that exists
under an earlier request's id), doubling up to MAX_RECHECK."""
MAX_RECHECK = 0.4
COMPLETION_POLL_SECONDS = 0.025


async def _inserted(store: RunStore, run_id: str, workflow: str, key: str | None) -> Run | None:
    """The run, by id; or, when a request with the same idempotency key won a race, that one."""
    try:
        return await store.get_run(run_id)
    except NotFoundError:
        pass
    if key is not None:
        return await store.find_run_by_idempotency_key(workflow, key)
    return None


async def wait_for_insert(store: RunStore, run_id: str, workflow: str, key: str | None,
                          timeout: float, woken: asyncio.Event | None = None) -> Run | None:
    """The run once the scheduler has inserted it; None if `timeout` seconds pass first. Without
    `woken` (set by the run's first event), poll with growing sleeps (1 ms doubling to 50 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay, longest = (FIRST_DELAY, MAX_DELAY) if woken is None else (WOKEN_RECHECK, MAX_RECHECK)
    if woken is not None:  # the start was just published: its event comes before the run can be read
        await _pause(woken, min(delay, timeout))
    while True:
        run = await _inserted(store, run_id, workflow, key)
        remaining = deadline - loop.time()
        if run is not None or remaining <= 0:
            return run
        await _pause(woken, min(delay, remaining))
        delay = min(delay * 2, longest)


async def _pause(woken: asyncio.Event | None, seconds: float) -> None:
    if woken is None or woken.is_set():
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(woken.wait(), seconds)


async def wait_for_run(store: RunStore, run_id: str, done: Callable[[Run], bool], timeout: float) -> Run:
    """The run as soon as `done(run)` holds, or as it is when `timeout` seconds pass.
    NotFoundError at once if it does not exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = await store.get_run(run_id)
        remaining = deadline - loop.time()
        if done(run) or remaining <= 0:
            return run
        await asyncio.sleep(min(COMPLETION_POLL_SECONDS, remaining))
