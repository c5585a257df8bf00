"""Secrets used by nodes of an embedded engine: the receiver gets the real value, and no stored
output, error, log, API answer, run event or database byte holds it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.contracts import topics
from libs.contracts.envelope import Envelope
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end

TOKEN = "tok-7Hq2xP9-very-secret"


class Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def handle(self, envelope: Envelope) -> None:
        self.texts.append(json.dumps(envelope.model_dump(mode="json")))


def watch(engine: Any) -> Recorder:
    recorder = Recorder()
    for topic in (topics.RUN_EVENTS, topics.NODE_RESULTS, topics.NODE_DISPATCH, topics.DEAD_LETTERS):
        engine.bus.subscribe(topic, "test-secret-watch", recorder.handle)
    return recorder


def database_bytes(engine: Any) -> bytes:
    db = Path(engine.settings.sqlite_path())
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())


async def test_a_webhook_sends_the_secret_and_stores_only_stars(
        engine: Any, api: httpx.AsyncClient, target: Target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events = watch(engine)
    assert (await api.put("/v1/secrets/token", json={"value": TOKEN})).status_code == 201
    await create(api, chain(
        "uses-secret",
        {"identifier": "call", "config": {
            "type": "WEBHOOK", "url": f"{target.base_url}/echo", "method": "POST",
            "headers": {"Authorization": 'Bearer {{ .secrets["token"] }}'},
            "body": {"auth": 'Bearer {{ .secrets["token"] }}', "plain": "{{ .run.id }}"}}},
        {"identifier": "copy", "config": {"type": "TRANSFORM", "output": {
            "echoed": "{{ .outputs.call.response.data.body.auth }}"}}},
    ))
    run = await run_to_end(api, "uses-secret")
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS"), run

    [received] = await target.wait_for("/echo")
    assert received["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert received["body"]["auth"] == f"Bearer {TOKEN}"

    outputs = run["variables"]["outputs"]
    assert outputs["call"]["response"]["data"]["body"]["auth"] == "Bearer ***"
    assert outputs["copy"] == {"echoed": "Bearer ***"}

    shown = [run, *[await api.get(f"/v1/workflows/nodes/runs/{nr['identifier']}") for nr in run["nodeRuns"]]]
    texts = [json.dumps(run)] + [r.text for r in shown[1:]]
    texts.append((await api.get("/v1/workflows/runs", params={"workflow": "uses-secret"})).text)
    for text in [*texts, *events.texts, caplog.text]:
        assert TOKEN not in text
    assert events.texts, "the run published events"
    assert TOKEN.encode() not in database_bytes(engine)


async def test_a_secret_in_an_error_message_is_masked(engine: Any, api: httpx.AsyncClient) -> None:
    await api.put("/v1/secrets/token", json={"value": TOKEN})
    await create(api, chain("bad-url", {"identifier": "call", "config": {
        "type": "WEBHOOK", "url": '{{ "not-a-url/" + .secrets["token"] }}'}}))  # refused only at run time
    run = await run_to_end(api, "bad-url")
    [call] = node_runs(run, "call")
    assert call["result"] == "FAILED"
    assert "***" in json.dumps(call) and TOKEN not in json.dumps(run)


async def test_a_missing_secret_fails_the_node_naming_it(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("missing-secret", {"identifier": "call", "config": {
        "type": "WEBHOOK", "url": f"{target.base_url}/never",
        "headers": {"Authorization": 'Bearer {{ .secrets["no-such-token"] }}'}}}))
    run = await run_to_end(api, "missing-secret")
    assert (run["status"], run["result"]) == ("COMPLETED", "FAILED")
    [call] = node_runs(run, "call")
    assert call["result"] == "FAILED"
    assert "no-such-token" in json.dumps(call) and "does not exist" in json.dumps(call)
    assert target.hits["/never"] == 0


async def test_nodes_without_secrets_never_read_them(engine: Any, api: httpx.AsyncClient,
                                                     target: Target) -> None:
    await api.put("/v1/secrets/token", json={"value": TOKEN})
    reads: list[str] = []
    original = engine.store.get_entry

    async def counting(kind: str, key: str) -> Any:
        if kind == "secret":
            reads.append(key)
        return await original(kind, key)

    engine.store.get_entry = counting
    await create(api, chain("no-secrets", {"identifier": "call", "config": {
        "type": "WEBHOOK", "url": f"{target.base_url}/secrets/path-is-not-a-use"}}))
    run = await run_to_end(api, "no-secrets")
    assert run["result"] == "SUCCESS"
    assert reads == []


async def test_an_external_completion_is_stored_with_secrets_masked(
        engine: Any, api: httpx.AsyncClient, target: Target) -> None:
    await api.put("/v1/secrets/token", json={"value": TOKEN})
    await create(api, chain("async-call", {"identifier": "call", "config": {
        "type": "WEBHOOK", "url": f"{target.base_url}/async/call", "synchronized": False,
        "headers": {"Authorization": 'Bearer {{ .secrets["token"] }}'}}}))
    started = (await api.post("/v1/workflows/async-call/runs", json={"inputs": {}})).json()["workflowRun"]
    [request] = await target.wait_for("/async/call")
    node_run_id = request["headers"]["x-stepline-node-run-id"]
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": {"echo": f"token={TOKEN}"},
            "logs": [{"log": f"used {TOKEN}"}]}
    assert (await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)).status_code == 200
    run = (await api.get(f"/v1/workflows/runs/{started['identifier']}", params={"wait": 10})).json()["workflowRun"]
    assert run["result"] == "SUCCESS"
    [call] = node_runs(run, "call")
    assert call["output"] == {"echo": "token=***"}
    assert [e["log"] for e in call["nodeRunLogs"] if e["source"] == "user"] == ["used ***"]
    assert TOKEN not in json.dumps(run)
    again = await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)
    assert again.status_code == 200, "the repeat is recognised as the same completion"


@pytest.mark.parametrize("node, pointer", [
    ({"type": "TRANSFORM", "expression": ".secrets.token | explode"}, "/nodes/1/config/expression"),
    ({"type": "TRANSFORM", "output": {"x": '{{ .secrets.token | @base64 }}'}}, "/nodes/1/config/output/x"),
    ({"type": "CONDITION", "options": [{"identifier": "a", "expression": '.secrets.token | startswith("t")'}]},
     "/nodes/1/config/options/0/expression"),
    ({"type": "WEBHOOK", "url": "http://127.0.0.1:9/x", "headers": {"A": "{{ .secrets | keys | join(\",\") }}"}},
     "/nodes/1/config/headers/A"),
])
async def test_reading_a_secret_outside_a_request_is_refused_at_save(
        api: httpx.AsyncClient, node: dict[str, Any], pointer: str) -> None:
    response = await api.post("/v1/workflows", json=chain("leaky", {"identifier": "x", "config": node}))
    assert response.status_code == 422, response.text
    assert pointer in [d["pointer"] for d in response.json()["details"]], response.text


async def test_encoded_forms_echoed_back_are_masked(api: httpx.AsyncClient, target: Target) -> None:
    await api.put("/v1/secrets/token", json={"value": TOKEN})
    await create(api, chain("encodings", {"identifier": "call", "config": {
        "type": "WEBHOOK", "url": f"{target.base_url}/echo", "method": "POST", "body": {
            "b64": "{{ .secrets.token | @base64 }}", "uri": "{{ .secrets.token | @uri }}",
            "upper": "{{ .secrets.token | ascii_upcase }}", "codes": "{{ .secrets.token | explode }}",
            "chars": '{{ .secrets.token | split("") }}', "basic": '{{ "ci:" + .secrets.token | @base64 }}'}}}))
    run = await run_to_end(api, "encodings")
    assert run["result"] == "SUCCESS", run
    [received] = await target.wait_for("/echo")
    assert received["body"]["upper"] == TOKEN.upper(), "the receiver gets the real value"
    echoed = run["variables"]["outputs"]["call"]["response"]["data"]["body"]
    assert echoed["b64"] == echoed["uri"] == echoed["upper"] == echoed["codes"] == echoed["chars"] == "***"
    assert "***" in echoed["basic"]


async def test_a_reported_guess_of_another_secret_is_not_confirmed(
        engine: Any, api: httpx.AsyncClient, target: Target) -> None:
    await api.put("/v1/secrets/token", json={"value": TOKEN})
    await api.put("/v1/secrets/other", json={"value": "other-guessable-value"})
    await create(api, chain("guess", {"identifier": "call", "config": {
        "type": "WEBHOOK", "url": f"{target.base_url}/async/guess", "synchronized": False,
        "headers": {"Authorization": 'Bearer {{ .secrets["token"] }}'}}}))
    started = (await api.post("/v1/workflows/guess/runs", json={"inputs": {}})).json()["workflowRun"]
    [request] = await target.wait_for("/async/guess")
    node_run_id = request["headers"]["x-stepline-node-run-id"]
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": {"echo": TOKEN},
            "logs": [{"log": "is it other-guessable-value?"}, {"log": f"was sent {TOKEN.lower()}"}]}
    assert (await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)).status_code == 200
    run = (await api.get(f"/v1/workflows/runs/{started['identifier']}", params={"wait": 10})).json()["workflowRun"]
    [call] = node_runs(run, "call")
    assert call["output"] == {"echo": "***"}, "the secret the node sent is masked"
    assert [e["log"] for e in call["nodeRunLogs"] if e["source"] == "user"] == ["is it other-guessable-value?",
                                                                               "was sent ***"], \
        "a guess of a secret the node never sent is stored as reported: masking it would confirm it"
