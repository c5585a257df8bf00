"""WEBHOOK_TRIGGER through `POST /v1/hooks/{workflow}` of an embedded engine: signed deliveries start
runs whose trigger output is the body; bad signatures, repeats and paused workflows start nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from libs.store.pausing import pause
from services.trigger.signatures import sign
from tests.service.test_embedded_runs import create, wait_run

KEY = "hook-signing-key-4f1c"


def definition(identifier: str = "on-hook", *triggers: dict[str, Any]) -> dict[str, Any]:
    nodes = list(triggers) or [{"identifier": "hook", "config": {"type": "WEBHOOK_TRIGGER", "secretName": "hook-key"}}]
    nodes.append({"identifier": "summarise", "config": {
        "type": "TRANSFORM", "expression": "{action: .inputs.action, via: .trigger.type}"}})
    return {"identifier": identifier, "nodes": nodes,
            "connections": [{"sourceIdentifier": n["identifier"], "targetIdentifier": "summarise"} for n in triggers]
            or [{"sourceIdentifier": "hook", "targetIdentifier": "summarise"}]}


async def deliver(api: httpx.AsyncClient, workflow: str, body: Any, *, key: str | None = KEY,
                  delivery: str | None = None, signature: str | None = None,
                  params: dict[str, str] | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Stepline-Signature"] = signature or sign(key, raw)
    if delivery is not None:
        headers["X-Stepline-Delivery"] = delivery
    return await api.post(f"/v1/hooks/{workflow}", content=raw, headers=headers, params=params)


@pytest.fixture
async def hooked(api: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await api.put("/v1/secrets/hook-key", json={"value": KEY})).status_code == 201
    await create(api, definition())
    return api


async def runs_of(api: httpx.AsyncClient, workflow: str) -> list[dict[str, Any]]:
    return (await api.get("/v1/workflows/runs", params={"workflow": workflow})).json()["workflowRuns"]  # type: ignore[no-any-return]


async def test_a_signed_delivery_starts_a_run_with_the_body_as_trigger_output(hooked: httpx.AsyncClient) -> None:
    body = {"action": "published", "release": {"tag": "v1.2.0"}}
    response = await deliver(hooked, "on-hook", body)
    assert response.status_code == 202, response.text
    assert response.json()["ok"] is True
    run = await wait_run(hooked, response.json()["workflowRun"]["identifier"])
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS")
    assert run["variables"]["outputs"]["hook"] == body
    assert run["variables"]["outputs"]["summarise"] == {"action": "published", "via": "WEBHOOK"}
    assert (run["trigger"]["type"], run["trigger"]["node"]) == ("WEBHOOK", "hook")


@pytest.mark.parametrize("kwargs", [
    {"key": None},
    {"key": "another-key"},
    {"signature": "sha256=" + "0" * 64},
    {"signature": "garbage"},
    {"signature": "sha1=abc"},
])
async def test_a_bad_or_missing_signature_is_401_and_starts_nothing(hooked: httpx.AsyncClient,
                                                                    kwargs: dict[str, Any]) -> None:
    response = await deliver(hooked, "on-hook", {"action": "x"}, **kwargs)
    assert response.status_code == 401, response.text
    assert response.json()["ok"] is False and response.json()["error"] == "unauthorized"
    assert "X-Stepline-Signature" in response.json()["message"]
    assert await runs_of(hooked, "on-hook") == []


async def test_a_signature_over_other_bytes_is_refused(hooked: httpx.AsyncClient) -> None:
    signed = sign(KEY, b'{"action": "a"}')
    response = await deliver(hooked, "on-hook", {"action": "b"}, signature=signed)
    assert response.status_code == 401


async def test_a_repeated_delivery_returns_the_same_run(hooked: httpx.AsyncClient) -> None:
    first = await deliver(hooked, "on-hook", {"action": "one"}, delivery="d-1")
    second = await deliver(hooked, "on-hook", {"action": "one"}, delivery="d-1")
    assert first.status_code == second.status_code == 202
    run_id = first.json()["workflowRun"]["identifier"]
    assert second.json()["workflowRun"]["identifier"] == run_id
    await wait_run(hooked, run_id)
    assert [r["identifier"] for r in await runs_of(hooked, "on-hook")] == [run_id]
    other = await deliver(hooked, "on-hook", {"action": "two"}, delivery="d-2")
    assert other.json()["workflowRun"]["identifier"] != run_id


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_400(hooked: httpx.AsyncClient, raw: bytes) -> None:
    response = await deliver(hooked, "on-hook", raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert await runs_of(hooked, "on-hook") == []


async def test_a_paused_workflow_answers_409(engine: Any, hooked: httpx.AsyncClient) -> None:
    await pause(engine.store, "on-hook", by=None, now=time.time())
    response = await deliver(hooked, "on-hook", {"action": "x"})
    assert response.status_code == 409
    assert "paused" in response.json()["message"]
    assert await runs_of(hooked, "on-hook") == []


async def test_unknown_workflows_and_workflows_without_the_trigger_are_404(hooked: httpx.AsyncClient) -> None:
    assert (await deliver(hooked, "no-such-workflow", {})).status_code == 404
    await create(hooked, {"identifier": "manual", "nodes": [
        {"identifier": "t", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}}]})
    response = await deliver(hooked, "manual", {})
    assert response.status_code == 404
    assert "WEBHOOK_TRIGGER" in response.json()["message"]
    assert (await deliver(hooked, "on-hook", {}, params={"node": "nope"})).status_code == 404


async def test_the_node_parameter_picks_one_of_several_triggers(api: httpx.AsyncClient) -> None:
    await api.put("/v1/secrets/key-a", json={"value": "value-a"})
    await api.put("/v1/secrets/key-b", json={"value": "value-b"})
    await create(api, definition(
        "two-hooks",
        {"identifier": "hook-a", "config": {"type": "WEBHOOK_TRIGGER", "secretName": "key-a"}},
        {"identifier": "hook-b", "config": {"type": "WEBHOOK_TRIGGER", "secretName": "key-b"}}))
    assert (await deliver(api, "two-hooks", {"action": "b"}, key="value-b")).status_code == 401
    first = await deliver(api, "two-hooks", {"action": "a"}, key="value-a")
    assert first.status_code == 202
    chosen = await deliver(api, "two-hooks", {"action": "b"}, key="value-b", params={"node": "hook-b"})
    assert chosen.status_code == 202, chosen.text
    run = await wait_run(api, chosen.json()["workflowRun"]["identifier"])
    assert run["trigger"]["node"] == "hook-b"
    assert run["variables"]["outputs"]["hook-b"] == {"action": "b"}
    assert run["nodes"]["hook-a"]["state"] == "SKIPPED"


async def test_a_missing_signing_secret_is_a_clear_409(api: httpx.AsyncClient) -> None:
    await create(api, definition())
    response = await deliver(api, "on-hook", {"action": "x"})
    assert response.status_code == 409
    assert "hook-key" in response.json()["message"]


async def test_a_trigger_without_secret_name_is_rejected_at_validation(api: httpx.AsyncClient) -> None:
    bad = definition("bad-hook", {"identifier": "hook", "config": {"type": "WEBHOOK_TRIGGER"}})
    response = await api.post("/v1/workflows", json=bad)
    assert response.status_code == 422
    assert "/nodes/0/config/secretName" in [d["pointer"] for d in response.json()["details"]]
