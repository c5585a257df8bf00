"""A worker process of the pool: `python -m libs.expressions.worker <memory bytes> <regex limit>`.

It reads requests from stdin and answers on stdout (framing.py). It dies with its parent
(PR_SET_PDEATHSIG), and its address space is capped at its idle size plus the memory limit, so an
expression that allocates too much makes jq abort this process, never the service. Any exception
here ends the process: the pool reports a breach and starts a new worker.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any, BinaryIO

from libs.core.errors import TemplateError
from libs.core.templates import Failure, regex_guard, run_text
from libs.expressions.framing import HEADER, MAX_REPLY, READY, REPLY

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the closed stdin still ends an idle worker


def cap_memory(extra: int) -> None:
    """Limit the address space to what the process uses now plus `extra` bytes. No core dump: jq
    aborts at the limit, and dumping hundreds of MiB would only delay the worker's end."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with open("/proc/self/status", encoding="ascii") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, size + extra))


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def encode(outcomes: list[Any]) -> bytes:
    pairs = [[1, o.reason] if isinstance(o, Failure) else [0, o] for o in outcomes]
    reply = json.dumps(pairs, separators=(",", ":"), ensure_ascii=False).encode()
    if len(reply) <= MAX_REPLY:
        return reply
    too_big = Failure(f"the result is larger than {MAX_REPLY // (1024 * 1024)} MiB of JSON")
    return encode([too_big] * len(outcomes))


def serve(stdin: BinaryIO, stdout: BinaryIO, prelude: str) -> None:
    while True:
        try:
            header = read_exactly(stdin, HEADER.size)
        except EOFError:
            return
        meta_size, text_size = HEADER.unpack(header)
        expressions = json.loads(read_exactly(stdin, meta_size))
        text = read_exactly(stdin, text_size).decode()
        try:
            outcomes = run_text(expressions, text, prelude)
        except TemplateError as exc:  # the pool compiles first, so only a broken prelude gets here
            outcomes = [Failure(exc.message)] * len(expressions)
        reply = encode(outcomes)
        stdout.write(REPLY.pack(len(reply)) + reply)
        stdout.flush()


def main(argv: list[str]) -> None:
    die_with_parent()
    memory, regex_limit = int(argv[1]), int(argv[2])
    prelude = regex_guard(regex_limit)
    run_text(["."], "null", prelude)  # warm up jq before the cap
    cap_memory(memory)
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer, prelude)
    except MemoryError:
        os._exit(3)


if __name__ == "__main__":
    main(sys.argv)
