"""A small pool of worker processes (worker.py) that evaluate jq off the event loop.

A worker is started on first need (fork/exec, about 60 ms until it answers) and reused. A request
is written to its stdin and the reply read from its stdout without blocking the loop (non-blocking
pipes and `add_reader`/`add_writer`), so the pool serves whichever loop calls it. A worker that
misses the deadline is SIGKILLed and dropped; one that dies (jq aborts when its address-space cap
is reached) is dropped too. Either is a `Breach`, and the next request starts a fresh worker.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from typing import Any, Literal

from libs.expressions.framing import READY, REPLY, request
from libs.expressions.limits import Limits

BreachKind = Literal["timeout", "memory"]
_START_SECONDS = 30.0


class Breach(Exception):
    """An evaluation missed the deadline or its worker ran out of memory."""

    def __init__(self, kind: BreachKind) -> None:
        super().__init__(kind)
        self.kind = kind


class Worker:
    def __init__(self, limits: Limits) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "libs.expressions.worker", str(limits.memory_bytes), str(limits.regex_input)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self.stdin, False)
        os.set_blocking(self.stdout, False)
        self.ready = False

    async def start(self) -> None:
        """Wait for the worker's READY byte (outside any deadline: start-up is not the expression's)."""
        if not self.ready:
            async with asyncio.timeout(_START_SECONDS):
                if await _read_exactly(asyncio.get_running_loop(), self.stdout, len(READY)) != READY:
                    raise EOFError
            self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def ask(self, payload: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        await _write_all(loop, self.stdin, payload)
        [size] = REPLY.unpack(await _read_exactly(loop, self.stdout, REPLY.size))
        return await _read_exactly(loop, self.stdout, size)

    def kill(self) -> None:
        """SIGKILL without waiting (the loop must not block): reaped by a later `reap`."""
        if self.alive():
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        if self.alive():
            _dying.append(self.proc)


_dying: list[subprocess.Popen[bytes]] = []


def reap() -> None:
    """Collect the exit status of killed workers that have ended."""
    _dying[:] = [proc for proc in _dying if proc.poll() is None]


async def _write_all(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await _ready(loop, fd, write=True)
        except BrokenPipeError:
            raise EOFError from None


async def _read_exactly(loop: asyncio.AbstractEventLoop, fd: int, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = os.read(fd, size - len(chunks))
        except BlockingIOError:
            await _ready(loop, fd, write=False)
            continue
        if not chunk:
            raise EOFError
        chunks += chunk
    return bytes(chunks)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


class Pool:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.idle: list[Worker] = []
        self.busy: dict[Worker, asyncio.AbstractEventLoop] = {}
        self.live = 0
        self.closed = False
        self.waiters: collections.deque[asyncio.Future[Worker | None]] = collections.deque()

    async def run(self, expressions: list[str], text: str) -> list[Any]:
        """`[[0, value] | [1, reason], ...]` for the expressions over the JSON `text`. `Breach` if
        the deadline passes or the worker dies; a cancelled call drops its worker too."""
        payload = request(json.dumps(expressions).encode(), text.encode())
        worker = await self._acquire()
        try:
            await worker.start()
        except BaseException as exc:
            self._release(worker, dead=True)
            if isinstance(exc, (EOFError, OSError, TimeoutError)):
                raise RuntimeError("an expression worker process did not start") from None
            raise
        try:
            async with asyncio.timeout(self.limits.timeout):
                reply = await worker.ask(payload)
        except BaseException as exc:
            self._release(worker, dead=True)
            if isinstance(exc, TimeoutError):
                raise Breach("timeout") from None
            if isinstance(exc, (EOFError, OSError)):
                raise Breach("memory") from None
            raise
        self._release(worker)
        result: list[Any] = json.loads(reply)
        return result

    async def _acquire(self) -> Worker:
        reap()
        self._reap_abandoned()
        while self.idle:
            worker = self.idle.pop()
            if worker.alive():
                return self._lend(worker)
            worker.kill()
            self.live -= 1
        if self.live < self.limits.workers:
            self.live += 1
            return self._spawn()
        return await self._wait()

    def _lend(self, worker: Worker) -> Worker:
        self.busy[worker] = asyncio.get_running_loop()
        return worker

    def _spawn(self) -> Worker:
        try:
            return self._lend(Worker(self.limits))
        except BaseException:
            self.live -= 1
            raise

    def _reap_abandoned(self) -> None:
        """Workers lent to a loop that was closed mid-call (a stopped test engine) are dropped."""
        for worker, loop in list(self.busy.items()):
            if loop.is_closed():
                del self.busy[worker]
                worker.kill()
                self.live -= 1

    async def _wait(self) -> Worker:
        waiter: asyncio.Future[Worker | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._handover(waiter.result())  # handed over just as we were cancelled: pass it on
            raise
        return self._lend(handed) if handed is not None else self._spawn()

    def _release(self, worker: Worker, *, dead: bool = False) -> None:
        self.busy.pop(worker, None)
        if dead or self.closed:
            worker.kill()
        self._handover(None if dead or self.closed else worker)

    def _handover(self, worker: Worker | None) -> None:
        """Give `worker` (or, when None, the slot of a dropped worker) to the next waiter."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(worker)
                return
        if worker is not None:
            self.idle.append(worker)
        else:
            self.live -= 1

    def close(self) -> None:
        """Stop the idle workers now and busy ones when their call ends (a service stopping: here
        waiting for the killed processes, milliseconds, is fine)."""
        self.closed = True
        for worker in self.idle:
            worker.kill()
        self.live -= len(self.idle)
        self.idle.clear()
        for proc in list(_dying):
            proc.wait()
        reap()
