"""A crashed service costs seconds (issue 11): the services as OS processes over a real broker and
FerretDB, each replica with a stable `STEPLINE_INSTANCE_ID`, so its consumers are static group
members. The scheduler and then an executor are SIGKILLed mid-stream and started again with the same
id: each takes back exactly the partitions it held (read from its log's partition events, not
timed), runs started while the scheduler was down are answered 201 (accepted by the restarted
scheduler within the accept timeout, not left to a dead member for a session timeout), and every run
completes once.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from libs.contracts import topics
from tests.conftest import Target, free_port
from tests.e2e.test_distributed import wait_api
from tests.e2e.test_distributed_faults import Cluster, await_finished, chain, check, hook, new_id, noop, report, start_runs
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
PARTITIONS = 4
"""For topics this test creates; a topic that exists keeps its count (another test may have made it)."""
EVENT = re.compile(r"libs\.bus\.kafka\.consumer: (?P<topic>[^:]+):(?P<group>[^:]+): (?P<change>assigned|revoked) "
                   r"(?P<partitions>\[[0-9, ]*\])")


def partition_events(c: Cluster, name: str) -> list[tuple[str, str, set[int]]]:
    """(topic, "assigned"|"revoked", partitions) in the order `name`'s log has them."""
    text = (c.tmp / f"{name}.log").read_text(errors="replace")
    return [(m["topic"], m["change"], set(ast.literal_eval(m["partitions"]))) for m in EVENT.finditer(text)]


async def first_assignment(c: Cluster, name: str, topic: str, within: float = 60.0) -> set[int]:
    """The partitions of `topic` in `name`'s first assignment, once its log shows it (polling the log
    file: the only view into another process)."""
    deadline = time.monotonic() + within
    while True:
        found = [p for t, change, p in partition_events(c, name) if t == topic and change == "assigned"]
        if found:
            return found[0]
        assert time.monotonic() < deadline and not c.dead(), f"{name} was never assigned {topic}"
        await asyncio.sleep(0.1)


def held(events: list[tuple[str, str, set[int]]], topic: str) -> set[int]:
    now: set[int] = set()
    for event_topic, change, partitions in events:
        if event_topic == topic:
            now = set(partitions) if change == "assigned" else now - partitions
    return now


async def owner_headers(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """The owner key the trigger wrote to its data directory, else one made in the cluster's store."""
    from libs.store.mongo import MongoStore
    from tests.auth_helpers import bearer, new_key

    key_file = data_dir / "admin.key"
    if key_file.exists():
        return bearer(key_file.read_text().strip())
    store = MongoStore(env["STEPLINE_STORE_URL"], database=env["STEPLINE_MONGO_DATABASE"])
    await store.open()
    try:
        return await new_key(store)
    finally:
        await store.close()


@asynccontextmanager
async def stable_ids(tmp_path: Path, kafka: str, mongo: str) -> AsyncIterator[tuple[Cluster, httpx.AsyncClient]]:
    api_port, data_dir = free_port(), tmp_path / "data"
    env = {**os.environ, "STEPLINE_BUS_URL": f"kafka://{kafka}", "STEPLINE_STORE_URL": mongo,
           "STEPLINE_MONGO_DATABASE": f"stepline_recovery_{os.getpid()}_{api_port}", "STEPLINE_DATA_DIR": str(data_dir),
           "STEPLINE_PARTITIONS": str(PARTITIONS), "STEPLINE_LEASE_SECONDS": "3", "STEPLINE_STALE_SECONDS": "2",
           "STEPLINE_SWEEP_INTERVAL_SECONDS": "0.5", "STEPLINE_KAFKA_SESSION_TIMEOUT": "30"}
    with ExitStack() as stack:
        c = Cluster(tmp_path, env, stack, api_port)
        c.start("trigger", {"STEPLINE_PORT": str(api_port), "STEPLINE_INSTANCE_ID": "t1"})
        c.start("scheduler", {"STEPLINE_INSTANCE_ID": "s1"})
        for i in (1, 2):
            c.start(f"executor-{i}", {"STEPLINE_INSTANCE_ID": f"e{i}"})
        c.start("notifier", {"STEPLINE_INSTANCE_ID": "n1"})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
            await wait_api(client, c.procs)
            await c.all_ready()
            client.headers.update(await owner_headers(data_dir, env))
            yield c, client


@pytest.mark.timeout(300)
async def test_a_restarted_scheduler_and_executor_take_their_partitions_back(
        tmp_path: Path, target: Target, kafka_broker: KafkaBroker, mongo_url: str) -> None:
    wf = new_id("recovery")
    async with stable_ids(tmp_path, kafka_broker.bootstrap, mongo_url) as (c, client):
        steps = chain(wf, hook("a", f"{target.base_url}/slow/200/a"), noop("b"))
        assert (await client.post("/v1/workflows", json=steps)).status_code == 201
        run_ids = await start_runs(client, wf, 10)

        await c.kill("scheduler")
        c.start("scheduler-2", {"STEPLINE_INSTANCE_ID": "s1"})
        during = [await client.post(f"/v1/workflows/{wf}/runs", json={}) for _ in range(8)]
        assert [r.status_code for r in during] == [201] * 8, [r.text for r in during]
        run_ids += [r.json()["workflowRun"]["identifier"] for r in during]
        held_before = partition_events(c, "scheduler")
        for topic in (topics.RUN_COMMANDS, topics.NODE_RESULTS):  # all of them: no dead incarnation holds a share
            every = held(held_before, topic)
            assert len(every) >= PARTITIONS and await first_assignment(c, "scheduler-2", topic) == every, topic

        await c.all_ready()
        before = partition_events(c, "executor-1")
        others_before = len(partition_events(c, "executor-2"))
        await c.kill("executor-1")
        c.start("executor-1b", {"STEPLINE_INSTANCE_ID": "e1"})
        run_ids += await start_runs(client, wf, 10)
        assert await first_assignment(c, "executor-1b", topics.NODE_DISPATCH) == held(before, topics.NODE_DISPATCH)
        runs = await await_finished(client, run_ids, c)
        assert partition_events(c, "executor-2")[others_before:] == []  # executor-2 never stopped
        dead = c.dead()
    rep = report("scheduler and executor SIGKILLed and restarted", runs, target)
    check(rep, runs, 3, dead)
