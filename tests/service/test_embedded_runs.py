"""Workflows driven end to end through the HTTP API of an in-process embedded engine, with every
WEBHOOK node calling a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import copy
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from tests.auth_helpers import engine_client
from tests.conftest import Target

EXAMPLE = Path(__file__).parents[1] / "data" / "deploy-service.json"


def deploy_service(base_url: str) -> dict[str, Any]:
    """The Port "deploy-service" example, its UPSERT_ENTITY node swapped for a WEBHOOK."""
    raw = json.loads(EXAMPLE.read_text().replace("http://TARGET", base_url))
    return raw  # type: ignore[no-any-return]


def trigger() -> dict[str, Any]:
    return {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}}


def chain(identifier: str, *nodes: dict[str, Any], connections: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ids = ["trigger"] + [n["identifier"] for n in nodes]
    conns = connections if connections is not None else [
        {"sourceIdentifier": a, "targetIdentifier": b} for a, b in pairwise(ids)]
    return {"identifier": identifier, "nodes": [trigger(), *nodes], "connections": conns}


def webhook(identifier: str, url: str, **extra: Any) -> dict[str, Any]:
    config = {"type": "WEBHOOK", "url": url, "method": "POST", "body": {"run": "{{ .run.id }}"}}
    config.update(extra.pop("config", {}))
    return {"identifier": identifier, "config": config, **extra}


async def create(api: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    response = await api.post("/v1/workflows", json=definition)
    assert response.status_code == 201, response.text


async def run_to_end(api: httpx.AsyncClient, workflow: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    started = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": inputs or {}})
    assert started.status_code == 201, started.text
    return await wait_run(api, started.json()["workflowRun"]["identifier"])


async def wait_run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(20):
        response = await api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 5})
        run: dict[str, Any] = response.json()["workflowRun"]
        if run["status"] == "COMPLETED":
            return run
    raise AssertionError(f"run {run_id} did not complete: {run}")


def node_runs(run: dict[str, Any], node: str) -> list[dict[str, Any]]:
    return [nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == node]


async def test_deploy_service_production_branch(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, deploy_service(target.base_url))
    run = await run_to_end(api, "deploy-service", {"service": "payments", "version": "1.4.2", "environment": "production"})
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS")
    prod = await target.wait_for("/deploy/production")
    assert prod[0]["body"] == {"service": "payments", "version": "1.4.2", "requiresApproval": True}
    assert target.hits["/deploy"] == 0
    assert run["nodes"]["deploy-nonprod"]["state"] == "SKIPPED"
    status = await target.wait_for("/status-update")
    assert len(status) == 1, "the fan-in node runs exactly once"
    assert status[0]["body"]["lastDeployedVersion"] == "1.4.2"
    outputs = run["variables"]["outputs"]
    assert outputs["deploy-prod"]["response"]["status"] == 200
    assert outputs["check-env"] == {"selectedOption": "production"}


async def test_deploy_service_non_production_branch(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, deploy_service(target.base_url))
    run = await run_to_end(api, "deploy-service", {"service": "web", "version": "2.0.0", "environment": "staging"})
    assert run["result"] == "SUCCESS"
    nonprod = await target.wait_for("/deploy")
    assert nonprod[0]["body"]["environment"] == "staging"
    assert target.hits["/deploy/production"] == 0
    assert len(await target.wait_for("/status-update")) == 1
    assert len(node_runs(run, "update-status")) == 1


async def test_fan_out_and_fan_in_runs_join_once(api: httpx.AsyncClient, target: Target) -> None:
    branches = [webhook(f"b{i}", f"{target.base_url}/branch/{i}") for i in range(5)]
    join = {"identifier": "join", "config": {"type": "TRANSFORM",
            "expression": "[.outputs | to_entries[] | select(.key | startswith(\"b\")) | .value.response.data.path] | sort"}}
    conns = [{"sourceIdentifier": "trigger", "targetIdentifier": f"b{i}"} for i in range(5)]
    conns += [{"sourceIdentifier": f"b{i}", "targetIdentifier": "join"} for i in range(5)]
    await create(api, chain("fan", *branches, join, connections=conns))
    run = await run_to_end(api, "fan")
    assert run["result"] == "SUCCESS"
    assert run["variables"]["outputs"]["join"] == [f"/branch/{i}" for i in range(5)]
    assert len(node_runs(run, "join")) == 1


async def test_async_webhook_completed_by_patch(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("provision", f"{target.base_url}/async/provision", config={"synchronized": False},
                   variables={"resource": "{{ .resourceId }}"})
    after = {"identifier": "after", "config": {"type": "TRANSFORM", "expression": ".outputs.provision.resource"}}
    await create(api, chain("async-wf", node, after))
    started = (await api.post("/v1/workflows/async-wf/runs", json={"inputs": {}})).json()["workflowRun"]
    request = (await target.wait_for("/async/provision"))[0]
    node_run_id = request["headers"]["x-stepline-node-run-id"]
    run_id = started["identifier"]
    # The callback may arrive before the executor has recorded that the node waits: both are accepted.
    logged = await api.patch(f"/v1/workflows/runs/{run_id}/nodes/{node_run_id}",
                             json={"status": "IN_PROGRESS", "logs": [{"logLevel": "INFO", "log": "half way"}]})
    assert logged.status_code == 200, logged.text
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": {"resourceId": "abc123"}}
    done = await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)
    assert done.status_code == 200, done.text
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS"
    assert run["variables"]["outputs"]["provision"] == {"resource": "abc123"}
    assert run["nodes"]["provision"]["state"] == "SUCCEEDED"
    assert run["variables"]["outputs"]["after"] == "abc123"
    provision = node_runs(run, "provision")[0]
    assert [entry["log"] for entry in provision["nodeRunLogs"] if entry["source"] == "user"] == ["half way"]
    again = await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)
    assert again.status_code == 200, "a repeated identical completion is accepted"
    different = await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json={**body, "result": "FAILED"})
    assert different.status_code == 409


async def test_node_that_fails_twice_then_succeeds_under_retry(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("flaky", f"{target.base_url}/flaky/2/deploy",
                   retry={"maxAttempts": 3, "initialIntervalSeconds": 0.05, "backoffCoefficient": 2})
    await create(api, chain("retry-wf", node))
    run = await run_to_end(api, "retry-wf")
    assert run["result"] == "SUCCESS"
    attempts = node_runs(run, "flaky")
    assert [(a["attempt"], a["result"]) for a in attempts] == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCESS")]
    keys = [r["headers"]["idempotency-key"] for r in target.requests if r["path"] == "/flaky/2/deploy"]
    assert len(keys) == 3 and len(set(keys)) == 3, "each attempt has its own idempotency key"
    assert run["variables"]["outputs"]["flaky"]["response"]["data"]["attempt"] == 3


async def test_retries_exhausted_fail_the_run(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("flaky", f"{target.base_url}/flaky/5/x", retry={"maxAttempts": 2, "initialIntervalSeconds": 0.01})
    await create(api, chain("exhaust", node))
    run = await run_to_end(api, "exhaust")
    assert run["result"] == "FAILED"
    assert len(node_runs(run, "flaky")) == 2
    assert "flaky" in run["error"]


def terminate_or_continue(base_url: str, mode: str) -> dict[str, Any]:
    bad = webhook("bad", f"{base_url}/status/400", onFailure=mode)
    slow_sibling = webhook("sibling", f"{base_url}/sibling")
    after_bad = webhook("after-bad", f"{base_url}/after-bad")
    conns = [{"sourceIdentifier": "trigger", "targetIdentifier": "bad"},
             {"sourceIdentifier": "trigger", "targetIdentifier": "sibling"},
             {"sourceIdentifier": "bad", "targetIdentifier": "after-bad"}]
    return chain(f"on-failure-{mode}", bad, slow_sibling, after_bad, connections=conns)


async def test_terminate_fails_the_run_and_skips_successors(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, terminate_or_continue(target.base_url, "terminate"))
    run = await run_to_end(api, "on-failure-terminate")
    assert run["result"] == "FAILED"
    assert target.hits["/after-bad"] == 0
    assert node_runs(run, "bad")[0]["result"] == "FAILED"
    assert run["variables"]["outputs"]["bad"]["response"]["status"] == 400
    assert "HTTP 400" in run["variables"]["outputs"]["bad"]["error"]["message"]


async def test_continue_runs_successors_and_succeeds(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, terminate_or_continue(target.base_url, "continue"))
    run = await run_to_end(api, "on-failure-continue")
    assert run["result"] == "SUCCESS"
    assert len(await target.wait_for("/after-bad")) == 1
    assert node_runs(run, "bad")[0]["result"] == "FAILED"


async def test_error_branch_handles_failure(api: httpx.AsyncClient, target: Target) -> None:
    bad = webhook("bad", f"{target.base_url}/status/500")
    handler = webhook("handler", f"{target.base_url}/handler", config={"body": {"why": "{{ .outputs.bad.error.message }}"}})
    ok = webhook("ok", f"{target.base_url}/ok")
    conns = [{"sourceIdentifier": "trigger", "targetIdentifier": "bad"},
             {"sourceIdentifier": "bad", "targetIdentifier": "ok"},
             {"sourceIdentifier": "bad", "targetIdentifier": "handler", "onFailure": True}]
    await create(api, chain("error-branch", bad, handler, ok, connections=conns))
    run = await run_to_end(api, "error-branch")
    assert run["result"] == "SUCCESS"
    handled = await target.wait_for("/handler")
    assert "HTTP 500" in handled[0]["body"]["why"]
    assert target.hits["/ok"] == 0


async def test_waiting_node_times_out(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("wait", f"{target.base_url}/async/never", config={"synchronized": False}, timeoutSeconds=0.3)
    await create(api, chain("timeout-wf", node))
    run = await run_to_end(api, "timeout-wf")
    assert run["result"] == "FAILED"
    assert "timed out" in node_runs(run, "wait")[0]["error"]


async def test_runs_pin_their_version(api: httpx.AsyncClient, target: Target) -> None:
    v1 = chain("pinned", webhook("call", f"{target.base_url}/v1"))
    await create(api, v1)
    v2 = copy.deepcopy(v1)
    v2["nodes"][1]["config"]["url"] = f"{target.base_url}/v2"
    assert (await api.put("/v1/workflows/pinned", json=v2)).status_code == 200
    latest = await run_to_end(api, "pinned")
    old = await api.post("/v1/workflows/pinned/runs", json={"inputs": {}, "version": 1})
    old_run = await wait_run(api, old.json()["workflowRun"]["identifier"])
    assert (latest["workflowVersionId"], old_run["workflowVersionId"]) == (2, 1)
    assert target.hits["/v1"] == 1 and target.hits["/v2"] == 1


async def test_retry_backoff_fires_on_time_not_on_the_sweep(tmp_path: Path, target: Target) -> None:
    """With a sweep interval far longer than the test, retries still happen: the scheduler wakes
    itself at each timer's due time, and the stored timer is only the fallback."""
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    engine = Engine(EmbeddedSettings(data_dir=tmp_path / "slow-sweep", sweep_interval_seconds=3600, stale_seconds=3600))
    await engine.start()
    try:
        async with engine_client(engine) as client:
            node = webhook("flaky", f"{target.base_url}/flaky/1/x", retry={"maxAttempts": 2, "initialIntervalSeconds": 0.05})
            await create(client, chain("on-time", node))
            run = await run_to_end(client, "on-time")
    finally:
        await engine.stop()
    assert run["result"] == "SUCCESS"
    assert [a["result"] for a in node_runs(run, "flaky")] == ["FAILED", "SUCCESS"]


