"""Distributed mode end to end: trigger, scheduler, two executors and notifier as separate OS
processes over a real Kafka broker and a real MongoDB-protocol server (FerretDB, on PostgreSQL when
it is installed), running 200 runs of the example workflows against a loopback target."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import key_in_store
from tests.conftest import Target, free_port
from tests.e2e import example_runs
from tests.e2e.test_crash_recovery import finished
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
RUNS = int(os.environ.get("STEPLINE_E2E_RUNS", "200"))
"""How many runs the scale test starts at once (STEPLINE_E2E_RUNS overrides it)."""


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


def database_of(api_port: int) -> str:
    return f"stepline_{os.getpid()}_{api_port}"


@contextmanager
def cluster(tmp_path: Path, kafka: str, mongo: str, api_port: int) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    database = database_of(api_port)
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


@pytest.mark.timeout(600)  # ~1 min on FerretDB+PostgreSQL; ~3.5 min on the SQLite fallback, whose scans grow with the data
async def test_separate_processes_run_the_examples_at_scale(
        tmp_path: Path, target: Target, kafka_broker: KafkaBroker, mongo_url: str) -> None:
    """RUNS runs of the five example workflows at once, every result and output checked, each executed
    node completed exactly once, none lost."""
    planned = example_runs.plan(RUNS, target.base_url)
    port = free_port()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        with cluster(tmp_path, kafka_broker.bootstrap, mongo_url, port) as procs:
            await wait_api(client, procs)
            client.headers.update(await key_in_store(mongo_url, database_of(port)))
            await example_runs.create_examples(client, target.base_url)
            began = time.monotonic()
            run_ids = await example_runs.start(client, planned)
            await example_runs.approve_all(client, target, planned, run_ids)
            runs: list[dict[str, Any]] = [await finished(client, run_id) for run_id in run_ids]
            seconds = time.monotonic() - began
            dead = {n: p.poll() for n, p in procs.items() if p.poll() is not None}
    assert not dead, f"services exited: {dead}"
    report = example_runs.verify(planned, runs)
    nodes = sum(len(p.executed) - 1 for p in planned)
    print(f"\n{RUNS} example runs, {nodes} executed nodes, in {seconds:.1f} s: started {report['started']} / "
          f"completed {report['completed']} / lost {report['lost']} / completed twice {report['completed_twice']}")
