"""The newer triggers, nodes and run control in distributed mode: trigger, scheduler, two executors and
notifier as separate OS processes over a real Kafka broker and FerretDB (one cluster for the module,
started by `test_distributed.cluster`), driven through the HTTP API, with WEBHOOK nodes calling a
loopback target. Their embedded twins are in tests/service (test_run_control, test_waiting_nodes,
test_queue_trigger, test_kafka_node, test_catalog, test_webhook_trigger)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus.kafka import KafkaBus
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.webhook_signatures import sign
from libs.secrets.cipher import generate_key
from tests.auth_helpers import bearer, key_in_store, user_headers
from tests.conftest import Target, free_port
from tests.e2e.test_distributed import cluster, database_of, wait_api
from tests.infra_fixtures import KafkaBroker
from tests.service.test_embedded_runs import chain, create, node_runs, webhook
from tests.service.test_run_control import complete, get_run, until, waiting, waiting_hook

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
DEADLINE = 30.0
"""How long a condition may take before the test fails (a guard, not an expectation)."""
WARM_UP_DEADLINE = 120.0
"""The first run also waits for the consumer groups to form."""


class Stepline:
    """The cluster's API address and its processes (checked alive after every test)."""

    def __init__(self, url: str, procs: dict[str, subprocess.Popen[bytes]], logs: Path,
                 headers: dict[str, str]) -> None:
        self.url, self.procs, self.logs, self.headers = url, procs, logs, headers

    def dead(self) -> dict[str, int | None]:
        return {n: p.poll() for n, p in self.procs.items() if p.poll() is not None}


@pytest.fixture(scope="module")
def stepline(tmp_path_factory: pytest.TempPathFactory, kafka_broker: KafkaBroker, mongo_url: str) -> Iterator[Stepline]:
    """One cluster for the module. Every service gets the same secrets key, as `stepline up
    --distributed` gives them (`cluster` passes the environment on)."""
    logs = tmp_path_factory.mktemp("distributed-features")
    port = free_port()
    began = time.monotonic()
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("STEPLINE_SECRETS_KEY", generate_key())
            env.setenv("STEPLINE_QUEUE_RECONCILE_SECONDS", "0.5")
            procs = stack.enter_context(cluster(logs, kafka_broker.bootstrap, mongo_url, port))

        async def ready() -> dict[str, str]:
            """The API answers, and a first run completes: scheduler and executors consume."""
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                await wait_api(client, procs)
                client.headers.update(await key_in_store(mongo_url, database_of(port)))
                await create(client, chain("dx-warm-up", node("noop", {"type": "NOOP"})))
                started = await client.post("/v1/workflows/dx-warm-up/runs", json={})
                assert started.status_code in (201, 202), started.text
                assert (await finished(client, started.json()["workflowRun"]["identifier"],
                                      WARM_UP_DEADLINE))["result"] == "SUCCESS"
                return dict(client.headers)

        headers = asyncio.run(ready())
        print(f"\ncluster ready in {time.monotonic() - began:.1f} s (logs in {logs})")
        yield Stepline(f"http://127.0.0.1:{port}", procs, logs, {"Authorization": headers["authorization"]})
    print(f"\ndistributed features module: {time.monotonic() - began:.1f} s including start and stop")


@pytest.fixture
async def api(stepline: Stepline) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stepline.url, timeout=30, headers=stepline.headers) as client:
        yield client
    assert not stepline.dead(), f"services exited: {stepline.dead()} (logs in {stepline.logs})"


# ---- helpers -------------------------------------------------------------------------------------

def node(identifier: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"identifier": identifier, "config": config, **extra}


def with_inputs(definition: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    definition["nodes"][0]["config"]["userInputs"] = {"properties": properties}
    return definition


async def start(api: httpx.AsyncClient, workflow: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": inputs or {}})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()["workflowRun"]
    return run


async def finished(api: httpx.AsyncClient, run_id: str, within: float = DEADLINE) -> dict[str, Any]:
    """Long-poll (`?wait=5`) until the run is COMPLETED, within `within` seconds (a run answered
    202 is 404 until the scheduler has stored it)."""
    deadline = time.monotonic() + within
    while True:
        response = await api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 5})
        assert response.status_code in (200, 404), response.text
        if response.status_code == 404:
            assert time.monotonic() < deadline, f"run {run_id} was never stored"
            await asyncio.sleep(0.1)
            continue
        run: dict[str, Any] = response.json()["workflowRun"]
        if run["status"] == "COMPLETED":
            return run
        assert time.monotonic() < deadline, f"run {run_id} did not complete: {run}"