async def test_notification_url_receives_run_events(api: httpx.AsyncClient, target: Target) -> None:
    definition = chain("notified", {"identifier": "n", "config": {"type": "NOOP"}})
    definition["notificationUrl"] = f"{target.base_url}/notify"
    await create(api, definition)
    run = await run_to_end(api, "notified")
    events = await target.wait_for("/notify", count=2)
    assert [e["body"]["type"] for e in events] == ["run.started", "run.completed"]
    last_seq = events[1]["body"]["data"]["seq"]
    assert [e["body"]["id"] for e in events] == [f"{run['identifier']}/1", f"{run['identifier']}/{last_seq}"]
    assert all(e["body"]["subject"] == run["identifier"] and e["body"]["specversion"] == "1.0" for e in events)
    assert events[1]["body"]["data"]["result"] == "SUCCESS"
    assert events[0]["headers"]["content-type"] == "application/cloudevents+json"


async def test_redelivered_execute_during_an_action_does_not_repeat_it(engine: Any, api: httpx.AsyncClient,
                                                                       target: Target) -> None:
    from libs.contracts import topics, v1, wrap

    await create(api, chain("once", webhook("call", f"{target.base_url}/slow/300/once")))
    started = (await api.post("/v1/workflows/once/runs", json={"inputs": {}})).json()["workflowRun"]
    await target.wait_for("/slow/300/once")
    again = v1.ExecuteNode(run_id=started["identifier"], workflow="once", version=1, node_id="call", attempt=1,
                           node_run_key=f"{started['identifier']}/call/1")
    await engine.bus.publish(topics.NODE_DISPATCH, wrap(again, source="test"))
    run = await wait_run(api, started["identifier"])
    assert run["result"] == "SUCCESS"
    assert target.hits["/slow/300/once"] == 1


