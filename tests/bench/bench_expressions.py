"""Per-evaluation cost of user jq: in-process (unbounded, as before issue 9), the bounded in-process
fast path, and a worker of the pool. `python tests/bench/bench_expressions.py`."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from libs.core import templates
from libs.expressions import evaluate as expressions

SMALL: dict[str, Any] = {"inputs": {"n": 3}, "outputs": {"trigger": {"service": "payments", "replicas": 3}},
                         "run": {"id": "wfr_x", "workflow": "w", "version": 1}}
LARGE: dict[str, Any] = {**SMALL, "outputs": {f"n{i}": {"items": list(range(50)), "name": f"node {i}"} for i in range(100)}}
CASES = [
    ("path", ".outputs.trigger.service", SMALL),
    ("object", "{step: 1, n: .inputs.n}", SMALL),
    ("iteration (worker)", "[.outputs[] | .replicas? // empty] | length", SMALL),
    ("object, 20 KiB context (in-process)", "{step: 1, n: .inputs.n}", LARGE),
    ("iteration, 20 KiB context (worker)", "[.outputs[] | .name? // empty] | length", LARGE),
]


def timed(run: Callable[[], Any], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e6


async def atimed(run: Callable[[], Awaitable[Any]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e6


async def main(rounds: int = 2000) -> None:
    print(f"{'expression':40} {'unbounded µs':>13} {'bounded µs':>11}  path")
    for name, expression, context in CASES:
        await expressions.evaluate(expression, context, at="/bench")  # start a worker, fill caches
        before = timed(partial(templates.evaluate, expression, context), rounds)
        after = await atimed(partial(expressions.evaluate, expression, context, at="/bench"), rounds)
        path = "in-process" if "worker" not in name else "worker"
        print(f"{name:40} {before:13.1f} {after:11.1f}  {path}")
    expressions.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
