"""`Server`: one development server process, started in its own process group and waited on until
it answers, then stopped, killed or restarted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devinfra.errors import InfraError
from devinfra.logs import LOG_TAIL_LINES, tail
from devinfra.ports import require_free_port, wait_port_free
from devinfra.processes import group_gone, pid_alive, process_start_ticks


@dataclass
class Server:
    """One running (or stopped) development server process in its own process group."""

    name: str
    url: str
    port: int
    argv: list[str]
    log_path: Path
    ready_timeout: float
    ready_check: Callable[[Server, int | None], bool] = field(repr=False)
    """Called with the log offset of this start while starting, with None for a plain probe."""
    cwd: Path | None = None
    env: dict[str, str] | None = field(default=None, repr=False)
    other_ports: tuple[int, ...] = ()
    """Further loopback ports the process listens on (Kafka's controller port)."""
    dependencies: tuple[Server, ...] = ()
    """Servers this one needs (FerretDB's PostgreSQL), started before it: `stop` stops them after it,
    `kill` and `restart` leave them running."""
    cleanup: Callable[[], None] | None = field(default=None, repr=False)
    """Called once the process stopped for good (by `stop`), e.g. to remove a temporary directory."""
    pid: int = 0
    start_ticks: int | None = None
    started_in: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- lifecycle

    def start(self) -> Server:
        """Spawn the process and wait until it answers; raises InfraError with the log's tail."""
        if self.running:
            raise InfraError(f"{self.name} is already running (pid {self.pid})")
        for port in (self.port, *self.other_ports):
            require_free_port(self.name, port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n---- devinfra: starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.cwd, env=self.env, start_new_session=True)
        self.pid = self._proc.pid
        self.start_ticks = process_start_ticks(self.pid)
        try:
            self._wait_ready(offset, began)
        except BaseException:
            self.kill()
            raise
        self.started_in = time.monotonic() - began
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within `timeout`; then the
        same for its dependencies."""
        try:
            self._terminate(timeout)
        finally:
            for dependency in reversed(self.dependencies):
                dependency.stop(timeout)
        if self.cleanup is not None:
            cleanup, self.cleanup = self.cleanup, None
            cleanup()

    def _terminate(self, timeout: float) -> None:
        if not self._signal(signal.SIGTERM):
            return
        if not self._wait_exit(timeout):
            self._signal(signal.SIGKILL)
            if not self._wait_exit(10.0):
                raise InfraError(f"{self.name} (pid {self.pid}) survived SIGKILL")

    def kill(self) -> None:
        """SIGKILL the process group at once (for fault tests) and reap it."""
        if self._signal(signal.SIGKILL):
            self._wait_exit(10.0)

    def restart(self, timeout: float = 20.0) -> Server:
        """Stop the server if it runs, then start it again on the same port and data directory (its
        dependencies keep running)."""
        self._terminate(timeout)
        for port in (self.port, *self.other_ports):
            wait_port_free(port, 10.0)
        return self.start()

    # -- state

    @property
    def running(self) -> bool:
        """True while the process exists (and is the one that was started, not a reused pid)."""
        if self.pid <= 0:
            return False
        if self._proc is not None:
            return self._proc.poll() is None
        return pid_alive(self.pid, self.start_ticks)

    def answers(self) -> bool:
        """One quick readiness probe, without waiting."""
        return self.running and self.ready_check(self, None)

    def log_tail(self, lines: int = LOG_TAIL_LINES, offset: int = 0) -> str:
        return tail(self.log_path, lines, offset)

    def to_record(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "start_ticks": self.start_ticks, "url": self.url,
                "port": self.port, "log": str(self.log_path)}

    # -- internals

    def _wait_ready(self, offset: int, began: float) -> None:
        deadline = began + self.ready_timeout
        while True:
            code = self._proc.poll() if self._proc is not None else None
            if code is not None:
                raise InfraError(f"{self.name} exited with code {code} while starting; "
                                 f"last lines of {self.log_path}:\n{self.log_tail(offset=offset)}",
                                 retryable=True)
            if self.ready_check(self, offset):
                return
            if time.monotonic() >= deadline:
                raise InfraError(f"{self.name} did not become ready within {self.ready_timeout:.0f} s; "
                                 f"last lines of {self.log_path}:\n{self.log_tail(offset=offset)}",
                                 retryable=True)
            time.sleep(0.2)

    def _signal(self, sig: signal.Signals) -> bool:
        """Signal the process group; False if there is nothing (of ours) left to signal."""
        if not self.running:
            self._reap()
            return False
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            self._reap()
            return False
        except PermissionError:
            os.kill(self.pid, sig)
        return True

    def _wait_exit(self, timeout: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return group_gone(self.pid, timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(self.pid, self.start_ticks):
                return group_gone(self.pid, max(0.0, deadline - time.monotonic()))
            time.sleep(0.1)
        return False

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(0.1)
