"""DELAY, APPROVAL, SUB_WORKFLOW and FOREACH driven end to end through the HTTP API of an embedded
engine, with WEBHOOK nodes calling a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.auth_helpers import engine_client, user_headers
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, node_runs, wait_run, webhook

POLL_DEADLINE = 20.0


def node(identifier: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"identifier": identifier, "config": config, **extra}


def with_inputs(definition: dict[str, Any], properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    definition["nodes"][0]["config"]["userInputs"] = {"properties": properties, "required": required or []}
    return definition


async def start(api: httpx.AsyncClient, workflow: str, inputs: dict[str, Any] | None = None) -> str:
    response = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": inputs or {}})
    assert response.status_code == 201, response.text
    return str(response.json()["workflowRun"]["identifier"])


async def run_of(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/workflows/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()["workflowRun"]  # type: ignore[no-any-return]


async def until_waiting(api: httpx.AsyncClient, run_id: str, node_id: str) -> dict[str, Any]:
    """Poll (no fixed sleeps) until the node's state in the run is WAITING; return its node run. The run
    may not exist yet (a child run named by its parent's output is started through the bus)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POLL_DEADLINE
    while loop.time() < deadline:
        response = await api.get(f"/v1/workflows/runs/{run_id}")
        run = response.json()["workflowRun"] if response.status_code == 200 else {"nodes": {}, "status": "ABSENT"}
        if run["nodes"].get(node_id, {}).get("state") == "WAITING":
            return node_runs(run, node_id)[-1]
        assert run["status"] != "COMPLETED", run
        await asyncio.sleep(0.02)
    raise AssertionError(f"node {node_id} of run {run_id} never waited")


# ---- DELAY ----------------------------------------------------------------------------------------

async def test_delay_waits_then_succeeds(api: httpx.AsyncClient) -> None:
    after = node("after", {"type": "TRANSFORM", "expression": ".outputs.pause.waitedUntil"})
    await create(api, chain("delay-wf", node("pause", {"type": "DELAY", "seconds": 0.3}), after))
    run_id = await start(api, "delay-wf")
    waiting = await until_waiting(api, run_id, "pause")
    assert waiting["state"] == "WAITING" and "resumeAt" in waiting["output"]
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS", run
    assert run["variables"]["outputs"]["pause"] == {"waitedUntil": waiting["output"]["resumeAt"]}
    assert run["variables"]["outputs"]["after"] == waiting["output"]["resumeAt"]


async def test_delay_until_in_the_past_completes_at_once(api: httpx.AsyncClient) -> None:
    await create(api, chain("delay-past", node("pause", {"type": "DELAY", "until": "2001-01-01T00:00:00Z"})))
    run = await wait_run(api, await start(api, "delay-past"))
    assert run["result"] == "SUCCESS"
    assert run["variables"]["outputs"]["pause"] == {"waitedUntil": "2001-01-01T00:00:00.000Z"}


async def test_delay_bad_runtime_values_fail_clearly(api: httpx.AsyncClient) -> None:
    definition = chain("delay-bad", node("pause", {"type": "DELAY", "seconds": "{{ .inputs.seconds }}"}))
    await create(api, with_inputs(definition, {"seconds": {"type": "number"}}))
    run = await wait_run(api, await start(api, "delay-bad", {"seconds": -5}))
    assert run["result"] == "FAILED"
    assert node_runs(run, "pause")[0]["error"] == "config.seconds must not be negative, got -5"
    until = chain("until-bad", node("pause", {"type": "DELAY", "until": "{{ .inputs.when }}"}))
    await create(api, with_inputs(until, {"when": {"type": "string"}}))
    run = await wait_run(api, await start(api, "until-bad", {"when": "next tuesday"}))
    assert "config.until 'next tuesday' is not an ISO 8601 timestamp" in node_runs(run, "pause")[0]["error"]


async def test_delay_survives_an_engine_restart(tmp_path: Path) -> None:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    def settings() -> EmbeddedSettings:
        return EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                lease_seconds=5.0, partitions=4)

    first = Engine(settings())
    await first.start()
    try:
        async with engine_client(first) as client:
            await create(client, chain("durable-delay", node("pause", {"type": "DELAY", "seconds": 1.0})))
            run_id = await start(client, "durable-delay")
            await until_waiting(client, run_id, "pause")
    finally:
        await first.stop()
    second = Engine(settings())
    await second.start()
    try:
        async with engine_client(second) as client:
            run = await wait_run(client, run_id)
    finally:
        await second.stop()
    assert run["result"] == "SUCCESS"
    assert "waitedUntil" in run["variables"]["outputs"]["pause"]


