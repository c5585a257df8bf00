"""`stepline run`: start a run and, with `--wait`, follow it to completion with a line per node change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stepline.cli.client import ApiClient, ApiError, segment
from stepline.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from stepline.cli.render import Progress, final_line

POLL_WAIT_SECONDS = 1.0
"""How long each `GET ...?wait=` may be held by the server; bounds how late a progress line can be."""
MIN_POLL_INTERVAL = 0.2
"""Never poll faster than this, even if a server answers a `wait` request at once."""
NOT_FOUND_GRACE_SECONDS = 15.0
"""A run accepted with 202 may not be readable for a moment: tolerate 404 this long."""

Print = Callable[[str], None]


def start(client: ApiClient, workflow: str, inputs: dict[str, Any], *, version: int | None,
          tag: str | None) -> dict[str, Any]:
    """POST /v1/workflows/{id}/runs → the `workflowRun` (possibly only accepted, not yet inserted)."""
    body: dict[str, Any] = {"inputs": inputs}
    if version is not None:
        body["version"] = version
    if tag is not None:
        body["tag"] = tag
    answer = client.post(f"/v1/workflows/{segment(workflow)}/runs", body)
    run = answer.get("workflowRun")
    if not isinstance(run, dict) or not run.get("identifier"):
        raise CliError("the API accepted the run but did not say its identifier", exit_code=EXIT_FAILED)
    return run


def exit_code(run: dict[str, Any]) -> int:
    return EXIT_OK if run.get("result") == "SUCCESS" else EXIT_FAILED


class Follower:
    """Polls one run until it completes or `timeout` seconds pass."""

    def __init__(self, client: ApiClient, run_id: str, *, timeout: float | None, emit: Print,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.run_id = run_id
        self.emit = emit
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.deadline = None if timeout is None else self.started + timeout
        self.timeout = timeout
        self.progress = Progress()
        self.last: dict[str, Any] = {}

    def follow(self) -> int:
        while True:
            polled_at = self.clock()
            run = self._poll()
            if run is not None:
                self.last = run
                for line in self.progress.changes(run):
                    self.emit(line)
                if run.get("status") == "COMPLETED":
                    self.emit(final_line(run))
                    return exit_code(run)
            self._check_deadline()
            self._pace(polled_at)

    def _remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())

    def _poll(self) -> dict[str, Any] | None:
        remaining = self._remaining()
        wait = POLL_WAIT_SECONDS if remaining is None else round(min(POLL_WAIT_SECONDS, remaining), 3)
        try:
            answer = self.client.get(f"/v1/workflows/runs/{segment(self.run_id)}", params={"wait": str(wait)},
                                     wait=wait)
        except ApiError as exc:
            if exc.status == 404 and self.clock() - self.started < NOT_FOUND_GRACE_SECONDS:
                return None
            raise
        run = answer.get("workflowRun")
        return run if isinstance(run, dict) else None

    def _check_deadline(self) -> None:
        if self.deadline is not None and self.clock() >= self.deadline:
            status = self.last.get("status") or "not started"
            raise CliError(f"timed out after {self.timeout:g}s waiting for run {self.run_id} (still {status}); "
                           f"it goes on: see `stepline show {self.run_id}`", exit_code=EXIT_TIMEOUT)

    def _pace(self, polled_at: float) -> None:
        pause = MIN_POLL_INTERVAL - (self.clock() - polled_at)
        remaining = self._remaining()
        if remaining is not None:
            pause = min(pause, remaining)
        if pause > 0:
            self.sleep(pause)
