"""Quiet outages: while the broker is away, a service logs at most one Kafka warning per second, and
one line once it is back.

Without this a broker restart of ~3 s made every service log thousands of aiokafka lines ("Unable
connect to node", "Unable to update metadata", "Failed fetch messages"): aiokafka's loops retry
every `retry_backoff_ms` and log every failure. `install()` (called by every `KafkaBus`, once per
process) routes the `aiokafka` logger through one `OutageLimiter` (its records no longer propagate
to the root logger directly; the limiter forwards those it passes), and puts the same limiter on the
bus's own retry warnings (libs/bus/kafka/commit.py, consumer.py, delivery.py,
producer.py): a failed commit, fetch or redelivery repeats as often as the outage lasts.

The limiter passes a warning (or an aiokafka error) if none passed within the last `INTERVAL`
seconds, and counts it as suppressed otherwise; the next one passed says how many were suppressed.
Records below WARNING pass unchanged, and so do the bus's own ERROR records (a dead letter, a
crashed task): each of those is an event, not a symptom of the outage. aiokafka logs connection
failures as errors (a rebalance only as warnings): the first one starts an outage, and once none
has come for `QUIET` seconds it is over: one WARNING line says so, with its length and the number
of lines suppressed (unless the errors lasted less than `INTERVAL`: a blip, such as the group
coordinator not being ready at start-up, is no outage).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

INTERVAL: Final = 1.0
QUIET: Final = 2.0
CLIENT_LOGGER: Final = "aiokafka"
BUS_LOGGERS: Final = ("libs.bus.kafka.commit", "libs.bus.kafka.consumer", "libs.bus.kafka.delivery",
                      "libs.bus.kafka.producer")

_log = logging.getLogger(__name__)


class OutageLimiter(logging.Filter):
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 report: Callable[[str], None] = _log.warning) -> None:
        super().__init__()
        self._clock = clock
        self._report = report
        self._last_passed = float("-inf")
        self._suppressed = 0
        self._outage_suppressed = 0
        self._down_since: float | None = None
        self._last_trouble = 0.0
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        """The loop the end-of-outage check is scheduled on (None: not scheduled)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _limited(record):
            return True
        now = self._clock()
        if record.levelno >= logging.ERROR:  # aiokafka's connection errors (a rebalance only warns)
            self._note_trouble(now)
        if now - self._last_passed < INTERVAL:
            self._suppressed += 1
            self._outage_suppressed += 1
            return False
        self._last_passed = now
        if self._suppressed:
            record.msg = f"{record.getMessage()} [{self._suppressed} similar Kafka lines suppressed]"
            record.args = None
            self._suppressed = 0
        return True

    def check_quiet(self) -> float | None:
        """Report the end of an outage that has been quiet for `QUIET` seconds; otherwise the seconds
        until it could be (None when there is no outage)."""
        if self._down_since is None:
            return None
        now = self._clock()
        if now - self._last_trouble < QUIET:
            return QUIET - (now - self._last_trouble)
        lasted = self._last_trouble - self._down_since
        if lasted >= INTERVAL:  # a shorter burst (a coordinator moving at start-up) was no outage
            self._report(f"Kafka reachable again: no client errors for {QUIET:g} s, after {lasted:.1f} s of them "
                         f"({self._outage_suppressed} lines suppressed)")
        self._down_since, self._outage_suppressed, self._suppressed = None, 0, 0
        return None

    def _note_trouble(self, now: float) -> None:
        self._last_trouble = now
        if self._down_since is None:
            self._down_since = now
        self._arm(QUIET)

    def _arm(self, delay: float) -> None:
        """Schedule the check, unless it is already scheduled on a loop still running."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # logged outside a loop: the next record in one arms the check
            return
        if self._timer_loop is loop or (self._timer_loop is not None and self._timer_loop.is_running()):
            return
        self._timer_loop = loop
        loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer_loop = None
        remaining = self.check_quiet()
        if remaining is not None:
            self._arm(remaining)


def _limited(record: logging.LogRecord) -> bool:
    if record.levelno < logging.WARNING:
        return False
    return record.name.startswith(CLIENT_LOGGER) or record.levelno < logging.ERROR


class _Forward(logging.Handler):
    """On the `aiokafka` logger: what the limiter passes goes on to the root logger's handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


_installed: OutageLimiter | None = None


def install() -> OutageLimiter:
    """Put the process's one limiter in place (idempotent); returns it."""
    global _installed
    if _installed is not None:
        return _installed
    limiter = OutageLimiter()
    client = logging.getLogger(CLIENT_LOGGER)
    forward = _Forward()
    forward.addFilter(limiter)
    client.addHandler(forward)
    client.propagate = False
    for name in BUS_LOGGERS:
        logging.getLogger(name).addFilter(limiter)
    _installed = limiter
    return limiter