# ---- APPROVAL -------------------------------------------------------------------------------------

def approval_workflow(identifier: str, **config: Any) -> dict[str, Any]:
    gate = node("gate", {"type": "APPROVAL", "assignees": ["alice@example.com", "{{ .inputs.owner }}"],
                         "message": "Deploy {{ .inputs.owner }}'s change?", **config})
    after = node("after", {"type": "TRANSFORM", "expression": ".outputs.gate.decision"})
    return with_inputs(chain(identifier, gate, after), {"owner": {"type": "string", "default": "bob@example.com"}})


async def decide(api: httpx.AsyncClient, path: str, user: str, body: dict[str, Any]) -> httpx.Response:
    """POST a decision as `user` (a viewer key of theirs: deciding needs only to be an assignee)."""
    return await api.post(path, json=body, headers=await user_headers(api, user))


def decision_path(run_id: str, node_id: str = "gate") -> str:
    return f"/v1/workflows/runs/{run_id}/nodes/{node_id}/approval"


async def test_approval_approved_by_an_assignee(api: httpx.AsyncClient) -> None:
    await create(api, approval_workflow("approve-wf", slaSeconds=3600))
    run_id = await start(api, "approve-wf")
    waiting = await until_waiting(api, run_id, "gate")
    request = waiting["output"]
    assert request["assignees"] == ["alice@example.com", "bob@example.com"]
    assert request["message"] == "Deploy bob@example.com's change?" and request["deadline"].endswith("Z")
    patched = await api.patch(f"/v1/workflows/nodes/runs/{waiting['identifier']}",
                              json={"status": "COMPLETED", "result": "SUCCESS"})
    assert patched.status_code == 409 and "/approval" in patched.json()["message"]
    body = {"decision": "approve", "comment": "ship it", "payload": {"ticket": 7}}
    decided = await decide(api, decision_path(run_id), "bob@example.com", body)
    assert decided.status_code == 200, decided.text
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS"
    assert run["variables"]["outputs"]["gate"] == {"decision": "approve", "by": "bob@example.com",
                                                   "comment": "ship it", "payload": {"ticket": 7}}
    assert run["variables"]["outputs"]["after"] == "approve"
    again = await decide(api, decision_path(run_id), "alice@example.com", {"decision": "reject"})
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert "already decided" in again.json()["message"]


async def test_approval_rejected_fails_the_node(api: httpx.AsyncClient) -> None:
    await create(api, approval_workflow("reject-wf"))
    run_id = await start(api, "reject-wf")
    await until_waiting(api, run_id, "gate")
    decided = await decide(api, decision_path(run_id), "alice@example.com", {"decision": "reject", "comment": "not today"})
    assert decided.status_code == 200, decided.text
    twice = await decide(api, decision_path(run_id), "alice@example.com", {"decision": "approve"})
    assert twice.status_code == 409, "a second decision is refused even before the first is applied"
    run = await wait_run(api, run_id)
    assert run["result"] == "FAILED"
    gate = node_runs(run, "gate")[0]
    assert gate["error"] == "rejected by alice@example.com"
    assert gate["output"]["decision"] == "reject" and gate["output"]["comment"] == "not today"
    assert run["nodes"]["after"]["state"] == "SKIPPED"


async def test_approval_refuses_strangers_and_unknown_nodes(api: httpx.AsyncClient) -> None:
    await create(api, approval_workflow("stranger-wf"))
    run_id = await start(api, "stranger-wf")
    await until_waiting(api, run_id, "gate")
    stranger = await decide(api, decision_path(run_id), "mallory@example.com", {"decision": "approve"})
    assert stranger.status_code == 403, stranger.text
    body = stranger.json()
    assert body["ok"] is False and body["error"] == "forbidden" and "mallory@example.com" in body["message"]
    unknown = await decide(api, decision_path(run_id, "nope"), "alice@example.com", {"decision": "approve"})
    assert unknown.status_code == 404
    not_started = await decide(api, decision_path(run_id, "after"), "alice@example.com", {"decision": "approve"})
    assert not_started.status_code == 409
    no_run = await decide(api, decision_path("wfr_0000000000000000"), "a", {"decision": "approve"})
    assert no_run.status_code == 404
    bad = await decide(api, decision_path(run_id), "alice@example.com", {"decision": "maybe"})
    assert bad.status_code == 422 and bad.json()["details"][0]["pointer"] == "/decision"
    assert (await run_of(api, run_id))["status"] == "IN_PROGRESS"