async def runs_of(api: httpx.AsyncClient, workflow: str, count: int = 1) -> list[dict[str, Any]]:
    """Poll the run list until the workflow has at least `count` runs, within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        response = await api.get("/v1/workflows/runs", params={"workflow": workflow, "limit": 100})
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()["workflowRuns"]
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, f"workflow {workflow} has {len(runs)} runs, expected {count}"
        await asyncio.sleep(0.1)


# ---- 1. cancel, rerun, pause/resume --------------------------------------------------------------

async def test_cancel_rerun_pause_resume(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("dx-cancel", waiting_hook(target, "hook"), webhook("after", f"{target.base_url}/after")))
    run = await start(api, "dx-cancel")
    await until(api, run["identifier"], waiting("hook"), DEADLINE)
    cancelled = await api.post(f"/v1/workflows/runs/{run['identifier']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = await finished(api, run["identifier"])
    assert (done["status"], done["result"], done["cancelledBy"]) == ("COMPLETED", "CANCELLED", "e2e@example.com")
    assert node_runs(done, "hook")[0]["result"] == "CANCELLED"
    assert target.hits["/after"] == 0

    await create(api, chain("dx-rerun", webhook("first", f"{target.base_url}/first"),
                            webhook("second", f"{target.base_url}/flaky/1/second")))
    failed = await finished(api, (await start(api, "dx-rerun"))["identifier"])
    assert failed["result"] == "FAILED"
    response = await api.post(f"/v1/workflows/runs/{failed['identifier']}/rerun", json={"from": "failed"})
    assert response.status_code == 201, response.text
    rerun = await finished(api, response.json()["workflowRun"]["identifier"])
    assert rerun["result"] == "SUCCESS"
    assert rerun["rerunOf"] == {"identifier": failed["identifier"], "from": "failed"}
    assert target.hits["/first"] == 1, "the node that succeeded is reused, not executed again"
    assert target.hits["/flaky/1/second"] == 2
    assert "reused" in node_runs(rerun, "first")[0]["nodeRunLogs"][0]["log"]

    paused = await api.post("/v1/workflows/dx-rerun/pause")
    assert paused.status_code == 200 and paused.json()["workflow"]["paused"] is True
    refused = await api.post("/v1/workflows/dx-rerun/runs", json={"inputs": {}})
    assert refused.status_code == 409 and "paused" in refused.json()["message"]
    assert (await api.post("/v1/workflows/dx-rerun/resume")).status_code == 200
    assert (await finished(api, (await start(api, "dx-rerun"))["identifier"]))["result"] == "SUCCESS"


# ---- 2. concurrencyLimit -------------------------------------------------------------------------

async def test_concurrency_limit_queues_the_second_run(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, {**chain("dx-limited", waiting_hook(target, "hook")), "concurrencyLimit": 1})
    first = await start(api, "dx-limited")
    first = await until(api, first["identifier"], waiting("hook"), DEADLINE)
    second = await start(api, "dx-limited")
    assert second["status"] == "QUEUED"
    assert (await get_run(api, second["identifier"]))["nodes"] == {}
    await complete(api, first, "hook")
    assert (await finished(api, first["identifier"]))["result"] == "SUCCESS"
    second = await until(api, second["identifier"], waiting("hook"), DEADLINE)
    await complete(api, second, "hook")
    assert (await finished(api, second["identifier"]))["result"] == "SUCCESS"
    assert target.hits["/async/hook"] == 2


# ---- 3. APPROVAL, SUB_WORKFLOW, FOREACH ------------------------------------------------------------

async def test_approval_sub_workflow_and_foreach(api: httpx.AsyncClient, target: Target) -> None:
    gate = node("gate", {"type": "APPROVAL", "assignees": ["alice@example.com"], "message": "Ship it?"})
    await create(api, chain("dx-approval", gate, node("after", {"type": "TRANSFORM", "expression": ".outputs.gate.decision"})))
    child = with_inputs(chain("dx-child", webhook("call", f"{target.base_url}/child/{{{{ .inputs.name }}}}"),
                              node("shout", {"type": "TRANSFORM", "expression": ".inputs.name | ascii_upcase"})),
                        {"name": {"type": "string"}})
    await create(api, child)
    sub = node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "dx-child", "inputs": {"name": "ada"}})
    await create(api, chain("dx-parent", sub))
    call = {"type": "WEBHOOK", "url": f"{target.base_url}/item/{{{{ .item }}}}", "method": "POST",
            "body": {"index": "{{ .index }}"}}
    await create(api, chain("dx-foreach", node("each", {"type": "FOREACH", "items": ["a", "b", "c"],
                                                        "concurrency": 3, "node": call})))

    approval = await start(api, "dx-approval")
    parent, each = await start(api, "dx-parent"), await start(api, "dx-foreach")
    await until(api, approval["identifier"], waiting("gate"), DEADLINE)
    decided = await api.post(f"/v1/workflows/runs/{approval['identifier']}/nodes/gate/approval",
                             json={"decision": "approve", "comment": "go"},
                             headers=await user_headers(api, "alice@example.com"))
    assert decided.status_code == 200, decided.text

    approved = await finished(api, approval["identifier"])
    assert approved["result"] == "SUCCESS", approved
    assert approved["variables"]["outputs"]["gate"]["decision"] == "approve"
    assert approved["variables"]["outputs"]["after"] == "approve"

    parent_run = await finished(api, parent["identifier"])
    assert parent_run["result"] == "SUCCESS", parent_run
    output = parent_run["variables"]["outputs"]["sub"]
    assert output["result"] == "SUCCESS" and output["outputs"]["shout"] == "ADA"
    child_run = await get_run(api, output["runId"])
    assert child_run["parentRunIdentifier"] == parent["identifier"]
    assert child_run["trigger"]["type"] == "SUB_WORKFLOW"
    assert target.hits["/child/ada"] == 1

    each_run = await finished(api, each["identifier"])
    assert each_run["result"] == "SUCCESS", each_run
    results = each_run["variables"]["outputs"]["each"]["results"]
    assert [r["response"]["data"]["path"] for r in results] == ["/item/a", "/item/b", "/item/c"]
    assert [target.hits[f"/item/{i}"] for i in "abc"] == [1, 1, 1]


# ---- 4. KAFKA → QUEUE_TRIGGER, catalog events, signed webhooks -------------------------------------

async def test_kafka_node_starts_a_queue_triggered_run(api: httpx.AsyncClient) -> None:
    queued = {"identifier": "dx-on-order",
              "nodes": [node("message", {"type": "QUEUE_TRIGGER", "topic": "dx.orders"}),
                        node("total", {"type": "TRANSFORM", "expression": ".inputs.payload.total"})],
              "connections": [{"sourceIdentifier": "message", "targetIdentifier": "total"}]}
    await create(api, queued)
    publish = node("publish", {"type": "KAFKA", "topic": "dx.orders", "key": "{{ .inputs.order }}",
                               "payload": {"order": "{{ .inputs.order }}", "total": 9.5}})
    await create(api, with_inputs(chain("dx-publish", publish), {"order": {"type": "string"}}))
    publisher = await finished(api, (await start(api, "dx-publish", {"order": "o-7"}))["identifier"])
    assert publisher["result"] == "SUCCESS", publisher

    [run] = await runs_of(api, "dx-on-order")
    run = await finished(api, run["identifier"])
    assert run["result"] == "SUCCESS", run
    assert (run["trigger"]["type"], run["trigger"]["node"]) == ("QUEUE", "message")
    assert run["inputs"]["payload"] == {"order": "o-7", "total": 9.5}
    assert run["inputs"]["context"]["workflowRunId"] == publisher["identifier"]
    assert run["variables"]["outputs"]["total"] == 9.5


async def test_catalog_event_starts_an_event_triggered_run(api: httpx.AsyncClient) -> None:
    listener = {"identifier": "dx-on-gold",
                "nodes": [node("on-service", {"type": "EVENT_TRIGGER",
                                              "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "dx-service"},
                                              "condition": {"type": "JQ", "combinator": "and",
                                                            "expressions": [".diff.after.properties.tier == \"gold\""]}}),
                          node("note", {"type": "TRANSFORM",
                                        "expression": ".outputs[\"on-service\"].context.entityIdentifier"})],
                "connections": [{"sourceIdentifier": "on-service", "targetIdentifier": "note"}]}
    await create(api, listener)
    event = {"id": "dx-evt-1", "action": "CREATE",
             "context": {"blueprintIdentifier": "dx-service", "entityIdentifier": "payments"},
             "diff": {"before": None, "after": {"identifier": "payments", "blueprint": "dx-service",
                                                "properties": {"tier": "gold"}}}}
    response = await api.post("/v1/catalog/events", json=event)
    assert response.status_code == 202, response.text
    [run] = await runs_of(api, "dx-on-gold")
    run = await finished(api, run["identifier"])
    assert run["result"] == "SUCCESS", run
    assert run["trigger"]["type"] == "EVENT" and run["inputs"]["id"] == "dx-evt-1"
    assert run["variables"]["outputs"]["note"] == "payments"


async def test_signed_webhook_starts_a_run_that_uses_a_secret(api: httpx.AsyncClient, target: Target) -> None:
    """The secrets are written through the API (trigger service) and read by the trigger (signature)
    and an executor (the header): the processes share STEPLINE_SECRETS_KEY."""
    for name, value in (("dx-hook-key", "hook-signing-key-9a1"), ("dx-token", "tok-5eb2")):
        response = await api.put(f"/v1/secrets/{name}", json={"value": value})
        assert response.status_code == 201, response.text
    announce = webhook("announce", f"{target.base_url}/announce",
                       config={"headers": {"Authorization": "Bearer {{ .secrets[\"dx-token\"] }}"},
                               "body": {"tag": "{{ .inputs.release.tag }}"}})
    await create(api, {"identifier": "dx-on-hook",
                       "nodes": [node("hook", {"type": "WEBHOOK_TRIGGER", "secretName": "dx-hook-key"}), announce],
                       "connections": [{"sourceIdentifier": "hook", "targetIdentifier": "announce"}]})
    raw = json.dumps({"action": "published", "release": {"tag": "v1.2.0"}}).encode()
    headers = {"Content-Type": "application/json", "X-Stepline-Delivery": "dx-delivery-1"}
    unsigned = await api.post("/v1/hooks/dx-on-hook", content=raw, headers=headers)
    assert unsigned.status_code == 401, unsigned.text
    response = await api.post("/v1/hooks/dx-on-hook", content=raw,
                              headers={**headers, "X-Stepline-Signature": sign("hook-signing-key-9a1", raw)})
    assert response.status_code == 202, response.text
    run = await finished(api, response.json()["workflowRun"]["identifier"])
    assert run["result"] == "SUCCESS", run
    assert run["trigger"]["type"] == "WEBHOOK" and run["inputs"]["release"] == {"tag": "v1.2.0"}
    [request] = await target.wait_for("/announce")
    assert request["headers"]["authorization"] == "Bearer tok-5eb2"
    assert request["body"] == {"tag": "v1.2.0"}
    assert "tok-5eb2" not in json.dumps(run)


# ---- 5. DELAY ------------------------------------------------------------------------------------

async def test_delay_of_one_second_completes(api: httpx.AsyncClient) -> None:
    await create(api, chain("dx-delay", node("pause", {"type": "DELAY", "seconds": 1})))
    run_id = (await start(api, "dx-delay"))["identifier"]
    waited = await until(api, run_id, waiting("pause"), DEADLINE)
    resume_at = node_runs(waited, "pause")[0]["output"]["resumeAt"]
    run = await finished(api, run_id)
    assert run["result"] == "SUCCESS", run
    assert run["variables"]["outputs"]["pause"] == {"waitedUntil": resume_at}


# ---- 5. access control across processes --------------------------------------------------------------

async def test_keys_workspaces_callback_tokens_and_the_audit_topic(api: httpx.AsyncClient, target: Target,
                                                                    kafka_broker: KafkaBroker) -> None:
    """The trigger checks keys the store holds, a callback token the executor (another process) issued,
    workspaces scope what a key sees, and every audit record is also published on stepline.audit.v1."""
    records: list[dict[str, Any]] = []
    audit = KafkaBus(kafka_broker.bootstrap, client_id="dx-audit")

    async def collect(envelope: Envelope) -> None:
        records.append(envelope.data["record"])

    audit.subscribe(topics.AUDIT, f"dx-audit-{time.monotonic_ns()}", collect)
    await audit.start()
    try:
        await create(api, chain("dx-called-back", waiting_hook(target, "ask")))
        run = await start(api, "dx-called-back")
        await until(api, run["identifier"], waiting("ask"), DEADLINE)
        token = (await target.wait_for("/async/ask"))[0]["headers"]["x-stepline-callback-token"]
        node_run = node_runs(await get_run(api, run["identifier"]), "ask")[-1]["identifier"]
        async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as outside:
            path = f"/v1/workflows/nodes/runs/{node_run}"
            done = {"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": True}}
            assert (await outside.patch(path, json=done)).status_code == 401
            called_back = await outside.patch(path, json=done, headers={"X-Stepline-Callback-Token": token})
            assert called_back.status_code == 200, called_back.text
        assert (await finished(api, run["identifier"]))["result"] == "SUCCESS"

        assert (await api.post("/v1/workspaces", json={"identifier": "dx-other", "title": "Other"})).status_code == 201
        other = await user_headers(api, "other@example.com", role="admin", workspace="dx-other")
        assert (await api.get(f"/v1/workflows/runs/{run['identifier']}", headers=other)).status_code == 404
        created = (await api.post("/v1/api-keys", json={"name": "short", "workspace": "default", "role": "viewer",
                                                        "user": "v@example.com"})).json()
        assert (await api.get("/v1/workflows", headers=bearer(created["key"]))).status_code == 200
        assert (await api.delete(f"/v1/api-keys/{created['apiKey']['id']}")).status_code == 200
        assert (await api.get("/v1/workflows", headers=bearer(created["key"]))).status_code == 401

        # The topic also holds other tests' records (other stores): look for this test's own changes.
        ours = {("node.completed_externally", node_run), ("workspace.created", "dx-other"),
                ("apikey.revoked", created["apiKey"]["id"])}
        async with asyncio.timeout(DEADLINE):
            while not ours <= {(r["action"], r["target"]) for r in records}:
                await asyncio.sleep(0.05)
        stored = {r["id"]: r for r in (await api.get("/v1/audit", params={"limit": 1000})).json()["records"]}
        published = [r for r in records if (r["action"], r["target"]) in ours]
        assert all(stored[r["id"]]["hash"] == r["hash"] for r in published), "each published record is the stored one"
    finally:
        await audit.stop()


# ---- 6. untrusted expressions cost only their own run ------------------------------------------------

async def test_runaway_expressions_fail_their_node_and_no_service_dies(api: httpx.AsyncClient,
                                                                       stepline: Stepline) -> None:
    """A never-ending jq program and two that exhaust memory, run by the executor processes: each node
    fails with the clear, non-retryable error naming its field; an ordinary run completes meanwhile."""
    runaway = ["def f: f; f", "[range(1e9)] | length", "[limit(1e8; repeat(1))] | length"]
    for index, expression in enumerate(runaway):
        await create(api, chain(f"dx-runaway-{index}", node("bad", {"type": "TRANSFORM", "expression": expression})))
    await create(api, chain("dx-fine", node("ok", {"type": "TRANSFORM", "expression": "1 + 1"})))
    bad = [await start(api, f"dx-runaway-{index}") for index in range(len(runaway))]
    fine = await start(api, "dx-fine")
    assert (await finished(api, fine["identifier"]))["variables"]["outputs"]["ok"] == 2
    for run in bad:
        done = await finished(api, run["identifier"])
        attempts = node_runs(done, "bad")
        assert done["result"] == "FAILED" and len(attempts) == 1, done
        assert attempts[0]["error"].startswith("expression at /nodes/1/config/expression exceeded"), attempts[0]
    assert not stepline.dead()
