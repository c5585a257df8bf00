"""The delivery rule both buses share (libs/bus/ports.py): call the handler; redeliver a retryable
failure after a backoff doubling up to a ceiling, until `max_deliveries`; then, or at once for a
non-retryable error, the message is for the dead-letter topic. Each bus supplies the handler call,
how it logs a failure and whether it is stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from libs.bus.dead_letter import is_retryable
from libs.bus.ports import Handler
from libs.contracts.envelope import Envelope


@dataclass(frozen=True)
class Retries:
    max_deliveries: int
    backoff: float
    max_backoff: float


@dataclass(frozen=True)
class Failed:
    """Delivered `deliveries` times without success: dead-letter it with `error`."""

    error: Exception
    deliveries: int


class GaveUp:
    """The bus is stopping: leave the message for a later delivery (do not acknowledge it)."""


GAVE_UP = GaveUp()


class Busy(Protocol):
    busy: bool


async def call_handler(handler: Handler, envelope: Envelope, worker: Busy) -> Exception | None:
    """One delivery: the handler's exception, or None. `worker.busy` is true while it runs."""
    worker.busy = True
    try:
        await handler(envelope)
    except Exception as exc:  # CancelledError is a BaseException and propagates
        return exc
    finally:
        worker.busy = False
    return None


async def redeliver(error: Exception, call: Callable[[], Awaitable[Exception | None]], retries: Retries, *,
                    stopping: Callable[[], bool],
                    log_failure: Callable[[Exception, int], None]) -> Failed | GaveUp | None:
    """After a first delivery failed with `error`: deliver again until handled (None), failed for
    good (`Failed`) or the bus stops (`GAVE_UP`). The first delivery stays with the caller, so a
    message handled at once costs no more than the handler call."""
    deliveries, delay = 1, retries.backoff
    while True:
        if not is_retryable(error) or deliveries >= retries.max_deliveries:
            return Failed(error, deliveries)
        if stopping():
            return GAVE_UP
        log_failure(error, deliveries)
        await asyncio.sleep(delay)
        delay = min(delay * 2, retries.max_backoff)
        deliveries += 1
        next_error = await call()
        if next_error is None:
            return None
        error = next_error