async def test_approval_sla_fails_or_continues(api: httpx.AsyncClient) -> None:
    await create(api, approval_workflow("sla-fail", slaSeconds=0.3, onTimeout="fail"))
    await create(api, approval_workflow("sla-continue", slaSeconds=0.3, onTimeout="continue"))
    failed, continued = await asyncio.gather(wait_run(api, await start(api, "sla-fail")),
                                             wait_run(api, await start(api, "sla-continue")))
    assert failed["result"] == "FAILED"
    assert node_runs(failed, "gate")[0]["error"].startswith("approval timed out")
    assert continued["result"] == "SUCCESS"
    assert continued["variables"]["outputs"]["gate"]["decision"] == "timeout"
    assert continued["variables"]["outputs"]["after"] == "timeout"
    late = await decide(api, decision_path(continued["identifier"]), "alice@example.com", {"decision": "approve"})
    assert late.status_code == 409


# ---- SUB_WORKFLOW ---------------------------------------------------------------------------------

def child_workflow(identifier: str, base_url: str) -> dict[str, Any]:
    call = webhook("call", f"{base_url}/child/{{{{ .inputs.name }}}}")
    shout = node("shout", {"type": "TRANSFORM", "expression": ".inputs.name | ascii_upcase"})
    return with_inputs(chain(identifier, call, shout), {"name": {"type": "string"}}, ["name"])


async def test_sub_workflow_runs_a_child_and_returns_its_outputs(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, child_workflow("child", target.base_url))
    sub = node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "child", "inputs": {"name": "{{ .inputs.who }}"}})
    after = node("after", {"type": "TRANSFORM", "expression": ".outputs.sub.outputs.shout"})
    await create(api, with_inputs(chain("parent", sub, after), {"who": {"type": "string"}}))
    run = await wait_run(api, await start(api, "parent", {"who": "ada"}))
    assert run["result"] == "SUCCESS", run
    output = run["variables"]["outputs"]["sub"]
    assert output["result"] == "SUCCESS" and output["outputs"]["shout"] == "ADA"
    assert run["variables"]["outputs"]["after"] == "ADA"
    child = await run_of(api, output["runId"])
    assert child["parentRunIdentifier"] == run["identifier"]
    assert child["parentNodeRunIdentifier"] == node_runs(run, "sub")[0]["identifier"]
    assert child["trigger"]["type"] == "SUB_WORKFLOW" and child["inputs"] == {"name": "ada"}
    assert target.hits["/child/ada"] == 1


async def test_sub_workflow_child_failure_fails_the_parent(api: httpx.AsyncClient, target: Target) -> None:
    failing = chain("failing-child", webhook("call", f"{target.base_url}/status/500"))
    await create(api, failing)
    await create(api, chain("parent-of-failure", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "failing-child"})))
    run = await wait_run(api, await start(api, "parent-of-failure"))
    assert run["result"] == "FAILED"
    sub = node_runs(run, "sub")[0]
    assert sub["output"]["result"] == "FAILED"
    assert f"child run {sub['output']['runId']} of workflow 'failing-child' ended FAILED" in sub["error"]
    assert "HTTP 500" in sub["error"]


async def test_sub_workflow_bad_inputs_or_workflow_fail_the_node(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, child_workflow("strict-child", target.base_url))
    await create(api, chain("bad-inputs", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "strict-child",
                                                        "inputs": {"nickname": "x"}})))
    run = await wait_run(api, await start(api, "bad-inputs"))
    error = node_runs(run, "sub")[0]["error"]
    assert run["result"] == "FAILED" and "config.inputs do not match the inputs of workflow 'strict-child'" in error
    await create(api, chain("no-child", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "ghost"})))
    run = await wait_run(api, await start(api, "no-child"))
    assert "workflow 'ghost'" in node_runs(run, "sub")[0]["error"] or "ghost" in node_runs(run, "sub")[0]["error"]
    await create(api, chain("no-version", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "strict-child",
                                                        "version": 9, "inputs": {"name": "x"}})))
    run = await wait_run(api, await start(api, "no-version"))
    assert "has no version 9" in node_runs(run, "sub")[0]["error"]
    assert len(node_runs(run, "sub")) == 1