async def test_an_action_longer_than_its_lease_has_it_renewed_and_runs_once(tmp_path: Path, target: Target) -> None:
    """The executor renews the claim of an action that outlives a third of its lease: the stored
    lease moves past the one the claim took, and the target is called once."""
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    engine = Engine(EmbeddedSettings(data_dir=tmp_path / "short-lease", stale_seconds=0.3,
                                     sweep_interval_seconds=0.1, lease_seconds=0.6, partitions=4))
    await engine.start()
    try:
        async with engine_client(engine) as api:
            await create(api, chain("long", webhook("call", f"{target.base_url}/slow/1500/long")))
            run_id = (await api.post("/v1/workflows/long/runs", json={})).json()["workflowRun"]["identifier"]
            await target.wait_for("/slow/1500/long")
            claimed = (await engine.store.get_node_run(f"{run_id}/call/1")).lease_expires_at
            assert await renewed_past(engine, f"{run_id}/call/1", claimed), "the lease was never renewed"
            run = await wait_run(api, run_id)
    finally:
        await engine.stop()
    assert run["result"] == "SUCCESS", run
    assert target.hits["/slow/1500/long"] == 1


async def renewed_past(engine: Any, key: str, lease: float | None) -> bool:
    """Whether the node run's lease moves past `lease` while its action runs (read every 20 ms)."""
    for _ in range(100):
        record = await engine.store.get_node_run(key)
        if record.status != "RUNNING":
            return False
        if record.lease_expires_at is not None and lease is not None and record.lease_expires_at > lease:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_start_with_wait_answers_with_the_finished_run(api: httpx.AsyncClient) -> None:
    """`POST …/runs?wait=S`: one request starts the run and returns its result (the W3 shape)."""
    start = {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
        "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}
    steps = [{"identifier": "a", "config": {"type": "TRANSFORM", "expression": "{n: .inputs.n, a: (.inputs.n + 1)}"}},
             {"identifier": "b", "config": {"type": "TRANSFORM", "expression": ".outputs.a + {b: (.outputs.a.a * 2)}"}}]
    definition = chain("waited", *steps)
    definition["nodes"][0] = start
    await create(api, definition)
    response = await api.post("/v1/workflows/waited/runs", params={"wait": 10}, json={"inputs": {"n": 4}})
    assert response.status_code == 201, response.text
    run = response.json()["workflowRun"]
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS")
    assert run["variables"]["outputs"]["b"] == {"n": 4, "a": 5, "b": 10}
    assert [nr["status"] for nr in node_runs(run, "b")] == ["COMPLETED"]
    for wait in (-1, 61, "soon"):
        refused = await api.post("/v1/workflows/waited/runs", params={"wait": wait}, json={"inputs": {"n": 1}})
        assert refused.status_code == 422 and refused.json()["error"] == "validation_error", refused.text
        assert "/query/wait" in refused.text
    listed = (await api.get("/v1/workflows/runs", params={"workflowIdentifiers": "waited"})).json()
    assert listed["total"] == 1, "a refused wait starts nothing"
