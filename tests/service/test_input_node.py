"""Port's INPUT node, with Port's own example (22, `deploy-production-with-approval`, read from
`../shared/reference/port-examples/`; only its two URLs are pointed at the loopback target here): two
of three responders approve → `deploy`; one declines → `notify_declined` with the reason. Responders are
the API keys' users; each answers once; the form's inputs are validated."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.auth_helpers import user_headers
from tests.conftest import Target
from tests.service.port_examples import EXAMPLES, load
from tests.service.test_embedded_runs import chain, create, node_runs, wait_run
from tests.service.test_waiting_nodes import until_waiting

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"Port's examples are not at {EXAMPLES}")
NAME = "22-S-skills-approval-input-node"
WORKFLOW = "deploy-production-with-approval"


def example(target: Target) -> dict[str, Any]:
    text = json.dumps(load(NAME))
    text = text.replace("https://api.example.com/deploy", f"{target.base_url}/deploy")
    text = text.replace('{{ .secrets[\\"slack-webhook-url\\"] }}', f"{target.base_url}/slack")
    definition: dict[str, Any] = json.loads(text)
    return definition


async def waiting_run(api: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    started = await api.post(f"/v1/workflows/{WORKFLOW}/runs", json={"inputs": {"service": "web", "version": "2.0"}})
    assert started.status_code == 201, started.text
    run_id = started.json()["workflowRun"]["identifier"]
    return run_id, await until_waiting(api, run_id, "approval")


async def answer(api: httpx.AsyncClient, headers: dict[str, str], run_id: str, button: str,
                 **inputs: Any) -> httpx.Response:
    return await api.post(f"/v1/workflows/runs/{run_id}/nodes/approval/input", headers=headers,
                          json={"button": button, "inputs": inputs})


async def responders(api: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    users = ("alice", "bob", "carol", "dave")
    return {u: await user_headers(api, f"{u}@example.com") for u in users}


async def test_two_approvals_take_the_approve_outlet(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, example(target))
    keys = await responders(api)
    run_id, waiting = await waiting_run(api)
    assert waiting["output"]["request"]["buttons"] == ["approve", "decline"]
    assert (await answer(api, keys["alice"], run_id, "approve", reason="ok")).json()["input"]["outlet"] is None
    assert (await answer(api, keys["alice"], run_id, "approve")).status_code == 409, "one answer each"
    assert (await answer(api, keys["dave"], run_id, "approve")).status_code == 403, "not a responder"
    assert (await answer(api, keys["bob"], run_id, "approve", reason="lgtm")).json()["input"]["outlet"] == "approve"
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS", run
    assert run["nodes"]["approval"]["branch"] == "approve" and run["nodes"]["notify_declined"]["state"] == "SKIPPED"
    [deploy] = await target.wait_for("/deploy")
    assert deploy["body"] == {"service": "web", "version": "2.0", "environment": "production"}
    output = run["variables"]["outputs"]["approval"]
    assert output["outlet"] == "approve"
    assert [(r["by"], r["button"], r["inputs"]) for r in output["responses"]] == [
        ("alice@example.com", "approve", {"reason": "ok"}), ("bob@example.com", "approve", {"reason": "lgtm"})]
    late = await answer(api, keys["carol"], run_id, "decline")
    assert late.status_code == 409


async def test_one_decline_takes_the_decline_outlet_with_its_reason(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, example(target))
    keys = await responders(api)
    run_id, _ = await waiting_run(api)
    assert (await answer(api, keys["alice"], run_id, "approve")).status_code == 200
    assert (await answer(api, keys["carol"], run_id, "decline", reason="freeze")).status_code == 200
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS" and run["nodes"]["deploy"]["state"] == "SKIPPED"
    [slack] = await target.wait_for("/slack")
    assert slack["body"]["text"].endswith("was declined. Reason: freeze")


async def test_bad_answers_are_clear_4xx(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, example(target))
    keys = await responders(api)
    run_id, waiting = await waiting_run(api)
    unknown = await answer(api, keys["alice"], run_id, "maybe")
    assert unknown.status_code == 422 and unknown.json()["details"][0]["pointer"] == "/button"
    wrong = await answer(api, keys["alice"], run_id, "approve", reason=7)
    assert wrong.status_code == 422 and wrong.json()["details"][0]["pointer"] == "/inputs/reason"
    patched = await api.patch(f"/v1/workflows/nodes/runs/{waiting['identifier']}",
                              json={"status": "COMPLETED", "result": "SUCCESS"})
    assert patched.status_code == 409 and "/input" in patched.json()["message"]
    not_input = await api.post(f"/v1/workflows/runs/{run_id}/nodes/deploy/input", json={"button": "approve"})
    assert not_input.status_code == 409


async def test_outlets_must_exist_and_input_has_no_fallback(api: httpx.AsyncClient) -> None:
    gate = {"identifier": "gate", "config": {"type": "INPUT", "outlets": [{"identifier": "yes"}]}}
    after = {"identifier": "after", "config": {"type": "NOOP"}}
    connections = [{"sourceIdentifier": "trigger", "targetIdentifier": "gate"},
                   {"sourceIdentifier": "gate", "targetIdentifier": "after", "sourceOutletIdentifier": "no"}]
    answer_ = await api.post("/v1/workflows", json=chain("bad-input", gate, after, connections=connections))
    assert answer_.status_code == 422
    [detail] = answer_.json()["details"]
    assert detail["pointer"] == "/connections/1/sourceOutletIdentifier" and "outlets: yes" in detail["message"]
    assert node_runs({"nodeRuns": []}, "x") == []