async def test_sub_workflow_recursion_stops_at_the_depth_limit(api: httpx.AsyncClient) -> None:
    await create(api, chain("ouroboros", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "ouroboros"})))
    run = await wait_run(api, await start(api, "ouroboros"))
    assert run["result"] == "FAILED"
    assert "nest at most 10 levels deep" in node_runs(run, "sub")[0]["error"]


async def test_the_depth_limit_is_a_setting(tmp_path: Path) -> None:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    engine = Engine(EmbeddedSettings(data_dir=tmp_path / "shallow", max_run_depth=2))
    await engine.start()
    try:
        async with engine_client(engine) as api:
            await create(api, chain("ouroboros", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "ouroboros"})))
            run = await wait_run(api, await start(api, "ouroboros"))
    finally:
        await engine.stop()
    assert "nest at most 2 levels deep" in node_runs(run, "sub")[0]["error"]


async def test_cancelling_the_parent_cancels_its_child_run(api: httpx.AsyncClient) -> None:
    await create(api, approval_workflow("waiting-child"))
    await create(api, chain("cancelled-parent", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "waiting-child"})))
    run_id = await start(api, "cancelled-parent")
    waiting = await until_waiting(api, run_id, "sub")
    child_id = waiting["output"]["runId"]
    await until_waiting(api, child_id, "gate")
    cancelled = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    assert (await wait_run(api, run_id))["result"] == "CANCELLED"
    assert (await wait_run(api, child_id))["result"] == "CANCELLED"


# ---- FOREACH --------------------------------------------------------------------------------------

async def test_foreach_inline_keeps_item_order_under_concurrency(api: httpx.AsyncClient, target: Target) -> None:
    call = {"type": "WEBHOOK", "url": f"{target.base_url}/slow/{{{{ .item }}}}/n{{{{ .index }}}}", "method": "POST",
            "body": {"item": "{{ .item }}", "index": "{{ .index }}"}}
    each = node("each", {"type": "FOREACH", "items": "{{ .inputs.delays }}", "concurrency": 4, "node": call})
    await create(api, with_inputs(chain("foreach-inline", each), {"delays": {"type": "array"}}))
    delays = [400, 10, 200, 0, 100]  # items finish in the order 3, 1, 4, 2, 0
    run = await wait_run(api, await start(api, "foreach-inline", {"delays": delays}))
    assert run["result"] == "SUCCESS", run
    results = run["variables"]["outputs"]["each"]["results"]
    assert [r["response"]["data"]["path"] for r in results] == [f"/slow/{d}/n{i}" for i, d in enumerate(delays)]
    assert len(target.requests) == len(delays)
    assert [r["response"]["data"]["body"]["index"] for r in results] == list(range(len(delays)))


async def test_foreach_inline_item_failure_names_the_index(api: httpx.AsyncClient, target: Target) -> None:
    call = {"type": "WEBHOOK", "url": f"{target.base_url}/{{{{ .item }}}}", "method": "GET"}
    each = node("each", {"type": "FOREACH", "items": ["ok/0", "ok/1", "status/500", "ok/3"], "node": call})
    await create(api, chain("foreach-fail", each))
    run = await wait_run(api, await start(api, "foreach-fail"))
    assert run["result"] == "FAILED"
    record = node_runs(run, "each")[0]
    assert record["error"].startswith("item 2 failed:") and "HTTP 500" in record["error"]
    partial = record["output"]["results"]
    assert [r is not None for r in partial] == [True, True, False, False]
    assert target.hits["/ok/3"] == 0, "no item starts after one failed (concurrency 1)"


async def test_foreach_items_not_an_array_or_empty(api: httpx.AsyncClient) -> None:
    inline = {"type": "TRANSFORM", "expression": ".item * 2"}
    await create(api, with_inputs(chain("foreach-items", node("each", {"type": "FOREACH", "items": "{{ .inputs.p.items }}",
                                                                      "node": inline})), {"p": {"type": "object"}}))
    bad = await wait_run(api, await start(api, "foreach-items", {"p": {"items": {"a": 1}}}))
    assert bad["result"] == "FAILED"
    assert node_runs(bad, "each")[0]["error"] == "config.items must render to an array, got an object"
    empty = await wait_run(api, await start(api, "foreach-items", {"p": {"items": []}}))
    assert empty["result"] == "SUCCESS" and empty["variables"]["outputs"]["each"] == {"results": []}
    doubled = await wait_run(api, await start(api, "foreach-items", {"p": {"items": [1, 2, 3]}}))
    assert doubled["variables"]["outputs"]["each"] == {"results": [2, 4, 6]}


