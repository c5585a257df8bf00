"""Distributed mode end to end: trigger, scheduler, two executors and notifier as separate OS
processes over a real Kafka broker and a real MongoDB-protocol server (FerretDB)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Target, free_port
from tests.e2e.test_crash_recovery import finished, workflow
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
RUNS = 40


@contextmanager
def service(name: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def cluster(tmp_path: Path, kafka: str, mongo: str, api_port: int) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    database = f"stepline_{os.getpid()}_{api_port}"
    common = {**os.environ, "STEPLINE_BUS_URL": f"kafka://{kafka}", "STEPLINE_STORE_URL": mongo,
              "STEPLINE_MONGO_DATABASE": database, "STEPLINE_PARTITIONS": "4",
              "STEPLINE_LEASE_SECONDS": "3", "STEPLINE_STALE_SECONDS": "2", "STEPLINE_SWEEP_INTERVAL_SECONDS": "0.5"}
    names = {"trigger": {"STEPLINE_PORT": str(api_port)}, "scheduler": {}, "executor-1": {"STEPLINE_INSTANCE_ID": "e1"},
             "executor-2": {"STEPLINE_INSTANCE_ID": "e2"}, "notifier": {}}
    with ExitStack() as stack:
        procs = {n: stack.enter_context(service(n.split("-")[0], {**common, **extra}, tmp_path / f"{n}.log"))
                 for n, extra in names.items()}
        yield procs


async def wait_api(client: httpx.AsyncClient, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for _ in range(600):
        dead = [n for n, p in procs.items() if p.poll() is not None]
        assert not dead, f"services exited during start-up: {dead}"
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the trigger API did not become ready")


async def test_separate_processes_run_workflows_to_completion(
        tmp_path: Path, target: Target, kafka_broker: KafkaBroker, mongo_url: str) -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        with cluster(tmp_path, kafka_broker.bootstrap, mongo_url, port) as procs:
            await wait_api(client, procs)
            assert (await client.post("/v1/workflows", json=workflow(target.base_url))).status_code == 201
            started = await asyncio.gather(*(client.post("/v1/workflows/crashy/runs", json={}) for _ in range(RUNS)))
            assert all(r.status_code in (201, 202) for r in started), [r.text for r in started if r.status_code >= 300]
            runs: list[dict[str, Any]] = [await finished(client, r.json()["workflowRun"]["identifier"]) for r in started]
    assert [r["result"] for r in runs] == ["SUCCESS"] * RUNS
    assert all(r["variables"]["outputs"]["c"] == 200 for r in runs)
    completions = [(r["identifier"], nr["node"]["identifier"]) for r in runs for nr in r["nodeRuns"]
                   if nr["status"] == "COMPLETED" and nr["result"] == "SUCCESS"]
    assert len(completions) == len(set(completions)) == RUNS * 4, "every node completed exactly once"
