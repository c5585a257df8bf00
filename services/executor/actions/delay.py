"""DELAY: decide when the node resumes. The scheduler keeps the wait durably as a stored timer.

`seconds` (a number, or a numeric string after rendering) or `until` (ISO 8601). A due time in the
past, or zero seconds, completes at once with `{waitedUntil}`; otherwise the node waits with output
`{resumeAt}` and the scheduler's `delay` timer completes it SUCCESS with `{waitedUntil}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from libs.core.errors import ActionError
from libs.core.instants import parse_instant, to_iso
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.values import describe


class DelayAction:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    async def execute(self, data: ActionInput) -> ActionResult:
        now = self.clock()
        due = _until(data.config["until"]) if "until" in data.config else now + _seconds(data.config.get("seconds"))
        try:
            when = to_iso(due)
        except (OverflowError, OSError, ValueError):
            raise ActionError(f"the delay ends at a time no calendar holds ({due:g}s after the epoch)") from None
        if due <= now:
            return ActionResult(output={"waitedUntil": when})
        return ActionResult(output={"resumeAt": when}, waiting=True)


def _until(value: object) -> float:
    if not isinstance(value, str):
        raise ActionError(f"config.until must render to an ISO 8601 timestamp, got {describe(value)}")
    try:
        return parse_instant(value)
    except ValueError:
        raise ActionError(f"config.until {value[:80]!r} is not an ISO 8601 timestamp "
                          "(e.g. 2030-01-01T09:00:00Z)") from None


def _seconds(value: object) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ActionError(f"config.seconds must render to a number of seconds, got {describe(value)}")
    if number < 0:
        raise ActionError(f"config.seconds must not be negative, got {number:g}")
    return number
