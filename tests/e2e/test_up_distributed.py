"""`stepline up --distributed` serves the embedded API over Kafka and a MongoDB-protocol store, with the
services as child processes, and stops them all on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.auth_helpers import bearer, key_of
from tests.conftest import Target, free_port
from tests.e2e.test_crash_recovery import finished, wait_ready, workflow
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]


async def test_up_distributed_runs_a_workflow_and_stops_cleanly(
        tmp_path: Path, target: Target, kafka_broker: KafkaBroker, mongo_url: str) -> None:
    port = free_port()
    env = {**os.environ, "STEPLINE_MONGO_DATABASE": f"up_{port}"}
    with (tmp_path / "up.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stepline", "up", "--distributed", "--port", str(port),
                                 "--data-dir", str(tmp_path / "data"), "--kafka", kafka_broker.bootstrap,
                                 "--mongo", mongo_url], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_ready(client, proc)
            client.headers.update(bearer(key_of(tmp_path / "data")))
            assert (await client.post("/v1/workflows", json=workflow(target.base_url))).status_code == 201
            started = await client.post("/v1/workflows/crashy/runs", json={})
            run = await finished(client, started.json()["workflowRun"]["identifier"])
        assert run["result"] == "SUCCESS"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = sorted(p.name for p in (tmp_path / "data" / "logs").glob("*.log"))
    assert logs == ["executor-1.log", "executor-2.log", "notifier.log", "scheduler.log", "trigger.log"]
