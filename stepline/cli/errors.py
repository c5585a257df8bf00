"""The CLI's one error type: what went wrong, in words a user can act on, and the exit code."""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
"""The run finished FAILED or CANCELLED, or the server failed (5xx)."""
EXIT_USAGE = 2
"""The user's input is wrong: a file, a flag, a definition, a request the server refused (4xx)."""
EXIT_TIMEOUT = 3
"""`run --wait --timeout` elapsed before the run completed."""


class CliError(Exception):
    """A problem to report as `stepline: error: <message>` (plus `lines`, one per issue) with no traceback."""

    def __init__(self, message: str, *, lines: Sequence[str] = (), exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.lines = list(lines)
        self.exit_code = exit_code
