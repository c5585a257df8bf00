"""When a SCHEDULE_TRIGGER fires: its config, its ticks, and what is due at a given time. Pure.

A schedule has exactly one of `cron` (five fields, or a macro such as `@daily`, read in `timezone`)
and `intervalSeconds` (ticks at the whole multiples of the interval since the Unix epoch, so every
replica computes the same ticks; `timezone` does not move them). Ticks are whole epoch seconds.

`due` decides one step of the lease loop: given the stored next tick and the time now, which tick
fires (if any) and which tick is next. Every tick from the stored one up to now is due; only the
latest of them can fire, so a late loop never fires a burst:
- the latest due tick is *on time* if it is at most `grace` seconds old, and then it fires;
- otherwise the ticks were missed (the trigger was down): `missedTicks: "skip"` fires nothing,
  `"once"` fires the latest of them, one run for all that were missed;
- either way the next tick is the first one after now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from libs.core import pointer as jp
from libs.core.errors import Issue

MissedTicks = Literal["skip", "once"]
CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None
    interval_seconds: int | None = None
    timezone: str = DEFAULT_TIMEZONE
    missed_ticks: MissedTicks = "skip"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Schedule:
        """The schedule of a SCHEDULE_TRIGGER config; ValueError if it is not a valid one."""
        found = schedule_issues(config)
        if found:
            raise ValueError("; ".join(f"{i.pointer or '/'}: {i.message}" for i in found))
        missed = config.get("missedTicks", "skip")
        return cls(cron=config.get("cron"), interval_seconds=config.get("intervalSeconds"),
                   timezone=config.get("timezone") or DEFAULT_TIMEZONE,
                   missed_ticks=cast(MissedTicks, missed))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Due:
    fire: int | None
    """The tick to start a run for now, or None."""
    next_tick: int
    """The first tick after now: what the lease stores next."""
    skipped: int
    """Due ticks that start no run (missed and skipped, or folded into the one that fires); at
    least this many (counting stops at `MAX_COUNTED`)."""


MAX_COUNTED = 1000


def schedule_issues(config: dict[str, Any], pointer: str = "") -> list[Issue]:
    """What JSON Schema cannot say about a SCHEDULE_TRIGGER config: the cron expression parses, the
    time zone exists. Pointers are under `pointer` (the config's)."""
    found: list[Issue] = []
    cron = config.get("cron")
    if isinstance(cron, str):
        reason = cron_error(cron)
        if reason is not None:
            found.append(Issue(jp.join(pointer, "cron"), f"config.cron {reason}"))
    zone = config.get("timezone")
    if isinstance(zone, str) and not is_valid_timezone(zone):
        found.append(Issue(jp.join(pointer, "timezone"),
                           f"config.timezone {zone!r} is not an IANA time zone name (such as Europe/Paris)"))
    if "cron" in config and "intervalSeconds" in config:
        found.append(Issue(pointer, "config needs exactly one of `cron` and `intervalSeconds`"))
    elif "cron" not in config and "intervalSeconds" not in config:
        found.append(Issue(pointer, "config needs exactly one of `cron` and `intervalSeconds`"))
    interval = config.get("intervalSeconds")
    if "intervalSeconds" in config and (not isinstance(interval, int) or isinstance(interval, bool) or interval < 1):
        found.append(Issue(jp.join(pointer, "intervalSeconds"), "config.intervalSeconds must be an integer >= 1"))
    if config.get("missedTicks", "skip") not in ("skip", "once"):
        found.append(Issue(jp.join(pointer, "missedTicks"), 'config.missedTicks must be one of "skip", "once"'))
    return found


def cron_error(expression: str) -> str | None:
    """Why `expression` is not a five-field cron expression (or macro), or None if it is one."""
    text = expression.strip()
    if text.startswith("@"):
        return None if text.lower() in CRON_MACROS else (
            f"{expression!r} is not a known macro ({', '.join(sorted(CRON_MACROS))})")
    fields = text.split()
    if len(fields) != 5:
        return (f"{expression!r} must have five fields (minute hour day-of-month month day-of-week), "
                f"not {len(fields)}")
    try:
        croniter(text)
    except (ValueError, KeyError, TypeError) as exc:  # croniter's own errors are ValueErrors
        return f"{expression!r} is not a valid cron expression: {exc}"
    return None


def is_valid_timezone(name: str) -> bool:
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def next_tick(schedule: Schedule, after: float) -> int:
    """The first tick strictly after `after`."""
    base = math.floor(after)
    if schedule.interval_seconds is not None:
        step = schedule.interval_seconds
        return (base // step + 1) * step
    return _cron_step(schedule, base, forward=True)


def latest_tick(schedule: Schedule, at: float) -> int:
    """The last tick at or before `at`."""
    base = math.floor(at)
    if schedule.interval_seconds is not None:
        step = schedule.interval_seconds
        return base // step * step
    return _cron_step(schedule, base + 1, forward=False)


def due(schedule: Schedule, stored_next: int, now: float, *, grace: float) -> Due | None:
    """What to do with a lease whose next tick is `stored_next`, at `now`: None while it is not due."""
    if now < stored_next:
        return None
    latest = max(latest_tick(schedule, now), stored_next)
    following = next_tick(schedule, now)
    due_count = _count(schedule, stored_next, latest)
    on_time = now - latest <= grace
    fire = latest if on_time or schedule.missed_ticks == "once" else None
    return Due(fire=fire, next_tick=following, skipped=due_count - (1 if fire is not None else 0))


def tick_iso(schedule: Schedule, tick: int) -> str:
    """The tick as ISO 8601 in the schedule's time zone (with its offset)."""
    return datetime.fromtimestamp(tick, schedule.zone).isoformat()


def _cron_step(schedule: Schedule, base: int, *, forward: bool) -> int:
    assert schedule.cron is not None
    start = datetime.fromtimestamp(base, schedule.zone)
    expression = schedule.cron.strip()
    it = croniter(expression.lower() if expression.startswith("@") else expression, start)
    value = it.get_next(float) if forward else it.get_prev(float)
    return int(value)


def _count(schedule: Schedule, first: int, last: int) -> int:
    """How many ticks lie in [first, last] (first is a tick), up to MAX_COUNTED."""
    if schedule.interval_seconds is not None:
        return min((last - first) // schedule.interval_seconds + 1, MAX_COUNTED)
    count, tick = 1, first
    while count < MAX_COUNTED:
        tick = next_tick(schedule, tick)
        if tick > last:
            break
        count += 1
    return count
