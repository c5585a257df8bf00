"""`make bench`: the engine's own overhead per AI call, everything but the model's time.

An embedded engine runs a workflow of one AI node (PII guardrail on, an `outputSchema` answer
validated) against the scripted OpenAI-compatible server of the tests (tests/service/scripted_model.py)
on loopback, which answers at once. The model's time is measured apart: the same request posted
straight to the server through the engine's guarded HTTP client. Per AI call:
- in the executor: node run started → completed (render, guardrails, key read, the call, parsing,
  validation, logs, the completion write) minus the model's round trip;
- end to end: node run created (the scheduler dispatches it) → completed, minus the model's round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from libs.contracts import topics, v1, wrap  # noqa: E402
from libs.contracts.envelope import Envelope  # noqa: E402
from libs.core.run import TriggerInfo, new_run_id  # noqa: E402
from libs.core.versioning import WorkflowRecord  # noqa: E402
from libs.runtime import event_loop  # noqa: E402
from libs.runtime.egress import guarded_client  # noqa: E402
from stepline.embedded import Engine  # noqa: E402
from stepline.settings import EmbeddedSettings  # noqa: E402
from tests.service.scripted_model import Answer, ScriptedModel, scripted_model  # noqa: E402

SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
WORKFLOW = {
    "identifier": "bench-ai",
    "nodes": [{"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
              {"identifier": "ask", "config": {
                  "type": "AI", "systemPrompt": "You summarise.", "outputSchema": SCHEMA,
                  "userPrompt": "Run {{ .run.id }} for ops@example.com: summarise the incident {{ .inputs.n }}",
                  "guardrails": {"pii": {"action": "redact"}}}}],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "ask"}],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


async def model_round_trips(model: ScriptedModel, settings: EmbeddedSettings, calls: int) -> list[float]:
    """Milliseconds per request posted straight to the scripted server (the model's time)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}
    times = []
    async with guarded_client(settings.egress_policy()) as client:
        for _ in range(calls):
            t0 = time.perf_counter()
            answer = await client.post(f"{model.openai_url}/chat/completions", json=body)
            answer.raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    model.requests.clear()
    return times


async def run_batch(engine: Engine, runs: int, in_flight: int) -> tuple[list[str], float]:
    done: asyncio.Queue[str] = asyncio.Queue()

    async def on_event(env: Envelope) -> None:
        msg = env.message()
        if isinstance(msg, v1.RunCompleted) and msg.workflow == WORKFLOW["identifier"]:
            done.put_nowait(msg.run_id)

    engine.bus.subscribe(topics.RUN_EVENTS, f"bench-ai-{in_flight}", on_event)
    ids: list[str] = []

    async def start_one() -> None:
        ids.append(new_run_id())
        msg = v1.StartRun(run_id=ids[-1], workflow=str(WORKFLOW["identifier"]), version=1,
                          trigger=TriggerInfo(type="API", at=time.time(), node="trigger"), inputs={"n": len(ids)})
        await engine.bus.publish(topics.RUN_COMMANDS, wrap(msg, source="bench"))

    t0 = time.perf_counter()
    for _ in range(min(in_flight, runs)):
        await start_one()
    for _ in range(runs):
        await done.get()
        if len(ids) < runs:
            await start_one()
    return ids, time.perf_counter() - t0


async def node_times(engine: Engine, ids: list[str]) -> tuple[list[float], list[float], int]:
    """(started → completed, created → completed) in ms of each AI node run, and how many succeeded."""
    inside, whole, ok = [], [], 0
    for run_id in ids:
        for nr in await engine.store.list_node_runs(run_id):
            if nr.node_id == "ask" and nr.started_at is not None and nr.completed_at is not None:
                inside.append((nr.completed_at - nr.started_at) * 1000)
                whole.append((nr.completed_at - nr.created_at) * 1000)
                ok += nr.result == "SUCCESS"
    return inside, whole, ok


async def bench(runs: int, in_flight: int) -> dict[str, Any]:
    async with scripted_model() as model:
        model.default = Answer('{"summary": "fine"}', input_tokens=30, output_tokens=8)
        with tempfile.TemporaryDirectory() as tmp:
            settings = EmbeddedSettings(data_dir=Path(tmp), stale_seconds=30, ai_providers=[
                {"name": "scripted", "kind": "openai", "baseUrl": model.openai_url, "model": "scripted"}])
            engine = Engine(settings)
            await engine.start()
            try:
                now = time.time()
                await engine.store.create_workflow(WorkflowRecord(identifier="bench-ai", created_at=now, updated_at=now),
                                                   WORKFLOW)
                model_ms = statistics.median(await model_round_trips(model, settings, 200))
                ids, elapsed = await run_batch(engine, runs, in_flight)
                inside, whole, ok = await node_times(engine, ids)
            finally:
                await engine.stop()
    return {"in_flight": in_flight, "runs": runs, "ok": ok, "calls_per_s": runs / elapsed, "model_ms": model_ms,
            "inside_p50": statistics.median(inside) - model_ms, "inside_p99": percentile(inside, 0.99) - model_ms,
            "whole_p50": statistics.median(whole) - model_ms, "whole_p99": percentile(whole, 0.99) - model_ms}


async def main(runs: int, levels: list[int]) -> None:
    rows = [await bench(runs, level) for level in levels]
    print(f"\nAI steps — engine overhead per AI call (model time subtracted), {runs} runs per row, embedded mode\n")
    print(f"{'in flight':>9} {'runs':>5} {'ok':>5} {'calls/s':>8} {'model ms':>9} {'exec p50':>9} {'exec p99':>9} "
          f"{'e2e p50':>8} {'e2e p99':>8}")
    for r in rows:
        print(f"{r['in_flight']:>9} {r['runs']:>5} {r['ok']:>5} {r['calls_per_s']:>8.1f} {r['model_ms']:>9.2f} "
              f"{r['inside_p50']:>9.2f} {r['inside_p99']:>9.2f} {r['whole_p50']:>8.2f} {r['whole_p99']:>8.2f}")
    print("\nmodel ms: p50 round trip of the same request posted straight to the scripted server; exec: AI node run "
          "started → completed, e2e: created → completed, each minus the model ms (milliseconds).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8],
                        help="runs kept in flight (closed loop); one row per value")
    args = parser.parse_args()
    event_loop.run(main(args.runs, args.in_flight))
