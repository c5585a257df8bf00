"""Run control through the HTTP API of an embedded engine: cancel, rerun, pause/resume, and the
workflow `concurrencyLimit` queue. Every WEBHOOK node calls a real loopback HTTP server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, node_runs, wait_run, webhook


async def start(api: httpx.AsyncClient, workflow: str, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": {}, **body})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()["workflowRun"]
    return run


async def get_run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/workflows/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["workflowRun"]
    return run


async def until(api: httpx.AsyncClient, run_id: str, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the run until `check(run)` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = await get_run(api, run_id)
        if check(run):
            return run
        assert loop.time() < deadline, f"condition not reached: {run}"
        await asyncio.sleep(0.01)


def waiting(node: str) -> Any:
    return lambda run: run["nodes"].get(node, {}).get("state") == "WAITING"


def waiting_hook(target: Target, identifier: str = "hook") -> dict[str, Any]:
    return webhook(identifier, f"{target.base_url}/async/{identifier}", config={"synchronized": False})


async def complete(api: httpx.AsyncClient, run: dict[str, Any], node: str) -> None:
    node_run_id = node_runs(run, node)[-1]["identifier"]
    done = await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}",
                           json={"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": True}})
    assert done.status_code == 200, done.text


# -- cancel ---------------------------------------------------------------------------------------

async def test_cancel_cancels_a_waiting_node_and_starts_nothing_new(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("wf", waiting_hook(target), webhook("after", f"{target.base_url}/after")))
    run = await start(api, "wf")
    await until(api, run["identifier"], waiting("hook"))
    cancelled = await api.post(f"/v1/workflows/runs/{run['identifier']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = await wait_run(api, run["identifier"])
    assert (done["status"], done["result"]) == ("COMPLETED", "CANCELLED")
    assert done["cancelledBy"] == "admin", "the key's user"
    assert done["nodes"]["hook"]["state"] == "CANCELLED"
    assert node_runs(done, "hook")[0]["result"] == "CANCELLED"
    assert "after" not in done["nodes"] or done["nodes"]["after"]["state"] == "SKIPPED"
    assert target.hits["/after"] == 0
    again = await api.post(f"/v1/workflows/runs/{run['identifier']}/cancel")
    assert again.status_code == 409 and "already completed" in again.json()["message"]


async def test_cancel_lets_the_running_attempt_finish_then_stops(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("wf", webhook("slow", f"{target.base_url}/slow/1500/x"),
                            webhook("after", f"{target.base_url}/after")))
    run = await start(api, "wf")
    await target.wait_for("/slow/1500/x")
    cancelled = await api.post(f"/v1/workflows/runs/{run['identifier']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["workflowRun"]["status"] == "IN_PROGRESS", "the slow attempt is still in flight"
    done = await wait_run(api, run["identifier"])
    assert done["result"] == "CANCELLED"
    assert done["nodes"]["slow"]["state"] == "SUCCEEDED"
    assert target.hits["/after"] == 0


async def test_cancel_unknown_run_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows/runs/wfr_doesnotexist0000/cancel")
    assert response.status_code == 404
    assert response.json()["ok"] is False


# -- rerun ----------------------------------------------------------------------------------------

async def test_rerun_from_failed_reuses_successes(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("wf", webhook("first", f"{target.base_url}/first"),
                            webhook("second", f"{target.base_url}/flaky/1/second")))
    failed = await start(api, "wf", inputs={})
    failed = await wait_run(api, failed["identifier"])
    assert failed["result"] == "FAILED"
    response = await api.post(f"/v1/workflows/runs/{failed['identifier']}/rerun", json={"from": "failed"})
    assert response.status_code == 201, response.text
    rerun = await wait_run(api, response.json()["workflowRun"]["identifier"])
    assert rerun["result"] == "SUCCESS"
    assert rerun["rerunOf"] == {"identifier": failed["identifier"], "from": "failed"}
    assert rerun["trigger"]["type"] == "RERUN"
    assert target.hits["/first"] == 1, "the node that succeeded is not executed again"
    assert target.hits["/flaky/1/second"] == 2
    assert rerun["variables"]["outputs"]["first"] == failed["variables"]["outputs"]["first"]
    reused = node_runs(rerun, "first")[0]
    assert reused["result"] == "SUCCESS" and "reused" in reused["nodeRunLogs"][0]["log"]


async def test_rerun_from_start_executes_everything(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("wf", webhook("first", f"{target.base_url}/first")))
    done = await wait_run(api, (await start(api, "wf"))["identifier"])
    response = await api.post(f"/v1/workflows/runs/{done['identifier']}/rerun", json={"from": "start"})
    assert response.status_code == 201
    rerun = await wait_run(api, response.json()["workflowRun"]["identifier"])
    assert rerun["result"] == "SUCCESS" and rerun["identifier"] != done["identifier"]
    assert target.hits["/first"] == 2
    refused = await api.post(f"/v1/workflows/runs/{done['identifier']}/rerun", json={"from": "failed"})
    assert refused.status_code == 409, "nothing failed in a successful run"
    bad = await api.post(f"/v1/workflows/runs/{done['identifier']}/rerun", json={"from": "middle"})
    assert bad.status_code == 422 and "from" in bad.text


# -- pause / resume -------------------------------------------------------------------------------

async def test_paused_workflow_refuses_starts_until_resumed(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("wf", webhook("first", f"{target.base_url}/first")))
    paused = await api.post("/v1/workflows/wf/pause")
    assert paused.status_code == 200 and paused.json()["workflow"]["paused"] is True
    assert (await api.get("/v1/workflows/wf")).json()["workflow"]["paused"] is True
    refused = await api.post("/v1/workflows/wf/runs", json={"inputs": {}})
    assert refused.status_code == 409
    assert "paused" in refused.json()["message"] and "resume" in refused.json()["message"]
    listed = (await api.get("/v1/workflows/runs", params={"workflow": "wf"})).json()
    assert listed["total"] == 0
    resumed = await api.post("/v1/workflows/wf/resume")
    assert resumed.status_code == 200 and resumed.json()["workflow"]["paused"] is False
    run = await wait_run(api, (await start(api, "wf"))["identifier"])
    assert run["result"] == "SUCCESS"


async def test_pause_unknown_workflow_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.post("/v1/workflows/nope/pause")).status_code == 404
    assert (await api.post("/v1/workflows/nope/resume")).status_code == 404


# -- concurrencyLimit -----------------------------------------------------------------------------

async def test_runs_beyond_the_concurrency_limit_queue_in_order(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, {**chain("wf", waiting_hook(target)), "concurrencyLimit": 1})
    first = await start(api, "wf")
    await until(api, first["identifier"], waiting("hook"))
    second = await start(api, "wf")
    third = await start(api, "wf")
    assert second["status"] == "QUEUED" and third["status"] == "QUEUED"
    assert (await get_run(api, second["identifier"]))["nodes"] == {}
    assert target.hits["/async/hook"] == 1

    await complete(api, await get_run(api, first["identifier"]), "hook")
    assert (await wait_run(api, first["identifier"]))["result"] == "SUCCESS"
    second_run = await until(api, second["identifier"], waiting("hook"))
    assert (await get_run(api, third["identifier"]))["status"] == "QUEUED", "first in, first out"

    cancelled = await api.post(f"/v1/workflows/runs/{third['identifier']}/cancel")
    assert cancelled.status_code == 200
    third_done = await wait_run(api, third["identifier"])
    assert third_done["result"] == "CANCELLED"
    assert all(nr["node"]["identifier"] == "trigger" for nr in third_done.get("nodeRuns", []))

    await complete(api, second_run, "hook")
    assert (await wait_run(api, second["identifier"]))["result"] == "SUCCESS"
    fourth = await start(api, "wf")
    assert fourth["status"] == "IN_PROGRESS", "the cancelled queued run gave its place back"
    assert len(await target.wait_for("/async/hook", 3)) == 3


async def test_concurrency_limit_must_be_positive(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows", json={**chain("wf"), "concurrencyLimit": 0})
    assert response.status_code == 422
    assert any(d["pointer"] == "/concurrencyLimit" for d in response.json()["details"]), response.text
