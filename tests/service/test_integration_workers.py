"""INTEGRATION_ACTION of an Ocean provider: the node waits for an integration worker of its
installation, which claims it (Port's `claim-pending`, with a visibility timeout), acknowledges it and
completes it by PATCH. The worker is a separate process written from Port's docs
(tests/service/integration_worker.py); the queue's claim, redelivery and ack rules are checked with
explicit times on a real SQLite store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.store import integration_queue
from libs.store.sqlite import SqliteStore
from tests.auth_helpers import key_of
from tests.conftest import serving
from tests.service.test_embedded_runs import chain, create, node_runs, wait_run
from tests.service.test_waiting_nodes import until_waiting

WORKER = Path(__file__).with_name("integration_worker.py")


def sync_skill(installation: str = "claude-managed-agents", **config: Any) -> dict[str, Any]:
    return {"identifier": "sync_skill", "config": {
        "type": "INTEGRATION_ACTION", "installationId": installation, "integrationProvider": "claude-managed-agents",
        "integrationInvocationType": "sync_skill",
        "integrationActionExecutionProperties": {"portSkillId": "{{ .inputs.skill }}"}, **config}}


def skill_workflow(identifier: str, installation: str = "claude-managed-agents") -> dict[str, Any]:
    definition = chain(identifier, sync_skill(installation))
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"skill": {"type": "string"}}}
    return definition


async def started(api: httpx.AsyncClient, workflow: str, skill: str) -> str:
    answer = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": {"skill": skill}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowRun"]["identifier"])


async def test_a_worker_process_claims_acks_and_completes_node_runs(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, skill_workflow("sync-skills"))
    await create(api, skill_workflow("other-install", installation="someone-else"))
    runs = [await started(api, "sync-skills", f"s{i}") for i in range(3)]
    other = await started(api, "other-install", "x")
    async with serving(engine.app) as base_url:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), base_url, key_of(engine.settings.data_dir), "claude-managed-agents", "3")
        assert await asyncio.wait_for(worker.wait(), 60) == 0
        for index, run_id in enumerate(runs):
            run = await wait_run(api, run_id)
            assert run["result"] == "SUCCESS", run
            assert run["variables"]["outputs"]["sync_skill"] == {"skillId": f"claude-s{index}", "synced": True}
            assert [log["log"] for log in node_runs(run, "sync_skill")[0]["nodeRunLogs"]
                    if log["source"] == "user"] == ["skill synced"]
        assert (await until_waiting(api, other, "sync_skill"))["output"]["installationId"] == "someone-else"


async def test_claims_hide_node_runs_until_their_timeout_and_ack_ends_redelivery(api: httpx.AsyncClient) -> None:
    await create(api, skill_workflow("claimed"))
    waiting = await until_waiting(api, await started(api, "claimed", "s1"), "sync_skill")
    assert waiting["output"]["integrationActionExecutionProperties"] == {"portSkillId": "s1"}
    claim = {"installationId": "claude-managed-agents", "limit": 5, "visibilityTimeoutMs": 600_000}
    first = (await api.post("/v1/org/my-org/workflows/runs/claim-pending", json=claim)).json()
    assert [nr["identifier"] for nr in first["nodeRuns"]] == [waiting["identifier"]]
    assert first["nodeRuns"][0]["installationId"] == "claude-managed-agents" and first["nodeRuns"][0]["claimedUntil"]
    again = (await api.post("/v1/org/my-org/workflows/runs/claim-pending", json=claim)).json()
    assert again["nodeRuns"] == [], "claimed: hidden until its visibility timeout lapses"
    acked = await api.patch("/v1/org/my-org/workflows/runs/ack", json={"nodeRunIdentifier": waiting["identifier"]})
    assert acked.json() == {"ok": True, "acked": True}


async def test_bad_worker_requests_are_clear_4xx(api: httpx.AsyncClient) -> None:
    no_installation = await api.post("/v1/org/o/workflows/runs/claim-pending", json={"limit": 5})
    assert no_installation.status_code == 422
    too_many = await api.post("/v1/org/o/workflows/runs/claim-pending", json={"installationId": "i", "limit": 101})
    assert too_many.status_code == 422
    unknown = await api.patch("/v1/org/o/workflows/runs/ack", json={"nodeRunIdentifier": "wfnr_AAAAAAAAAAAAAAAA"})
    assert unknown.status_code == 404
    malformed = await api.patch("/v1/org/o/workflows/runs/ack", json={"nodeRunIdentifier": "nope"})
    assert malformed.status_code == 422


async def test_an_ocean_node_without_installation_is_refused(api: httpx.AsyncClient) -> None:
    node = sync_skill()
    del node["config"]["installationId"]
    answer = await api.post("/v1/workflows", json=chain("no-install", node))
    assert answer.status_code == 422
    assert answer.json()["details"][0]["pointer"] == "/nodes/1/config/installationId"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "queue.db"))
    await db.open()
    yield db
    await db.close()


async def waiting_everything(key: str) -> integration_queue.Verdict:
    return "claim"


async def test_queue_redelivers_after_the_timeout_unless_acked(store: SqliteStore) -> None:
    for key in ("run-1/a/1", "run-2/a/1"):
        await integration_queue.enqueue(store, "inst", key, now=0)
        await integration_queue.enqueue(store, "inst", key, now=1)  # a re-performed attempt queues nothing new

    async def claim(now: float, limit: int = 10) -> list[str]:
        found = await integration_queue.claim(store, "inst", limit=limit, visibility=30, now=now,
                                              verdict=waiting_everything)
        return [c.node_run_key for c in found]

    assert await claim(10, limit=1) == ["run-1/a/1"]
    assert await claim(11) == ["run-2/a/1"], "run-1 is hidden until 40"
    assert await claim(39) == []
    assert await integration_queue.ack(store, "inst", "run-2/a/1", now=39) is True
    assert await claim(45) == ["run-1/a/1"], "redelivered; the acked one is not"
    assert await integration_queue.ack(store, "inst", "run-9/a/1", now=46) is None


async def test_queue_drops_what_no_longer_waits_and_skips_other_workspaces(store: SqliteStore) -> None:
    for key in ("done/a/1", "theirs/a/1", "mine/a/1"):
        await integration_queue.enqueue(store, "inst", key, now=0)
    verdicts: dict[str, integration_queue.Verdict] = {"done/a/1": "drop", "theirs/a/1": "skip", "mine/a/1": "claim"}

    async def verdict(key: str) -> integration_queue.Verdict:
        return verdicts[key]

    found = await integration_queue.claim(store, "inst", limit=10, visibility=30, now=1, verdict=verdict)
    assert [c.node_run_key for c in found] == ["mine/a/1"]
    assert await store.get_entry(integration_queue.KIND, "inst/done/a/1") is None
    assert await store.get_entry(integration_queue.KIND, "inst/theirs/a/1") is not None
