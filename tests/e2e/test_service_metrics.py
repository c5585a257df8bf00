"""Prometheus `/metrics` of every service of a distributed deployment: trigger, scheduler, two executors
and notifier as separate OS processes over the real Kafka broker and FerretDB, each of the four
without an API serving its metrics on its own `STEPLINE_HEALTH_PORT`. After runs of a workflow with a
WEBHOOK node against a loopback target, each process shows what it does: bus consumer lag per
partition of the topics it consumes (back to zero once the runs are done), store round trips, and
(the notifier, which folds the run events) runs completed by workflow and result. The trigger serves
its own on the API's port, with a key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.contracts import topics
from tests.auth_helpers import key_in_store
from tests.conftest import Target, free_port
from tests.e2e.test_distributed import database_of, service, wait_api
from tests.e2e.test_distributed_features import finished
from tests.infra_fixtures import KafkaBroker
from tests.service.test_embedded_runs import chain, create, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo, pytest.mark.timeout(300)]
RUNS = 6
Samples = list[tuple[str, dict[str, str], float]]


@contextmanager
def cluster_with_health_ports(tmp_path: Path, kafka: str, mongo: str,
                              api_port: int) -> Iterator[tuple[dict[str, int], dict[str, subprocess.Popen[bytes]]]]:
    """The services as `test_distributed.cluster` starts them, plus a health port each; yields the
    ports and the processes."""
    common = {**os.environ, "STEPLINE_BUS_URL": f"kafka://{kafka}", "STEPLINE_STORE_URL": mongo,
              "STEPLINE_MONGO_DATABASE": database_of(api_port), "STEPLINE_PARTITIONS": "4",
              "STEPLINE_LEASE_SECONDS": "3", "STEPLINE_STALE_SECONDS": "2", "STEPLINE_SWEEP_INTERVAL_SECONDS": "0.5"}
    ports = {name: free_port() for name in ("scheduler", "executor-1", "executor-2", "notifier")}
    names = {"trigger": {"STEPLINE_PORT": str(api_port)}}
    names |= {name: {"STEPLINE_HEALTH_PORT": str(port), "STEPLINE_INSTANCE_ID": f"metrics-{name}"}
              for name, port in ports.items()}
    with ExitStack() as stack:
        procs = {n: stack.enter_context(service(n.split("-")[0], {**common, **extra}, tmp_path / f"{n}.log"))
                 for n, extra in names.items()}
        yield ports, procs


def samples(text: str) -> Samples:
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


async def scrape_until(port: int, ready: Callable[[Samples], bool]) -> Samples:
    """The service's /metrics once `ready(samples)` holds (consumers report after they handled records;
    a service serves its health port once its consumers joined their groups, which for the second
    executor may be after the runs were done by the first)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        found: Samples = []
        for _ in range(600):
            try:
                answer = await client.get("/metrics")
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
                continue
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
            found = samples(answer.text)
            if ready(found):
                return found
            await asyncio.sleep(0.1)
    raise AssertionError(f"/metrics on port {port} never showed it: {[s for s in found if 'stepline' in s[0]]}")


def lags(found: Samples, topic: str) -> list[float]:
    return [value for name, labels, value in found if name == "stepline_bus_consumer_lag" and labels["topic"] == topic]


def caught_up(topic: str) -> Callable[[Samples], bool]:
    return lambda found: bool(lags(found, topic)) and sum(lags(found, topic)) == 0


async def test_every_service_serves_its_metrics(tmp_path: Path, target: Target, kafka_broker: KafkaBroker,
                                                mongo_url: str) -> None:
    workflow = f"metrics-{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    with cluster_with_health_ports(tmp_path, kafka_broker.bootstrap, mongo_url, api_port) as (ports, procs):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as api:
            await wait_api(api, procs)
            api.headers.update(await key_in_store(mongo_url, database_of(api_port)))
            await create(api, chain(workflow, webhook("call", f"{target.base_url}/ok")))
            started = [await api.post(f"/v1/workflows/{workflow}/runs", json={}) for _ in range(RUNS)]
            runs = [await finished(api, s.json()["workflowRun"]["identifier"], 120) for s in started]
            assert [r["result"] for r in runs] == ["SUCCESS"] * RUNS

            # Both of the scheduler's consumers report (a partition has no sample until its first fetch
            # response after an assignment: on a loaded machine a rebalance may have just moved it).
            scheduler = await scrape_until(ports["scheduler"], lambda found: caught_up(topics.NODE_RESULTS)(found)
                                           and bool(lags(found, topics.RUN_COMMANDS)))
            assert min(lags(scheduler, topics.RUN_COMMANDS)) >= 0
            assert any(name == "stepline_store_call_seconds_count" and labels["store"] == "mongo" and value > 0
                       for name, labels, value in scheduler)
            dispatch = [await scrape_until(ports[e], lambda f: "stepline_bus_consumer_lag" in {n for n, _, _ in f})
                        for e in ("executor-1", "executor-2")]
            assert sum(len(lags(found, topics.NODE_DISPATCH)) for found in dispatch) >= 1, "the executors' partitions"
            assert all(lag >= 0 for found in dispatch for lag in lags(found, topics.NODE_DISPATCH))
            notifier = await scrape_until(ports["notifier"], lambda found: any(
                name == "stepline_runs_completed_total" and labels.get("workflow") == workflow and value == RUNS
                for name, labels, value in found))
            assert lags(notifier, topics.RUN_EVENTS), "the notifier consumes the run events"
            api_metrics = await api.get("/metrics")  # the trigger's own: its consumers (run events for waiters, …)
            assert api_metrics.status_code == 200 and "stepline_bus_consumer_lag{" in api_metrics.text
