"""`make bench`: embedded-mode throughput and dispatch latency.

Drives the in-process engine (SQLite on a temp dir, in-memory bus) with a closed loop of concurrent
runs started by publishing StartRun, and reads timings back from the store:
- runs/s and node completions/s over the wall time of the whole batch;
- dispatch latency: from a node run's creation by the scheduler (just before ExecuteNode is
  published) to the executor's claim, p50 and p99 over every executed node.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from libs.contracts import topics, v1, wrap
from libs.contracts.envelope import Envelope
from libs.core.run import TriggerInfo, new_run_id
from libs.core.versioning import WorkflowRecord
from libs.runtime import event_loop, heap
from stepline.embedded import Engine
from stepline.settings import EmbeddedSettings

TRIGGER = {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}}


def chain(n: int) -> dict[str, Any]:
    nodes = [TRIGGER] + [{"identifier": f"t{i}", "config": {"type": "TRANSFORM", "expression": f"{{step: {i}, n: .inputs.n}}"}}
                         for i in range(n)]
    ids = [x["identifier"] for x in nodes]
    return {"identifier": f"chain-{n}", "nodes": nodes,
            "connections": [{"sourceIdentifier": a, "targetIdentifier": b} for a, b in pairwise(ids)]}


def fan(n: int) -> dict[str, Any]:
    branches = [{"identifier": f"b{i}", "config": {"type": "TRANSFORM", "expression": f"{{branch: {i}}}"}} for i in range(n)]
    join = {"identifier": "join", "config": {"type": "TRANSFORM", "expression": "[.outputs[] | .branch? // empty] | length"}}
    conns = [{"sourceIdentifier": "trigger", "targetIdentifier": b["identifier"]} for b in branches]
    conns += [{"sourceIdentifier": b["identifier"], "targetIdentifier": "join"} for b in branches]
    return {"identifier": f"fan-{n}", "nodes": [TRIGGER, *branches, join], "connections": conns}


async def bench(engine: Engine, definition: dict[str, Any], runs: int, concurrency: int,
                others: int = 0) -> dict[str, Any]:
    """`engine` is not started yet: the benchmark's event subscription must precede `start()`.
    `others`: how many other workflows (each a copy of `definition`) are stored beside it."""
    done: asyncio.Queue[str] = asyncio.Queue()
    results: dict[str, str] = {}

    async def on_event(env: Envelope) -> None:
        msg = env.message()
        if isinstance(msg, v1.RunCompleted) and msg.workflow == definition["identifier"]:
            results[msg.run_id] = msg.result
            done.put_nowait(msg.run_id)

    engine.bus.subscribe(topics.RUN_EVENTS, f"bench-{definition['identifier']}", on_event)
    await engine.start()
    heap.settle()  # as `stepline up` does once it has started (libs/runtime/heap.py)
    now = time.time()
    for identifier in [*(f"other-{i}" for i in range(others)), definition["identifier"]]:
        record = WorkflowRecord(identifier=identifier, created_at=now, updated_at=now)
        await engine.store.create_workflow(record, {**definition, "identifier": identifier})
    ids: list[str] = []

    async def start_one() -> None:
        run_id = new_run_id()
        ids.append(run_id)
        msg = v1.StartRun(run_id=run_id, workflow=definition["identifier"], version=1,
                          trigger=TriggerInfo(type="API", at=time.time(), node="trigger"), inputs={"n": len(ids)})
        await engine.bus.publish(topics.RUN_COMMANDS, wrap(msg, source="bench"))

    t0 = time.perf_counter()
    for _ in range(min(concurrency, runs)):
        await start_one()
    for _ in range(runs):
        await done.get()
        if len(ids) < runs:
            await start_one()
    elapsed = time.perf_counter() - t0
    return await summarise(engine, definition["identifier"], ids, results, elapsed)


async def summarise(engine: Engine, name: str, ids: list[str], results: dict[str, str], elapsed: float) -> dict[str, Any]:
    latencies: list[float] = []
    completed = 0
    for run_id in ids:
        for nr in await engine.store.list_node_runs(run_id):
            if nr.node_id == "trigger":
                continue
            completed += nr.status == "COMPLETED"
            if nr.started_at is not None:
                latencies.append((nr.started_at - nr.created_at) * 1000)
    latencies.sort()
    return {"workflow": name, "in_flight": 0, "runs": len(ids), "ok": sum(r == "SUCCESS" for r in results.values()),
            "seconds": elapsed, "runs_per_s": len(ids) / elapsed, "nodes_per_s": completed / elapsed,
            "p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99) - 1]}


async def main(runs: int, levels: list[int]) -> None:
    rows = []
    for concurrency in levels:
        for definition in (chain(10), fan(20)):
            with tempfile.TemporaryDirectory() as tmp:
                engine = Engine(EmbeddedSettings(data_dir=Path(tmp), stale_seconds=30))
                try:
                    row = await bench(engine, definition, runs, concurrency)
                finally:
                    await engine.stop()
                rows.append({**row, "in_flight": concurrency})
    print(f"\nEmbedded mode — {runs} runs per row, SQLite + in-memory bus, one process\n")
    print(f"{'workflow':<10} {'in flight':>9} {'runs':>5} {'ok':>5} {'seconds':>8} {'runs/s':>8} {'nodes/s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7}")
    for r in rows:
        print(f"{r['workflow']:<10} {r['in_flight']:>9} {r['runs']:>5} {r['ok']:>5} {r['seconds']:>8.2f} {r['runs_per_s']:>8.1f} "
              f"{r['nodes_per_s']:>8.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}")
    print("\nnodes/s: node completions per second (trigger nodes excluded); p50/p99: dispatch latency, "
          "node run created → claimed by the executor.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[32, 4],
                        help="runs kept in flight (closed loop); one table row per value and workflow")
    args = parser.parse_args()
    event_loop.run(main(args.runs, args.in_flight))
