"""The event loop every Stepline process runs on: uvloop where it is installed (a dependency on
Linux and macOS), else asyncio's own. `STEPLINE_EVENT_LOOP=asyncio` chooses asyncio's anyway (for
comparing the two, or to rule uvloop out when chasing a problem)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default) when it is not installed or not wanted."""
    if os.environ.get("STEPLINE_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
