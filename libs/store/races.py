"""Retrying a conditional write that lost a race, written once with one limit.

Every writer of shared state (runs with a `seq` guard, entries with a `rev` guard) reads, decides and
writes conditionally; when the write matches nothing another writer got there first, and the writer
reads again and decides again. `until_won` is that loop: `attempt` returns its result, or `LOST` when
its conditional write lost; after `MAX_RACES` lost attempts the state is changing too fast to win and
`ConcurrentUpdateError` (retryable: the message is redelivered later) is raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from libs.core.errors import ConcurrentUpdateError

MAX_RACES: Final = 50
T = TypeVar("T")


class Lost:
    """What an attempt returns when its conditional write matched nothing."""


LOST: Final = Lost()


async def until_won(attempt: Callable[[], Awaitable[T | Lost]], what: str) -> T:
    """`attempt()` until it does not return `LOST`; `what` names what kept changing."""
    for _ in range(MAX_RACES):
        outcome = await attempt()
        if not isinstance(outcome, Lost):
            return outcome
    raise ConcurrentUpdateError(f"{what} kept changing")
