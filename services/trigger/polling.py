"""The trigger workers' periodic passes (schedules, queue topics, entity timers): one loop rule."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from libs.core.errors import BusError

log = logging.getLogger("stepline.trigger")


async def every(seconds: float, one_pass: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `one_pass` every `seconds` until cancelled; a pass that fails is logged (a bus failure as a
    warning, anything else with its traceback) and the next one retries."""
    while True:
        try:
            await one_pass()
        except asyncio.CancelledError:
            raise
        except BusError as exc:
            log.warning("%s failed (%s); retrying", what, exc)
        except Exception:
            log.exception("%s failed; retrying", what)
        await asyncio.sleep(seconds)
