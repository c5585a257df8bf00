"""The engine log lines of the attempt being performed, collected in memory and stored with its
completion (one write per attempt, not one per line; libs/core/engine_logs.py words them).

`collecting()` opens one attempt's collection in the current context; actions add to it through
`add` without knowing about it (bounded_http.py adds each request). Tasks an action starts (an
inline FOREACH) copy the context and so add to the same collection.
"""

from __future__ import annotations

import contextvars

from libs.core import engine_logs
from libs.core.run import LogEntry


class AttemptLog:
    __slots__ = ("lines", "dropped")

    def __init__(self) -> None:
        self.lines: list[LogEntry] = []
        self.dropped = 0

    def add(self, entry: LogEntry) -> None:
        if len(self.lines) < engine_logs.MAX_LINES_PER_ATTEMPT:
            self.lines.append(entry)
        else:
            self.dropped += 1

    def entries(self) -> list[LogEntry]:
        return engine_logs.kept(self.lines, self.dropped)


_current: contextvars.ContextVar[AttemptLog | None] = contextvars.ContextVar("stepline_attempt_log", default=None)


class collecting:  # noqa: N801 - used as a context manager, like a function
    """`with collecting() as log:` opens one attempt's collection in the current context (a class,
    not a generator: this runs once per attempt and costs a fifth as much)."""

    __slots__ = ("log", "token")

    def __init__(self) -> None:
        self.log = AttemptLog()
        self.token: contextvars.Token[AttemptLog | None] | None = None

    def __enter__(self) -> AttemptLog:
        self.token = _current.set(self.log)
        return self.log

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _current.reset(self.token)


def add(entry: LogEntry) -> None:
    """Add to the current attempt's lines (outside an attempt, e.g. the notifier: nothing)."""
    log = _current.get()
    if log is not None:
        log.add(entry)


def active() -> bool:
    return _current.get() is not None