async def test_foreach_sub_workflows_in_item_order(api: httpx.AsyncClient, target: Target) -> None:
    child = with_inputs(chain("slow-child", webhook("call", f"{target.base_url}/slow/{{{{ .inputs.ms }}}}/c"),
                              node("echo", {"type": "TRANSFORM", "expression": ".inputs.ms"})),
                        {"ms": {"type": "integer"}}, ["ms"])
    await create(api, child)
    each = node("each", {"type": "FOREACH", "items": "{{ .inputs.items }}", "concurrency": 2,
                         "workflowIdentifier": "slow-child"})
    await create(api, with_inputs(chain("foreach-children", each), {"items": {"type": "array"}}))
    items = [{"ms": 300}, {"ms": 0}, {"ms": 150}, {"ms": 20}, {"ms": 0}]
    run = await wait_run(api, await start(api, "foreach-children", {"items": items}))
    assert run["result"] == "SUCCESS", run
    results = run["variables"]["outputs"]["each"]["results"]
    assert [r["outputs"]["echo"] for r in results] == [i["ms"] for i in items]
    assert all(r["result"] == "SUCCESS" for r in results) and len({r["runId"] for r in results}) == len(items)
    children = (await api.get("/v1/workflows/runs", params={"workflow": "slow-child", "limit": 100})).json()
    assert children["total"] == len(items)
    assert {r["parentRunIdentifier"] for r in children["workflowRuns"]} == {run["identifier"]}


async def test_foreach_sub_workflow_failure_fails_the_node(api: httpx.AsyncClient, target: Target) -> None:
    child = with_inputs(chain("maybe-child", webhook("call", f"{target.base_url}/{{{{ .inputs.path }}}}")),
                        {"path": {"type": "string"}}, ["path"])
    await create(api, child)
    each = node("each", {"type": "FOREACH", "items": [{"path": "ok"}, {"path": "status/500"}], "concurrency": 2,
                         "workflowIdentifier": "maybe-child"})
    await create(api, chain("foreach-child-fails", each))
    run = await wait_run(api, await start(api, "foreach-child-fails"))
    assert run["result"] == "FAILED"
    record = node_runs(run, "each")[0]
    assert record["error"].startswith("item 1 failed: child run")
    assert record["output"]["results"][0]["result"] == "SUCCESS"
    bad_item = chain("foreach-bad-item", node("each", {"type": "FOREACH", "items": [{"path": "ok"}, 5],
                                                       "workflowIdentifier": "maybe-child"}))
    await create(api, bad_item)
    run = await wait_run(api, await start(api, "foreach-bad-item"))
    assert "item 1 must be an object" in node_runs(run, "each")[0]["error"]


# ---- the examples -----------------------------------------------------------------------------------

async def test_the_examples_run(engine: Any, api: httpx.AsyncClient) -> None:
    examples = Path(__file__).parents[2] / "examples"
    loaded = await engine.load_examples(examples)
    assert {"delay", "approval", "sub-workflow", "sub-workflow-child", "foreach"} <= set(loaded)
    delay = await wait_run(api, await start(api, "delay", {"seconds": 0.1}))
    assert delay["result"] == "SUCCESS"
    sub = await wait_run(api, await start(api, "sub-workflow"))
    assert sub["variables"]["outputs"]["use-it"]["said"] == "Hello, Ada!"
    mapped = await wait_run(api, await start(api, "foreach"))
    assert mapped["result"] == "SUCCESS", mapped
    assert mapped["variables"]["outputs"]["summary"] == ["Hello, Ada!", "Hello, Grace!", "Hello, Linus!"]
    assert mapped["variables"]["outputs"]["shout"]["results"][1] == {"position": 1, "loud": "GRACE"}
    run_id = await start(api, "approval")
    await until_waiting(api, run_id, "approve")
    decided = await decide(api, decision_path(run_id, "approve"), "oncall@example.com", {"decision": "reject"})
    assert decided.status_code == 200, decided.text
    refused = await wait_run(api, run_id)
    assert refused["result"] == "SUCCESS", "the error branch takes the rejection"
    assert refused["variables"]["outputs"]["record-refusal"]["why"] == "rejected by oncall@example.com"
