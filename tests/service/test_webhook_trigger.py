"""WEBHOOK_TRIGGER through `POST /v1/hooks/{workflow}` of an embedded engine: deliveries signed as the
trigger's `signature` scheme requires start runs whose trigger output is the body; unsigned, wrongly
signed, stale and replayed deliveries, unknown workflows and paused ones start nothing (read back from
the store). Deliveries are sent without an API key: the signature is the credential."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from libs.core.webhook_signatures import SCHEMES, sign
from libs.store.pausing import pause
from libs.store.ports import RunFilter
from tests.service.test_embedded_runs import create, wait_run

KEY = "hook-signing-key-4f1c"
SECRET = "hook-key"
ALL_SCHEMES = sorted(SCHEMES)


def hook_node(identifier: str = "hook", scheme: str | None = None, secret: str = SECRET,
              **signature: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"type": "WEBHOOK_TRIGGER"}
    if scheme is None:
        config["secretName"] = secret
    else:
        config["signature"] = {"scheme": scheme, "secretName": secret, **signature}
    return {"identifier": identifier, "config": config}


def definition(identifier: str = "on-hook", *triggers: dict[str, Any]) -> dict[str, Any]:
    nodes = [*(triggers or [hook_node()])]
    nodes.append({"identifier": "summarise", "config": {
        "type": "TRANSFORM", "expression": "{action: .inputs.action, via: .trigger.type}"}})
    return {"identifier": identifier, "nodes": nodes,
            "connections": [{"sourceIdentifier": n["identifier"], "targetIdentifier": "summarise"} for n in nodes[:-1]]}


@pytest.fixture
async def sender(engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client without an API key, as a webhook provider is."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=engine.app), base_url="http://127.0.0.1") as c:
        yield c


def raw_of(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


async def post(sender: httpx.AsyncClient, workflow: str, raw: bytes, headers: dict[str, str],
               params: dict[str, str] | None = None, content_type: str = "application/json") -> httpx.Response:
    return await sender.post(f"/v1/hooks/{workflow}", content=raw, params=params,
                             headers={"Content-Type": content_type, **headers})


async def deliver(sender: httpx.AsyncClient, workflow: str, body: Any, *, key: str | None = KEY,
                  delivery: str | None = None, signature: str | None = None,
                  params: dict[str, str] | None = None) -> httpx.Response:
    """A delivery of the older `hmac-sha256` scheme (top-level `secretName`)."""
    raw = raw_of(body)
    headers = {} if key is None else {"X-Stepline-Signature": signature or sign(key, raw)}
    if delivery is not None:
        headers["X-Stepline-Delivery"] = delivery
    return await post(sender, workflow, raw, headers, params)


def signed(scheme: str, raw: bytes, *, key: str = KEY, at: float | None = None, delivery: str = "gh-1") -> dict[str, str]:
    return SCHEMES[scheme].sign(key, raw, int(time.time() if at is None else at), delivery=delivery)


@pytest.fixture
async def hooked(api: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await api.put(f"/v1/secrets/{SECRET}", json={"value": KEY})).status_code == 201
    await create(api, definition())
    return api


async def stored_runs(engine: Any, workflow: str) -> list[str]:
    runs, _ = await engine.store.list_runs(RunFilter(workflows=(workflow,)), limit=100, offset=0)
    return [run.id for run in runs]


async def only_this_run_is_stored(engine: Any, api: httpx.AsyncClient, workflow: str, response: httpx.Response) -> None:
    """`response` started a run; once it completed, it is the workflow's only run, so no refused
    delivery before it started one."""
    assert response.status_code == 202, response.text
    run_id = response.json()["workflowRun"]["identifier"]
    await wait_run(api, run_id)
    assert await stored_runs(engine, workflow) == [run_id]


# ---- accepted --------------------------------------------------------------------------------------

async def test_a_signed_delivery_starts_a_run_with_the_body_as_trigger_output(hooked: httpx.AsyncClient,
                                                                              sender: httpx.AsyncClient) -> None:
    body = {"action": "published", "release": {"tag": "v1.2.0"}}
    response = await deliver(sender, "on-hook", body)
    assert response.status_code == 202, response.text
    assert response.json()["ok"] is True
    run = await wait_run(hooked, response.json()["workflowRun"]["identifier"])
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS")
    assert run["variables"]["outputs"]["hook"] == body
    assert run["variables"]["outputs"]["summarise"] == {"action": "published", "via": "WEBHOOK"}
    assert (run["trigger"]["type"], run["trigger"]["node"]) == ("WEBHOOK", "hook")


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
async def test_each_scheme_starts_a_run_from_a_delivery_signed_its_way(
        engine: Any, hooked: httpx.AsyncClient, sender: httpx.AsyncClient, scheme: str) -> None:
    await create(hooked, definition(f"by-{scheme}", hook_node(scheme=scheme)))
    raw = raw_of({"action": scheme})
    response = await post(sender, f"by-{scheme}", raw, signed(scheme, raw))
    assert response.status_code == 202, response.text
    run = await wait_run(hooked, response.json()["workflowRun"]["identifier"])
    assert run["variables"]["outputs"]["summarise"] == {"action": scheme, "via": "WEBHOOK"}
    assert await stored_runs(engine, f"by-{scheme}") == [run["identifier"]]


# ---- refused: one 401 for everything a caller without the secret could try --------------------------

@pytest.mark.parametrize("scheme", ALL_SCHEMES)
async def test_unsigned_and_wrongly_signed_deliveries_are_401_and_start_nothing(
        engine: Any, hooked: httpx.AsyncClient, sender: httpx.AsyncClient, scheme: str) -> None:
    await create(hooked, definition("guarded", hook_node(scheme=scheme)))
    raw = raw_of({"action": "x"})
    attempts = [{}, signed(scheme, raw, key="another-key"), signed(scheme, raw_of({"action": "y"})),
                {name: "sha256=" + "0" * 64 for name in signed(scheme, raw)}]
    for headers in attempts:
        response = await post(sender, "guarded", raw, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["ok"] is False and response.json()["error"] == "unauthorized"
    assert await stored_runs(engine, "guarded") == []
    await only_this_run_is_stored(engine, hooked, "guarded", await post(sender, "guarded", raw, signed(scheme, raw)))


@pytest.mark.parametrize("scheme", ["stepline", "slack"])
async def test_a_stale_or_future_timestamp_is_401(engine: Any, hooked: httpx.AsyncClient,
                                                  sender: httpx.AsyncClient, scheme: str) -> None:
    await create(hooked, definition("timed", hook_node(scheme=scheme, toleranceSeconds=60)))
    raw = raw_of({"action": "late"})
    for at in (time.time() - 90, time.time() + 90):
        assert (await post(sender, "timed", raw, signed(scheme, raw, at=at))).status_code == 401
    assert await stored_runs(engine, "timed") == []
    within = signed(scheme, raw, at=time.time() - 30)
    await only_this_run_is_stored(engine, hooked, "timed", await post(sender, "timed", raw, within))


async def refusals(sender: httpx.AsyncClient) -> list[httpx.Response]:
    raw = raw_of({"action": "x"})
    return [await deliver(sender, "no-such-workflow", raw), await deliver(sender, "manual", raw),
            await deliver(sender, "on-hook", raw, params={"node": "nope"}),
            await deliver(sender, "on-hook", raw, key="wrong"), await deliver(sender, "on-hook", raw, key=None),
            await deliver(sender, "no-secret", raw)]


async def test_unknown_workflow_missing_trigger_or_secret_and_bad_signature_answer_the_same_401(
        engine: Any, hooked: httpx.AsyncClient, sender: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    await create(hooked, {"identifier": "manual", "nodes": [
        {"identifier": "t", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}}]})
    await create(hooked, definition("no-secret", hook_node(secret="never-written-secret")))
    with caplog.at_level(logging.INFO, logger="stepline.trigger.hooks"):
        answers = await refusals(sender)
    assert {r.status_code for r in answers} == {401}
    assert len({r.content for r in answers}) == 1, [r.text for r in answers]
    for text in (answers[0].text, json.dumps(dict(answers[0].headers))):
        assert SECRET not in text and "never-written-secret" not in text and KEY not in text
    assert "'never-written-secret' named by node 'hook' does not exist" in caplog.text  # the operator's clue
    assert KEY not in caplog.text
    assert await stored_runs(engine, "on-hook") == [] and await stored_runs(engine, "no-secret") == []


# ---- replays ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ALL_SCHEMES)
async def test_a_replayed_delivery_answers_the_first_run_and_starts_nothing(
        engine: Any, hooked: httpx.AsyncClient, sender: httpx.AsyncClient, scheme: str) -> None:
    await create(hooked, definition("replayed", hook_node(scheme=scheme)))
    raw = raw_of({"action": "once"})
    headers = {**signed(scheme, raw), "X-Stepline-Delivery": "d-1"}
    first, second = await post(sender, "replayed", raw, headers), await post(sender, "replayed", raw, headers)
    assert first.status_code == second.status_code == 202, second.text
    run_id = first.json()["workflowRun"]["identifier"]
    assert second.json()["workflowRun"]["identifier"] == run_id
    await only_this_run_is_stored(engine, hooked, "replayed", first)


async def test_a_new_delivery_of_the_same_body_is_a_new_run(hooked: httpx.AsyncClient, sender: httpx.AsyncClient) -> None:
    first = await deliver(sender, "on-hook", {"action": "one"}, delivery="d-1")
    other = await deliver(sender, "on-hook", {"action": "one"}, delivery="d-2")
    assert first.json()["workflowRun"]["identifier"] != other.json()["workflowRun"]["identifier"]
    await create(hooked, definition("gh", hook_node(scheme="github")))
    raw = raw_of({"action": "push"})
    runs = {(await post(sender, "gh", raw, signed("github", raw, delivery=d))).json()["workflowRun"]["identifier"]
            for d in ("a", "b")}
    assert len(runs) == 2


# ---- bodies ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe"])
async def test_a_signed_body_that_is_not_a_json_object_is_400(engine: Any, hooked: httpx.AsyncClient,
                                                              sender: httpx.AsyncClient, raw: bytes) -> None:
    response = await deliver(sender, "on-hook", raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert await stored_runs(engine, "on-hook") == []


async def test_a_slack_slash_command_form_becomes_an_object_of_its_fields(
        hooked: httpx.AsyncClient, sender: httpx.AsyncClient) -> None:
    await create(hooked, definition("slash", hook_node(scheme="slack")))
    raw = b"command=%2Fdeploy&text=api+v2&action=deploy&channel_id=C1&channel_id=C2"
    response = await post(sender, "slash", raw, signed("slack", raw), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.text
    run = await wait_run(hooked, response.json()["workflowRun"]["identifier"])
    assert run["variables"]["outputs"]["hook"] == {"command": "/deploy", "text": "api v2", "action": "deploy",
                                                   "channel_id": ["C1", "C2"]}


async def test_a_github_form_delivery_is_its_payload_object(hooked: httpx.AsyncClient, sender: httpx.AsyncClient) -> None:
    await create(hooked, definition("gh-form", hook_node(scheme="github")))
    raw = b"payload=%7B%22action%22%3A%20%22opened%22%7D"
    response = await post(sender, "gh-form", raw, signed("github", raw), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.text
    run = await wait_run(hooked, response.json()["workflowRun"]["identifier"])
    assert run["variables"]["outputs"]["hook"] == {"action": "opened"}


async def test_other_content_types_are_415_even_when_signed(engine: Any, hooked: httpx.AsyncClient,
                                                            sender: httpx.AsyncClient) -> None:
    raw = raw_of({"action": "x"})
    response = await post(sender, "on-hook", raw, {"X-Stepline-Signature": sign(KEY, raw)}, content_type="text/plain")
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"
    assert await stored_runs(engine, "on-hook") == []


# ---- the rest --------------------------------------------------------------------------------------

async def test_a_paused_workflow_answers_409(engine: Any, hooked: httpx.AsyncClient, sender: httpx.AsyncClient) -> None:
    await pause(engine.store, "on-hook", by=None, now=time.time())
    response = await deliver(sender, "on-hook", {"action": "x"})
    assert response.status_code == 409
    assert "paused" in response.json()["message"]
    assert await stored_runs(engine, "on-hook") == []


async def test_the_node_parameter_picks_one_of_several_triggers(api: httpx.AsyncClient, sender: httpx.AsyncClient) -> None:
    await api.put("/v1/secrets/key-a", json={"value": "value-a"})
    await api.put("/v1/secrets/key-b", json={"value": "value-b"})
    await create(api, definition("two-hooks", hook_node("hook-a", secret="key-a"),
                                 hook_node("hook-b", "stepline", secret="key-b")))
    assert (await deliver(sender, "two-hooks", {"action": "b"}, key="value-b")).status_code == 401
    first = await deliver(sender, "two-hooks", {"action": "a"}, key="value-a")
    assert first.status_code == 202
    raw = raw_of({"action": "b"})
    chosen = await post(sender, "two-hooks", raw, signed("stepline", raw, key="value-b"), params={"node": "hook-b"})
    assert chosen.status_code == 202, chosen.text
    run = await wait_run(api, chosen.json()["workflowRun"]["identifier"])
    assert run["trigger"]["node"] == "hook-b"
    assert run["variables"]["outputs"]["hook-b"] == {"action": "b"}
    assert run["nodes"]["hook-a"]["state"] == "SKIPPED"


@pytest.mark.parametrize(("config", "pointer"), [
    ({"type": "WEBHOOK_TRIGGER"}, "/nodes/0/config/signature"),
    ({"type": "WEBHOOK_TRIGGER", "secretName": "a", "signature": {"scheme": "github", "secretName": "a"}},
     "/nodes/0/config/signature"),
    ({"type": "WEBHOOK_TRIGGER", "signature": {"scheme": "md5", "secretName": "a"}}, "/nodes/0/config/signature/scheme"),
    ({"type": "WEBHOOK_TRIGGER", "signature": {"scheme": "github", "secretName": "a", "toleranceSeconds": 60}},
     "/nodes/0/config/signature/toleranceSeconds"),
    ({"type": "WEBHOOK_TRIGGER", "signature": {"scheme": "slack", "secretName": "a", "toleranceSeconds": 0}},
     "/nodes/0/config/signature/toleranceSeconds"),
    ({"type": "WEBHOOK_TRIGGER", "signature": {"scheme": "slack"}}, "/nodes/0/config/signature/secretName"),
])
async def test_a_trigger_without_a_valid_signature_config_is_rejected_at_validation(
        api: httpx.AsyncClient, config: dict[str, Any], pointer: str) -> None:
    response = await api.post("/v1/workflows", json=definition("bad-hook", {"identifier": "hook", "config": config}))
    assert response.status_code == 422
    assert pointer in [d["pointer"] for d in response.json()["details"]], response.text
