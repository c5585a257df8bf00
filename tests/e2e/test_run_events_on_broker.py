"""A dashboard written only from docs/events.md follows the run-status stream on the real broker while
the services run as OS processes over Kafka and FerretDB: 200 runs, some retried, some waiting and
then cancelled, with the scheduler SIGKILLed mid-stream and a new one started. The consumer ends with
every run completed, the result the run API shows, every `seq` of every run seen (nothing lost by the
crash: the outbox), and none applied twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tests.conftest import Target
from tests.e2e.test_distributed_faults import chain, hook, new_id, noop, running, start_runs
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
PLAIN, RETRIED, CANCELLED = 120, 40, 40


class Dashboard:
    """The consumer of docs/events.md: per run, the highest `seq` applied and the last known state."""

    def __init__(self, workflows: set[str]) -> None:
        self.workflows = workflows
        """Only these workflows' events count: the topic also holds other tests' runs."""
        self.last: dict[str, int] = {}
        self.applied: dict[str, list[int]] = defaultdict(list)
        self.result: dict[str, str] = {}
        self.ids: Counter[str] = Counter()
        self.repeated: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.waiting: asyncio.Queue[str] = asyncio.Queue()
        self.changed = asyncio.Condition()

    async def on(self, event: dict[str, Any]) -> None:
        if event["data"].get("workflow") not in self.workflows:
            return
        run, seq = event["data"]["runId"], event["data"]["seq"]
        self.ids[event["id"]] += 1
        if seq <= self.last.get(run, 0):
            self.repeated[event["type"]] += 1
            return  # a repeat: same id as one applied
        self.last[run] = seq
        self.applied[run].append(seq)
        self.types[event["type"]] += 1
        if event["type"] == "node.waiting":
            self.waiting.put_nowait(run)
        if event["type"] == "run.completed":
            async with self.changed:
                self.result[run] = event["data"]["result"]
                self.changed.notify_all()

    async def until_completed(self, runs: set[str], *, at_least: int | None = None, within: float = 240.0) -> None:
        goal = len(runs) if at_least is None else at_least
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(runs & self.result.keys()) >= goal), within)


async def follow(bootstrap: str, dashboard: Dashboard) -> None:
    consumer = AIOKafkaConsumer("stepline.run-events.v1", bootstrap_servers=bootstrap,
                                group_id=new_id("dashboard"), auto_offset_reset="earliest")
    await consumer.start()
    try:
        async for record in consumer:
            await dashboard.on(json.loads(record.value))
    finally:
        await consumer.stop()


async def cancel_waiting(client: Any, dashboard: Dashboard) -> None:
    """Cancel each run whose node waits. 202: the request is on the bus but no scheduler recorded it
    within the accept timeout (the one killed); the restarted one will."""
    while True:
        run = await dashboard.waiting.get()
        answer = await client.post(f"/v1/workflows/runs/{run}/cancel")
        assert answer.status_code in (200, 202), answer.text


async def unless_failed(goal: Awaitable[None], *helpers: asyncio.Task[None]) -> None:
    """Await `goal`, but raise at once if a helper task (the reader, the canceller) fails."""
    waiter = asyncio.ensure_future(goal)
    done, _ = await asyncio.wait({waiter, *helpers}, return_when=asyncio.FIRST_COMPLETED)
    for task in done - {waiter}:
        waiter.cancel()
        task.result()
        raise AssertionError("a helper task ended")
    waiter.result()


@pytest.mark.timeout(600)
async def test_a_dashboard_follows_200_runs_through_a_scheduler_sigkill(
        tmp_path: Path, target: Target, kafka_broker: KafkaBroker, mongo_url: str) -> None:
    flows = workflows(target.base_url)
    dashboard = Dashboard(set(flows))
    async with running(tmp_path, kafka_broker.bootstrap, mongo_url) as (c, client):
        reader = asyncio.create_task(follow(kafka_broker.bootstrap, dashboard))
        canceller = asyncio.create_task(cancel_waiting(client, dashboard))
        try:
            for name, flow in flows.items():
                assert (await client.post("/v1/workflows", json={**flow, "identifier": name})).status_code == 201
            every: set[str] = set()
            for name, count in zip(flows, (PLAIN, RETRIED, CANCELLED), strict=True):
                for _ in range(count // 40):
                    every |= set(await start_runs(client, name, 40))
            await unless_failed(dashboard.until_completed(every, at_least=40), reader, canceller)
            await c.kill("scheduler")
            c.start("scheduler-2")
            await unless_failed(dashboard.until_completed(every), reader, canceller)
            shown = {r: (await client.get(f"/v1/workflows/runs/{r}")).json()["workflowRun"] for r in every}
        finally:
            reader.cancel()
            canceller.cancel()
            await asyncio.gather(reader, canceller, return_exceptions=True)
    check_followed(dashboard, every, shown)


def workflows(base: str) -> dict[str, dict[str, Any]]:
    """One that succeeds, one whose node fails once per run and is retried, one that waits."""
    return {new_id("plain"): chain("", hook("a", f"{base}/slow/100/a"), noop("b")),
            new_id("retried"): chain("", {**hook("a", f"{base}/flaky/1/{{{{ .run.id }}}}"),
                                         "retry": {"maxAttempts": 2, "initialIntervalSeconds": 0.2}}),
            new_id("cancelled"): chain("", {"identifier": "wait", "config": {
                "type": "WEBHOOK", "url": f"{base}/async/w", "synchronized": False}})}


def check_followed(dashboard: Dashboard, every: set[str], shown: dict[str, dict[str, Any]]) -> None:
    print(f"\n{len(every)} runs followed; event types {dict(dashboard.types)}; repeats {dict(dashboard.repeated)}")
    assert all(run["status"] == "COMPLETED" for run in shown.values()), "no run left in progress"
    assert {r: dashboard.result[r] for r in every} == {r: run["result"] for r, run in shown.items()}
    assert all(dashboard.applied[r] == list(range(1, dashboard.last[r] + 1)) for r in every), "no seq lost"
    assert Counter(dashboard.result[r] for r in every) == {"SUCCESS": PLAIN + RETRIED, "CANCELLED": CANCELLED}
    assert dashboard.types["node.retrying"] >= RETRIED and dashboard.types["node.waiting"] >= CANCELLED
