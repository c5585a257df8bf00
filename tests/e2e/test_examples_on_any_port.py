"""`stepline up --examples examples/` (the real CLI, an OS process) on a free port other than 8080 runs
every example that needs no outside service to success: the examples reach the engine's own API
through `{{ .run.apiUrl }}`, which `stepline up` sets from its host and port, not a hard-coded
`127.0.0.1:8080`. Each run's taken branch or response is asserted, so a call that missed the engine
(and went down an error branch) fails the test."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import bearer, key_of, user_headers
from tests.conftest import free_port
from tests.e2e.test_crash_recovery import engine_process, wait_ready
from tests.service.test_embedded_runs import wait_run
from tests.service.test_waiting_nodes import until_waiting

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEEDS_OUTSIDE = {
    "github-dispatch": "calls GitHub's API",
    "ai-summary": "needs a model provider",
    "schedule-trigger": "starts only at the next whole hour",
}
"""Examples (file names) this test does not run, and why; every other example in examples/ is covered
below by its workflow identifier."""

Run = dict[str, Any]
Check = Callable[[Run], None]


def outputs(run: Run) -> dict[str, Any]:
    found: dict[str, Any] = run["variables"]["outputs"]
    return found


def engine_answered(node: str, status: int = 200) -> Check:
    def check(run: Run) -> None:
        assert outputs(run)[node]["response"]["status"] == status, outputs(run)
    return check


def has(node: str) -> Check:
    def check(run: Run) -> None:
        assert node in outputs(run), outputs(run)
    return check


def deployed(run: Run) -> None:
    engine_answered("deploy-prod")(run)
    assert outputs(run)["update-status"] == {"deployed": True, "status": 200}


def recovered(run: Run) -> None:
    """The call reached the engine (which refuses a request without a key) and the error branch ran."""
    assert outputs(run)["report-failure"]["status"] == 401, outputs(run)


def announced_to_the_placeholder(run: Run) -> None:
    """The notification reached the engine, which has no such path (404); the run went on."""
    announce = [n for n in run["nodeRuns"] if n["node"]["identifier"] == "announce"]
    assert announce and "answered HTTP 404" in str(announce[-1]["error"]), announce


STARTED: dict[str, tuple[dict[str, Any], Check]] = {
    "hello-transform": ({}, has("greet")),
    "fan-out": ({}, has("total")),
    "delay": ({"seconds": 0.2}, has("report")),
    "foreach": ({}, has("summary")),
    "sub-workflow": ({}, has("use-it")),
    "sub-workflow-child": ({}, has("greeting")),
    "register-service": ({}, has("summary")),
    "deploy-service": ({"service": "payments", "version": "1.0.0", "environment": "production"}, deployed),
    "retry-and-recover": ({}, recovered),
    "notify-slack": ({}, announced_to_the_placeholder),
}
"""Workflows started through their SELF_SERVE_TRIGGER: inputs, and what the finished run must show
(`register-service` is examples/upsert-entity.json)."""
FOLLOWERS = {"welcome-gold-service": "register-service", "queue-trigger": "kafka-publish"}
"""Workflows another example's run starts (a catalog event, a queue message); `welcome-gold-service` is
examples/event-trigger.json."""
SPECIAL = ("approval", "async-approval-webhook", "webhook-trigger", "kafka-publish")


def test_every_example_is_covered_or_excused() -> None:
    covered = set(STARTED) | set(FOLLOWERS) | set(SPECIAL)
    missed = [p.name for p in EXAMPLES.glob("*.json")
              if p.stem not in NEEDS_OUTSIDE and json.loads(p.read_text())["identifier"] not in covered]
    assert missed == [], "add the new example to this test"


async def first_run_of(client: httpx.AsyncClient, workflow: str) -> Run:
    """The first run of `workflow` once another example started it (polled; nothing to await here)."""
    for _ in range(400):
        runs = (await client.get("/v1/workflows/runs", params={"workflow": workflow})).json()["workflowRuns"]
        if runs:
            return await wait_run(client, runs[-1]["identifier"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no run of {workflow} was started")


async def started(client: httpx.AsyncClient, workflow: str, inputs: dict[str, Any]) -> str:
    answer = await client.post(f"/v1/workflows/{workflow}/runs", json={"inputs": inputs})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowRun"]["identifier"])


async def approval(client: httpx.AsyncClient) -> Run:
    run_id = await started(client, "approval", {})
    await until_waiting(client, run_id, "approve")
    lead = await user_headers(client, "lead@example.com", role="viewer")
    decided = await client.post(f"/v1/workflows/runs/{run_id}/nodes/approve/approval",
                                json={"decision": "approve"}, headers=lead)
    assert decided.status_code == 200, decided.text
    return await wait_run(client, run_id)


async def completed_by_patch(client: httpx.AsyncClient, workflow: str, node: str, output: dict[str, Any]) -> Run:
    """A run whose `node` waits for its node-run PATCH (as a receiver would send it)."""
    run_id = await started(client, workflow, {})
    waiting = await until_waiting(client, run_id, node)
    done = await client.patch(f"/v1/workflows/nodes/runs/{waiting['identifier']}",
                              json={"status": "COMPLETED", "result": "SUCCESS", "output": output})
    assert done.status_code == 200, done.text
    return await wait_run(client, run_id)


async def signed_hook(client: httpx.AsyncClient) -> Run:
    for name in ("release-hook-key", "deploy-token"):
        assert (await client.put(f"/v1/secrets/{name}", json={"value": f"{name}-value-1"})).status_code == 201
    raw = json.dumps({"action": "published", "release": {"tag": "v1.2.3"}}).encode()
    signature = hmac.new(b"release-hook-key-value-1", raw, hashlib.sha256).hexdigest()
    answer = await client.post("/v1/hooks/webhook-trigger", content=raw, headers={
        "Content-Type": "application/json", "X-Stepline-Signature": f"sha256={signature}"})
    assert answer.status_code == 202, answer.text
    return await wait_run(client, answer.json()["workflowRun"]["identifier"])


async def test_the_examples_run_on_a_non_default_port(tmp_path: Path) -> None:
    port = free_port()
    assert port != 8080
    data = tmp_path / "data"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        with engine_process(data, port, tmp_path / "engine.log", "--examples", str(EXAMPLES)) as proc:
            await wait_ready(client, proc)
            client.headers.update(bearer(key_of(data)))
            finished: dict[str, Run] = {}
            for name, (inputs, check) in STARTED.items():
                finished[name] = await wait_run(client, await started(client, name, inputs))
                check(finished[name])
            finished["kafka-publish"] = await completed_by_patch(client, "kafka-publish", "request-fulfilment",
                                                                 {"accepted": True})
            for name in FOLLOWERS:
                finished[name] = await first_run_of(client, name)
            finished["approval"] = await approval(client)
            finished["async-approval-webhook"] = await completed_by_patch(
                client, "async-approval-webhook", "request-approval", {"approved": True})
            finished["webhook-trigger"] = await signed_hook(client)
    failed = {n: (r["result"], r.get("error")) for n, r in finished.items() if r["result"] != "SUCCESS"}
    assert not failed, f"{failed}\n{(tmp_path / 'engine.log').read_text()[-3000:]}"
    assert has("apply")(finished["approval"]) is None
    assert has("apply-change")(finished["async-approval-webhook"]) is None
    engine_answered("announce")(finished["webhook-trigger"])
