"""`/metrics` in Prometheus' text format: the API's, limited to the caller's workspace, after real runs
(a retried node, a failed run) of an embedded engine; and the whole set on a service's health app."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from libs.bus.memory import MemoryBus
from libs.contracts import v1, wrap
from libs.contracts.envelope import Envelope
from libs.core.errors import ConflictError
from libs.runtime.runner import health_app
from tests.auth_helpers import new_key
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, run_to_end, webhook

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def scrape_until(api: httpx.AsyncClient, ready: Any) -> Samples:
    """/metrics once `ready(samples)` holds: the notifier folds events after the API saw the run end."""
    for _ in range(500):
        answer = await api.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        found = samples(answer.text)
        if ready(found):
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("the metrics never showed the runs")


async def test_runs_and_node_attempts_are_counted(engine: Any, api: httpx.AsyncClient, target: Target) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"  # the registry is the process's: series of other tests exist too
    await create(api, chain(name, webhook("call", f"{target.base_url}/flaky/1/x",
                                          retry={"maxAttempts": 2, "initialIntervalSeconds": 0.01})))
    await create(api, chain(f"{name}-bad", webhook("call", f"{target.base_url}/status/400")))
    assert (await run_to_end(api, name))["result"] == "SUCCESS"
    assert (await run_to_end(api, f"{name}-bad"))["result"] == "FAILED"
    ws = {"workspace": "default"}
    found = await scrape_until(api, lambda s: value(
        s, "stepline_runs_completed_total", **ws, workflow=f"{name}-bad", result="FAILED") == 1)
    assert value(found, "stepline_runs_started_total", **ws, workflow=name) == 1
    assert value(found, "stepline_runs_completed_total", **ws, workflow=name, result="SUCCESS") == 1
    assert value(found, "stepline_run_duration_seconds_count", **ws, workflow=name, result="SUCCESS") == 1
    assert value(found, "stepline_run_duration_seconds_bucket", **ws, workflow=name, result="SUCCESS", le="+Inf") == 1
    webhook_failures = value(found, "stepline_node_attempt_duration_seconds_count", **ws, node_type="WEBHOOK",
                             result="FAILED")
    assert webhook_failures is not None and webhook_failures >= 2, "the retried attempt and the failed run's"


async def test_a_key_sees_only_its_workspaces_series(engine: Any, api: httpx.AsyncClient, target: Target) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"
    await create(api, chain(name, webhook("call", f"{target.base_url}/ok")))
    await run_to_end(api, name)
    await scrape_until(api, lambda s: value(s, "stepline_runs_started_total", workspace="default", workflow=name) == 1)
    other = await new_key(engine.store, user="olga@example.com", role="viewer", workspace="other")
    seen = samples((await api.get("/metrics", headers=other)).text)
    assert all(dict(labels).get("workspace", "other") == "other" for _, labels in seen)
    assert any(metric == "process_cpu_seconds_total" for metric, _ in seen), "process series stay"
    assert (await api.get("/metrics", headers={"Authorization": ""})).status_code == 401


async def test_a_service_health_app_serves_every_series_dead_letters_included(engine: Any) -> None:
    topic = f"t.{uuid.uuid4().hex[:8]}"
    bus = MemoryBus(partitions=1, max_deliveries=1, redelivery_backoff=0)

    async def refuses(envelope: Envelope) -> None:
        raise ConflictError("never")

    bus.subscribe(topic, "g", refuses)
    await bus.start()
    await bus.publish(topic, wrap(v1.ReconcileRun(run_id="wfr_1"), source="test"))
    await bus.drain()
    await bus.stop()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=health_app(engine.store)),
                                 base_url="http://service") as client:
        found = samples((await client.get("/metrics")).text)
    assert value(found, "stepline_dead_letters_total", topic=topic) == 1
    assert value(found, "process_cpu_seconds_total") is not None
