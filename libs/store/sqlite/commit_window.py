"""Group commit for `SqliteStore`: the statements of a short window share one transaction.

Committing costs more than most of the engine's statements themselves (a WAL append and a lock per
commit), so with a window of `seconds` > 0 the first statement opens a transaction (`BEGIN
IMMEDIATE`) and a timer commits it `seconds` later; the connection's own statements see every
write at once, other connections when it commits. What must not leave the process before it is
durable waits for `flush()`: the API flushes before every answer (services/trigger/durable_answers.py).

A crash loses at most the window's uncommitted writes, which no answer has reported: the engine
repairs them as it repairs any crash (the store is the truth; the sweeper re-drives stale runs). So
does a batch that SQLite rolls back on an error (SQLITE_FULL, SQLITE_IOERR, a ROLLBACK raised by
the statement): `lost` tells, and the statement's caller gets the error. With `seconds == 0` every
statement commits by itself (autocommit), as the services do.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

from libs.telemetry import metrics

log = logging.getLogger("stepline.store")

COMMIT = ("sqlite", "COMMIT", "?")
"""The `STORE_CALLS` labels of a window's commit."""


class CommitWindow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, db: sqlite3.Connection) -> bool:
        """Before a statement: open a batch if none is open. True when one was open already."""
        if db.in_transaction or not self.seconds:
            return db.in_transaction
        db.execute("BEGIN IMMEDIATE")
        self._arm(db)
        return False

    def lost(self, db: sqlite3.Connection, was_open: bool, error: sqlite3.Error) -> bool:
        """After a statement failed: True (and logged) when SQLite rolled the whole batch back."""
        if not was_open or db.in_transaction:
            return False
        self._cancel()
        log.error("SQLite rolled back the engine's writes of the last %.0f ms (%s): they are repaired as "
                  "after a crash", self.seconds * 1000, type(error).__name__)
        return True

    def flush(self, db: sqlite3.Connection) -> None:
        """Commit the open batch now (none open: nothing). Raises what COMMIT raises, after `lost`
        when the batch is gone; one that COMMIT leaves open (SQLITE_BUSY) the timer tries again."""
        if not db.in_transaction:
            return
        self._cancel()
        started = time.perf_counter()
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.lost(db, True, exc)
            raise
        finally:
            metrics.STORE_CALLS.observe(COMMIT, time.perf_counter() - started)
            if db.in_transaction and self.seconds:
                self._arm(db)

    def _commit_later(self, db: sqlite3.Connection) -> None:
        self._timer = None
        try:
            self.flush(db)
        except sqlite3.Error as exc:
            if db.in_transaction:
                log.warning("SQLite could not commit the engine's writes yet (%s): trying again", type(exc).__name__)

    def _arm(self, db: sqlite3.Connection) -> None:
        """Commit the open batch once the window has passed."""
        self._timer = asyncio.get_running_loop().call_later(self.seconds, self._commit_later, db)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
