"""SIGKILL the embedded engine in the middle of 50 runs, start it again on the same data directory:
every run completes and no node run is completed twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import bearer, key_of
from tests.conftest import Target, free_port

pytestmark = pytest.mark.e2e
RUNS = 50


@contextmanager
def engine_process(data_dir: Path, port: int, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`stepline up` on `port` (with more CLI `args`), stopped with SIGTERM at the end."""
    env = {**os.environ, "STEPLINE_LEASE_SECONDS": "2", "STEPLINE_STALE_SECONDS": "1",
           "STEPLINE_SWEEP_INTERVAL_SECONDS": "0.2"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stepline", "up", "--port", str(port),
                                 "--data-dir", str(data_dir), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        assert proc.poll() is None, "the engine exited during start-up"
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the engine did not become ready")


def workflow(base_url: str) -> dict[str, Any]:
    def hook(ident: str) -> dict[str, Any]:
        return {"identifier": ident, "config": {"type": "WEBHOOK", "url": f"{base_url}/slow/20/{ident}",
                                                "body": {"run": "{{ .run.id }}"}}}
    nodes = [{"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
             hook("a"), hook("b"),
             {"identifier": "c", "config": {"type": "TRANSFORM", "expression": ".outputs.b.response.status"}}]
    ids = [n["identifier"] for n in nodes]
    return {"identifier": "crashy", "nodes": nodes,
            "connections": [{"sourceIdentifier": x, "targetIdentifier": y} for x, y in pairwise(ids)]}


async def test_sigkill_in_the_middle_then_restart(tmp_path: Path, target: Target) -> None:
    port = free_port()
    data, log = tmp_path / "data", tmp_path / "engine.log"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        with engine_process(data, port, log) as first:
            await wait_ready(client, first)
            client.headers.update(bearer(key_of(data)))  # the owner key the engine wrote on first start
            assert (await client.post("/v1/workflows", json=workflow(target.base_url))).status_code == 201
            started = await asyncio.gather(*(client.post("/v1/workflows/crashy/runs", json={}) for _ in range(RUNS)))
            assert all(r.status_code == 201 for r in started)
            await target.wait_for("/slow/20/a", count=RUNS // 2)
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed_at = {p: target.hits[p] for p in ("/slow/20/a", "/slow/20/b")}
        assert killed_at["/slow/20/b"] < RUNS, "the kill must land before the runs finished"
        with engine_process(data, port, log) as second:
            await wait_ready(client, second)
            runs = [await finished(client, r.json()["workflowRun"]["identifier"]) for r in started]
    report = crash_report(runs, target)
    print(f"\ncrash test: {report}")
    assert (report["started"], report["completed"], report["lost"], report["completed_twice"]) == (RUNS, RUNS, 0, 0)
    assert all(r["result"] == "SUCCESS" for r in runs)


async def finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(30):
        run: dict[str, Any] = (await client.get(f"/v1/workflows/runs/{run_id}", params={"wait": 5})).json()["workflowRun"]
        if run["status"] == "COMPLETED":
            return run
    return run


def crash_report(runs: list[dict[str, Any]], target: Target) -> dict[str, int]:
    completions: Counter[tuple[str, str]] = Counter()
    for run in runs:
        for nr in run["nodeRuns"]:
            if nr["status"] == "COMPLETED" and nr["result"] == "SUCCESS":
                completions[(run["identifier"], nr["node"]["identifier"])] += 1
    keys = Counter(r["headers"]["idempotency-key"] for r in target.requests)
    return {"started": len(runs), "completed": sum(r["status"] == "COMPLETED" for r in runs),
            "lost": sum(r["status"] != "COMPLETED" for r in runs),
            "completed_twice": sum(1 for n in completions.values() if n > 1),
            "nodes_completed": len(completions),
            "actions_resent_with_same_key": sum(1 for n in keys.values() if n > 1)}


async def test_sigterm_finishes_in_flight_work(tmp_path: Path, target: Target) -> None:
    """A graceful stop lets the running action finish and records its completion, so after a
    restart the run completes without performing that action again."""
    port = free_port()
    data, log = tmp_path / "data", tmp_path / "engine.log"
    slow = {"identifier": "graceful", "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        {"identifier": "slow", "config": {"type": "WEBHOOK", "url": f"{target.base_url}/slow/800/work"}},
        {"identifier": "after", "config": {"type": "NOOP"}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "slow"},
                        {"sourceIdentifier": "slow", "targetIdentifier": "after"}]}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        with engine_process(data, port, log) as first:
            await wait_ready(client, first)
            client.headers.update(bearer(key_of(data)))  # the owner key the engine wrote on first start
            assert (await client.post("/v1/workflows", json=slow)).status_code == 201
            run_id = (await client.post("/v1/workflows/graceful/runs", json={})).json()["workflowRun"]["identifier"]
            await target.wait_for("/slow/800/work")
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 30) == 0
        with engine_process(data, port, log) as second:
            await wait_ready(client, second)
            run = await finished(client, run_id)
    assert run["result"] == "SUCCESS"
    assert target.hits["/slow/800/work"] == 1, "the in-flight action completed once and was not re-sent"
