"""Reconnect backoff: how long to wait before the next attempt to reach a broker that is away.

Exponential with jitter: after the n-th consecutive failure the wait is `first * 2**(n-1)` capped at
`ceiling`, multiplied by a random factor in [0.5, 1] ("equal jitter"), so a fleet of clients that
lost the broker at the same moment does not come back in lockstep. A success resets it. Used by
the producer (libs/bus/kafka/producer.py) before opening a replacement, by each consumer's fetch
loop after a failed fetch (libs/bus/kafka/consumer.py) and by the service runner between attempts
to start its bus (libs/runtime/runner.py). aiokafka's own loops retry every `retry_backoff_ms`
(100 ms) and cannot be changed; their log lines are rate-limited instead (outage_log.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

FIRST: Final = 0.1
CEILING: Final = 5.0


class Backoff:
    def __init__(self, *, first: float = FIRST, ceiling: float = CEILING,
                 jitter: Callable[[], float] = random.random) -> None:
        if first <= 0 or ceiling < first:
            raise ValueError("need 0 < first <= ceiling")
        self._first = first
        self._ceiling = ceiling
        self._jitter = jitter
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        return self.delay()

    def delay(self) -> float:
        """The wait after the failures counted so far (0 when there were none)."""
        if self.failures == 0:
            return 0.0
        exponent = min(self.failures - 1, 30)
        return min(self._first * 2.0**exponent, self._ceiling) * (0.5 + self._jitter() / 2)

    def succeeded(self) -> None:
        self.failures = 0
