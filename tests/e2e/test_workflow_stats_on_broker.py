"""Workflow metrics in distributed mode come from the notifier's faust app (services/notifier/stats.py):
the services run as OS processes over the real broker and FerretDB, 200 runs of one workflow end
SUCCESS, FAILED or CANCELLED, and the notifier is SIGKILLed after the first 100 and replaced. Before
them, the events of 3,000 runs of another workflow arrive at once: the fold catches up with them in
batches.

The metrics the distributed API answers (from the fold) equal those embedded mode computes from the
stored runs of the very same 200 runs (`services/trigger/workflow_metrics.py: workflow_metrics`, the
embedded engine's code path, on the cluster's store): the replacement resumed from the table's
changelog without counting any run twice. Every `stepline.workflow-stats.v1` message read matches
docs/asyncapi.yaml."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from libs.contracts import topics
from libs.core.instants import to_iso
from libs.core.run_metrics import Window
from libs.core.workspaces import DEFAULT_WORKSPACE
from libs.runtime.adapters import build_store
from libs.runtime.settings import CommonSettings
from services.trigger.workflow_metrics import workflow_metrics
from tests.conftest import Target
from tests.e2e.test_distributed_faults import Cluster, await_finished, new_id, running
from tests.infra_fixtures import KafkaBroker
from tests.service.test_run_events import validators

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
OUTCOMES = ["ok"] * 50 + ["fail"] * 25 + ["wait"] * 25
"""One half of the runs: each half ends 50 SUCCESS, 25 FAILED, 25 CANCELLED."""
HISTORY_RUNS = 3000
"""Runs of a workflow whose events arrive at once, as the history a new statistics app reads first."""


def mixed(base: str) -> dict[str, Any]:
    """A run's input `outcome` picks its end: a NOOP, a webhook answering 500, or an asynchronous
    webhook that waits until the run is cancelled."""
    return {"nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
            "properties": {"outcome": {"type": "string"}}}}},
        {"identifier": "route", "config": {"type": "CONDITION", "options": [
            {"identifier": "fail", "expression": '.outputs.trigger.outcome == "fail"'},
            {"identifier": "wait", "expression": '.outputs.trigger.outcome == "wait"'}]}},
        {"identifier": "ok", "config": {"type": "NOOP"}},
        {"identifier": "boom", "config": {"type": "WEBHOOK", "url": f"{base}/status/500"}},
        {"identifier": "hold", "config": {"type": "WEBHOOK", "url": f"{base}/async/h", "synchronized": False}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "route"},
                        {"sourceIdentifier": "route", "targetIdentifier": "boom", "sourceOptionIdentifier": "fail"},
                        {"sourceIdentifier": "route", "targetIdentifier": "hold", "sourceOptionIdentifier": "wait"},
                        {"sourceIdentifier": "route", "targetIdentifier": "ok", "fallback": True}]}


class Dashboard:
    """A reader of `stepline.workflow-stats.v1` for one workflow: the latest statistics per hour."""

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.latest: dict[str, tuple[int, dict[str, Any]]] = {}
        self.messages: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()

    async def on(self, message: dict[str, Any]) -> None:
        if message.get("subject") != self.workflow:
            return  # other tests' workflows share the topic
        self.messages.append(message)
        bucket, state = message["id"].rsplit("/", 1)
        if int(state) >= self.latest.get(bucket, (0, {}))[0]:
            async with self.changed:
                self.latest[bucket] = (int(state), message["data"])
                self.changed.notify_all()

    def sums(self) -> tuple[int, int]:
        """(completed runs, runs in progress) over every hour."""
        data = [d for _, d in self.latest.values()]
        return sum(d["succeeded"] + d["failed"] + d["cancelled"] for d in data), sum(d["inProgress"] for d in data)

    async def until_completed(self, count: int, within: float = 120.0) -> None:
        try:
            async with self.changed:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.sums() == (count, 0)), within)
        except TimeoutError:
            raise AssertionError(f"the statistics show (completed, in progress) {self.sums()}, "
                                 f"not ({count}, 0)") from None


async def burst(bootstrap: str, workflow: str, runs: int) -> None:
    """Publish the run events of `runs` runs of `workflow` at once (each started and completed,
    SUCCESS after 40 ms), as the scheduler would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for i in range(runs):
            run_id, data = f"{workflow}-r{i}", {"workflow": workflow, "workspace": DEFAULT_WORKSPACE}
            for seq, kind, ending in ((1, "run.started", {}), (3, "run.completed", {"result": "SUCCESS", "durationMs": 40})):
                event = {"id": f"{run_id}/{seq}", "type": kind, "data": {
                    **data, "runId": run_id, "seq": seq, "at": to_iso(time.time()), **ending}}
                await producer.send(topics.RUN_EVENTS, json.dumps(event).encode(), key=run_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


@asynccontextmanager
async def reading(bootstrap: str, *dashboards: Dashboard) -> AsyncIterator[None]:
    consumer = AIOKafkaConsumer(topics.WORKFLOW_STATS, bootstrap_servers=bootstrap, group_id=new_id("stats"),
                                auto_offset_reset="earliest", metadata_max_age_ms=1000)
    await consumer.start()

    async def follow() -> None:
        async for record in consumer:
            for dashboard in dashboards:
                await dashboard.on(json.loads(record.value))

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def half(client: httpx.AsyncClient, c: Cluster, workflow: str) -> list[dict[str, Any]]:
    """Start the runs of OUTCOMES (25 at a time), cancel the waiting ones, and wait until all completed."""
    started: list[httpx.Response] = []
    for batch in range(0, len(OUTCOMES), 25):
        started += await asyncio.gather(*(client.post(f"/v1/workflows/{workflow}/runs", json={"inputs": {"outcome": o}})
                                          for o in OUTCOMES[batch:batch + 25]))
    assert all(r.status_code in (201, 202) for r in started), [r.text for r in started if r.status_code >= 300]
    ids = [r.json()["workflowRun"]["identifier"] for r in started]
    for run_id, outcome in zip(ids, OUTCOMES, strict=True):
        if outcome == "wait":
            assert (await client.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code in (200, 202)
    runs = await await_finished(client, ids, c, within=120.0)
    assert [r["status"] for r in runs] == ["COMPLETED"] * len(ids)
    return runs


async def from_store(c: Cluster, workflow: str, window: Window) -> dict[str, Any]:
    """What embedded mode answers for these runs: the metrics folded from the stored runs."""
    store = build_store(CommonSettings(store_url=c.env["STEPLINE_STORE_URL"],
                                       mongo_database=c.env["STEPLINE_MONGO_DATABASE"]))
    await store.open()
    try:
        return await workflow_metrics(store, workflow, workflow, window)
    finally:
        await store.close()


@pytest.mark.timeout(600)
async def test_the_fold_matches_the_store_through_a_notifier_sigkill(
        tmp_path: Path, target: Target, kafka_broker: KafkaBroker, mongo_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPLINE_STATS_APP_ID", new_id("stats-app"))
    workflow, began = new_id("mixed"), time.time()
    dashboard, history = Dashboard(workflow), Dashboard(new_id("history"))
    async with running(tmp_path, kafka_broker.bootstrap, mongo_url) as (c, client):
        created = await client.post("/v1/workflows", json={**mixed(target.base_url), "identifier": workflow})
        assert created.status_code == 201, created.text
        async with reading(kafka_broker.bootstrap, dashboard, history):
            await burst(kafka_broker.bootstrap, history.workflow, HISTORY_RUNS)
            await history.until_completed(HISTORY_RUNS)
            await half(client, c, workflow)
            await dashboard.until_completed(len(OUTCOMES))
            await c.kill("notifier")
            c.start("notifier-2")
            await half(client, c, workflow)
            await dashboard.until_completed(2 * len(OUTCOMES))
        window = Window(began - 3600, time.time() + 3600)
        answer = await client.get(f"/v1/workflows/{workflow}/metrics",
                                  params={"from": to_iso(window.start), "to": to_iso(window.end)})
        assert answer.status_code == 200, answer.text
        expected = await from_store(c, workflow, window)
    print(f"\nfolded by the notifier (restarted once): {answer.json()['metrics']}; "
          f"{len(dashboard.messages)} statistics messages; {len(history.messages)} for the burst of {HISTORY_RUNS} runs")
    assert answer.json()["metrics"] == expected
    assert (expected["total"], expected["succeeded"], expected["failed"], expected["cancelled"]) == (200, 100, 50, 50)
    check_messages(dashboard.messages)
    assert len(history.messages) <= 2 * HISTORY_RUNS / 20, "the burst's changes are folded in batches, not one by one"


def check_messages(messages: list[dict[str, Any]]) -> None:
    validator = validators("workflowStats")["workflow.stats"]
    for message in messages:
        errors = [e.message for e in validator.iter_errors(message)]
        assert errors == [], f"{message} does not match docs/asyncapi.yaml: {errors}"
